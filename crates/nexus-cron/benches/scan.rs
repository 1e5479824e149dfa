//! Scanning and judging 10,000 `.last` files. Figures: docs/PERFORMANCE.md.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nexus_cron::{Registry, evaluate, scan};
use nexus_stdx::now_epoch;

fn scan_10k(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let now = now_epoch();
    for i in 0..10_000 {
        let body = format!(
            r#"{{"job":"job-{i}","timestamp":{},"interval_seconds":900,"pid":1,"host":"h","status":"ok","seq":3}}"#,
            now - (i % 2000) as f64
        );
        std::fs::write(dir.path().join(format!("job-{i}.last")), body).unwrap();
    }
    let dirs = vec![dir.path().to_path_buf()];
    let registry = Registry::default();
    let mut g = c.benchmark_group("cron");
    g.sample_size(20);
    // Results are dropped outside the timed region (the caller's cost).
    g.bench_function("scan_and_evaluate_10k_last_files", |b| {
        b.iter_with_large_drop(|| {
            let s = scan(black_box(&dirs));
            let r = evaluate(&registry, &s, now_epoch());
            (s, r)
        })
    });
    g.bench_function("scan_only_10k", |b| {
        b.iter_with_large_drop(|| scan(black_box(&dirs)))
    });
    let s = scan(&dirs);
    assert_eq!(evaluate(&registry, &s, now_epoch()).jobs.len(), 10_000);
    g.bench_function("evaluate_only_10k", |b| {
        b.iter_with_large_drop(|| evaluate(&registry, black_box(&s), now_epoch()))
    });
    g.finish();
}

criterion_group!(benches, scan_10k);
criterion_main!(benches);
