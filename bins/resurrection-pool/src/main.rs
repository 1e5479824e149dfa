//! `resurrection-pool`: watches gateways and the agents of every active
//! mission cell, revives the dead per mission policy, and shows it all on
//! loopback HTTP.
//!
//! Exit codes: 0 all healthy (`--once`, `--status`), 1 some agent is not or
//! some cell cannot be read, 2 usage or configuration error (a missing or
//! broken explicit config, an empty fleet or one where nothing can be read
//! (no gateway, every cell unreadable) or a named cells root that does not
//! exist, without `--allow-empty`, a second
//! daemon on the same state, a second pool on the same cells root). The
//! daemon exits 0 on SIGTERM/SIGINT within a second. The daemon writes its
//! own cron heartbeat; `--once` only with `--self-heartbeat` or
//! `NEXUS_SELF_HEARTBEAT=1` (its systemd unit). Logic lives in `nexus-pool`.

mod demo;

use nexus_cli::{errln, outln};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nexus_heartbeat::CronWriter;
use nexus_pool::{Pool, PoolConfig, PoolOptions, PoolState, SweepReport, Wake};

#[derive(Debug, Parser)]
#[command(
    name = "resurrection-pool",
    version,
    about = "Detect, decide, revive, escalate"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Config file (TOML, the seed's resurrection_pool.json, or lazarus-pit's
    /// config/lazarus-pit.toml as is); wins over
    /// RESURRECTION_CONFIG, then ~/.nexus/resurrection_pool.{toml,json},
    /// then /etc/nexus/resurrection_pool.{toml,json}.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Watch the agents of the cells under this root.
    #[arg(long, env = "MISSION_CELLS_ROOT")]
    cells_root: Option<PathBuf>,
    /// HTTP listen address, ADDRESS:PORT [default: the config's, 127.0.0.1:8767].
    #[arg(long, value_parser = nexus_cli::listen_arg)]
    listen: Option<String>,
    /// Time between sweeps.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    poll_interval: Option<Duration>,
    /// Dead this long before the policy acts.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    dead_threshold: Option<Duration>,
    /// One sweep (acting on persisted state), then exit 0 if all healthy.
    /// Its report lists every agent, so the log shows warnings only
    /// (NEXUS_LOG=info for every state change). Another pool on the same
    /// cells root is waited for up to a probe timeout and a second, then
    /// it exits 2.
    #[arg(long)]
    once: bool,
    /// Print the last known state; probes nothing, changes nothing.
    #[arg(long, conflicts_with = "once")]
    status: bool,
    /// List every cell under the cells root.
    #[arg(long, conflicts_with_all = ["once", "status"])]
    list_cells: bool,
    /// No side effect: no launch, no message, no issue, no state written,
    /// no lock taken; `/ping` answers 503.
    #[arg(long)]
    dry_run: bool,
    /// JSON output (`--once`, `--status`, `--list-cells`).
    #[arg(long)]
    json: bool,
    /// The pool state file [default: the config's, else ~/.nexus/resurrection_pool.state.json].
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// The PID file (locked while the daemon runs).
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Start even with no agent to watch, or a cells root that does not exist (yet).
    #[arg(long)]
    allow_empty: bool,
    /// Write the pool's own cron heartbeat (`<heartbeat_job>.last`) after a
    /// `--once` sweep, as a run of its systemd timer does (the daemon
    /// always writes it); a hand-run `--once` leaves none behind.
    #[arg(long, env = nexus_cli::SELF_HEARTBEAT_ENV, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    self_heartbeat: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A demo fleet on this machine: kills, hangs and breaks agents and shows
    /// how each is detected, revived or escalated (the README's main command).
    Demo(demo::DemoArgs),
    /// Validate a config file; names the bad key.
    CheckConfig {
        /// The pool config file to check (TOML or JSON, as `--config` would load it).
        file: PathBuf,
    },
}

