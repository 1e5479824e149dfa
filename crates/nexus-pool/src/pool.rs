//! One pool: sweeps the fleet, steps each agent's state machine, carries out
//! the actions (launches, incidents, approvals, events) and publishes the
//! snapshot.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nexus_alert::telegram::{ApprovalConfig, Approvals};
use nexus_cell::{CellId, CellStore, Event, EventKind};
use nexus_probe::{Runner, RunnerConfig};
use nexus_revive::{Action, AgentRecord, Health, Settings, State, assess, launched, step};
use tokio::sync::mpsc;

use crate::Error;
use crate::channels::{GiteaExecutor, NostrExecutor, TelegramExecutor};
use crate::config::PoolConfig;
use crate::fleet::{Known, ProbePlan, Seen, Target, targets};
use crate::http::Shared;
use crate::intent::pause;
use crate::sighting::{Sighting, Why, bad_file_reason};
use crate::view::{AgentView, PoolSnapshot};

mod alerts;
mod cellio;
mod events;
mod human;
mod launcher;
mod logs;
mod outside;
use outside::{Incidents, Messages, request_id};
mod state;
pub use state::{PoolState, Unsent};
mod unseen;
pub use unseen::Retired;

/// A heartbeat's deadline is set this far past its threshold, so the
/// step it wakes finds it stale, not at the edge.
const STALE_SLACK: f64 = 0.05;

/// Events kept per agent for the status page.
const EVENTS_KEPT: usize = 8;

/// Cell events kept to retry while their logs cannot be written (a full
/// disk); beyond this the oldest are dropped, and counted.
const UNWRITTEN_EVENTS_KEPT: usize = 10_000;

/// Options that do not come from the config file.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Where records and pending approvals persist.
    pub state_file: PathBuf,
    /// The cells root, overriding `[cells] root` (and enabling cells).
    pub cells_root: Option<PathBuf>,
    /// No side effect: no launch, no HTTP call, no state written.
    pub dry_run: bool,
}

/// What one sweep found.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Agents watched.
    pub agents: usize,
    /// Agents not healthy.
    pub unhealthy: usize,
    /// Some agent just started failing: sweep again soon to confirm.
    pub confirm_soon: bool,
    /// How long the sweep took.
    pub seconds: f64,
    /// The gateways and cells read (a cell whether or not it has agents
    /// to watch).
    pub read: usize,
    /// The cells that could not be read (their agents' records are kept,
    /// and counted as unhealthy).
    pub unreadable: Vec<crate::view::UnreadableCell>,
}

impl SweepReport {
    /// Nothing could be read, and something should have: no gateway, no
    /// cell read, and the cells root or every cell under it unreadable.
    pub fn blind(&self) -> bool {
        self.read == 0 && !self.unreadable.is_empty()
    }
}

/// Why [`Pool::idle`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// The time asked for came: the safety sweep is due.
    Timer,
    /// These agents need a step ([`Pool::step_keys`]): a launched process
    /// exited, a beat of an agent that is not healthy landed, a deadline
    /// came.
    Steps(Vec<Arc<str>>),
    /// The fleet changed (a cell added, removed, its manifest replaced) or
    /// an event may have been lost (inotify's queue overflowed): sweep all.
    Sweep(&'static str),
    /// Answers to approval requests arrived.
    Answers,
}

/// Where a full sweep puts its views: over the snapshot's own, in place,
/// while its agents come in the order the snapshot shows them (a sweep of
/// an unchanged fleet makes no second list of 10,000 views); from the
/// first part that differs, into a new list that replaces the snapshot's
/// at the end. Meanwhile a reader sees each view whole, some from this
/// sweep and the rest from the last.
struct ViewSink {
    /// Views put so far (in place, then in `fresh`).
    placed: usize,
    fresh: Option<Vec<AgentView>>,
    /// How many views the sweep expects (the new list's capacity).
    expected: usize,
}

impl ViewSink {
    fn new(expected: usize) -> ViewSink {
        ViewSink {
            placed: 0,
            fresh: None,
            expected,
        }
    }

    /// Views put so far: the next one's place in the snapshot.
    fn len(&self) -> usize {
        self.placed
    }

    /// Puts `views` next, under one write lock for the batch.
    fn put(&mut self, shared: &Shared, views: Vec<AgentView>) {
        if views.is_empty() {
            return;
        }
        let end = self.placed + views.len();
        if self.fresh.is_none() {
            let mut g = crate::http::snapshot_mut(shared);
            let same = g.agents.get(self.placed..end).is_some_and(|old| {
                old.iter()
                    .zip(&views)
                    .all(|(a, b)| a.name == b.name && a.cell == b.cell)
            });
            if same {
                for (slot, view) in g.agents[self.placed..end].iter_mut().zip(views) {
                    *slot = view;
                }
                self.placed = end;
                return;
            }
            let mut fresh = Vec::with_capacity(self.expected.max(end));
            fresh.extend_from_slice(&g.agents[..self.placed]);
            self.fresh = Some(fresh);
        }
        if let Some(fresh) = &mut self.fresh {
            fresh.extend(views);
            self.placed = end;
        }
    }

    /// The snapshot shows the sweep's views, and no other.
    fn finish(self, g: &mut PoolSnapshot) {
        match self.fresh {
            Some(fresh) => g.agents = fresh,
            None => g.agents.truncate(self.placed),
        }
    }
}

/// The targets of the last full sweep, in the survey's parts, numbered
/// across them in order.
#[derive(Debug, Default)]
struct Targets {
    parts: Vec<Vec<Target>>,
    /// The number of each part's first target.
    starts: Vec<u32>,
}

