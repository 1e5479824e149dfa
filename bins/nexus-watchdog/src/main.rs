//! `nexus-watchdog`: the watchdog of seed 000 and the monitoring service of
//! seed 002 in one binary.
//!
//! Without `--config` it runs the four seed checks (gateway, loop process,
//! heartbeat, syntax); with one it runs any probe list. One-shot by default
//! (cron), `--watch` loops. `--watch` writes the watchdog's own cron
//! heartbeat; a one-shot only with `--self-heartbeat` or
//! `NEXUS_SELF_HEARTBEAT=1` (its systemd unit). Exit codes: 0 healthy, 1 degraded, failing or
//! unknown, 2 usage or configuration error; watch mode exits 0 on SIGTERM or
//! SIGINT. All logic lives in `nexus-watch` and `nexus-probe`.

use nexus_cli::{errln, out, outln};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use nexus_alert::{
    AlertProblem, AlertTables, Alerts, Channels, IncidentSettings, Severity, TelegramSettings,
};
use nexus_heartbeat::CronWriter;
use nexus_history::{Recorder, WithHistory};
use nexus_probe::{MatchMode, Runner, RunnerConfig, seed};
use nexus_watch::{Evaluation, SeedChecks, Watchdog, WatchdogFile};

#[derive(Debug, Parser)]
#[command(
    name = "nexus-watchdog",
    version,
    about = "Find a dead or hung agent and say so"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// A watchdog.toml with any list of probes (see docs/examples/watchdog.toml).
    #[arg(long, env = "NEXUS_WATCHDOG_CONFIG")]
    config: Option<PathBuf>,
    /// Gateway host (default checks).
    #[arg(long, env = "NEXUS_WS_HOST", default_value = seed::WS_HOST)]
    ws_host: String,
    /// Gateway port (default checks).
    #[arg(long, env = "NEXUS_WS_PORT", default_value_t = seed::WS_PORT)]
    ws_port: u16,
    /// The gateway's health endpoint (default checks: `gateway_health`,
    /// `GET http://HOST:PORT/health`; nothing listening there is tolerated).
    #[arg(long, env = "NEXUS_HEALTH_HOST", default_value = seed::HEALTH_HOST)]
    health_host: String,
    #[arg(long, env = "NEXUS_HEALTH_PORT", default_value_t = seed::HEALTH_PORT)]
    health_port: u16,
    /// Leave the `gateway_health` check out of the default checks.
    #[arg(long)]
    no_gateway_health: bool,
    /// The consciousness loop's process pattern.
    #[arg(long, default_value = seed::PROCESS_PATTERN)]
    process_pattern: String,
    /// `argv`: the pattern is a word of the command line (so `vim nexus_think.py`
    /// does not count); `substring`: anywhere in it.
    #[arg(long, value_enum, default_value = "argv")]
    process_match: ProcessMatch,
    /// Heartbeat file [default: $NEXUS_HEARTBEAT_PATH, else
    /// ~/.nexus/heartbeat.json, as the pool resolves it].
    #[arg(long)]
    heartbeat_path: Option<PathBuf>,
    /// Stale beyond this age [default: 300s].
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    stale_threshold: Option<Duration>,
    /// The think script to syntax-check.
    #[arg(long, default_value = seed::THINK_SCRIPT)]
    think_script: PathBuf,
    /// The interpreter that runs the agent.
    #[arg(long, env = "NEXUS_PYTHON", default_value = seed::PYTHON)]
    python: String,
    /// Where the process checks read processes: a procfs mount (anything
    /// else, e.g. an empty directory, makes "no such process" Unknown).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    proc_root: PathBuf,
    /// The PostgreSQL URL of every `postgres` probe and budget source; beats
    /// the config's, which beats $DATABASE_URL (blank counts as unset;
    /// none at all: "not configured", Unknown).
    #[arg(long, value_name = "URL")]
    postgres_url: Option<String>,
    /// Timeout of each default check.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "5s")]
    timeout: Duration,
    /// Loop forever (SIGTERM/SIGINT end it within a second).
    #[arg(long)]
    watch: bool,
    /// Cycle period with --watch [default: the config's, else 60s].
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    interval: Option<Duration>,
    /// No side effect at all: no HTTP call, no state, no recovery, no heartbeat.
    #[arg(long)]
    dry_run: bool,
    /// One JSON document per evaluation.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// The Markdown report (the incident body) instead of text.
    #[arg(long)]
    markdown: bool,
    /// Unknown counts as degraded (always so for the default checks).
    #[arg(long)]
    strict: bool,
    /// Where recovery counters and incident state live
    /// [default: ~/.local/state/nexus-watchdog].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Do not write the watchdog's own cron heartbeat (wins over
    /// `--self-heartbeat` and its variable).
    #[arg(long)]
    no_self_heartbeat: bool,
    /// Write the watchdog's own cron heartbeat after a one-shot run, as a
    /// run of its systemd timer does (`--watch` always writes it); a run by
    /// hand leaves none behind.
    #[arg(long, env = nexus_cli::SELF_HEARTBEAT_ENV, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    self_heartbeat: bool,
    /// Directory of the watchdog's own cron heartbeat
    /// [default: $BEZALEL_HEARTBEAT_DIR, else the cron defaults].
    #[arg(long)]
    heartbeat_dir: Option<PathBuf>,
    /// Gitea issue label [default: the config's, else `watchdog`].
    #[arg(long)]
    label: Option<String>,
    /// Issue title prefix [default: the config's, else `[watchdog]`].
    #[arg(long)]
    title_prefix: Option<String>,
    /// Assignee of new issues (repeatable; `none` for nobody) [default: Timmy].
    #[arg(long = "assignee")]
    assignees: Vec<String>,
    /// At most this many issues created per day.
    #[arg(long)]
    max_issues: Option<u32>,
    /// Also write every evaluation as Prometheus metrics to this file, for
    /// node_exporter's textfile collector (e.g.
    /// /var/lib/prometheus/node-exporter/nexus-watchdog.prom); replaced atomically.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Validate a config file; names the bad key. Exit 0 valid, 2 invalid.
    CheckConfig {
        /// The watchdog TOML file to check (as `--config` would load it).
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProcessMatch {
    Argv,
    Substring,
}

/// Everything one run needs, after flags, environment and config are merged.
struct Setup {
    watchdog: Watchdog,
    file: WatchdogFile,
    interval: Duration,
    incident: IncidentSettings,
    telegram: Option<TelegramSettings>,
    /// `[history]`: each check's status into the shared history file.
    history: Option<nexus_history::Settings>,
    /// `[webhook]`, `[ntfy]`, `[email]`, the environment applied.
    channels: Channels,
}

/// The value checks of a loaded file: its probes' and its alert tables'
/// (with this process's environment, as the run would see it).
fn findings(file: &WatchdogFile, tables: &AlertTables) -> nexus_stdx::Findings {
    let mut f = file.findings();
    f.extend(tables.findings(&|k| std::env::var(k).ok()));
    f
}

impl Setup {
    fn load(cli: &Cli) -> anyhow::Result<Setup> {
        let (file, tables, history, mut probes, strict) = match &cli.config {
            Some(path) => {
                let (file, WithHistory { tables, history }) =
                    WatchdogFile::load_with::<WithHistory<AlertTables>>(path)?;
                anyhow::ensure!(
                    !file.probes.is_empty(),
                    "{}: no [[probe]] tables: nothing to check",
                    path.display()
                );
                // The same value checks as `check-config`: an error stops
                // the start, a warning is logged once.
                let findings = findings(&file, &tables);
                anyhow::ensure!(
                    findings.usable(),
                    "{}: {}",
                    path.display(),
                    findings.errors.join("; ")
                );
                for w in &findings.warnings {
                    nexus_cli::errln!("nexus-watchdog: warning: {}: {w}", path.display());
                }
                let probes = file.probes.clone();
                let strict = file.watchdog.strict || cli.strict;
                (file, tables, history, probes, strict)
            }
            None => {
                let seed = SeedChecks {
                    ws_host: cli.ws_host.clone(),
                    ws_port: cli.ws_port,
                    process_pattern: cli.process_pattern.clone(),
                    process_match: match cli.process_match {
                        ProcessMatch::Argv => MatchMode::Argv,
                        ProcessMatch::Substring => MatchMode::Substring,
                    },
                    heartbeat_path: cli
                        .heartbeat_path
                        .clone()
                        .unwrap_or_else(seed::heartbeat_path),
                    stale_threshold: cli.stale_threshold.unwrap_or(seed::STALE_THRESHOLD),
                    think_script: cli.think_script.clone(),
                    python: cli.python.clone(),
                    timeout: cli.timeout,
                    health_host: cli.health_host.clone(),
                    health_port: cli.health_port,
                    gateway_health: !cli.no_gateway_health,
                };
                // The four seed checks are required: Unknown is never
                // healthy; only `gateway_health` may be Unknown (no endpoint).
                let mut file = WatchdogFile::default();
                file.watchdog.optional = seed.optional();
                (file, AlertTables::default(), None, seed.probes(), true)
            }
        };
        // Flag > config > DATABASE_URL, as the seed read it (docs/SPEC.md §4.6).
        let database_url = std::env::var("DATABASE_URL").ok();
        nexus_probe::fill_database_url(
            &mut probes,
            cli.postgres_url.as_deref(),
            database_url.as_deref(),
        );
        let state_dir = cli
            .state_dir
            .clone()
            .or_else(|| file.watchdog.state_dir.clone())
            .unwrap_or_else(default_state_dir);
        let runner = Runner::new(RunnerConfig {
            ..file.runner.clone()
        })
        .with_proc_root(&cli.proc_root);
        let interval = cli.interval.unwrap_or(file.watchdog.interval);
        anyhow::ensure!(!interval.is_zero(), "--interval must be positive");
        // The environment overrides, resolved once, here at the edge.
        let env = |k: &str| std::env::var(k).ok();
        let channels = tables.channels(&env);
        let mut incident = tables
            .incident
            .unwrap_or_default()
            .with_env(&env)
            .or_named("watchdog", "[watchdog]");
        if let Some(l) = &cli.label {
            incident.label = l.clone();
        }
        if let Some(p) = &cli.title_prefix {
            incident.title_prefix = p.clone();
        }
        if !cli.assignees.is_empty() {
            incident.assignees = cli.assignees.clone();
        }
        if let Some(m) = cli.max_issues {
            incident.max_issues_per_day = m;
        }
        Ok(Setup {
            watchdog: Watchdog {
                probes,
                runner,
                strict,
                optional: file.watchdog.optional.clone(),
                recovery: file.recovery.clone(),
                state_dir,
            },
            file,
            interval,
            incident,
            channels,
            telegram: tables.telegram.map(|t| t.with_env(&env)),
            history,
        })
    }
}

fn default_state_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join(".local/state/nexus-watchdog")
}

