//! Write and classify costs. Figures: docs/PERFORMANCE.md.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nexus_heartbeat::{AgentHeartbeat, Classification, Observation, Rule, WriterStamp};
use nexus_stdx::{now_epoch, write_atomic};

fn doc(cycle: u64) -> Vec<u8> {
    let d = AgentHeartbeat {
        timestamp: now_epoch(),
        pid: 4242,
        cycle,
        model: "timmy:v0.1-q4".into(),
        status: "thinking".into(),
        agent: Some("allegro".into()),
        cell_uuid: None,
        stamp: WriterStamp::next(Some(cycle)),
        extra: Default::default(),
    };
    serde_json::to_vec(&d).unwrap()
}

/// Writes on the disk filesystem of $TMPDIR and, where it exists, on tmpfs
/// (/dev/shm), which is what /var/run/bezalel and /run are in production.
fn writes(c: &mut Criterion) {
    let bytes = doc(1);
    let mut dirs = vec![("disk", tempfile::tempdir().unwrap())];
    if std::path::Path::new("/dev/shm").is_dir() {
        dirs.push(("tmpfs", tempfile::tempdir_in("/dev/shm").unwrap()));
    }
    for (fs, dir) in &dirs {
        let path = dir.path().join("heartbeat.json");
        let mut g = c.benchmark_group(format!("write/{fs}"));
        g.bench_function("non_durable", |b| {
            b.iter(|| write_atomic(black_box(&path), black_box(&bytes), false).unwrap())
        });
        g.sample_size(20);
        g.bench_function("durable", |b| {
            b.iter(|| write_atomic(black_box(&path), black_box(&bytes), true).unwrap())
        });
        g.finish();
    }
}

fn classify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..10_000)
        .map(|i| {
            let p = dir.path().join(format!("agent-{i}.json"));
            std::fs::write(&p, doc(i)).unwrap();
            p
        })
        .collect();
    let rule = Rule::fixed(300.0);
    let mut g = c.benchmark_group("classify");
    g.sample_size(20);
    // The results are dropped outside the timed region: freeing 10,000
    // parsed documents is the caller's cost, not the classifier's.
    g.bench_function("classify_10k_files", |b| {
        b.iter_with_large_drop(|| Classification::read_many(black_box(&paths), now_epoch(), &rule))
    });
    g.bench_function("classify_10k_files_one_thread", |b| {
        b.iter_with_large_drop(|| {
            let now = now_epoch();
            paths
                .iter()
                .map(|p| Classification::read(p, now, &rule))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("parse_one_document", |b| {
        let bytes = doc(7);
        b.iter(|| Observation::parse(black_box(&bytes), None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, writes, classify);
criterion_main!(benches);
