//! Clock jumps, end to end: heartbeats stamped in the future (a writer
//! whose clock runs ahead, or this host's clock set back after they were
//! written) neither hide a dead agent nor raise a false alarm for a live
//! one. The pool judges them by whether they still change, on its
//! monotonic clock (`nexus_pool::clock`). The wall clock itself cannot be
//! set by a test: `nexus-revive` and `nexus-pool` test that at library level.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nexus_cell::{AgentName, Join, RevivePolicy, Role};
use serde_json::Value;

use super::pool::{Fleet, get, wait_for};

fn join_watched(f: &Fleet, agent: &str) {
    f.store
        .join(
            &f.cell,
            Join {
                agent: AgentName::new(agent).unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: None,
                revive_policy: Some(RevivePolicy::Never),
            },
        )
        .unwrap();
}

fn stamped(f: &Fleet, agent: &str, ahead: u64) {
    let ts = nexus_stdx::now_epoch() + ahead as f64;
    nexus_stdx::write_atomic(
        &f.heartbeat_path(agent),
        format!("{{\"timestamp\": {ts}, \"agent\": \"{agent}\"}}").as_bytes(),
        false,
    )
    .unwrap();
}

fn states(base: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&get(&format!("{base}/api/agents"))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn state(all: &[(String, String)], agent: &str) -> String {
    all.iter()
        .find(|(n, _)| n == agent)
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}

#[test]
fn future_heartbeats_neither_hide_the_dead_nor_alarm_the_living() {
    let f = Fleet::new();
    for a in ["live", "dead_near", "dead_far"] {
        join_watched(&f, a);
    }
    // Dead agents whose last beats are stamped 2 minutes (inside the
    // reader's clock-skew tolerance) and an hour ahead.
    stamped(&f, "dead_near", 120);
    stamped(&f, "dead_far", 3600);
    // A live agent whose clock is an hour ahead: beats every 0.2 s.
    let hb = f.heartbeat_path("live");
    let tmp = f.root.join("live.tmp");
    let mut live = Command::new("sh")
        .arg("-c")
        .arg(
            "n=0; while :; do n=$((n+1)); \
             printf '{\"timestamp\": %s, \"pid\": %s, \"seq\": %s}' $(( $(date +%s) + 3600 )) $$ $n > \"$1\"; \
             mv \"$1\" \"$2\"; sleep 0.2; done",
        )
        .arg("sh")
        .arg(&tmp)
        .arg(&hb)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the live agent's first beat", || hb.exists());
    let cfg = f.config_with("", &[("\"60s\"", "\"3s\"")]);
    let (_d, port) = f.serve(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    get(&format!("{base}/health"));
    let t0 = Instant::now();
    // Watch for 10 s (over three stale thresholds): the dead turn dead
    // within the threshold plus a sweep or two; the live one turns healthy
    // and never anything else.
    let mut dead_at = [None, None];
    let mut live_healthy = false;
    while t0.elapsed() < Duration::from_secs(10) {
        let all = states(&base);
        for (i, a) in ["dead_near", "dead_far"].iter().enumerate() {
            let s = state(&all, a);
            assert!(s != "healthy", "{a} shown healthy: {all:?}");
            if s == "dead" && dead_at[i].is_none() {
                dead_at[i] = Some(t0.elapsed());
            }
        }
        let s = state(&all, "live");
        if live_healthy {
            assert_eq!(s, "healthy", "false alarm for the live agent: {all:?}");
        }
        live_healthy |= s == "healthy";
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        live_healthy,
        "the live agent never showed healthy: {:?}",
        states(&base)
    );
    for (i, a) in ["dead_near", "dead_far"].iter().enumerate() {
        let t = dead_at[i].unwrap_or_else(|| panic!("{a} never declared dead"));
        eprintln!(
            "FIGURE {a}: future-stamped heartbeat of a dead agent declared dead after {:.1}s (threshold 3s)",
            t.as_secs_f64()
        );
        assert!(t < Duration::from_secs(8), "{a}: {t:?}");
    }
    live.kill().unwrap();
    live.wait().unwrap();
    // Once its beats stop changing, the live agent is dead too.
    wait_for("the stopped agent declared dead", || {
        state(&states(&base), "live") == "dead"
    });
}
