//! `resurrection-pool demo`: a demo fleet on this machine, in a temporary
//! cells root. Three agents (a small Python loop of ours that beats through
//! the `nexus-heartbeat` CLI and listens on a port) live in one mission
//! cell. The pool starts them, then one is killed, one hung (SIGSTOP) and
//! one has its source broken; the terminal and the status page show how
//! each is detected, revived or escalated. Needs python3 and the workspace's
//! `nexus-heartbeat` binary next to this one (`cargo build --workspace`).
//!
//! The story on stdout is the whole output: the pool's own log, which
//! would tell the same transitions again, is off unless `NEXUS_LOG` asks
//! for it ([`LOG_DEFAULT`]); where the story gives a revive's attempt or
//! down time it quotes the pool's own event, so the two never disagree.
//! On SIGINT, SIGTERM or SIGHUP (mid-show or during `--linger`) the demo
//! kills its agents (its own descendants, never a bystander's process),
//! removes its directory and exits 128 + the signal's number (130, 143,
//! 129).

use nexus_cli::outln;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nexus_cell::{AgentName, CellStore, Join, NewCell, RevivePolicy, Role};
use nexus_pool::config::{CellsSection, PoolSection};
use nexus_pool::{Pool, PoolConfig, PoolOptions, PoolSnapshot};
use nexus_revive::{Settings, State};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use tokio::signal::unix::{SignalKind, signal};

/// The demo's log filter unless `NEXUS_LOG` says otherwise: the pool's
/// lines are off (the story tells each transition), other warnings stay.
pub(crate) const LOG_DEFAULT: &str = "warn,nexus_pool=off";

/// `resurrection-pool demo` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Status page address (a free port is used if this one is taken).
    #[arg(long, default_value = "127.0.0.1:8767")]
    listen: String,
    /// Keep the fleet and the status page up this long after the show.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "0s")]
    linger: Duration,
}

const AGENT: &str = include_str!("demo_agent.py");
const NAMES: [&str; 3] = ["allegro", "bezalel", "ezra"];
/// No act of the show may take longer than this.
const ACT_DEADLINE: Duration = Duration::from_secs(45);

/// A temporary directory removed on drop (also on error paths).
struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => return nexus_cli::Fail::failure(e).report("resurrection-pool demo"),
    };
    match rt.block_on(show(args)) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(code)) => ExitCode::from(code),
        Err(e) => nexus_cli::Fail::chain(nexus_cli::ExitKind::Failure, &*e)
            .report("resurrection-pool demo"),
    }
}

/// The signals that end the demo early, each with its exit code
/// (128 + its number), installed before anything is started.
struct Stops {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Stops {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }

    /// The first of them to arrive: its name and exit code.
    async fn first(&mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.int.recv() => ("SIGINT", 130),
            _ = self.term.recv() => ("SIGTERM", 143),
            _ = self.hup.recv() => ("SIGHUP", 129),
        }
    }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let p = exe.with_file_name(name);
    if !p.is_file() {
        bail!(
            "{} is missing: build the whole workspace first (`cargo build --workspace`, or scripts/demo)",
            p.display()
        );
    }
    Ok(p)
}

struct Show {
    pool: Pool,
    start: Instant,
    last: HashMap<String, State>,
    cell_dir: PathBuf,
}

impl Show {
    /// The pool's own words for `agent`'s last recovery ("revived and
    /// healthy (attempt 1) after 1.2s down"), as its log has them.
    fn recovery(&self, agent: &str) -> String {
        self.event(agent, "revived and healthy")
            .or_else(|| self.event(agent, "recovered by itself"))
            .unwrap_or_else(|| "healthy again".to_string())
    }

    fn say(&self, text: &str) {
        outln!("\n[{:>5.1}s] {text}", self.start.elapsed().as_secs_f64());
    }

