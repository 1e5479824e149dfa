//! Per-job verdicts: OK, RUNNING, LATE, STALE, FAILED, MISSING, ERROR, SKEW.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use nexus_heartbeat::Observation;
use nexus_stdx::format_duration;
use nexus_stdx::rfc3339;
use serde::{Deserialize, Serialize};

use crate::registry::{Expect, JobSpec, Registry, Settings};
use crate::scan::{DirProblem, Found, Ignored, Scan};

/// A job's status. Only `Ok` and `Running` are healthy; `Late` is a warning
/// (inside the configured grace: exit 1, but no alert or incident yet);
/// the rest are failures that raise alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Succeeded recently enough.
    Ok,
    /// A run started and is inside its maximum run time.
    Running,
    /// Past its deadline but inside the grace.
    Late,
    /// No success for longer than multiplier x interval (plus grace), or
    /// the last scheduled run did not report.
    Stale,
    /// The last run exited non-zero, or a run never finished.
    Failed,
    /// Expected by the registry, no heartbeat file at all.
    Missing,
    /// The record cannot be read or parsed.
    Error,
    /// The timestamp is in the future beyond the tolerance (clock skew).
    Skew,
}

impl JobStatus {
    /// Raises alerts (P1 line, `.alert` file, incident).
    pub fn is_failure(self) -> bool {
        !matches!(self, JobStatus::Ok | JobStatus::Running | JobStatus::Late)
    }

    /// Healthy: exit code 0 if every job is.
    pub fn is_healthy(self) -> bool {
        matches!(self, JobStatus::Ok | JobStatus::Running)
    }

    /// Upper-case name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "OK",
            JobStatus::Running => "RUNNING",
            JobStatus::Late => "LATE",
            JobStatus::Stale => "STALE",
            JobStatus::Failed => "FAILED",
            JobStatus::Missing => "MISSING",
            JobStatus::Error => "ERROR",
            JobStatus::Skew => "SKEW",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job's status, reason and figures from one check run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    /// Job name: the record's file stem (`db_backup`, or `db_backup@host-b` for a ping) or registry key.
    pub job: String,
    /// Status from this check; it decides the exit code and the alerts.
    pub status: JobStatus,
    /// One line saying why.
    pub reason: String,
    /// Seconds since the last success (`None`: never succeeded / no file).
    pub age_seconds: Option<f64>,
    /// Expected interval (for schedules: the gap between the last two runs).
    pub interval_seconds: Option<f64>,
    /// `age / interval`.
    pub ratio: Option<f64>,
    /// Record file the verdict is based on (`None`: no file found).
    pub path: Option<PathBuf>,
    /// The last success, RFC 3339 UTC.
    pub last_run_iso: Option<String>,
    /// Exit code of the most recent run, when the record has one.
    pub exit_code: Option<i64>,
    /// The cron schedule, for scheduled jobs.
    pub schedule: Option<String>,
    /// Whether the registry lists the job.
    pub registered: bool,
}

/// The result of one check over all jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// When the check ran, RFC 3339 UTC.
    pub checked_at: String,
    /// The same, epoch seconds.
    pub checked_at_epoch: f64,
    /// Every job, failing first, then by name.
    pub jobs: Vec<JobReport>,
    /// Names of the failing jobs.
    pub stale: Vec<String>,
    /// Directories that were scanned and exist.
    pub dirs: Vec<PathBuf>,
    /// Directories that could not be listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dir_problems: Vec<String>,
    /// `*.last` entries that cannot be a job's record (a name that is not
    /// UTF-8 or not a job name). A warning, like `LATE`: not healthy (exit
    /// 1), shown in every output, but no alert or incident of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// No job at all: neither a file nor a registry entry. Never healthy.
    pub nothing_monitored: bool,
}

impl CheckReport {
    /// Exit code 0 only when something is monitored, every job is healthy
    /// and no record was ignored.
    pub fn healthy(&self) -> bool {
        !self.nothing_monitored
            && self.dir_problems.is_empty()
            && self.ignored.is_empty()
            && self.jobs.iter().all(|j| j.status.is_healthy())
    }

    /// Jobs whose status counts as a failure (see [`JobStatus::is_failure`]).
    pub fn failures(&self) -> impl Iterator<Item = &JobReport> {
        self.jobs.iter().filter(|j| j.status.is_failure())
    }
}

