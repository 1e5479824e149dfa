//! `watchdog.toml`: what to check, how to recover, and (typed by the
//! binary, see [`WatchdogFile::load_with`]) how to alert.
//! Every table denies unknown keys, so a typo is an error that names it.
//! The commented reference is `docs/examples/watchdog.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_probe::{ProbeSpec, RunnerConfig, Status};
use nexus_stdx::deserialize_duration;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::ConfigError;

/// A watchdog TOML file, parsed; `[incident]`, `[telegram]`, `[webhook]`,
/// `[ntfy]` and `[email]` are left to the binary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogFile {
    /// Mode and status settings.
    #[serde(default)]
    pub watchdog: WatchdogSection,
    /// `[incident]`: the binary's (this crate never talks to Gitea).
    #[serde(default, rename = "incident")]
    _incident: Option<IgnoredAny>,
    /// `[telegram]`: the binary's.
    #[serde(default, rename = "telegram")]
    _telegram: Option<IgnoredAny>,
    /// `[history]`: the binary's (`nexus_history::Settings`).
    #[serde(default, rename = "history")]
    _history: Option<IgnoredAny>,
    /// `[webhook]`, `[ntfy]`, `[email]`: the binary's.
    #[serde(default, rename = "webhook")]
    _webhook: Option<IgnoredAny>,
    #[serde(default, rename = "ntfy")]
    _ntfy: Option<IgnoredAny>,
    #[serde(default, rename = "email")]
    _email: Option<IgnoredAny>,
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
    /// Check name it reacts to (a probe's `name`, e.g. `ws_gateway`).
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
        file.validate().map_err(|(at, why)| ConfigError::Invalid {
            origin: origin.to_string(),
            at,
            why,
        })?;
        Ok(file)
    }

    /// [`WatchdogFile::parse`], and the tables this crate leaves to the
    /// binary (`[incident]`, `[telegram]`) typed as `A` (the binary's
    /// `nexus_alert::AlertTables`), from the same text: a bad key there
    /// fails here, naming the file and the key.
    pub fn parse_with<A: DeserializeOwned>(
        text: &str,
        origin: &str,
    ) -> Result<(WatchdogFile, A), ConfigError> {
        let file = WatchdogFile::parse(text, origin)?;
        let tables = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Ok((file, tables))
    }

    /// [`WatchdogFile::load`] with the binary's tables (see
    /// [`WatchdogFile::parse_with`]).
    pub fn load_with<A: DeserializeOwned>(path: &Path) -> Result<(WatchdogFile, A), ConfigError> {
        let text = nexus_stdx::read_config(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WatchdogFile::parse_with(&text, &path.display().to_string())
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<WatchdogFile, ConfigError> {
        let text = nexus_stdx::read_config(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WatchdogFile::parse(&text, &path.display().to_string())
    }

    /// What may work only later, each line naming the probe and key (a
    /// disk path that does not exist yet): `check-config` prints them, the
    /// watchdog logs them once at start.
    pub fn findings(&self) -> nexus_stdx::Findings {
        let mut f = nexus_stdx::Findings::default();
        for p in &self.probes {
            for w in p.kind.warnings() {
                f.warn(format!("[[probe]] {:?} ({}): {w}", p.name, p.kind.as_str()));
            }
        }
        f
    }

    /// What serde cannot check: names, references between tables. The
    /// error is the table and key, and what is wrong.
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |at: &str, why: String| Err((at.to_string(), why));
        let mut names = std::collections::HashSet::new();
        for p in &self.probes {
            if !names.insert(p.name.as_str()) {
                return bad(
                    "[[probe]] `name`",
                    format!("two probes are named {:?}", p.name),
                );
            }
        }
        if self.watchdog.interval.is_zero() {
            return bad("[watchdog] `interval`", "must be positive".into());
        }
        if let Err(e) = nexus_heartbeat::CronDirs::validate_job_name(&self.watchdog.heartbeat_job) {
            return bad("[watchdog] `heartbeat_job`", e.to_string());
        }
        for (i, r) in self.recovery.iter().enumerate() {
            let at = format!("[[recovery]] #{} (check {:?})", i + 1, r.check);
            if !self.probes.is_empty() && !names.contains(r.check.as_str()) {
                return bad(&at, "`check` names no probe".into());
            }
            if r.restart.is_empty() && r.cleanup.is_empty() {
                return bad(&at, "give `restart` or `cleanup`".into());
            }
            if r.max_attempts == 0 {
                return bad(&at, "`max_attempts` must be at least 1".into());
            }
            for c in &r.cleanup {
                if !c.root.is_absolute() {
                    return bad(
                        &at,
                        format!("cleanup `root` {} must be absolute", c.root.display()),
                    );
                }
                if c.pattern.is_empty() || c.pattern.contains('/') {
                    return bad(
                        &at,
                        format!("cleanup `pattern` {:?} must be a file-name glob", c.pattern),
                    );
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
        #[derive(Deserialize)]
        struct Tables {
            incident: Option<toml::Table>,
            telegram: Option<toml::Table>,
        }
        let (f, t) = WatchdogFile::load_with::<Tables>(&path).unwrap();
        assert!(f.probes.len() >= 8, "{}", f.probes.len());
        assert!(t.incident.is_some() && t.telegram.is_some());
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

    /// The binary's tables are typed from the same text: a bad key there
    /// fails at load, naming the file and the key.
    #[test]
    fn a_bad_key_in_the_binary_tables_names_the_file_and_the_key() {
        use nexus_alert::AlertTables;
        let text = "[incident]\nlable = \"x\"\n[watchdog]\ninterval = \"5s\"";
        WatchdogFile::parse(text, "w.toml").unwrap();
        let e = WatchdogFile::parse_with::<AlertTables>(text, "w.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("w.toml") && e.contains("lable"), "{e}");
        let ok = "[telegram]\nchat_id = -5\nrepeat = \"2h\"";
        let (f, t) = WatchdogFile::parse_with::<AlertTables>(ok, "w.toml").unwrap();
        assert_eq!(f.watchdog.interval, Duration::from_secs(60));
        assert!(t.incident.is_none());
        let telegram = t.telegram.map(|t| (t.chat_id, t.repeat));
        assert_eq!(telegram, Some((-5, Duration::from_secs(7200))));
    }
}
