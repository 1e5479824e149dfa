//! The incident engine: one open issue per failing subject (spec §1.5).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

impl Check {
    /// A failing observation.
    pub fn failing(subject: &str, summary: &str, diagnostics: &str) -> Check {
        Check {
            subject: subject.to_owned(),
            healthy: false,
            summary: summary.to_owned(),
            diagnostics: diagnostics.to_owned(),
        }
    }

    /// A healthy observation (`summary` says what is fine now).
    pub fn healthy(subject: &str, summary: &str) -> Check {
        Check {
            subject: subject.to_owned(),
            healthy: true,
            summary: summary.to_owned(),
            diagnostics: String::new(),
        }
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
    /// An unchanged failure is commented at most this often. Default 1 h.
    pub comment_min_interval: Duration,
    /// Issues created per subject per UTC day at most. Default 5.
    pub max_issues_per_day: u32,
    /// Make no HTTP call and write no file; report the plan.
    pub dry_run: bool,
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
            max_issues_per_day: 5,
            dry_run: false,
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

/// Signature of a failure: summary and diagnostics with every run of digits
/// replaced by `#` (ages, pids, timestamps change every cycle), hashed.
pub fn signature(summary: &str, diagnostics: &str) -> String {
    let mut norm = String::with_capacity(summary.len() + diagnostics.len());
    let mut in_digits = false;
    for c in summary.chars().chain(['\n']).chain(diagnostics.chars()) {
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
    /// After a failed delivery, cycles before this time (epoch s) do not
    /// retry the outbox: with a black-holed Gitea each attempt costs the
    /// full timeout, and a pool calls `observe` once per agent.
    flush_hold_until: i64,
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
        Engine {
            cfg,
            client,
            clock: Arc::new(|| nexus_heartbeat::now_epoch() as i64),
            outbox,
            known_users: HashMap::new(),
            flush_hold_until: i64::MIN,
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

    /// The fingerprint of a subject under this engine's label.
    pub fn fingerprint(&self, subject: &str) -> String {
        fingerprint(&self.cfg.label, subject)
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    async fn lock(&self) -> Result<LockGuard, Error> {
        let path = self.cfg.state_dir.join("engine.lock");
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.cfg.state_dir)
            .map_err(|source| Error::Io {
                path: self.cfg.state_dir.clone(),
                op: "create dir",
                source,
            })?;
        let p = path.clone();
        let res = tokio::task::spawn_blocking(move || {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)?;
            f.lock()?;
            Ok::<File, std::io::Error>(f)
        })
        .await;
        match res {
            Ok(Ok(f)) => Ok(LockGuard { _file: f }),
            Ok(Err(source)) => Err(Error::Io {
                path,
                op: "lock",
                source,
            }),
            Err(join) => Err(Error::Io {
                path,
                op: "lock",
                source: std::io::Error::other(join.to_string()),
            }),
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

    fn save_state(&self, st: &SubjectState) -> Result<(), Error> {
        state::save(&state::path(&self.cfg.state_dir, &st.fingerprint), st)
    }

    /// What to do for `check` given only the local state (no HTTP).
    fn decide(&self, st: &SubjectState, check: &Check, now: i64) -> Option<ActionKind> {
        if check.healthy {
            return st.is_open().then_some(ActionKind::Resolve);
        }
        if !st.is_open() {
            return Some(ActionKind::Open);
        }
        let sig = signature(&check.summary, &check.diagnostics);
        let due = st.last_comment_at.is_none_or(|t| {
            now.saturating_sub(t) >= self.cfg.comment_min_interval.as_secs() as i64
        });
        // An adopted issue has no known signature: only the interval applies.
        let changed = st.last_signature.as_deref().is_some_and(|s| s != sig);
        (changed || due).then_some(ActionKind::Comment)
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
        let backlog = if now < self.flush_hold_until {
            !self.outbox.is_empty()?
        } else {
            self.flush_locked().await?
        };
        let mut st = self.load_state(&check.subject, &fp);
        let loaded = st.clone();
        if check.healthy {
            // failing_since is cleared when the issue is resolved.
        } else if st.failing_since.is_none() {
            st.failing_since = Some(now);
        }
        let Some(kind) = self.decide(&st, check, now) else {
            if check.healthy {
                st.failing_since = None;
            }
            // The common case (healthy, nothing open) writes nothing.
            if st != loaded {
                self.save_state(&st)?;
            }
            return Ok(Outcome::Nothing);
        };
        let action = QueuedAction {
            kind,
            check: check.clone(),
            decided_at: now,
            down_since: st.failing_since,
        };
        let outcome = if backlog {
            self.queue(&mut st, &action)?
        } else {
            match self.apply(&mut st, &action).await {
                Ok(o) => o,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, subject = %check.subject, "gitea unreachable; action queued");
                    self.queue(&mut st, &action)?
                }
                Err(e) => {
                    self.save_state(&st)?;
                    return Err(e);
                }
            }
        };
        self.save_state(&st)?;
        Ok(outcome)
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
            st.last_signature = Some(signature(&action.check.summary, &action.check.diagnostics));
        }
        Ok(Outcome::Queued { kind: action.kind })
    }

    /// Delivers queued actions now (also done at the start of every
    /// [`Engine::observe`], at most once per [`OUTBOX_RETRY`] after a failed
    /// delivery; this call always tries). Returns how many are still queued.
    pub async fn flush(&mut self) -> Result<usize, Error> {
        if self.cfg.dry_run || self.client.is_none() {
            return self.outbox.len();
        }
        let _lock = self.lock().await?;
        self.flush_locked().await?;
        self.outbox.len()
    }

    /// Delivers in order; stops at the first transient failure. Returns
    /// whether entries remain.
    async fn flush_locked(&mut self) -> Result<bool, Error> {
        for path in self.outbox.entries()? {
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
            match self.apply(&mut st, &action).await {
                Ok(outcome) => {
                    tracing::info!(subject = %action.check.subject, ?outcome, "queued gitea action delivered");
                    self.save_state(&st)?;
                    Outbox::remove(&path)?;
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "gitea still unreachable; outbox kept");
                    self.flush_hold_until =
                        self.now().saturating_add(OUTBOX_RETRY.as_secs() as i64);
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
        let mut by_fp: HashMap<String, u64> = HashMap::new();
        for i in &issues {
            if let Some(fp) = parse_marker(&i.body) {
                let e = by_fp.entry(fp).or_insert(i.number);
                *e = (*e).min(i.number);
            }
        }
        let mut adopted = Vec::new();
        for (fp, number) in by_fp {
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
                st.last_comment_at.get_or_insert(self.now());
                self.save_state(&st)?;
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

    /// Open issues of the subject, lowest number first. With `quick`, the
    /// remembered issue is checked first with one GET.
    async fn find_open(&self, st: &SubjectState, quick: bool) -> Result<Vec<Issue>, Error> {
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
        let mut found: Vec<Issue> = client
            .list_issues(&IssueQuery::open_with_labels(&[&self.cfg.label]))
            .await?
            .into_iter()
            .filter(|i| i.state == IssueState::Open && issue_matches(i, &st.fingerprint))
            .collect();
        found.sort_by_key(|i| i.number);
        Ok(found)
    }

    async fn apply(&mut self, st: &mut SubjectState, a: &QueuedAction) -> Result<Outcome, Error> {
        match a.kind {
            ActionKind::Open => self.apply_open(st, a).await,
            ActionKind::Comment => {
                let open = self.find_open(st, true).await?;
                let Some(issue) = open.first() else {
                    return self.apply_open(st, a).await;
                };
                let client = self.client()?;
                client.comment(issue.number, &self.comment_body(a)).await?;
                st.open_issue = Some(issue.number);
                st.pending = false;
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(signature(&a.check.summary, &a.check.diagnostics));
                Ok(Outcome::Commented {
                    number: issue.number,
                })
            }
            ActionKind::Resolve => {
                let open = self.find_open(st, false).await?;
                let client = self.client()?;
                let body = self.recovery_body(a);
                for issue in &open {
                    client.comment(issue.number, &body).await?;
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
    ) -> Result<Outcome, Error> {
        let client = self.client()?;
        let sig = signature(&a.check.summary, &a.check.diagnostics);
        let open = self.find_open(st, false).await?;
        if let Some(first) = open.first() {
            st.open_issue = Some(first.number);
            st.pending = false;
            st.last_comment_at = Some(a.decided_at);
            st.last_signature = Some(sig);
            return Ok(Outcome::Adopted {
                number: first.number,
            });
        }
        // Reopen a recently closed issue.
        let window = self.cfg.reopen_window.as_secs() as i64;
        let recent = match st.last_closed {
            Some(c) if a.decided_at.saturating_sub(c.at) <= window => Some(c.number),
            Some(_) => None,
            None => self.recently_closed(st, a.decided_at, window).await?,
        };
        if let Some(number) = recent {
            client.set_state(number, IssueState::Open).await?;
            client.comment(number, &self.comment_body(a)).await?;
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
            let due = st.last_signature.as_deref() != Some(sig.as_str())
                || st.last_comment_at.is_none_or(|t| {
                    a.decided_at.saturating_sub(t) >= self.cfg.comment_min_interval.as_secs() as i64
                });
            if let (Some(n), true) = (newest, due) {
                let body = format!(
                    "**Daily cap of {} new issue(s) reached for `{}`**: still failing, not opening another issue.\n\n{}",
                    self.cfg.max_issues_per_day,
                    a.check.subject,
                    self.comment_body(a)
                );
                client.comment(n, &body).await?;
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
        let open = self.find_open(st, false).await?;
        let keep = open
            .first()
            .map_or(created.number, |i| i.number.min(created.number));
        for dup in open.iter().filter(|i| i.number != keep) {
            client
                .comment(dup.number, &format!("Duplicate of #{keep} (opened concurrently by another monitor for the same subject); closing.\n\n{}", marker(&st.fingerprint)))
                .await?;
            client.set_state(dup.number, IssueState::Closed).await?;
        }
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
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .is_some_and(|t| now.saturating_sub(t.unix_timestamp()) <= window)
            })
            .map(|i| i.number)
            .max())
    }

    fn open_body(&self, st: &SubjectState, a: &QueuedAction, missing: &[String]) -> String {
        let mut b = String::new();
        b.push_str(&marker(&st.fingerprint));
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
    fn signature_ignores_numbers_only() {
        let a = signature("heartbeat stale", "age 301s, pid 4242");
        let b = signature("heartbeat stale", "age 999s, pid 17");
        let c = signature("heartbeat stale", "process missing");
        assert_eq!(a, b);
        assert_ne!(a, c);
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
