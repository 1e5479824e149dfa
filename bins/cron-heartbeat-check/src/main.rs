//! `cron-heartbeat-check`: no cron job can stop silently.
//!
//! `cron-heartbeat-check` checks every `<job>.last` and the registry of
//! expected jobs; exit 0 only when every job is OK (or running), 1
//! otherwise (also when nothing is monitored at all, or a `*.last` file
//! had to be ignored), 2 on a usage or configuration error. `cron-heartbeat-check report` writes the Night
//! Watch report. Its own heartbeat (`cron-heartbeat-check.last`) is written
//! only with `--self-heartbeat` or `NEXUS_SELF_HEARTBEAT=1` (its systemd
//! unit): a run by hand is not the scheduled job. Logic lives in `nexus-cron`; this file parses flags,
//! loads the registry, calls it and prints.

use nexus_cli::{errln, out, outln};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use nexus_alert::{
    AlertProblem, AlertTables, Alerts, IncidentSettings, Severity, TelegramSettings,
};
use nexus_cron::{CheckReport, Registry, alerts, history, report};
use nexus_heartbeat::{CronDirs, CronWriter};
use nexus_history::WithHistory;
use nexus_stdx::{format_duration, now_epoch};

/// The registry read when `--registry` is not given, if it exists.
const DEFAULT_REGISTRY: &str = "/etc/bezalel/cron-jobs.toml";
/// This checker's own heartbeat job name.
const SELF_JOB: &str = "cron-heartbeat-check";

#[derive(Debug, Parser)]
#[command(
    name = "cron-heartbeat-check",
    version,
    about = "Flag cron jobs that went silent"
)]
struct Cli {
    #[command(flatten)]
    scan: ScanArgs,
    #[command(flatten)]
    check: CheckArgs,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write the Night Watch report (Markdown by default).
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Heartbeat directory (repeatable; replaces the defaults: $BEZALEL_HEARTBEAT_DIR, else
    /// /var/run/bezalel/heartbeats, /var/lib/bezalel/heartbeats and ~/.bezalel/heartbeats).
    #[arg(long = "dir", global = true)]
    dirs: Vec<PathBuf>,
    /// Registry of expected jobs (TOML) [default: /etc/bezalel/cron-jobs.toml if present].
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    /// Interval for files that record none [default: registry's, else 1d].
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    default_interval: Option<Duration>,
    /// STALE beyond this many intervals [default: registry's, else 2].
    #[arg(long, global = true)]
    multiplier: Option<f64>,
    /// LATE (not yet STALE) for this long past the deadline [default: registry's, else 0s].
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    grace: Option<Duration>,
    /// Where the state and history live [default: the first directory's parent].
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// Judge as if it were this time (RFC 3339 or epoch seconds): replays and tests.
    #[arg(long, global = true, hide = true, value_parser = instant)]
    at: Option<f64>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Change nothing: no alert markers, state, own heartbeat or incidents.
    #[arg(long)]
    dry_run: bool,
    /// Where `<job>.alert` markers go [default: <first dir>/../alerts].
    #[arg(long)]
    alerts_dir: Option<PathBuf>,
    /// The interval of this checker's own heartbeat (its timer period).
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "15m")]
    self_interval: Duration,
    /// Do not write this checker's own heartbeat (wins over
    /// `--self-heartbeat` and its variable).
    #[arg(long)]
    no_self_heartbeat: bool,
    /// Write this checker's own heartbeat, as a run of its systemd timer
    /// does; a run by hand leaves none behind.
    #[arg(long, env = nexus_cli::SELF_HEARTBEAT_ENV, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    self_heartbeat: bool,
    /// Also write the verdicts as Prometheus metrics to this file, for
    /// node_exporter's textfile collector (e.g.
    /// /var/lib/prometheus/node-exporter/nexus-cron.prom); replaced atomically.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Only the Heartbeat Panel.
    #[arg(long)]
    panel: bool,
    /// HTML instead of Markdown.
    #[arg(long, conflicts_with = "lines")]
    html: bool,
    /// The morning-report layout: `+`/`-` lines.
    #[arg(long)]
    lines: bool,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

