//! The incident engine: one open issue per failing subject (docs/SPEC.md §1.5).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

// Intervals between runs (comments, the rate-limit window) are on the wall
// clock; a stamp from the future counts as long past. Reopening a recently
// closed issue keeps the plain difference: after a clock jump it reopens
// rather than files a duplicate.
use nexus_heartbeat::elapsed_since as elapsed;

use crate::client::GiteaClient;
use crate::error::Error;
use crate::outbox::{ActionKind, Outbox, QueuedAction};
use crate::state::{self, Closed, SubjectState};
use crate::types::{CreateIssueOption, Issue, IssueQuery, IssueState};

/// One observation of a subject, made once per cycle by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable name of what is monitored (`nexus`, `cron`, `agent:timmy`).
    pub subject: String,
    /// Whether the subject is healthy now.
    pub healthy: bool,
    /// One line; goes into the issue title after the prefix.
    pub summary: String,
    /// Markdown diagnostics for the issue body and comments.
    pub diagnostics: String,
    /// What is failing, each with its severity (`heartbeat:critical`), in
    /// any order; empty when the caller does not say (the summary alone
    /// then tells one failure from another). With the summary, this is what
    /// the failure *is*: a change of it may be commented before
    /// `comment_min_interval` (see [`EngineConfig::comment_change_floor`]);
    /// a change of the diagnostics alone may not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// How the summary names the subject, at its start (`timmy:` in
    /// `timmy: agent dead`), when the engine watches several subjects. The
    /// titles of this subject's issues start with `<title_prefix>
    /// <title_subject>` (`[pool] timmy:`; `None`: the title prefix alone,
    /// for an engine with one subject like the watchdog's): an open issue
    /// with the engine label and that title but no fingerprint, filed by
    /// the original tools, is adopted (docs/SPEC.md §1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_subject: Option<String>,
}

impl Check {
    /// A failing observation.
    pub fn failing(subject: &str, summary: &str, diagnostics: &str) -> Check {
        Check {
            subject: subject.to_owned(),
            healthy: false,
            summary: summary.to_owned(),
            diagnostics: diagnostics.to_owned(),
            problems: Vec::new(),
            title_subject: None,
        }
    }

    /// A healthy observation (`summary` says what is fine now).
    pub fn healthy(subject: &str, summary: &str) -> Check {
        Check {
            subject: subject.to_owned(),
            healthy: true,
            summary: summary.to_owned(),
            diagnostics: String::new(),
            problems: Vec::new(),
            title_subject: None,
        }
    }

    /// The same observation naming what fails (`heartbeat:critical`, ...):
    /// see [`Check::problems`].
    pub fn with_problems<S: Into<String>>(
        mut self,
        problems: impl IntoIterator<Item = S>,
    ) -> Check {
        self.problems = problems.into_iter().map(Into::into).collect();
        self
    }

    /// The same observation naming how its summary names the subject
    /// (`timmy:`): see [`Check::title_subject`].
    pub fn with_title_subject(mut self, title_subject: &str) -> Check {
        self.title_subject = Some(title_subject.to_owned());
        self
    }
}

/// What [`Engine::observe`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing to do (healthy without issue, or an unchanged failure inside
    /// the comment interval).
    Nothing,
    /// A new issue.
    Created {
        /// Issue number.
        number: u64,
    },
    /// A recently closed issue was reopened.
    Reopened {
        /// Issue number.
        number: u64,
    },
    /// An open issue of this subject already existed (another process, or a
    /// previous run whose state was lost) and is now tracked.
    Adopted {
        /// Issue number.
        number: u64,
    },
    /// Fresh diagnostics were commented.
    Commented {
        /// Issue number.
        number: u64,
    },
    /// Recovery comment posted and the issue closed.
    Resolved {
        /// Issue number.
        number: u64,
    },
    /// `max_issues_per_day` reached: no issue created (the newest issue of the
    /// subject, if any, got a comment instead).
    CapReached {
        /// The issue commented on.
        commented_on: Option<u64>,
    },
    /// The rate limit (`max_actions` per `action_window`) is reached: the
    /// subject's latest observation waits in memory and its final state is
    /// acted on as soon as the window allows (by a later
    /// [`Engine::observe`] or [`Engine::tick`]).
    Deferred,
    /// Gitea is unreachable: the action waits in the outbox.
    Queued {
        /// What was queued.
        kind: ActionKind,
    },
    /// Dry run: what would be done; no HTTP call and no file written.
    DryRun {
        /// Human-readable plan.
        plan: String,
    },
    /// No client configured (no token): issue management is skipped.
    Disabled,
}

impl std::fmt::Display for Outcome {
    /// One line for logs and `--dry-run` output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Nothing => f.write_str("no issue action"),
            Outcome::Created { number } => write!(f, "created issue #{number}"),
            Outcome::Reopened { number } => write!(f, "reopened issue #{number}"),
            Outcome::Adopted { number } => write!(f, "tracking existing issue #{number}"),
            Outcome::Commented { number } => write!(f, "commented on issue #{number}"),
            Outcome::Resolved { number } => {
                write!(f, "recovered: commented and closed issue #{number}")
            }
            Outcome::CapReached {
                commented_on: Some(n),
            } => {
                write!(f, "daily issue cap reached; commented on #{n}")
            }
            Outcome::CapReached { commented_on: None } => f.write_str("daily issue cap reached"),
            Outcome::Deferred => f.write_str("issue rate limit reached; deferred"),
            Outcome::Queued { kind } => {
                write!(f, "gitea unreachable; queued {kind:?} in the outbox")
            }
            Outcome::DryRun { plan } => write!(f, "dry run: {plan}"),
            Outcome::Disabled => f.write_str("issue management disabled (no token)"),
        }
    }
}

/// After a failed outbox delivery, [`Engine::observe`] waits this long before
/// trying again (actions decided meanwhile are queued behind the backlog).
pub const OUTBOX_RETRY: Duration = Duration::from_secs(60);

