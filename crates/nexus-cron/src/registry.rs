//! The registry of expected jobs (`/etc/bezalel/cron-jobs.toml`).
//!
//! ```toml
//! [defaults]                 # all optional
//! multiplier = 2.0           # STALE beyond multiplier x interval
//! grace = "0s"               # LATE (not yet STALE) for this long past the deadline
//! default_interval = "1d"    # for touch-style files with no interval of their own
//! timezone = "UTC"           # for schedules
//!
//! [jobs.db_backup]
//! interval = "1d"            # or interval_seconds = 86400
//!
//! [jobs.nightly_watch]
//! schedule = "0 3 * * *"     # cron syntax; late means the last scheduled run did not report
//! timezone = "Europe/Berlin"
//! max_run_time = "2h"        # a run may take this long (RUNNING), then it is hung (FAILED)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::RegistryError;

/// Checker settings that apply to every job unless the job overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// STALE beyond `multiplier` x interval (docs/SPEC.md §3.2: 2).
    pub multiplier: f64,
    /// Absolute grace past the deadline during which a job is LATE, not STALE.
    pub grace: Duration,
    /// Interval for files that record none (touch-style), 1 day as in docs/SPEC.md §3.2.
    pub default_interval: Duration,
    /// How far in the future a timestamp may be before it is clock skew.
    pub future_tolerance: Duration,
    /// Time zone of schedules that name none.
    pub timezone: TimeZone,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            multiplier: 2.0,
            grace: Duration::ZERO,
            default_interval: Duration::from_secs(86_400),
            future_tolerance: Duration::from_secs(300),
            timezone: TimeZone::UTC,
        }
    }
}

/// When a job is expected to succeed.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Every `interval`.
    Interval(Duration),
    /// At every occurrence of a cron schedule, in a time zone.
    Schedule {
        /// `pattern`, parsed once when the registry is loaded.
        cron: Box<Cron>,
        /// Pattern as written in the registry (for messages), e.g. `0 3 * * *`.
        pattern: String,
        /// The job's `timezone`, else the registry default (UTC unless set).
        timezone: TimeZone,
    },
}

/// One expected job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job name (the `.last` file stem).
    pub name: String,
    /// Interval or schedule.
    pub expect: Expect,
    /// Per-job grace (else the default).
    pub grace: Option<Duration>,
    /// How long one run may take before it counts as hung; also how long
    /// after a scheduled time the run may report.
    pub max_run_time: Option<Duration>,
    /// Per-job multiplier (else the default).
    pub multiplier: Option<f64>,
    /// Free text shown in reports.
    pub description: Option<String>,
}

/// The expected jobs and the checker settings.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Defaults for every job.
    pub settings: Settings,
    /// Expected jobs by name.
    pub jobs: BTreeMap<String, JobSpec>,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    jobs: BTreeMap<String, RawJob>,
    /// The binary's (it owns alerting): typed by [`Registry::load_with`].
    #[serde(default, rename = "incident")]
    _incident: Option<IgnoredAny>,
    #[serde(default, rename = "telegram")]
    _telegram: Option<IgnoredAny>,
    /// `[history]`, also the binary's (`nexus_history::Settings`).
    #[serde(default, rename = "history")]
    _history: Option<IgnoredAny>,
    #[serde(default, rename = "webhook")]
    _webhook: Option<IgnoredAny>,
    #[serde(default, rename = "ntfy")]
    _ntfy: Option<IgnoredAny>,
    #[serde(default, rename = "email")]
    _email: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    multiplier: Option<f64>,
    grace: Option<RawDuration>,
    default_interval: Option<RawDuration>,
    future_tolerance: Option<RawDuration>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    interval: Option<RawDuration>,
    interval_seconds: Option<u64>,
    schedule: Option<String>,
    timezone: Option<String>,
    grace: Option<RawDuration>,
    max_run_time: Option<RawDuration>,
    multiplier: Option<f64>,
    description: Option<String>,
}

