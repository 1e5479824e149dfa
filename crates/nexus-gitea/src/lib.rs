//! Gitea for the Nexus health suite: a typed v1 API client, the incident
//! engine that keeps **one open issue per failing subject**, and the durable
//! outbox that keeps alerts when Gitea is down.
//!
//! # Using the engine (watchdog, cron checker, resurrection pool)
//! Build one [`Engine`] per process at start-up, call [`Engine::adopt`] once,
//! then call [`Engine::observe`] once per cycle for each subject:
//!
//! ```text
//! let client = Token::new(&token_read_by_the_binary)
//!     .map(|t| GiteaClient::new(&GiteaConfig::new(&url, "ops/alerts", t)))
//!     .transpose()?;                       // None: issue management skipped
//! let mut cfg = EngineConfig::new(&state_dir, "watchdog", "[watchdog]");
//! cfg.assignees = vec!["timmy".into()];
//! let mut engine = Engine::new(cfg, client);
//! engine.adopt().await?;                   // start-up: re-find open issues
//! loop {                                   // once per cycle, per subject:
//!     let check = if ok { Check::healthy("nexus", "all checks pass") }
//!                 else { Check::failing("nexus", "Nexus unhealthy: heartbeat", &markdown) };
//!     match engine.observe(&check).await { Ok(outcome) => log(outcome), Err(e) => log(e) }
//! }
//! ```
//!
//! [`Engine::observe`] takes `(subject, healthy?, summary, markdown
//! diagnostics)` as a [`Check`] and does the right thing:
//! - failing, no open issue: reopen the subject's issue if it was closed
//!   within `reopen_window`, else create one (`<title_prefix> <summary>`, the
//!   diagnostics, the engine label plus a fingerprint label, the assignees;
//!   unknown assignees are left out and named in the body);
//! - failing, issue open: comment once `comment_min_interval` has passed
//!   since the last comment (the comment carries the latest diagnostics), or
//!   sooner when what fails changed, the [`signature`] of the summary and
//!   [`Check::problems`] (digits normalised: a check starts or stops
//!   failing, a severity changes), but never within
//!   `comment_change_floor` (default 10 min) of the last comment. New
//!   diagnostics alone (ages, probe lines, a growing event list, time
//!   stamps) never bring a comment forward: a revive loop that changes the
//!   body every few seconds costs no comment, a subject flapping between
//!   two failures one per floor at most;
//! - failing, an open issue found that this engine never commented on (a
//!   fresh state directory, another process, the original tools): it is
//!   tracked ([`Outcome::Adopted`]) and gets a comment with the diagnostics
//!   ([`Outcome::Commented`]) unless Gitea says it was commented within
//!   `comment_min_interval` (its newest comment, else its creation); the
//!   interval then runs from that comment;
//! - healthy, issue open: recovery comment (what, how long down), then close;
//! - at most `max_issues_per_day` issues created per subject;
//! - at most `max_actions` issue actions per `action_window` across all
//!   subjects (the rate limit): beyond it a subject is *deferred*
//!   ([`Outcome::Deferred`]), one entry per subject holding its latest
//!   observation, and acted on oldest first as the window allows, by a later
//!   [`Engine::observe`] or [`Engine::tick`] (callers that do not observe
//!   every subject every cycle, like the pool, call `tick` once per cycle).
//!   The window lives in `limiter.json` and the deferred subjects in
//!   `deferred.json`, so both survive a restart (a crash loop does not reset
//!   the count).
//!   Only the final state is reported: a flap that ended where it started
//!   costs nothing;
//! - `dry_run`: no HTTP call and no file written, [`Outcome::DryRun`] says
//!   what would happen (the caller prints it).
//!
//! Each subject's *fingerprint* ([`fingerprint`]: FNV-1a of label and subject)
//! is stored on the issue twice: as a label `nx-<fp>` and as a hidden body
//! marker `<!-- nexus-incident:<fp> -->`. Issues are found by listing every
//! page of open issues with the engine label and matching the fingerprint
//! client-side, so title edits and lost state never cause duplicates. An open
//! issue with the engine label and the subject's title prefix
//! (`<title_prefix> <`[`Check::title_subject`]`>`, matched word for word) but
//! no fingerprint at all, as the original tools filed them, is the subject's
//! too: the lowest-numbered one is adopted (the marker is added to its body,
//! the fingerprint label to its labels) and any other is closed as its
//! duplicate.
//!
//! # Concurrency and durability
//! - One lock file per state directory (`engine.lock`, std `File::lock`) is
//!   held across find-and-create, so processes sharing the directory never
//!   race. Across hosts, a post-create check closes the newer duplicate with
//!   "Duplicate of #N".
//! - Everything the engine keeps (`engine.lock`, `limiter.json`,
//!   `deferred.json`, `subjects/`, `outbox/` and its `failed/`) is a 0600
//!   file in a 0700 directory: the state directory is created 0700, or
//!   narrowed to it through a descriptor if an older version left it open;
//!   the lock file is opened without following a symbolic link (a symlinked
//!   state directory or lock is refused) and narrowed to 0600 likewise.
//! - Per-subject state (`subjects/<fp>.json`) and the [`Outbox`]
//!   (`outbox/*.json`) are written atomically. When Gitea is unreachable
//!   (network error, 5xx, 429 after retries) the action is queued and
//!   delivered in order at the start of a later cycle (or [`Engine::flush`]),
//!   at most one attempt per `outbox_retry` while it keeps failing, and
//!   within the rate limit.
//! - Exactly once: a `POST` that timed out or got a 5xx may still have taken
//!   effect, so the client does not retry it (only a refused connection or
//!   a 429); the action goes to the outbox. Every action carries an id, put
//!   as a hidden marker ([`action_marker`]) in each comment and issue body it
//!   writes; a redelivery first looks for its marker among the issue's
//!   comments, and an issue that was created is found by its fingerprint.
//!   A reopen comments before it reopens, so no step is lost in between.
//! - A cycle without an action that only moves the start of a failure keeps
//!   it in memory (written with the next action): a flapping fleet does not
//!   rewrite one state file per subject per cycle.
//!
//! # Client
//! [`GiteaClient`]: list issues (every page, by `X-Total-Count` / `Link`;
//! the server caps `limit` at 50), get, create, comment, open/close (`PATCH`
//! answers 201), list/create labels ([`GiteaClient::ensure_labels`] resolves
//! names to ids), [`GiteaClient::user_exists`]. Timeouts on every call,
//! exponential backoff on network errors, 5xx and 429, no retry on other 4xx;
//! [`Error::Status`] carries the status and Gitea's message. A reply is read
//! chunk by chunk up to [`MAX_REPLY_BYTES`] (an error reply up to 64 KiB):
//! past it, [`Error::TooLarge`]. Whatever the server wrote (its message, a
//! decode or transport error quoting it) goes through
//! `nexus_secret::Redactor::clean` before it reaches an error or a log line:
//! a server that echoes the request cannot put the token there, in any
//! encoding, nor escape sequences or line breaks that forge log lines.
//!
//! # What this crate must never do
//! - Show the token: not in logs, errors, `Debug` or `Display` ([`Token`]),
//!   not even where the server echoed it back.
//! - Log or keep server text that was not cleaned (token redacted, control
//!   characters out, an excerpt), or read a reply beyond its cap.
//! - Open a second issue for a subject that has one open.
//! - Make any HTTP call in dry-run mode, or lose a queued action.
//! - Deliver a queued action twice, or out of order.
//! - Exceed `max_actions` per `action_window`, or let its in-memory maps
//!   grow beyond one entry per subject.
//! - Panic on a bad answer, a corrupt state file or a dead server.
//! - Write a file others may read, or open its state through a symbolic link.

mod check;
mod client;
mod engine;
mod error;
mod outbox;
mod state;
mod types;

pub use check::Check;
pub use client::{GiteaClient, GiteaConfig, MAX_REPLY_BYTES, PAGE_LIMIT, Token};
pub use engine::{
    Clock, Engine, EngineConfig, OUTBOX_RETRY, Outcome, action_marker, fingerprint,
    fingerprint_label, marker, signature,
};
pub use error::Error;
pub use outbox::{ActionKind, Outbox, QueuedAction};
pub use types::{
    Comment, CreateIssueCommentOption, CreateIssueOption, CreateLabelOption, EditIssueOption,
    Issue, IssueLabelsOption, IssueQuery, IssueState, Label, User,
};
