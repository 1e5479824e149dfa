//! Process faults of the resurrection pool: `kill -9` in the middle of a
//! revive and in the middle of a sweep, then a restart; `SIGSTOP`.
//!
//! The "middle" is deterministic: the pool is started with the test-only
//! pause point `NEXUS_POOL_PAUSE=<point>[:<n>]` (see `nexus_pool::intent`),
//! which announces itself in `NEXUS_POOL_PAUSE_FILE` and stops the pool
//! there; the test awaits that line, then sends `SIGKILL`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nexus_cell::{AgentName, EventLog, Join, RevivePolicy, Role};
use nexus_e2e::{Run, bin};
use serde_json::Value;

use super::pool::channels::bot;
use super::pool::{Daemon, Fleet, cron_status, free_port, get, kill, wait_for};

/// Joins `agent`, whose revive command appends to `<agent>.launches`, then
/// waits for the file `gate` (a revive that blocks until the test lets it
/// go), then beats every 0.2 s until killed.
pub(crate) fn join_gated(f: &Fleet, agent: &str, policy: RevivePolicy, gate: &Path) {
    let launches = f.root.join(format!("{agent}.launches"));
    let script = format!(
        "echo launch >> '{}'; while [ ! -e '{}' ]; do sleep 0.05; done; \
         i=0; while [ -d '{root}' ] && [ $i -lt 3000 ]; do '{}' beat --no-fsync --path '{}' --agent {agent}; i=$((i+1)); sleep 0.2; done",
        launches.display(),
        gate.display(),
        bin("nexus-heartbeat").display(),
        f.heartbeat_path(agent).display(),
        root = f.root.display(),
    );
    f.store
        .join(
            &f.cell,
            Join {
                agent: AgentName::new(agent).unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec!["sh".into(), "-c".into(), script]),
                revive_policy: Some(policy),
            },
        )
        .unwrap();
}