impl Targets {
    /// How many targets.
    fn len(&self) -> usize {
        match (self.starts.last(), self.parts.last()) {
            (Some(s), Some(p)) => *s as usize + p.len(),
            _ => 0,
        }
    }

    /// Adds a part; its targets are numbered from [`Targets::len`].
    fn push(&mut self, part: Vec<Target>) {
        self.starts.push(self.len() as u32);
        self.parts.push(part);
    }

    /// The target numbered `n`.
    fn get(&self, n: usize) -> Option<&Target> {
        let p = self
            .starts
            .partition_point(|s| *s as usize <= n)
            .checked_sub(1)?;
        self.parts.get(p)?.get(n - self.starts[p] as usize)
    }

    /// Every target, in order.
    fn iter(&self) -> impl Iterator<Item = &Target> {
        self.parts.iter().flatten()
    }
}

/// The resurrection pool daemon's state and loop: one per cells root and PID file.
#[derive(Debug)]
pub struct Pool {
    /// Shared with each sweep's survey, which runs on a blocking thread.
    cfg: Arc<PoolConfig>,
    settings: Settings,
    runner: Runner,
    store: Option<CellStore>,
    state: PoolState,
    state_file: PathBuf,
    dry_run: bool,
    children: HashMap<String, u32>,
    /// Agents whose launched process exited (key → its PID) and that have
    /// not been relaunched since: their heartbeat, however fresh, is stale
    /// evidence.
    exited: HashMap<String, (u32, f64)>,
    exits_tx: mpsc::UnboundedSender<(String, u32)>,
    exits_rx: mpsc::UnboundedReceiver<(String, u32)>,
    incidents: Option<Incidents>,
    telegram: Option<Messages>,
    nostr: Option<outside::Dms>,
    /// A channel event changed what the state file holds (saved by the
    /// next sweep) / changed a message or an answer (saved at once).
    dirty: bool,
    urgent: bool,
    /// A sweep is under way (its records are half stepped: never saved
    /// from outside it, e.g. by a stop that cut it).
    sweeping: bool,
    events: HashMap<String, VecDeque<crate::view::Note>>,
    shared: Shared,
    started_at: f64,
    sweeps: u64,
    faults: crate::faults::Faults,
    /// Cell events whose write failed, oldest first: retried at every
    /// sweep, each cell's in order, and written with the time they happened.
    unwritten: VecDeque<(CellId, Event)>,
    /// Unwritten events dropped because more than `UNWRITTEN_EVENTS_KEPT` waited.
    unwritten_dropped: u64,
    clock: crate::clock::Clock,
    future_beats: crate::clock::FutureBeats,
    /// The event engine's view of the fleet, rebuilt by each full sweep:
    /// every agent's target, and where its view sits in the snapshot.
    /// Key → (its number in `targets`, its view's place in the snapshot).
    index: HashMap<Arc<str>, (u32, u32)>,
    /// The sweep's fleet as the survey built it, a part per cell (kept,
    /// not copied into one list: a second list of 10,000 targets was the
    /// largest allocation of a safety sweep).
    targets: Targets,
    /// One deadline per agent: its heartbeat going stale, or the time its
    /// state machine named (`nexus_revive::next_due`).
    timers: crate::engine::Timers,
    /// A pidfd per live child (signals reach that process and no other).
    pidfds: HashMap<String, std::os::fd::OwnedFd>,
    /// Hung children being stopped: key → (PID, SIGKILL due).
    terminating: HashMap<String, (u32, Instant)>,
    /// The last `Recovered` of the agent being stepped: how, and whether an
    /// incident was open (closed with that text).
    recovered: Option<(String, bool)>,
    /// Records changed by targeted steps since the state was last saved.
    unsaved: bool,
    /// What the check of the agent being stepped saw (the words of its
    /// actions' log lines).
    sighting: Sighting,
    /// Waits already logged, by key (logged again when they change).
    waits_logged: HashMap<Arc<str>, String>,
    /// The daemon's inotify watches (see [`crate::engine`]).
    watcher: Option<crate::engine::Watcher>,
    /// The daemon steps agents between sweeps (deadlines are kept).
    evented: bool,
    /// What the watches could not cover, as last logged.
    unwatched_logged: Option<String>,
    /// The last survey's warnings, as logged (see `log_survey_warnings`).
    survey_warned: Vec<String>,
    /// When the state was last saved.
    saved_at: Instant,
    /// The agents' names, each allocated once (see [`Known`]); pruned of
    /// those no agent holds at each sweep's end.
    names: std::collections::HashSet<Arc<str>>,
    /// The status page's actions, when it has any (see `human`).
    inbox: Option<crate::actions::Inbox>,
    /// Retries and acknowledgements from the page, for the agents' next step.
    commands: human::Commands,
    /// Alertmanager's notifications, when the receiver is on (see `alerts`).
    alert_inbox: Option<crate::alertmanager::AlertInbox>,
    /// `[history]`'s recorder: each agent state change, never blocking.
    history: Option<nexus_history::Recorder>,
}

impl Pool {
    /// `[history]`'s recorder, for the threads that record beside the
    /// sweeps (the cron jobs the pool sees).
    pub fn history_recorder(&self) -> Option<nexus_history::Recorder> {
        self.history.clone()
    }

    /// Waits until the history writer has committed what was recorded
    /// (at the end of a one-shot run and at shutdown; the writer is a
    /// thread of its own, so this is short).
    fn flush_history(&self) {
        if let Some(h) = &self.history {
            h.flush();
        }
    }
}

/// An agent's group in the history: its mission's label, else its cell's.
/// (Its subject is its key, `<cell>/<name>`: names repeat across cells.)
fn history_group(t: &Target) -> &str {
    t.mission
        .as_deref()
        .or(t.cell_label.as_deref())
        .unwrap_or("")
}

