//! State changes between checks, kept for the Night Watch report.
//!
//! `<state_dir>/checker-state.json` holds the last status of every job
//! (atomic writes); `<state_dir>/checker-history.jsonl` gets one line per
//! change (one `O_APPEND` write per line). Readers skip malformed lines.
//!
//! [`events`] turns a report into the shared history's observations
//! (`nexus-history`, `[history]`), one per job, which keeps only changes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{CheckReport, Error, JobStatus};

/// History older than this is dropped when the file is compacted.
const KEEP_SECONDS: f64 = 7.0 * 86_400.0;
/// Compact the history file when it grows past this.
const COMPACT_BYTES: u64 = 1 << 20;

/// One job changing status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When it was seen, RFC 3339.
    pub at: String,
    /// The same, epoch seconds.
    pub epoch: f64,
    /// Job name as in the report.
    pub job: String,
    /// The previous status (`None` for a job seen for the first time).
    pub from: Option<JobStatus>,
    /// Status the job moved to at this check.
    pub to: JobStatus,
    /// Why, as the check said.
    pub reason: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    jobs: BTreeMap<String, JobStatus>,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("checker-state.json")
}

fn history_path(dir: &Path) -> PathBuf {
    dir.join("checker-history.jsonl")
}

/// A job's name in the shared history: `<job>@<host>` (a pushed record's
/// name already says its host; a local one gets `host`), so one file can
/// hold many hosts' jobs; its group is that host.
pub fn subject(job: &str, host: &str) -> (String, String) {
    match job.rsplit_once('@') {
        Some((_, h)) if !h.is_empty() => (job.to_owned(), h.to_owned()),
        _ => (format!("{job}@{host}"), host.to_owned()),
    }
}

/// One observation per job of `report` for the shared history, stamped at
/// the check's time: the recorder keeps a row only when a job's status
/// changed (see `nexus_history`).
pub fn events(report: &CheckReport, host: &str) -> Vec<nexus_history::Event> {
    let at_ms = (report.checked_at_epoch * 1000.0) as i64;
    report
        .jobs
        .iter()
        .map(|j| {
            let (subject, group) = subject(&j.job, host);
            nexus_history::Event {
                at_ms,
                kind: nexus_history::Kind::Cron,
                group,
                subject,
                old_state: String::new(),
                new_state: j.status.as_str().to_owned(),
                reason: j.reason.clone(),
                actor: String::new(),
            }
        })
        .collect()
}

