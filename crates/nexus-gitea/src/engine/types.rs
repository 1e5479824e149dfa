//! The engine's public settings and answers: [`EngineConfig`] (with the
//! spec defaults), [`Outcome`], [`Clock`] and [`OUTBOX_RETRY`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::outbox::ActionKind;

/// What [`Engine::observe`](super::Engine::observe) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing to do (healthy without issue, or an unchanged failure inside
    /// the comment interval).
    Nothing,
    /// No open or recently closed issue: a new one was filed.
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
        /// Newest issue of the subject, if it existed and a comment was due.
        commented_on: Option<u64>,
    },
    /// The rate limit (`max_actions` per `action_window`) is reached: the
    /// subject's latest observation waits in memory and its final state is
    /// acted on as soon as the window allows (by a later
    /// [`Engine::observe`](super::Engine::observe) or [`Engine::tick`](super::Engine::tick)).
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

/// After a failed outbox delivery, [`Engine::observe`](super::Engine::observe) waits this long before
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