/// `check-config`: 0 and a summary if the file can be used (its warnings
/// on stderr), else 2 and the error naming the key.
fn check_config(file: &Path) -> ExitCode {
    match PoolConfig::load(file) {
        Ok(c) => {
            // As the daemon would see it: with this process's environment.
            let c = c.with_env(&|k| std::env::var(k).ok());
            let found = c.findings();
            let cells = c
                .cells
                .as_ref()
                .map(|c| format!(", cells under {}", c.root.display()))
                .unwrap_or_default();
            let nostr = if c.nostr.is_some() { ", nostr" } else { "" };
            let summary = format!(
                "{}: {} gateway(s), {} mission(s){cells}{nostr}",
                c.format.as_str(),
                c.gateways.len(),
                c.missions.len(),
            );
            nexus_cli::report_findings("resurrection-pool", file, &found, &summary)
        }
        Err(e) => nexus_cli::Fail::config(e).report("resurrection-pool"),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// The documented precedence: --config, RESURRECTION_CONFIG, the user's
/// file, the system's. An explicit file that is missing or broken is an
/// error (exit 2), never a silent fall-through to defaults.
fn load_config(cli: &Cli) -> anyhow::Result<(PoolConfig, Option<PathBuf>)> {
    let explicit = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("RESURRECTION_CONFIG").map(PathBuf::from));
    // The environment overrides, resolved once, here at the edge.
    let env = |k: &str| std::env::var(k).ok();
    if let Some(p) = explicit {
        let cfg = PoolConfig::load(&p)?.with_env(&env);
        return Ok((cfg, Some(p)));
    }
    for dir in [home().join(".nexus"), PathBuf::from("/etc/nexus")] {
        for name in ["resurrection_pool.toml", "resurrection_pool.json"] {
            let p = dir.join(name);
            if p.is_file() {
                return Ok((PoolConfig::load(&p)?.with_env(&env), Some(p)));
            }
        }
    }
    Ok((PoolConfig::default().with_env(&env), None))
}

fn main() -> ExitCode {
    // Output never panics (`>/dev/full`, `| head`); a stdout that failed
    // for another reason than a closed pipe fails the run (nexus-cli).
    nexus_cli::finish("resurrection-pool", main_inner())
}

fn main_inner() -> ExitCode {
    if let Some(code) = nexus_cli::generate_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let default_level = if cli.once {
        nexus_cli::ONE_SHOT
    } else {
        nexus_cli::DAEMON
    };
    match &cli.cmd {
        Some(Cmd::Demo(args)) => {
            nexus_cli::init_logging(demo::LOG_DEFAULT);
            return demo::run(args);
        }
        Some(Cmd::CheckConfig { file }) => {
            nexus_cli::init_logging(default_level);
            return check_config(file);
        }
        None => {}
    }
    // The config is read before the log subscriber is installed: it may
    // name the daemon's level (lazarus-pit's `daemon.log_level`; NEXUS_LOG
    // wins). Its errors are printed, not logged.
    let (mut cfg, origin) = match load_config(&cli) {
        Ok(x) => x,
        Err(e) => {
            return nexus_cli::Fail::chain(nexus_cli::ExitKind::Config, &*e)
                .report("resurrection-pool");
        }
    };
    nexus_cli::init_logging(match cfg.log_level {
        Some(level) if !cli.once => level,
        _ => default_level,
    });
    // The same value checks as `check-config` (not for `--status` and
    // `--list-cells`, which only read): an error stops the start, each
    // warning is logged once.
    if cli.status || cli.list_cells {
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
    } else {
        let found = cfg.findings();
        for w in &found.warnings {
            tracing::warn!("{w}");
        }
        if !found.usable() {
            return nexus_cli::Fail::config(found.errors.join("; ")).report("resurrection-pool");
        }
    }
    if origin.is_none() {
        // Only the daemon says so at its default level: `--status` and
        // `--list-cells` stay quiet unless NEXUS_LOG asks.
        if cli.status || cli.list_cells {
            tracing::debug!("No config file found; using defaults (no gateways configured)");
        } else {
            tracing::info!("No config file found; using defaults (no gateways configured)");
        }
    }
    if let Some(d) = cli.poll_interval {
        if d < Duration::from_secs(1) {
            return nexus_cli::Fail::usage("--poll-interval must be at least 1s")
                .report("resurrection-pool");
        }
        cfg.pool.poll_interval = d;
    }
    if let Some(d) = cli.dead_threshold {
        cfg.pool.dead_threshold = d;
    }
    if let Some(l) = &cli.listen {
        cfg.pool.listen = l.clone();
    } else if let Err(e) = nexus_cli::listen_arg(&cfg.pool.listen) {
        return nexus_cli::Fail::config(format_args!("[pool] listen: {e}"))
            .report("resurrection-pool");
    }
    let allow_empty = cli.allow_empty || cfg.pool.allow_empty;
    // `--status` reads the state file: a root gone since is one of the
    // problems it reports, not a reason to show nothing.
    if !cli.status
        && let Some(e) = missing_cells_root(&cli, &cfg, allow_empty)
    {
        return e.report("resurrection-pool");
    }
    let state_file = cli
        .state_file
        .clone()
        .or_else(|| cfg.pool.state_file.clone())
        .unwrap_or_else(|| home().join(".nexus/resurrection_pool.state.json"));
    if cli.list_cells {
        return list_cells(&cli, &cfg);
    }
    if cli.status {
        return status(&cli, &cfg, &state_file);
    }
    let empty = cfg.gateways.is_empty() && cfg.cells.is_none() && cli.cells_root.is_none();
    if empty && !allow_empty {
        return nexus_cli::Fail::config(
            "nothing to watch: no gateways and no cells root (use --allow-empty to start anyway)",
        )
        .report("resurrection-pool");
    }
    let opts = PoolOptions {
        state_file,
        cells_root: cli.cells_root.clone(),
        dry_run: cli.dry_run,
    };
    // The ping endpoint's token is part of the config: checked before any
    // lock, like the rest of it.
    let ping = match cfg.ping.as_ref().filter(|_| !cli.once).map(|p| p.ingest()) {
        None => None,
        Some(Ok(mut p)) => {
            p.dry_run = cli.dry_run;
            Some(p)
        }
        Some(Err(e)) => return nexus_cli::Fail::from(e).report("resurrection-pool"),
    };
    let alerts = match cfg
        .alertmanager
        .as_ref()
        .filter(|_| !cli.once)
        .map(|a| a.ingest())
    {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => return nexus_cli::Fail::from(e).report("resurrection-pool"),
    };
    let _locks = match take_locks(&cli, &cfg, &opts) {
        Ok(l) => l,
        Err(e) => return nexus_cli::Fail::from(e).report("resurrection-pool"),
    };
    let rt = match if cli.once { once_runtime() } else { runtime() } {
        Ok(rt) => rt,
        Err(e) => {
            errln!("resurrection-pool: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        if cli.once {
            once(&cli, cfg, opts).await
        } else {
            daemon(&cli, cfg, opts, ping, alerts).await
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // 2 for what a person must fix (`nexus_pool::Error::is_usage`).
            let kind = e.downcast_ref::<nexus_pool::Error>().map_or(
                nexus_cli::ExitKind::Failure,
                nexus_cli::HasExitKind::exit_kind,
            );
            nexus_cli::Fail::chain(kind, &*e).report("resurrection-pool")
        }
    }
}

/// The cells root, from `--cells-root` or the config, when it is named.
fn cells_root(cli: &Cli, cfg: &PoolConfig) -> Option<PathBuf> {
    cli.cells_root
        .clone()
        .or_else(|| cfg.cells.as_ref().map(|c| c.root.clone()))
}

/// A named cells root that does not exist is a typo until shown otherwise:
/// exit 2 naming it (the daemon, `--once`, `--list-cells`), unless
/// `--allow-empty` (the root may appear later; it is then watched but not
/// locked). A root that exists but holds no cell is a new install, and fine.
fn missing_cells_root(cli: &Cli, cfg: &PoolConfig, allow_empty: bool) -> Option<nexus_cli::Fail> {
    let root = cells_root(cli, cfg)?;
    if root.is_dir() || allow_empty {
        return None;
    }
    Some(nexus_cli::Fail::config(format_args!(
        "cells root {} does not exist (use --allow-empty to start anyway)",
        root.display()
    )))
}

/// The locks a pool that acts holds for its life (a dry run, which writes
/// nothing, takes none): the daemon's PID file, in its state directory
/// (created `0700`), and the cells root's lock, so no second pool, daemon
/// or `--once`, works the same cells with a budget of its own. A daemon
/// finding the root locked exits 2 at once; `--once` first waits for up to
/// a probe timeout and a second (another `--once` finishing its sweep).
fn take_locks(
    cli: &Cli,
    cfg: &PoolConfig,
    opts: &PoolOptions,
) -> Result<Vec<nexus_pool::files::Lock>, nexus_pool::Error> {
    if opts.dry_run {
        return Ok(Vec::new());
    }
    let mut locks = Vec::new();
    if let Some(dir) = opts
        .state_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        nexus_pool::files::private_dir(dir).map_err(|source| nexus_pool::Error::Io {
            op: "create the state directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    if !cli.once {
        let pid_path = cli
            .pid_file
            .clone()
            .or_else(|| cfg.pool.pid_file.clone())
            .unwrap_or_else(|| opts.state_file.with_extension("pid"));
        locks.push(nexus_pool::files::lock_pid_file(&pid_path)?);
    }
    let root = opts
        .cells_root
        .clone()
        .or_else(|| cfg.cells.as_ref().map(|c| c.root.clone()))
        // A missing root passed `--allow-empty`: nothing there to guard yet.
        .filter(|r| r.is_dir());
    if let Some(root) = root {
        let wait = if cli.once {
            cfg.pool.probe_timeout + Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
        locks.push(nexus_pool::files::lock_cells_root(&root, wait)?);
    }
    Ok(locks)
}

/// The runtime of the daemon, `--once` and the demo.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Logs to stderr at `default` level unless `NEXUS_LOG` says otherwise; in
/// colour only on a terminal (a journal or a log file gets plain text).
/// `--once`'s runtime: one sweep, driven on this thread. Its probes are
/// I/O; with worker threads, each of 1,000 connects woke another thread
/// (measured: 1,000 gateways 55 ms here, 63 ms with two workers).
fn once_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn once(cli: &Cli, cfg: PoolConfig, opts: PoolOptions) -> anyhow::Result<u8> {
    let dry = opts.dry_run;
    let job = cfg.pool.heartbeat_job.clone();
    let hb_dir = cfg.pool.heartbeat_dir.clone();
    // A sweep may take up to a probe timeout beyond the poll interval.
    let interval = cfg.pool.poll_interval + cfg.pool.probe_timeout;
    // Gitea and Telegram run beside the sweep; a one-shot waits for them
    // before it sweeps (open issues adopted, approval answers read) and
    // after (what the sweep queued delivered), each time at most this long.
    let deadline = cfg.pool.channel_deadline;
    let allow_empty = cli.allow_empty || cfg.pool.allow_empty;
    let cron_dirs = cfg.cron_dirs();
    let mut alerts = channel_alerts(&cfg, &opts);
    let mut problems = Vec::new();
    let mut pool = Pool::new(cfg, opts)?;
    // `[history]`: the cron jobs the pool sees, recorded once.
    if let Some(rec) = pool.history_recorder().filter(|_| !cron_dirs.is_empty()) {
        nexus_pool::dashboard::record_cron(&cron_dirs, &rec, nexus_stdx::now_epoch());
    }
    pool.adopt();
    pool.poll_approvals();
    pool.settle(deadline).await;
    // Each agent is printed as the sweep steps it (through one buffer:
    // 10,000 agents are 10,000 lines, not 10,000 writes), so the views of
    // the whole fleet are never held at once. JSON is one array: collected.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, nexus_cli::stdout());
    let mut views = Vec::new();
    let mut failed: Option<std::io::Error> = None;
    let report = pool
        .sweep_each(&mut |view| {
            if alerts.is_some() {
                problems.extend(nexus_pool::notify::problem(&view));
            }
            if cli.json {
                views.push(view);
            } else if failed.is_none()
                && let Err(e) = print_line(&mut out, &view)
            {
                failed = Some(e);
            }
        })
        .await;
    if let Some(e) = failed {
        return Err(e.into());
    }
    pool.settle(deadline).await;
    if let Some(a) = &mut alerts {
        for line in a.tell(&problems).await {
            tracing::info!("alerts: {line}");
        }
    }
    print_end(cli, &mut out, &views, &report)?;
    if report.blind() && !allow_empty {
        return Ok(refuse_blind(&report));
    }
    // A hand-run sweep is not a scheduled job: only its timer's run (or
    // one asked to) writes the own heartbeat cron-heartbeat-check watches.
    if !dry && cli.self_heartbeat {
        let _ = beat(&job, hb_dir.as_deref(), interval);
    }
    // Everything is on disk and printed: freeing 10,000 records one by one
    // would only delay the exit.
    std::mem::forget(pool);
    Ok(u8::from(
        report.unhealthy > 0 || !report.unreadable.is_empty(),
    ))
}

/// `[webhook]`, `[ntfy]`, `[email]`: the pool's problem-set alerts
/// (`nexus_pool::notify`), state beside the state file; `None` when no
/// table is there.
fn channel_alerts(cfg: &PoolConfig, opts: &PoolOptions) -> Option<nexus_alert::Alerts> {
    let channels = cfg.channels();
    if channels.webhook.is_none() && channels.ntfy.is_none() && channels.email.is_none() {
        return None;
    }
    let dir = opts.state_file.parent().unwrap_or(Path::new("."));
    Some(nexus_alert::Alerts::channels_only(
        &channels,
        dir,
        opts.dry_run,
        nexus_pool::notify::TITLE,
    ))
}

/// Nothing could be read (no gateway, every cell unreadable): like an empty
/// fleet, a configuration error unless `--allow-empty`; the reasons, and 2.
fn refuse_blind(report: &SweepReport) -> u8 {
    errln!(
        "resurrection-pool: nothing can be watched: no gateway, and no cell could be read (use --allow-empty to start anyway; the agents' records are kept):"
    );
    for c in &report.unreadable {
        errln!("  {c}");
    }
    2
}

/// One agent's line of `--once`'s report: state and name left-aligned in
/// 10 and 24 columns, the heartbeat's age right-aligned in 8 (`2s`, `none`).
/// Padded by hand: `Formatter` padding was a third of a 10,000-agent sweep's
/// main-thread time.
fn print_line(out: &mut impl std::io::Write, a: &nexus_pool::AgentView) -> std::io::Result<()> {
    fn pad(out: &mut impl std::io::Write, text: &str, width: usize) -> std::io::Result<()> {
        const SPACES: &[u8; 32] = b"                                ";
        let chars = if text.is_ascii() {
            text.len()
        } else {
            text.chars().count()
        };
        let fill = width.saturating_sub(chars).min(SPACES.len());
        out.write_all(&SPACES[..fill])
    }
    let state = a.state.as_str();
    out.write_all(state.as_bytes())?;
    pad(out, state, 10)?;
    out.write_all(b" ")?;
    out.write_all(a.name.as_bytes())?;
    pad(out, &a.name, 24)?;
    out.write_all(b" heartbeat ")?;
    use std::io::Write as _;
    let mut buf = [0u8; 40];
    let mut age = std::io::Cursor::new(&mut buf[..]);
    match a.heartbeat_age {
        // Whole seconds, rounded as `{:.0}` rounds (half to even).
        Some(h) if h.is_finite() && h.abs() < 1e15 => {
            write!(age, "{}s", h.round_ties_even() as i64)?;
        }
        Some(h) => write!(age, "{h:.0}s")?,
        None => age.write_all(b"none")?,
    }
    let len = usize::try_from(age.position()).unwrap_or(0);
    let age = std::str::from_utf8(&buf[..len]).unwrap_or("?");
    pad(out, age, 8)?;
    out.write_all(age.as_bytes())?;
    write!(out, " attempts {}", a.revive_attempts)?;
    if let Some(c) = &a.cell {
        out.write_all(b"  cell ")?;
        out.write_all(c.as_bytes())?;
    }
    if let Some(r) = &a.reason {
        out.write_all(b"  why: ")?;
        out.write_all(r.as_bytes())?;
    }
    if let Some(w) = &a.waiting {
        out.write_all(b"  waiting: ")?;
        out.write_all(w.as_bytes())?;
    }
    out.write_all(b"\n")
}

/// The end of `--once`'s report: the JSON array of every agent, or the
/// summary line after the agents' lines.
fn print_end(
    cli: &Cli,
    out: &mut impl std::io::Write,
    views: &[nexus_pool::AgentView],
    report: &SweepReport,
) -> anyhow::Result<()> {
    if cli.json {
        serde_json::to_writer_pretty(&mut *out, views)?;
        writeln!(out)?;
        for c in &report.unreadable {
            errln!("resurrection-pool: unreadable cell {c}");
        }
    } else {
        for c in &report.unreadable {
            writeln!(out, "unreadable cell {c}")?;
        }
        let unreadable = match report.unreadable.len() {
            0 => String::new(),
            n => format!(", {n} unreadable cell(s)"),
        };
        writeln!(
            out,
            "{} agent(s), {} unhealthy{unreadable}, sweep {:.0} ms",
            report.agents,
            report.unhealthy,
            report.seconds * 1000.0
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Writes the pool's own heartbeat; the error (naming the file) if it failed.
fn beat(job: &str, dir: Option<&Path>, interval: Duration) -> Result<(), String> {
    CronWriter::own(dir)
        .durable(false)
        .beat(job, interval)
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!("own heartbeat: {e}");
            e.to_string()
        })
}

async fn daemon(
    cli: &Cli,
    cfg: PoolConfig,
    opts: PoolOptions,
    ping: Option<nexus_pool::ping::PingIngest>,
    alerts: Option<(
        nexus_pool::alertmanager::AlertIngest,
        nexus_pool::alertmanager::AlertInbox,
    )>,
) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let listen = cfg.pool.listen.clone();
    let poll = cfg.pool.poll_interval;
    // The own heartbeat's interval: a sweep may take up to a probe timeout
    // beyond the poll interval, and must not look like a hung pool.
    let beat_every = poll + cfg.pool.probe_timeout;
    let job = cfg.pool.heartbeat_job.clone();
    let hb_dir = cfg.pool.heartbeat_dir.clone();
    let dry = opts.dry_run;
    let allow_empty = cli.allow_empty || cfg.pool.allow_empty;
    // `[history]`: the page reads it on a thread of its own; the cron jobs
    // the pool sees are recorded into it on another.
    let history_file = cfg
        .history
        .as_ref()
        .filter(|h| h.enabled && !dry)
        .map(|h| h.file(opts.state_file.parent().unwrap_or(Path::new("."))));
    let cron_dirs = cfg.cron_dirs();
    let told = channel_alerts(&cfg, &opts);
    let mut pool = Pool::new(cfg, opts)?;
    let _told = told.map(|a| nexus_pool::notify::spawn(a, pool.shared()));
    let _cron_watch = match pool.history_recorder() {
        Some(rec) if !cron_dirs.is_empty() => Some(
            nexus_pool::dashboard::CronWatch::start(
                cron_dirs,
                rec,
                nexus_pool::dashboard::CRON_EVERY,
            )
            .context("cannot start the cron watch thread")?,
        ),
        _ => None,
    };
    let history = match history_file {
        Some(f) => Some(
            nexus_pool::dashboard::HistoryFeed::start(f, nexus_pool::dashboard::FEED_EVERY)
                .context("cannot start the history feed thread")?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let actions = pool
        .page_actions()
        .context("cannot make the status page's CSRF token")?;
    let alertmanager = alerts.map(|(ingest, inbox)| {
        pool.receive_alerts(inbox);
        ingest
    });
    let server = tokio::spawn(nexus_pool::http::serve(
        listener,
        pool.shared(),
        nexus_pool::http::Extras {
            ping,
            actions: Some(actions),
            alertmanager,
            history,
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    tracing::info!(
        "Resurrection Pool starting: status page http://{addr}/, poll_interval={}s",
        poll.as_secs_f64()
    );
    pool.adopt();
    pool.watch();
    let mut first = true;
    'run: loop {
        let report = tokio::select! {
            r = pool.sweep() => r,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        if std::mem::take(&mut first) {
            if report.blind() && !allow_empty {
                let _ = stop_tx.send(());
                return Ok(refuse_blind(&report));
            }
            nexus_stdx::sd_notify("READY=1");
        }
        nexus_stdx::sd_notify("WATCHDOG=1");
        if !dry {
            let beaten = beat(&job, hb_dir.as_deref(), beat_every);
            pool.fault_result("heartbeat", beaten);
        }
        // Until the next safety sweep, the pool steps what changes: a beat
        // of an agent that is not healthy, a child's exit, a deadline (a
        // heartbeat going stale, a backoff ending); a changed fleet or a
        // lost event brings the sweep forward.
        pool.poll_approvals();
        let until = tokio::time::Instant::now() + poll;
        loop {
            tokio::select! {
                woke = pool.idle(until) => match woke {
                    Wake::Steps(keys) => {
                        pool.step_keys(&keys).await;
                        continue;
                    }
                    Wake::Sweep(why) => tracing::info!("{why}: sweeping now"),
                    Wake::Answers => tracing::info!("approval answers arrived: sweeping now"),
                    Wake::Timer => {}
                },
                _ = term.recv() => break 'run,
                _ = int.recv() => break 'run,
            }
            break;
        }
    }
    pool.shutdown();
    tracing::info!("Resurrection Pool stopped");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    Ok(0)
}

/// The last sweep's view of every agent, from the state file, and the
/// agents the config and the cells declare that no sweep checked yet (the
/// cells root is read, never written). Probes nothing, changes nothing.
fn status(cli: &Cli, cfg: &PoolConfig, state_file: &Path) -> ExitCode {
    let state = match PoolState::load(state_file) {
        Ok(s) => s,
        Err(e) => return nexus_cli::Fail::config(e).report("resurrection-pool"),
    };
    let store = cells_root(cli, cfg).map(nexus_cell::CellStore::new);
    let (declared, problems) = nexus_pool::status::declared(cfg, store.as_ref());
    for p in &problems {
        errln!("resurrection-pool: {p}");
    }
    let rows = nexus_pool::status::rows(&state, &declared);
    if cli.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => outln!("{s}"),
            Err(e) => return nexus_cli::Fail::failure(e).report("resurrection-pool"),
        }
    } else if rows.is_empty() {
        outln!("No agents in {}", state_file.display());
    } else {
        for r in &rows {
            outln!("{}", r.line());
        }
    }
    ExitCode::from(u8::from(rows.iter().any(|r| !r.healthy())))
}

fn list_cells(cli: &Cli, cfg: &PoolConfig) -> ExitCode {
    let root = cells_root(cli, cfg).unwrap_or_else(|| PathBuf::from(nexus_cell::DEFAULT_ROOT));
    if !root.is_dir() {
        errln!("{} does not exist", root.display());
        return ExitCode::from(1);
    }
    let store = nexus_cell::CellStore::new(&root);
    let d = match store.discover() {
        Ok(d) => d,
        Err(e) => return nexus_cli::Fail::failure(e).report("resurrection-pool"),
    };
    let mut rows: Vec<(String, String, String)> = d
        .cells
        .iter()
        .map(|c| {
            let m = c.manifest();
            (
                c.id().to_string(),
                format!("{:?}", m.status).to_lowercase(),
                m.mission.clone(),
            )
        })
        .chain(d.skipped.iter().map(|s| {
            (
                s.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "[unreadable manifest]".to_string(),
                s.error.to_string(),
            )
        }))
        .collect();
    rows.sort();
    if cli.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(id, st, m)| serde_json::json!({"uuid": id, "status": st, "mission": m}))
            .collect();
        outln!("{}", serde_json::Value::Array(v));
    } else if rows.is_empty() {
        outln!("No mission cells found in {}", root.display());
    } else {
        for (id, st, m) in rows {
            outln!("{id}: {st} — {m}");
        }
    }
    ExitCode::SUCCESS
}