fn instant(s: &str) -> Result<f64, String> {
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n);
    }
    nexus_heartbeat::Observation::parse(format!("{s:?}").as_bytes(), None)
        .ok()
        .and_then(|o| o.timestamp)
        .ok_or_else(|| format!("{s:?} is neither epoch seconds nor an RFC 3339 time"))
}

/// Directories, registry and state location after defaults are applied.
struct Setup {
    dirs: Vec<PathBuf>,
    explicit_dirs: bool,
    registry: Registry,
    /// `[incident]`, `[telegram]`, `[webhook]`, `[ntfy]`, `[email]`, typed
    /// at load (the environment is applied where they are used).
    alerting: AlertTables,
    /// `[history]`: each job's status into the shared history file.
    history: Option<nexus_history::Settings>,
    state_dir: PathBuf,
    now: f64,
}

impl Setup {
    fn load(a: &ScanArgs) -> anyhow::Result<Setup> {
        let explicit_dirs = !a.dirs.is_empty();
        let dirs = if explicit_dirs {
            a.dirs.clone()
        } else {
            default_dirs()
        };
        let (
            mut registry,
            WithHistory {
                tables: alerting,
                history,
            },
        ) = match &a.registry {
            Some(p) => Registry::load_with::<WithHistory<AlertTables>>(p)?,
            None if Path::new(DEFAULT_REGISTRY).is_file() => {
                Registry::load_with::<WithHistory<AlertTables>>(Path::new(DEFAULT_REGISTRY))?
            }
            None => (Registry::default(), WithHistory::default()),
        };
        // A value of `[incident]`/`[telegram]` that cannot work (a URL that
        // is none) stops the run in the user's terms, not in the HTTP
        // client's at the first alert. (Its warnings, a missing token, are
        // the alert code's to say when it has something to send.)
        let found = alerting.findings(&|k| std::env::var(k).ok());
        anyhow::ensure!(found.usable(), "{}", found.errors.join("; "));
        let s = &mut registry.settings;
        if let Some(d) = a.default_interval.filter(|d| !d.is_zero()) {
            s.default_interval = d;
        }
        if let Some(m) = a.multiplier {
            anyhow::ensure!(m.is_finite() && m >= 1.0, "--multiplier {m}: must be >= 1");
            s.multiplier = m;
        }
        if let Some(g) = a.grace {
            s.grace = g;
        }
        let first = dirs.first().context("no heartbeat directory")?;
        let state_dir = a
            .state_dir
            .clone()
            .unwrap_or_else(|| first.parent().unwrap_or(first).to_path_buf());
        Ok(Setup {
            dirs,
            explicit_dirs,
            registry,
            alerting,
            history,
            state_dir,
            now: a.at.unwrap_or_else(now_epoch),
        })
    }

    fn check(&self) -> CheckReport {
        nexus_cron::evaluate(&self.registry, &nexus_cron::scan(&self.dirs), self.now)
    }
}

fn default_dirs() -> Vec<PathBuf> {
    let resolved = CronDirs::resolve(None);
    if resolved.is_explicit() {
        return resolved.candidates().to_vec();
    }
    let mut dirs = resolved.candidates().to_vec();
    dirs.insert(1, PathBuf::from(nexus_heartbeat::CronDirs::PERSISTENT_DIR));
    dirs
}

fn main() -> ExitCode {
    // Output never panics (`>/dev/full`, `| head`); a stdout that failed
    // for another reason than a closed pipe fails the run (nexus-cli).
    nexus_cli::finish("cron-heartbeat-check", main_inner())
}