/// Compares `report` with the previous state, appends the changes to the
/// history and saves the new state. Returns the changes.
pub fn record(dir: &Path, report: &CheckReport) -> Result<Vec<Transition>, Error> {
    let previous: StateFile = std::fs::read(state_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let changes: Vec<Transition> = report
        .jobs
        .iter()
        .filter(|j| previous.jobs.get(&j.job) != Some(&j.status))
        .map(|j| Transition {
            at: report.checked_at.clone(),
            epoch: report.checked_at_epoch,
            job: j.job.clone(),
            from: previous.jobs.get(&j.job).copied(),
            to: j.status,
            reason: j.reason.clone(),
        })
        .collect();
    if !changes.is_empty() {
        append(dir, &changes)?;
    }
    let state = StateFile {
        jobs: report
            .jobs
            .iter()
            .map(|j| (j.job.clone(), j.status))
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&state).map_err(|e| Error::Io {
        op: "serialise",
        path: state_path(dir),
        source: std::io::Error::other(e),
    })?;
    nexus_stdx::write_private(&state_path(dir), &bytes, true)?;
    compact_if_large(dir, report.checked_at_epoch)?;
    Ok(changes)
}

fn append(dir: &Path, changes: &[Transition]) -> Result<(), Error> {
    let path = history_path(dir);
    let io = |op| {
        let path = path.clone();
        move |source| Error::Io { op, path, source }
    };
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create directory for"))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("open"))?;
    for t in changes {
        let mut line = serde_json::to_vec(t).map_err(|e| Error::Io {
            op: "serialise",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        // One write per line: O_APPEND keeps lines of concurrent writers whole.
        f.write_all(&line).map_err(io("append to"))?;
    }
    f.sync_all().map_err(io("fsync"))
}

/// Transitions at or after `since` (epoch seconds), oldest first, and the
/// number of lines that could not be parsed (a torn line from a crash).
pub fn read_since(dir: &Path, since: f64) -> (Vec<Transition>, usize) {
    let Ok(text) = std::fs::read_to_string(history_path(dir)) else {
        return (Vec::new(), 0);
    };
    let mut skipped = 0;
    let out = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<Transition>(l) {
            Ok(t) => Some(t),
            Err(_) => {
                skipped += 1;
                None
            }
        })
        .filter(|t| t.epoch >= since)
        .collect();
    (out, skipped)
}

fn compact_if_large(dir: &Path, now: f64) -> Result<(), Error> {
    let path = history_path(dir);
    match std::fs::metadata(&path) {
        Ok(m) if m.len() > COMPACT_BYTES => {}
        _ => return Ok(()),
    }
    let (keep, _) = read_since(dir, now - KEEP_SECONDS);
    let mut bytes = Vec::new();
    for t in keep {
        if let Ok(mut line) = serde_json::to_vec(&t) {
            line.push(b'\n');
            bytes.extend(line);
        }
    }
    nexus_stdx::write_private(&path, &bytes, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobReport, Registry, Scan, evaluate};

    fn report(now: f64, jobs: &[(&str, JobStatus)]) -> CheckReport {
        let mut r = evaluate(&Registry::default(), &Scan::default(), now);
        r.jobs = jobs
            .iter()
            .map(|(n, s)| JobReport {
                job: n.to_string(),
                status: *s,
                reason: format!("{n} is {s}"),
                age_seconds: None,
                interval_seconds: None,
                ratio: None,
                path: None,
                last_run_iso: None,
                exit_code: None,
                schedule: None,
                registered: true,
            })
            .collect();
        r
    }

    /// One event per job, named `<job>@<host>` in the host's group; a
    /// pushed record keeps the host its name says.
    #[test]
    fn events_name_each_job_with_its_host() {
        let r = report(
            1_800_000_000.5,
            &[("backup", JobStatus::Stale), ("sync@b", JobStatus::Ok)],
        );
        let ev = events(&r, "a");
        let got: Vec<(&str, &str, &str)> = ev
            .iter()
            .map(|e| (e.group.as_str(), e.subject.as_str(), e.new_state.as_str()))
            .collect();
        assert_eq!(got, [("a", "backup@a", "STALE"), ("b", "sync@b", "OK")]);
        assert_eq!(ev[0].at_ms, 1_800_000_000_500);
        assert_eq!(ev[0].reason, "backup is STALE");
        assert!(ev.iter().all(|e| e.kind == nexus_history::Kind::Cron));
        assert_eq!(subject("odd@", "h").0, "odd@@h");
    }

    #[test]
    fn history_and_state_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        record(&dir, &report(100.0, &[("a", JobStatus::Ok)])).unwrap();
        record(&dir, &report(200.0, &[("a", JobStatus::Stale)])).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&history_path(&dir)), 0o600);
        assert_eq!(mode(&state_path(&dir)), 0o600);
    }

    #[test]
    fn records_only_changes_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let t = record(dir.path(), &report(100.0, &[("a", JobStatus::Ok)])).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].from, None);
        let t = record(dir.path(), &report(200.0, &[("a", JobStatus::Ok)])).unwrap();
        assert!(t.is_empty());
        // A crash left half a line behind.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(history_path(dir.path()))
            .unwrap();
        f.write_all(b"{\"at\":\"2027").unwrap();
        drop(f);
        std::fs::write(
            history_path(dir.path()),
            [
                std::fs::read(history_path(dir.path())).unwrap(),
                b"\n".to_vec(),
            ]
            .concat(),
        )
        .unwrap();
        let t = record(dir.path(), &report(300.0, &[("a", JobStatus::Stale)])).unwrap();
        assert_eq!(
            (t[0].from, t[0].to),
            (Some(JobStatus::Ok), JobStatus::Stale)
        );
        let (all, skipped) = read_since(dir.path(), 0.0);
        assert_eq!(skipped, 1);
        assert_eq!(all.len(), 2);
        let (recent, _) = read_since(dir.path(), 250.0);
        assert_eq!(recent.len(), 1);
    }
}
