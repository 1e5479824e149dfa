//! The event-driven pool's rules (issue 17), through the real daemon and
//! real processes: a first start, a seen exit, a hang, an inferred death,
//! readiness, a crash loop, a restart mid-backoff, a lost event. Each
//! config keeps the defaults of the rule under test (its doc says which
//! keys it sets); timings are asserted with margins a loaded CI machine
//! keeps, and each bound is far below what the old timers would take.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nexus_cell::{AgentName, CellId, Join, NewCell, RevivePolicy, Role};
use nexus_e2e::bin;
use serde_json::Value;

use crate::crash::agent as view;
use crate::pool::{Daemon, Fleet, kill};

/// A config with the pool's defaults but for `pool` lines (in `[pool]`),
/// the cells' stale threshold and `revive` lines (in `[revive]`).
fn config(f: &Fleet, pool: &str, stale: &str, revive: &str) -> PathBuf {
    let p = f.root.join("defaults.toml");
    std::fs::write(
        &p,
        format!(
            "[pool]\nheartbeat_dir = \"{hb}\"\n{pool}\n[cells]\nroot = \"{cells}\"\nheartbeat_stale_threshold = \"{stale}\"\n[revive]\n{revive}\n",
            hb = f.root.join("heartbeats").display(),
            cells = f.root.join("cells").display(),
        ),
    )
    .unwrap();
    p
}

/// Starts the daemon; its base URL.
fn serve(f: &Fleet, cfg: &Path) -> (Daemon, String) {
    let (d, port) = f.serve(cfg);
    (d, format!("http://127.0.0.1:{port}"))
}

/// Waits up to `limit` for `cond`; how long it took.
fn within(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

/// The PID in `agent`'s heartbeat, if it has one.
pub(crate) fn beat_pid(f: &Fleet, agent: &str) -> Option<u32> {
    std::fs::read_to_string(f.heartbeat_path(agent))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["pid"].as_u64())
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

/// Joins `agent` to `cell` with a revive command that appends the launch
/// time to `<agent>.launches`, then runs `then` (shell).
fn join_timed(f: &Fleet, cell: &CellId, agent: &str, then: &str) {
    let launches = f.root.join(format!("{agent}.launches"));
    f.store
        .join(
            cell,
            Join {
                agent: AgentName::new(agent).unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    format!("date +%s.%N >> '{}'{then}", launches.display()),
                ]),
                revive_policy: Some(RevivePolicy::Auto),
            },
        )
        .unwrap();
}