/// Starts `[history]`'s recorder; a file that cannot be opened is logged
/// and history is off (the pool runs on without it).
fn start_history(
    cfg: &PoolConfig,
    state_file: &std::path::Path,
) -> Option<nexus_history::Recorder> {
    let dir = state_file.parent().unwrap_or(std::path::Path::new("."));
    match cfg.history.as_ref()?.start(dir) {
        Ok(rec) => rec,
        Err(e) => {
            tracing::error!("history off: {}", nexus_stdx::error_chain(&e));
            None
        }
    }
}

impl Pool {
    /// Builds a pool; loads its persisted state.
    pub fn new(cfg: PoolConfig, opts: PoolOptions) -> Result<Pool, Error> {
        let state = PoolState::load_or_reset(&opts.state_file, opts.dry_run)?;
        let mut cfg = cfg;
        if let Some(root) = &opts.cells_root {
            let mut cells = cfg.cells.clone().unwrap_or(crate::config::CellsSection {
                root: root.clone(),
                heartbeat_stale_threshold: Duration::from_secs(60),
                revive_policy: "auto".to_string(),
            });
            cells.root = root.clone();
            cfg.cells = Some(cells);
        }
        let store = cfg.cells.as_ref().map(|c| CellStore::new(&c.root));
        let state_dir = opts
            .state_file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let deadline = cfg.pool.channel_deadline.max(Duration::from_millis(100));
        if cfg.incident.as_ref().is_some_and(|i| !i.is_configured()) {
            tracing::warn!(
                "[incident] names no forge (url and repo): no issues are opened (docs/examples/resurrection-pool.toml)"
            );
        }
        let incidents = cfg
            .incident
            .as_ref()
            .filter(|i| i.is_configured() && (i.token().is_some() || opts.dry_run))
            .map(|i| {
                let (settings, dir, dry) = (i.clone(), state_dir.join("gitea"), opts.dry_run);
                let rebuild = Box::new(move || settings.engine(&dir, dry));
                Incidents::new(GiteaExecutor::new(rebuild, deadline, i.retry_interval))
            });
        let mut state = state;
        let telegram = cfg.telegram.as_ref().and_then(|t| t.client()).map(|tg| {
            let mut ac = ApprovalConfig::new(state_dir.join("approvals.json"));
            ac.approvers = cfg
                .missions
                .values()
                .flat_map(|m| m.approvers.iter().copied())
                .collect();
            // A long poll shorter than the deadline, so a poll is not cut.
            let most = u32::try_from(deadline.as_secs() / 3).unwrap_or(u32::MAX);
            ac.poll_timeout = ac.poll_timeout.min(most);
            let approvals = Approvals::new(ac, tg.clone());
            let x = TelegramExecutor::new(tg, approvals, deadline);
            Messages::new(x, &mut state.unsent)
        });
        if telegram.is_none() {
            // Telegram was taken out of the config: nowhere to send them.
            state.unsent.clear();
        }
        let nostr = match cfg.nostr.as_ref() {
            None => None,
            Some(n) => {
                let file = state_dir.join("nostr-approvals.json");
                match nexus_nostr::NostrApprovals::new(n, file) {
                    Ok(Some(a)) => {
                        tracing::info!(
                            "[nostr] approvals through {} as {}",
                            n.relay_urls().join(", "),
                            a.npub()
                        );
                        Some(outside::Dms::new(NostrExecutor::new(a, deadline)))
                    }
                    Ok(None) => {
                        tracing::warn!(
                            "[nostr] no secret key (${} or token_file): Nostr approvals are disabled; nothing is sent to the relays",
                            n.token_env
                        );
                        None
                    }
                    Err(e) => {
                        return Err(Error::Config {
                            origin: "(nostr secret key)".into(),
                            message: e.to_string(),
                        });
                    }
                }
            }
        };
        let runner = Runner::new(RunnerConfig {
            concurrency: crate::fleet::probe_concurrency(cfg.pool.max_parallel_probes),
            default_timeout: cfg.pool.probe_timeout,
        });
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let now = nexus_stdx::now_epoch();
        let shared = Arc::new(RwLock::new(PoolSnapshot {
            started_at: now,
            poll_interval_seconds: cfg.pool.poll_interval.as_secs_f64(),
            ..PoolSnapshot::default()
        }));
        let history = if opts.dry_run {
            None
        } else {
            start_history(&cfg, &opts.state_file)
        };
        let mut pool = Pool {
            settings: cfg.settings(),
            cfg: Arc::new(cfg),
            runner,
            store,
            state_file: opts.state_file,
            dry_run: opts.dry_run,
            children: HashMap::new(),
            exited: HashMap::new(),
            exits_tx,
            exits_rx,
            state,
            incidents,
            telegram,
            nostr,
            dirty: false,
            urgent: false,
            sweeping: false,
            events: HashMap::new(),
            shared,
            started_at: now,
            sweeps: 0,
            faults: crate::faults::Faults::default(),
            unwritten: VecDeque::new(),
            unwritten_dropped: 0,
            clock: crate::clock::Clock::system(),
            future_beats: crate::clock::FutureBeats::default(),
            index: HashMap::new(),
            targets: Targets::default(),
            timers: crate::engine::Timers::default(),
            pidfds: HashMap::new(),
            terminating: HashMap::new(),
            recovered: None,
            unsaved: false,
            sighting: Sighting::default(),
            waits_logged: HashMap::new(),
            watcher: None,
            evented: false,
            unwatched_logged: None,
            survey_warned: Vec::new(),
            saved_at: Instant::now(),
            history,
            names: Default::default(),
            inbox: None,
            commands: Default::default(),
            alert_inbox: None,
        };
        pool.readopt_launches();
        pool.recall_asked();
        Ok(pool)
    }

