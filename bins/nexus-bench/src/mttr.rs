//! `--mttr`: how fast a dead agent is back, our pool (its defaults) beside
//! supervisord (the peer a user would pick instead), in one run, on the
//! same trivially fast agent: a shell loop that beats through the
//! `nexus-heartbeat` CLI every second into its cell's heartbeat file.
//!
//! - crash: `kill -9` of each of 10 agents in turn (distinct agents, so each
//!   kill meets a fresh backoff, as the issue's "backoff reset between
//!   kills" asks), time until a heartbeat from a new PID lands;
//! - crash loop: an agent that exits at once: the gaps between launches,
//!   the launches within the budget, the escalations (ours only: a
//!   supervisor has no budget that calls a human);
//! - hang: `SIGSTOP`, stale threshold S = 3 s (the one setting changed):
//!   a new PID beating within S + 1 s, the stopped one gone (supervisord
//!   does not read heartbeats: never);
//! - cold start: 100 never-started agents in 10 cells, time until all beat;
//! - idle: 10,000 agents whose heartbeats this bench writes (every agent
//!   every 5 s, spread evenly) while the pool runs for a minute: its CPU,
//!   peak RSS and full sweeps.
//!
//! Every wait is bounded; every process (the pool, supervisord, the
//! agents, each in its own process group) is killed on the way out; the
//! agents' loops also end when the temp dir is gone.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};

use crate::log;
use crate::measure::median;

/// What `--mttr` runs with.
#[derive(Debug)]
pub(crate) struct Opts {
    pub(crate) pool_bin: PathBuf,
    pub(crate) hb_bin: PathBuf,
    pub(crate) work: PathBuf,
    /// Kills in the crash case (one agent each).
    pub(crate) kills: usize,
    /// Agents of the idle case, and how long it runs.
    pub(crate) idle_agents: usize,
    pub(crate) idle_secs: f64,
    /// Hard limit of each wait.
    pub(crate) limit: Duration,
    /// The cases to run (`crash`, `loop`, `hang`, `cold`, `idle`); empty: all.
    pub(crate) only: Vec<String>,
}

/// One case's result.
#[derive(Debug, Serialize)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    /// Our figure and supervisord's (seconds unless `unit` says).
    pub(crate) ours: Option<f64>,
    pub(crate) supervisord: Option<f64>,
    pub(crate) unit: &'static str,
    pub(crate) target: String,
    pub(crate) pass: bool,
    pub(crate) detail: String,
}

impl Case {
    fn row(&self) -> String {
        let fmt = |v: Option<f64>| match (v, self.unit) {
            (None, _) => "never".to_string(),
            (Some(v), "s") => format!("{v:.3} s"),
            (Some(v), u) => format!("{v:.2} {u}"),
        };
        let ratio = match (self.ours, self.supervisord) {
            (Some(o), Some(s)) if s > 0.0 => format!("{:.2}", o / s),
            _ => "—".into(),
        };
        format!(
            "| {} | {} | {} | {ratio} | {} | {} | {} |",
            self.name,
            fmt(self.ours),
            if self.unit == "s" || self.supervisord.is_some() {
                fmt(self.supervisord)
            } else {
                "—".into()
            },
            self.target,
            if self.pass { "pass" } else { "FAIL" },
            self.detail
        )
    }
}

