//! One pool: sweeps the fleet, steps each agent's state machine, carries out
//! the actions (launches, incidents, approvals, events) and publishes the
//! snapshot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nexus_cell::{AgentHealth, CellId, CellStore, DaemonState, Event, EventKind};
use nexus_gitea::Check;
use nexus_notify::{ApprovalConfig, Approvals, Text};
use nexus_probe::{ProbeKind, ProbeSpec, Runner, RunnerConfig, Status};
use nexus_revive::{
    Action, AgentRecord, Approval, Health, LaunchOutcome, Settings, State, assess, launched, step,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::Error;
use crate::channels::{GiteaExecutor, Observations, TelegramCommand, TelegramExecutor};
use crate::config::{AskWithoutChannel, PoolConfig};
use crate::fleet::{ProbePlan, ReviveHow, Seen, Target, targets};
use crate::http::Shared;
use crate::intent::{LAUNCH_ENV, LaunchIntent, pause};
use crate::records::Records;
use crate::view::{AgentView, PoolSnapshot};

mod outside;
use outside::{Incidents, Messages};
mod unseen;
pub use unseen::Retired;

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

/// What the pool persists between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolState {
    /// Per-agent records by key.
    pub records: Records,
    /// The approval request id of each agent with one in flight.
    pub requests: BTreeMap<String, String>,
    /// The last launch of each agent, saved before its spawn (see
    /// [`crate::intent`]).
    pub launched: BTreeMap<String, LaunchIntent>,
    /// Telegram messages not delivered yet (flood control, Telegram
    /// unreachable), oldest first: retried at every sweep, across restarts.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    pub unsent: VecDeque<Unsent>,
    /// Observations for Gitea the incident engine has not taken yet (Gitea
    /// not answering, or the pool stopped first): sent again, in order.
    #[serde(skip_serializing_if = "Observations::is_empty")]
    pub observations: Observations,
    /// Approval answers read from Telegram and not acted on yet, by request
    /// id (`approvals.json` forgets a request once it is answered).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, Approval>,
    /// Records of agents that left the fleet, by key, kept for a while in
    /// case they come back (see `pool::unseen`): leaving and coming back
    /// never resets a restart budget.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub retired: BTreeMap<String, Retired>,
}

/// A Telegram message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsent {
    /// The message.
    pub text: String,
    /// Not before this time (epoch seconds): Telegram's `retry_after`.
    pub not_before: f64,
    /// Which message a channel event is about (this run only).
    #[serde(skip)]
    id: u64,
}

impl PoolState {
    /// Loads the state; a missing file is empty, a bad one (a link, a FIFO,
    /// too big, not the state's JSON) is an [`Error::State`] naming the
    /// file. Never follows a link, never blocks, reads at most
    /// [`crate::files::MAX_STATE_BYTES`].
    pub fn load(path: &Path) -> Result<PoolState, Error> {
        let mut state = PoolState::read(path)?;
        state.replay_journal(path);
        Ok(state)
    }

    /// [`PoolState::load`] for a pool starting up: a bad state file is
    /// logged as an error, set aside as `<name>.corrupt-<UTC time>` (unless
    /// `dry_run`: then it is left alone) and the pool starts with an empty
    /// state. Only an I/O error (no descriptor, no permission) is returned.
    pub fn load_or_reset(path: &Path, dry_run: bool) -> Result<PoolState, Error> {
        let mut state = match PoolState::read(path) {
            Err(e @ Error::State { .. }) => {
                let aside = if dry_run {
                    "left in place (dry run)".to_string()
                } else {
                    match crate::files::set_aside(path) {
                        Ok(p) => format!("set aside as {}", p.display()),
                        Err(e) => format!("cannot be set aside: {e}"),
                    }
                };
                tracing::error!("{e}; {aside}; starting with an empty state");
                PoolState::default()
            }
            other => other?,
        };
        state.replay_journal(path);
        Ok(state)
    }