/// Returns the current time as epoch seconds. Injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Engine settings. [`EngineConfig::new`] gives the spec defaults.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where state, the lock file and the outbox live (one per binary, e.g.
    /// `~/.local/state/nexus-watchdog/gitea`). Two processes that share it
    /// are serialised by its lock file.
    pub state_dir: PathBuf,
    /// Label on every issue of this binary (`watchdog`, `cron-heartbeat`,
    /// `resurrection-pool`); also the fingerprint namespace.
    pub label: String,
    /// Colour for labels the engine creates (`#rrggbb`).
    pub label_color: String,
    /// Title prefix (`[watchdog]`); the title is `<prefix> <summary>`.
    pub title_prefix: String,
    /// Usernames to assign; unknown ones are left out and named in the body.
    pub assignees: Vec<String>,
    /// A subject failing again within this window after its issue was closed
    /// reopens that issue instead of creating one. Default 24 h.
    pub reopen_window: Duration,
    /// An open issue is commented at most this often while its failure
    /// stays what it is (same summary and problems; diagnostics, ages, event
    /// lists may change: the next comment carries them). Default 1 h.
    pub comment_min_interval: Duration,
    /// A change of what the failure is (the summary or the problems: a
    /// check starts or stops failing, a severity changes) is commented
    /// before `comment_min_interval` has passed, but not sooner than this
    /// after the previous comment, so a subject flapping between two
    /// failures costs at most one comment per floor. Default 10 min.
    pub comment_change_floor: Duration,
    /// Issues created per subject per UTC day at most. Default 5.
    pub max_issues_per_day: u32,
    /// Make no HTTP call and write no file; report the plan.
    pub dry_run: bool,
    /// After a failed outbox delivery, wait this long before trying again.
    /// Default [`OUTBOX_RETRY`] (60 s).
    pub outbox_retry: Duration,
    /// At most this many issue actions (open, comment, resolve: each one to
    /// three write calls) are delivered per `action_window`, across all
    /// subjects; 0 = no limit. Beyond it, subjects are deferred and only
    /// their final state is acted on later ([`Outcome::Deferred`]). Default 60.
    pub max_actions: u32,
    /// The sliding window of `max_actions`. Default 10 min.
    pub action_window: Duration,
}

impl EngineConfig {
    /// Spec defaults for a label and title prefix.
    pub fn new(state_dir: &Path, label: &str, title_prefix: &str) -> EngineConfig {
        EngineConfig {
            state_dir: state_dir.to_owned(),
            label: label.to_owned(),
            label_color: "#e11d21".into(),
            title_prefix: title_prefix.to_owned(),
            assignees: Vec::new(),
            reopen_window: Duration::from_secs(24 * 3600),
            comment_min_interval: Duration::from_secs(3600),
            comment_change_floor: Duration::from_secs(600),
            max_issues_per_day: 5,
            dry_run: false,
            outbox_retry: OUTBOX_RETRY,
            max_actions: 60,
            action_window: Duration::from_secs(600),
        }
    }
}

/// The fingerprint of a subject under a label: 16 hex digits of FNV-1a 64 over
/// `label \n subject`. Stable across versions, hosts and restarts.
pub fn fingerprint(label: &str, subject: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes().chain([b'\n']).chain(subject.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The label that carries a fingerprint on an issue.
pub fn fingerprint_label(fp: &str) -> String {
    format!("nx-{fp}")
}

/// The hidden marker that carries a fingerprint in an issue body.
pub fn marker(fp: &str) -> String {
    format!("<!-- nexus-incident:{fp} -->")
}

/// The hidden marker that carries a queued action's id in the comments it
/// posts (see [`QueuedAction::id`]).
pub fn action_marker(id: &str) -> String {
    format!("<!-- nexus-action:{id} -->")
}

fn new_action_id(fp: &str, kind: ActionKind, now: i64) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    fingerprint(
        "action",
        &format!("{fp}/{kind:?}/{now}/{}/{nanos}/{n}", std::process::id()),
    )
}

/// A sliding-window counter of delivered actions: at most `max` entries.
/// Kept in `limiter.json` too (read and written under the engine lock), so
/// the limit holds across restarts and across processes sharing the state
/// directory: a crash-looping daemon does not start counting again.
#[derive(Debug)]
struct Limiter {
    max: usize,
    window: i64,
    sent: VecDeque<i64>,
    /// Changed since `limiter.json` was written.
    dirty: bool,
    /// Size and mtime of `limiter.json` when last read or written: an
    /// unchanged file is not read again.
    seen: Option<(u64, Option<std::time::SystemTime>)>,
}

impl Limiter {
    /// Takes the window another run saved: times in the future (the clock
    /// was set back) count as now, so they expire one window from now.
    fn replace(&mut self, mut times: Vec<i64>, now: i64) {
        for t in &mut times {
            *t = (*t).min(now);
        }
        times.sort_unstable();
        let keep = times.len().saturating_sub(self.max);
        self.sent = times.into_iter().skip(keep).collect();
    }

    fn allows(&mut self, now: i64) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| elapsed(now, *t) >= self.window)
        {
            self.sent.pop_front();
        }
        self.max == 0 || self.sent.len() < self.max
    }

    fn record(&mut self, now: i64) {
        if self.max > 0 {
            self.sent.push_back(now);
            self.dirty = true;
        }
    }
}