fn launch_times(f: &Fleet, agent: &str) -> Vec<f64> {
    std::fs::read_to_string(f.root.join(format!("{agent}.launches")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn count(events: &str, kind: &str) -> usize {
    events.matches(&format!("\"event\":\"{kind}\"")).count()
}

/// Defaults throughout (`startup_grace` 120 s, `dead_threshold` 300 s,
/// poll 60 s): an `auto` agent that never ran is started at once, as a
/// start, not a revive.
#[test]
fn an_auto_agent_that_never_ran_is_started_at_once_and_spends_no_budget() {
    let f = Fleet::new();
    f.join("a1", RevivePolicy::Auto, true);
    let cfg = config(&f, "", "60s", "");
    let (_d, base) = serve(&f, &cfg);
    within("a1 beating", Duration::from_secs(5), || {
        beat_pid(&f, "a1").is_some()
    });
    within("a1 healthy", Duration::from_secs(5), || {
        view(&base, "a1")["state"] == "healthy"
    });
    let v = view(&base, "a1");
    assert_eq!(v["revive_attempts"], 0, "{v:#}");
    assert!(v["waiting"].is_null(), "{v:#}");
    assert_eq!(f.launches("a1"), 1);
    let ev = f.events();
    assert_eq!(count(&ev, "agent_started"), 1, "{ev}");
    assert_eq!(count(&ev, "revive_attempt"), 0, "{ev}");
}

/// Defaults (`dead_threshold` 300 s, poll 60 s): `kill -9` of the child
/// the pool launched; a new PID beats within seconds, the agent is
/// healthy on that first beat, and the episode's down time is recorded.
#[test]
fn a_killed_child_is_relaunched_at_once_and_healthy_on_its_first_beat() {
    let f = Fleet::new();
    f.join("k1", RevivePolicy::Auto, true);
    let cfg = config(&f, "", "60s", "");
    let (_d, base) = serve(&f, &cfg);
    within("k1 healthy", Duration::from_secs(10), || {
        view(&base, "k1")["state"] == "healthy"
    });
    let old = beat_pid(&f, "k1").unwrap();
    kill("-KILL", old);
    let t = within("a new PID beating", Duration::from_secs(3), || {
        beat_pid(&f, "k1").is_some_and(|p| p != old)
    });
    eprintln!(
        "FIGURE kill -9 -> new PID beating: {:.0} ms",
        t.as_secs_f64() * 1e3
    );
    // Readiness is that first beat, not the next poll (60 s away).
    within("k1 healthy again", Duration::from_secs(3), || {
        let v = view(&base, "k1");
        v["state"] == "healthy" && v["revive_attempts"] == 1
    });
    let ev = f.events();
    assert_eq!(count(&ev, "revive_attempt"), 1, "{ev}");
    let recovered: Vec<f64> = ev
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "agent_recovered")
        .filter_map(|e| e["down_seconds"].as_f64())
        .collect();
    assert_eq!(recovered.len(), 1, "{ev}");
    assert!(recovered[0] > 0.0 && recovered[0] < 3.0, "{recovered:?}");
}

/// `heartbeat_stale_threshold = "2s"`, otherwise defaults: a SIGSTOPped
/// child is stopped (SIGTERM after SIGCONT) and replaced; the stopped
/// process does not stay beside its replacement.
#[test]
fn a_hung_child_is_stopped_and_replaced() {
    let f = Fleet::new();
    f.join("h1", RevivePolicy::Auto, true);
    let cfg = config(&f, "", "2s", "");
    let (_d, base) = serve(&f, &cfg);
    within("h1 healthy", Duration::from_secs(10), || {
        view(&base, "h1")["state"] == "healthy"
    });
    let hung = beat_pid(&f, "h1").unwrap();
    kill("-STOP", hung);
    let t = within("a new PID beating", Duration::from_secs(8), || {
        beat_pid(&f, "h1").is_some_and(|p| p != hung)
    });
    eprintln!(
        "FIGURE SIGSTOP -> new PID beating: {:.0} ms (stale threshold 2 s)",
        t.as_secs_f64() * 1e3
    );
    assert!(t >= Duration::from_millis(1500), "not hung yet at {t:?}");
    within("the hung process gone", Duration::from_secs(5), || {
        !alive(hung)
    });
    let v = view(&base, "h1");
    assert_eq!(v["revive_attempts"], 1, "{v:#}");
}

/// `dead_threshold = "3s"`, `startup_grace = 0`, stale after 1 s: an
/// agent the test started (not the pool) dies; its death is inferred, so
/// the pool waits the threshold before it launches the agent's command.
#[test]
fn an_inferred_death_still_waits_the_dead_threshold() {
    let f = Fleet::new();
    f.join("x1", RevivePolicy::Auto, true);
    let hb = f.heartbeat_path("x1");
    let mut external = Command::new("sh")
        .arg("-c")
        .arg("i=0; while [ $i -lt 600 ]; do \"$0\" beat --no-fsync --path \"$1\"; i=$((i+1)); sleep 0.2; done")
        .arg(bin("nexus-heartbeat"))
        .arg(&hb)
        .spawn()
        .unwrap();
    within("the external agent beating", Duration::from_secs(5), || {
        beat_pid(&f, "x1") == Some(external.id())
    });
    let cfg = config(&f, "dead_threshold = \"3s\"", "1s", "startup_grace = 0");
    let (_d, base) = serve(&f, &cfg);
    within("x1 healthy", Duration::from_secs(5), || {
        view(&base, "x1")["state"] == "healthy"
    });
    assert_eq!(f.launches("x1"), 0, "it runs: nothing to start");
    external.kill().unwrap();
    external.wait().unwrap();
    let killed = Instant::now();
    within("x1 launched", Duration::from_secs(15), || {
        f.launches("x1") == 1
    });
    let t = killed.elapsed();
    eprintln!("FIGURE inferred death -> launch: {:.1} s", t.as_secs_f64());
    // Stale after 1 s, then 3 s of dead_threshold.
    assert!(t >= Duration::from_millis(3500), "launched after {t:?}");
}

/// `max_attempts = 3`, otherwise defaults: an agent that exits at once is
/// launched 1 s, 2 s and 4 s apart (counted from launch to launch), then
/// escalated exactly once, and not launched again (the slow lane is 30
/// minutes away).
#[test]
fn a_crash_loop_backs_off_doubling_and_escalates_once() {
    let f = Fleet::new();
    join_timed(&f, &f.cell, "c1", "");
    let cfg = config(&f, "", "60s", "max_attempts = 3");
    let (_d, base) = serve(&f, &cfg);
    within("c1 escalated", Duration::from_secs(20), || {
        view(&base, "c1")["state"] == "escalated"
    });
    let t = launch_times(&f, "c1");
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 3, "a first start and three revives: {t:?}");
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!((gap - want).abs() < 0.6, "gaps {gaps:?}, want 1, 2, 4 s");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        launch_times(&f, "c1").len(),
        4,
        "launched beyond the budget"
    );
    let ev = f.events();
    assert_eq!(count(&ev, "revive_escalated"), 1, "{ev}");
    let v = view(&base, "c1");
    assert!(
        v["waiting"]
            .as_str()
            .is_some_and(|w| w.starts_with("budget spent: a human is needed")),
        "{v:#}"
    );
}