    /// The snapshot the HTTP server reads.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Replaces the pool's clock (simulations and clock-jump tests; the
    /// default is [`crate::clock::Clock::system`]).
    pub fn set_clock(&mut self, clock: crate::clock::Clock) {
        self.clock = clock;
    }

    /// Heartbeats stamped in the future are judged by progress (see
    /// [`crate::clock`]), not by their stamp.
    fn judge_future_beat(&mut self, t: &Target, s: &mut Seen) {
        let future = s
            .heartbeat_age
            .is_some_and(|a| a < -crate::clock::FUTURE_SLACK);
        if !future {
            self.future_beats.forget(&t.key);
            return;
        }
        // Cell agents' targets carry no path (the survey read the file):
        // find it, rarely, for the few stamped in the future.
        let (path, threshold) = match (&t.gateway, t.cell_agent(), &self.store, &self.cfg.cells) {
            (Some(g), ..) => (g.heartbeat.clone(), g.stale_threshold),
            (None, Some((cell, agent)), Some(store), Some(cells)) => (
                store
                    .open(&cell)
                    .map(|c| c.heartbeat_path(&agent))
                    .unwrap_or_default(),
                cells.heartbeat_stale_threshold,
            ),
            _ => return,
        };
        let version = crate::clock::Version::of(&path);
        let judged = self
            .future_beats
            .judge(&t.key, version, threshold, Instant::now());
        s.probe.heartbeat = judged;
        tracing::debug!(
            "[{}] heartbeat stamped {:.0}s in the future (clock skew): judged {judged:?} by whether it still changes",
            t.key,
            -s.heartbeat_age.unwrap_or(0.0)
        );
    }

    /// Records how a write of `kind` went (`state`, `events`, `cell-state`,
    /// `heartbeat`); a fault shows on `/health` and `/metrics` at once.
    pub fn fault_result<E: std::fmt::Display>(
        &mut self,
        kind: &'static str,
        result: Result<(), E>,
    ) {
        if self.faults.record(kind, result) {
            let lines = self.faults.lines();
            crate::http::snapshot_mut(&self.shared).faults = lines;
        }
    }

    /// Logs what the survey could not read (a cell skipped, an unknown
    /// policy) when it is new: a cell that stays unreadable is one WARN,
    /// not one per sweep (the snapshot shows it meanwhile); it is logged
    /// again if it comes back after a sweep without it.
    fn log_survey_warnings(&mut self, warnings: Vec<String>) {
        for w in warnings.iter().filter(|w| !self.survey_warned.contains(*w)) {
            tracing::warn!("{w}");
        }
        self.survey_warned = warnings;
    }

    /// The persisted records (for `--status` and tests).
    pub fn state(&self) -> &PoolState {
        &self.state
    }

    /// Saves the pool state (not in a dry run); a failure is a write fault.
    fn save_state(&mut self) {
        if self.dry_run {
            return;
        }
        self.unsaved = false;
        self.saved_at = Instant::now();
        let saved = crate::files::off_runtime(|| self.state.save(&self.state_file));
        if let Err(e) = &saved {
            tracing::error!("pool state not saved: {e}");
        }
        self.fault_result("state", saved);
    }

    fn note(&mut self, key: &str, text: String) {
        self.note_at(tracing::Level::INFO, key, text);
    }

    /// Logs `text` about `key` at `level` (a death WARN, an escalation
    /// ERROR) and keeps it for the status page.
    fn note_at(&mut self, level: tracing::Level, key: &str, text: String) {
        match level {
            tracing::Level::ERROR => tracing::error!("[{key}] {text}"),
            tracing::Level::WARN => tracing::warn!("[{key}] {text}"),
            tracing::Level::INFO => tracing::info!("[{key}] {text}"),
            _ => tracing::debug!("[{key}] {text}"),
        }
        let q = self.events.entry(key.to_string()).or_default();
        q.push_front(crate::view::Note::now(text));
        q.truncate(EVENTS_KEPT);
    }

    /// One sweep over the whole fleet; the snapshot's `agents` hold every
    /// agent's view afterwards.
    pub async fn sweep(&mut self) -> SweepReport {
        self.sweep_inner(None).await
    }

    /// [`Pool::sweep`] handing each agent's view to `each` as the agent is
    /// stepped, instead of keeping them in the snapshot (whose `agents` stay
    /// empty): `--once` prints 10,000 agents without holding 10,000 views.
    pub async fn sweep_each(&mut self, each: &mut (dyn FnMut(AgentView) + Send)) -> SweepReport {
        self.sweep_inner(Some(each)).await
    }

