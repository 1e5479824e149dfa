//! `watchdog.toml`: what to check, how to alert, how to recover.
//! Every table denies unknown keys, so a typo is an error that names it.
//! The commented reference is `docs/examples/watchdog.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_alert::{IncidentSettings, TelegramSettings};
use nexus_probe::{ProbeSpec, RunnerConfig, Status};
use nexus_stdx::deserialize_duration;
use serde::Deserialize;

use crate::ConfigError;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogFile {
    /// Mode and status settings.
    #[serde(default)]
    pub watchdog: WatchdogSection,
    /// Gitea issues (one per incident); without a token none are managed.
    #[serde(default)]
    pub incident: Option<IncidentSettings>,
    /// Telegram messages. Absent: no messages.
    #[serde(default)]
    pub telegram: Option<TelegramSettings>,
    /// Probe concurrency and default timeout.
    #[serde(default)]
    pub runner: RunnerConfig,
    /// The checks, in report order.
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeSpec>,
    /// Opt-in recovery actions.
    #[serde(default, rename = "recovery")]
    pub recovery: Vec<RecoverySpec>,
}

/// `[watchdog]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogSection {
    /// Cycle period in `--watch` mode.
    #[serde(deserialize_with = "deserialize_duration")]
    pub interval: Duration,
    /// Unknown counts as degraded (always true for the default four checks).
    pub strict: bool,
    /// Checks whose Unknown is tolerated even when strict (e.g. `gpu`).
    pub optional: Vec<String>,
    /// Where recovery counters and incident state live.
    pub state_dir: Option<PathBuf>,
    /// The incident subject (one issue per subject).
    pub subject: String,
    /// The job name of the watchdog's own cron heartbeat.
    pub heartbeat_job: String,
    /// Where that heartbeat goes (default: the cron heartbeat directories).
    pub heartbeat_dir: Option<PathBuf>,
}

impl Default for WatchdogSection {
    fn default() -> WatchdogSection {
        WatchdogSection {
            interval: Duration::from_secs(60),
            strict: false,
            optional: Vec::new(),
            state_dir: None,
            subject: "nexus".to_string(),
            heartbeat_job: "nexus_watchdog".to_string(),
            heartbeat_dir: None,
        }
    }
}

/// `[[recovery]]`: an opt-in action for one check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// The probe name it reacts to.
    pub check: String,
    /// The statuses that trigger it (default: critical).
    #[serde(default = "critical_only")]
    pub on: Vec<Status>,
    /// A restart command: argv, run without a shell.
    #[serde(default)]
    pub restart: Vec<String>,
    /// Kill the restart command after this long.
    #[serde(default = "thirty_seconds", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// At most this many attempts per `window` (held across one-shot runs).
    #[serde(default = "three")]
    pub max_attempts: u32,
    /// The sliding window of `max_attempts`.
    #[serde(default = "one_hour", deserialize_with = "deserialize_duration")]
    pub window: Duration,
    /// Disk clean-up rules.
    #[serde(default)]
    pub cleanup: Vec<CleanupRule>,
}

/// One clean-up rule: files (or directories) under `root` whose name
/// matches `pattern` and that are older than `older_than`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupRule {
    /// Nothing outside this directory is ever touched.
    pub root: PathBuf,
    /// A file-name glob (`*`, `?`), e.g. `*.log`.
    pub pattern: String,
    /// Only entries last modified longer ago than this.
    #[serde(deserialize_with = "deserialize_duration")]
    pub older_than: Duration,
    /// Match directories (e.g. `__pycache__`) instead of files.
    #[serde(default)]
    pub directories: bool,
}

fn critical_only() -> Vec<Status> {
    vec![Status::Critical]
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn three() -> u32 {
    3
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

impl WatchdogFile {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<WatchdogFile, ConfigError> {
        let file: WatchdogFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        file.validate().map_err(|message| ConfigError::Parse {
            origin: origin.to_string(),
            message,
        })?;
        Ok(file)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<WatchdogFile, ConfigError> {
        let text = nexus_stdx::read_config(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WatchdogFile::parse(&text, &path.display().to_string())
    }

    /// What serde cannot check: names, references between tables.
    fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for p in &self.probes {
            if !names.insert(p.name.as_str()) {
                return Err(format!("two probes are named {:?}", p.name));
            }
        }
        if self.watchdog.interval.is_zero() {
            return Err("[watchdog] `interval` must be positive".to_string());
        }
        nexus_heartbeat::validate_job_name(&self.watchdog.heartbeat_job)
            .map_err(|e| format!("[watchdog] `heartbeat_job`: {e}"))?;
        for (i, r) in self.recovery.iter().enumerate() {
            let at = format!("[[recovery]] #{} (check {:?})", i + 1, r.check);
            if !self.probes.is_empty() && !names.contains(r.check.as_str()) {
                return Err(format!("{at}: `check` names no probe"));
            }
            if r.restart.is_empty() && r.cleanup.is_empty() {
                return Err(format!("{at}: give `restart` or `cleanup`"));
            }
            if r.max_attempts == 0 {
                return Err(format!("{at}: `max_attempts` must be at least 1"));
            }
            for c in &r.cleanup {
                if !c.root.is_absolute() {
                    return Err(format!(
                        "{at}: cleanup `root` {} must be absolute",
                        c.root.display()
                    ));
                }
                if c.pattern.is_empty() || c.pattern.contains('/') {
                    return Err(format!(
                        "{at}: cleanup `pattern` {:?} must be a file-name glob",
                        c.pattern
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/watchdog.toml");
        let f = WatchdogFile::load(&path).unwrap();
        assert!(f.probes.len() >= 8, "{}", f.probes.len());
        assert!(f.incident.is_some() && f.telegram.is_some());
        assert!(!f.recovery.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[watchdog]\nintervall = \"5s\"", "intervall"),
            ("[watchdog]\ninterval = \"soon\"", "soon"),
            (
                "[[probe]]\nname = \"a\"\ntcp = { host = \"h\", port = 1 }\n[[probe]]\nname = \"a\"\ntcp = { host = \"h\", port = 1 }",
                "two probes",
            ),
            (
                "[[probe]]\nname = \"a\"\ntcp = { host = \"h\", port = 1 }\n[[recovery]]\ncheck = \"b\"\nrestart = [\"x\"]",
                "names no probe",
            ),
            ("[[recovery]]\ncheck = \"b\"", "give `restart` or `cleanup`"),
            (
                "[[probe]]\nname = \"gateway_health\"\nhttp = { url = \"http://127.0.0.1:8766/health\", refsued = \"unknown\" }",
                "refsued",
            ),
            (
                "[[recovery]]\ncheck = \"d\"\ncleanup = [{ root = \"logs\", pattern = \"*.log\", older_than = \"7d\" }]",
                "absolute",
            ),
        ];
        for (text, needle) in cases {
            let e = WatchdogFile::parse(text, "w.toml").unwrap_err().to_string();
            assert!(e.contains("w.toml") && e.contains(needle), "{needle}: {e}");
        }
    }
}
