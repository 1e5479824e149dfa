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

/// The `i`-th change of a subject flapping between `a` and `b` (every
/// event a change, so every one is a row).
fn flip(at_ms: i64, subject: &str, i: i64) -> Event {
    if i % 2 == 0 {
        ev(at_ms, subject, "a", "b")
    } else {
        ev(at_ms, subject, "b", "a")
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
    assert_eq!(rec.dropped() + rec.written() + rec.unchanged(), 10_000);
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
        rec.record(flip(now - 2 * 86_400_000 + i, "old", i));
    }
    rec.record(ev(now, "new", "a", "b"));
    rec.flush();
    // Pruning runs in steps of PRUNE_BATCH after batches: give it batches.
    for i in 1..5 {
        rec.record(flip(now, "new", i));
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
        rec.record(flip(i, "s", i));
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
    let u = compute_uptime(
        None,
        [(500, Some(true)), (600, Some(false))].into_iter(),
        0,
        1000,
        2,
    );
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

/// One-shot checkers record every subject every run: a repeated state is
/// an observation (no row, `seen_ms` advances), an empty old state is
/// filled from the stored one, and an action (an actor) is always a row.
#[test]
fn a_repeated_state_is_an_observation_not_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (rec, _w) = Recorder::start(&path, Options::default()).unwrap();
    let t0 = now_ms() - 10_000;
    let obs = |at: i64, state: &str, reason: &str| Event {
        at_ms: at,
        kind: Kind::Cron,
        group: "host-a".into(),
        subject: "backup".into(),
        old_state: String::new(),
        new_state: state.into(),
        reason: reason.into(),
        actor: String::new(),
    };
    rec.record(obs(t0, "OK", "ran 1m ago"));
    rec.record(obs(t0 + 1000, "OK", "ran 2m ago"));
    rec.record(obs(t0 + 2000, "STALE", "silent 3h"));
    rec.record(obs(t0 + 3000, "STALE", "silent 4h"));
    let mut action = obs(t0 + 4000, "STALE", "acknowledged");
    action.actor = "dashboard:ops".into();
    rec.record(action);
    rec.flush();
    assert_eq!((rec.written(), rec.unchanged()), (3, 2));
    let r = Reader::open(&path).unwrap();
    let ev = r.last_events(Kind::Cron, "backup", 10).unwrap();
    let states: Vec<(&str, &str)> = ev
        .iter()
        .map(|e| (e.old_state.as_str(), e.new_state.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![("STALE", "STALE"), ("OK", "STALE"), ("", "OK")],
        "{ev:?}"
    );
    let s = &r.subjects().unwrap()[0];
    assert_eq!(
        (s.state.as_str(), s.at_ms, s.seen_ms),
        ("STALE", t0 + 4000, t0 + 4000)
    );
    // The observation's reason is the subject's latest.
    rec.record(obs(t0 + 5000, "STALE", "silent 5h"));
    rec.flush();
    let s = &r.subjects().unwrap()[0];
    assert_eq!((s.reason.as_str(), s.seen_ms), ("silent 5h", t0 + 5000));
}

/// A version 1 file (no `seen_ms`) is upgraded in place, its rows kept.
#[test]
fn a_version_1_file_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE subjects (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL,
           grp TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL,
           UNIQUE (kind, subject));
         CREATE TABLE reasons (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
         CREATE TABLE events (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,
           subject_id INTEGER NOT NULL, old_state TEXT NOT NULL, new_state TEXT NOT NULL,
           reason_id INTEGER NOT NULL, actor TEXT NOT NULL);
         INSERT INTO subjects VALUES (1, 'agent', 'a', 'm', 'dead', 'r', 5);
         INSERT INTO reasons VALUES (1, 'r');
         INSERT INTO events VALUES (1, 5, 1, 'healthy', 'dead', 1, '');
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(c);
    let rec = recorder_keeping_all(&path);
    rec.record(ev(10, "a", "dead", "dead"));
    rec.flush();
    assert_eq!((rec.unchanged(), rec.failed()), (1, 0));
    let r = Reader::open(&path).unwrap();
    let s = &r.subjects().unwrap()[0];
    assert_eq!((s.state.as_str(), s.seen_ms), ("dead", 10));
    assert_eq!(r.last_events(Kind::Agent, "a", 5).unwrap().len(), 1);
}

fn recorder_keeping_all(path: &Path) -> Recorder {
    let (rec, _w) = Recorder::start(
        path,
        Options {
            retention: Duration::from_secs(u32::MAX.into()),
            ..Options::default()
        },
    )
    .unwrap();
    rec
}

/// The timeline's first refresh reads the 7 days (and the state before
/// them), a later one only the new rows; the bars and events match what
/// the reader's own queries say.
#[test]
fn the_timeline_reads_the_week_once_then_only_new_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let rec = recorder_keeping_all(&path);
    let now = 100 * DAY_MS;
    let mut all = vec![
        // "a": dead since 10 days ago, healthy 12 h ago.
        ev(now - 10 * DAY_MS, "a", "healthy", "dead"),
        ev(now - DAY_MS / 2, "a", "dead", "healthy"),
        // "b": healthy since 20 days ago, quiet all week.
        ev(now - 20 * DAY_MS, "b", "", "healthy"),
    ];
    // "c": flaps every hour for 9 days.
    for h in 0..(9 * 24) {
        let state = if h % 2 == 0 { "dead" } else { "healthy" };
        let old = if h % 2 == 0 { "healthy" } else { "dead" };
        all.push(ev(now - 9 * DAY_MS + h * 3_600_000, "c", old, state));
    }
    // Rows are written as time goes by: in time order.
    all.sort_by_key(|e| e.at_ms);
    for e in all {
        rec.record(e);
    }
    rec.flush();
    let r = Reader::open(&path).unwrap();
    let mut t = Timeline::new(5);
    let first = r.refresh(&mut t, now).unwrap();
    assert!(first.full);
    assert_eq!(first.subjects, 3);
    // Only the week's rows: 1 of a, 0 of b, 7 days of c's hourly flaps.
    assert_eq!(first.rows, 1 + 7 * 24, "{first:?}");
    let a = t.get(Kind::Agent, "a").unwrap();
    assert_eq!(a.day.buckets[..12], [Some(0.0); 12]);
    assert_eq!(a.day.buckets[12..], [Some(1.0); 12]);
    assert!((a.week.percent.unwrap() - 100.0 / 14.0).abs() < 1e-6);
    let up = |s: &str| s == "healthy";
    let from = now - WEEK_MS;
    let expect = r
        .uptime(Kind::Agent, "c", from, now, WEEK_BUCKETS, up)
        .unwrap();
    assert_eq!(t.get(Kind::Agent, "c").unwrap().week, expect);
    // b keeps its last event although it is older than the week.
    let b = t.get(Kind::Agent, "b").unwrap();
    assert_eq!(b.recent.len(), 1);
    assert_eq!(b.week.percent, Some(100.0));
    assert_eq!(t.get(Kind::Agent, "c").unwrap().recent.len(), 5);
    // One new row; the next refresh reads just it, a day later.
    rec.record(ev(now + 1000, "b", "healthy", "dead"));
    rec.flush();
    let later = now + DAY_MS;
    let second = r.refresh(&mut t, later).unwrap();
    assert!(!second.full);
    assert_eq!(second.rows, 1);
    let b = t.get(Kind::Agent, "b").unwrap();
    assert_eq!(b.recent[0].new_state, "dead");
    // Healthy for its first second only.
    assert!(b.day.percent.unwrap() < 0.01, "{:?}", b.day);
    let expect = r
        .uptime(Kind::Agent, "c", later - WEEK_MS, later, WEEK_BUCKETS, up)
        .unwrap();
    assert_eq!(t.get(Kind::Agent, "c").unwrap().week, expect);
    assert_eq!(t.of_kind(Kind::Agent).len(), 3);
    assert!(t.of_kind(Kind::Cron).is_empty());
}

/// An empty file, and one replaced by another, refresh without error.
#[test]
fn the_timeline_starts_over_when_the_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let rec = recorder_keeping_all(&path);
    rec.flush();
    let mut t = Timeline::new(3);
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.refresh(&mut t, 1000).unwrap().rows, 0);
    for i in 0..5 {
        rec.record(ev(2000 + i, "a", "x", &format!("s{i}")));
    }
    rec.flush();
    assert_eq!(r.refresh(&mut t, 3000).unwrap().rows, 5);
    drop(rec);
    drop(r);
    let other = dir.path().join("other.db");
    let rec = recorder_keeping_all(&other);
    rec.record(ev(2000, "z", "", "healthy"));
    rec.flush();
    let r = Reader::open(&other).unwrap();
    let again = r.refresh(&mut t, 3000).unwrap();
    assert!(again.full, "{again:?}");
    assert!(t.get(Kind::Agent, "a").is_none());
    assert_eq!(t.get(Kind::Agent, "z").unwrap().recent.len(), 1);
}

#[test]
fn states_count_as_up_by_kind() {
    assert_eq!(is_up(Kind::Agent, "healthy"), Some(true));
    assert_eq!(is_up(Kind::Agent, "degraded"), Some(false));
    assert_eq!(is_up(Kind::Cron, "LATE"), Some(true));
    assert_eq!(is_up(Kind::Cron, "STALE"), Some(false));
    assert_eq!(is_up(Kind::Check, "WARNING"), Some(true));
    assert_eq!(is_up(Kind::Check, "CRITICAL"), Some(false));
    assert_eq!(is_up(Kind::Check, "UNKNOWN"), None);
}

/// A symbolic link in the history file's place is refused (by writer and
/// reader), naming the file; the link's target is left alone.
#[test]
fn a_symlink_in_the_files_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere.db");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.path().join("history.sqlite");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Recorder::start(&link, Options::default()).unwrap_err();
    assert!(err.to_string().contains("history.sqlite"), "{err}");
    let err = Reader::open(&link).unwrap_err();
    assert!(err.to_string().contains("history.sqlite"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}