    async fn sweep_inner(
        &mut self,
        mut each: Option<&mut (dyn FnMut(AgentView) + Send)>,
    ) -> SweepReport {
        let started = Instant::now();
        let now = self.clock.now();
        self.sweeping = true;
        // The last sweep's targets go before this one's are read (no step
        // between sweeps runs meanwhile); the tables keep their capacity.
        self.index.clear();
        self.targets = Targets::default();
        // What Gitea and Telegram did since the last sweep (answers to
        // approval requests included): they run beside the sweep, never in it.
        self.take_events();
        if !self.unwritten.is_empty() {
            self.write_events();
        }
        // The probes (network waits, one /proc scan) run on this thread
        // while the survey reads every cell and heartbeat on others. With
        // nothing to probe (a fleet of cells only), this thread surveys too.
        let plan = ProbePlan::new(&self.cfg, &self.children, self.cfg.pool.probe_timeout);
        // The survey shares the keys and names the pool holds (a safety
        // sweep of an unchanged fleet allocates none of them again).
        let (mut probed, surveyed) = if plan.is_empty() {
            let known = Known {
                records: &self.state.records,
                names: &self.names,
            };
            let surveyed = targets(&self.cfg, self.store.as_ref(), known);
            (crate::fleet::Probed::default(), Ok(surveyed))
        } else {
            // Lent to the survey's thread (nothing else reads them until it
            // is done), then taken back.
            let lent = Arc::new((
                std::mem::take(&mut self.state.records),
                std::mem::take(&mut self.names),
            ));
            let (cfg, store, known) = (self.cfg.clone(), self.store.clone(), lent.clone());
            let survey = tokio::task::spawn_blocking(move || {
                let (records, names) = &*known;
                targets(&cfg, store.as_ref(), Known { records, names })
            });
            let done = tokio::join!(plan.run(&self.runner), survey);
            (self.state.records, self.names) = Arc::unwrap_or_clone(lent);
            done
        };
        let (mut fleet, warnings) = match surveyed {
            Ok(surveyed) => surveyed,
            // A bug in the survey: fail as loudly as it would have inline.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: no sweep, and no record dropped.
            Err(e) => {
                tracing::warn!("the survey did not finish: {e}");
                self.sweeping = false;
                return SweepReport::default();
            }
        };
        self.log_survey_warnings(warnings);
        pause("sweep-probed").await;
        self.restore_retired(&fleet, now);
        self.state.records.add(fleet.iter().map(|t| &t.key));
        self.state.records.unmark_all();
        let mut views = ViewSink::new(fleet.len());
        let unreadable = std::mem::take(&mut fleet.unreadable);
        let mut report = SweepReport {
            agents: fleet.len(),
            read: fleet.gateways() + fleet.cells_read,
            ..SweepReport::default()
        };
        let mut cell_states = Ok(());
        // Part by part (gateways, then a cell at a time), each dropped once
        // stepped: the fleet shrinks while the records and views grow.
        // The daemon's event engine steps agents between sweeps: it keeps
        // each one's target and where its view sits (`--once` does not).
        let indexed = each.is_none();
        for part in fleet.into_parts() {
            let first = views.len();
            // The daemon keeps its names for the next sweep's survey.
            for t in part.iter().filter(|_| indexed) {
                if !self.names.contains(&*t.name) {
                    self.names.insert(t.name.clone());
                }
            }
            let mut batch = Vec::with_capacity(if indexed { part.len() } else { 0 });
            for t in &part {
                let view = self.step_agent(t, probed.take(t), now, &mut report).await;
                match each.as_mut() {
                    Some(f) => f(view),
                    None => batch.push(view),
                }
            }
            views.put(&self.shared, batch);
            if !self.dry_run
                && let Err(e) = self.write_cell_state(&part, now)
            {
                cell_states = Err(e);
            }
            // Kept whole for the event engine (the part would be dropped).
            if indexed {
                let start = self.targets.len();
                for (i, t) in part.iter().enumerate() {
                    if !t.frozen {
                        let at = ((start + i) as u32, (first + i) as u32);
                        self.index.insert(t.key.clone(), at);
                    }
                }
                self.targets.push(part);
            }
        }
        // The sweep's observations and messages go to their channels, and
        // a tick delivers the incidents held back by the issue rate limit
        // (or queued while Gitea was down) as far as the limit allows, even
        // when no agent needed the engine this sweep.
        self.dispatch(true);
        // The agents of cells that cannot be read keep their records, and
        // are shown; the records of agents that left are retired.
        let unseen = self.settle_unseen(&unreadable, now);
        report.agents += unseen.views.len();
        report.unhealthy += unseen.views.len();
        match each.as_mut() {
            Some(f) => unseen.views.into_iter().for_each(f),
            None => views.put(&self.shared, unseen.views),
        }
        report.unreadable = unseen.cells;
        let records = &self.state.records;
        self.state.launched.retain(|k, _| records.contains_key(k));
        self.state.waiting.retain(|k, _| records.contains_key(k));
        self.state
            .acknowledged
            .retain(|k, _| records.contains_key(k));
        self.state.reasons.retain(|k, _| records.contains_key(k));
        self.waits_logged.retain(|k, _| records.contains_key(k));
        self.names.retain(|n| Arc::strong_count(n) > 1);
        // Answers to requests no longer waiting are moot.
        let requests = &self.state.requests;
        self.state
            .answers
            .retain(|id, _| requests.values().any(|r| r == id));
        if !self.dry_run {
            (self.dirty, self.urgent) = (false, false);
            self.save_state();
            self.fault_result("cell-state", cell_states);
        }
        self.sweeps += 1;
        self.sweeping = false;
        report.seconds = started.elapsed().as_secs_f64();
        let (faults, channels) = (self.faults.lines(), self.channel_views());
        let mut g = crate::http::snapshot_mut(&self.shared);
        g.started_at = self.started_at;
        g.sweeps = self.sweeps;
        g.last_sweep_at = nexus_stdx::now_epoch();
        g.last_sweep_seconds = report.seconds;
        g.poll_interval_seconds = self.cfg.pool.poll_interval.as_secs_f64();
        g.faults = faults;
        g.channels = channels;
        g.history = self.history.as_ref().map(|h| crate::view::HistoryCounts {
            written: h.written(),
            unchanged: h.unchanged(),
            dropped: h.dropped(),
            failed: h.failed(),
            pruned: h.pruned(),
        });
        g.unreadable_cells = report.unreadable.clone();
        views.finish(&mut g);
        drop(g);
        if indexed {
            self.sync_watches();
        }
        report
    }

