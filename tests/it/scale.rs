//! The pool at rest: between sweeps it sleeps on timers and child-exit
//! events, never polls (issue 9: "between sweeps the daemon uses no CPU").

use std::time::Duration;

use nexus_cell::RevivePolicy;
use serde_json::Value;

use crate::pool::{Fleet, get, wait_for};

/// CPU ticks (user + system) and context switches of every thread of `pid`.
fn usage(pid: u32) -> (u64, u64) {
    let mut ticks = 0;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue; // a thread that just ended
        };
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // After the command: state is field 3, utime 14, stime 15.
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    (ticks, switches)
}

#[test]
fn between_sweeps_the_pool_uses_no_cpu() {
    let f = Fleet::new();
    for agent in ["idle-a", "idle-b", "idle-c"] {
        f.join(agent, RevivePolicy::Never, true);
    }
    let cfg = f.root.join("idle.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pool]\npoll_interval = \"1h\"\nheartbeat_dir = \"{}\"\n[cells]\nroot = \"{}\"\n",
            f.root.join("heartbeats").display(),
            f.root.join("cells").display()
        ),
    )
    .unwrap();
    let (d, port) = f.serve(&cfg);
    let health = || -> Value {
        serde_json::from_str(&get(&format!("http://127.0.0.1:{port}/health"))).unwrap()
    };
    wait_for("the first sweep", || health()["sweeps"].as_u64() >= Some(1));
    let pid = d.0.id();
    let (ticks0, switches0) = usage(pid);
    // The measurement window (not a synchronisation): an idle daemon must
    // not wake up in it.
    std::thread::sleep(Duration::from_secs(3));
    let (ticks1, switches1) = usage(pid);
    assert!(
        ticks1 - ticks0 <= 1,
        "the idle pool used {} CPU ticks in 3 s",
        ticks1 - ticks0
    );
    assert!(
        switches1 - switches0 <= 6,
        "the idle pool woke up {} times in 3 s: something polls",
        switches1 - switches0
    );
    assert_eq!(
        health()["sweeps"].as_u64(),
        Some(1),
        "no second sweep within the hour"
    );
}