/// The launch journal's entries (launches since the last state save).
fn journal(f: &Fleet) -> Vec<Value> {
    std::fs::read_to_string(f.root.join("pool-state.json.launches.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn health(base: &str) -> Value {
    serde_json::from_str(&get(&format!("{base}/health"))).unwrap()
}

/// Waits until the daemon at `base` has done `n` more sweeps.
fn more_sweeps(base: &str, n: u64) {
    let start = health(base)["sweeps"].as_u64().unwrap();
    wait_for("more sweeps", || {
        health(base)["sweeps"].as_u64().unwrap() >= start + n
    });
}

pub(crate) fn agent(base: &str, name: &str) -> Value {
    let v: Value = serde_json::from_str(&get(&format!("{base}/api/agents"))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Every line of the cell's event log is whole and valid; the events.
fn events_intact(f: &Fleet) -> EventLog {
    let path = f.store.open(&f.cell).unwrap().events_path();
    let log = EventLog::read(&path).unwrap();
    assert!(
        log.skipped.is_empty(),
        "torn or bad lines: {:?}",
        log.skipped
    );
    assert!(std::fs::read(&path).unwrap().ends_with(b"\n"));
    log
}

fn count(log: &EventLog, kind: &str) -> usize {
    log.events
        .iter()
        .filter(|(_, e)| e.kind.name() == kind)
        .count()
}

/// Starts the daemon, paused for good at `pause` (if any).
pub(crate) fn start(
    f: &Fleet,
    cfg: &Path,
    pause: Option<&str>,
    env: &[(&str, &str)],
) -> (Daemon, String) {
    let port = free_port();
    let mut c = f.cmd(cfg);
    c.args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null());
    if let Some(p) = pause {
        c.env("NEXUS_POOL_PAUSE", p)
            .env("NEXUS_POOL_PAUSE_FILE", pause_file(f));
    }
    for (k, v) in env {
        c.env(k, v);
    }
    (
        Daemon(c.spawn().unwrap()),
        format!("http://127.0.0.1:{port}"),
    )
}

fn pause_file(f: &Fleet) -> PathBuf {
    f.root.join("paused")
}

fn paused_at(f: &Fleet, point: &str) -> bool {
    std::fs::read_to_string(pause_file(f)).is_ok_and(|s| s.lines().any(|l| l == point))
}

fn sigkill(d: &mut Daemon) {
    kill("-KILL", d.0.id());
    let status = d.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

/// `kill -9` after the agent's process was spawned and before the pool
/// saved anything about it (its PID included): the restarted pool finds
/// the process through the launch id in its environment, does not launch
/// again, and sees it become healthy.
#[test]
fn kill_9_between_spawn_and_state_save_launches_nothing_twice() {
    let f = Fleet::new();
    let gate = f.root.join("gate");
    join_gated(&f, "r1", RevivePolicy::Auto, &gate);
    let cfg = f.config_with(
        "max_attempts = 3\nslow_lane = 100000",
        &[("revive_deadline = 5", "revive_deadline = 60")],
    );
    let key = format!("{}/r1", f.cell);

    let (mut d, _) = start(&f, &cfg, Some("launch-spawned"), &[]);
    wait_for("the launch, paused after the spawn", || {
        paused_at(&f, "launch-spawned") && f.launches_now("r1") == 1
    });
    sigkill(&mut d);
    // Journaled before the spawn: the launch recorded (a first start: no
    // attempt counted), the intent without PID.
    let j = journal(&f);
    assert_eq!(j.len(), 1, "{j:#?}");
    assert_eq!(j[0]["key"], key.as_str());
    assert_eq!(j[0]["record"]["state"], "reviving", "{j:#?}");
    assert!(j[0]["record"]["last_launch"].is_number(), "{j:#?}");
    assert_eq!(j[0]["record"]["attempts"].as_array().unwrap().len(), 0);
    assert!(j[0]["intent"]["pid"].is_null(), "{j:#?}");
    assert_eq!(count(&events_intact(&f), "agent_started"), 1);

    // The blocked revive goes on; the pool restarts.
    std::fs::write(&gate, b"").unwrap();
    let (_d, base) = start(&f, &cfg, None, &[]);
    wait_for("r1 healthy", || agent(&base, "r1")["state"] == "healthy");
    more_sweeps(&base, 3);
    assert_eq!(f.launches_now("r1"), 1, "launched twice");
    assert_eq!(
        agent(&base, "r1")["process_alive"],
        true,
        "the process is tracked again"
    );
    let st = f.pool_state();
    let beat: Value =
        serde_json::from_slice(&std::fs::read(f.heartbeat_path("r1")).unwrap()).unwrap();
    assert_eq!(st["launched"][&key]["pid"], beat["pid"], "{st:#}");
    assert_eq!(st["records"][&key]["attempts"].as_array().unwrap().len(), 0);
    assert!(journal(&f).is_empty(), "taken in by the state save");
    let log = events_intact(&f);
    assert_eq!(count(&log, "agent_started"), 1);
    assert_eq!(count(&log, "revive_attempt"), 0);
}

/// `kill -9` after the intent was saved and before anything was spawned:
/// the restart keeps the launch (no process carries its id), and waits the
/// revive deadline before the one real launch, a revive.
#[test]
fn kill_9_between_intent_and_spawn_launches_once_after_the_deadline() {
    let f = Fleet::new();
    let gate = f.root.join("gate");
    std::fs::write(&gate, b"").unwrap();
    join_gated(&f, "r2", RevivePolicy::Auto, &gate);
    let cfg = f.config_with(
        "max_attempts = 3\nslow_lane = 100000",
        &[("revive_deadline = 5", "revive_deadline = 2")],
    );
    let key = format!("{}/r2", f.cell);
    let (mut d, _) = start(&f, &cfg, Some("launch-saved"), &[]);
    wait_for("paused before the spawn", || paused_at(&f, "launch-saved"));
    sigkill(&mut d);
    assert_eq!(f.launches_now("r2"), 0);
    let j = journal(&f);
    assert_eq!(j.len(), 1, "{j:#?}");
    assert_eq!(j[0]["key"], key.as_str());
    assert!(j[0]["record"]["last_launch"].is_number(), "{j:#?}");
    let (_d, base) = start(&f, &cfg, None, &[]);
    wait_for("r2 healthy", || agent(&base, "r2")["state"] == "healthy");
    more_sweeps(&base, 3);
    assert_eq!(f.launches_now("r2"), 1);
    let log = events_intact(&f);
    // The lost start and the real launch: two lines, none torn.
    assert_eq!(count(&log, "agent_started"), 1);
    assert_eq!(count(&log, "revive_attempt"), 1);
}

/// The agent is killed while its heartbeat CLI runs: the CLI outlives it,
/// is reparented, and writes a fresh beat naming its new parent (init)
/// after the pool saw the exit. That beat is a straggler, not a restart:
/// the death stays a death and is revived when the backoff ends, not when
/// the beat goes stale a minute later (seen in CI: a beat naming PID 1
/// kept a killed agent "healthy" for the whole staleness threshold).
#[test]
fn a_beat_from_a_writer_that_outlived_the_agent_hides_no_death() {
    let f = Fleet::new();
    let gate = f.root.join("gate");
    std::fs::write(&gate, b"").unwrap();
    join_gated(&f, "s1", RevivePolicy::Auto, &gate);
    // The revive waits 4 s after the first start: time to write the
    // straggling beat while the agent is dead.
    let cfg = f.config_with(
        "max_attempts = 10",
        &[("backoff_initial = 0", "backoff_initial = 4")],
    );
    let (_d, base) = start(&f, &cfg, None, &[]);
    wait_for("s1 healthy", || agent(&base, "s1")["state"] == "healthy");

    let beat: Value =
        serde_json::from_slice(&std::fs::read(f.heartbeat_path("s1")).unwrap()).unwrap();
    kill(
        "-KILL",
        u32::try_from(beat["pid"].as_u64().unwrap()).unwrap(),
    );
    wait_for("s1's death seen", || {
        agent(&base, "s1")["state"] != "healthy"
    });
    f.beat_as("s1", 1);
    let written = std::time::Instant::now();
    while f.launches_now("s1") < 2 && written.elapsed() < std::time::Duration::from_secs(40) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        f.launches_now("s1"),
        2,
        "not revived within 40 s of the straggling beat: {:#}",
        agent(&base, "s1")
    );
    wait_for("s1 healthy again", || {
        agent(&base, "s1")["state"] == "healthy"
    });
}

/// `kill -9` in the middle of a sweep (probes done, nothing decided) with
/// an approval pending and a revived agent: after the restart the pending
/// approval is the same one (no second request), the counters are the
/// same, nothing is launched twice, and the approval still works.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_sweep_keeps_pending_approvals_and_counters() {
    const CHAT: i64 = -1001;
    let (server, bot, _mocks) = bot().await;
    let f = Fleet::new();
    let gate = f.root.join("gate");
    std::fs::write(&gate, b"").unwrap();
    join_gated(&f, "asker", RevivePolicy::Ask, &gate);
    join_gated(&f, "a1", RevivePolicy::Auto, &gate);
    let cfg = f.config(&format!(
        "approval_timeout = 3600\n[telegram]\nchat_id = {CHAT}\napi_url = \"{}\"\n",
        server.url()
    ));
    let ask = format!("{}/asker", f.cell);
    let a1 = format!("{}/a1", f.cell);
    let env = [("TELEGRAM_BOT_TOKEN", "123456:test-token")];
    let (mut d, _) = start(&f, &cfg, Some("sweep-probed:6"), &env);
    wait_for("the sixth sweep, paused after its probes", || {
        paused_at(&f, "sweep-probed")
    });
    let state_before = std::fs::read(f.root.join("pool-state.json")).unwrap();
    let approvals_before = std::fs::read(f.root.join("approvals.json")).unwrap();
    sigkill(&mut d);
    assert_eq!(
        std::fs::read(f.root.join("pool-state.json")).unwrap(),
        state_before
    );
    let st = f.pool_state();
    let pending = st["records"][&ask]["pending"].clone();
    assert!(pending.is_object(), "{st:#}");
    let request = st["requests"][&ask].as_str().unwrap().to_string();
    let a1_attempts = st["records"][&a1]["attempts"].clone();
    // a1's launch was its first start: no attempt spent.
    assert!(st["records"][&a1]["last_launch"].is_number(), "{st:#}");
    assert_eq!(a1_attempts.as_array().unwrap().len(), 0, "{st:#}");
    assert_eq!(bot.lock().unwrap().sent.len(), 1, "one approval request");
    assert_eq!((f.launches_now("a1"), f.launches_now("asker")), (1, 0));

    let (_d, base) = start(&f, &cfg, None, &env);
    more_sweeps(&base, 3);
    let st = f.pool_state();
    assert_eq!(st["records"][&ask]["pending"], pending, "{st:#}");
    assert_eq!(st["requests"][&ask], request.as_str());
    assert_eq!(st["records"][&a1]["attempts"], a1_attempts);
    assert_eq!(
        std::fs::read(f.root.join("approvals.json")).unwrap(),
        approvals_before,
        "the pending approval is untouched"
    );
    assert_eq!(bot.lock().unwrap().sent.len(), 1, "no second request");
    assert_eq!((f.launches_now("a1"), f.launches_now("asker")), (1, 0));
    assert_eq!(agent(&base, "asker")["revive_pending"], true);

    // The approval, pressed after the crash, still revives exactly once.
    let press = serde_json::json!({"update_id": 1, "callback_query": {
        "id": "cb1",
        "from": {"id": 42, "is_bot": false, "first_name": "Op"},
        "message": {"message_id": 1, "date": 0, "chat": {"id": CHAT, "type": "group"}},
        "data": format!("approve:{request}")}});
    bot.lock().unwrap().updates.push(press);
    wait_for("asker launched", || f.launches_now("asker") == 1);
    wait_for("asker healthy", || {
        agent(&base, "asker")["state"] == "healthy"
    });
    more_sweeps(&base, 3);
    assert_eq!((f.launches_now("a1"), f.launches_now("asker")), (1, 1));
    let log = events_intact(&f);
    assert_eq!(count(&log, "agent_started"), 1);
    assert_eq!(count(&log, "revive_attempt"), 1);
}

/// A watchdog config whose one probe is the pool's own heartbeat.
fn watchdog_config(f: &Fleet, own: &Path) -> PathBuf {
    let p = f.root.join("watchdog.toml");
    std::fs::write(
        &p,
        format!(
            "[watchdog]\nheartbeat_dir = \"{}\"\n\n[[probe]]\nname = \"resurrection_pool\"\nheartbeat = {{ path = \"{}\", max_age = \"3s\" }}\n",
            f.root.join("watchdog-beats").display(),
            own.display()
        ),
    )
    .unwrap();
    p
}

/// `nexus-watchdog --json --dry-run`: (exit code, the probe's status).
fn watchdog(cfg: &Path, state: &Path) -> (Option<i32>, String) {
    let o = Command::new(bin("nexus-watchdog"))
        .arg("--config")
        .arg(cfg)
        .arg("--state-dir")
        .arg(state)
        .args(["--json", "--dry-run"])
        .env("NEXUS_LOG", "error")
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.code(), text)
}

/// A hung pool (`SIGSTOP`) stops beating: both the watchdog (a heartbeat
/// probe on the pool's own `.last` file) and the cron checker say so, and
/// both see it recover after `SIGCONT`.
#[test]
fn a_stopped_pool_is_noticed_by_the_watchdog_and_the_cron_checker() {
    let f = Fleet::new();
    f.join("w1", RevivePolicy::Never, false);
    let cfg = f.config("");
    let beats = f.root.join("heartbeats");
    let own = beats.join("resurrection_pool.last");
    let wcfg = watchdog_config(&f, &own);
    let wstate = f.root.join("watchdog-state");
    let (d, _) = start(&f, &cfg, None, &[]);
    wait_for("the pool's own heartbeat", || own.exists());
    wait_for("watchdog OK", || watchdog(&wcfg, &wstate).0 == Some(0));
    assert_eq!(cron_status(&beats, "resurrection_pool"), "OK");
    let pid = d.0.id();
    kill("-STOP", pid);
    let stopped = std::time::Instant::now();
    wait_for("watchdog says stale", || {
        let (code, out) = watchdog(&wcfg, &wstate);
        code == Some(1) && out.contains("Stale heartbeat")
    });
    eprintln!(
        "FIGURE stopped pool flagged by the watchdog after {:.1}s (max_age 3s)",
        stopped.elapsed().as_secs_f64()
    );
    wait_for("cron checker says STALE", || {
        cron_status(&beats, "resurrection_pool") == "STALE"
    });
    kill("-CONT", pid);
    wait_for("watchdog OK again", || {
        watchdog(&wcfg, &wstate).0 == Some(0)
    });
    wait_for("cron checker OK again", || {
        cron_status(&beats, "resurrection_pool") == "OK"
    });
}
