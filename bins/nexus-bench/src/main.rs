//! `nexus-bench`: our release binaries against the seed's Python daemons,
//! side by side, in one run, on the same synthetic fleets of this machine.
//!
//! Cases: start-up on an empty cells root, one sweep over N cells x 10
//! agents of heartbeat files, and one sweep over G gateways on 127.0.0.1
//! (none hung, or 10 % hung). Ours is `resurrection-pool --once --dry-run`;
//! the seed is `lazarus_pit.py --status` (cells) and
//! `resurrection_pool.py --once --dry-run` (gateways), invoked as the seed
//! harness invokes them. The C floor (`floor/floor.c`) gives the per-file
//! cost this machine cannot go below. The seed's daemons and the floor are
//! not part of this repository: `--seed-dir` (or `NEXUS_BASELINES_DIR`)
//! names the directory holding `seed/` and `floor/`; without it only ours
//! runs (docs/PERFORMANCE.md).
//! Prints Markdown tables (wall, CPU, peak RSS, seed/ours) and optionally
//! writes every sample as JSON.
//!
//! It must never: reach beyond loopback (every address is 127.0.0.1; as
//! root it re-executes itself in a private network namespace with only `lo`
//! up), run unbounded (a hard timeout per child kills its process group;
//! seed cases predicted to exceed it are skipped), or leave files or
//! processes behind (the temp dir is removed unless `--keep`; the helper
//! process and every socket are closed on the way out).

mod fleet;
mod history;
mod measure;
mod mttr;
mod table;

use nexus_cli::{errln, out, outln};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::fleet::{AliveHelper, GatewayFleet, Mix};
use crate::measure::{Runner, Sample, median, summarize};
use crate::table::{Check, Floor, PerAgent, Row, Side};

/// The seed's probe timeout: a hung host costs it this much, sequentially.
const SEED_PROBE_TIMEOUT_S: f64 = 5.0;
/// Agents per synthetic cell.
const AGENTS_PER_CELL: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
enum Variant {
    /// No hung gateway.
    None,
    /// 10 % of the gateways hung (accept queue full).
    Hung,
}

#[derive(Debug, Parser)]
#[command(
    name = "nexus-bench",
    version,
    about = "Our binaries vs the seed daemons, side by side"
)]
struct Cli {
    /// Runs per case; the tables show medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Smoke run: 1 run, 100 agents, 10 gateways (unless given).
    #[arg(long)]
    quick: bool,
    /// Cell agent counts (cells of 10 agents) [default: 100,1000,10000].
    #[arg(long, value_delimiter = ',')]
    agents: Option<Vec<usize>>,
    /// Gateway counts [default: 10,100,1000].
    #[arg(long, value_delimiter = ',')]
    gateways: Option<Vec<usize>>,
    /// Gateway variants [default: none,hung].
    #[arg(long, value_delimiter = ',', value_enum)]
    variants: Option<Vec<Variant>>,
    /// Run our binaries only (no seed, no floor).
    #[arg(long)]
    ours_only: bool,
    /// Where our binaries are [default: beside this executable].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The baselines directory holding seed/ (the seed's Python daemons) and
    /// floor/ (floor.c); they are not part of this repository. Without it,
    /// ours runs alone.
    #[arg(long, env = "NEXUS_BASELINES_DIR")]
    seed_dir: Option<PathBuf>,
    /// Hard limit per child run, seconds.
    #[arg(long, default_value_t = 120.0)]
    limit: f64,
    /// Before each program's runs, wait up to this many seconds for the
    /// machine to be quiet (other processes under 0.25 cores for 3 s).
    #[arg(long, default_value_t = 0.0)]
    quiet_wait: f64,
    /// Unmeasured runs of each program before its measured runs (not for
    /// the hung-gateway cases, whose runs are probe timeouts). This VM pages
    /// out file pages idle for about a minute (DAMON `pageout`): without a
    /// warm-up, a program's first run reads its own binary, or the
    /// interpreter's library, back from disk.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Write every sample and summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the temp dir (printed).
    #[arg(long)]
    keep: bool,
    /// Do not re-execute inside a private network namespace when root.
    #[arg(long)]
    no_netns: bool,
    #[arg(long, hide = true)]
    in_netns: bool,
    /// Run the MTTR cases only (crash, crash loop, hang, cold start, idle
    /// cost): our pool on its defaults beside supervisord (docs/PERFORMANCE.md).
    #[arg(long)]
    mttr: bool,
    /// Run the history case only: the pool's `--once` sweep over
    /// `--history-agents` agents without `[history]`, and with it while
    /// 100,000 rows a minute are written to the same file (docs/PERFORMANCE.md).
    #[arg(long)]
    history: bool,
    /// History case: agents (cells of 10).
    #[arg(long, default_value_t = 10_000)]
    history_agents: usize,
    /// MTTR: the cases to run [default: crash,loop,hang,cold,idle].
    #[arg(long, value_delimiter = ',')]
    mttr_cases: Vec<String>,
    /// MTTR: kills in the crash case (one agent each).
    #[arg(long, default_value_t = 10)]
    mttr_kills: usize,
    /// MTTR: agents of the idle case.
    #[arg(long, default_value_t = 10_000)]
    idle_agents: usize,
    /// MTTR: seconds the idle case runs (70: one 60 s safety sweep falls
    /// inside the window).
    #[arg(long, default_value_t = 70.0)]
    idle_secs: f64,
}