/// `12, 6, 7` (ms), `never` for a kill that was not recovered.
fn ms_list(v: &[Option<f64>]) -> String {
    v.iter()
        .map(|x| x.map_or("never".into(), |s| format!("{:.0}", s * 1000.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders the cases as a Markdown table.
pub(crate) fn render(cases: &[Case]) -> String {
    let mut s = String::from(
        "| case | ours (defaults) | supervisord 4.2 | ours/supervisord | target | | detail |\n|---|---|---|---|---|---|---|\n",
    );
    for c in cases {
        s.push_str(&c.row());
        s.push('\n');
    }
    s
}

/// The cell's uuid for cell `c` of case `case`.
fn uuid(case: usize, c: usize) -> String {
    format!("{case:08x}-7a7a-4b5e-8def-{c:012x}")
}

/// The shell loop every agent runs: beat, sleep, while `root` exists
/// (at most an hour).
fn agent_script(hb_bin: &Path, beat: &Path, root: &Path, every: &str) -> String {
    format!(
        "i=0; while [ -d '{root}' ] && [ $i -lt 3600 ]; do '{hb}' beat --no-fsync --path '{beat}'; i=$((i+1)); sleep {every}; done",
        root = root.display(),
        hb = hb_bin.display(),
        beat = beat.display(),
    )
}

/// Writes an active cell with `agents` (name, revive argv) under `root`;
/// the heartbeat path of each.
fn write_cell(
    root: &Path,
    id: &str,
    agents: &[(String, Option<Vec<String>>)],
) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(id);
    let beats = dir.join(".lazarus/heartbeats");
    std::fs::create_dir_all(&beats)
        .with_context(|| format!("cannot create {}", beats.display()))?;
    std::fs::create_dir_all(dir.join("workspace"))?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let manifest = json!({
        "uuid": id, "mission": "mttr bench", "created_at": "2026-12-01T00:00:00Z",
        "created_by": "nexus-bench", "status": "active",
        "agents": agents.iter().map(|(name, cmd)| {
            let mut a = json!({"name": name, "role": "developer", "joined_at": "2026-12-01T00:00:00Z",
                               "revive_policy": "auto"});
            if let Some(cmd) = cmd {
                a["revive_cmd"] = json!(cmd);
            }
            a
        }).collect::<Vec<_>>(),
    });
    let path = dir.join("cell.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(agents
        .iter()
        .map(|(name, _)| beats.join(format!("{name}.json")))
        .collect())
}

/// The PID a heartbeat file names.
fn beat_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

/// A process runs with this PID (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Polls `cond` every 2 ms for up to `limit`; how long it took.
fn until(limit: Duration, cond: impl Fn() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A supervisor (our pool or supervisord) and the agents it started:
/// everything is killed on drop.
struct Supervisor {
    child: Child,
    beats: Vec<PathBuf>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        use rustix::process::Signal;
        signal(self.child.id(), Signal::TERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Agents lead their own process groups (our pool's launches do;
        // supervisord's children are killed with it, and again here).
        for b in &self.beats {
            if let Some(pid) = beat_pid(b)
                && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
            {
                let _ = rustix::process::kill_process_group(p, Signal::KILL);
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts our pool on `root` with its defaults, but for `extra` config.
fn ours(
    o: &Opts,
    dir: &Path,
    root: &Path,
    extra: &str,
    beats: Vec<PathBuf>,
) -> anyhow::Result<(Supervisor, u16)> {
    let port = free_port()?;
    let cfg = dir.join("pool.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pool]\nheartbeat_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n[cells]\nroot = \"{}\"\n{extra}\n",
            dir.join("own").display(),
            root.display()
        ),
    )?;
    let mut c = Command::new(&o.pool_bin);
    c.arg("--config")
        .arg(&cfg)
        .arg("--state-file")
        .arg(dir.join("state/pool.json"))
        .env("HOME", dir)
        .env_remove("GITEA_TOKEN")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("RESURRECTION_CONFIG")
        .env("NEXUS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pool.log"))?);
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let child = c
        .spawn()
        .with_context(|| format!("cannot start {}", o.pool_bin.display()))?;
    Ok((Supervisor { child, beats }, port))
}

/// Starts supervisord running `programs` (name, shell script).
fn supervisord(
    dir: &Path,
    programs: &[(String, String)],
    beats: Vec<PathBuf>,
) -> anyhow::Result<Option<Supervisor>> {
    let Some(bin) = crate::find_in_path("supervisord") else {
        return Ok(None);
    };
    let mut conf = format!(
        "[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}\n\
         [unix_http_server]\nfile={d}/supervisor.sock\n",
        d = dir.display()
    );
    for (name, script) in programs {
        conf.push_str(&format!(
            "[program:{name}]\ncommand=sh -c \"{}\"\nautostart=true\nautorestart=true\nstartsecs=1\nstopasgroup=true\nkillasgroup=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
            script.replace('%', "%%")
        ));
    }
    let path = dir.join("supervisord.conf");
    std::fs::write(&path, conf)?;
    let mut c = Command::new(bin);
    c.arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    Ok(Some(Supervisor {
        child: c.spawn().context("cannot start supervisord")?,
        beats,
    }))
}

/// A supervisord program: its name and shell script.
type Program = (String, String);

/// `n` agents named `<prefix>NN` in `cells` cells; their (name, script).
fn agents(
    o: &Opts,
    root: &Path,
    case: usize,
    cells: usize,
    n: usize,
    every: &str,
) -> anyhow::Result<(Vec<Program>, Vec<PathBuf>)> {
    let mut programs = Vec::new();
    let mut beats = Vec::new();
    let per = n.div_ceil(cells.max(1));
    for c in 0..cells {
        let id = uuid(case, c);
        let names: Vec<String> = (0..per)
            .map(|i| format!("agent{:03}", c * per + i))
            .take(n.saturating_sub(c * per))
            .collect();
        let hb_dir = root.join(&id).join(".lazarus/heartbeats");
        let list: Vec<(String, Option<Vec<String>>)> = names
            .iter()
            .map(|name| {
                let script =
                    agent_script(&o.hb_bin, &hb_dir.join(format!("{name}.json")), root, every);
                programs.push((name.clone(), script.clone()));
                (name.clone(), Some(vec!["sh".into(), "-c".into(), script]))
            })
            .collect();
        beats.extend(write_cell(root, &id, &list)?);
    }
    Ok((programs, beats))
}

/// Kills each agent in turn; the seconds until a new PID beat.
fn crash_times(beats: &[PathBuf], limit: Duration) -> Vec<Option<f64>> {
    beats
        .iter()
        .map(|b| {
            let old = beat_pid(b)?;
            signal(old, rustix::process::Signal::KILL);
            until(limit, || beat_pid(b).is_some_and(|p| p != old)).map(|d| d.as_secs_f64())
        })
        .collect()
}

fn all_beating(beats: &[PathBuf], since: std::time::SystemTime) -> bool {
    beats.iter().all(|b| {
        std::fs::metadata(b)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since)
    })
}

fn crash(o: &Opts) -> anyhow::Result<Case> {
    let mut sides: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    for (side, case) in [("ours", 1usize), ("supervisord", 2)] {
        let dir = o.work.join(format!("crash-{side}"));
        let root = dir.join("cells");
        let (programs, beats) = agents(o, &root, case, 1, o.kills, "1")?;
        let since = std::time::SystemTime::now();
        let sup = match side {
            "ours" => Some(ours(o, &dir, &root, "", beats.clone())?.0),
            _ => supervisord(&dir, &programs, beats.clone())?,
        };
        let Some(_sup) = sup else {
            log("  supervisord is not installed (scripts/setup.d/60-supervisor.sh): skipped");
            continue;
        };
        if until(o.limit, || all_beating(&beats, since)).is_none() {
            anyhow::bail!("{side}: the agents did not all start within {:?}", o.limit);
        }
        // Every agent ran a while: a crash, not a start failing.
        std::thread::sleep(Duration::from_millis(1500));
        let t = crash_times(&beats, o.limit);
        log(&format!("  crash {side}: {t:?}"));
        sides.insert(side, t);
    }
    let med = |v: Option<&Vec<Option<f64>>>| -> Option<f64> {
        let v = v?;
        if v.iter().any(Option::is_none) {
            return None;
        }
        median(v.iter().flatten().copied().collect())
    };
    let (ours, sup) = (med(sides.get("ours")), med(sides.get("supervisord")));
    let pass = ours.is_some_and(|o| o <= 1.0 && sup.is_none_or(|s| o <= s));
    Ok(Case {
        name: "crash: kill -9 → new PID beating (median of 10)",
        ours,
        supervisord: sup,
        unit: "s",
        target: "≤ 1.0 s and ≤ supervisord".into(),
        pass,
        detail: format!(
            "ours each kill (ms): {}",
            sides.get("ours").map_or("—".into(), |v| ms_list(v))
        ),
    })
}

fn crash_loop(o: &Opts) -> anyhow::Result<Case> {
    let dir = o.work.join("loop-ours");
    let root = dir.join("cells");
    let stamps = dir.join("launches");
    std::fs::create_dir_all(&dir)?;
    // `date +%s.%N`: each launch's time, then exit at once.
    let cmd = vec![
        "sh".to_string(),
        "-c".into(),
        format!("date +%s.%N >> '{}'", stamps.display()),
    ];
    let beats = write_cell(&root, &uuid(3, 0), &[("looper".into(), Some(cmd))])?;
    let events = root.join(uuid(3, 0)).join("logs/events.jsonl");
    let (_sup, _) = ours(o, &dir, &root, "", beats)?;
    // Defaults: 5 revives (1+2+4+8+16 s) then one escalation.
    let escalated =
        || std::fs::read_to_string(&events).is_ok_and(|e| e.contains("\"revive_escalated\""));
    until(Duration::from_secs(45).max(o.limit), escalated);
    std::thread::sleep(Duration::from_secs(2));
    let times: Vec<f64> = std::fs::read_to_string(&stamps)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 100.0).round() / 100.0)
        .collect();
    let log_text = std::fs::read_to_string(&events).unwrap_or_default();
    let escalations = log_text.matches("\"revive_escalated\"").count();
    let want = [1.0, 2.0, 4.0, 8.0, 16.0];
    let pass = gaps.len() == want.len()
        && gaps.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.5)
        && escalations == 1;
    Ok(Case {
        name: "crash loop: gaps between launches",
        ours: gaps.first().copied(),
        supervisord: None,
        unit: "s",
        target: "≤1, 2, 4 … s; within the budget; one escalation".into(),
        pass,
        detail: format!(
            "gaps {gaps:?}; {} launches (a start and {} revives); {escalations} escalation(s)",
            times.len(),
            times.len().saturating_sub(1)
        ),
    })
}

fn hang(o: &Opts) -> anyhow::Result<Case> {
    const S: f64 = 3.0;
    let mut results: BTreeMap<&str, (Option<f64>, bool)> = BTreeMap::new();
    for (side, case) in [("ours", 4usize), ("supervisord", 5)] {
        let dir = o.work.join(format!("hang-{side}"));
        let root = dir.join("cells");
        let (programs, beats) = agents(o, &root, case, 1, 1, "1")?;
        let since = std::time::SystemTime::now();
        let sup = match side {
            "ours" => Some(
                ours(
                    o,
                    &dir,
                    &root,
                    "heartbeat_stale_threshold = \"3s\"",
                    beats.clone(),
                )?
                .0,
            ),
            _ => supervisord(&dir, &programs, beats.clone())?,
        };
        let Some(_sup) = sup else { continue };
        if until(o.limit, || all_beating(&beats, since)).is_none() {
            anyhow::bail!("{side}: the agent did not start within {:?}", o.limit);
        }
        std::thread::sleep(Duration::from_millis(1500));
        let Some(old) = beat_pid(&beats[0]) else {
            continue;
        };
        signal(old, rustix::process::Signal::STOP);
        let t = until(Duration::from_secs_f64(S + 10.0), || {
            beat_pid(&beats[0]).is_some_and(|p| p != old)
        });
        let gone = t.is_some() && until(Duration::from_secs(5), || !alive(old)).is_some();
        // Leave nothing stopped behind.
        signal(old, rustix::process::Signal::CONT);
        signal(old, rustix::process::Signal::KILL);
        results.insert(side, (t.map(|d| d.as_secs_f64()), gone));
    }
    let (ours, gone) = results.get("ours").copied().unwrap_or((None, false));
    Ok(Case {
        name: "hang: SIGSTOP → new PID beating (stale threshold 3 s)",
        ours,
        supervisord: results.get("supervisord").and_then(|r| r.0),
        unit: "s",
        target: "≤ S + 1 s = 4 s, the stopped one gone".into(),
        pass: ours.is_some_and(|t| t <= S + 1.0) && gone,
        detail: format!("stopped process gone: {gone}; supervisord reads no heartbeat"),
    })
}

fn cold_start(o: &Opts) -> anyhow::Result<Case> {
    let mut got: BTreeMap<&str, Option<f64>> = BTreeMap::new();
    for (side, case) in [("ours", 6usize), ("supervisord", 7)] {
        let dir = o.work.join(format!("cold-{side}"));
        let root = dir.join("cells");
        let (programs, beats) = agents(o, &root, case, 10, 100, "5")?;
        let since = std::time::SystemTime::now();
        let t0 = Instant::now();
        let sup = match side {
            "ours" => Some(ours(o, &dir, &root, "", beats.clone())?.0),
            _ => supervisord(&dir, &programs, beats.clone())?,
        };
        let Some(_sup) = sup else { continue };
        let t = until(o.limit, || all_beating(&beats, since)).map(|_| t0.elapsed().as_secs_f64());
        got.insert(side, t);
    }
    let ours = got.get("ours").copied().flatten();
    Ok(Case {
        name: "cold start: 100 agents in 10 cells all beating",
        ours,
        supervisord: got.get("supervisord").copied().flatten(),
        unit: "s",
        target: "≤ 2 s".into(),
        pass: ours.is_some_and(|t| t <= 2.0),
        detail: String::new(),
    })
}

/// utime + stime of `pid`, seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// VmHWM of `pid`, MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn sweeps(port: u16) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body).ok()?;
    let json = body.split_once("\r\n\r\n")?.1;
    serde_json::from_str::<Value>(json).ok()?["sweeps"].as_u64()
}

fn write_beat(path: &Path, pid: u32) -> std::io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("{{\"timestamp\": {now:.3}, \"pid\": {pid}, \"status\": \"ok\"}}"),
    )?;
    std::fs::rename(&tmp, path)
}

