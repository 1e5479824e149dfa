use super::*;

fn ev(at_ms: i64, subject: &str, old: &str, new: &str) -> Event {
    Event {
        at_ms,
        kind: Kind::Agent,
        group: "mission-a".into(),
        subject: subject.into(),
        old_state: old.into(),
        new_state: new.into(),
        reason: format!("{old} -> {new}"),
        actor: String::new(),
    }
}

#[test]
fn records_and_reads_back_subjects_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let (rec, writer) = Recorder::start(&path, Options::default()).unwrap();
    let now = now_ms();
    rec.record(ev(now - 3000, "a1", "healthy", "dead"));
    rec.record(ev(now - 2000, "a1", "dead", "healthy"));
    rec.record(ev(now - 1000, "b'; DROP TABLE events; --", "", "waiting"));
    rec.flush();
    assert_eq!(rec.written(), 3);
    let r = Reader::open(&path).unwrap();
    let subjects = r.subjects().unwrap();
    assert_eq!(subjects.len(), 2);
    let a1 = subjects.iter().find(|s| s.subject == "a1").unwrap();
    assert_eq!(
        (a1.group.as_str(), a1.state.as_str()),
        ("mission-a", "healthy")
    );
    let last = r.last_events(Kind::Agent, "a1", 1).unwrap();
    assert_eq!(last[0].new_state, "healthy");
    assert_eq!(r.last_events(Kind::Agent, "a1", 10).unwrap().len(), 2);
    assert_eq!(
        r.last_state(Kind::Agent, "b'; DROP TABLE events; --")
            .unwrap()
            .as_deref(),
        Some("waiting")
    );
    assert_eq!(r.last_state(Kind::Cron, "a1").unwrap(), None);
    drop(rec);
    writer.join();
}

#[test]
fn long_names_and_reasons_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (rec, _w) = Recorder::start(&path, Options::default()).unwrap();
    let mut e = ev(1, &"é".repeat(1000), "a", "b");
    e.reason = "x".repeat(100_000);
    rec.record(e);
    rec.flush();
    let s = Reader::open(&path).unwrap().subjects().unwrap();
    assert!(s[0].subject.len() <= MAX_NAME && s[0].subject.starts_with('é'));
    assert_eq!(s[0].reason.len(), MAX_REASON);
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (rec, _w) = Recorder::start(
        &path,
        Options {
            queue: 1,
            batch: 1,
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..10_000 {
        rec.record(ev(i, "a", "x", "y"));
    }
    rec.flush();
    assert!(rec.dropped() > 0, "a queue of 1 must drop some of 10,000");
    assert_eq!(rec.dropped() + rec.written(), 10_000);
}

#[test]
fn writer_prunes_rows_older_than_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (rec, w) = Recorder::start(
        &path,
        Options {
            retention: Duration::from_secs(86_400),
            prune_every: Duration::ZERO,
            ..Options::default()
        },
    )
    .unwrap();
    let now = now_ms();
    for i in 0..12_000 {
        rec.record(ev(now - 2 * 86_400_000 + i, "old", "a", "b"));
    }
    rec.record(ev(now, "new", "a", "b"));
    rec.flush();
    // Pruning runs in steps of PRUNE_BATCH after batches: give it batches.
    for _ in 0..4 {
        rec.record(ev(now, "new", "b", "a"));
        rec.flush();
    }
    assert_eq!(rec.pruned(), 12_000);
    let r = Reader::open(&path).unwrap();
    assert!(r.last_events(Kind::Agent, "old", 5).unwrap().is_empty());
    assert_eq!(r.last_events(Kind::Agent, "new", 10).unwrap().len(), 5);
    drop(rec);
    w.join();
}

#[test]
fn prune_and_vacuum_deletes_in_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (rec, w) = Recorder::start(
        &path,
        Options {
            retention: Duration::from_secs(u32::MAX.into()),
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..11_000 {
        rec.record(ev(i, "s", "a", "b"));
    }
    drop(rec);
    w.join();
    assert_eq!(prune_and_vacuum(&path, 10_500).unwrap(), 10_500);
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.last_events(Kind::Agent, "s", 1_000).unwrap().len(), 500);
}

#[test]
fn uptime_counts_the_state_before_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (rec, _w) = Recorder::start(
        &path,
        Options {
            retention: Duration::from_secs(u32::MAX.into()),
            ..Options::default()
        },
    )
    .unwrap();
    // Down since before the window; up at 750 of [0, 1000).
    rec.record(ev(-50, "a", "healthy", "dead"));
    rec.record(ev(750, "a", "dead", "healthy"));
    rec.flush();
    let r = Reader::open(&path).unwrap();
    let u = r
        .uptime(Kind::Agent, "a", 0, 1000, 4, |s| s == "healthy")
        .unwrap();
    assert_eq!(u.buckets, vec![Some(0.0), Some(0.0), Some(0.0), Some(1.0)]);
    assert!((u.percent.unwrap() - 25.0).abs() < 1e-9);
    let none = r.uptime(Kind::Agent, "zz", 0, 1000, 2, |_| true).unwrap();
    assert_eq!(none.buckets, vec![None, None]);
    assert_eq!(none.percent, None);
}

#[test]
fn uptime_unknown_start_counts_only_known_time() {
    let u = compute_uptime(None, [(500, true), (600, false)].into_iter(), 0, 1000, 2);
    assert_eq!(u.buckets, vec![None, Some(0.2)]);
    assert!((u.percent.unwrap() - 20.0).abs() < 1e-9);
}

#[test]
fn corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-sqlite.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = Recorder::start(&path, Options::default()).unwrap_err();
    assert!(err.to_string().contains("not-sqlite.db"), "{err}");
    let err = Reader::open(&path).unwrap_err();
    assert!(err.to_string().contains("not-sqlite.db"), "{err}");
}

#[test]
fn missing_directory_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/h.db");
    let err = Recorder::start(&path, Options::default()).unwrap_err();
    assert!(err.to_string().contains("no/such/dir/h.db"), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = Recorder::start(&path, Options::default()).unwrap_err();
    assert!(
        matches!(err, HistoryError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn reopening_keeps_rows_and_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    for round in 0..2 {
        let (rec, w) = Recorder::start(&path, Options::default()).unwrap();
        rec.record(ev(now_ms(), "a", "x", &format!("s{round}")));
        drop(rec);
        w.join();
    }
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.last_events(Kind::Agent, "a", 10).unwrap().len(), 2);
    let mode: String = r
        .conn
        .query_row("PRAGMA journal_mode", [], |x| x.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
