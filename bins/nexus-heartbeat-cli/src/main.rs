//! `nexus-heartbeat`: heartbeats for shell scripts and cron lines.
//!
//! Exit codes: `beat` 0/1 (written/not); `touch` 0 even when the write fails
//! (a heartbeat never breaks a job; `--strict` makes it 1); `run` the
//! command's own code (128 + the signal when SIGTERM, SIGINT or SIGHUP
//! stopped it: `run` passes them on to the job's process group, waits for
//! it and records a failed run); `check` 0 when every file is fresh, 1
//! otherwise; 2 for usage errors everywhere.

use nexus_cli::{errln, outln};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nexus_heartbeat::{
    AgentHeartbeat, Classification, CronDirs, CronWriter, HeartbeatWriter, Ping, PingKind, Rule,
    RunOutcome,
};
use nexus_stdx::now_epoch;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "nexus-heartbeat",
    version,
    about = "Write and check heartbeat files"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write an agent heartbeat (end of every think cycle).
    #[command(alias = "write")]
    Beat(BeatArgs),
    /// Record a successful cron run: writes <dir>/<job>.last.
    Touch(TouchArgs),
    /// Run a command and record its start, duration and exit code in <job>.last.
    Run(RunArgs),
    /// Classify heartbeat files; exit 0 only if all are fresh.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct BeatArgs {
    /// Heartbeat file [default: $NEXUS_HEARTBEAT_PATH or ~/.nexus/heartbeat.json].
    #[arg(long)]
    path: Option<PathBuf>,
    /// Think-cycle counter.
    #[arg(long, default_value_t = 0)]
    cycle: u64,
    /// Model name.
    #[arg(long, default_value = "unknown")]
    model: String,
    /// What the agent is doing.
    #[arg(long, default_value = "thinking")]
    status: String,
    /// Agent name (cell heartbeats).
    #[arg(long)]
    agent: Option<String>,
    /// Mission cell UUID [default: $LAZARUS_CELL_UUID].
    #[arg(long, env = "LAZARUS_CELL_UUID")]
    cell_uuid: Option<String>,
    /// PID to report [default: the calling process, i.e. our parent].
    #[arg(long)]
    pid: Option<u32>,
    /// Skip fsync (faster; a power cut may lose the newest beat).
    #[arg(long)]
    no_fsync: bool,
}

#[derive(Debug, Args)]
struct JobArgs {
    /// Job name: [A-Za-z0-9._-], the file stem of <job>.last.
    #[arg(long)]
    job: String,
    /// Expected interval between successes: 90s, 5m, 1h, 1d or seconds.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    interval: Duration,
    /// Heartbeat directory [default: $BEZALEL_HEARTBEAT_DIR, else
    /// /var/run/bezalel/heartbeats falling back to ~/.bezalel/heartbeats].
    #[arg(long, conflicts_with = "url")]
    dir: Option<PathBuf>,
    /// Push to a resurrection pool (`http://pool:8767`) instead of writing a
    /// file: `POST /ping/<job>?host=<host>`, with a timeout and retries; the
    /// pool keeps it as `<job>@<host>.last`.
    #[arg(long)]
    url: Option<String>,
    /// The host name a push is recorded under [default: this machine's].
    #[arg(long, requires = "url")]
    host: Option<String>,
    /// The variable holding the push token.
    #[arg(long, default_value = "NEXUS_PING_TOKEN")]
    token_env: String,
    /// A file holding the push token (mode 0600 or stricter, else refused),
    /// used when the variable is not set.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// Pushes one ping (the `/ping` grammar of [`Ping`], which the pool parses).
/// Three tries, 5 s each; the error says why, without the token, and shows
/// the URL without its user info (`http://user:password@pool` may be how
/// a proxy in front of the pool wants it).
fn push(job: &JobArgs, url: &str, kind: PingKind, interval: u64) -> Result<(), String> {
    let shown = nexus_secret::redact_url(url);
    let from_env = std::env::var(&job.token_env).ok();
    let token = nexus_secret::token(from_env.as_deref(), job.token_file.as_deref())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no push token in ${} (or --token-file)", job.token_env))?;
    let host = job.host.as_deref().unwrap_or(nexus_stdx::hostname());
    let ping =
        Ping::new(&job.job, host, kind, Some(Duration::from_secs(interval))).map_err(|e| {
            match nexus_heartbeat::CronDirs::validate_job_name(&job.job) {
                Ok(()) => format!("{e} (use --host)"),
                Err(_) => e.to_string(),
            }
        })?;
    let endpoint = format!("{}{}", url.trim_end_matches('/'), ping.path_and_query());
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("push: {e}"))?;
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 << (attempt - 1)));
        }
        match client
            .post(&endpoint)
            .header("authorization", format!("Bearer {}", token.expose()))
            .send()
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            // A 4xx will not get better by retrying.
            Ok(r) if r.status().is_client_error() => {
                return Err(format!("push to {shown} refused: {}", r.status()));
            }
            Ok(r) => last = format!("push to {shown}: {}", r.status()),
            // The whole chain: "connection refused", a timeout, a TLS or
            // DNS failure, not only reqwest's "error sending request".
            Err(e) => {
                last = format!(
                    "push to {shown} failed: {}",
                    nexus_stdx::error_chain(&e.without_url())
                );
            }
        }
    }
    Err(last)
}