fn idle(o: &Opts) -> anyhow::Result<Case> {
    let dir = o.work.join("idle-ours");
    let root = dir.join("cells");
    let n = o.idle_agents;
    let per = 100usize;
    let mut beats = Vec::with_capacity(n);
    for c in 0..n.div_ceil(per) {
        let names: Vec<(String, Option<Vec<String>>)> = (0..per.min(n - c * per))
            .map(|i| (format!("agent{i:03}"), None))
            .collect();
        beats.extend(write_cell(&root, &uuid(8, c), &names)?);
    }
    let me = std::process::id();
    for b in &beats {
        write_beat(b, me)?;
    }
    // No revive command: the pool never launches 10,000 processes.
    let (sup, port) = ours(o, &dir, &root, "", Vec::new())?;
    let pid = sup.child.id();
    until(Duration::from_secs(30), || {
        sweeps(port).is_some_and(|s| s >= 1)
    });
    let (cpu0, sweeps0, t0) = (cpu_seconds(pid), sweeps(port), Instant::now());
    let window = Duration::from_secs_f64(o.idle_secs);
    // Every agent every 5 s, spread evenly.
    let step = Duration::from_secs(5).as_secs_f64() / n as f64;
    let mut i = 0usize;
    while t0.elapsed() < window {
        let due = Duration::from_secs_f64(step * i as f64);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(50)));
            continue;
        }
        let _ = write_beat(&beats[i % n], me);
        i += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)
        .zip(cpu0)
        .map(|(a, b)| (a - b) / secs * 100.0);
    let rss = peak_rss_mib(pid);
    let full = sweeps(port).zip(sweeps0).map(|(a, b)| a - b);
    let max_sweeps = (secs / 60.0).ceil() as u64;
    // The target is in MB (10^6 bytes); VmHWM is in KiB.
    let rss_mb = rss.map(|r| r * 1.048_576);
    let pass = cpu.is_some_and(|c| c <= 2.0)
        && rss_mb.is_some_and(|r| r < 20.0)
        && full.is_some_and(|f| f <= max_sweeps);
    Ok(Case {
        name: "idle: agents beating every 5 s, pool CPU over the window",
        ours: cpu,
        supervisord: None,
        unit: "% of a core",
        target: "≤ 2 %, RSS < 20 MB, ≤ 1 full sweep per 60 s".into(),
        pass,
        detail: format!(
            "{n} agents, {i} beats in {secs:.0} s; peak RSS {} MiB = {} MB; {} full sweep(s)",
            rss.map_or("?".into(), |r| format!("{r:.1}")),
            rss_mb.map_or("?".into(), |r| format!("{r:.1}")),
            full.map_or("?".into(), |f| f.to_string())
        ),
    })
}