    /// Steps one agent's state machine on what the sweep saw of it, carries
    /// out the actions and counts it in `report`; its view.
    async fn step_agent(
        &mut self,
        t: &Target,
        mut seen: Seen,
        now: f64,
        report: &mut SweepReport,
    ) -> AgentView {
        self.judge_future_beat(t, &mut seen);
        let s = &seen;
        if let Some((pid, exit_at)) = self.exited.get(&*t.key).copied()
            && s.probe.heartbeat == nexus_revive::Heartbeat::Fresh
            && s.heartbeat_age.is_some_and(|age| now - age > exit_at)
        {
            // A beat written after the exit: someone else restarted it (or
            // the launch command daemonized): believe the new heartbeat,
            // unless it names no other running process (a straggling
            // writer of the dead one).
            match s.heartbeat_pid {
                Some(p) if !launcher::another_run(p, pid) => tracing::debug!(
                    "[{}] a beat after PID {pid} exited names PID {p}, not another run of it: not believed",
                    t.key
                ),
                _ => {
                    self.exited.remove(&*t.key);
                }
            }
        }
        // Taken out while its actions run (they need `&mut self`), put
        // back in place: no key is re-allocated, no entry moved.
        let (at, mut rec, last) = self.state.records.take(&t.key).unwrap_or_default();
        if t.frozen {
            let health = self.judge(t, s, Some(&rec), now);
            let shown = match health {
                Health::Healthy => State::Healthy,
                Health::Dead | Health::Gone | Health::Hung | Health::NotRunning => State::Dead,
                Health::Degraded | Health::ProcessGone => State::Degraded,
                Health::Unknown => State::Unknown,
            };
            let why = Why::of(health, t.beat.state, &s.probe);
            let sighting = Sighting::new(now, shown, why, &s.probe, s.heartbeat_age).frozen();
            self.bad_heartbeat(t);
            self.log_frozen(t, last, sighting);
            if shown != State::Healthy {
                report.unhealthy += 1;
            }
            self.timers.clear(&t.key);
            // The record is the state machine's, and a frozen cell's agent
            // is never stepped: it is kept as it was, and the state the
            // check found is shown (and saved) beside it.
            let mut rec_shown = rec.clone();
            rec_shown.state = shown;
            let view = self.view(t, s, &rec_shown, now, Some(sighting));
            self.state.records.put(at, &t.key, rec, sighting);
            return view;
        }
        let approval = match self.state.requests.get(&*t.key) {
            Some(id) if !self.state.answers.is_empty() => self.state.answers.remove(id),
            _ => None,
        };
        let before = rec.state;
        let health = self.judge(t, s, Some(&rec), now);
        let why = Why::of(health, t.beat.state, &s.probe);
        self.bad_heartbeat(t);
        // What the check saw, for the words of the actions' log lines (the
        // state is the one the step leaves).
        self.sighting = Sighting::new(now, before, why, &s.probe, s.heartbeat_age);
        let mut actions = step(&mut rec, health, t.policy, now, approval, &self.settings);
        if !self.commands.is_empty() {
            self.human_command(t, &mut rec, &mut actions, now);
        }
        let asked = actions
            .iter()
            .any(|a| matches!(a, Action::RequestApproval { .. }));
        let acted = !actions.is_empty();
        self.recovered = None;
        self.carry_out(t, s, &mut rec, actions, now).await;
        self.unsaved |= acted;
        // A request that never reached a channel (Telegram down, flood
        // control, no relay accepting) is sent again at each sweep while
        // it waits, so the human sees it before `ask_default` decides.
        if let Some(p) = rec.pending
            && !asked
            && !self.dry_run
            && self.request_missing(&t.key, &request_id(&t.key, &rec, now))
        {
            self.request_approval(t, s, &mut rec, p.deadline, now);
        } else if rec.pending.is_none() && self.state.requests.contains_key(&*t.key) {
            // Answered, expired or over: nothing to poll for any more.
            self.state.requests.remove(&*t.key);
            self.forget_request(&t.key);
        }
        self.sync_incident(t, s, &rec, before);
        if rec.state != State::Healthy {
            report.unhealthy += 1;
        } else if !self.state.acknowledged.is_empty() {
            // The episode is over, and its acknowledgement with it.
            self.state.acknowledged.remove(&*t.key);
        }
        if rec.state == State::Healthy && rec.fail_streak > 0 {
            report.confirm_soon = true;
        }
        // Deadlines are the event engine's (the daemon's), not a one-shot's.
        if self.evented {
            self.schedule(t, s, &rec, now);
        }
        self.log_wait(t, &rec, now);
        let mut sighting = self.sighting;
        sighting.state = rec.state;
        if rec.state == State::Reviving {
            sighting.why = sighting.why.launched();
        }
        if rec.state != before
            && let Some(h) = &self.history
        {
            let mut e = nexus_history::Event::now(
                nexus_history::Kind::Agent,
                history_group(t),
                &t.key,
                before.as_str(),
                rec.state.as_str(),
                &format!("{:?}", sighting.why),
            );
            e.at_ms = (now * 1000.0) as i64;
            h.record(e);
        }
        let view = self.view(t, s, &rec, now, Some(sighting));
        self.state.records.put(at, &t.key, rec, sighting);
        view
    }