fn zoned(epoch: f64, tz: &TimeZone) -> Option<jiff::Zoned> {
    let t = Timestamp::from_nanosecond((epoch * 1e9) as i128).ok()?;
    Some(t.to_zoned(tz.clone()))
}

fn epoch_of(z: &jiff::Zoned) -> f64 {
    z.timestamp().as_nanosecond() as f64 / 1e9
}

/// Evaluates every job found on disk or listed in the registry.
pub fn evaluate(registry: &Registry, scan: &Scan, now: f64) -> CheckReport {
    let mut names: Vec<&String> = registry.jobs.keys().chain(scan.jobs.keys()).collect();
    names.sort();
    names.dedup();
    // Thousands of jobs are judged on all cores (1,024 per thread at
    // least); the order is kept, and a panic is resumed here.
    let mut jobs: Vec<JobReport> = nexus_stdx::par_map(&names, 1024, |name| {
        evaluate_job(
            name,
            registry.jobs.get(*name),
            scan.jobs.get(*name),
            &registry.settings,
            &scan.scanned,
            now,
        )
    });
    jobs.sort_by(|a, b| {
        (!a.status.is_failure(), a.status.is_healthy(), &a.job).cmp(&(
            !b.status.is_failure(),
            b.status.is_healthy(),
            &b.job,
        ))
    });
    let stale = jobs
        .iter()
        .filter(|j| j.status.is_failure())
        .map(|j| j.job.clone())
        .collect();
    CheckReport {
        checked_at: rfc3339(now),
        checked_at_epoch: now,
        nothing_monitored: jobs.is_empty(),
        jobs,
        stale,
        dirs: scan.scanned.clone(),
        dir_problems: scan
            .dir_problems
            .iter()
            .map(|DirProblem { dir, reason }| format!("{}: {reason}", dir.display()))
            .collect(),
        ignored: scan.ignored.clone(),
    }
}

