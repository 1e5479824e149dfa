//! The cron-side writer: `<dir>/<job>.last` records (docs/SPEC.md §3.1).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::doc::{CronRecord, CronStatus, WriterStamp};
use nexus_stdx::{hostname, now_epoch, write_atomic};

use crate::{CronDirs, Error};

/// What a run wrapper observed about one run of a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunOutcome {
    /// Epoch seconds when the command started.
    pub started_at: f64,
    /// Epoch seconds when it ended.
    pub finished_at: f64,
    /// Its exit code (128 + signal number when killed by a signal).
    pub exit_code: i32,
}

/// Writes `.last` records into the first [`CronDirs`] candidate that accepts
/// them.
#[derive(Debug, Clone)]
pub struct CronWriter {
    dirs: CronDirs,
    durable: bool,
    pid: u32,
    host: Option<String>,
}

impl CronWriter {
    /// A durable writer for `dirs`, reporting this process's PID.
    pub fn new(dirs: CronDirs) -> CronWriter {
        CronWriter {
            dirs,
            durable: true,
            pid: std::process::id(),
            host: None,
        }
    }

    /// The writer of a daemon's own heartbeat ("who watches the
    /// watcher"): into `dir` when one is given (a flag or the config), else
    /// the resolved cron directories ([`CronDirs::resolve`]), so
    /// `cron-heartbeat-check` sees a watchdog, checker or pool that stopped.
    /// Beat with [`CronWriter::beat`] once per cycle.
    pub fn own(dir: Option<&Path>) -> CronWriter {
        CronWriter::new(CronDirs::resolve(dir))
    }

    /// A daemon's beat, once per cycle: `job` succeeded now and is due
    /// again within `every` (at least 1 s). The error names the file.
    pub fn beat(&self, job: &str, every: Duration) -> Result<PathBuf, Error> {
        self.success(job, every.as_secs().max(1))
    }

    /// Skip the fsyncs.
    pub fn durable(mut self, durable: bool) -> CronWriter {
        self.durable = durable;
        self
    }

    /// Report this PID (e.g. the job's, not the wrapper's).
    pub fn pid(mut self, pid: u32) -> CronWriter {
        self.pid = pid;
        self
    }

    /// Report this host (the job's, when it pushed its run from another
    /// host) instead of this machine's.
    pub fn host(mut self, host: &str) -> CronWriter {
        self.host = Some(host.to_string());
        self
    }

    fn host_name(&self) -> String {
        self.host.as_deref().unwrap_or(hostname()).to_string()
    }

    /// Records a successful completion now (the seed's `write_cron_heartbeat`).
    pub fn success(&self, job: &str, interval_seconds: u64) -> Result<PathBuf, Error> {
        self.write_with(job, |prev| {
            let now = now_epoch();
            CronRecord {
                job: job.to_string(),
                timestamp: Some(now),
                interval_seconds,
                pid: self.pid,
                host: self.host_name(),
                status: CronStatus::Ok,
                started_at: None,
                finished_at: Some(now),
                duration_seconds: None,
                exit_code: None,
                stamp: WriterStamp::next(prev.and_then(|p| p.stamp.seq)),
                extra: prev.map(|p| p.extra.clone()).unwrap_or_default(),
            }
        })
    }

    /// Records that a run started now. `timestamp` keeps the last success,
    /// so a run that never finishes still goes stale; `status` is `running`.
    pub fn start(
        &self,
        job: &str,
        interval_seconds: u64,
        started_at: f64,
    ) -> Result<PathBuf, Error> {
        self.write_with(job, |prev| CronRecord {
            job: job.to_string(),
            timestamp: prev.and_then(|p| p.timestamp),
            interval_seconds,
            pid: self.pid,
            host: self.host_name(),
            status: CronStatus::Running,
            started_at: Some(started_at),
            finished_at: None,
            duration_seconds: None,
            exit_code: None,
            stamp: WriterStamp::next(prev.and_then(|p| p.stamp.seq)),
            extra: prev.map(|p| p.extra.clone()).unwrap_or_default(),
        })
    }

    /// Records one run. A success moves `timestamp`; a failure keeps the
    /// previous success's `timestamp` (or none) and records the exit code, so
    /// the checker sees the job go stale while the file shows why.
    pub fn run(&self, job: &str, interval_seconds: u64, run: RunOutcome) -> Result<PathBuf, Error> {
        self.write_with(job, |prev| {
            let ok = run.exit_code == 0;
            CronRecord {
                job: job.to_string(),
                timestamp: if ok {
                    Some(run.finished_at)
                } else {
                    prev.and_then(|p| p.timestamp)
                },
                interval_seconds,
                pid: self.pid,
                host: self.host_name(),
                status: if ok {
                    CronStatus::Ok
                } else {
                    CronStatus::Failed
                },
                started_at: Some(run.started_at),
                finished_at: Some(run.finished_at),
                duration_seconds: Some((run.finished_at - run.started_at).max(0.0)),
                exit_code: Some(run.exit_code),
                stamp: WriterStamp::next(prev.and_then(|p| p.stamp.seq)),
                extra: prev.map(|p| p.extra.clone()).unwrap_or_default(),
            }
        })
    }