#[derive(Debug, Args)]
struct TouchArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Exit 1 when the heartbeat cannot be written (default: report and exit 0).
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    job: JobArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Heartbeat files (agent .json or cron .last).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Maximum age [default: 2x the file's interval; agent heartbeats 300s].
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg)]
    max_age: Option<Duration>,
    /// Interval assumed for a `.last` file that records none (touch-style).
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "1d")]
    default_interval: Duration,
    /// How far in the future a timestamp may be before it is clock skew.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "300s")]
    future_tolerance: Duration,
    /// One JSON array instead of a line per file.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // Output never panics (`>/dev/full`, `| head`); a stdout that failed
    // for another reason than a closed pipe fails the run (nexus-cli).
    nexus_cli::finish("nexus-heartbeat", main_inner())
}

fn main_inner() -> ExitCode {
    if let Some(code) = nexus_cli::generate_if_asked::<Cli>() {
        return code;
    }
    nexus_cli::init_logging(nexus_cli::ONE_SHOT);
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Beat(a) => beat(a),
        Cmd::Touch(a) => touch(a),
        Cmd::Run(a) => run(a),
        Cmd::Check(a) => check(a),
    }
}

fn beat(a: BeatArgs) -> ExitCode {
    let path = a.path.unwrap_or_else(AgentHeartbeat::default_path);
    let mut w = HeartbeatWriter::new(path)
        .durable(!a.no_fsync)
        .pid(a.pid.unwrap_or_else(std::os::unix::process::parent_id))
        .cell(a.agent, a.cell_uuid);
    match w.beat(a.cycle, &a.model, &a.status) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => nexus_cli::Fail::failure(e).report("nexus-heartbeat"),
    }
}

fn writer(job: &JobArgs) -> CronWriter {
    CronWriter::new(CronDirs::resolve(job.dir.as_deref()))
}

fn touch(a: TouchArgs) -> ExitCode {
    let interval = a.job.interval.as_secs().max(1);
    if let Some(url) = &a.job.url {
        if let Err(e) = nexus_heartbeat::CronDirs::validate_job_name(&a.job.job) {
            errln!("nexus-heartbeat: {e}");
            return ExitCode::from(u8::from(a.strict));
        }
        return match push(&a.job, url, PingKind::Success, interval) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                errln!("nexus-heartbeat: {e}");
                ExitCode::from(u8::from(a.strict))
            }
        };
    }
    match writer(&a.job)
        .pid(std::os::unix::process::parent_id())
        .success(&a.job.job, interval)
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("nexus-heartbeat: {e}");
            ExitCode::from(u8::from(a.strict))
        }
    }
}