fn main() -> ExitCode {
    // Output never panics (`>/dev/full`, `| head`); a stdout that failed
    // for another reason than a closed pipe fails the run (nexus-cli).
    nexus_cli::finish("nexus-watchdog", main_inner())
}

fn main_inner() -> ExitCode {
    if let Some(code) = nexus_cli::generate_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    // The libraries' warnings (a Gitea that refused the assignees, a
    // Telegram 5xx) on stderr, filtered by NEXUS_LOG.
    nexus_cli::init_logging(if cli.watch {
        nexus_cli::DAEMON
    } else {
        nexus_cli::ONE_SHOT
    });
    if let Some(Cmd::CheckConfig { file }) = &cli.cmd {
        return match WatchdogFile::load_with::<AlertTables>(file) {
            Ok((f, tables)) => {
                let found = findings(&f, &tables);
                let summary = format!(
                    "{} probe(s), {} recovery action(s)",
                    f.probes.len(),
                    f.recovery.len()
                );
                nexus_cli::report_findings("nexus-watchdog", file, &found, &summary)
            }
            Err(e) => nexus_cli::Fail::config(e).report("nexus-watchdog"),
        };
    }
    let setup = match Setup::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            return nexus_cli::Fail::chain(nexus_cli::ExitKind::Config, &*e)
                .report("nexus-watchdog");
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return nexus_cli::Fail::failure(format_args!("cannot start the runtime: {e}"))
                .report("nexus-watchdog");
        }
    };
    let result = if cli.watch {
        rt.block_on(watch(&cli, &setup))
    } else {
        rt.block_on(once(&cli, &setup))
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            nexus_cli::Fail::chain(nexus_cli::ExitKind::Failure, &*e).report("nexus-watchdog")
        }
    }
}