    /// Logs a heartbeat that cannot be read or parsed once per episode
    /// (WARN, naming the file and field), and keeps its words for the
    /// view and `--status`; a heartbeat read again ends the episode.
    fn bad_heartbeat(&mut self, t: &Target) {
        let why = match t.beat.state {
            nexus_heartbeat::State::Corrupt => Why::HeartbeatCorrupt,
            nexus_heartbeat::State::Unreadable => Why::HeartbeatUnreadable,
            // Missing is no reading either: the episode goes on.
            nexus_heartbeat::State::Missing => return,
            _ => {
                if !self.state.reasons.is_empty() {
                    self.state.reasons.remove(&*t.key);
                }
                return;
            }
        };
        let (file, _) = self.beat_file(t);
        let words = bad_file_reason(why, &file, t.beat.reason.as_deref().unwrap_or("?"));
        match self.state.reasons.get_mut(&*t.key) {
            Some(known) => {
                if *known != words {
                    *known = words;
                }
            }
            None => {
                tracing::warn!("[{}] {words}: treated as no heartbeat", t.key);
                self.state.reasons.insert(t.key.to_string(), words);
                self.unsaved = true;
            }
        }
    }

    /// What the check of `key` saw, in words (`None`: healthy).
    fn reason_of(&self, key: &str, s: Sighting) -> Option<String> {
        let detail = self.state.reasons.get(key).map(String::as_str);
        s.reason(detail.filter(|_| s.why.is_bad_file()))
    }

    /// A frozen cell's agent is never stepped: what its checks find is
    /// logged when it changes (a death WARN, a recovery INFO), once.
    fn log_frozen(&mut self, t: &Target, last: Sighting, now: Sighting) {
        if last.is_frozen() && last.state == now.state {
            return;
        }
        let first = !last.is_frozen() && !last.checked();
        match now.state {
            State::Healthy if first || last.state == State::Healthy => {}
            State::Healthy => self.note(&t.key, "frozen cell: healthy again".to_string()),
            State::Unknown => {}
            state => {
                let why = self.reason_of(&t.key, now).unwrap_or_default();
                self.note_at(
                    tracing::Level::WARN,
                    &t.key,
                    format!("{}: {why}", state.as_str()),
                );
            }
        }
    }

    /// The agent's health for its state machine: what the probes and its
    /// heartbeat say ([`assess`]), sharpened by what the pool knows of the
    /// agent's process (see [`Health`]): its own child exited (`Gone`) or
    /// alive with a stale heartbeat (`Hung`), a process `/proc` no longer
    /// shows (`ProcessGone`), nothing running at all (`NotRunning`).
    fn judge(&self, t: &Target, s: &Seen, rec: Option<&AgentRecord>, now: f64) -> Health {
        use nexus_revive::Heartbeat;
        let mut probe = s.probe;
        let state = rec.map_or(State::Unknown, |r| r.state);
        if state == State::Reviving
            && probe.heartbeat == Heartbeat::Fresh
            && let (Some(r), Some(age)) = (rec, s.heartbeat_age)
            && r.last_launch.is_some_and(|launch| now - age < launch)
        {
            // The dead process's last beat: the new one has not beaten yet.
            probe.heartbeat = Heartbeat::Stale;
        }
        let mut health = assess(&probe, self.cfg.pool.dead_rule);
        // /proc says the process is gone: no need to confirm that.
        if health == Health::Degraded
            && probe.process == Some(false)
            && probe.heartbeat == Heartbeat::Fresh
        {
            health = Health::ProcessGone;
        }
        // Our own child died: no need to wait for its heartbeat to age.
        if self.exited.contains_key(&*t.key) {
            return Health::Gone;
        }
        let own = self.children.contains_key(&*t.key);
        if health == Health::Dead && own && probe.heartbeat != Heartbeat::Unknown {
            return Health::Hung;
        }
        if health == Health::Dead
            && state == State::Unknown
            && !own
            && probe.gateway != Some(true)
            && probe.process != Some(true)
            && t.gateway
                .as_ref()
                .is_none_or(|g| crate::fleet::is_local(&g.host))
            && s.heartbeat_pid
                .is_none_or(|p| !launcher::may_be_an_agent(p))
        {
            return Health::NotRunning;
        }
        health
    }

    /// The staleness threshold of `t`'s heartbeat, seconds.
    fn stale_threshold(&self, t: &Target) -> f64 {
        match (&t.gateway, &self.cfg.cells) {
            (Some(g), _) => g.stale_threshold.as_secs_f64(),
            (None, Some(c)) => c.heartbeat_stale_threshold.as_secs_f64(),
            (None, None) => self.cfg.pool.dead_threshold.as_secs_f64(),
        }
    }

    /// Sets `t`'s deadline: the earliest of its heartbeat going stale, the
    /// time its state machine named, and a hung process's SIGKILL.
    fn schedule(&mut self, t: &Target, s: &Seen, rec: &AgentRecord, now: f64) {
        let mut due = nexus_revive::next_due(rec, t.policy, now, &self.settings);
        let mut at = |d: f64| due = Some(due.map_or(d, |x: f64| x.min(d)));
        if s.probe.heartbeat == nexus_revive::Heartbeat::Fresh
            && let Some(age) = s.heartbeat_age
        {
            // Just past the threshold, so the step then sees it stale.
            at(now - age.max(0.0) + self.stale_threshold(t) + STALE_SLACK);
        }
        let mono = Instant::now();
        if let Some((_, kill)) = self.terminating.get(&*t.key) {
            at(now + kill.saturating_duration_since(mono).as_secs_f64());
        }
        match due {
            Some(d) => {
                let wait = Duration::from_secs_f64((d - now).clamp(0.0, 1e9));
                self.timers.set(&t.key, mono + wait);
            }
            None => self.timers.clear(&t.key),
        }
    }

    /// What `t` waits for, in words; the hung process being stopped first.
    fn wait_text(&self, t: &Target, rec: &AgentRecord, now: f64) -> Option<String> {
        let clock = |at: f64| crate::http::clock(at);
        if let Some((pid, kill)) = self.terminating.get(&*t.key) {
            let left = kill.saturating_duration_since(Instant::now()).as_secs_f64();
            return Some(format!(
                "hung: SIGTERM sent to PID {pid}, SIGKILL at {}",
                clock(now + left)
            ));
        }
        nexus_revive::wait(rec, t.policy, now, &self.settings).map(|w| w.describe(now, &clock))
    }

