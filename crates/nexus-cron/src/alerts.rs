//! `<alerts_dir>/<job>.alert` markers: one per failing job, removed on
//! recovery, and the P1 log line of each failure.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{CheckReport, JobReport, JobStatus};
use nexus_stdx::format_duration;

/// The content of one `.alert` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Job name; also the marker's file stem.
    pub job: String,
    /// Status at the latest check (never a healthy one: healthy jobs have no marker).
    pub status: JobStatus,
    /// The check's one-line reason, as in [`JobReport::reason`].
    pub reason: String,
    /// Seconds since the last success, if any.
    pub age_seconds: Option<f64>,
    /// Expected interval in seconds (for schedules: the gap between the last two runs).
    pub interval_seconds: Option<f64>,
    /// When the failure was first detected (kept across runs), RFC 3339.
    pub detected_at: String,
    /// When this file was last written, RFC 3339.
    pub updated_at: String,
}

/// What [`sync`] changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertChanges {
    /// Jobs whose marker was created.
    pub raised: Vec<String>,
    /// Jobs whose marker was removed (recovered or no longer monitored).
    pub cleared: Vec<String>,
    /// Files that could not be written or removed (reported, not fatal).
    pub errors: Vec<String>,
}

fn alert_path(dir: &Path, job: &str) -> PathBuf {
    dir.join(format!("{job}.alert"))
}

/// Writes a marker for every failing job (keeping `detected_at`) and
/// removes the markers of every other job.
pub fn sync(dir: &Path, report: &CheckReport) -> AlertChanges {
    let mut changes = AlertChanges::default();
    for job in report.failures() {
        let path = alert_path(dir, &job.job);
        let previous: Option<Alert> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let alert = Alert {
            job: job.job.clone(),
            status: job.status,
            reason: job.reason.clone(),
            age_seconds: job.age_seconds,
            interval_seconds: job.interval_seconds,
            detected_at: previous
                .as_ref()
                .map_or_else(|| report.checked_at.clone(), |p| p.detected_at.clone()),
            updated_at: report.checked_at.clone(),
        };
        let written = serde_json::to_vec_pretty(&alert)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                nexus_stdx::write_private(&path, &bytes, true).map_err(|e| e.to_string())
            });
        match written {
            Ok(()) if previous.is_none() => changes.raised.push(job.job.clone()),
            Ok(()) => {}
            Err(e) => changes.errors.push(e),
        }
    }
    let failing: std::collections::HashSet<&str> =
        report.failures().map(|j| j.job.as_str()).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return changes; // no directory: nothing to clear
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(job) = name.to_str().and_then(|n| n.strip_suffix(".alert")) else {
            continue;
        };
        if failing.contains(job) || job.starts_with('.') {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => changes.cleared.push(job.to_string()),
            Err(e) => changes
                .errors
                .push(format!("cannot remove {}: {e}", entry.path().display())),
        }
    }
    changes.cleared.sort();
    changes
}

/// What a person should do about a failing job: the Night Watch report's
/// (the incident body's) "What to do" line and the Telegram message's
/// hint, one text for both.
pub fn hint(job: &JobReport) -> &'static str {
    match job.status {
        JobStatus::Stale => {
            "read the job's log and its crontab entry; run it by hand to see why it no longer succeeds"
        }
        JobStatus::Failed => {
            "the last run failed or never finished: read the job's log, fix the cause and run it again"
        }
        JobStatus::Missing => {
            "the job never reported: check that it is in the crontab and writes its heartbeat (`nexus-heartbeat run`)"
        }
        JobStatus::Error => {
            "the heartbeat file cannot be read: look at its owner, mode and content"
        }
        JobStatus::Skew => {
            "the heartbeat is dated in the future: check the clocks (NTP) of the writing host"
        }
        JobStatus::Ok | JobStatus::Running | JobStatus::Late => "nothing yet",
    }
}

/// The priority-1 log line for a failing job (docs/SPEC.md §3.2).
pub fn p1_line(job: &JobReport) -> String {
    match (job.status, job.age_seconds, job.interval_seconds) {
        (JobStatus::Stale, Some(age), Some(interval)) => format!(
            "P1 cron job {} stale: last success {} ago, interval {} (ratio {:.2})",
            job.job,
            format_duration(age),
            format_duration(interval),
            age / interval
        ),
        _ => format!(
            "P1 cron job {} {}: {}",
            job.job,
            job.status.as_str().to_lowercase(),
            job.reason
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Registry, Scan, evaluate};

    fn report_with(jobs: &[(&str, JobStatus)]) -> CheckReport {
        let mut r = evaluate(&Registry::default(), &Scan::default(), 1_800_000_000.0);
        r.jobs = jobs
            .iter()
            .map(|(name, status)| JobReport {
                job: name.to_string(),
                status: *status,
                reason: "because".into(),
                age_seconds: Some(610.0),
                interval_seconds: Some(300.0),
                ratio: Some(610.0 / 300.0),
                path: None,
                last_run_iso: None,
                exit_code: None,
                schedule: None,
                registered: false,
            })
            .collect();
        r
    }

    #[test]
    fn markers_follow_failures_and_keep_detected_at() {
        let dir = tempfile::tempdir().unwrap();
        let r = report_with(&[("a", JobStatus::Stale), ("b", JobStatus::Ok)]);
        let c = sync(dir.path(), &r);
        assert_eq!((c.raised, c.cleared), (vec!["a".to_string()], vec![]));
        let first: Alert =
            serde_json::from_slice(&std::fs::read(dir.path().join("a.alert")).unwrap()).unwrap();

        let mut later = report_with(&[("a", JobStatus::Stale)]);
        later.checked_at = "2027-01-16T00:00:00Z".into();
        let c = sync(dir.path(), &later);
        assert!(c.raised.is_empty());
        let again: Alert =
            serde_json::from_slice(&std::fs::read(dir.path().join("a.alert")).unwrap()).unwrap();
        assert_eq!(again.detected_at, first.detected_at);
        assert_eq!(again.updated_at, "2027-01-16T00:00:00Z");

        let c = sync(dir.path(), &report_with(&[("a", JobStatus::Ok)]));
        assert_eq!(c.cleared, ["a"]);
        assert!(!dir.path().join("a.alert").exists());
    }

    #[test]
    fn p1_lines() {
        let r = report_with(&[("db_backup", JobStatus::Stale), ("x", JobStatus::Missing)]);
        assert_eq!(
            p1_line(&r.jobs[0]),
            "P1 cron job db_backup stale: last success 10m 10s ago, interval 5m 0s (ratio 2.03)"
        );
        assert_eq!(p1_line(&r.jobs[1]), "P1 cron job x missing: because");
    }

    #[test]
    fn unwritable_alert_dir_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let c = sync(&file, &report_with(&[("a", JobStatus::Stale)]));
        assert_eq!(c.errors.len(), 1, "{c:?}");
    }
}