    fn snapshot(&self) -> PoolSnapshot {
        match self.pool.shared().read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Sweeps until `done` holds (bounded by [`ACT_DEADLINE`]), printing
    /// every state change.
    async fn until(
        &mut self,
        what: &str,
        done: impl Fn(&PoolSnapshot) -> bool,
    ) -> anyhow::Result<f64> {
        let t0 = Instant::now();
        loop {
            self.pool.sweep().await;
            let snap = self.snapshot();
            for a in &snap.agents {
                let prev = self.last.insert(a.name.to_string(), a.state);
                if prev != Some(a.state) {
                    outln!(
                        "  [{:>5.1}s] {:<8} {:>9} → {:<9} heartbeat {}",
                        self.start.elapsed().as_secs_f64(),
                        a.name,
                        prev.map_or("-".to_string(), |s| format!("{s:?}").to_lowercase()),
                        format!("{:?}", a.state).to_lowercase(),
                        a.heartbeat_age
                            .map_or("none".to_string(), |h| format!("{h:.1}s old"))
                    );
                }
            }
            if done(&snap) {
                return Ok(t0.elapsed().as_secs_f64());
            }
            if t0.elapsed() > ACT_DEADLINE {
                bail!("{what}: not reached within {}s", ACT_DEADLINE.as_secs());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                Some(key) = self.pool.next_exit() => {
                    outln!("  [{:>5.1}s] the pool saw its child {key} exit", self.start.elapsed().as_secs_f64());
                }
            }
        }
    }

    fn heartbeat_pid(&self, agent: &str) -> Option<u32> {
        let p = self
            .cell_dir
            .join(".lazarus/heartbeats")
            .join(format!("{agent}.json"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        u32::try_from(v["pid"].as_u64()?).ok()
    }

    /// The pool's newest event about `agent` that contains `what`, without
    /// its clock stamp: the words and numbers the pool's log line has.
    fn event(&self, agent: &str, what: &str) -> Option<String> {
        let snap = self.snapshot();
        let a = snap.agents.iter().find(|a| &*a.name == agent)?;
        let e = a.last_events.iter().find(|e| e.text.contains(what))?;
        Some(e.text.clone())
    }

    /// Kills every agent the demo started, a stopped one too, and waits
    /// (at most 2 s) until they are gone. Only what is the demo's own is
    /// touched: the pool's children with their whole process groups (the
    /// pool launches each as a group leader; the `nexus-heartbeat` it runs
    /// is in it), and every other descendant of the demo (one launched by
    /// a sweep that a signal cut short, an orphan the demo reaps as
    /// subreaper) alone. A PID read from a heartbeat file or a process
    /// merely working in the demo's directory (an operator's shell) is not
    /// a reason to kill anything.
    async fn stop_agents(&self) {
        let me = std::process::id();
        let groups: Vec<u32> = self
            .pool
            .launched_pids()
            .into_iter()
            .filter(|&p| p > 1 && p != me)
            .collect();
        for &pid in &groups {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = kill_process_group(p, Signal::CONT);
                let _ = kill_process_group(p, Signal::KILL);
            }
        }
        let mut pids = descendants_of(me);
        for &pid in &pids {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = kill_process(p, Signal::CONT);
                let _ = kill_process(p, Signal::KILL);
            }
        }
        pids.extend(groups);
        // The pool's tasks reap its children; a zombie or a vanished PID
        // is gone.
        let deadline = Instant::now() + Duration::from_secs(2);
        while pids.iter().any(|&pid| running(pid)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, agent: &str, sig: Signal) -> anyhow::Result<u32> {
        let pid = self
            .heartbeat_pid(agent)
            .with_context(|| format!("{agent} has no PID in its heartbeat"))?;
        if !descendants_of(std::process::id()).contains(&pid) {
            bail!("{agent}'s heartbeat names PID {pid}, which the demo did not start");
        }
        let p = Pid::from_raw(pid as i32).context("bad PID")?;
        kill_process(p, sig).with_context(|| format!("cannot signal {agent} (PID {pid})"))?;
        Ok(pid)
    }
}

/// The live descendants of process `root` (children, their children, …),
/// from one read of `/proc`; never `root` itself or PID 1.
fn descendants_of(root: u32) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = procs
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, parent_of(pid)?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parents
                .iter()
                .filter(|&&(pid, ppid)| ppid == p && pid > 1 && !found.contains(&pid))
                .map(|&(pid, _)| pid)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent of `pid` from `/proc/<pid>/stat` ("pid (comm) S ppid …").
fn parent_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s.rsplit_once(')')?.1.split_whitespace();
    f.next()?;
    f.next()?.parse().ok()
}

/// `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // "pid (comm) S …": the state follows the last ')'.
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

fn state_of(s: &PoolSnapshot, name: &str) -> Option<State> {
    s.agents.iter().find(|a| &*a.name == name).map(|a| a.state)
}

/// The show; `Some(exit code)` when a signal ended it early.
async fn show(args: &DemoArgs) -> anyhow::Result<Option<u8>> {
    // Before anything is started: a signal from here on is handled, and
    // an agent's orphaned child becomes the demo's (so stop_agents finds
    // it among the demo's descendants) rather than init's.
    let mut stops = Stops::install()?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("cannot become the agents' subreaper")?;
    let beat = sibling("nexus-heartbeat")?;
    let python_ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        bail!("python3 is missing: the demo agents are Python loops (apt-get install python3)");
    }
    let root = std::env::temp_dir().join(format!("nexus-demo-{}", std::process::id()));
    // A fresh directory of ours (0700), never one found in place: another
    // user may have made that name in a shared /tmp.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&root)
        .with_context(|| format!("cannot create the demo directory {}", root.display()))?;
    let root = TempRoot(root);
    let cells_root = root.0.join("cells");
    std::fs::create_dir_all(&cells_root)?;
    let settings = Settings {
        fail_threshold: 2,
        ok_threshold: 1,
        startup_grace: 0.0,
        backoff_initial: 1.0,
        backoff_cap: 5.0,
        revive_deadline: 15.0,
        attempt_window: 600.0,
        ..Settings::default()
    };
    let store = CellStore::new(&cells_root);
    let cell = store.provision(NewCell {
        mission: "Demo: keep three agents thinking".into(),
        created_by: "resurrection-pool demo".into(),
        revive_policy: Some(RevivePolicy::Auto),
        ..NewCell::default()
    })?;
    let id = cell.id();
    for name in NAMES {
        let script = format!("agent-{name}.py");
        std::fs::write(cell.workspace().join(&script), AGENT)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        store.join(
            &id,
            Join {
                agent: AgentName::new(name)?,
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec![
                    "python3".into(),
                    script,
                    "--name".into(),
                    name.into(),
                    "--port".into(),
                    port.to_string(),
                    "--heartbeat-bin".into(),
                    beat.display().to_string(),
                ]),
                revive_policy: None,
            },
        )?;
    }
    let cfg = PoolConfig {
        pool: PoolSection {
            poll_interval: Duration::from_secs(1),
            dead_threshold: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            heartbeat_dir: Some(root.0.join("heartbeats")),
            ..PoolSection::default()
        },
        cells: Some(CellsSection {
            root: cells_root.clone(),
            heartbeat_stale_threshold: Duration::from_secs(3),
            revive_policy: "auto".into(),
        }),
        revive: settings.clone(),
        // The page's uptime bars and events come from the history.
        history: Some(nexus_history::Settings {
            path: Some(root.0.join("history.sqlite")),
            ..nexus_history::Settings::default()
        }),
        ..PoolConfig::default()
    };
    let feed = nexus_pool::dashboard::HistoryFeed::start(
        root.0.join("history.sqlite"),
        nexus_pool::dashboard::FEED_EVERY,
    )?;
    let pool = Pool::new(
        cfg,
        PoolOptions {
            state_file: root.0.join("pool-state.json"),
            cells_root: None,
            dry_run: false,
        },
    )?;
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(nexus_pool::http::serve(
        listener,
        pool.shared(),
        nexus_pool::http::Extras {
            history: Some(feed),
            ..Default::default()
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut show = Show {
        pool,
        start: Instant::now(),
        last: HashMap::new(),
        cell_dir: cell.dir().to_path_buf(),
    };
    outln!(
        "Resurrection pool demo: cell {id}, agents {}",
        NAMES.join(", ")
    );
    outln!("Status page: http://{addr}/   (also /api/agents, /metrics, /health)");
    outln!(
        "Demo directory: {} (removed at the end, also on Ctrl-C)",
        root.0.display()
    );

    let mut stopped = None;
    let result = tokio::select! {
        r = acts_and_linger(&mut show, &settings, args.linger, addr) => r,
        (name, code) = stops.first() => {
            stopped = Some((name, code));
            Ok(())
        }
    };
    // Stop every agent the demo started, whatever happened.
    show.stop_agents().await;
    let _ = stop_tx.send(());
    let dir = root.0.clone();
    drop(root);
    match stopped {
        Some((name, code)) => {
            nexus_cli::errln!(
                "resurrection-pool demo: stopped by {name}: its agents are stopped and {} is removed",
                dir.display()
            );
            Ok(Some(code))
        }
        None => result.map(|()| None),
    }
}

async fn acts_and_linger(
    show: &mut Show,
    settings: &Settings,
    linger: Duration,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    acts(show, settings).await?;
    if !linger.is_zero() {
        show.say(&format!(
            "The fleet stays up {}s more: look at http://{addr}/   (Ctrl-C ends it early)",
            linger.as_secs()
        ));
        let until = Instant::now() + linger;
        while Instant::now() < until {
            show.pool.sweep().await;
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }
    }
    Ok(())
}

async fn acts(show: &mut Show, settings: &Settings) -> anyhow::Result<()> {
    show.say("Act 0: the agents have never run; the pool finds them dead and revives them (policy auto).");
    let t = show
        .until("all agents healthy", |s| {
            NAMES.iter().all(|n| state_of(s, n) == Some(State::Healthy))
        })
        .await?;
    show.say(&format!("All three agents healthy after {t:.1}s."));

    let before = attempts(&show.snapshot(), "allegro");
    let pid = show.signal("allegro", Signal::KILL)?;
    show.say(&format!(
        "Act 1: SIGKILL allegro (PID {pid}). The pool launched it, so it sees the exit at once."
    ));
    show.until("allegro revived", |s| {
        state_of(s, "allegro") == Some(State::Healthy) && attempts(s, "allegro") > before
    })
    .await?;
    show.say(&format!("allegro is back: {}.", show.recovery("allegro")));

    let before = attempts(&show.snapshot(), "bezalel");
    let pid = show.signal("bezalel", Signal::STOP)?;
    show.say(&format!(
        "Act 2: SIGSTOP bezalel (PID {pid}): its process and port still exist, but its heartbeat goes stale. A hung mind is dead."
    ));
    show.until("bezalel revived", |s| {
        state_of(s, "bezalel") == Some(State::Healthy) && attempts(s, "bezalel") > before
    })
    .await?;
    show.say(&format!(
        "bezalel was stopped and is back: {}.",
        show.recovery("bezalel")
    ));

    let script = show.cell_dir.join("workspace/agent-ezra.py");
    let mut src = std::fs::read_to_string(&script)?;
    src.push_str("\ndef broken(:\n    pass\n");
    std::fs::write(&script, src)?;
    let pid = show.signal("ezra", Signal::KILL)?;
    show.say(&format!(
        "Act 3: a bad deploy breaks ezra's source, then ezra dies (PID {pid}). The pre-flight syntax check refuses to revive it into a crash loop and escalates to a human."
    ));
    show.until("ezra escalated", |s| {
        state_of(s, "ezra") == Some(State::Escalated)
    })
    .await?;
    let why = show
        .event("ezra", "escalated: ")
        .unwrap_or_else(|| "escalated".to_string());
    show.say(&format!("ezra: {why}"));
    let snap = show.snapshot();
    // The pool's log counts each launch as "revive attempt k" and its
    // budget as "attempt k of N in <window>": the same count here.
    outln!("\nFinal state:");
    for a in &snap.agents {
        outln!(
            "  {:<8} {:<10} revive attempts {} of {} in {:.0} min",
            a.name,
            format!("{:?}", a.state).to_lowercase(),
            a.revive_attempts,
            settings.max_attempts,
            settings.attempt_window / 60.0
        );
    }
    Ok(())
}

fn attempts(s: &PoolSnapshot, name: &str) -> u32 {
    s.agents
        .iter()
        .find(|a| &*a.name == name)
        .map_or(0, |a| a.revive_attempts)
}