fn main_inner() -> ExitCode {
    if let Some(code) = nexus_cli::generate_if_asked::<Cli>() {
        return code;
    }
    nexus_cli::init_logging(nexus_cli::ONE_SHOT);
    let cli = Cli::parse();
    let setup = match Setup::load(&cli.scan) {
        Ok(s) => s,
        Err(e) => {
            return nexus_cli::Fail::chain(nexus_cli::ExitKind::Config, &*e)
                .report("cron-heartbeat-check");
        }
    };
    let result = match &cli.cmd {
        Some(Cmd::Report(r)) => write_report(&setup, r),
        None => check(&setup, &cli.check),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            nexus_cli::Fail::chain(nexus_cli::ExitKind::Failure, &*e).report("cron-heartbeat-check")
        }
    }
}

fn check(setup: &Setup, a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = setup.check();
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    for job in report.failures() {
        errln!("{}", alerts::p1_line(job));
    }
    if let Some(path) = &a.metrics_file {
        let text = report.metrics(nexus_stdx::hostname());
        if let Err(e) = nexus_metrics::write_textfile(path, &text) {
            errln!("cron-heartbeat-check: {e}");
        }
    }
    if report.nothing_monitored {
        errln!(
            "cron-heartbeat-check: nothing monitored: no .last files in {} and no registry",
            setup
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for p in &report.dir_problems {
        errln!("cron-heartbeat-check: cannot read heartbeat directory {p}");
    }
    for line in report::ignored_lines(&report) {
        errln!("cron-heartbeat-check: {line}");
    }
    let first = setup.dirs.first().context("no heartbeat directory")?;
    let alerts_dir = a
        .alerts_dir
        .clone()
        .unwrap_or_else(|| first.parent().unwrap_or(first).join("alerts"));
    if a.dry_run {
        for job in report.failures() {
            errln!(
                "dry-run: would mark {} in {}",
                job.job,
                alerts_dir.display()
            );
        }
    } else {
        let changes = alerts::sync(&alerts_dir, &report);
        for e in &changes.errors {
            errln!("cron-heartbeat-check: alert marker: {e}");
        }
        if let Err(e) = history::record(&setup.state_dir, &report) {
            errln!("cron-heartbeat-check: state: {e}");
        }
        record_history(setup, &report);
        // A run by hand is not the scheduled job: only its timer's run (or
        // one asked to) writes the own heartbeat.
        if a.self_heartbeat && !a.no_self_heartbeat {
            let dir = setup.explicit_dirs.then_some(first.as_path());
            if let Err(e) = CronWriter::own(dir).beat(SELF_JOB, a.self_interval) {
                errln!("cron-heartbeat-check: own heartbeat: {e}");
            }
        }
    }
    for line in incident(setup, &report, a.dry_run)? {
        errln!("cron-heartbeat-check: {line}");
    }
    Ok(if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `[history]`: every job's status as an observation (the file keeps only
/// changes), committed before the run ends. A file that cannot be opened
/// is said and the run goes on.
fn record_history(setup: &Setup, report: &CheckReport) {
    let Some(settings) = &setup.history else {
        return;
    };
    match settings.start(&setup.state_dir) {
        Ok(Some(rec)) => {
            for e in history::events(report, nexus_stdx::hostname()) {
                rec.record(e);
            }
            rec.flush();
            if rec.failed() > 0 {
                errln!(
                    "cron-heartbeat-check: history {}: {} event(s) could not be written",
                    rec.path().display(),
                    rec.failed()
                );
            }
        }
        Ok(None) => {}
        Err(e) => errln!(
            "cron-heartbeat-check: history off: {}",
            nexus_stdx::error_chain(&e)
        ),
    }
}

/// The registry's `[incident]` / `[telegram]` tables (defaults: label
/// `heartbeat-checker`, prefix `[heartbeat-checker]`), with the environment
/// overrides, resolved once, here at the edge.
fn alert_settings(tables: &AlertTables) -> (IncidentSettings, Option<TelegramSettings>) {
    let env = |k: &str| std::env::var(k).ok();
    let incident = tables
        .incident
        .clone()
        .unwrap_or_default()
        .with_env(&env)
        .or_named("heartbeat-checker", "[heartbeat-checker]");
    let telegram = match &tables.telegram {
        Some(t) => Some(t.clone().with_env(&env)),
        // Environment only: both variables set.
        None if env("TELEGRAM_CHAT_ID").is_some() => {
            Some(TelegramSettings::default().with_env(&env))
        }
        None => None,
    };
    (incident, telegram)
}

/// One incident for the whole set of failing jobs (subject `cron`),
/// commented as the set changes, closed when every job recovers; a Telegram
/// message per new failing set.
fn incident(setup: &Setup, report: &CheckReport, dry_run: bool) -> anyhow::Result<Vec<String>> {
    let (settings, telegram) = alert_settings(&setup.alerting);
    let failing: Vec<&nexus_cron::JobReport> = report.failures().collect();
    let healthy = failing.is_empty() && !report.nothing_monitored;
    let summary = if healthy {
        "all cron jobs healthy".to_string()
    } else if report.nothing_monitored {
        "nothing monitored: no heartbeat files and no registry".to_string()
    } else {
        format!(
            "{} cron job(s) silent: {}",
            failing.len(),
            failing
                .iter()
                .map(|j| j.job.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let markdown = report::night_watch_markdown(report, &[], nexus_stdx::hostname());
    let problems: Vec<AlertProblem> = failing
        .iter()
        .map(|j| {
            AlertProblem::new(j.job.clone(), Severity::Critical, alerts::p1_line(j))
                .with_hint(alerts::hint(j))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let state_dir = setup.state_dir.join("checker-alerts");
    Ok(rt.block_on(async {
        let mut a = Alerts::new(
            &settings,
            telegram.as_ref(),
            &state_dir,
            dry_run,
            "Cron heartbeats",
        )
        .with_channels(&setup.alerting.channels(&|k| std::env::var(k).ok()));
        a.cycle("cron", healthy, &summary, &markdown, &problems)
            .await
    }))
}

fn print_table(report: &CheckReport) {
    outln!(
        "{:<8} {:<28} {:>9} {:>11} {:>6}  REASON",
        "STATUS",
        "JOB",
        "AGE",
        "INTERVAL",
        "RATIO"
    );
    for j in &report.jobs {
        outln!(
            "{:<8} {:<28} {:>9} {:>11} {:>6}  {}",
            j.status.as_str(),
            j.job,
            j.age_seconds
                .map_or_else(|| "never".into(), format_duration),
            j.interval_seconds
                .map_or_else(|| "?".into(), format_duration),
            j.ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}")),
            j.reason
        );
    }
    for i in &report.ignored {
        outln!("{:<8} {}: {}", "IGNORED", i.path, i.reason);
    }
    let failing = report.failures().count();
    let ignored = match report.ignored.len() {
        0 => String::new(),
        n => format!("; {n} heartbeat file(s) ignored"),
    };
    outln!(
        "{}{ignored}",
        if report.nothing_monitored {
            "nothing monitored".to_string()
        } else if failing > 0 {
            format!(
                "{failing} of {} cron job(s) failing: {}",
                report.jobs.len(),
                report.stale.join(", ")
            )
        } else {
            format!("all {} cron job(s) healthy", report.jobs.len())
        }
    );
}

fn write_report(setup: &Setup, a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let check = setup.check();
    let (changes, skipped) = history::read_since(&setup.state_dir, setup.now - 86_400.0);
    if skipped > 0 {
        errln!(
            "cron-heartbeat-check: skipped {skipped} unreadable line(s) in the history under {}",
            setup.state_dir.display()
        );
    }
    let host = nexus_stdx::hostname();
    let text = match (a.panel, a.html, a.lines) {
        (_, _, true) => report::morning_lines(&check),
        (true, false, false) => report::panel_markdown(&check),
        (_, true, false) => report::night_watch_html(&check, &changes, host),
        (false, false, false) => report::night_watch_markdown(&check, &changes, host),
    };
    match &a.output {
        Some(path) => nexus_stdx::write_atomic(path, text.as_bytes(), true)?,
        None => out!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