    fn read(path: &Path) -> Result<PoolState, Error> {
        let bad = |reason| Error::State {
            path: path.to_path_buf(),
            reason,
        };
        let found =
            crate::files::read_own(path, crate::files::MAX_STATE_BYTES).map_err(|source| {
                Error::Io {
                    op: "read state",
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        match found {
            crate::files::Found::Missing => Ok(PoolState::default()),
            crate::files::Found::Bad(why) => Err(bad(why)),
            crate::files::Found::Bytes(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("not the pool's state: {e}"))),
        }
    }

    /// Launches recorded since the last save (see [`crate::intent`]).
    fn replay_journal(&mut self, path: &Path) {
        for e in crate::intent::journal_read(&crate::intent::journal_path(path)) {
            self.records.insert(e.key.as_str(), e.record);
            self.launched.insert(e.key, e.intent);
        }
    }

    #[cfg(test)]
    pub(crate) fn save_for_tests(&self, path: &Path) {
        self.save(path).unwrap();
    }

    fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Io {
            op: "serialise state",
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        nexus_heartbeat::write_private(path, &bytes, true)?;
        // The state now holds every journaled launch.
        let journal = crate::intent::journal_path(path);
        match std::fs::remove_file(&journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("cannot remove {}: {e}", journal.display());
            }
            _ => {}
        }
        Ok(())
    }
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
    /// The time asked for came.
    Timer,
    /// A process the pool launched exited (its agent's key).
    Exit(String),
    /// Answers to approval requests arrived.
    Answers,
}

/// The resurrection pool.
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
    exited: HashMap<String, u32>,
    exits_tx: mpsc::UnboundedSender<(String, u32)>,
    exits_rx: mpsc::UnboundedReceiver<(String, u32)>,
    incidents: Option<Incidents>,
    telegram: Option<Messages>,
    /// A channel event changed what the state file holds (saved by the
    /// next sweep) / changed a message or an answer (saved at once).
    dirty: bool,
    urgent: bool,
    /// A sweep is under way (its records are half stepped: never saved
    /// from outside it, e.g. by a stop that cut it).
    sweeping: bool,
    events: HashMap<String, VecDeque<String>>,
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
        let incidents = cfg
            .incident
            .as_ref()
            .filter(|i| i.token().is_some() || opts.dry_run)
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
        let runner = Runner::new(RunnerConfig {
            concurrency: crate::fleet::probe_concurrency(cfg.pool.max_parallel_probes),
            default_timeout: cfg.pool.probe_timeout,
        });
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let now = nexus_heartbeat::now_epoch();
        let shared = Arc::new(RwLock::new(PoolSnapshot {
            started_at: now,
            poll_interval_seconds: cfg.pool.poll_interval.as_secs_f64(),
            ..PoolSnapshot::default()
        }));
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
        };
        pool.readopt_launches();
        Ok(pool)
    }

    /// After a restart (a crash included): finds the processes of persisted
    /// launch intents and tracks them again as the pool's own, so a launch
    /// in flight is neither repeated nor lost from sight.
    fn readopt_launches(&mut self) {
        let alive = crate::intent::find_all_launched(self.state.launched.values());
        let mut gone = Vec::new();
        for (key, intent) in &mut self.state.launched {
            match alive.get(&intent.id).copied() {
                Some(pid) => {
                    intent.pid = Some(pid);
                    self.children.insert(key.clone(), pid);
                    tracing::info!("[{key}] re-adopted launched process {pid} after a restart");
                }
                None => gone.push(key.clone()),
            }
        }
        for key in gone {
            self.state.launched.remove(&key);
        }
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
    pub fn fault_result(&mut self, kind: &'static str, result: Result<(), String>) {
        if self.faults.record(kind, result) {
            let lines = self.faults.lines();
            match self.shared.write() {
                Ok(mut g) => g.faults = lines,
                Err(p) => p.into_inner().faults = lines,
            }
        }
    }

    /// PIDs of the live processes the pool launched.
    pub fn launched_pids(&self) -> Vec<u32> {
        self.children.values().copied().collect()
    }

    /// The persisted records (for `--status` and tests).
    pub fn state(&self) -> &PoolState {
        &self.state
    }

    /// Waits until a child the pool launched exits; returns its key.
    pub async fn next_exit(&mut self) -> Option<String> {
        let (key, pid) = self.exits_rx.recv().await?;
        self.child_exited(&key, pid);
        Some(key)
    }

    fn child_exited(&mut self, key: &str, pid: u32) {
        let key = key.to_string();
        if self.children.get(&key) == Some(&pid) {
            self.children.remove(&key);
            self.exited.insert(key.clone(), pid);
            // Nothing left to re-adopt after a restart.
            if self
                .state
                .launched
                .get(&key)
                .is_some_and(|i| i.pid == Some(pid))
            {
                self.state.launched.remove(&key);
            }
        }
        self.note(&key, format!("launched process {pid} exited"));
    }

    /// Saves the pool state (not in a dry run); a failure is a write fault.
    fn save_state(&mut self) {
        if self.dry_run {
            return;
        }
        let saved = self.state.save(&self.state_file);
        if let Err(e) = &saved {
            tracing::error!("pool state not saved: {e}");
        }
        self.fault_result("state", saved.map_err(|e| e.to_string()));
    }

    fn note(&mut self, key: &str, text: String) {
        tracing::info!("[{key}] {text}");
        let q = self.events.entry(key.to_string()).or_default();
        let stamp = crate::http::clock(nexus_heartbeat::now_epoch());
        q.push_front(format!("{stamp} {text}"));
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
        let (mut probed, surveyed) = if plan.is_empty() {
            let surveyed = targets(&self.cfg, self.store.as_ref());
            (crate::fleet::Probed::default(), Ok(surveyed))
        } else {
            let (cfg, store) = (self.cfg.clone(), self.store.clone());
            let survey = tokio::task::spawn_blocking(move || targets(&cfg, store.as_ref()));
            tokio::join!(plan.run(&self.runner), survey)
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
        for w in warnings {
            tracing::warn!("{w}");
        }
        pause("sweep-probed").await;
        self.restore_retired(&fleet, now);
        self.state.records.add(fleet.iter().map(|t| &t.key));
        self.state.records.unmark_all();
        let mut views = Vec::with_capacity(if each.is_some() { 0 } else { fleet.len() });
        let unreadable = std::mem::take(&mut fleet.unreadable);
        let mut report = SweepReport {
            agents: fleet.len(),
            read: fleet.gateways() + fleet.cells_read,
            ..SweepReport::default()
        };
        let mut cell_states = Ok(());
        // Part by part (gateways, then a cell at a time), each dropped once
        // stepped: the fleet shrinks while the records and views grow.
        for part in fleet.into_parts() {
            for t in &part {
                let view = self.step_agent(t, probed.take(t), now, &mut report).await;
                match each.as_mut() {
                    Some(f) => f(view),
                    None => views.push(view),
                }
            }
            if !self.dry_run
                && let Err(e) = self.write_cell_state(&part, now)
            {
                cell_states = Err(e);
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
        for view in unseen.views {
            match each.as_mut() {
                Some(f) => f(view),
                None => views.push(view),
            }
        }
        report.unreadable = unseen.cells;
        let records = &self.state.records;
        self.state.launched.retain(|k, _| records.contains_key(k));
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
        let snapshot = PoolSnapshot {
            started_at: self.started_at,
            sweeps: self.sweeps,
            last_sweep_at: nexus_heartbeat::now_epoch(),
            last_sweep_seconds: report.seconds,
            poll_interval_seconds: self.cfg.pool.poll_interval.as_secs_f64(),
            agents: views,
            faults: self.faults.lines(),
            channels: self.channel_views(),
            unreadable_cells: report.unreadable.clone(),
        };
        match self.shared.write() {
            Ok(mut g) => *g = snapshot,
            Err(p) => *p.into_inner() = snapshot,
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
        let mut health = assess(&s.probe, self.cfg.pool.dead_rule);
        // Our own child died: no need to wait for its heartbeat to age.
        // /proc says the process is gone: no need to confirm that.
        if health == Health::Degraded
            && s.probe.process == Some(false)
            && s.probe.heartbeat == nexus_revive::Heartbeat::Fresh
        {
            health = Health::ProcessGone;
        }
        if let Some(dead) = self.exited.get(&*t.key).copied() {
            match s.heartbeat_pid {
                // Someone else restarted it: believe the new heartbeat.
                Some(p) if p != dead && s.probe.heartbeat == nexus_revive::Heartbeat::Fresh => {
                    self.exited.remove(&*t.key);
                }
                _ => health = Health::Gone,
            }
        }
        if t.frozen {
            self.state.records.mark(&t.key);
            let mut rec = self.state.records.get(&t.key).cloned().unwrap_or_default();
            rec.state = match health {
                Health::Healthy => State::Healthy,
                Health::Dead | Health::Gone => State::Dead,
                Health::Degraded | Health::ProcessGone => State::Degraded,
                Health::Unknown => State::Unknown,
            };
            if rec.state != State::Healthy {
                report.unhealthy += 1;
            }
            return self.view(t, s, &rec, now, true);
        }
        let approval = match self.state.requests.get(&*t.key) {
            Some(id) if !self.state.answers.is_empty() => self.state.answers.remove(id),
            _ => None,
        };
        // Taken out while its actions run (they need `&mut self`), put
        // back in place: no key is re-allocated, no entry moved.
        let (at, mut rec) = self.state.records.take(&t.key).unwrap_or_default();
        let before = rec.state;
        let actions = step(&mut rec, health, t.policy, now, approval, &self.settings);
        let asked = actions
            .iter()
            .any(|a| matches!(a, Action::RequestApproval { .. }));
        self.carry_out(t, s, &mut rec, actions, now).await;
        // A request that never reached the chat (Telegram down, flood
        // control) is sent again at each sweep while it waits, so the
        // human sees it before `ask_default` decides.
        if let Some(p) = rec.pending
            && !asked
            && !self.dry_run
            && let Some(m) = &self.telegram
            && !m.asking(&t.key)
            && self.state.requests.get(&*t.key) != Some(&request_id(&t.key, &rec, now))
        {
            self.request_approval(t, s, &mut rec, p.deadline, now);
        } else if rec.pending.is_none() && self.state.requests.contains_key(&*t.key) {
            // Answered, expired or over: nothing to poll for any more.
            self.state.requests.remove(&*t.key);
        }
        self.sync_incident(t, s, &rec, before);
        if rec.state != State::Healthy {
            report.unhealthy += 1;
        }
        if rec.state == State::Healthy && rec.fail_streak > 0 {
            report.confirm_soon = true;
        }
        let view = self.view(t, s, &rec, now, false);
        self.state.records.put(at, &t.key, rec);
        view
    }

    fn view(&self, t: &Target, s: &Seen, rec: &AgentRecord, now: f64, frozen: bool) -> AgentView {
        let mut last_events: Vec<String> = self
            .events
            .get(&*t.key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default();
        if frozen {
            last_events.insert(0, "cell is frozen: reported, never revived".to_string());
        }
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
            last_events,
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
            match a {
                // A new agent found healthy is not news (10,000 of them on a
                // first sweep would drown the log): the snapshot shows it.
                Action::Transition {
                    from: State::Unknown,
                    to: State::Healthy,
                } => {}
                Action::Transition { from, to } => {
                    self.note(&t.key, format!("{from:?} → {to:?}").to_lowercase());
                    self.cell_event(t, s, to, rec, now);
                }
                Action::OpenIncident { reason } | Action::Comment { text: reason } => {
                    self.note(&t.key, reason);
                }
                Action::CloseIncident {
                    revived,
                    down_seconds,
                } => {
                    let how = if revived {
                        "revived and healthy"
                    } else {
                        "recovered (external)"
                    };
                    self.note(&t.key, format!("{how} after {down_seconds:.0}s"));
                }
                Action::RequestApproval { deadline } => {
                    self.request_approval(t, s, rec, deadline, now);
                }
                Action::Launch { attempt, slow_lane } => {
                    let outcome = self.launch(t, s, rec, attempt, slow_lane, now).await;
                    queue.extend(launched(rec, now, outcome, &self.settings));
                }
                Action::Escalate { reason } => {
                    self.note(&t.key, format!("escalated: {reason}"));
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

    /// Asks for an approval through the Telegram channel (queued, not
    /// awaited: the request id is kept once Telegram has it).
    fn request_approval(
        &mut self,
        t: &Target,
        s: &Seen,
        rec: &mut AgentRecord,
        deadline: f64,
        now: f64,
    ) {
        if self.telegram.is_none() {
            match self.cfg.pool.ask_without_channel {
                AskWithoutChannel::Auto => {
                    rec.pending = None;
                    rec.approved = true;
                    self.note(
                        &t.key,
                        "No approval channel available (configure telegram): falling back to auto-revive"
                            .to_string(),
                    );
                    tracing::error!(
                        "[{}] ask policy without an approval channel: reviving without asking",
                        t.key
                    );
                }
                AskWithoutChannel::Never => {
                    rec.pending = None;
                    rec.denied = true;
                    self.note(
                        &t.key,
                        "No approval channel available: death recorded, no revive".to_string(),
                    );
                }
            }
            return;
        };
        if self.dry_run {
            self.note(
                &t.key,
                "[DRY-RUN] would ask for approval on Telegram".to_string(),
            );
            return;
        }
        let id = request_id(&t.key, rec, now);
        let dead_for = rec.dead_since.map_or(0.0, |d| now - d);
        let question = Text::new()
            .text("🔴 Resurrection Pool: agent ")
            .bold(&t.name)
            .text(&format!(" has been dead for {dead_for:.0}s."))
            .line()
            .text("Mission: ")
            .text(t.mission.as_deref().unwrap_or("unassigned"))
            .line()
            .text(&s.lines(t).join("; "))
            .line()
            .text("Approve to revive it, or reply ")
            .code(&format!("revive {}", t.name));
        let ttl = Duration::from_secs_f64((deadline - now).max(1.0));
        let ask = TelegramCommand::Ask {
            key: t.key.to_string(),
            id,
            name: t.name.to_string(),
            question,
            ttl,
        };
        if self.telegram.as_mut().is_some_and(|m| !m.ask(ask)) {
            let why = "approval request not sent: the Telegram queue is full; asking again at the next sweep";
            self.note(&t.key, why.to_string());
        }
    }

    /// Queues `text` for the Telegram chat, behind any message still
    /// waiting; it waits in the pool state until Telegram has it (flood
    /// control, Telegram unreachable or not answering: see
    /// [`crate::channels`]).
    fn send_telegram(&mut self, text: &str) {
        if self.dry_run {
            return;
        }
        if let Some(m) = &mut self.telegram {
            m.queue(&mut self.state.unsent, text);
        }
    }

    /// Pre-flight, stop the hung process, launch, track the child.
    async fn launch(
        &mut self,
        t: &Target,
        s: &Seen,
        rec: &AgentRecord,
        attempt: u32,
        slow_lane: bool,
        now: f64,
    ) -> LaunchOutcome {
        let lane = if slow_lane { " (slow lane)" } else { "" };
        if let Some(pre) = &t.preflight {
            let spec = ProbeSpec::new("preflight", ProbeKind::PythonSyntax((**pre).clone()));
            let v = self.runner.run_one(&spec).await;
            if v.status != Status::Ok {
                return LaunchOutcome::PreflightFailed(v.summary);
            }
        }
        if self.dry_run {
            self.note(
                &t.key,
                format!("[DRY-RUN] would revive (attempt {attempt}){lane}"),
            );
            return LaunchOutcome::Started;
        }
        // A hung agent still holds its port and files: stop it first.
        let mut stale: Vec<u32> = s.pids.clone();
        if let Some(pid) = self.children.get(&*t.key) {
            // Re-adopted after a restart: only if it still is ours.
            let ours = self
                .state
                .launched
                .get(&*t.key)
                .is_none_or(|i| crate::intent::carries(*pid, &i.id));
            if ours {
                stale.push(*pid);
            }
        }
        stale.sort_unstable();
        stale.dedup();
        stale.retain(|p| *p != std::process::id());
        if !stale.is_empty() {
            stop_processes(&stale).await;
            self.note(&t.key, format!("stopped hung process(es) {stale:?}"));
        }
        let cmd = match &t.revive {
            ReviveHow::None => {
                return LaunchOutcome::Failed("no revive command configured".to_string());
            }
            ReviveHow::Argv(how) => match argv_command(&how.0, how.1.as_deref()) {
                Ok(c) => c,
                Err(e) => return LaunchOutcome::Failed(e),
            },
            ReviveHow::Cell => {
                let Some((cell, agent)) = t.cell_agent() else {
                    return LaunchOutcome::Failed("no cell".to_string());
                };
                let Some(store) = &self.store else {
                    return LaunchOutcome::Failed("no cells root".to_string());
                };
                match store.open(&cell).and_then(|c| c.revive_command(&agent)) {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        return LaunchOutcome::Failed("no revive command configured".to_string());
                    }
                    Err(e) => return LaunchOutcome::Failed(e.to_string()),
                }
            }
        };
        let intent = self.record_intent(t, rec, attempt, now).await;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.env(LAUNCH_ENV, &intent);
        let spawned = cmd.spawn();
        if spawned.is_ok() {
            pause("launch-spawned").await;
        }
        match spawned {
            Err(e) => LaunchOutcome::Failed(format!("cannot start: {e}")),
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                if let Some(i) = self.state.launched.get_mut(&*t.key) {
                    i.pid = Some(pid);
                }
                self.children.insert(t.key.to_string(), pid);
                self.exited.remove(&*t.key);
                let tx = self.exits_tx.clone();
                let key = t.key.to_string();
                tokio::spawn(async move {
                    let _ = child.wait().await; // reaps it
                    let _ = tx.send((key, pid));
                });
                self.note(
                    &t.key,
                    format!("revive attempt {attempt}{lane}: started PID {pid}"),
                );
                LaunchOutcome::Started
            }
        }
    }

    /// Before a spawn: the `revive_attempt` event, then the record with the
    /// attempt counted and the launch intent, journaled (see [`crate::intent`]).
    /// A failed save is reported, and the launch goes ahead: a dead agent
    /// is not left dead because the disk is full.
    async fn record_intent(
        &mut self,
        t: &Target,
        rec: &AgentRecord,
        attempt: u32,
        now: f64,
    ) -> String {
        if let Some((cell, agent)) = t.cell_agent() {
            let max = self.settings.max_attempts;
            self.cell_append(
                cell,
                EventKind::ReviveAttempt {
                    agent,
                    attempt,
                    max,
                },
            );
        }
        let intent = LaunchIntent::new(&t.key, now, attempt);
        let id = intent.id.clone();
        let mut record = rec.clone();
        launched(&mut record, now, LaunchOutcome::Started, &self.settings);
        self.state
            .launched
            .insert(t.key.to_string(), intent.clone());
        let entry = crate::intent::JournalEntry {
            key: t.key.to_string(),
            intent,
            record,
        };
        let journal = crate::intent::journal_path(&self.state_file);
        let saved = crate::intent::journal_append(&journal, &entry);
        if let Err(e) = &saved {
            tracing::error!("[{}] launch intent not saved: {e}", t.key);
        }
        self.fault_result("launch-journal", saved.map_err(|e| e.to_string()));
        pause("launch-saved").await;
        id
    }

    fn cell_event(&mut self, t: &Target, s: &Seen, to: State, rec: &AgentRecord, now: f64) {
        if self.dry_run {
            return;
        }
        let Some((cell, agent)) = t.cell_agent() else {
            return;
        };
        let age = s.heartbeat_age.unwrap_or(-1.0);
        let kind = match to {
            State::Dead => EventKind::AgentDead { agent, age },
            State::Degraded => EventKind::AgentStale { agent, age },
            State::Healthy if rec.episode_start.is_none() && rec.healthy_since == Some(now) => {
                EventKind::AgentRecovered {
                    agent,
                    down_seconds: 0.0,
                }
            }
            _ => return,
        };
        self.cell_append(cell, kind);
    }

    /// Appends an event to `cell`'s log, behind any of its events still
    /// waiting to be written; one that cannot be written now waits too.
    fn cell_append(&mut self, cell: CellId, kind: EventKind) {
        if self.unwritten.len() >= UNWRITTEN_EVENTS_KEPT {
            self.unwritten.pop_front();
            self.unwritten_dropped += 1;
        }
        self.unwritten.push_back((cell, Event::now(kind)));
        self.write_events();
    }

    /// Writes the waiting cell events, oldest first. A cell whose log fails
    /// keeps the rest of its events, in order, for the next sweep; other
    /// cells go on. A cell that no longer exists has nowhere to write: its
    /// events are dropped.
    fn write_events(&mut self) {
        let Some(store) = &self.store else {
            self.unwritten.clear();
            return;
        };
        let mut blocked: Vec<CellId> = Vec::new();
        let mut fault: Option<String> = None;
        self.unwritten.retain(|(id, event)| {
            if blocked.contains(id) {
                return true;
            }
            let cell = match store.open(id) {
                Ok(c) => c,
                Err(e @ nexus_cell::Error::NotFound { .. }) => {
                    tracing::warn!("cell {id}: event dropped, the cell is gone: {e}");
                    return false;
                }
                // Unreadable for now (its manifest, the root moved away):
                // the event waits, as for a full disk.
                Err(e) => {
                    blocked.push(*id);
                    fault = Some(e.to_string());
                    return true;
                }
            };
            match cell.append_event(event) {
                Ok(()) => false,
                Err(e) => {
                    blocked.push(*id);
                    fault = Some(e.to_string());
                    true
                }
            }
        });
        let result = match fault {
            None => {
                if self.unwritten_dropped > 0 {
                    tracing::warn!(
                        "cell events: {} of them were dropped (more than {UNWRITTEN_EVENTS_KEPT} waited while the logs could not be written)",
                        self.unwritten_dropped
                    );
                    self.unwritten_dropped = 0;
                }
                Ok(())
            }
            Some(e) => {
                let e = format!("{e} ({} events kept to retry)", self.unwritten.len());
                tracing::warn!("cell events: {e}");
                Err(e)
            }
        };
        self.fault_result("events", result);
    }

    /// One incident per death episode, through the Gitea channel: the
    /// observation waits in the pool state until the engine has it.
    fn sync_incident(&mut self, t: &Target, s: &Seen, rec: &AgentRecord, before: State) {
        if self.incidents.is_none() {
            return;
        }
        let check = if rec.incident_open {
            let events: Vec<String> = self
                .events
                .get(&*t.key)
                .map(|q| q.iter().take(5).cloned().collect())
                .unwrap_or_default();
            let body = format!(
                "### 🔴 Agent death detected: {}\n\n- **Mission:** {}\n- **State:** {:?}\n- **Policy:** {}\n- **Gateway alive:** {}\n- **Process alive:** {}\n- **Heartbeat age:** {}\n- **Revive attempts (window):** {}\n\n#### Probes\n{}\n\n#### Recent events\n{}\n",
                t.name,
                t.mission.as_deref().unwrap_or("unassigned"),
                rec.state,
                t.policy,
                fmt_opt(s.probe.gateway),
                fmt_opt(s.probe.process),
                s.heartbeat_age
                    .map_or("N/A".to_string(), |a| format!("{a:.0}s")),
                rec.attempts.len(),
                s.lines(t)
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                events
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            Check::failing(&t.key, &format!("{}: agent dead", t.name), &body)
        } else if before != State::Healthy && rec.state == State::Healthy {
            Check::healthy(&t.key, &format!("{}: healthy again", t.name))
        } else {
            return;
        };
        self.state.observations.add(check);
    }

    /// Writes the `state.json` of the cell whose agents are `part` (one
    /// part of the fleet); the error if it failed. Gateways have no cell.
    fn write_cell_state(&self, part: &[Target], now: f64) -> Result<(), String> {
        let (Some(store), Some(cell)) = (&self.store, part.first().and_then(|t| t.cell)) else {
            return Ok(());
        };
        let mut agents: BTreeMap<String, AgentHealth> = BTreeMap::new();
        for t in part {
            let rec = self.state.records.get(&t.key).cloned().unwrap_or_default();
            agents.insert(
                t.name.to_string(),
                AgentHealth {
                    healthy: rec.state == State::Healthy,
                    last_seen: Some(now),
                    revive_count: rec.attempts.len() as u32,
                    unhealthy_since: rec.episode_start,
                    escalated: rec.state == State::Escalated,
                    open_issue: None,
                    extra: Default::default(),
                },
            );
        }
        let Ok(c) = store.open(&cell) else {
            return Ok(());
        };
        let st = DaemonState {
            cell_uuid: c.id(),
            daemon_pid: std::process::id(),
            last_poll: now,
            agent_health: agents,
            extra: Default::default(),
        };
        c.write_daemon_state(&st).map_err(|e| {
            tracing::warn!("{cell}: state.json not written: {e}");
            e.to_string()
        })
    }
}

/// The approval request id of `key`'s current death episode.
fn request_id(key: &str, rec: &AgentRecord, now: f64) -> String {
    let episode = format!("{key}@{}", rec.episode_start.unwrap_or(now));
    format!("r{}", nexus_gitea::fingerprint("pool", &episode))
}

fn fmt_opt(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

fn argv_command(argv: &[String], log: Option<&Path>) -> Result<std::process::Command, String> {
    use std::process::Stdio;
    let (program, args) = argv.split_first().ok_or("empty revive_cmd")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    match log {
        Some(path) => {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log {}: {e}", path.display()))?;
            let err = out
                .try_clone()
                .map_err(|e| format!("cannot open log {}: {e}", path.display()))?;
            cmd.stdout(out).stderr(err);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Ok(cmd)
}

/// SIGCONT + SIGTERM, up to 2 s for them to go, then SIGKILL.
async fn stop_processes(pids: &[u32]) {
    use rustix::process::{Pid, Signal, kill_process, test_kill_process};
    let pids: Vec<Pid> = pids
        .iter()
        .filter_map(|p| Pid::from_raw(*p as i32))
        .collect();
    for p in &pids {
        let _ = kill_process(*p, Signal::CONT);
        let _ = kill_process(*p, Signal::TERM);
    }
    for _ in 0..20 {
        if pids
            .iter()
            .all(|p| test_kill_process(*p).is_err() || is_zombie(p.as_raw_nonzero().get()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in &pids {
        let _ = kill_process(*p, Signal::KILL);
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