/// The verdict for one job. `spec` is its registry entry, `found` its
/// record on disk; at least one of them is present.
pub fn evaluate_job(
    name: &str,
    spec: Option<&JobSpec>,
    found: Option<&Found>,
    settings: &Settings,
    dirs: &[PathBuf],
    now: f64,
) -> JobReport {
    let schedule = spec.and_then(|s| match &s.expect {
        Expect::Schedule { pattern, .. } => Some(pattern.clone()),
        Expect::Interval(_) => None,
    });
    let mut report = JobReport {
        job: name.to_string(),
        status: JobStatus::Ok,
        reason: String::new(),
        age_seconds: None,
        interval_seconds: spec.and_then(|s| spec_interval(s, now)),
        ratio: None,
        path: found.map(|f| f.path.clone()),
        last_run_iso: None,
        exit_code: None,
        schedule,
        registered: spec.is_some(),
    };
    let Some(found) = found else {
        report.status = JobStatus::Missing;
        let where_ = if dirs.is_empty() {
            "no heartbeat directory exists".to_string()
        } else {
            format!(
                "no {name}.last in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        report.reason = format!("listed in the registry, never reported: {where_}");
        return report;
    };
    let obs = match &found.observed {
        Ok(obs) => obs,
        Err(p) => {
            report.status = JobStatus::Error;
            report.reason = format!("{} {}: {}", found.path.display(), p.state, p.reason);
            return report;
        }
    };
    let (status, reason) = judge(spec, obs, settings, now, &mut report);
    report.status = status;
    report.reason = reason;
    if let Some(file_job) = obs.str_field("job").filter(|j| *j != name) {
        report
            .reason
            .push_str(&format!(" (the file says job {file_job:?})"));
    }
    report
}

/// The interval a registry entry implies at `now`.
fn spec_interval(spec: &JobSpec, now: f64) -> Option<f64> {
    match &spec.expect {
        Expect::Interval(d) => Some(d.as_secs_f64()),
        Expect::Schedule { cron, timezone, .. } => {
            let z = zoned(now, timezone)?;
            let prev = cron.find_previous_occurrence(&z, true).ok()?;
            let before = cron.find_previous_occurrence(&prev, false).ok()?;
            Some(epoch_of(&prev) - epoch_of(&before))
        }
    }
}

fn judge(
    spec: Option<&JobSpec>,
    obs: &Observation,
    settings: &Settings,
    now: f64,
    report: &mut JobReport,
) -> (JobStatus, String) {
    let (interval, interval_note) = match (report.interval_seconds, obs.interval_seconds) {
        (Some(i), _) => (i, ""),
        (None, Some(i)) => (i, ""),
        (None, None) => (
            settings.default_interval.as_secs_f64(),
            " (no interval recorded: default interval)",
        ),
    };
    report.interval_seconds = Some(interval);
    let multiplier = spec
        .and_then(|s| s.multiplier)
        .unwrap_or(settings.multiplier);
    let grace = spec
        .and_then(|s| s.grace)
        .unwrap_or(settings.grace)
        .as_secs_f64();
    report.exit_code = obs.fields.get("exit_code").and_then(|v| v.as_i64());
    let last_success = obs.timestamp;
    if let Some(ts) = last_success {
        let age = now - ts;
        report.age_seconds = Some(age);
        report.ratio = Some(age / interval);
        report.last_run_iso = Some(rfc3339(ts));
        if -age > settings.future_tolerance.as_secs_f64() {
            return (
                JobStatus::Skew,
                format!(
                    "last success is {} in the future: clock skew",
                    format_duration(-age)
                ),
            );
        }
    }
    let field = |k: &str| obs.fields.get(k).and_then(|v| v.as_f64());
    let default_run_time = match spec.map(|s| &s.expect) {
        Some(Expect::Schedule { .. }) => interval.min(3600.0),
        _ => interval,
    };
    let max_run_time = spec
        .and_then(|s| s.max_run_time)
        .map_or(default_run_time, |d: Duration| d.as_secs_f64());
    match obs.str_field("status") {
        Some("running") => {
            let started = field("started_at").unwrap_or(now);
            let running = now - started;
            return if running <= max_run_time {
                (
                    JobStatus::Running,
                    format!(
                        "running for {} (max run time {})",
                        format_duration(running),
                        format_duration(max_run_time)
                    ),
                )
            } else {
                (
                    JobStatus::Failed,
                    format!(
                        "a run started {} ago never finished (max run time {}): hung, or its wrapper was killed",
                        format_duration(running),
                        format_duration(max_run_time)
                    ),
                )
            };
        }
        Some("failed") => {
            let when = field("finished_at").map_or_else(|| "?".to_string(), rfc3339);
            let code = report
                .exit_code
                .map_or_else(|| "unknown".to_string(), |c| c.to_string());
            let since = last_success.map_or_else(
                || "it has never succeeded".to_string(),
                |ts| format!("last success {} ago", format_duration(now - ts)),
            );
            return (
                JobStatus::Failed,
                format!("last run ({when}) exited with code {code}; {since}"),
            );
        }
        _ => {}
    }
    let Some(ts) = last_success else {
        return (
            JobStatus::Stale,
            "no successful run recorded (no `timestamp`)".to_string(),
        );
    };
    let age = now - ts;
    let deadline = match spec.map(|s| &s.expect) {
        Some(Expect::Schedule { cron, timezone, .. }) => {
            // The first scheduled run after the last success must report
            // within the max run time.
            match zoned(ts, timezone).and_then(|z| cron.find_next_occurrence(&z, false).ok()) {
                Some(next) => epoch_of(&next) + max_run_time,
                None => ts + multiplier * interval,
            }
        }
        _ => ts + multiplier * interval,
    };
    let detail = format!(
        "last success {} ago, interval {}{interval_note}, ratio {:.2}",
        format_duration(age),
        format_duration(interval),
        age / interval
    );
    if now > deadline + grace {
        let why = if report.schedule.is_some() {
            format!(
                "missed its scheduled run at {}",
                rfc3339(deadline - max_run_time)
            )
        } else {
            format!("silent for more than {multiplier}x its interval")
        };
        (JobStatus::Stale, format!("{why}: {detail}"))
    } else if now > deadline {
        (
            JobStatus::Late,
            format!(
                "late by {} (grace {}): {detail}",
                format_duration(now - deadline),
                format_duration(grace)
            ),
        )
    } else {
        (JobStatus::Ok, detail)
    }
}

#[cfg(test)]
mod tests;
