//! The issue 22 history targets, measured (not a timed test):
//! 1. 100,000 rows a minute written while a 10,000-agent sweep runs: the
//!    sweep's time with and without the recorder under that load;
//! 2. the file size after 30 days of a 1,000-agent fleet flapping once an
//!    hour (2 rows an hour each), pruned to 30 days and vacuumed.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nexus_history::{Event, Kind, Options, Recorder, now_ms, prune_and_vacuum};

const AGENTS: usize = 10_000;

/// A stand-in for one sweep: per agent, read a small heartbeat-like file's
/// worth of bytes, parse numbers, decide a state, and (with a recorder)
/// record a change for 1 % of agents.
fn sweep(files: &[Vec<u8>], rec: Option<&Recorder>) -> Duration {
    let t = Instant::now();
    for (i, body) in files.iter().enumerate() {
        let text = std::str::from_utf8(body).unwrap();
        let ts: u64 = text
            .split(',')
            .filter_map(|f| {
                f.split(':')
                    .nth(1)?
                    .trim()
                    .trim_end_matches('}')
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        let state = if ts.is_multiple_of(7) {
            "dead"
        } else {
            "healthy"
        };
        if let Some(r) = rec
            && i.is_multiple_of(100)
        {
            r.record(Event::now(
                Kind::Agent,
                "mission",
                &format!("agent-{i}"),
                "healthy",
                state,
                "sweep",
            ));
        }
        black_box(state);
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = (0..AGENTS)
        .map(|i| {
            format!(
                "{{\"ts\": {}, \"pid\": {}, \"seq\": {}}}",
                1_700_000_000 + i,
                1000 + i,
                i * 3
            )
            .into_bytes()
        })
        .collect();

    // 1. Sweep alone.
    for _ in 0..5 {
        sweep(&files, None);
    }
    let alone = median((0..31).map(|_| sweep(&files, None)).collect());

    // Sweep with the recorder and a background load of 100,000 rows a minute
    // (1,667 a second, paced in 10 ms slices) from another thread.
    let path = dir.path().join("load.sqlite");
    let (rec, writer) = Recorder::start(&path, Options::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let rec = rec.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * 100_000.0 / 60.0) as u64;
                while n < due {
                    // Each job flips at each visit: every row is a change
                    // (a repeated state is only an observation).
                    let (old, new) = if (n / 1000).is_multiple_of(2) {
                        ("ok", "late")
                    } else {
                        ("late", "ok")
                    };
                    rec.record(Event::now(
                        Kind::Cron,
                        "cell",
                        &format!("job-{}", n % 1000),
                        old,
                        new,
                        "load",
                    ));
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    for _ in 0..5 {
        sweep(&files, Some(&rec));
    }
    let mut with = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) || with.len() < 31 {
        with.push(sweep(&files, Some(&rec)));
    }
    let with = median(with);
    stop.store(true, Ordering::Relaxed);
    let loaded = load.join().unwrap();
    rec.flush();
    let load_secs = t0.elapsed().as_secs_f64();
    println!(
        "sweep of {AGENTS} agents: alone {:.3} ms, with recorder under load {:.3} ms ({:+.1} %); background rows {loaded} in {load_secs:.1} s; written {}, dropped {}",
        alone.as_secs_f64() * 1e3,
        with.as_secs_f64() * 1e3,
        100.0 * (with.as_secs_f64() / alone.as_secs_f64() - 1.0),
        rec.written(),
        rec.dropped()
    );

    // Raw write throughput: 100,000 rows recorded, then flushed.
    let t = Instant::now();
    for i in 0..100_000u32 {
        let (old, new) = if (i / 1000).is_multiple_of(2) {
            ("healthy", "dead")
        } else {
            ("dead", "healthy")
        };
        rec.record(Event::now(
            Kind::Agent,
            "m",
            &format!("a-{}", i % 1000),
            old,
            new,
            "burst",
        ));
    }
    rec.flush();
    println!(
        "100,000 rows recorded and committed in {:.0} ms (dropped so far {})",
        t.elapsed().as_secs_f64() * 1e3,
        rec.dropped()
    );
    drop(rec);
    writer.join();

    // 2. 30 days (+1 to prune) of 1,000 agents flapping hourly: 2 rows/h.
    let path = dir.path().join("month.sqlite");
    let (rec, writer) = Recorder::start(
        &path,
        Options {
            retention: Duration::from_secs(u32::MAX.into()),
            queue: 1 << 20,
            ..Options::default()
        },
    )
    .unwrap();
    let now = now_ms();
    let hours = 31 * 24;
    let t = Instant::now();
    let mut rows = 0u64;
    for h in 0..hours {
        for a in 0..1000 {
            let at = now - (hours - h) as i64 * 3_600_000 + a as i64;
            for (k, (old, new)) in [("healthy", "dead"), ("dead", "healthy")]
                .into_iter()
                .enumerate()
            {
                rec.record(Event {
                    at_ms: at + k as i64 * 60_000,
                    kind: Kind::Agent,
                    group: format!("mission-{}", a % 20),
                    subject: format!("agent-{a:04}"),
                    old_state: old.into(),
                    new_state: new.into(),
                    reason: "heartbeat older than 30s; revived".into(),
                    actor: String::new(),
                });
                rows += 1;
            }
        }
        if h % 24 == 0 {
            rec.flush();
        }
    }
    rec.flush();
    let dropped = rec.dropped();
    drop(rec);
    writer.join();
    let before = std::fs::metadata(&path).unwrap().len();
    let pt = Instant::now();
    let pruned = prune_and_vacuum(&path, now - 30 * 86_400_000).unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    println!(
        "31 days of 1,000 agents flapping hourly: {rows} rows written in {:.1} s (dropped {dropped}); file {:.1} MB; pruned {pruned} rows to 30 days and vacuumed in {:.1} s: {:.1} MB",
        t.elapsed().as_secs_f64(),
        before as f64 / 1e6,
        pt.elapsed().as_secs_f64(),
        after as f64 / 1e6
    );
}
