//! The history behind the status page (`[history]`), kept off the request
//! path by two threads of their own:
//!
//! - [`HistoryFeed`] refreshes a `nexus_history::Timeline` from the history
//!   file every [`FEED_EVERY`] (the first time the last 7 days, then only
//!   the rows added since) and publishes a [`HistoryView`]: every subject's
//!   state, last events and 24-hour and 7-day bars. A page request takes
//!   the current view (an `Arc`) and does no SQL.
//! - [`CronWatch`] judges the `.last` records the pool sees (the `[ping]`
//!   directory and `[cron] dirs`) with `nexus-cron` every [`CRON_EVERY`]
//!   and records each job's status into the history (the recorder keeps
//!   only changes), so the page shows the pool's own jobs beside those a
//!   `cron-heartbeat-check` and a watchdog record into the same file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nexus_history::{Event, Kind, Reader, Recorder, Subject, Timeline, Uptime};

/// How often the feed reads the history file.
pub const FEED_EVERY: Duration = Duration::from_secs(5);
/// How often the pool judges the cron records it sees.
pub const CRON_EVERY: Duration = Duration::from_secs(30);
/// Events kept per subject for the page.
pub const RECENT: usize = 5;

/// One subject as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Group, name, last state and reason, when it changed, when last seen.
    pub subject: Subject,
    /// The last events, newest first.
    pub recent: Vec<Event>,
    /// The last 24 hours, one bucket an hour.
    pub day: Uptime,
    /// The last 7 days, one bucket per 6 hours.
    pub week: Uptime,
}

/// The history as of its last refresh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryView {
    /// When it was read, ms since the epoch (0: not yet).
    pub refreshed_at_ms: i64,
    /// Agents by key (`<cell>/<name>`).
    pub agents: HashMap<String, Row>,
    /// Cron jobs, by group then name.
    pub cron: Vec<Row>,
    /// Watchdog checks, by group then name.
    pub checks: Vec<Row>,
    /// Why the file could not be read, while it cannot.
    pub error: Option<String>,
}

impl HistoryView {
    /// The view of a refreshed timeline.
    pub fn of(t: &Timeline) -> HistoryView {
        let row = |tr: &nexus_history::Tracked| Row {
            subject: tr.subject.clone(),
            recent: tr.recent.iter().cloned().collect(),
            day: tr.day.clone(),
            week: tr.week.clone(),
        };
        HistoryView {
            refreshed_at_ms: t.refreshed_at_ms(),
            agents: t
                .of_kind(Kind::Agent)
                .into_iter()
                .map(|tr| (tr.subject.subject.clone(), row(tr)))
                .collect(),
            cron: t.of_kind(Kind::Cron).into_iter().map(row).collect(),
            checks: t.of_kind(Kind::Check).into_iter().map(row).collect(),
            error: None,
        }
    }
}

/// Ends its thread when the last handle is dropped.
#[derive(Debug)]
struct Stop(#[allow(dead_code)] SyncSender<()>);

/// The current [`HistoryView`], refreshed by a thread of its own; clones
/// share it. The thread ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct HistoryFeed {
    current: Arc<RwLock<Arc<HistoryView>>>,
    _stop: Arc<Stop>,
}