fn log(msg: &str) {
    errln!("nexus-bench: {msg}");
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn main() -> ExitCode {
    // Output never panics (`>/dev/full`, `| head`); a stdout that failed
    // for another reason than a closed pipe fails the run (nexus-cli).
    nexus_cli::finish("nexus-bench", main_inner())
}

fn main_inner() -> ExitCode {
    let cli = Cli::parse();
    if !cli.no_netns && !cli.in_netns {
        maybe_reexec_in_netns();
    }
    match run(&cli) {
        Ok(all_ok) => ExitCode::from(u8::from(!all_ok)),
        Err(e) => nexus_cli::Fail::usage(format_args!("{e:#}")).report("nexus-bench"),
    }
}

/// As root with `unshare` and `ip`: re-executes in a new network namespace
/// whose only interface is `lo` (up). Returns when that is not possible.
fn maybe_reexec_in_netns() {
    if !rustix::process::geteuid().is_root() {
        log("netns: not root; running in the host namespace (every address is 127.0.0.1)");
        return;
    }
    let ok = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok("unshare", &["-n", "ip", "link", "set", "lo", "up"]) {
        log("netns: `unshare -n` or `ip` unavailable; running in the host namespace");
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    log("netns: re-executing inside a private network namespace (loopback only)");
    let err = std::os::unix::process::CommandExt::exec(
        Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .arg("--in-netns"),
    );
    log(&format!(
        "netns: exec failed ({err}); running in the host namespace"
    ));
}

/// The seed programs, when they can run.
#[derive(Debug)]
struct Seed {
    python: PathBuf,
    dir: PathBuf,
    lazarus: PathBuf,
    pool: PathBuf,
    floor_c: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn locate_seed(cli: &Cli) -> Result<Seed, String> {
    if cli.ours_only {
        return Err("--ours-only".into());
    }
    let Some(base) = cli.seed_dir.clone() else {
        return Err(
            "no --seed-dir (or NEXUS_BASELINES_DIR): the seed's daemons and the C floor are not part of this repository"
                .into(),
        );
    };
    let base = base.canonicalize().unwrap_or(base);
    let dir = base.join("seed");
    let lazarus = dir.join("lazarus_pit.py");
    let pool = dir.join("resurrection_pool.py");
    if !lazarus.is_file() || !pool.is_file() {
        return Err(format!(
            "no seed daemons in {} (use --seed-dir)",
            dir.display()
        ));
    }
    let python = find_in_path("python3").ok_or("python3 is not on PATH")?;
    // The interpreter itself, not a wrapper such as a pyenv shim (a shell
    // script that would add its own start-up to every seed run).
    let python = Command::new(&python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file())
        .ok_or_else(|| format!("{} does not run", python.display()))?;
    Ok(Seed {
        python,
        floor_c: base.join("floor/floor.c"),
        dir,
        lazarus,
        pool,
    })
}

/// What our pool printed in text mode: per-agent lines whose first word is
/// the state, then `N agent(s), M unhealthy, sweep X ms`.
#[derive(Debug, Clone, PartialEq)]
struct OursReport {
    agents: usize,
    unhealthy: usize,
    sweep_ms: f64,
    states: std::collections::BTreeMap<String, usize>,
}

fn parse_ours(stdout: &str) -> Option<OursReport> {
    let mut lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.pop()?;
    let mut parts = last.split(", ");
    let agents = parts.next()?.strip_suffix(" agent(s)")?.parse().ok()?;
    let unhealthy = parts.next()?.strip_suffix(" unhealthy")?.parse().ok()?;
    let sweep_ms = parts
        .next()?
        .strip_prefix("sweep ")?
        .strip_suffix(" ms")?
        .parse()
        .ok()?;
    let mut states = std::collections::BTreeMap::new();
    for l in lines {
        if let Some(w) = l.split_whitespace().next() {
            *states.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    Some(OursReport {
        agents,
        unhealthy,
        sweep_ms,
        states,
    })
}

fn check_ours(s: &Sample, agents: usize, unhealthy: usize) -> Check {
    let out = std::fs::read_to_string(&s.stdout).unwrap_or_default();
    match parse_ours(&out) {
        Some(r) => Check {
            ok: r.agents == agents && r.unhealthy == unhealthy,
            detail: format!(
                "expected {agents} agents, {unhealthy} unhealthy; saw {} agents, {} unhealthy {:?} (exit {:?})",
                r.agents, r.unhealthy, r.states, s.rc
            ),
        },
        None => Check {
            ok: false,
            detail: format!(
                "no summary line (exit {:?}); stderr: {}",
                s.rc,
                tail(&s.stderr)
            ),
        },
    }
}

fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let t = t.trim();
    let start = t.char_indices().rev().nth(300).map_or(0, |(i, _)| i);
    t[start..].replace('\n', " / ")
}

fn argv(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// Everything one invocation measured.
#[derive(Debug, Serialize)]
struct Report {
    started_unix: f64,
    machine: Machine,
    runs: usize,
    warmup: usize,
    limit_s: f64,
    measure: &'static str,
    in_netns: bool,
    rows: Vec<Row>,
    per_agent: Vec<PerAgent>,
    floor: Option<Floor>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    kernel: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("?".into(), |(_, m)| m.trim().to_string()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Lets the bench hold ~1,100 sockets at 1,000 gateways.
fn raise_nofile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(cur) = lim.current {
        let want = lim.maximum.map_or(8192, |m| m.min(8192));
        if cur < want {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(want),
                    maximum: lim.maximum,
                },
            );
        }
    }
}

/// Shared state of one benchmark run.
struct Bench<'a> {
    cli: &'a Cli,
    runs: usize,
    runner: Runner,
    work: PathBuf,
    pool_bin: PathBuf,
    seed: Option<Seed>,
}

impl Bench<'_> {
    /// `warmup` unmeasured runs of `argv`, then `runs` measured ones
    /// (stopping at a timeout), `after` each one.
    fn side(
        &self,
        label: &str,
        argv: Vec<OsString>,
        cwd: &Path,
        after: &dyn Fn(),
        check: &dyn Fn(&Sample) -> Check,
        warmup: usize,
    ) -> anyhow::Result<Side> {
        if self.cli.quiet_wait > 0.0 {
            let quiet = measure::wait_quiet(Duration::from_secs_f64(self.cli.quiet_wait), 0.25);
            if !quiet {
                log(&format!("  {label}: the machine did not become quiet"));
            }
        }
        let mut samples = Vec::new();
        let mut i = 0;
        while i < warmup + self.runs {
            let (file, n) = match i.checked_sub(warmup) {
                None => (format!("{label}.warmup{i}"), i + 1),
                Some(r) => (format!("{label}.run{r}"), r + 1),
            };
            let s = self.runner.run(&argv, cwd, &self.work.join(file))?;
            after();
            let timed_out = s.timed_out;
            if i < warmup {
                log(&format!(
                    "  {label} warm-up {n}: wall {} (not measured)",
                    table::secs(Some(s.wall_s))
                ));
                // No more warm-ups after one that hit the limit.
                i = if timed_out { warmup } else { i + 1 };
                continue;
            }
            log(&format!(
                "  {label} run {n}: wall {} cpu {} rss {} exit {:?} other {:.2} cores{}",
                table::secs(Some(s.wall_s)),
                table::secs(s.cpu_s()),
                table::mib(s.maxrss_kb),
                s.rc,
                s.other_cores.unwrap_or(f64::NAN),
                if timed_out { " TIMED OUT" } else { "" }
            ));
            samples.push(s);
            if timed_out {
                break;
            }
            i += 1;
        }
        let summary = summarize(&samples);
        let check = samples.iter().rev().find(|s| !s.timed_out).map(check);
        Ok(Side {
            cmd: argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            summary: Some(summary),
            skipped: None,
            check,
            samples,
        })
    }

    fn seed_side(
        &self,
        why_not: &str,
        f: impl FnOnce(&Seed) -> anyhow::Result<Side>,
    ) -> anyhow::Result<Side> {
        match &self.seed {
            Some(s) => f(s),
            None => Ok(Side::skipped(why_not)),
        }
    }

    fn ours_cells(
        &self,
        label: &str,
        root: &Path,
        agents: usize,
        unhealthy: usize,
    ) -> anyhow::Result<Side> {
        self.side(
            label,
            argv(&[
                &self.pool_bin,
                &"--once",
                &"--dry-run",
                &"--cells-root",
                &root,
            ]),
            &self.work,
            &|| {},
            &|s| check_ours(s, agents, unhealthy),
            self.cli.warmup,
        )
    }

    fn seed_cells(
        &self,
        label: &str,
        root: &Path,
        n_cells: usize,
        mix: Mix,
    ) -> anyhow::Result<Side> {
        self.seed_side("seed not run", |seed| {
            let dir = self.work.join(label);
            std::fs::create_dir_all(&dir)?;
            let cfg = dir.join("lazarus-pit.toml");
            fleet::lazarus_config(&cfg, root, &dir)?;
            self.side(
                label,
                argv(&[&seed.python, &seed.lazarus, &"--config", &cfg, &"--status"]),
                &seed.dir,
                &|| {},
                &|s| {
                    let out = std::fs::read_to_string(&s.stdout).unwrap_or_default();
                    let listed = out.lines().filter(|l| l.starts_with("Cell ")).count();
                    let no_hb = out.matches(": no heartbeat").count();
                    let empty_ok = n_cells > 0 || out.contains("No active cells");
                    Check {
                        ok: listed == n_cells && no_hb == mix.corrupt && empty_ok,
                        detail: format!(
                            "expected {n_cells} cells, {} without heartbeat; saw {listed} cells, {no_hb} without heartbeat (exit {:?})",
                            mix.corrupt, s.rc
                        ),
                    }
                },
                self.cli.warmup,
            )
        })
    }
}

fn run(cli: &Cli) -> anyhow::Result<bool> {
    let runs = if cli.quick { 1 } else { cli.runs.max(1) };
    let agent_sizes = cli.agents.clone().unwrap_or_else(|| {
        if cli.quick {
            vec![100]
        } else {
            vec![100, 1_000, 10_000]
        }
    });
    let gateway_sizes = cli.gateways.clone().unwrap_or_else(|| {
        if cli.quick {
            vec![10]
        } else {
            vec![10, 100, 1_000]
        }
    });
    let variants = cli
        .variants
        .clone()
        .unwrap_or_else(|| vec![Variant::None, Variant::Hung]);
    anyhow::ensure!(
        cli.limit > 0.0 && cli.limit.is_finite(),
        "--limit must be > 0"
    );
    anyhow::ensure!(
        (0.0..=600.0).contains(&cli.quiet_wait),
        "--quiet-wait must be 0-600 s"
    );

    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("cannot locate this executable")?
            .parent()
            .context("this executable has no directory")?
            .to_path_buf(),
    };
    let pool_bin = bin_dir.join("resurrection-pool");
    anyhow::ensure!(
        pool_bin.is_file(),
        "{} is missing: build it (cargo build --release --workspace --bins) or pass --bin-dir",
        pool_bin.display()
    );
    let mut notes = Vec::new();
    let seed = match locate_seed(cli) {
        Ok(s) => Some(s),
        Err(why) => {
            let n = format!("seed not run: {why}; ours only");
            log(&n);
            notes.push(n);
            None
        }
    };
    let time_bin = Path::new("/usr/bin/time");
    let time_bin = time_bin.is_file().then(|| time_bin.to_path_buf());
    if time_bin.is_none() {
        notes.push("/usr/bin/time missing (Debian package `time`): no CPU or RSS figures".into());
    }
    raise_nofile();

    let tmp = tempfile::Builder::new()
        .prefix("nexus-bench-")
        .tempdir()
        .context("cannot create the temp dir")?;
    let work = tmp.path().to_path_buf();
    if cli.mttr {
        return run_mttr(cli, &bin_dir, &pool_bin, &work, tmp);
    }
    if cli.history {
        let runs = if cli.quick { 1 } else { cli.runs.max(5) };
        history::run(&pool_bin, &work, cli.history_agents, runs)?;
        return Ok(true);
    }
    let home = work.join("home");
    std::fs::create_dir_all(&home)?;
    log(&format!("workdir {}", work.display()));
    let bench = Bench {
        cli,
        runs,
        runner: Runner {
            time_bin: time_bin.clone(),
            timeout: Duration::from_secs_f64(cli.limit),
            home,
        },
        work: work.clone(),
        pool_bin,
        seed,
    };
    let mut report = Report {
        started_unix: now_unix(),
        machine: machine(),
        runs,
        warmup: cli.warmup,
        limit_s: cli.limit,
        measure: if time_bin.is_some() {
            "/usr/bin/time (rusage of the reaped tree), wall by Instant"
        } else {
            "wall by Instant only"
        },
        in_netns: cli.in_netns,
        rows: Vec::new(),
        per_agent: Vec::new(),
        floor: None,
        notes,
    };
    let result = measure_all(&bench, &agent_sizes, &gateway_sizes, &variants, &mut report);
    if cli.keep {
        let kept = tmp.keep();
        log(&format!("kept {}", kept.display()));
    }
    result?;
    print_report(&report, &bench);
    if let Some(p) = &cli.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
        log(&format!("results written to {}", p.display()));
    }
    let all_ok = report
        .rows
        .iter()
        .flat_map(|r| [&r.ours, &r.seed])
        .all(|s| s.check.as_ref().is_none_or(|c| c.ok));
    Ok(all_ok)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn sweep_us_per_agent(side: &Side, agents: usize) -> Option<f64> {
    let v: Vec<f64> = side
        .samples
        .iter()
        .filter(|s| !s.timed_out)
        .filter_map(|s| std::fs::read_to_string(&s.stdout).ok())
        .filter_map(|o| parse_ours(&o))
        .map(|r| r.sweep_ms * 1e3 / agents as f64)
        .collect();
    median(v)
}

fn wall(side: &Side) -> Option<f64> {
    side.summary.as_ref().filter(|s| s.n > 0).map(|s| s.wall_s)
}

fn measure_all(
    b: &Bench<'_>,
    agent_sizes: &[usize],
    gateway_sizes: &[usize],
    variants: &[Variant],
    report: &mut Report,
) -> anyhow::Result<()> {
    // Start-up: an empty cells root.
    let empty = b.work.join("empty").join("missions");
    std::fs::create_dir_all(&empty)?;
    log("start-up: empty cells root");
    let ours0 = b.ours_cells("startup-ours", &empty, 0, 0)?;
    let seed0 = b.seed_cells("startup-seed", &empty, 0, Mix::default())?;
    let (ours_base, seed_base) = (wall(&ours0), wall(&seed0));
    report.rows.push(Row {
        case: "start-up, empty root".into(),
        size: "0 agents".into(),
        ours: ours0,
        seed: seed0,
    });

    // Cells: one sweep over N cells x 10 agents.
    let largest = agent_sizes.iter().copied().max().unwrap_or(0);
    let mut floor_done = false;
    for &agents in agent_sizes {
        let n_cells = (agents / AGENTS_PER_CELL).max(1);
        let total = n_cells * AGENTS_PER_CELL;
        let label = format!("cells-{total}");
        let root = b.work.join(&label).join("missions");
        let mix = fleet::gen_cells(&root, n_cells, AGENTS_PER_CELL, now_unix())?;
        log(&format!(
            "cells: {n_cells} x {AGENTS_PER_CELL} = {total} agents {mix:?}"
        ));
        let ours = b.ours_cells(
            &format!("{label}-ours"),
            &root,
            total,
            mix.stale + mix.corrupt,
        )?;
        let seed = b.seed_cells(&format!("{label}-seed"), &root, n_cells, mix)?;
        let marginal = |w: Option<f64>, base: Option<f64>| Some((w? - base?) * 1e6 / total as f64);
        report.per_agent.push(PerAgent {
            agents: total,
            ours_marginal_us: marginal(wall(&ours), ours_base),
            ours_sweep_us: sweep_us_per_agent(&ours, total),
            seed_marginal_us: marginal(wall(&seed), seed_base),
        });
        report.rows.push(Row {
            case: "cells, one sweep".into(),
            size: format!(
                "{} agents ({} x {AGENTS_PER_CELL})",
                thousands(total),
                thousands(n_cells)
            ),
            ours,
            seed,
        });
        if agents == largest && !floor_done {
            floor_done = true;
            match run_floor(b, &root, mix.total()) {
                Ok(Some(f)) => report.floor = Some(f),
                Ok(None) => {}
                Err(e) => report.notes.push(format!("floor not measured: {e:#}")),
            }
        }
        if !b.cli.keep {
            let _ = std::fs::remove_dir_all(b.work.join(&label));
        }
    }

    // Gateways on loopback.
    if gateway_sizes.is_empty() {
        return Ok(());
    }
    let marker = format!("nexus-bench-{}", std::process::id());
    let _helper = AliveHelper::start(&marker, Duration::from_secs(4 * 3600))?;
    for &variant in variants {
        let hung_variant = variant == Variant::Hung;
        let mut seed_too_slow = false;
        for &g in gateway_sizes {
            let n_hung = fleet::hung_count(g, hung_variant);
            let label = format!("gw-{variant:?}-{g}").to_lowercase();
            let dir = b.work.join(&label);
            let fleet = GatewayFleet::build(g, hung_variant, &dir, &marker, now_unix())?;
            let hung_ok = fleet.verify_hung();
            log(&format!(
                "gateways: {g} ({variant:?}) ports {:?} expected {:?} hung verified: {hung_ok}",
                fleet.ports, fleet.expected
            ));
            let unhealthy = g - fleet.expected.healthy;
            let warmup = if hung_variant { 0 } else { b.cli.warmup };
            let mut ours = b.side(
                &format!("{label}-ours"),
                argv(&[
                    &b.pool_bin,
                    &"--config",
                    &fleet.config,
                    &"--once",
                    &"--dry-run",
                ]),
                &dir,
                &|| fleet.drain(),
                &|s| check_ours(s, g, unhealthy),
                warmup,
            )?;
            if !hung_ok {
                ours.check = Some(Check {
                    ok: false,
                    detail: "a hung listener accepted a connection: the fleet is not as intended"
                        .into(),
                });
            }
            let predicted = n_hung as f64 * SEED_PROBE_TIMEOUT_S;
            let seed = if b.seed.is_some() && seed_too_slow {
                Side::skipped("the previous size exceeded the per-run limit")
            } else if b.seed.is_some() && predicted > b.cli.limit {
                Side::skipped(format!(
                    "predicted >= {predicted:.0} s ({n_hung} hung x {SEED_PROBE_TIMEOUT_S:.0} s sequential timeouts) > limit {:.0} s",
                    b.cli.limit
                ))
            } else {
                b.seed_side("seed not run", |seed| {
                    let expected = fleet.expected;
                    b.side(
                        &format!("{label}-seed"),
                        argv(&[
                            &seed.python,
                            &seed.pool,
                            &"--config",
                            &fleet.config,
                            &"--once",
                            &"--dry-run",
                        ]),
                        &seed.dir,
                        &|| fleet.drain(),
                        &|s| {
                            let err = std::fs::read_to_string(&s.stderr).unwrap_or_default();
                            let n = |st: &str| err.matches(&format!("state={st} ")).count();
                            let saw = fleet::States {
                                healthy: n("healthy"),
                                degraded: n("degraded"),
                                dead: n("dead"),
                            };
                            Check {
                                ok: saw == expected,
                                detail: format!(
                                    "expected {expected:?}; saw {saw:?} (exit {:?})",
                                    s.rc
                                ),
                            }
                        },
                        warmup,
                    )
                })?
            };
            seed_too_slow |= seed.samples.iter().any(|s| s.timed_out);
            let case = match variant {
                Variant::None => "gateways, none hung",
                Variant::Hung => "gateways, 10 % hung",
            };
            let size = if hung_variant {
                format!("{} ({} hung)", thousands(g), thousands(n_hung))
            } else {
                thousands(g)
            };
            report.rows.push(Row {
                case: case.into(),
                size,
                ours,
                seed,
            });
            drop(fleet);
        }
    }
    Ok(())
}

/// Compiles floor.c into the temp dir and runs it on `root`; medians over runs.
/// `--mttr`: the MTTR cases, their table, and the JSON report if asked.
fn run_mttr(
    cli: &Cli,
    bin_dir: &Path,
    pool_bin: &Path,
    work: &Path,
    tmp: tempfile::TempDir,
) -> anyhow::Result<bool> {
    let hb_bin = bin_dir.join("nexus-heartbeat");
    anyhow::ensure!(hb_bin.is_file(), "{} is missing", hb_bin.display());
    let quick = cli.quick;
    let opts = mttr::Opts {
        pool_bin: pool_bin.to_path_buf(),
        hb_bin,
        work: work.to_path_buf(),
        kills: if quick { 3 } else { cli.mttr_kills.max(1) },
        idle_agents: if quick { 1_000 } else { cli.idle_agents.max(1) },
        idle_secs: if quick { 10.0 } else { cli.idle_secs.max(1.0) },
        limit: Duration::from_secs_f64(cli.limit.min(60.0)),
        only: cli.mttr_cases.clone(),
    };
    let cases = mttr::run(&opts)?;
    out!(
        "## MTTR: our pool (defaults) beside supervisord\n\n{}",
        mttr::render(&cases)
    );
    if let Some(path) = &cli.json {
        let v =
            serde_json::json!({"started_unix": now_unix(), "machine": machine(), "mttr": cases});
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if cli.keep {
        let kept = tmp.keep();
        log(&format!("kept {}", kept.display()));
    }
    Ok(cases.iter().all(|c| c.pass))
}

fn run_floor(b: &Bench<'_>, root: &Path, files: usize) -> anyhow::Result<Option<Floor>> {
    let Some(seed) = &b.seed else {
        return Ok(None);
    };
    if files == 0 {
        return Ok(None);
    }
    let cc = find_in_path("cc").context("no C compiler (cc) on PATH")?;
    let bin = b.work.join("floor");
    let out = Command::new(&cc)
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&seed.floor_c)
        .output()
        .with_context(|| format!("cannot run {}", cc.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "cc {} failed: {}",
        seed.floor_c.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut path, mut tick) = (Vec::new(), Vec::new());
    for i in 0..b.runs {
        let s = b.runner.run(
            &argv(&[&bin, &root, &"1000"]),
            &b.work,
            &b.work.join(format!("floor.run{i}")),
        )?;
        anyhow::ensure!(
            !s.timed_out && s.rc == Some(0),
            "floor failed: {}",
            tail(&s.stderr)
        );
        let text = std::fs::read_to_string(&s.stdout)?;
        let v: serde_json::Value = serde_json::from_str(&text).context("floor printed no JSON")?;
        let get = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        path.push(
            get("read_parse_path_us_per_file").context("floor: no read_parse_path_us_per_file")?,
        );
        tick.push(get("tick_openat_us_per_file").context("floor: no tick_openat_us_per_file")?);
        log(&format!(
            "  floor run {}: {:.2} µs/file (path), {:.2} µs/file (tick)",
            i + 1,
            path[i],
            tick[i]
        ));
    }
    Ok(Some(Floor {
        files,
        path_us: median(path).unwrap_or(f64::NAN),
        tick_us: median(tick).unwrap_or(f64::NAN),
    }))
}

fn print_report(r: &Report, b: &Bench<'_>) {
    outln!(
        "nexus-bench: {} runs per case (medians) after {} unmeasured warm-up run(s) (none for hung gateways); {} cpus, {}, kernel {}; {} (CPU in 10 ms steps); network namespace: {}",
        r.runs,
        r.warmup,
        r.machine.cpus,
        r.machine.cpu_model,
        r.machine.kernel,
        r.measure,
        if r.in_netns {
            "private (lo only)"
        } else {
            "host (127.0.0.1 only)"
        }
    );
    outln!(
        "ours: {} --once --dry-run (--cells-root ROOT | --config pool.json)",
        b.pool_bin.display()
    );
    if let Some(s) = &b.seed {
        outln!(
            "seed: {} {} --config X --status (cells); {} --config pool.json --once --dry-run (gateways)",
            s.python.display(),
            s.lazarus.display(),
            s.pool.display()
        );
    }
    outln!();
    out!("{}", table::render_main(&r.rows));
    if !r.per_agent.is_empty() {
        outln!();
        outln!("Cost per agent per sweep (whole process: (wall - empty-root wall) / agents):");
        outln!();
        out!(
            "{}",
            table::render_per_agent(&r.per_agent, r.floor.as_ref())
        );
    }
    if let Some(f) = &r.floor {
        outln!();
        outln!(
            "Floor (floor.c, one core, {} files): {:.2} µs/file open+read+parse by path, {:.2} µs/file in a whole readdir+openat tick",
            f.files,
            f.path_us,
            f.tick_us
        );
    }
    let busy = table::render_contention(&r.rows, 0.25);
    if !busy.is_empty() {
        outln!();
        outln!("Disturbed runs (the machine was not quiet; compare ratios, rerun to confirm):");
        out!("{busy}");
    }
    outln!();
    outln!("Checks (what each program saw, last run):");
    out!("{}", table::render_checks(&r.rows));
    for n in &r.notes {
        outln!("note: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_summary_line_parses() {
        let out = "healthy    agent-0000  heartbeat 1s attempts 0\n\
                   dead       agent-0009  heartbeat 3600s attempts 0\n\
                   dead       agent-0010  heartbeat none attempts 0\n\
                   3 agent(s), 2 unhealthy, sweep 12 ms\n";
        let r = parse_ours(out).unwrap();
        assert_eq!(r.agents, 3);
        assert_eq!(r.unhealthy, 2);
        assert_eq!(r.sweep_ms, 12.0);
        assert_eq!(r.states.get("dead"), Some(&2));
        assert_eq!(
            parse_ours("0 agent(s), 0 unhealthy, sweep 0 ms\n")
                .unwrap()
                .agents,
            0
        );
        assert!(parse_ours("").is_none());
        assert!(parse_ours("Traceback\n").is_none());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000), "10,000");
    }
}