fn run(a: RunArgs) -> ExitCode {
    let interval = a.job.interval.as_secs().max(1);
    let started_at = now_epoch();
    let (program, args) = match a.command.split_first() {
        Some(x) => x,
        None => return ExitCode::from(2), // clap enforces `required`
    };
    let writer = writer(&a.job);
    let remote = a.job.url.clone();
    // Say "running" first: a run that hangs or whose wrapper is killed is
    // then visible as such instead of looking like a job that never started.
    let started = match &remote {
        Some(url) => push(&a.job, url, PingKind::Start, interval),
        None => writer
            .clone()
            .pid(std::process::id())
            .start(&a.job.job, interval, started_at)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = started {
        errln!("nexus-heartbeat: {e}");
    }
    let (code, child_pid) = match supervise(program, args) {
        Ok(Supervised { pid, code, signal }) => {
            if let Some(sig) = signal {
                errln!(
                    "nexus-heartbeat: {} received and passed on to {program}; recorded as a failed run (exit code {code})",
                    signal_name(sig)
                );
            }
            (code, pid)
        }
        Err(e) => {
            errln!("nexus-heartbeat: cannot run {program}: {e}");
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            (code, std::process::id())
        }
    };
    let outcome = RunOutcome {
        started_at,
        finished_at: now_epoch(),
        exit_code: code,
    };
    if let Some(url) = &remote {
        if let Err(e) = push(&a.job, url, PingKind::exit(code), interval) {
            errln!("nexus-heartbeat: {e}");
        }
    } else if let Err(e) = writer.pid(child_pid).run(&a.job.job, interval, outcome) {
        // The job's result matters more than its heartbeat.
        errln!("nexus-heartbeat: {e}");
    }
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}

/// What became of a job [`supervise`] ran.
struct Supervised {
    pid: u32,
    /// Its exit code; when a signal was passed on, never 0 (the run was cut
    /// short): the job's own failure code, else 128 + that signal.
    code: i32,
    /// The first stop signal the wrapper received, if any.
    signal: Option<Signal>,
}

fn signal_name(sig: Signal) -> &'static str {
    match sig {
        Signal::TERM => "SIGTERM",
        Signal::INT => "SIGINT",
        Signal::HUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Runs the job in its own process group and waits for it. SIGTERM, SIGINT
/// and SIGHUP sent to the wrapper are passed on to the job's group (so a
/// `sh -c` job's own children get them too), and the wrapper keeps waiting:
/// the job is never orphaned and its end is recorded. (A job that reads
/// from a terminal should not be run under `nexus-heartbeat run`: in its own
/// group it is not the terminal's foreground job.)
fn supervise(program: &str, args: &[String]) -> std::io::Result<Supervised> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Handlers first: a signal that arrives as the job starts is caught.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .process_group(0)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        let group = i32::try_from(pid).ok().and_then(Pid::from_raw);
        let mut first = None;
        let status = loop {
            let sig = tokio::select! {
                status = child.wait() => break status,
                _ = term.recv() => Signal::TERM,
                _ = int.recv() => Signal::INT,
                _ = hup.recv() => Signal::HUP,
            };
            first.get_or_insert(sig);
            if let Some(group) = group
                && let Err(e) = kill_process_group(group, sig)
            {
                errln!(
                    "nexus-heartbeat: passing {} on to {program}: {e}",
                    signal_name(sig)
                );
            }
        };
        let code = match status {
            Ok(status) => exit_code(status),
            Err(e) => {
                errln!("nexus-heartbeat: waiting for {program}: {e}");
                1
            }
        };
        Ok(Supervised {
            pid,
            code: match first {
                Some(sig) if code == 0 => 128 + sig.as_raw(),
                _ => code,
            },
            signal: first,
        })
    })
}

/// The shell convention: the code, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn check(a: CheckArgs) -> ExitCode {
    let rule = Rule {
        max_age: a.max_age.map(|d| d.as_secs_f64()),
        future_tolerance: a.future_tolerance.as_secs_f64(),
        ..Rule::default()
    };
    // `.last` files are cron records: without an interval of their own they
    // get `--default-interval` (the cron checker's rule), not the agent's 300s.
    let cron_rule = Rule {
        default_max_age: rule.interval_factor * a.default_interval.as_secs_f64(),
        ..rule
    };
    let now = now_epoch();
    let is_cron = |p: &PathBuf| p.extension().is_some_and(|e| e == "last");
    let (cron, agent): (Vec<_>, Vec<_>) = a.paths.iter().cloned().partition(is_cron);
    let mut cron = Classification::read_many(&cron, now, &cron_rule).into_iter();
    let mut agent = Classification::read_many(&agent, now, &rule).into_iter();
    let results: Vec<_> = a
        .paths
        .iter()
        .filter_map(|p| {
            if is_cron(p) {
                cron.next()
            } else {
                agent.next()
            }
        })
        .collect();
    if a.json {
        match serde_json::to_string_pretty(&results) {
            Ok(s) => outln!("{s}"),
            Err(e) => {
                errln!("nexus-heartbeat: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        for c in &results {
            outln!(
                "{:<15} {}: {}",
                c.state.as_str().to_uppercase(),
                c.path.display(),
                c.reason
            );
        }
    }
    if results.iter().all(|c| c.state.is_fresh()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