/// Signature of what a failure *is*: its summary and its problems (sorted),
/// with every run of digits replaced by `#` (counts, ages, pids change
/// without the failure changing), hashed. The diagnostics are not part of
/// it: an event list that grows or a time stamp that moves is the same
/// failure, commented only when `comment_min_interval` has passed.
pub fn signature(check: &Check) -> String {
    let mut problems: Vec<&str> = check.problems.iter().map(|p| p.trim()).collect();
    problems.sort_unstable();
    problems.dedup();
    let mut norm = String::with_capacity(check.summary.len() + 16 * problems.len());
    let mut in_digits = false;
    let parts = std::iter::once(check.summary.trim()).chain(problems);
    for c in parts.flat_map(|p| p.chars().chain(['\n'])) {
        if c.is_ascii_digit() {
            if !in_digits {
                norm.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            norm.push(c);
        }
    }
    fingerprint("sig", &norm)
}

fn issue_matches(issue: &Issue, fp: &str) -> bool {
    let label = fingerprint_label(fp);
    issue.body.contains(&marker(fp)) || issue.labels.iter().any(|l| l.name == label)
}

/// The start of every body marker ([`marker`]).
const MARKER_START: &str = "<!-- nexus-incident:";

/// Whether an issue carries an engine fingerprint (a body marker or an
/// `nx-` label), this subject's or another's.
fn has_fingerprint(issue: &Issue) -> bool {
    issue.body.contains(MARKER_START) || issue.labels.iter().any(|l| l.name.starts_with("nx-"))
}

/// Whether `title` is one of a subject's titles: `prefix`, then nothing or
/// a space. So the prefix `[pool] a:` never takes `[pool] ab: agent dead`,
/// nor `[watchdog]` a `[watchdog]x` title; an empty prefix takes nothing.
fn title_matches(title: &str, prefix: &str) -> bool {
    let prefix = prefix.trim();
    !prefix.is_empty()
        && title
            .trim_start()
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// Epoch seconds of an RFC 3339 time from Gitea; `None` if it is not one.
fn parse_rfc3339(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

fn rfc3339(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{epoch}"))
}

/// The incident engine. See the crate docs for how binaries use it.
pub struct Engine {
    cfg: EngineConfig,
    client: Option<GiteaClient>,
    clock: Clock,
    outbox: Outbox,
    known_users: HashMap<String, bool>,
    limiter: Limiter,
    /// Subjects held back by the rate limit, oldest first, each with its
    /// latest observation (at most one entry per subject).
    deferred_order: VecDeque<String>,
    deferred: HashMap<String, Check>,
    /// Per fingerprint, when the current failure started, where it differs
    /// from the state file (see `remember`): at most one entry per subject.
    since: HashMap<String, Option<i64>>,
    /// `deferred.json` was read (once per process) / the set changed since
    /// it was last written.
    deferred_loaded: bool,
    deferred_dirty: bool,
    /// After a failed delivery, cycles before this time (epoch s) do not
    /// retry the outbox: with a black-holed Gitea each attempt costs the
    /// full timeout, and a pool calls `observe` once per agent.
    flush_hold_until: i64,
    /// The state directory was found (or made) private by this engine.
    dir_private: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cfg", &self.cfg)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Holds the engine lock file locked until dropped (closing unlocks).
struct LockGuard {
    _file: File,
}

impl Engine {
    /// An engine. `client: None` (no token) disables issue management:
    /// [`Engine::observe`] returns [`Outcome::Disabled`].
    pub fn new(cfg: EngineConfig, client: Option<GiteaClient>) -> Engine {
        if client.is_none() && !cfg.dry_run {
            tracing::warn!(label = %cfg.label, "no Gitea token: issue management is skipped");
        }
        let outbox = Outbox::new(cfg.state_dir.join("outbox"));
        let limiter = Limiter {
            max: cfg.max_actions as usize,
            window: cfg.action_window.as_secs().max(1) as i64,
            sent: VecDeque::new(),
            dirty: false,
            seen: None,
        };
        Engine {
            limiter,
            deferred_order: VecDeque::new(),
            deferred: HashMap::new(),
            since: HashMap::new(),
            deferred_loaded: false,
            deferred_dirty: false,
            cfg,
            client,
            clock: Arc::new(|| nexus_heartbeat::now_epoch() as i64),
            outbox,
            known_users: HashMap::new(),
            flush_hold_until: i64::MIN,
            dir_private: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// The outbox (for status output and tests).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Subjects held back by the rate limit (each counted once).
    pub fn deferred_len(&self) -> usize {
        self.deferred.len()
    }

    /// Sizes of the engine's in-memory collections (deferred subjects, their
    /// order queue, the limiter's window, known users, failure starts not
    /// yet written): all bounded, by the number of subjects, `max_actions`
    /// and the assignees.
    pub fn memory_footprint(&self) -> [usize; 5] {
        [
            self.deferred.len(),
            self.deferred_order.len(),
            self.limiter.sent.len(),
            self.known_users.len(),
            self.since.len(),
        ]
    }

    /// The fingerprint of a subject under this engine's label.
    pub fn fingerprint(&self, subject: &str) -> String {
        fingerprint(&self.cfg.label, subject)
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Once per engine: the state directory exists and only its owner may
    /// enter it. Created `0700` when missing; one that group or others may
    /// enter (made by hand, or by an older version) is narrowed to `0700`
    /// through a descriptor, never by path; a symbolic link is refused.
    fn private_dir(&self) -> Result<(), Error> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        use std::sync::atomic::Ordering;
        if self.dir_private.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dir = &self.cfg.state_dir;
        let io = |op: &'static str| {
            move |source| Error::Io {
                path: dir.clone(),
                op,
                source,
            }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create dir"))?;
        let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW;
        let d = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(dir)
            .map_err(|e| nofollow_error(dir, "open dir", e))?;
        let mode = d.metadata().map_err(io("stat"))?.permissions().mode();
        if mode & 0o077 != 0 {
            d.set_permissions(std::fs::Permissions::from_mode(0o700))
                .map_err(io("chmod 700"))?;
        }
        self.dir_private.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn lock(&self) -> Result<LockGuard, Error> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        self.private_dir()?;
        let path = self.cfg.state_dir.join("engine.lock");
        let io = |source| Error::Io {
            path: path.clone(),
            op: "lock",
            source,
        };
        // 0600, and never through a symbolic link or into a FIFO.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(flags.bits() as i32)
            .open(&path)
            .map_err(|e| nofollow_error(&path, "lock", e))?;
        let meta = f.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            // Left by an older version: narrowed through the descriptor.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        // Uncontended (the usual case): no blocking thread needed.
        match f.try_lock() {
            Ok(()) => return Ok(LockGuard { _file: f }),
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
            Err(std::fs::TryLockError::WouldBlock) => {}
        }
        let res = tokio::task::spawn_blocking(move || {
            f.lock()?;
            Ok::<File, std::io::Error>(f)
        })
        .await;
        match res {
            Ok(Ok(f)) => Ok(LockGuard { _file: f }),
            Ok(Err(source)) => Err(io(source)),
            Err(join) => Err(io(std::io::Error::other(join.to_string()))),
        }
    }

    fn load_state(&self, subject: &str, fp: &str) -> SubjectState {
        let path = state::path(&self.cfg.state_dir, fp);
        match state::load(&path) {
            Ok(Some(st)) => st,
            Ok(None) => SubjectState {
                subject: subject.to_owned(),
                fingerprint: fp.to_owned(),
                ..SubjectState::default()
            },
            Err(e) => {
                // Safe to start over: open issues are found by fingerprint.
                tracing::error!(error = %e, "engine state unusable; starting fresh");
                SubjectState {
                    subject: subject.to_owned(),
                    fingerprint: fp.to_owned(),
                    ..SubjectState::default()
                }
            }
        }
    }

    /// Saves a subject's state. `durable` (fsync) after an action; the
    /// bookkeeping of a cycle without one (when the failure started) skips
    /// the disk flush: losing it in a crash is harmless, and a flapping
    /// fleet would otherwise pay one fsync per subject per sweep.
    fn save_state(&self, st: &SubjectState, durable: bool) -> Result<(), Error> {
        state::save(
            &state::path(&self.cfg.state_dir, &st.fingerprint),
            st,
            durable,
        )
    }

    /// What to do for `check` given only the local state (no HTTP).
    fn decide(&self, st: &SubjectState, check: &Check, now: i64) -> Option<ActionKind> {
        if check.healthy {
            return st.is_open().then_some(ActionKind::Resolve);
        }
        if !st.is_open() {
            return Some(ActionKind::Open);
        }
        self.comment_due(st, check, now)
            .then_some(ActionKind::Comment)
    }

    /// Whether a failing subject's issue gets a comment now: once
    /// `comment_min_interval` has passed since the last one, or sooner when
    /// what fails changed ([`signature`]), but not within
    /// `comment_change_floor` of the last one. Diagnostics alone never
    /// bring a comment forward.
    fn comment_due(&self, st: &SubjectState, check: &Check, now: i64) -> bool {
        let Some(last) = st.last_comment_at else {
            return true;
        };
        let since = elapsed(now, last);
        if since >= self.cfg.comment_min_interval.as_secs() as i64 {
            return true;
        }
        // An adopted issue has no known signature: only the interval applies.
        let changed = st
            .last_signature
            .as_deref()
            .is_some_and(|s| s != signature(check));
        changed && since >= self.cfg.comment_change_floor.as_secs() as i64
    }

    /// Call once per cycle per subject. Decides from local state, delivers
    /// queued actions first (in order), then acts on Gitea; if Gitea is
    /// unreachable the action is queued durably and [`Outcome::Queued`] is
    /// returned. Errors are permanent Gitea refusals (401, 403, 404, 422 …)
    /// or local file problems; the caller logs them and goes on.
    pub async fn observe(&mut self, check: &Check) -> Result<Outcome, Error> {
        if check.subject.trim().is_empty() {
            return Err(Error::Config {
                field: "subject",
                why: "empty subject (every monitored thing needs a stable name)".into(),
            });
        }
        let fp = self.fingerprint(&check.subject);
        let now = self.now();
        if self.cfg.dry_run {
            let st = self.load_state(&check.subject, &fp);
            let plan = match self.decide(&st, check, now) {
                None => format!("{}: nothing to do", check.subject),
                Some(ActionKind::Open) => format!(
                    "{}: would open an issue (reopen #{} if closed within {}s, else create) titled {:?} with label {:?}",
                    check.subject,
                    st.last_closed.map_or("?".into(), |c| c.number.to_string()),
                    self.cfg.reopen_window.as_secs(),
                    self.title(check),
                    self.cfg.label
                ),
                Some(ActionKind::Comment) => format!(
                    "{}: would comment fresh diagnostics on issue {}",
                    check.subject,
                    st.open_issue.map_or("(queued)".into(), |n| format!("#{n}"))
                ),
                Some(ActionKind::Resolve) => format!(
                    "{}: would comment recovery and close issue {}",
                    check.subject,
                    st.open_issue.map_or("(queued)".into(), |n| format!("#{n}"))
                ),
            };
            tracing::info!(%plan, "dry run");
            return Ok(Outcome::DryRun { plan });
        }
        if self.client.is_none() {
            return Ok(Outcome::Disabled);
        }
        let _lock = self.lock().await?;
        self.load_limiter(now);
        let outcome = self.observe_locked(check, now).await;
        self.save_limiter();
        outcome
    }

    async fn observe_locked(&mut self, check: &Check, now: i64) -> Result<Outcome, Error> {
        self.load_deferred();
        let backlog = self.flush_or_hold(now).await?;
        if !backlog {
            self.drain_deferred(now).await;
        }
        self.act(check, now, backlog).await
    }

    fn limiter_path(&self) -> PathBuf {
        self.cfg.state_dir.join("limiter.json")
    }

    /// Under the engine lock: the window as `limiter.json` has it (another
    /// process, or this daemon before a restart, may have delivered
    /// actions), unless the file did not change since this engine last
    /// read or wrote it. A corrupt file is ignored (this run's count goes on).
    fn load_limiter(&mut self, now: i64) {
        if self.limiter.max == 0 {
            return;
        }
        let path = self.limiter_path();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "rate-limit window unreadable");
                return;
            }
        };
        let stamp = (meta.len(), meta.modified().ok());
        if self.limiter.seen == Some(stamp) {
            return;
        }
        let times = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Vec<i64>>(&b).map_err(|e| e.to_string()));
        match times {
            Ok(times) => {
                self.limiter.replace(times, now);
                self.limiter.seen = Some(stamp);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "corrupt rate-limit window ignored");
            }
        }
    }

    /// Under the engine lock: writes the window if it changed. A failure is
    /// logged, not returned: the action it counts was already delivered.
    fn save_limiter(&mut self) {
        if !self.limiter.dirty {
            return;
        }
        let path = self.limiter_path();
        let times: Vec<i64> = self.limiter.sent.iter().copied().collect();
        let written = serde_json::to_vec(&times)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                nexus_heartbeat::write_private(&path, &b, false).map_err(|e| e.to_string())
            });
        match written {
            Ok(()) => {
                self.limiter.dirty = false;
                self.limiter.seen = std::fs::metadata(&path)
                    .ok()
                    .map(|m| (m.len(), m.modified().ok()));
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "rate-limit window not saved");
            }
        }
    }

    /// Call once per cycle when not every subject is observed every cycle
    /// (the pool observes only agents in trouble): delivers the outbox and
    /// acts on subjects deferred by the rate limit as far as it allows.
    ///
    /// The deferred subjects are saved here (`deferred.json`, once per call
    /// when they changed) and read back after a restart, so a subject that
    /// is not observed again still gets its final state filed.
    pub async fn tick(&mut self) -> Result<(), Error> {
        if self.cfg.dry_run || self.client.is_none() {
            return Ok(());
        }
        if self.deferred_loaded
            && !self.deferred_dirty
            && self.deferred.is_empty()
            && self.outbox.is_empty()?
        {
            return Ok(());
        }
        let now = self.now();
        let _lock = self.lock().await?;
        self.load_limiter(now);
        let ticked = async {
            self.load_deferred();
            if !self.flush_or_hold(now).await? {
                self.drain_deferred(now).await;
            }
            self.save_deferred()
        }
        .await;
        self.save_limiter();
        ticked
    }

    fn deferred_path(&self) -> PathBuf {
        self.cfg.state_dir.join("deferred.json")
    }

    /// Once per process: the subjects a previous run deferred.
    fn load_deferred(&mut self) {
        if self.deferred_loaded {
            return;
        }
        self.deferred_loaded = true;
        let path = self.deferred_path();
        let checks: Vec<Check> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "corrupt deferred incidents ignored");
                    return;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "deferred incidents unreadable");
                return;
            }
        };
        for c in checks {
            if !self.deferred.contains_key(&c.subject) && !c.subject.trim().is_empty() {
                self.defer(&c);
            }
        }
    }

    fn save_deferred(&mut self) -> Result<(), Error> {
        if !self.deferred_dirty {
            return Ok(());
        }
        let path = self.deferred_path();
        if self.deferred.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        path,
                        op: "remove",
                        source,
                    });
                }
            }
        } else {
            let list: Vec<&Check> = self
                .deferred_order
                .iter()
                .filter_map(|s| self.deferred.get(s))
                .collect();
            let bytes = serde_json::to_vec(&list).map_err(|e| Error::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            nexus_heartbeat::write_private(&path, &bytes, false)?;
        }
        self.deferred_dirty = false;
        Ok(())
    }

    /// Delivers the outbox unless a recent failure put it on hold. Returns
    /// whether entries remain.
    async fn flush_or_hold(&mut self, now: i64) -> Result<bool, Error> {
        if now < self.flush_hold_until {
            Ok(!self.outbox.is_empty()?)
        } else {
            self.flush_locked().await
        }
    }

    /// Acts on deferred subjects, oldest first, while the limit allows.
    async fn drain_deferred(&mut self, now: i64) {
        while !self.deferred_order.is_empty() && self.limiter.allows(now) {
            let Some(subject) = self.deferred_order.pop_front() else {
                break;
            };
            self.deferred_dirty = true;
            let Some(check) = self.deferred.remove(&subject) else {
                continue;
            };
            match self.act(&check, now, false).await {
                Ok(outcome) => {
                    tracing::info!(%subject, %outcome, "deferred incident acted on");
                }
                Err(e) => tracing::warn!(%subject, error = %e, "deferred incident failed"),
            }
            if !self.outbox.is_empty().unwrap_or(false) {
                break; // Gitea failed meanwhile: the rest waits behind the outbox
            }
        }
    }

    fn defer(&mut self, check: &Check) {
        self.deferred_dirty = true;
        if self
            .deferred
            .insert(check.subject.clone(), check.clone())
            .is_none()
        {
            self.deferred_order.push_back(check.subject.clone());
        }
    }

    /// Decides and acts for one observation (the lock is held).
    async fn act(&mut self, check: &Check, now: i64, backlog: bool) -> Result<Outcome, Error> {
        let fp = self.fingerprint(&check.subject);
        let loaded = self.load_state(&check.subject, &fp);
        let mut st = loaded.clone();
        if let Some(since) = self.since.get(&fp) {
            st.failing_since = *since;
        }
        if check.healthy {
            // failing_since is cleared when the issue is resolved.
        } else if st.failing_since.is_none() {
            st.failing_since = Some(now);
        }
        let Some(kind) = self.decide(&st, check, now) else {
            // A newer observation that needs nothing supersedes a deferred one.
            if self.deferred.remove(&check.subject).is_some() {
                self.deferred_dirty = true;
                self.deferred_order.retain(|s| s != &check.subject);
            }
            if check.healthy {
                st.failing_since = None;
            }
            // The common case (healthy, nothing open) writes nothing.
            self.remember(&fp, &st, &loaded)?;
            return Ok(Outcome::Nothing);
        };
        let action = QueuedAction {
            id: new_action_id(&fp, kind, now),
            kind,
            check: check.clone(),
            decided_at: now,
            down_since: st.failing_since,
        };
        let outcome = if backlog {
            self.queue(&mut st, &action)?
        } else if self.deferred.contains_key(&check.subject) || !self.limiter.allows(now) {
            self.defer(check);
            self.remember(&fp, &st, &loaded)?;
            return Ok(Outcome::Deferred);
        } else {
            self.limiter.record(now);
            match self.apply(&mut st, &action, false).await {
                Ok(o) => o,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, subject = %check.subject, "gitea unreachable; action queued");
                    self.queue(&mut st, &action)?
                }
                Err(e) => {
                    self.since.remove(&fp);
                    self.save_state(&st, true)?;
                    return Err(e);
                }
            }
        };
        self.since.remove(&fp);
        self.save_state(&st, true)?;
        Ok(outcome)
    }

    /// Keeps a cycle without an action off the disk when only the start of
    /// the failure changed (a flapping subject toggles it every cycle): it
    /// is held in memory and written with the next action. A crash loses at
    /// most that timestamp (the issue then says "failing since" later).
    fn remember(
        &mut self,
        fp: &str,
        st: &SubjectState,
        loaded: &SubjectState,
    ) -> Result<(), Error> {
        let mut only_since = st.clone();
        only_since.failing_since = loaded.failing_since;
        if only_since != *loaded {
            self.since.remove(fp);
            return self.save_state(st, false);
        }
        if st.failing_since == loaded.failing_since {
            self.since.remove(fp);
        } else {
            self.since.insert(fp.to_owned(), st.failing_since);
        }
        Ok(())
    }

    /// Queues an action and updates the state as if it had been delivered, so
    /// the next cycles decide consistently (no second "open" while queued).
    fn queue(&self, st: &mut SubjectState, action: &QueuedAction) -> Result<Outcome, Error> {
        self.outbox.enqueue(action)?;
        match action.kind {
            ActionKind::Open => st.pending = true,
            ActionKind::Comment => {}
            ActionKind::Resolve => {
                st.pending = false;
                st.open_issue = None;
                st.failing_since = None;
            }
        }
        if action.kind != ActionKind::Resolve {
            st.last_comment_at = Some(action.decided_at);
            st.last_signature = Some(signature(&action.check));
        }
        Ok(Outcome::Queued { kind: action.kind })
    }

    /// Delivers queued actions now (also done at the start of every
    /// [`Engine::observe`], at most once per `outbox_retry` after a failed
    /// delivery; this call always tries, within the rate limit). Returns how
    /// many are still queued.
    pub async fn flush(&mut self) -> Result<usize, Error> {
        if self.cfg.dry_run || self.client.is_none() {
            return self.outbox.len();
        }
        let _lock = self.lock().await?;
        let now = self.now();
        self.load_limiter(now);
        let flushed = self.flush_locked().await;
        self.save_limiter();
        flushed?;
        self.outbox.len()
    }

    /// Delivers in order; stops at the first transient failure. Returns
    /// whether entries remain.
    async fn flush_locked(&mut self) -> Result<bool, Error> {
        for path in self.outbox.entries()? {
            let now = self.now();
            if !self.limiter.allows(now) {
                return Ok(true); // the rate limit holds the rest back, in order
            }
            let action = match Outbox::read(&path) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable outbox entry moved to failed/");
                    self.outbox.reject(&path)?;
                    continue;
                }
            };
            let fp = self.fingerprint(&action.check.subject);
            let mut st = self.load_state(&action.check.subject, &fp);
            self.limiter.record(now);
            match self.apply(&mut st, &action, true).await {
                Ok(outcome) => {
                    tracing::info!(subject = %action.check.subject, ?outcome, "queued gitea action delivered");
                    self.save_state(&st, true)?;
                    Outbox::remove(&path)?;
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "gitea still unreachable; outbox kept");
                    self.flush_hold_until =
                        now.saturating_add(self.cfg.outbox_retry.as_secs() as i64);
                    return Ok(true);
                }
                Err(e) => {
                    let to = self.outbox.reject(&path)?;
                    tracing::error!(error = %e, entry = %to.display(), "gitea refused a queued action; moved to failed/");
                }
            }
        }
        Ok(false)
    }

    /// On start-up: find every open issue of this engine's label that carries a
    /// fingerprint marker and record it as the open issue of that subject, so
    /// a restart (or lost state) never duplicates and a healthy subject's
    /// leftover issue is closed on its next healthy cycle. Returns the
    /// adopted issue numbers.
    pub async fn adopt(&mut self) -> Result<Vec<u64>, Error> {
        let Some(client) = self.client.clone() else {
            return Ok(Vec::new());
        };
        if self.cfg.dry_run {
            return Ok(Vec::new());
        }
        let _lock = self.lock().await?;
        let issues = client
            .list_issues(&IssueQuery::open_with_labels(&[&self.cfg.label]))
            .await?;
        let mut by_fp: HashMap<String, &Issue> = HashMap::new();
        for i in &issues {
            if let Some(fp) = parse_marker(&i.body) {
                let e = by_fp.entry(fp).or_insert(i);
                if i.number < e.number {
                    *e = i;
                }
            }
        }
        let mut adopted = Vec::new();
        for (fp, issue) in by_fp {
            let number = issue.number;
            let path = state::path(&self.cfg.state_dir, &fp);
            let mut st = match state::load(&path) {
                Ok(Some(st)) => st,
                _ => SubjectState {
                    fingerprint: fp.clone(),
                    ..SubjectState::default()
                },
            };
            if st.open_issue != Some(number) {
                st.open_issue = Some(number);
                st.pending = false;
                if st.failing_since.is_none() {
                    st.failing_since = Some(self.now());
                }
                // Not commented by this state: when it last was, Gitea
                // knows (unknown: the next failing cycle comments).
                st.last_comment_at = self.last_commented(issue).await?;
                st.last_signature = None;
                self.save_state(&st, true)?;
                adopted.push(number);
            }
        }
        adopted.sort_unstable();
        Ok(adopted)
    }

    fn client(&self) -> Result<GiteaClient, Error> {
        self.client.clone().ok_or(Error::Config {
            field: "token",
            why: "no Gitea client configured".into(),
        })
    }

    fn title(&self, check: &Check) -> String {
        let t = format!("{} {}", self.cfg.title_prefix.trim(), check.summary.trim());
        t.trim().chars().take(250).collect()
    }

    /// The title prefix that names a subject's issues (docs/SPEC.md §1.5):
    /// `<title_prefix> <title_subject>`, or the title prefix alone.
    fn subject_prefix(&self, check: &Check) -> String {
        let prefix = self.cfg.title_prefix.trim();
        match check.title_subject.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => format!("{prefix} {s}").trim().to_owned(),
            _ => prefix.to_owned(),
        }
    }

    /// Open issues of the subject, lowest number first: those with its
    /// fingerprint, and those with the engine label and the subject's title
    /// prefix but no fingerprint at all (filed by the original tools),
    /// found on every page. With `quick`, the remembered issue is checked
    /// first with one GET.
    async fn find_open(
        &self,
        st: &SubjectState,
        check: &Check,
        quick: bool,
    ) -> Result<Vec<Issue>, Error> {
        let client = self.client()?;
        if quick && let Some(n) = st.open_issue {
            match client.get_issue(n).await {
                Ok(i) if i.state == IssueState::Open && issue_matches(&i, &st.fingerprint) => {
                    return Ok(vec![i]);
                }
                Ok(_) | Err(Error::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let prefix = self.subject_prefix(check);
        let mut found: Vec<Issue> = client
            .list_issues(&IssueQuery::open_with_labels(&[&self.cfg.label]))
            .await?
            .into_iter()
            .filter(|i| {
                i.state == IssueState::Open
                    && (issue_matches(i, &st.fingerprint)
                        || (!has_fingerprint(i) && title_matches(&i.title, &prefix)))
            })
            .collect();
        found.sort_by_key(|i| i.number);
        Ok(found)
    }

    /// Keeps the lowest-numbered of a subject's open issues (`open`, sorted)
    /// and closes every other one as its duplicate (docs/SPEC.md §1.5). The
    /// one kept, if it has no fingerprint (filed by the original tools), is
    /// adopted: the fingerprint is added to its body and labels, so it is
    /// found as this subject's from then on. Returns the issue kept.
    async fn settle(&self, st: &SubjectState, open: Vec<Issue>) -> Result<Option<Issue>, Error> {
        let client = self.client()?;
        let mut open = open.into_iter();
        let Some(mut keep) = open.next() else {
            return Ok(None);
        };
        if !issue_matches(&keep, &st.fingerprint) {
            let body = format!("{}\n\n{}\n", keep.body.trim_end(), marker(&st.fingerprint));
            keep = client.set_body(keep.number, &body).await?;
            let fp_label = fingerprint_label(&st.fingerprint);
            let ids = client
                .ensure_labels(&[&self.cfg.label, &fp_label], &self.cfg.label_color)
                .await?;
            keep.labels = client.add_labels(keep.number, &ids).await?;
            tracing::info!(number = keep.number, subject = %st.subject, "adopted an open issue filed without a fingerprint");
        }
        for dup in open {
            client
                .comment(dup.number, &format!("Duplicate of #{} (one open issue per subject: the lowest number is kept); closing.\n\n{}", keep.number, marker(&st.fingerprint)))
                .await?;
            client.set_state(dup.number, IssueState::Closed).await?;
        }
        Ok(Some(keep))
    }

    /// When an issue this engine did not comment on itself was last
    /// commented: its newest comment's `created_at`, else its own (its body
    /// holds the diagnostics it was filed with). `None` when Gitea's times
    /// cannot be read: the caller then comments now.
    async fn last_commented(&self, issue: &Issue) -> Result<Option<i64>, Error> {
        if issue.comments == 0 {
            return Ok(parse_rfc3339(&issue.created_at));
        }
        let comments = self.client()?.list_comments(issue.number).await?;
        if comments.is_empty() {
            return Ok(parse_rfc3339(&issue.created_at));
        }
        Ok(comments
            .iter()
            .map(|c| parse_rfc3339(&c.created_at))
            .collect::<Option<Vec<i64>>>()
            .and_then(|times| times.into_iter().max()))
    }

    /// Posts an action's comment (with its hidden action marker). With
    /// `redelivery`, first looks for the marker among the issue's comments:
    /// an earlier attempt that timed out may have posted it already.
    async fn comment_once(
        &self,
        number: u64,
        a: &QueuedAction,
        body: &str,
        redelivery: bool,
    ) -> Result<(), Error> {
        let client = self.client()?;
        if a.id.is_empty() {
            client.comment(number, body).await?;
            return Ok(());
        }
        let mark = action_marker(&a.id);
        if redelivery
            && client
                .list_comments(number)
                .await?
                .iter()
                .any(|c| c.body.contains(&mark))
        {
            tracing::info!(number, id = %a.id, "comment already posted by an earlier attempt");
            return Ok(());
        }
        client.comment(number, &format!("{body}\n{mark}")).await?;
        Ok(())
    }

    async fn apply(
        &mut self,
        st: &mut SubjectState,
        a: &QueuedAction,
        redelivery: bool,
    ) -> Result<Outcome, Error> {
        match a.kind {
            ActionKind::Open => self.apply_open(st, a, redelivery).await,
            ActionKind::Comment => {
                let open = self.find_open(st, &a.check, true).await?;
                let Some(issue) = self.settle(st, open).await? else {
                    return self.apply_open(st, a, redelivery).await;
                };
                self.comment_once(issue.number, a, &self.comment_body(a), redelivery)
                    .await?;
                st.open_issue = Some(issue.number);
                st.pending = false;
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(signature(&a.check));
                Ok(Outcome::Commented {
                    number: issue.number,
                })
            }
            ActionKind::Resolve => {
                let open = self.find_open(st, &a.check, false).await?;
                let client = self.client()?;
                let body = self.recovery_body(a);
                for issue in &open {
                    self.comment_once(issue.number, a, &body, redelivery)
                        .await?;
                    client.set_state(issue.number, IssueState::Closed).await?;
                }
                st.open_issue = None;
                st.pending = false;
                st.failing_since = None;
                st.last_signature = None;
                st.last_comment_at = None;
                match open.first() {
                    Some(first) => {
                        st.last_closed = Some(Closed {
                            number: first.number,
                            at: a.decided_at,
                        });
                        Ok(Outcome::Resolved {
                            number: first.number,
                        })
                    }
                    None => Ok(Outcome::Nothing),
                }
            }
        }
    }

    async fn apply_open(
        &mut self,
        st: &mut SubjectState,
        a: &QueuedAction,
        redelivery: bool,
    ) -> Result<Outcome, Error> {
        let client = self.client()?;
        let sig = signature(&a.check);
        let open = self.find_open(st, &a.check, false).await?;
        if let Some(issue) = self.settle(st, open).await? {
            // An open issue this state did not know (lost state, another
            // process, the original tools): it gets fresh diagnostics
            // unless it was commented within the interval.
            let number = issue.number;
            st.open_issue = Some(number);
            st.pending = false;
            if !a.id.is_empty() && issue.body.contains(&action_marker(&a.id)) {
                // Filed by this very action (a redelivery after an answer
                // that came too late): delivered, and not to be commented.
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(sig);
                return Ok(Outcome::Adopted { number });
            }
            st.last_comment_at = self.last_commented(&issue).await?;
            st.last_signature = None;
            if !self.comment_due(st, &a.check, a.decided_at) {
                return Ok(Outcome::Adopted { number });
            }
            self.comment_once(number, a, &self.comment_body(a), redelivery)
                .await?;
            st.last_comment_at = Some(a.decided_at);
            st.last_signature = Some(sig);
            return Ok(Outcome::Commented { number });
        }
        // Reopen a recently closed issue.
        let window = self.cfg.reopen_window.as_secs() as i64;
        let recent = match st.last_closed {
            Some(c) if a.decided_at.saturating_sub(c.at) <= window => Some(c.number),
            Some(_) => None,
            None => self.recently_closed(st, a.decided_at, window).await?,
        };
        if let Some(number) = recent {
            // Comment first: if reopening then times out, the redelivery
            // finds the issue open and is done (a comment never got lost).
            self.comment_once(number, a, &self.comment_body(a), redelivery)
                .await?;
            client.set_state(number, IssueState::Open).await?;
            st.open_issue = Some(number);
            st.pending = false;
            st.last_comment_at = Some(a.decided_at);
            st.last_signature = Some(sig);
            return Ok(Outcome::Reopened { number });
        }
        // Daily cap.
        let day = a.decided_at.div_euclid(86_400);
        if st.created_day != day {
            st.created_day = day;
            st.created_today = 0;
        }
        if st.created_today >= self.cfg.max_issues_per_day {
            tracing::error!(subject = %a.check.subject, cap = self.cfg.max_issues_per_day, "daily issue cap reached; not creating another issue");
            let newest = st.last_closed.map(|c| c.number);
            let due = st.last_signature.is_none() || self.comment_due(st, &a.check, a.decided_at);
            if let (Some(n), true) = (newest, due) {
                let body = format!(
                    "**Daily cap of {} new issue(s) reached for `{}`**: still failing, not opening another issue.\n\n{}",
                    self.cfg.max_issues_per_day,
                    a.check.subject,
                    self.comment_body(a)
                );
                self.comment_once(n, a, &body, redelivery).await?;
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(sig);
            }
            st.pending = false;
            return Ok(Outcome::CapReached {
                commented_on: newest.filter(|_| due),
            });
        }
        // Create.
        let fp_label = fingerprint_label(&st.fingerprint);
        let labels = client
            .ensure_labels(&[&self.cfg.label, &fp_label], &self.cfg.label_color)
            .await?;
        let mut assignees = Vec::new();
        let mut missing = Vec::new();
        for name in self.cfg.assignees.clone() {
            let exists = match self.known_users.get(&name) {
                Some(e) => *e,
                None => {
                    let e = client.user_exists(&name).await?;
                    self.known_users.insert(name.clone(), e);
                    e
                }
            };
            if exists {
                assignees.push(name);
            } else {
                missing.push(name);
            }
        }
        let mut opt = CreateIssueOption {
            title: self.title(&a.check),
            body: self.open_body(st, a, &missing),
            assignees,
            labels,
        };
        let created = match client.create_issue(&opt).await {
            Err(Error::Status {
                status: 422 | 404,
                message,
                ..
            }) if !opt.assignees.is_empty() => {
                tracing::warn!(%message, "gitea refused the assignees; creating the issue without them");
                missing.append(&mut opt.assignees);
                opt.body = self.open_body(st, a, &missing);
                client.create_issue(&opt).await?
            }
            other => other?,
        };
        st.created_today += 1;
        // Post-create check: another engine (another host, no shared lock)
        // may have created one too. Keep the lowest number, close the rest.
        let mut open = self.find_open(st, &a.check, false).await?;
        if !open.iter().any(|i| i.number == created.number) {
            open.push(created.clone());
            open.sort_by_key(|i| i.number);
        }
        let keep = self
            .settle(st, open)
            .await?
            .map_or(created.number, |i| i.number);
        st.open_issue = Some(keep);
        st.pending = false;
        st.last_comment_at = Some(a.decided_at);
        st.last_signature = Some(sig);
        if keep == created.number {
            Ok(Outcome::Created { number: keep })
        } else {
            Ok(Outcome::Adopted { number: keep })
        }
    }

    /// With no local memory of a closed issue: the newest page of closed
    /// issues, looking for this subject's within the window.
    async fn recently_closed(
        &self,
        st: &SubjectState,
        now: i64,
        window: i64,
    ) -> Result<Option<u64>, Error> {
        let client = self.client()?;
        let q = IssueQuery {
            state: Some(IssueState::Closed),
            labels: vec![self.cfg.label.clone()],
            max_pages: 1,
        };
        let closed = client.list_issues(&q).await?;
        Ok(closed
            .iter()
            .filter(|i| issue_matches(i, &st.fingerprint))
            .filter(|i| {
                i.closed_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .is_some_and(|t| now.saturating_sub(t) <= window)
            })
            .map(|i| i.number)
            .max())
    }

    fn open_body(&self, st: &SubjectState, a: &QueuedAction, missing: &[String]) -> String {
        let mut b = String::new();
        b.push_str(&marker(&st.fingerprint));
        if !a.id.is_empty() {
            b.push_str(&action_marker(&a.id));
        }
        b.push_str(&format!(
            "\n**Subject:** `{}`\n**Failing since:** {}\n",
            a.check.subject.replace('`', "'"),
            rfc3339(a.down_since.unwrap_or(a.decided_at))
        ));
        if !missing.is_empty() {
            b.push_str(&format!(
                "\n> Note: could not assign {} (no such user, or not assignable in this repository).\n",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        b.push_str("\n## Diagnostics\n\n");
        b.push_str(a.check.diagnostics.trim());
        b.push_str(&format!(
            "\n\n---\n_Opened by the nexus incident engine on {} at {}. It comments while the problem lasts and closes this issue on recovery._\n",
            nexus_heartbeat::hostname(),
            rfc3339(a.decided_at)
        ));
        b
    }

    fn comment_body(&self, a: &QueuedAction) -> String {
        format!(
            "## Still failing: {}\n\n_Observed at {}._\n\n{}\n",
            a.check.summary.trim(),
            rfc3339(a.decided_at),
            a.check.diagnostics.trim()
        )
    }

    fn recovery_body(&self, a: &QueuedAction) -> String {
        let down = a
            .down_since
            .map(|s| nexus_heartbeat::format_duration(a.decided_at.saturating_sub(s) as f64));
        format!(
            "## ✅ Recovered: `{}`\n\n{}\n\nRecovered at {}{}. Closing.\n",
            a.check.subject.replace('`', "'"),
            a.check.summary.trim(),
            rfc3339(a.decided_at),
            down.map_or(String::new(), |d| format!(" after being down for {d}"))
        )
    }
}

/// An open that refused a symbolic link (`ELOOP` under `O_NOFOLLOW`,
/// `ENOTDIR` with `O_DIRECTORY` too) says so; anything else is the I/O error.
fn nofollow_error(path: &Path, op: &'static str, source: std::io::Error) -> Error {
    use rustix::io::Errno;
    let refused = matches!(
        Errno::from_io_error(&source),
        Some(Errno::LOOP | Errno::NOTDIR)
    ) && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let op = if refused {
        "refusing a symbolic link"
    } else {
        op
    };
    Error::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// The fingerprint in a body marker, if any.
fn parse_marker(body: &str) -> Option<String> {
    let start = body.find("<!-- nexus-incident:")? + "<!-- nexus-incident:".len();
    let rest = &body[start..];
    let fp: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (fp.len() == 16).then_some(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_namespaced() {
        assert_eq!(
            fingerprint("watchdog", "nexus"),
            fingerprint("watchdog", "nexus")
        );
        assert_ne!(
            fingerprint("watchdog", "nexus"),
            fingerprint("pool", "nexus")
        );
        assert_eq!(fingerprint("watchdog", "nexus").len(), 16);
        // Pinned: a change would orphan every open issue.
        assert_eq!(fingerprint("watchdog", "nexus"), "fdb2d058248fe19f");
    }

    #[test]
    fn the_signature_is_what_fails_not_how_it_looks() {
        let sig = |summary: &str, diag: &str, problems: &[&str]| {
            signature(&Check::failing("s", summary, diag).with_problems(problems.iter().copied()))
        };
        let a = sig("timmy: agent dead", "age 301s, pid 4242", &[]);
        assert_eq!(
            a,
            sig("timmy: agent dead", "age 999s\n- revive started", &[])
        );
        assert_eq!(a, sig(" timmy: agent dead ", "", &[]));
        assert_ne!(a, sig("timmy: agent hung", "", &[]));
        // Counts are numbers; names and severities are not.
        assert_eq!(
            sig("2 job(s) silent: a, b", "", &[]),
            sig("3 job(s) silent: a, b", "", &[])
        );
        let p = sig("down", "", &["heartbeat:critical", "syntax:warning"]);
        assert_eq!(
            p,
            sig("down", "", &["syntax:warning", "heartbeat:critical"])
        );
        assert_ne!(p, sig("down", "", &["heartbeat:warning", "syntax:warning"]));
        assert_ne!(p, sig("down", "", &["heartbeat:critical"]));
    }

    #[test]
    fn a_title_prefix_matches_whole_words_only() {
        assert!(title_matches("[pool] a: agent dead (300s)", "[pool] a:"));
        assert!(!title_matches("[pool] ab: agent dead (300s)", "[pool] a:"));
        assert!(!title_matches("[pool] ab: agent dead", "[pool] a"));
        assert!(title_matches("[watchdog] Nexus unhealthy: x", "[watchdog]"));
        assert!(title_matches("[watchdog]", " [watchdog] "));
        assert!(!title_matches("[watchdog]x Nexus unhealthy", "[watchdog]"));
        assert!(!title_matches("[watchdog] Nexus unhealthy", ""));
    }

    #[test]
    fn the_subject_prefix_is_the_title_prefix_and_the_title_subject() {
        let e = Engine::new(EngineConfig::new(Path::new("/x"), "pool", "[pool] "), None);
        let c = Check::failing("agent:a", "a: agent dead", "");
        assert_eq!(e.subject_prefix(&c), "[pool]");
        assert_eq!(e.subject_prefix(&c.with_title_subject(" a: ")), "[pool] a:");
    }

    #[test]
    fn marker_round_trips() {
        let fp = fingerprint("watchdog", "nexus");
        let body = format!("{}\nrest", marker(&fp));
        assert_eq!(parse_marker(&body), Some(fp));
        assert_eq!(parse_marker("<!-- nexus-incident:xyz -->"), None);
        assert_eq!(parse_marker("no marker"), None);
    }
}
