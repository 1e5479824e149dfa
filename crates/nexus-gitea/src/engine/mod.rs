//! The incident engine: one open issue per failing subject (docs/SPEC.md
//! §1.5). This module owns [`Engine`] and its run loop (observe, tick,
//! flush, adopt), the lock and the state files; the rest is split by
//! concern: `types` (settings and outcomes), `limiter` (the rate limit),
//! `deferred` (subjects the limit held back), `apply` (acting on Gitea) and
//! `bodies` (fingerprints, markers and the text written on issues).

mod apply;
mod bodies;
mod deferred;
mod limiter;
mod types;

pub use bodies::{action_marker, fingerprint, fingerprint_label, marker, signature};
pub use types::{Clock, EngineConfig, OUTBOX_RETRY, Outcome};

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

// Intervals between runs (comments, the rate-limit window) are on the wall
// clock; a stamp from the future counts as long past. Reopening a recently
// closed issue keeps the plain difference: after a clock jump it reopens
// rather than files a duplicate.
use nexus_stdx::elapsed_since as elapsed;

use crate::check::Check;
use crate::client::GiteaClient;
use crate::error::Error;
use crate::outbox::{ActionKind, Outbox, QueuedAction};
use crate::state::{self, SubjectState};
use crate::types::{Issue, IssueQuery};

use bodies::{new_action_id, parse_marker};
use limiter::Limiter;

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
        let limiter = Limiter::new(
            cfg.max_actions as usize,
            cfg.action_window.as_secs().max(1) as i64,
        );
        Engine {
            limiter,
            deferred_order: VecDeque::new(),
            deferred: HashMap::new(),
            since: HashMap::new(),
            deferred_loaded: false,
            deferred_dirty: false,
            cfg,
            client,
            clock: Arc::new(|| nexus_stdx::now_epoch() as i64),
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
            self.limiter.len(),
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

    /// Delivers the outbox unless a recent failure put it on hold. Returns
    /// whether entries remain.
    async fn flush_or_hold(&mut self, now: i64) -> Result<bool, Error> {
        if now < self.flush_hold_until {
            Ok(!self.outbox.is_empty()?)
        } else {
            self.flush_locked().await
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
