//! A wall clock set back across a restart, at library level: the pool's
//! records were written by a pool whose clock was a day ahead. The dead
//! agent is still revived promptly (not a day later), within its budget,
//! and a live agent raises no alarm.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use nexus_cell::{AgentName, CellStore, Join, NewCell, RevivePolicy, Role};
use nexus_pool::clock::Clock;
use nexus_pool::{Pool, PoolConfig, PoolOptions};
use nexus_revive::State;

const DAY: f64 = 86_400.0;

#[tokio::test(flavor = "multi_thread")]
async fn a_clock_set_back_a_day_neither_hides_a_dead_agent_nor_alarms_a_live_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cells");
    std::fs::create_dir_all(&root).unwrap();
    let store = CellStore::new(&root);
    let cell = store
        .provision(NewCell {
            mission: "clock".into(),
            created_by: "tests".into(),
            ..NewCell::default()
        })
        .unwrap()
        .id();
    let launches = tmp.path().join("dead.launches");
    for (agent, cmd) in [
        (
            "dead",
            Some(format!("echo launch >> '{}'", launches.display())),
        ),
        ("live", None),
    ] {
        store
            .join(
                &cell,
                Join {
                    agent: AgentName::new(agent).unwrap(),
                    role: Role::Developer,
                    home: None,
                    revive_cmd: cmd.map(|c| vec!["sh".into(), "-c".into(), c]),
                    revive_policy: Some(RevivePolicy::Auto),
                },
            )
            .unwrap();
    }
    let live_hb = store
        .open(&cell)
        .unwrap()
        .heartbeat_path(&AgentName::new("live").unwrap());
    let beat = || {
        nexus_heartbeat::HeartbeatWriter::new(live_hb.clone())
            .durable(false)
            .beat(1, "test", "ok")
            .unwrap();
    };
    let cfg = PoolConfig::parse(
        &format!(
            "[pool]\npoll_interval = \"1s\"\ndead_threshold = \"0s\"\n[cells]\nroot = \"{}\"\nheartbeat_stale_threshold = \"60s\"\n\
             [revive]\nfail_threshold = 1\nok_threshold = 1\nstartup_grace = 0\nbackoff_initial = 0\n\
             revive_deadline = 5\nmax_attempts = 3\nslow_lane = 100000\n",
            root.display()
        ),
        "test",
    )
    .unwrap();
    let opts = PoolOptions {
        state_file: tmp.path().join("state.json"),
        cells_root: None,
        dry_run: false,
    };
    let count = || {
        std::fs::read_to_string(&launches)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let dead = format!("{cell}/dead");
    let live = format!("{cell}/live");

    // A pool whose clock is a day ahead starts the agent that never ran
    // (a first start, which spends no budget).
    let mut ahead = Pool::new(cfg.clone(), opts.clone()).unwrap();
    ahead.set_clock(Clock::starting_at(nexus_stdx::now_epoch() + DAY));
    beat();
    ahead.sweep().await;
    let rec = &ahead.state().records[&dead];
    assert_eq!(
        rec.state,
        State::Reviving,
        "{rec:?} {:?}",
        ahead.shared().read().unwrap().agents
    );
    assert_eq!(rec.attempts.len(), 0, "a first start is not a revive");
    assert!(
        rec.last_launch
            .is_some_and(|t| t > nexus_stdx::now_epoch() + DAY / 2.0)
    );
    assert_eq!(ahead.state().records[&live].state, State::Healthy);
    drop(ahead);

    // Restarted with the true clock: a day "back". The revive deadline
    // (5 s) is measured from now, not from a day ahead.
    let mut pool = Pool::new(cfg, opts).unwrap();
    let started = std::time::Instant::now();
    let t0 = nexus_stdx::now_epoch();
    let mut sweeps = 0;
    // Counted by the pool's record: the launched command may run well
    // after the sweep that spawned it (the sweeps here take no real time).
    let revived = |pool: &Pool| {
        pool.state()
            .records
            .get(&dead)
            .is_some_and(|r| !r.attempts.is_empty())
    };
    while !revived(&pool) {
        assert!(
            started.elapsed().as_secs() < 30,
            "the dead agent was not revived again within 30 s of the jump"
        );
        beat();
        // Sweeps as the daemon does them, a second apart (simulated: the
        // pool clock is moved, no sleeping).
        pool.set_clock(Clock::starting_at(t0 + f64::from(sweeps)));
        pool.sweep().await;
        sweeps += 1;
        let live_rec = &pool.state().records[&live];
        assert_eq!(live_rec.state, State::Healthy, "false alarm: {live_rec:?}");
    }
    assert!(
        sweeps <= 8,
        "revived again after {sweeps} sweeps (deadline 5 s)"
    );
    let rec = &pool.state().records[&dead];
    assert_eq!(rec.attempts.len(), 1, "the revive after the failed start");
    // The revive's command runs (bounded: its process was spawned).
    while count() < 2 {
        assert!(
            started.elapsed().as_secs() < 30,
            "the revive's command never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(rec.attempts.iter().all(|t| *t <= t0 + 10.0), "{rec:?}");
}