    fn write_with(
        &self,
        job: &str,
        make: impl Fn(Option<&CronRecord>) -> CronRecord,
    ) -> Result<PathBuf, Error> {
        CronDirs::validate_record_name(job)?;
        let mut tried = Vec::new();
        for dir in self.dirs.candidates() {
            let path = dir.join(format!("{job}.last"));
            let prev = read_previous(&path);
            let record = make(prev.as_ref());
            let bytes = serde_json::to_vec(&record).map_err(|source| Error::Serialise {
                path: path.clone(),
                source,
            })?;
            match write_atomic(&path, &bytes, self.durable) {
                Ok(()) => return Ok(path),
                Err(e) => tried.push(format!("{}: {e}", dir.display())),
            }
        }
        Err(Error::NoDirectory {
            job: job.to_string(),
            tried,
        })
    }
}

/// The previous canonical record, if the file holds one. Legacy and corrupt
/// files are simply replaced; their extra fields cannot be trusted.
fn read_previous(path: &Path) -> Option<CronRecord> {
    let bytes = std::fs::read(path).ok()?;
    let mut rec: CronRecord = serde_json::from_slice(&bytes).ok()?;
    // Never carry a stale job name forward from a renamed file.
    rec.extra.retain(|k, _| k != "job");
    Some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn read(path: &Path) -> CronRecord {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn success_writes_the_canonical_keys() {
        let dir = tempfile::tempdir().unwrap();
        let w = CronWriter::new(CronDirs::only(dir.path())).durable(false);
        let p = w.success("db_backup", 86_400).unwrap();
        assert_eq!(p, dir.path().join("db_backup.last"));
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        for key in [
            "job",
            "timestamp",
            "interval_seconds",
            "pid",
            "host",
            "status",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["status"], "ok");
        assert_eq!(v["seq"], 1);
    }

    #[test]
    fn a_daemons_own_beat_goes_to_its_dir_with_a_whole_second_interval() {
        let dir = tempfile::tempdir().unwrap();
        let w = CronWriter::own(Some(dir.path())).durable(false);
        let p = w
            .beat("nexus_watchdog", Duration::from_millis(300))
            .unwrap();
        assert_eq!(p, dir.path().join("nexus_watchdog.last"));
        let r = read(&p);
        assert_eq!(
            r.interval_seconds, 1,
            "a sub-second cycle is due within 1 s"
        );
        let p = w.beat("nexus_watchdog", Duration::from_secs(90)).unwrap();
        assert_eq!(read(&p).interval_seconds, 90);
        assert_eq!(read(&p).stamp.seq, Some(2));
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let err = CronWriter::own(Some(&blocker))
            .beat("nexus_watchdog", Duration::from_secs(60))
            .unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn failure_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let w = CronWriter::new(CronDirs::only(dir.path())).durable(false);
        let ok = RunOutcome {
            started_at: 100.0,
            finished_at: 110.0,
            exit_code: 0,
        };
        let p = w.run("job", 60, ok).unwrap();
        assert_eq!(read(&p).timestamp, Some(110.0));
        let bad = RunOutcome {
            started_at: 200.0,
            finished_at: 230.5,
            exit_code: 3,
        };
        w.run("job", 60, bad).unwrap();
        let r = read(&p);
        assert_eq!(r.timestamp, Some(110.0));
        assert_eq!(r.status, CronStatus::Failed);
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.duration_seconds, Some(30.5));
        assert_eq!(r.stamp.seq, Some(2));
    }

    #[test]
    fn start_keeps_the_last_success_and_says_running() {
        let dir = tempfile::tempdir().unwrap();
        let w = CronWriter::new(CronDirs::only(dir.path())).durable(false);
        let ok = RunOutcome {
            started_at: 1.0,
            finished_at: 2.0,
            exit_code: 0,
        };
        let p = w.run("job", 60, ok).unwrap();
        w.start("job", 60, 50.0).unwrap();
        let r = read(&p);
        assert_eq!(r.status, CronStatus::Running);
        assert_eq!(
            (r.timestamp, r.started_at, r.finished_at),
            (Some(2.0), Some(50.0), None)
        );
    }

    #[test]
    fn never_succeeded_has_no_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let w = CronWriter::new(CronDirs::only(dir.path())).durable(false);
        let bad = RunOutcome {
            started_at: 1.0,
            finished_at: 2.0,
            exit_code: 1,
        };
        let p = w.run("job", 60, bad).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert!(v.get("timestamp").is_none(), "{v}");
    }

    #[test]
    fn falls_back_when_primary_is_unwritable() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("primary");
        std::fs::write(&blocker, b"a file, not a dir").unwrap();
        let fallback = dir.path().join("fallback");
        let w = CronWriter::new(CronDirs::with_fallback(&blocker, &fallback)).durable(false);
        let p = w.success("nightly_watch", 3600).unwrap();
        assert_eq!(p, fallback.join("nightly_watch.last"));
    }

    #[test]
    fn explicit_dir_has_no_fallback_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("f");
        std::fs::write(&blocker, b"x").unwrap();
        let err = CronWriter::new(CronDirs::only(&blocker))
            .success("j", 1)
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"j\"") && msg.contains("f"), "{msg}");
    }

    #[test]
    fn hostile_job_names_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = CronWriter::new(CronDirs::only(dir.path()));
        for job in ["../escape", "a/b", ""] {
            assert!(matches!(w.success(job, 1), Err(Error::JobName(_))));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