/// Runs every MTTR case; the cases (each passed or not).
pub(crate) fn run(o: &Opts) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for (name, f) in [
        ("crash", crash as fn(&Opts) -> anyhow::Result<Case>),
        ("loop", crash_loop),
        ("hang", hang),
        ("cold", cold_start),
        ("idle", idle),
    ] {
        if !o.only.is_empty() && !o.only.iter().any(|c| c == name) {
            continue;
        }
        log(&format!("mttr: {name}"));
        let c = f(o).with_context(|| format!("mttr case {name}"))?;
        log(&format!("  {}", c.row()));
        cases.push(c);
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_names_its_pid_and_a_cell_is_written_for_the_pool() {
        let tmp = tempfile::tempdir().unwrap();
        let beats = write_cell(
            tmp.path(),
            &uuid(1, 2),
            &[("a".into(), Some(vec!["true".into()])), ("b".into(), None)],
        )
        .unwrap();
        assert_eq!(beats.len(), 2);
        write_beat(&beats[0], 4242).unwrap();
        assert_eq!(beat_pid(&beats[0]), Some(4242));
        assert_eq!(beat_pid(&beats[1]), None);
        let m: Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join(uuid(1, 2)).join("cell.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(m["agents"][0]["revive_cmd"], json!(["true"]));
        assert!(m["agents"][1].get("revive_cmd").is_none());
        assert!(uuid(1, 2).len() == 36);
    }

    #[test]
    fn a_row_says_never_and_the_ratio() {
        let c = Case {
            name: "x",
            ours: Some(0.5),
            supervisord: Some(1.0),
            unit: "s",
            target: "t".into(),
            pass: true,
            detail: String::new(),
        };
        assert!(
            c.row().contains("| 0.500 s | 1.000 s | 0.50 |"),
            "{}",
            c.row()
        );
        let never = Case {
            supervisord: None,
            ..c
        };
        assert!(never.row().contains("never"), "{}", never.row());
    }
}
