//! `--history`: issue 22's write target on the pool's real sweep. The same
//! synthetic fleet (cells of 10 agents, the seed's heartbeat mix) is swept
//! by `resurrection-pool --once` (revive policy `never`: nothing is
//! launched) alternately
//! - without `[history]`, and
//! - with `[history]` while this process records 100,000 rows a minute
//!   into the same SQLite file (a `nexus_history::Recorder`, paced in 10 ms
//!   slices): the pool's own writer and the load contend for the file.
//!
//! The first run with `[history]` records every agent's first state (one
//! row each) and is shown on its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nexus_history::{Event, Kind, Options, Recorder};

/// One `--once` sweep's wall time.
fn sweep(pool_bin: &Path, cfg: &Path, state: &Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = Command::new(pool_bin)
        .arg("--config")
        .arg(cfg)
        .arg("--state-file")
        .arg(state)
        .arg("--once")
        .env("NEXUS_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", pool_bin.display()))?;
    let took = t.elapsed();
    // 0 healthy, 1 some agent unhealthy (the mix has dead ones); more is a fault.
    anyhow::ensure!(
        matches!(status.code(), Some(0 | 1)),
        "{} --once failed: {status}",
        pool_bin.display()
    );
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the case with `agents` agents, `runs` sweeps per side; prints a
/// Markdown table.
pub(crate) fn run(pool_bin: &Path, work: &Path, agents: usize, runs: usize) -> anyhow::Result<()> {
    let cells = work.join("cells");
    let now = crate::now_unix();
    crate::fleet::gen_cells(&cells, agents.div_ceil(10).max(1), 10, now)?;
    let db = work.join("history.sqlite");
    let base = format!(
        "[cells]\nroot = \"{}\"\nrevive_policy = \"never\"\n",
        cells.display()
    );
    let off = work.join("off.toml");
    let on = work.join("on.toml");
    std::fs::write(&off, &base)?;
    std::fs::write(
        &on,
        format!(
            "{base}[history]\npath = \"{}\"\nretention = \"30d\"\n",
            db.display()
        ),
    )?;
    let state = work.join("pool-state.json");
    // Warm-up (binary and files in the page cache), then the first recorded run.
    sweep(pool_bin, &off, &state)?;
    let first = sweep(pool_bin, &on, &state)?;

    let (rec, writer) = Recorder::start(&db, Options::default())
        .with_context(|| format!("cannot open {}", db.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let rec = rec.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            let start = Instant::now();
            // Bounded: the case ends long before an hour.
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(3600) {
                let due = (start.elapsed().as_secs_f64() * 100_000.0 / 60.0) as u64;
                while n < due {
                    // Each job flips at each visit: every row is a change.
                    let state = if (n / 1000).is_multiple_of(2) {
                        "STALE"
                    } else {
                        "OK"
                    };
                    rec.record(Event::now(
                        Kind::Cron,
                        "load",
                        &format!("job-{}@load", n % 1000),
                        "",
                        state,
                        "load",
                    ));
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (n, start.elapsed())
        })
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        without.push(sweep(pool_bin, &off, &state)?);
        with.push(sweep(pool_bin, &on, &state)?);
    }
    stop.store(true, Ordering::Relaxed);
    let (loaded, secs) = load
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    rec.flush();
    let (written, dropped) = (rec.written(), rec.dropped());
    drop(rec);
    writer.join();
    let (a, b) = (median(without), median(with));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\n### History writes beside the pool's sweep ({agents} agents, `--once`)\n");
    println!("| run | median wall (ms) |");
    println!("|---|---|");
    println!("| without `[history]` | {:.0} |", ms(a));
    println!(
        "| with `[history]` + {:.0} rows/min of load | {:.0} ({:+.1} %) |",
        loaded as f64 / secs.as_secs_f64() * 60.0,
        ms(b),
        100.0 * (b.as_secs_f64() / a.as_secs_f64() - 1.0)
    );
    println!(
        "| first run with `[history]` (every agent's first state) | {:.0} |",
        ms(first)
    );
    println!(
        "\n{} sweeps a side; load: {loaded} rows offered in {:.1} s, {written} written, {dropped} dropped; file {:.1} MB",
        runs.max(1),
        secs.as_secs_f64(),
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
    );
    Ok(())
}
