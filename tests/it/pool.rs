//! The resurrection pool through its real binary, with real cells, real
//! processes, the swagger-checked fake Gitea and a mocked Telegram.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nexus_cell::{AgentName, CellStore, Join, NewCell, RevivePolicy, Role, Status};
use nexus_e2e::{Run, bin};
use serde_json::Value;

/// A cells root with one cell, and the pool's files beside it.
pub(crate) struct Fleet {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) store: CellStore,
    pub(crate) cell: nexus_cell::CellId,
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let store = CellStore::new(root.join("cells"));
        std::fs::create_dir_all(root.join("cells")).unwrap();
        let cell = store
            .provision(NewCell {
                mission: "e2e mission".into(),
                created_by: "tests".into(),
                ..NewCell::default()
            })
            .unwrap()
            .id();
        Fleet {
            _tmp: tmp,
            root,
            store,
            cell,
        }
    }

    /// Writes `agent`'s heartbeat with the heartbeat CLI, naming `pid` as
    /// the writer (what a CLI orphaned by its agent names: init, 1).
    pub(crate) fn beat_as(&self, agent: &str, pid: u32) {
        let o = Command::new(bin("nexus-heartbeat"))
            .args(["beat", "--no-fsync", "--agent", agent, "--pid"])
            .arg(pid.to_string())
            .arg("--path")
            .arg(self.heartbeat_path(agent))
            .run()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    pub(crate) fn heartbeat_path(&self, agent: &str) -> PathBuf {
        self.store
            .open(&self.cell)
            .unwrap()
            .heartbeat_path(&AgentName::new(agent).unwrap())
    }

    /// Joins an agent whose revive command appends a line to `<agent>.launches`
    /// and, when `beats`, goes on beating through the CLI every 0.2 s (else
    /// it exits at once: a crash loop).
    pub(crate) fn join(&self, agent: &str, policy: RevivePolicy, beats: bool) {
        let launches = self.root.join(format!("{agent}.launches"));
        // A beating agent runs (a process that exits is dead, whatever
        // its last heartbeat says) until the fleet's directory is gone, at
        // most 10 minutes.
        let beat = if beats {
            format!(
                " && i=0; while [ -d '{root}' ] && [ $i -lt 3000 ]; do '{}' beat --no-fsync --path '{}' --agent {agent}; i=$((i+1)); sleep 0.2; done",
                bin("nexus-heartbeat").display(),
                self.heartbeat_path(agent).display(),
                root = self.root.display(),
            )
        } else {
            String::new()
        };
        self.store
            .join(
                &self.cell,
                Join {
                    agent: AgentName::new(agent).unwrap(),
                    role: Role::Developer,
                    home: None,
                    revive_cmd: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        format!("echo launch >> '{}'{beat}", launches.display()),
                    ]),
                    revive_policy: Some(policy),
                },
            )
            .unwrap();
    }

    /// How many times `agent`'s revive command ran, once every launch the
    /// pool recorded in the cell's audit trail (`agent_started`,
    /// `revive_attempt`) has run it: a `--once` run exits before its
    /// children do, so the count right after it may still miss the last
    /// launch. Waits at most 10 s for a launch that never runs.
    pub(crate) fn launches(&self, agent: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ran = self.launches_now(agent);
            if ran >= self.launches_recorded(agent) || Instant::now() >= deadline {
                return ran;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times `agent`'s revive command has run so far (a pool
    /// killed between its record and the spawn records more than ran).
    pub(crate) fn launches_now(&self, agent: &str) -> usize {
        std::fs::read_to_string(self.root.join(format!("{agent}.launches")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// How many launches of `agent` the pool wrote in the cell's events.
    fn launches_recorded(&self, agent: &str) -> usize {
        let Ok(cell) = self.store.open(&self.cell) else {
            return 0;
        };
        let Ok(log) = nexus_cell::EventLog::read(&cell.events_path()) else {
            return 0;
        };
        log.events
            .iter()
            .filter(|(_, e)| match &e.kind {
                nexus_cell::EventKind::AgentStarted { agent: a }
                | nexus_cell::EventKind::ReviveAttempt { agent: a, .. } => a.as_str() == agent,
                _ => false,
            })
            .count()
    }

    pub(crate) fn config(&self, extra: &str) -> PathBuf {
        let p = self.root.join("pool.toml");
        std::fs::write(
            &p,
            format!(
                r#"
[pool]
poll_interval = "1s"
dead_threshold = "0s"
probe_timeout = "3s"
heartbeat_dir = "{hb}"

[cells]
root = "{cells}"
heartbeat_stale_threshold = "60s"

[revive]
fail_threshold = 1
ok_threshold = 1
startup_grace = 0
backoff_initial = 0
revive_deadline = 5
{extra}
"#,
                hb = self.root.join("heartbeats").display(),
                cells = self.root.join("cells").display(),
            ),
        )
        .unwrap();
        p
    }

    /// [`Fleet::config`] with each `(from, to)` of `changes` replaced in
    /// its text; a `from` the text does not hold fails the test (a change
    /// that silently does nothing would test something else).
    pub(crate) fn config_with(&self, extra: &str, changes: &[(&str, &str)]) -> PathBuf {
        let cfg = self.config(extra);
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        for (from, to) in changes {
            assert!(text.contains(from), "the config has no {from:?}:\n{text}");
            text = text.replace(from, to);
        }
        std::fs::write(&cfg, text).unwrap();
        cfg
    }

    /// Starts the daemon on `cfg` listening on a free loopback port (stderr
    /// discarded); it is killed when the `Daemon` is dropped.
    pub(crate) fn serve(&self, cfg: &Path) -> (Daemon, u16) {
        let port = free_port();
        let d = Daemon(
            self.cmd(cfg)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        (d, port)
    }

    pub(crate) fn cmd(&self, cfg: &Path) -> Command {
        let mut c = Command::new(bin("resurrection-pool"));
        c.arg("--config")
            .arg(cfg)
            .arg("--state-file")
            .arg(self.root.join("pool-state.json"))
            .env_remove("RESURRECTION_CONFIG")
            .env_remove("GITEA_TOKEN")
            .env_remove("TELEGRAM_BOT_TOKEN")
            .env_remove("TELEGRAM_CHAT_ID")
            .env("NEXUS_LOG", "warn");
        c
    }

    fn once(&self, cfg: &Path) -> Output {
        self.cmd(cfg).args(["--once", "--json"]).run().unwrap()
    }

    /// The pool's persisted state (`pool-state.json`).
    pub(crate) fn pool_state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.root.join("pool-state.json")).unwrap()).unwrap()
    }

    pub(crate) fn events(&self) -> String {
        std::fs::read_to_string(self.store.open(&self.cell).unwrap().events_path()).unwrap()
    }
}

impl Drop for Fleet {
    /// Agents outlive the pool by design (a daemon restart must not kill
    /// them), so the test kills every process group an agent heartbeat names.
    fn drop(&mut self) {
        let Ok(cells) = std::fs::read_dir(self.root.join("cells")) else {
            return;
        };
        for cell in cells.flatten() {
            let Ok(beats) = std::fs::read_dir(cell.path().join(".lazarus/heartbeats")) else {
                continue;
            };
            for beat in beats.flatten() {
                let pid = std::fs::read_to_string(beat.path())
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v["pid"].as_u64());
                if let Some(pid) = pid.filter(|p| *p > 1) {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .stderr(Stdio::null())
                        .status();
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

fn agents(o: &Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .as_array()
        .unwrap()
        .clone()
}

fn state_of(o: &Output, agent: &str) -> String {
    agents(o)
        .iter()
        .find(|a| a["name"] == agent)
        .unwrap_or_else(|| panic!("{agent} not reported"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_auto_agent_that_never_ran_is_started_once_and_reaches_healthy() {
    let f = Fleet::new();
    f.join("a1", RevivePolicy::Auto, true);
    let cfg = f.config("");
    let o = f.once(&cfg);
    assert_eq!(o.status.code(), Some(1), "dead at first");
    assert_eq!(state_of(&o, "a1"), "reviving");
    // The launched command beats once; the next sweep sees it healthy.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f.heartbeat_path("a1").exists() {
        assert!(
            Instant::now() < deadline,
            "the revive never wrote a heartbeat"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..3 {
        let o = f.once(&cfg);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(state_of(&o, "a1"), "healthy");
    }
    assert_eq!(f.launches("a1"), 1);
    let ev = f.events();
    // A first start (supervisord's autostart), not a death and a revive.
    assert_eq!(ev.matches("\"agent_started\"").count(), 1, "{ev}");
    assert_eq!(ev.matches("\"revive_attempt\"").count(), 0, "{ev}");
    assert!(!ev.contains("\"agent_dead\""), "{ev}");
}

/// A stale heartbeat naming PID 1 (what a heartbeat CLI writes when its
/// agent died before it asked for its parent) shows no running agent: the
/// pool starts the agent at once, as one that never ran, not as a death
/// that spends its budget.
#[test]
fn a_stale_beat_naming_init_is_no_running_agent() {
    let f = Fleet::new();
    f.join("a1", RevivePolicy::Auto, true);
    let path = f.heartbeat_path("a1");
    f.beat_as("a1", 1);
    let mut beat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(beat["pid"], 1);
    beat["timestamp"] = (nexus_stdx::now_epoch() - 3600.0).into();
    std::fs::write(&path, beat.to_string()).unwrap();
    let o = f.once(&f.config(""));
    assert_eq!(
        state_of(&o, "a1"),
        "reviving",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(f.launches("a1"), 1);
    let ev = f.events();
    assert_eq!(ev.matches("\"agent_started\"").count(), 1, "{ev}");
    assert_eq!(ev.matches("\"revive_attempt\"").count(), 0, "{ev}");
    assert!(!ev.contains("\"agent_dead\""), "{ev}");
}

/// The last 20 history events of the agent named `name` in whichever cell
/// (its subject is its key, `<cell>/<name>`).
fn history_events(
    path: &std::path::Path,
    name: &str,
) -> Result<Vec<nexus_history::Event>, nexus_history::HistoryError> {
    let r = nexus_history::Reader::open(path)?;
    let suffix = format!("/{name}");
    let Some(s) = r
        .subjects()?
        .into_iter()
        .find(|s| s.kind == nexus_history::Kind::Agent && s.subject.ends_with(&suffix))
    else {
        return Ok(Vec::new());
    };
    r.last_events(nexus_history::Kind::Agent, &s.subject, 20)
}

/// A one-shot run's transitions reach the history before it exits (the
/// writer is a thread of its own; `--once` waits for it).
#[test]
fn a_once_run_leaves_its_transitions_in_the_history() {
    let f = Fleet::new();
    f.join("h1", RevivePolicy::Never, false);
    let history = f.root.join("history.sqlite");
    let cfg = f.config(&format!("[history]\npath = \"{}\"\n", history.display()));
    let o = f.once(&cfg);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ev = history_events(&history, "h1").unwrap();
    assert!(
        ev.iter()
            .any(|e| e.old_state == "unknown" && e.new_state == "dead" && e.group == "e2e mission"),
        "{ev:?}"
    );
}

#[test]
fn budget_exhausted_escalates_once_with_counters_in_state_json() {
    let f = Fleet::new();
    f.join("b1", RevivePolicy::Auto, false); // never comes back
    let cfg = f.config("max_attempts = 2\nslow_lane = 100000");
    for _ in 0..8 {
        let o = f.once(&cfg);
        assert_eq!(o.status.code(), Some(1));
    }
    // A first start (no budget spent) and two revives.
    assert_eq!(f.launches("b1"), 3, "no launch beyond the budget");
    // Each --once is a new process: the counters live in the state files.
    let pool = f.pool_state();
    let rec = &pool["records"][format!("{}/b1", f.cell)];
    assert_eq!(rec["state"], "escalated", "{pool:#}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.root.join("pool-state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the pool state is private");
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 2);
    let cell = f.store.open(&f.cell).unwrap();
    let st: Value = serde_json::from_slice(&std::fs::read(cell.state_path()).unwrap()).unwrap();
    assert_eq!(st["agent_health"]["b1"]["revive_count"], 2, "{st:#}");
    assert_eq!(st["agent_health"]["b1"]["escalated"], true);
    assert_eq!(f.events().matches("\"revive_escalated\"").count(), 1);
    // --status reads the state and probes nothing.
    let o = f.cmd(&cfg).args(["--status", "--json"]).run().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(agents(&o)[0]["state"], "escalated");
}

#[test]
fn frozen_cells_are_reported_but_never_revived() {
    let f = Fleet::new();
    f.join("c1", RevivePolicy::Auto, true);
    f.store.set_status(&f.cell, Status::Frozen).unwrap();
    let cfg = f.config("");
    for _ in 0..3 {
        let o = f.once(&cfg);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(state_of(&o, "c1"), "dead");
    }
    assert_eq!(f.launches("c1"), 0);
}

#[test]
fn an_explicit_config_that_is_missing_or_broken_exits_2() {
    let f = Fleet::new();
    let o = f
        .cmd(&f.root.join("nope.toml"))
        .arg("--once")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let bad = f.root.join("bad.toml");
    std::fs::write(&bad, "[pool]\npoll_intervall = \"5s\"\n").unwrap();
    let o = f.cmd(&bad).arg("--once").run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("poll_intervall"));
    // An empty fleet is a configuration error too.
    let empty = f.root.join("empty.toml");
    std::fs::write(&empty, "[pool]\n").unwrap();
    let o = f.cmd(&empty).arg("--once").run().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// A running daemon, killed on drop.
pub(crate) struct Daemon(pub(crate) std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, `-9` ...) to `pid` with kill(1).
pub(crate) fn kill(sig: &str, pid: u32) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fetches `url` once the daemon listens (bounded wait).
pub(crate) fn get(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2", url])
            .run();
        if let Ok(o) = &out
            && o.status.success()
        {
            return String::from_utf8_lossy(&o.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_running_pool_shows_its_fleet_to_chromium_and_promtool() {
    let f = Fleet::new();
    f.join("alpha", RevivePolicy::Auto, true);
    f.join("omega", RevivePolicy::Never, false);
    let cfg = f.config("");
    let (mut d, port) = f.serve(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("alpha healthy", || {
        get(&format!("{base}/api/agents")).contains("\"healthy\"")
    });
    let health: Value = serde_json::from_str(&get(&format!("{base}/health"))).unwrap();
    assert_eq!(health["status"], "ok");

    let metrics = get(&format!("{base}/metrics"));
    nexus_testkit::promtool_check_metrics(&metrics);
    assert!(
        metrics.contains("nexus_pool_agent_state{agent=\"omega\""),
        "{metrics}"
    );

    let dom = nexus_testkit::chromium_dom(&format!("{base}/"));
    assert!(
        dom.contains(
            "<span class=\"name\">alpha</span><span class=\"state healthy\">healthy</span>"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<span class=\"name\">omega</span><span class=\"state dead\">dead</span>"),
        "{dom}"
    );
    // Grouped under the mission's label, not the cell's uuid; no "n/a";
    // times say their zone.
    assert!(dom.contains(">e2e mission<span class=\"cell\""), "{dom}");
    assert!(!dom.contains("n/a"), "{dom}");
    assert!(dom.contains("UTC"), "{dom}");
    // A badge, as a README embeds it: an SVG document Chromium renders.
    let badge = nexus_testkit::chromium_dom(&format!("{base}/badge/omega.svg"));
    assert!(
        badge.contains("<svg") && badge.contains(">dead</text>"),
        "{badge}"
    );

    // SIGTERM ends it within a second.
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &d.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let mut child = std::mem::replace(&mut d.0, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("the pool still ran 1 s after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(sent.elapsed() < Duration::from_secs(1));
}

/// Issue 22's one dashboard, in a real Chromium set to Tokyo's time zone:
/// the agent with its 24-hour and 7-day bars from the history, the cron
/// jobs of a `[cron]` directory the pool judges itself, and a check a
/// real `nexus-watchdog` run recorded into the same history file; every
/// time in the viewer's zone, labelled; a job's badge.
#[test]
fn the_dashboard_shows_agents_jobs_and_checks_in_the_viewers_zone() {
    let f = Fleet::new();
    f.join("alpha", RevivePolicy::Auto, true);
    let history = f.root.join("history.sqlite");
    let jobs = f.root.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let now = nexus_stdx::now_epoch();
    for (job, age) in [("backup", 600.0), ("sync", 5.0)] {
        std::fs::write(
            jobs.join(format!("{job}.last")),
            format!(
                r#"{{"job":"{job}","timestamp":{},"interval_seconds":60,"status":"ok"}}"#,
                now - age
            ),
        )
        .unwrap();
    }
    // The watchdog first: it creates the file, the pool shares it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let wd = f.root.join("watchdog.toml");
    std::fs::write(
        &wd,
        format!(
            "[history]\npath = \"{}\"\n\n[[probe]]\nname = \"gateway\"\ntcp = {{ host = \"127.0.0.1\", port = {port} }}\n",
            history.display()
        ),
    )
    .unwrap();
    let o = Command::new(bin("nexus-watchdog"))
        .arg("--config")
        .arg(&wd)
        .arg("--state-dir")
        .arg(f.root.join("wd-state"))
        .env_remove("GITEA_TOKEN")
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg = f.config(&format!(
        "[history]\npath = \"{}\"\n[cron]\ndirs = [\"{}\"]\n",
        history.display(),
        jobs.display()
    ));
    let (_d, port) = f.serve(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    let mut b = nexus_testkit::browser::Browser::launch();
    b.set_timezone("Asia/Tokyo");
    let host = nexus_stdx::hostname();
    let deadline = Instant::now() + Duration::from_secs(30);
    let dom = loop {
        b.goto(&format!("{base}/?refresh=0"));
        let dom = b.dom();
        // Its bar, once some of its time is known (a percent), asked of
        // the page's DOM (the agent's card alone, not the jobs below it).
        let alpha_bars = b.eval(
            "document.querySelector(\"div[data-agent='alpha'] [data-bar='day'][data-percent]\") !== null",
        ) == serde_json::json!(true);
        // Each subject is in the page once its row is in the history (the
        // writer commits as events come: one job's row may lag the other's).
        let all = ["backup", "sync", "gateway"]
            .iter()
            .all(|n| dom.contains(&format!("data-subject=\"{n}@{host}\"")));
        if alpha_bars && all {
            break dom;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed it all:\n{dom}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        dom.contains(&format!(
            "data-subject=\"backup@{host}\" data-state=\"dead\""
        )),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            "data-subject=\"sync@{host}\" data-state=\"healthy\""
        )),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            "data-subject=\"gateway@{host}\" data-state=\"dead\""
        )),
        "{dom}"
    );
    // Every time in Tokyo's zone, labelled, and the page says so.
    let zone = b.eval("document.getElementById('zone').textContent");
    assert_eq!(zone, "Times are in your time zone (Asia/Tokyo).");
    let times = b.eval(
        "Array.from(document.querySelectorAll('time')).map(t => (t.dataset.local || '-') + ' ' + t.textContent)",
    );
    let times = times.as_array().unwrap();
    assert!(times.len() >= 4, "{times:?}");
    for t in times {
        let t = t.as_str().unwrap();
        assert!(
            t.starts_with("1 ") && (t.contains("GMT+9") || t.contains("JST")),
            "{t} not in Tokyo's zone"
        );
    }
    // The bar's uptime is a percentage.
    let pct = b.eval(
        "document.querySelector(\"div[data-agent='alpha'] [data-bar='day']\").dataset.percent",
    );
    let pct: f64 = pct.as_str().unwrap_or("x").parse().unwrap();
    assert!((0.0..=100.0).contains(&pct), "{pct}");
    // On a phone's screen: nothing wider than the screen, every bar laid
    // out with its runs.
    b.set_viewport(390, 844);
    b.goto(&format!("{base}/?refresh=0"));
    let layout = b.eval(
        "JSON.stringify({scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth, \
         bars: Array.from(document.querySelectorAll('.bar')).map(e => e.getBoundingClientRect().width), \
         runs: Array.from(document.querySelectorAll('.bar span')).filter(e => e.getBoundingClientRect().width > 0).length})",
    );
    let layout: serde_json::Value = serde_json::from_str(layout.as_str().unwrap()).unwrap();
    assert!(
        layout["scroll"].as_f64() <= layout["width"].as_f64(),
        "wider than the screen: {layout}"
    );
    let bars = layout["bars"].as_array().unwrap();
    assert!(bars.len() >= 6, "{layout}");
    assert!(bars.iter().all(|w| w.as_f64().unwrap() > 100.0), "{layout}");
    assert!(
        layout["runs"].as_u64().unwrap() >= bars.len() as u64,
        "{layout}"
    );
    // A job's badge, by its name alone (one host has it).
    let badge = nexus_testkit::chromium_dom(&format!("{base}/badge/backup.svg"));
    assert!(badge.contains(">STALE</text>"), "{badge}");
}

/// The status page's actions as an operator uses them, in a real
/// Chromium: acknowledge a dead agent, then retry it now (its policy is
/// `never`: only a human's retry launches it). Each is recorded in the
/// cell's log with its outcome, and the page reflects it.
#[test]
fn the_page_acknowledges_and_retries_a_dead_agent_in_chromium() {
    let f = Fleet::new();
    f.join("omega", RevivePolicy::Never, false);
    let history = f.root.join("history.sqlite");
    let cfg = f.config(&format!("[history]\npath = \"{}\"\n", history.display()));
    let (_d, port) = f.serve(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    let api = || get(&format!("{base}/api/agents"));
    wait_for("omega dead", || api().contains("\"dead\""));
    assert_eq!(
        f.launches_now("omega"),
        0,
        "policy never: no launch by itself"
    );

    let mut b = nexus_testkit::browser::Browser::launch();
    b.goto(&format!("{base}/"));
    b.click_and_wait("div[data-agent='omega'] button[data-do='acknowledge']");
    wait_for("the acknowledgement", || {
        api().contains("\"acknowledged_by\":\"the status page (loopback)\"")
    });
    b.goto(&format!("{base}/"));
    let dom = b.dom();
    assert!(
        dom.contains("acknowledged by the status page (loopback)"),
        "{dom}"
    );
    assert!(
        !dom.contains("data-do=\"acknowledge\""),
        "acknowledged once: {dom}"
    );

    b.click_and_wait("div[data-agent='omega'] button[data-do='retry']");
    wait_for("the retry's launch", || f.launches_now("omega") == 1);
    let events = f.events();
    // The history has the death and both actions, with who asked.
    wait_for("the actions in the history", || {
        history_events(&history, "omega").is_ok_and(|ev| {
            ev.iter()
                .filter(|e| e.actor == "the status page (loopback)")
                .count()
                == 2
        })
    });
    let ev = history_events(&history, "omega").unwrap();
    assert!(
        ev.iter()
            .any(|e| e.new_state == "dead" && e.actor.is_empty()),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| e.reason == "acknowledge: done"), "{ev:?}");
    assert!(ev.iter().any(|e| e.reason == "retry: done"), "{ev:?}");
    for line in [
        "\"event\":\"human_action\",\"action\":\"acknowledge\",\"agent\":\"omega\",\"by\":\"the status page (loopback)\",\"outcome\":\"done\"",
        "\"event\":\"human_action\",\"action\":\"retry\",\"agent\":\"omega\",\"by\":\"the status page (loopback)\",\"outcome\":\"done\"",
    ] {
        assert!(events.contains(line), "{line} not in\n{events}");
    }

    // A form from another site (no CSRF token, a foreign Origin) changes
    // nothing.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Origin: http://evil.example",
        ])
        .args(["--data", "agent=x&do=retry&csrf=guess"])
        .arg(format!("{base}/action"))
        .run()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
}

#[test]
fn a_second_daemon_exits_2() {
    let f = Fleet::new();
    f.join("x", RevivePolicy::Never, false);
    let cfg = f.config("");
    let (_d, port) = f.serve(&cfg);
    get(&format!("http://127.0.0.1:{port}/health"));
    let o = f
        .cmd(&cfg)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("another resurrection pool is running"));
}

pub(crate) mod channels {
    use super::*;
    use nexus_testkit::gitea::{Fake, REPO, TOKEN};
    use std::sync::{Arc, Mutex};

    /// `c` talking to the Gitea at `url`, in the fake's repository, with
    /// its token.
    pub(crate) fn gitea<'a>(c: &'a mut Command, url: &str) -> &'a mut Command {
        c.env("GITEA_URL", url)
            .env("NEXUS_REPO", REPO)
            .env("GITEA_TOKEN", TOKEN)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn never_policy_opens_exactly_one_issue_over_ten_sweeps() {
        let fake = Fake::start().await;
        let f = Fleet::new();
        f.join("n1", RevivePolicy::Never, true);
        let cfg = f.config("[incident]\nassignees = [\"alice\"]\n");
        for _ in 0..10 {
            let o = gitea(f.cmd(&cfg).args(["--once", "--json"]), &fake.url())
                .run()
                .unwrap();
            assert_eq!(
                o.status.code(),
                Some(1),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(f.launches("n1"), 0, "never means never");
        let st = fake.st();
        assert_eq!(st.issues.len(), 1, "{:?}", st.log);
        assert_eq!(st.issues[0].title, "[pool] n1: agent dead");
        assert!(st.issues[0].open);
        drop(st);
        fake.assert_contract();
    }

    /// A minimal Bot API: records sendMessage, answers getUpdates with
    /// whatever the test queued.
    #[derive(Default)]
    pub(crate) struct Bot {
        pub(crate) sent: Vec<Value>,
        pub(crate) updates: Vec<Value>,
        next_id: i64,
    }

    pub(crate) async fn bot() -> (mockito::ServerGuard, Arc<Mutex<Bot>>, Vec<mockito::Mock>) {
        let mut server = mockito::Server::new_async().await;
        let bot = Arc::new(Mutex::new(Bot::default()));
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
        };
        let b1 = bot.clone();
        let send = server
            .mock("POST", mockito::Matcher::Regex("^/bot[^/]+/sendMessage$".into()))
            .with_header("content-type", "application/json")
            .with_body_from_request(move |req| {
                let body: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
                let mut b = b1.lock().unwrap();
                b.next_id += 1;
                let chat = body["chat_id"].clone();
                b.sent.push(body);
                serde_json::to_vec(&serde_json::json!({"ok": true, "result": {
                    "message_id": b.next_id, "date": now(), "chat": {"id": chat, "type": "group"}}}))
                .unwrap()
            })
            .create_async()
            .await;
        let b2 = bot.clone();
        let updates = server
            .mock(
                "POST",
                mockito::Matcher::Regex("^/bot[^/]+/getUpdates$".into()),
            )
            .with_header("content-type", "application/json")
            .with_body_from_request(move |_| {
                let u = std::mem::take(&mut b2.lock().unwrap().updates);
                serde_json::to_vec(&serde_json::json!({"ok": true, "result": u})).unwrap()
            })
            .create_async()
            .await;
        let other = server
            .mock(
                "POST",
                mockito::Matcher::Regex(
                    "^/bot[^/]+/(answerCallbackQuery|editMessageReplyMarkup)$".into(),
                ),
            )
            .with_header("content-type", "application/json")
            .with_body(r#"{"ok": true, "result": true}"#)
            .create_async()
            .await;
        (server, bot, vec![send, updates, other])
    }

    /// A Bot API under flood control: `sendMessage` answers 429 with
    /// `retry_after` 1 until [`FloodedBot::end_flood`], then records every
    /// message and accepts it.
    struct FloodedBot {
        server: mockito::ServerGuard,
        chat: i64,
        flood: mockito::Mock,
        _updates: mockito::Mock,
        _ok: Option<mockito::Mock>,
    }

    const SEND_MESSAGE: &str = "^/bot[^/]+/sendMessage$";

    impl FloodedBot {
        async fn start(chat: i64) -> FloodedBot {
            let mut server = mockito::Server::new_async().await;
            let _updates = server
                .mock(
                    "POST",
                    mockito::Matcher::Regex("^/bot[^/]+/getUpdates$".into()),
                )
                .with_header("content-type", "application/json")
                .with_body(r#"{"ok": true, "result": []}"#)
                .create_async()
                .await;
            let flood = server
                .mock("POST", mockito::Matcher::Regex(SEND_MESSAGE.into()))
                .with_status(429)
                .with_header("content-type", "application/json")
                .with_body(
                    r#"{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}"#,
                )
                .create_async()
                .await;
            FloodedBot {
                server,
                chat,
                flood,
                _updates,
                _ok: None,
            }
        }

        /// The `[telegram]` section pointing at this bot (flood waits are
        /// never sat out: a 429 fails at once).
        fn telegram_section(&self) -> String {
            format!(
                "[telegram]\nchat_id = {}\napi_url = \"{}\"\nmax_flood_wait = \"0s\"\n",
                self.chat,
                self.server.url()
            )
        }

        /// One `--once` sweep of `f` with this bot's token.
        fn sweep(f: &Fleet, cfg: &Path) -> Output {
            f.cmd(cfg)
                .arg("--once")
                .env("TELEGRAM_BOT_TOKEN", "123456:test-token")
                .run()
                .unwrap()
        }

        /// Flood control ends; sweeps (`run`) until the message it held back
        /// is sent, then twice more: it must be sent exactly once. That message.
        async fn end_flood_then_sent_once<T>(&mut self, what: &str, run: impl Fn() -> T) -> Value {
            let sent = self.end_flood().await;
            wait_for(&format!("{what} sent"), || {
                run();
                !sent.lock().unwrap().is_empty()
            });
            run();
            run();
            let sent = sent.lock().unwrap();
            assert_eq!(sent.len(), 1, "{what} sent exactly once: {sent:?}");
            sent[0].clone()
        }

        /// Flood control ends: the messages sent from now on.
        async fn end_flood(&mut self) -> Arc<Mutex<Vec<Value>>> {
            let flood = std::mem::replace(
                &mut self.flood,
                self.server.mock("GET", "/never").create_async().await,
            );
            flood.remove_async().await;
            let sent = Arc::new(Mutex::new(Vec::<Value>::new()));
            let s2 = sent.clone();
            let chat = self.chat;
            let ok = self
                .server
                .mock("POST", mockito::Matcher::Regex(SEND_MESSAGE.into()))
                .with_header("content-type", "application/json")
                .with_body_from_request(move |req| {
                    let body: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
                    s2.lock().unwrap().push(body);
                    serde_json::to_vec(&serde_json::json!({"ok": true, "result": {
                        "message_id": 7, "date": 0, "chat": {"id": chat, "type": "group"}}}))
                    .unwrap()
                })
                .create_async()
                .await;
            self._ok = Some(ok);
            sent
        }
    }

    /// Telegram's flood control (a 429 whose `retry_after` is longer than
    /// `max_flood_wait`) holds the "needs a human" message: it waits in the
    /// pool state, across `--once` runs, and is sent exactly once later.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_escalation_held_by_flood_control_is_sent_later_exactly_once() {
        const CHAT: i64 = -1002;
        let mut bot = FloodedBot::start(CHAT).await;
        let f = Fleet::new();
        f.join("b1", RevivePolicy::Auto, false); // never comes back
        let cfg = f.config(&format!(
            "max_attempts = 1\nslow_lane = 100000\n\n{}",
            bot.telegram_section()
        ));
        let run = || FloodedBot::sweep(&f, &cfg);
        let state = || f.pool_state();
        let key = format!("{}/b1", f.cell);
        for _ in 0..6 {
            run();
            if state()["records"][&key]["state"] == "escalated" {
                break;
            }
        }
        assert_eq!(state()["records"][&key]["state"], "escalated");
        assert!(
            bot.flood.matched_async().await,
            "the escalation met flood control"
        );
        let waiting = state()["unsent"].to_string();
        assert!(
            waiting.contains("needs a human") && waiting.contains("b1"),
            "{waiting}"
        );
        // Flood control ends.
        let sent = bot.end_flood_then_sent_once("the held message", run).await;
        let text = sent["text"].as_str().unwrap();
        assert!(
            text.contains("needs a human") && text.contains("b1"),
            "{text}"
        );
        assert!(state().get("unsent").is_none(), "nothing left waiting");
    }

    /// An approval request that Telegram's flood control refused is asked
    /// again at a later sweep, once, so the human sees it before the
    /// request times out to `ask_default`.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_approval_request_refused_by_flood_control_is_asked_again_once() {
        const CHAT: i64 = -1003;
        let mut bot = FloodedBot::start(CHAT).await;
        let f = Fleet::new();
        f.join("asker", RevivePolicy::Ask, false);
        let cfg = f.config(&format!(
            "approval_timeout = 3600\n\n{}",
            bot.telegram_section()
        ));
        let run = || FloodedBot::sweep(&f, &cfg);
        let requests = || f.pool_state()["requests"].clone();
        run();
        assert!(
            bot.flood.matched_async().await,
            "the request met flood control"
        );
        assert_eq!(requests(), serde_json::json!({}), "not asked yet");
        let sent = bot.end_flood_then_sent_once("the request", run).await;
        assert!(sent["text"].as_str().unwrap().contains("asker"));
        assert!(sent["reply_markup"]["inline_keyboard"].is_array());
        assert_eq!(f.launches("asker"), 0, "no answer, no revive");
        let key = format!("{}/asker", f.cell);
        assert!(requests()[&key].is_string(), "{}", requests());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ask_waits_for_an_approval_from_the_chat_while_auto_revives_at_once() {
        const CHAT: i64 = -1001;
        let (server, bot, _mocks) = bot().await;
        let f = Fleet::new();
        f.join("asker", RevivePolicy::Ask, true);
        f.join("auto1", RevivePolicy::Auto, true);
        let cfg = f.config(&format!(
            "[telegram]\nchat_id = {CHAT}\napi_url = \"{}\"\n",
            server.url()
        ));
        let run = || {
            let o = f
                .cmd(&cfg)
                .args(["--once", "--json"])
                .env("TELEGRAM_BOT_TOKEN", "123456:test-token")
                .run()
                .unwrap();
            assert!(
                o.status.code().is_some(),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            o
        };
        run();
        // Same sweep: auto revived, ask only asked.
        assert_eq!((f.launches("auto1"), f.launches("asker")), (1, 0));
        let request = bot
            .lock()
            .unwrap()
            .sent
            .last()
            .cloned()
            .expect("an approval request");
        let text = request["text"].as_str().unwrap().to_string();
        assert!(text.contains("asker"), "{text}");
        let data = request["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(data.starts_with("approve:"), "{data}");
        run();
        assert_eq!(f.launches("asker"), 0, "no answer yet");
        // A press from another chat is ignored; one from the configured chat counts.
        let press = |chat: i64, id: i64| {
            serde_json::json!({"update_id": id, "callback_query": {
                "id": format!("cb{id}"),
                "from": {"id": 42, "is_bot": false, "first_name": "Op"},
                "message": {"message_id": bot.lock().unwrap().next_id, "date": 0, "chat": {"id": chat, "type": "group"}},
                "data": data}})
        };
        let wrong = press(777, 1);
        bot.lock().unwrap().updates.push(wrong);
        run();
        assert_eq!(f.launches("asker"), 0, "another chat cannot approve");
        let right = press(CHAT, 2);
        bot.lock().unwrap().updates.push(right);
        run();
        assert_eq!(f.launches("asker"), 1, "approved by the configured chat");
        assert_eq!(f.launches("auto1"), 1);
    }

    /// A revive request asked on Telegram, approved from the status page
    /// in a real Chromium: the agent is launched, the request is withdrawn
    /// in the chat with who answered, and the cell's log has the action.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_asked_on_telegram_is_approved_from_the_page() {
        const CHAT: i64 = -1006;
        let (server, bot, _mocks) = bot().await;
        let f = Fleet::new();
        f.join("asker", RevivePolicy::Ask, true);
        let cfg = f.config(&format!(
            "approval_timeout = 3600\n[telegram]\nchat_id = {CHAT}\napi_url = \"{}\"\n",
            server.url()
        ));
        let port = free_port();
        let _d = Daemon(
            f.cmd(&cfg)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("TELEGRAM_BOT_TOKEN", "123456:test-token")
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let b = format!("http://127.0.0.1:{port}");
        // The browser's own runtime runs on a thread of its own.
        tokio::task::spawn_blocking(move || {
            wait_for("the revive request", || {
                get(&format!("{b}/api/agents")).contains("\"revive_pending\":true")
            });
            let mut browser = nexus_testkit::browser::Browser::launch();
            browser.goto(&format!("{b}/"));
            browser.click_and_wait("div[data-agent='asker'] button[data-do='approve']");
        })
        .await
        .unwrap();
        let launched = tokio::task::spawn_blocking({
            let f_root = f.root.clone();
            move || {
                let file = f_root.join("asker.launches");
                wait_for("the approved launch", || file.exists());
            }
        });
        launched.await.unwrap();
        assert_eq!(f.launches("asker"), 1);
        let events = f.events();
        assert!(
            events.contains("\"event\":\"human_action\",\"action\":\"approve\",\"agent\":\"asker\",\"by\":\"the status page (loopback)\",\"outcome\":\"done\""),
            "{events}"
        );
        let note = tokio::task::spawn_blocking({
            let bot = bot.clone();
            move || {
                wait_for("the withdrawal note", || {
                    bot.lock().unwrap().sent.iter().any(|m| {
                        m["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("via the status page"))
                    })
                });
            }
        });
        note.await.unwrap();
    }

    /// `--dry-run` with Gitea and Telegram configured: the channels run
    /// (the engine says what it would do) but no call reaches either, no
    /// agent is launched and no state is written.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_dry_run_calls_neither_gitea_nor_telegram() {
        const CHAT: i64 = -1005;
        let fake = Fake::start().await;
        let (server, bot, mocks) = bot().await;
        let f = Fleet::new();
        f.join("auto1", RevivePolicy::Auto, true);
        f.join("asker", RevivePolicy::Ask, false);
        f.join("esc", RevivePolicy::Auto, false);
        // Policy never: an issue at once (an auto agent's start files none).
        f.join("nev", RevivePolicy::Never, false);
        let cfg = f.config(&format!(
            "max_attempts = 0\n[incident]\nassignees = [\"alice\"]\n[telegram]\nchat_id = {CHAT}\napi_url = \"{}\"\n",
            server.url()
        ));
        for _ in 0..2 {
            let o = gitea(f.cmd(&cfg).args(["--once", "--dry-run"]), &fake.url())
                .env("TELEGRAM_BOT_TOKEN", "123456:test-token")
                .env("NEXUS_LOG", "info")
                .run()
                .unwrap();
            let log = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{log}");
            assert!(log.contains("would open an issue"), "{log}");
        }
        assert!(fake.st().log.is_empty(), "{:?}", fake.st().log);
        assert!(bot.lock().unwrap().sent.is_empty());
        for m in &mocks {
            assert!(!m.matched_async().await, "a Bot API call in a dry run");
        }
        assert_eq!(f.launches("auto1") + f.launches("esc"), 0);
        assert!(!f.root.join("pool-state.json").exists());
    }
}

/// What `cron-heartbeat-check --dir <dir>` says about `job` (empty if absent).
pub(crate) fn cron_status(dir: &Path, job: &str) -> String {
    job_status(&cron_check(&[dir]).0, job)
}

/// `cron-heartbeat-check --json` over `dirs`: its report and exit code.
pub(crate) fn cron_check(dirs: &[&Path]) -> (Value, Option<i32>) {
    let mut c = Command::new(bin("cron-heartbeat-check"));
    for d in dirs {
        c.arg("--dir").arg(d);
    }
    let o = c.args(["--json", "--dry-run"]).run().unwrap();
    (serde_json::from_slice(&o.stdout).unwrap(), o.status.code())
}

/// `job`'s status in a `cron-heartbeat-check --json` report (empty if absent).
pub(crate) fn job_status(v: &Value, job: &str) -> String {
    v["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|j| j["job"] == job)
        .and_then(|j| j["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Polls `/api/agents` until `agent` is in `state`; returns how long it took.
fn time_until(base: &str, agent: &str, states: &[&str], limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let body = get(&format!("{base}/api/agents"));
        let v: Value = serde_json::from_str(&body).unwrap();
        let st = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == agent)
            .map(|a| a["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        if states.contains(&st.as_str()) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{agent} not {states:?} within {limit:?}: {st}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Detection latency (figures for docs/PERFORMANCE.md): the death of an
/// agent the pool launched is seen through the child's exit; an external
/// agent's through the next sweep's /proc scan.
#[test]
fn detection_of_launched_and_external_deaths() {
    let f = Fleet::new();
    let hb = f.heartbeat_path("looper");
    // A long-running agent: a shell loop beating through the CLI.
    f.store
        .join(
            &f.cell,
            Join {
                agent: AgentName::new("looper").unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "while :; do '{}' beat --no-fsync --path '{}'; sleep 0.2; done",
                        bin("nexus-heartbeat").display(),
                        hb.display()
                    ),
                ]),
                revive_policy: Some(RevivePolicy::Auto),
            },
        )
        .unwrap();
    // An external agent the pool did not start, watched as a gateway entry.
    let ext_hb = f.root.join("external.json");
    let marker = format!("nexus_ext_{}", std::process::id());
    // Its program name is a unique word for the process probe (argv mode).
    let program = f.root.join(&marker);
    std::os::unix::fs::symlink("/bin/sh", &program).unwrap();
    let mut external = Command::new(&program)
        .arg("-c")
        .arg("while :; do \"$1\" beat --no-fsync --path \"$2\"; sleep 0.2; done")
        .arg("agent")
        .arg(bin("nexus-heartbeat"))
        .arg(&ext_hb)
        .spawn()
        .unwrap();
    wait_for("external heartbeat", || ext_hb.exists());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw_port = listener.local_addr().unwrap().port();
    let poll = 2.0;
    let cfg = f.config_with(
        &format!(
            "[[gateway]]\nname = \"external\"\nhost = \"127.0.0.1\"\nport = {gw_port}\nheartbeat_path = \"{}\"\nprocess_pattern = \"{marker}\"\nstale_threshold = \"60s\"\n",
            ext_hb.display()
        ),
        &[
            ("poll_interval = \"1s\"", "poll_interval = \"2s\""),
            ("fail_threshold = 1", "fail_threshold = 3"),
        ],
    );
    let (_d, port) = f.serve(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    time_until(&base, "looper", &["healthy"], Duration::from_secs(20));
    time_until(&base, "external", &["healthy"], Duration::from_secs(20));

    // External death: the next sweep's /proc scan sees it (degraded at once:
    // its heartbeat is still fresh), within one poll interval.
    external.kill().unwrap();
    external.wait().unwrap();
    let t = time_until(
        &base,
        "external",
        &["degraded", "dead"],
        Duration::from_secs(10),
    );
    eprintln!(
        "FIGURE external agent death noticed after {:.0} ms (poll interval {poll}s)",
        t.as_secs_f64() * 1000.0
    );
    // Within one poll interval (plus the sweep itself).
    assert!(t.as_secs_f64() <= poll + 0.3, "{t:?}");

    // Launched death: the pool launched the looper, so the child's exit
    // reaches it at once (no waiting for the heartbeat to age), and it is
    // relaunched at once (no dead_threshold): a new PID beats.
    let beat_pid = || {
        std::fs::read_to_string(&hb)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["pid"].as_u64())
    };
    let pid = beat_pid().expect("the looper's heartbeat names its PID");
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    while beat_pid().is_none_or(|p| p == pid) {
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "no new PID beat within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = sent.elapsed();
    eprintln!(
        "FIGURE launched agent killed -> new PID beating after {:.0} ms",
        t.as_secs_f64() * 1000.0
    );
    assert!(t < Duration::from_secs(1), "{t:?}");
    time_until(&base, "looper", &["healthy"], Duration::from_secs(5));
    let ev = f.events();
    assert!(ev.contains("\"agent_recovered\""), "{ev}");
    assert!(
        !ev.contains("\"down_seconds\":0.0}"),
        "down time recorded: {ev}"
    );
    drop(listener);
}

#[test]
fn config_precedence_flag_over_environment() {
    let f = Fleet::new();
    f.join("p1", RevivePolicy::Never, false);
    let good = f.config("");
    let broken = f.root.join("broken.toml");
    std::fs::write(&broken, "not toml [").unwrap();
    // --config wins over RESURRECTION_CONFIG (the seed had it backwards).
    let o = f
        .cmd(&good)
        .env("RESURRECTION_CONFIG", &broken)
        .args(["--once", "--json"])
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Without --config, the variable is used, and a broken file exits 2.
    let o = Command::new(bin("resurrection-pool"))
        .env("RESURRECTION_CONFIG", &broken)
        .arg("--once")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("broken.toml"));
    // The seed's JSON is accepted as is.
    let json = f.root.join("resurrection_pool.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"poll_interval": 5, "dead_threshold": 1, "gateways": [{{"name": "g1", "host": "127.0.0.1", "port": 9, "heartbeat_path": "{}"}}], "missions": {{"m": {{"agents": ["g1"], "revive_policy": "never"}}}}}}"#,
            f.root.join("g1.json").display()
        ),
    )
    .unwrap();
    let o = Command::new(bin("resurrection-pool"))
        .arg("--config")
        .arg(&json)
        .args(["--once", "--json", "--state-file"])
        .arg(f.root.join("s.json"))
        .env("NEXUS_LOG", "error")
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(agents(&o)[0]["name"], "g1");
}

#[test]
fn a_daemon_restarted_mid_episode_keeps_its_counters() {
    let f = Fleet::new();
    f.join("r1", RevivePolicy::Auto, false); // never comes back
    // Its launches exit at once: a crash loop, 1 s, 2 s, 4 s apart.
    let cfg = f.config_with(
        "max_attempts = 3\nslow_lane = 100000",
        &[
            ("revive_deadline = 5", "revive_deadline = 2"),
            ("backoff_initial = 0", "backoff_initial = 1"),
        ],
    );
    let start = || {
        Daemon(
            f.cmd(&cfg)
                .args(["--listen", &format!("127.0.0.1:{}", free_port())])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut d = start();
    wait_for("the first launch", || f.launches("r1") >= 1);
    assert!(
        Command::new("kill")
            .args(["-TERM", &d.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = d.0.wait();
    let launched_before_restart = f.launches("r1");
    assert!(launched_before_restart < 4, "stopped mid-episode");
    let _d = start();
    wait_for("escalation", || f.events().contains("\"revive_escalated\""));
    // Its first start and three revives.
    assert_eq!(f.launches("r1"), 4, "the restart did not reset the budget");
    // The event is appended mid-sweep, the state saved at the sweep's end.
    wait_for("escalated in the pool state", || {
        std::fs::read(f.root.join("pool-state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|p| p["records"][format!("{}/r1", f.cell)]["state"] == "escalated")
    });
}

#[test]
fn cron_jobs_on_other_hosts_push_their_runs_to_the_pool() {
    const TOKEN: &str = "a-push-token-of-some-length";
    let f = Fleet::new();
    let pings = f.root.join("pings");
    let cfg = f.config(&format!("[ping]\ndir = \"{}\"\n", pings.display()));
    let port = free_port();
    let _d = Daemon(
        f.cmd(&cfg)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("NEXUS_PING_TOKEN", TOKEN)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    get(&format!("http://127.0.0.1:{port}/health"));
    let url = format!("http://127.0.0.1:{port}");
    let job = |cmd: &str, token: &str| {
        Command::new(bin("nexus-heartbeat"))
            .args(["run", "--job", "nightly", "--interval", "1h", "--url", &url])
            .args(["--", "sh", "-c", cmd])
            .env("NEXUS_PING_TOKEN", token)
            .run()
            .unwrap()
    };
    let pushed = format!("nightly@{}", nexus_stdx::hostname());
    let check = || cron_status(&pings, &pushed);
    let o = job("exit 0", TOKEN);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(check(), "OK");
    let o = job("exit 3", TOKEN);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(check(), "FAILED");
    // A wrong token is refused; the job's own exit code is kept.
    let o = job("exit 0", "not-the-token");
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused: 401"));
    assert_eq!(check(), "FAILED", "the refused push changed nothing");
    // A ping endpoint without a token refuses to start.
    let o = f
        .cmd(&cfg)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--pid-file",
        ])
        .arg(f.root.join("other.pid"))
        .env_remove("NEXUS_PING_TOKEN")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NEXUS_PING_TOKEN"));
}

#[test]
fn a_stopped_pool_is_noticed_through_its_own_heartbeat() {
    let f = Fleet::new();
    f.join("w1", RevivePolicy::Never, false);
    let cfg = f.config("");
    let beats = f.root.join("heartbeats");
    let d = Daemon(
        f.cmd(&cfg)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let own = beats.join("resurrection_pool.last");
    wait_for("the pool's own heartbeat", || own.exists());
    let check = || cron_status(&beats, "resurrection_pool");
    assert_eq!(check(), "OK");
    // A hung pool (SIGSTOP) stops beating: the cron checker flags it.
    kill("-STOP", d.0.id());
    wait_for("resurrection_pool STALE", || check() == "STALE");
    kill("-CONT", d.0.id());
    wait_for("resurrection_pool OK again", || check() == "OK");
}