impl HistoryFeed {
    /// Starts refreshing from `path` every `every` (the file may not exist
    /// yet: the view says so until it does).
    pub fn start(path: PathBuf, every: Duration) -> std::io::Result<HistoryFeed> {
        let current = Arc::new(RwLock::new(Arc::new(HistoryView::default())));
        let (tx, rx) = sync_channel::<()>(1);
        let publish = Arc::clone(&current);
        std::thread::Builder::new()
            .name("nexus-dashboard".into())
            .spawn(move || {
                let mut timeline = Timeline::new(RECENT);
                let mut reader: Option<Reader> = None;
                loop {
                    let view = refresh(&path, &mut reader, &mut timeline);
                    match publish.write() {
                        Ok(mut g) => *g = Arc::new(view),
                        Err(p) => *p.into_inner() = Arc::new(view),
                    }
                    match rx.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) | Ok(()) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(HistoryFeed {
            current,
            _stop: Arc::new(Stop(tx)),
        })
    }

    /// The view as of the last refresh.
    pub fn current(&self) -> Arc<HistoryView> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }
}

/// One refresh; a file that cannot be read gives a view that says why
/// (and the next refresh opens it afresh).
fn refresh(path: &std::path::Path, reader: &mut Option<Reader>, t: &mut Timeline) -> HistoryView {
    let now = nexus_history::now_ms();
    let r = match reader.take() {
        Some(r) => Ok(r),
        None => Reader::open(path),
    };
    let outcome = r.and_then(|r| {
        r.refresh(t, now)?;
        Ok(r)
    });
    match outcome {
        Ok(r) => {
            *reader = Some(r);
            HistoryView::of(t)
        }
        Err(e) => HistoryView {
            refreshed_at_ms: now,
            error: Some(nexus_stdx::error_chain(&e)),
            ..HistoryView::default()
        },
    }
}

/// Judges the cron records in `dirs` every `every` and records each job's
/// status (see the module's doc); ends with its last handle.
#[derive(Debug, Clone)]
pub struct CronWatch {
    _stop: Arc<Stop>,
}

impl CronWatch {
    /// Starts the thread.
    pub fn start(
        dirs: Vec<PathBuf>,
        recorder: Recorder,
        every: Duration,
    ) -> std::io::Result<CronWatch> {
        let (tx, rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("nexus-cron-watch".into())
            .spawn(move || {
                loop {
                    record_cron(&dirs, &recorder, nexus_stdx::now_epoch());
                    match rx.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) | Ok(()) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(CronWatch {
            _stop: Arc::new(Stop(tx)),
        })
    }
}

/// One pass: every job in `dirs` judged at `now` (no registry: each by the
/// interval its record names) and recorded.
pub fn record_cron(dirs: &[PathBuf], recorder: &Recorder, now: f64) {
    let scan = nexus_cron::scan(dirs);
    let report = nexus_cron::evaluate(&nexus_cron::Registry::default(), &scan, now);
    for e in nexus_cron::history::events(&report, nexus_stdx::hostname()) {
        recorder.record(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The feed publishes what the file holds, and a file that does not
    /// exist yet is said, not fatal.
    #[test]
    fn the_feed_publishes_the_history_and_says_why_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let mut t = Timeline::new(RECENT);
        let mut reader = None;
        let v = refresh(&path, &mut reader, &mut t);
        assert!(v.error.as_deref().unwrap().contains("h.sqlite"), "{v:?}");
        let (rec, _w) = Recorder::start(&path, nexus_history::Options::default()).unwrap();
        let hb = dir.path().join("beats");
        std::fs::create_dir_all(&hb).unwrap();
        let now = nexus_stdx::now_epoch();
        std::fs::write(
            hb.join("nightly@b.last"),
            format!(
                r#"{{"job":"nightly@b","timestamp":{},"interval_seconds":60}}"#,
                now - 600.0
            ),
        )
        .unwrap();
        // Checked a second ago, as the agent's event below: a refresh within
        // the same millisecond would have no time to measure (seen in CI).
        record_cron(&[hb], &rec, now - 1.0);
        let mut e = Event::now(Kind::Agent, "orbit", "cell-1/scout", "", "healthy", "beat");
        e.at_ms -= 1000;
        rec.record(e);
        rec.flush();
        let v = refresh(&path, &mut reader, &mut t);
        assert_eq!(v.error, None);
        assert_eq!(v.cron.len(), 1, "{v:?}");
        let job = &v.cron[0];
        assert_eq!(
            (
                job.subject.subject.as_str(),
                job.subject.group.as_str(),
                job.subject.state.as_str()
            ),
            ("nightly@b", "b", "STALE")
        );
        assert_eq!(job.week.percent, Some(0.0));
        assert_eq!(v.agents["cell-1/scout"].day.percent, Some(100.0));
        // Through the thread: the first view comes without waiting a period.
        let feed = HistoryFeed::start(path, Duration::from_secs(3600)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while feed.current().refreshed_at_ms == 0 {
            assert!(std::time::Instant::now() < deadline, "no view in 10 s");
            std::thread::yield_now();
        }
        assert_eq!(feed.current().cron.len(), 1);
    }
}