fn alerts(cli: &Cli, setup: &Setup) -> Alerts {
    Alerts::new(
        &setup.incident,
        setup.telegram.as_ref(),
        &setup.watchdog.state_dir,
        cli.dry_run,
        "Nexus watchdog",
    )
    .with_channels(&setup.channels)
}

/// One cycle: evaluate once, print, alert, beat. Returns the exit code.
async fn cycle(
    cli: &Cli,
    setup: &Setup,
    alerts: &mut Alerts,
    history: Option<&Recorder>,
) -> anyhow::Result<u8> {
    let (eval, warnings) = setup.watchdog.evaluate(cli.dry_run).await;
    for w in &warnings {
        errln!("nexus-watchdog: {w}");
    }
    if let Some(h) = history {
        for e in eval.history_events() {
            h.record(e);
        }
    }
    print(cli, &eval)?;
    if let Some(path) = &cli.metrics_file
        && let Err(e) = nexus_metrics::write_textfile(path, &eval.metrics(period(cli, setup)))
    {
        errln!("nexus-watchdog: {e}");
    }
    // The same evaluation feeds the report and the incident (defect W3):
    // the checks that count against the run, each with its hint and what
    // its recovery action did.
    let problems: Vec<AlertProblem> = eval
        .findings()
        .into_iter()
        .map(|f| {
            let severity = if f.critical {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let p = AlertProblem::new(f.verdict.name.clone(), severity, f.verdict.summary.clone())
                .with_hint(f.hint);
            match f.recovery {
                Some(r) => p.with_recovery(r),
                None => p,
            }
        })
        .collect();
    let summary = eval.summary();
    let subject = setup.file.watchdog.subject.clone();
    for line in alerts
        .cycle(
            &subject,
            eval.healthy,
            &summary,
            &eval.markdown(),
            &problems,
        )
        .await
    {
        errln!("nexus-watchdog: {line}");
    }
    // A one-shot by hand is not a scheduled job: only `--watch`, or a run
    // its timer starts (NEXUS_SELF_HEARTBEAT=1), writes the own heartbeat.
    if !cli.dry_run && !cli.no_self_heartbeat && (cli.watch || cli.self_heartbeat) {
        beat(cli, setup);
    }
    Ok(eval.overall_status.exit_code())
}

fn print(cli: &Cli, eval: &Evaluation) -> anyhow::Result<()> {
    if cli.json {
        outln!(
            "{}",
            serde_json::to_string(eval).context("serialising the report")?
        );
    } else if cli.markdown {
        out!("{}", eval.markdown());
    } else {
        out!("{}", eval.text());
    }
    Ok(())
}

/// The watchdog's own cron heartbeat, so cron-heartbeat-check watches the watcher.
fn beat(cli: &Cli, setup: &Setup) {
    let dir = cli
        .heartbeat_dir
        .as_deref()
        .or(setup.file.watchdog.heartbeat_dir.as_deref());
    if let Err(e) =
        CronWriter::own(dir).beat(&setup.file.watchdog.heartbeat_job, period(cli, setup))
    {
        errln!("nexus-watchdog: own heartbeat: {e}");
    }
}

/// How often the watchdog runs: its cycle with `--watch`, else its timer's
/// (docs/systemd runs it every 5 minutes).
fn period(cli: &Cli, setup: &Setup) -> Duration {
    if cli.watch {
        setup.interval
    } else {
        Duration::from_secs(300)
    }
}

/// `[history]`'s recorder (not in a dry run); a file that cannot be
/// opened is said and the watchdog runs on without it.
fn history(cli: &Cli, setup: &Setup) -> Option<Recorder> {
    if cli.dry_run {
        return None;
    }
    match setup.history.as_ref()?.start(&setup.watchdog.state_dir) {
        Ok(rec) => rec,
        Err(e) => {
            errln!(
                "nexus-watchdog: history off: {}",
                nexus_stdx::error_chain(&e)
            );
            None
        }
    }
}

/// Waits until what was recorded is committed (before the process ends).
fn flush(history: Option<&Recorder>) {
    if let Some(h) = history {
        h.flush();
    }
}

async fn once(cli: &Cli, setup: &Setup) -> anyhow::Result<u8> {
    let mut alerts = alerts(cli, setup);
    let history = history(cli, setup);
    let code = cycle(cli, setup, &mut alerts, history.as_ref()).await;
    flush(history.as_ref());
    code
}

async fn watch(cli: &Cli, setup: &Setup) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut alerts = alerts(cli, setup);
    if let Some(w) = alerts.adopt().await {
        errln!("nexus-watchdog: {w}");
    }
    let history = history(cli, setup);
    let h = history.as_ref();
    nexus_stdx::sd_notify("READY=1");
    loop {
        // A signal aborts the cycle in flight; cycles never overlap.
        tokio::select! {
            r = cycle(cli, setup, &mut alerts, h) => { r?; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        nexus_stdx::sd_notify("WATCHDOG=1");
        tokio::select! {
            _ = tokio::time::sleep(setup.interval) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    flush(h);
    Ok(0)
}
