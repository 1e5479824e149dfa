//! Per-cycle cost of the engine when no HTTP call is needed (the common
//! case: healthy subjects, and failing ones inside the comment interval),
//! and of the failure signature. Figures: docs/PERFORMANCE.md.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nexus_gitea::{Check, Engine, EngineConfig, GiteaClient, GiteaConfig, Token, signature};

fn engine(dir: &std::path::Path) -> Engine {
    // Never contacted in these paths: a port nobody listens on.
    let cfg = GiteaConfig::new("http://127.0.0.1:9", "ops/alerts", Token::new("t").unwrap());
    Engine::new(
        EngineConfig::new(dir, "resurrection-pool", "[pool]"),
        Some(GiteaClient::new(&cfg).unwrap()),
    )
}

fn cycles(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let checks: Vec<Check> = (0..100)
        .map(|k| Check::healthy(&format!("agent-{k}"), "healthy"))
        .collect();
    c.bench_function("observe_100_healthy_subjects", |b| {
        b.iter(|| {
            rt.block_on(async {
                for ch in &checks {
                    black_box(e.observe(ch).await.unwrap());
                }
            })
        })
    });
}

fn signatures(c: &mut Criterion) {
    // The diagnostics are not hashed; the summary and the problems are.
    let diag = "heartbeat age 301s, pid 4242, port 8765 refused\n".repeat(80);
    let check = Check::failing("nexus", "Nexus unhealthy: heartbeat, syntax", &diag)
        .with_problems((0..10).map(|k| format!("check-{k}:critical")));
    c.bench_function("signature_10_problems", |b| {
        b.iter(|| signature(black_box(&check)))
    });
}

criterion_group!(benches, cycles, signatures);
criterion_main!(benches);
