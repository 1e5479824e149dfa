//! The watchdog's logic, testable without a process: the four default
//! checks of seed 000 ([`SeedChecks`]), the `watchdog.toml` configuration
//! ([`WatchdogFile`]) that covers the seed-002 monitoring service, the
//! overall status rule ([`overall`]: healthy / degraded / critical /
//! unknown), the reports ([`Evaluation`]: JSON, text, Markdown) and the
//! opt-in recovery actions ([`recover`]: restart with a persisted attempt
//! cap, disk clean-up).
//!
//! [`Watchdog::evaluate`] runs every probe exactly once per cycle
//! (concurrently, each under its own timeout, through `nexus-probe`),
//! applies the rule and the recovery actions, and returns one
//! [`Evaluation`] that the binary prints and hands to the incident engine.
//!
//! # What this crate must never do
//! - Call "could not check" healthy when strict (the default four checks
//!   are always strict).
//! - Run a recovery command through a shell, or more often than its cap
//!   allows (the cap is persisted, so cron one-shots respect it too).
//! - Touch a file outside a clean-up root, follow a symlink, or enter
//!   `.git`, `.venv` or `node_modules`.
//! - Talk to Gitea or Telegram: that is the binary's job.

mod config;
mod defaults;
mod error;
mod metrics;
mod recovery;
mod report;
mod status;

use std::path::PathBuf;

pub use config::{CleanupRule, RecoverySpec, WatchdogFile, WatchdogSection};
pub use defaults::{GATEWAY_HEALTH, SeedChecks};
pub use error::{CleanupError, ConfigError};
pub use recovery::{CleanupStats, RecoveryResult, RecoveryState, cleanup, glob_match, recover};
pub use report::{CheckEntry, Evaluation, Finding};
pub use status::{Overall, counts, overall};

use nexus_probe::{ProbeSpec, Runner};

/// One configured watchdog: what to probe and how to judge and recover.
#[derive(Debug, Clone)]
pub struct Watchdog {
    /// The checks, in report order.
    pub probes: Vec<ProbeSpec>,
    /// Runs them (concurrency bound, default timeout).
    pub runner: Runner,
    /// Unknown counts as degraded.
    pub strict: bool,
    /// Checks whose Unknown is tolerated even when strict.
    pub optional: Vec<String>,
    /// Opt-in recovery actions.
    pub recovery: Vec<RecoverySpec>,
    /// Where recovery counters live.
    pub state_dir: PathBuf,
}

impl Watchdog {
    /// Runs every probe once, judges, recovers; warnings are for the log.
    pub async fn evaluate(&self, dry_run: bool) -> (Evaluation, Vec<String>) {
        let verdicts = self.runner.run(&self.probes).await;
        let now = nexus_stdx::now_epoch();
        let (results, warnings) =
            recover(&self.recovery, &verdicts, &self.state_dir, now, dry_run).await;
        let mut e = Evaluation::new(now, verdicts, self.strict, &self.optional);
        e.recovery = results;
        (e, warnings)
    }
}
