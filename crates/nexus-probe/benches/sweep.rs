//! Bench binary: one sweep of 1,000 TCP probes against loopback, 10 % of them
//! hung (a listener whose accept queue is full, so the connect never
//! completes). The sweep must finish within the probe timeout plus 1 s.
//!
//! `cargo bench -p nexus-probe --bench sweep` prints the figures and exits
//! non-zero when the bound is missed. `NEXUS_BENCH_RUNS` sets the number of
//! sweeps (default 5); `NEXUS_BENCH_TIMEOUT_MS` the probe timeout (default 2000).

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nexus_probe::{ProbeKind, ProbeSpec, Runner, RunnerConfig, Status, TcpSpec};
use nexus_testkit::tcp;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either way.
    let runs = env_num("NEXUS_BENCH_RUNS", 5).clamp(1, 50);
    let timeout = Duration::from_millis(env_num("NEXUS_BENCH_TIMEOUT_MS", 2000).clamp(100, 30_000));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let open = tcp::open().await;
        let hung = tcp::full_backlog().await;
        let probes: Vec<ProbeSpec> = (0..1000)
            .map(|i| {
                let port = if i % 10 == 7 {
                    hung.addr.port()
                } else {
                    open.addr.port()
                };
                ProbeSpec::new(
                    format!("tcp-{i}"),
                    ProbeKind::Tcp(TcpSpec::new("127.0.0.1", port)),
                )
                .timeout(timeout)
            })
            .collect();
        let config = RunnerConfig::default();
        println!(
            "sweep: 1000 TCP probes, 100 hung, timeout {timeout:?}, concurrency {}, {runs} runs",
            config.concurrency
        );
        let runner = Runner::new(config);
        let mut times = Vec::new();
        for run in 0..runs {
            let start = Instant::now();
            let verdicts = runner.run(&probes).await;
            let took = start.elapsed();
            let ok = verdicts.iter().filter(|v| v.status == Status::Ok).count();
            let crit = verdicts
                .iter()
                .filter(|v| v.status == Status::Critical)
                .count();
            let slowest_ok = verdicts
                .iter()
                .filter(|v| v.status == Status::Ok)
                .map(|v| v.latency)
                .max()
                .unwrap_or_default();
            println!(
                "run {run}: {took:?} (ok {ok}, critical {crit}, slowest ok probe {slowest_ok:?})"
            );
            assert_eq!((ok, crit), (900, 100), "unexpected verdicts");
            times.push(took);
        }
        times.sort();
        let bound = timeout + Duration::from_secs(1);
        println!(
            "sweep: min {:?}, median {:?}, max {:?}; bound (timeout + 1 s) {bound:?}",
            times[0],
            times[times.len() / 2],
            times[times.len() - 1]
        );
        if times[times.len() - 1] > bound {
            eprintln!("FAIL: a sweep took longer than the probe timeout plus 1 s");
            std::process::exit(1);
        }
    });
}