    /// The target of `key` and its view's place, if the last sweep saw it.
    fn indexed(&self, key: &str) -> Option<(&Target, usize)> {
        let (t, v) = self.index.get(key)?;
        Some((self.targets.get(*t as usize)?, *v as usize))
    }

    /// Logs what `t` waits for when that changes (once per kind of wait).
    fn log_wait(&mut self, t: &Target, rec: &AgentRecord, now: f64) {
        match self.wait_text(t, rec, now) {
            None => {
                self.waits_logged.remove(&*t.key);
                self.state.waiting.remove(&*t.key);
            }
            Some(text) => {
                let kind: String = text.split([':', ' ']).next().unwrap_or("").to_string();
                let seen = self.waits_logged.get(&*t.key);
                if seen != Some(&kind) {
                    tracing::info!("[{}] waiting: {text}", t.key);
                    self.waits_logged.insert(t.key.clone(), kind);
                }
                self.state.waiting.insert(t.key.to_string(), text);
            }
        }
    }

    fn view(
        &self,
        t: &Target,
        s: &Seen,
        rec: &AgentRecord,
        now: f64,
        sighting: Option<Sighting>,
    ) -> AgentView {
        let frozen = sighting.is_some_and(|s| s.is_frozen());
        let mut last_events: Vec<crate::view::Note> = self
            .events
            .get(&*t.key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default();
        if frozen {
            last_events.insert(
                0,
                crate::view::Note::now("cell is frozen: reported, never revived"),
            );
        }
        let reason = sighting
            .filter(|s| s.state != State::Healthy)
            .and_then(|s| self.reason_of(&t.key, s))
            .map(Box::new);
        AgentView {
            name: t.name.clone(),
            cell: t.cell_label.clone(),
            mission: t.mission.clone(),
            policy: t.policy,
            state: rec.state,
            gateway_alive: s.probe.gateway,
            process_alive: s.probe.process,
            heartbeat_age: s.heartbeat_age,
            revive_attempts: rec.attempts.len() as u32,
            last_checked: now,
            first_dead_at: rec.dead_since,
            revive_pending: rec.pending.is_some(),
            acknowledged_by: self
                .state
                .acknowledged
                .get(&*t.key)
                .map(|b| Box::from(b.as_str())),
            waiting: if frozen {
                None
            } else {
                self.state
                    .waiting
                    .get(&*t.key)
                    .map(|w| Box::from(w.as_str()))
            },
            reason,
            last_events: last_events.into_boxed_slice(),
        }
    }

    async fn carry_out(
        &mut self,
        t: &Target,
        s: &Seen,
        rec: &mut AgentRecord,
        actions: Vec<Action>,
        now: f64,
    ) {
        let mut queue: VecDeque<Action> = actions.into();
        let mut budget = 32; // bounded: actions never loop forever
        while let Some(a) = queue.pop_front() {
            budget -= 1;
            if budget == 0 {
                break;
            }
            // An escalation's incident says what its escalation says: one
            // ERROR line for one event.
            let level = logs::level(&a, queue.iter(), logs::needs_human(rec, t.policy));
            match a {
                // A new agent found healthy is not news (10,000 of them on a
                // first sweep would drown the log): the snapshot shows it.
                Action::Transition {
                    from: State::Unknown,
                    to: State::Healthy,
                } => {}
                Action::Transition { from, to } => {
                    let mut text = format!("{from:?} → {to:?}").to_lowercase();
                    if matches!(to, State::Dead | State::Degraded)
                        && let Some(why) = self.reason_of(&t.key, self.sighting)
                    {
                        text = format!("{text}: {why}");
                    }
                    self.note_at(level, &t.key, text);
                    self.cell_event(t, s, to);
                }
                Action::OpenIncident { reason } | Action::Comment { text: reason } => {
                    self.note_at(level, &t.key, reason);
                }
                Action::Recovered {
                    revived,
                    attempt,
                    down_seconds,
                    incident,
                } => {
                    let how = if revived {
                        format!("revived and healthy (attempt {attempt})")
                    } else {
                        "recovered by itself".to_string()
                    };
                    self.note(&t.key, format!("{how} after {down_seconds:.1}s down"));
                    if let Some((cell, agent)) = t.cell_agent()
                        && !self.dry_run
                    {
                        self.cell_append(
                            cell,
                            EventKind::AgentRecovered {
                                agent,
                                down_seconds,
                            },
                        );
                    }
                    self.recovered = Some((how, incident));
                }
                Action::RequestApproval { deadline } => {
                    self.request_approval(t, s, rec, deadline, now);
                }
                Action::Launch {
                    attempt,
                    slow_lane,
                    first_start,
                } => {
                    let how = launcher::How {
                        attempt,
                        slow_lane,
                        first_start,
                    };
                    // `None`: a hung process is being stopped first; the
                    // launch follows its exit.
                    if let Some(outcome) = self.launch(t, s, rec, how, now).await {
                        queue.extend(launched(rec, now, outcome, &self.settings));
                    }
                }
                Action::Escalate { reason } => {
                    self.note_at(level, &t.key, format!("escalated: {reason}"));
                    if let Some((cell, agent)) = t.cell_agent()
                        && !self.dry_run
                    {
                        self.cell_append(
                            cell,
                            EventKind::ReviveEscalated {
                                agent,
                                reason: Some(reason.clone()),
                            },
                        );
                    }
                    self.send_telegram(&format!(
                        "🚨 Resurrection pool: {} needs a human: {reason}",
                        t.name
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
