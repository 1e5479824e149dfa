//! Discovery and heartbeat survey cost: 1,000 cells x 10 agents (90 %
//! fresh, 9 % stale, 1 % corrupt heartbeats, as in docs/SPEC.md §5.6).
//! Target: under 100 ms. Figures: docs/PERFORMANCE.md.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nexus_cell::{
    AgentEntry, AgentName, CellId, CellManifest, CellStore, NewCell, Role, Status, now_utc,
};
use nexus_heartbeat::{AgentHeartbeat, Classification, Rule, WriterStamp};
use nexus_stdx::{now_epoch, write_atomic};

const CELLS: usize = 1_000;
const AGENTS: usize = 10;

/// Builds the root directly (provisioning 1,000 cells with fsyncs would
/// dominate the setup); the layout and documents are the store's own.
fn populate(root: &std::path::Path) -> CellManifest {
    let store = CellStore::new(root);
    let template = store
        .provision(NewCell {
            mission: "bench".into(),
            created_by: "bench".into(),
            ..NewCell::default()
        })
        .unwrap();
    let now = now_epoch();
    let mut manifest = template.manifest().clone();
    std::fs::remove_dir_all(template.dir()).unwrap();
    for c in 0..CELLS {
        let id = CellId::new_v4();
        let dir = root.join(id.to_string());
        std::fs::create_dir_all(dir.join(".lazarus/heartbeats")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        manifest.uuid = id;
        manifest.status = Status::Active;
        manifest.agents = (0..AGENTS)
            .map(|a| AgentEntry {
                name: AgentName::new(&format!("agent-{a}")).unwrap(),
                role: Role::Developer,
                joined_at: now_utc(),
                home: Some(format!("/root/wizards/agent-{a}").into()),
                revive_cmd: Some(vec!["/usr/bin/agent".into(), "--resume".into()]),
                revive_policy: None,
                extra: Default::default(),
            })
            .collect();
        std::fs::write(
            dir.join("cell.json"),
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();
        for a in 0..AGENTS {
            let n = c * AGENTS + a;
            let path = dir.join(format!(".lazarus/heartbeats/agent-{a}.json"));
            let bytes = if n.is_multiple_of(100) {
                b"{\"timestamp\": \"garbage".to_vec()
            } else {
                let age = if n % 100 < 10 { 3600.0 } else { 5.0 };
                serde_json::to_vec(&AgentHeartbeat {
                    timestamp: now - age,
                    pid: 4242,
                    cycle: n as u64,
                    model: "timmy:v0.1-q4".into(),
                    status: "thinking".into(),
                    agent: Some(format!("agent-{a}")),
                    cell_uuid: Some(id.to_string()),
                    stamp: WriterStamp::next(Some(1)),
                    extra: Default::default(),
                })
                .unwrap()
            };
            write_atomic(&path, &bytes, false).unwrap();
        }
    }
    manifest
}

fn survey(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("missions");
    populate(&root);
    let store = CellStore::new(&root);
    let rule = Rule::fixed(60.0);
    report_cpu_time(&store, &rule);
    let mut g = c.benchmark_group("cells");
    g.sample_size(20);
    g.bench_function("discover_1000_cells", |b| {
        b.iter(|| {
            let found = store.discover().unwrap();
            assert_eq!(found.cells.len(), CELLS);
            found
        })
    });
    let paths: Vec<_> = store
        .discover()
        .unwrap()
        .cells
        .iter()
        .flat_map(|c| {
            c.manifest()
                .agents
                .iter()
                .map(|a| c.heartbeat_path(&a.name))
                .collect::<Vec<_>>()
        })
        .collect();
    g.bench_function("classify_10000_cell_heartbeats", |b| {
        b.iter(|| Classification::read_many(black_box(&paths), now_epoch(), &rule))
    });
    g.bench_function("survey_1000_cells_10_agents", |b| {
        b.iter(|| {
            let (cells, skipped) = store.survey(black_box(now_epoch()), &rule).unwrap();
            assert_eq!(cells.len(), CELLS);
            assert!(skipped.is_empty());
            cells
        })
    });
    g.finish();
}

/// User + system CPU seconds of this process so far (all threads), from
/// `/proc/self/stat` (10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the `(comm)`; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Wall time on a shared 2-core machine depends on the other load; CPU
/// time per survey does not. Printed once, before the criterion runs.
fn report_cpu_time(store: &CellStore, rule: &Rule) {
    const N: u32 = 30;
    let cpu0 = cpu_seconds();
    let wall0 = std::time::Instant::now();
    for _ in 0..N {
        black_box(store.survey(now_epoch(), rule).unwrap());
    }
    let cpu = (cpu_seconds() - cpu0) / f64::from(N);
    let wall = wall0.elapsed().as_secs_f64() / f64::from(N);
    eprintln!(
        "survey_1000_cells_10_agents: {:.1} ms CPU (user+sys, all threads), {:.1} ms wall per survey",
        cpu * 1e3,
        wall * 1e3
    );
}

criterion_group!(benches, survey);
criterion_main!(benches);