/// `"90s"`-style text or plain seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        Registry::load_with::<IgnoredAny>(path).map(|(reg, _)| reg)
    }

    /// [`Registry::load`], and the tables this crate leaves to the binary
    /// (`[incident]`, `[telegram]`) typed as `A` (the binary's
    /// `nexus_alert::AlertTables`) from the same text: a bad key there fails
    /// here, naming the file and the key.
    pub fn load_with<A: DeserializeOwned>(path: &Path) -> Result<(Registry, A), RegistryError> {
        let text = nexus_stdx::read_config(path).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut reg, tables) = Registry::parse_with(&text, path)?;
        reg.path = Some(path.to_path_buf());
        Ok((reg, tables))
    }

    /// [`Registry::parse`] with the binary's tables (see
    /// [`Registry::load_with`]).
    pub fn parse_with<A: DeserializeOwned>(
        text: &str,
        path: &Path,
    ) -> Result<(Registry, A), RegistryError> {
        let reg = Registry::parse(text, path)?;
        let tables = toml::from_str(text).map_err(|e| RegistryError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok((reg, tables))
    }

    /// Parses registry text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Registry, RegistryError> {
        let raw: RawRegistry = toml::from_str(text).map_err(|e| RegistryError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let field_err = |job: &str, field: &str, message: String| RegistryError::Field {
            path: path.to_path_buf(),
            job: job.to_string(),
            field: field.to_string(),
            message,
        };
        let dur = |job: &str, field: &str, d: Option<RawDuration>| match d {
            None => Ok(None),
            Some(RawDuration::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
            Some(RawDuration::Text(t)) => nexus_stdx::parse_duration(&t)
                .map(Some)
                .map_err(|e| field_err(job, field, e.to_string())),
        };
        let tz = |job: &str, name: Option<String>| match name {
            None => Ok(None),
            Some(n) => TimeZone::get(&n)
                .map(Some)
                .map_err(|e| field_err(job, "timezone", format!("unknown time zone {n:?}: {e}"))),
        };
        let multiplier = |job: &str, m: Option<f64>| match m {
            Some(m) if !(m.is_finite() && m >= 1.0) => Err(field_err(
                job,
                "multiplier",
                format!("{m} must be a number >= 1"),
            )),
            other => Ok(other),
        };

        let d = raw.defaults;
        let defaults = Settings::default();
        let settings = Settings {
            multiplier: multiplier("[defaults]", d.multiplier)?.unwrap_or(defaults.multiplier),
            grace: dur("[defaults]", "grace", d.grace)?.unwrap_or(defaults.grace),
            default_interval: dur("[defaults]", "default_interval", d.default_interval)?
                .filter(|i| !i.is_zero())
                .unwrap_or(defaults.default_interval),
            future_tolerance: dur("[defaults]", "future_tolerance", d.future_tolerance)?
                .unwrap_or(defaults.future_tolerance),
            timezone: tz("[defaults]", d.timezone)?.unwrap_or(defaults.timezone),
        };

        let mut jobs = BTreeMap::new();
        for (name, j) in raw.jobs {
            nexus_heartbeat::CronDirs::validate_record_name(&name)
                .map_err(|e| field_err(&name, "name", e.to_string()))?;
            let interval = match (dur(&name, "interval", j.interval)?, j.interval_seconds) {
                (Some(_), Some(_)) => {
                    return Err(field_err(
                        &name,
                        "interval",
                        "give interval or interval_seconds, not both".into(),
                    ));
                }
                (Some(i), None) => Some(i),
                (None, Some(s)) => Some(Duration::from_secs(s)),
                (None, None) => None,
            };
            let job_tz = tz(&name, j.timezone)?;
            let expect = match (interval, j.schedule) {
                (Some(_), Some(_)) => {
                    return Err(field_err(
                        &name,
                        "schedule",
                        "give an interval or a schedule, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(field_err(
                        &name,
                        "interval",
                        "an interval or a schedule is required".into(),
                    ));
                }
                (Some(i), None) if i.is_zero() => {
                    return Err(field_err(&name, "interval", "must be positive".into()));
                }
                (Some(i), None) => Expect::Interval(i),
                (None, Some(pattern)) => {
                    let cron = Cron::from_str(&pattern)
                        .map_err(|e| field_err(&name, "schedule", format!("{pattern:?}: {e}")))?;
                    let timezone = job_tz.unwrap_or(settings.timezone.clone());
                    Expect::Schedule {
                        cron: Box::new(cron),
                        pattern,
                        timezone,
                    }
                }
            };
            let spec = JobSpec {
                name: name.clone(),
                expect,
                grace: dur(&name, "grace", j.grace)?,
                max_run_time: dur(&name, "max_run_time", j.max_run_time)?,
                multiplier: multiplier(&name, j.multiplier)?,
                description: j.description,
            };
            jobs.insert(name, spec);
        }
        Ok(Registry {
            settings,
            jobs,
            path: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Registry, RegistryError> {
        Registry::parse(text, Path::new("/etc/bezalel/cron-jobs.toml"))
    }

    #[test]
    fn reads_intervals_schedules_and_defaults() {
        let r = parse(
            r#"
            [defaults]
            multiplier = 3
            grace = "10m"
            timezone = "Europe/Berlin"

            [jobs.db_backup]
            interval = "1d"

            [jobs.runner_health]
            interval_seconds = 900

            [jobs.nightly_watch]
            schedule = "0 3 * * *"
            max_run_time = "2h"
            "#,
        )
        .unwrap();
        assert_eq!(r.settings.multiplier, 3.0);
        assert_eq!(r.settings.grace, Duration::from_secs(600));
        assert!(matches!(r.jobs["db_backup"].expect, Expect::Interval(d) if d.as_secs() == 86_400));
        assert!(
            matches!(r.jobs["runner_health"].expect, Expect::Interval(d) if d.as_secs() == 900)
        );
        match &r.jobs["nightly_watch"].expect {
            Expect::Schedule { timezone, .. } => {
                assert_eq!(timezone.iana_name(), Some("Europe/Berlin"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_file_the_job_and_the_field() {
        let cases = [
            ("[jobs.a]\nschedule = \"61 * * * *\"", "a", "schedule"),
            ("[jobs.a]\ninterval = \"soon\"", "a", "interval"),
            ("[jobs.a]\n", "a", "interval"),
            (
                "[jobs.a]\ninterval = 5\nschedule = \"* * * * *\"",
                "a",
                "schedule",
            ),
            (
                "[jobs.a]\ninterval = 5\ntimezone = \"Mars/Base\"",
                "a",
                "timezone",
            ),
            ("[jobs.\"../x\"]\ninterval = 5", "../x", "name"),
            ("[defaults]\nmultiplier = 0.5", "[defaults]", "multiplier"),
        ];
        for (text, job, field) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("cron-jobs.toml"), "{e}");
            assert!(e.contains(job) && e.contains(field), "{job}/{field}: {e}");
        }
        let e = parse("[jobs.a]\nintervall = 5").unwrap_err().to_string();
        assert!(
            e.contains("cron-jobs.toml") && e.contains("intervall"),
            "{e}"
        );
    }

    /// `[incident]` and `[telegram]` are the binary's, typed from the same
    /// text: a bad key there fails at load, naming the file and the key;
    /// the registry alone accepts the tables.
    #[test]
    fn the_binary_tables_are_typed_and_a_bad_key_is_named() {
        use nexus_alert::AlertTables as Tables;
        let text =
            "[jobs.a]\ninterval = \"1h\"\n[incident]\nlable = \"x\"\n[telegram]\nchat_id = 1";
        assert_eq!(parse(text).unwrap().jobs.len(), 1);
        let path = Path::new("/etc/bezalel/cron-jobs.toml");
        let e = Registry::parse_with::<Tables>(text, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cron-jobs.toml") && e.contains("lable"), "{e}");
        let fixed = text.replace("lable", "label");
        let (_, t) = Registry::parse_with::<Tables>(&fixed, path).unwrap();
        assert_eq!(t.incident.map(|i| i.label).as_deref(), Some("x"));
        assert_eq!(t.telegram.map(|t| t.chat_id), Some(1));
    }

    /// The shipped example parses, alert tables included (the product's
    /// forge lives there, not in the code).
    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/cron-jobs.toml");
        let (reg, tables) = Registry::load_with::<nexus_alert::AlertTables>(&path).unwrap();
        assert_eq!(reg.jobs.len(), 2);
        let incident = tables.incident.unwrap();
        assert!(incident.is_configured() && !incident.assignees.is_empty());
        assert!(tables.telegram.is_some());
    }
}