/// `max_attempts = 5`, otherwise defaults: the daemon is stopped right
/// after a crash-looping agent's second revive and started again on the
/// same state: the third revive keeps the 4 s backoff from the second, and
/// nothing is launched twice.
#[test]
fn a_pool_restarted_mid_backoff_neither_double_launches_nor_forgets_the_backoff() {
    let f = Fleet::new();
    join_timed(&f, &f.cell, "r1", "");
    let cfg = config(&f, "", "60s", "max_attempts = 5");
    let (mut d, _) = serve(&f, &cfg);
    within("the second revive", Duration::from_secs(10), || {
        launch_times(&f, "r1").len() >= 3
    });
    kill("-TERM", d.0.id());
    let _ = d.0.wait();
    let second = launch_times(&f, "r1")[2];
    assert_eq!(
        launch_times(&f, "r1").len(),
        3,
        "stopped inside the 4 s backoff"
    );
    let (_d, _) = serve(&f, &cfg);
    within("the third revive", Duration::from_secs(10), || {
        launch_times(&f, "r1").len() >= 4
    });
    let t = launch_times(&f, "r1");
    assert!(
        t[3] - second >= 3.9,
        "relaunched {:.2} s after the second revive, inside its 4 s backoff",
        t[3] - second
    );
    // The next one is 8 s away: no duplicate meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        launch_times(&f, "r1").len(),
        4,
        "{:?}",
        launch_times(&f, "r1")
    );
}

/// Defaults: the pool is stopped (SIGSTOP) while more events than
/// inotify's queue holds are made in a watched directory and then a new
/// cell with an `auto` agent appears: the queue overflows, the cell's
/// event is lost, and
/// the full sweep the overflow asks for starts the new agent at once (the
/// 60 s safety sweep would have, later).
#[test]
fn an_inotify_overflow_is_caught_by_a_full_sweep() {
    let f = Fleet::new();
    f.join("o1", RevivePolicy::Auto, true);
    let cfg = config(&f, "", "60s", "");
    let (d, base) = serve(&f, &cfg);
    within("o1 healthy", Duration::from_secs(10), || {
        view(&base, "o1")["state"] == "healthy"
    });
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    assert!(
        max <= 1 << 20,
        "a queue this big ({max}) cannot be overflowed here"
    );
    kill("-STOP", d.0.id());
    // Each write is one event for the heartbeats directory's watch: the
    // queue fills, and the new cell's event comes after it is full.
    let beats = f.heartbeat_path("o1").parent().unwrap().to_path_buf();
    for i in 0..max + 100 {
        std::fs::write(beats.join(format!(".noise-{}", i % 64)), b"x").unwrap();
    }
    let cell = f
        .store
        .provision(NewCell {
            mission: "late".into(),
            created_by: "tests".into(),
            ..NewCell::default()
        })
        .unwrap()
        .id();
    join_timed(&f, &cell, "late1", "");
    kill("-CONT", d.0.id());
    let t = within(
        "the new cell's agent started",
        Duration::from_secs(10),
        || f.launches("late1") >= 1,
    );
    eprintln!(
        "FIGURE overflow -> new cell's agent started {:.0} ms after SIGCONT",
        t.as_secs_f64() * 1e3
    );
}
