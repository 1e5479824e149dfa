//! Load: 10,000 agents, 1,000 of them flapping every sweep (30 s) for ten
//! simulated minutes, then settling. Issue volume stays inside the
//! configured limit, the engine's memory is bounded, and the final state of
//! every subject still reaches Gitea once the window allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use nexus_gitea::{Check, Engine, EngineConfig, GiteaClient, Outcome};
use tempfile::TempDir;

use crate::client::config;
use crate::fake::Fake;

const T0: i64 = 1_767_225_600;
const AGENTS: usize = 10_000;
const FLAPPING: usize = 1_000;
const MAX_ACTIONS: u32 = 30;
const WINDOW: i64 = 600;
const SWEEP: i64 = 30;

fn check(k: usize, failing: bool) -> Check {
    let s = format!("agent-{k:05}");
    if failing {
        Check::failing(&s, &format!("{s}: agent dead"), "heartbeat stale")
    } else {
        Check::healthy(&s, &format!("{s}: healthy again"))
    }
}

/// Issue-level writes so far: (creates + state changes, comments).
fn writes(fake: &Fake) -> (usize, usize) {
    let st = fake.st();
    let creates = st
        .log
        .iter()
        .filter(|l| {
            l.starts_with("POST /api/v1/repos/ops/alerts/issues") && !l.contains("/comments")
        })
        .count();
    let patches = st.count("PATCH ");
    let comments = st
        .log
        .iter()
        .filter(|l| l.starts_with("POST ") && l.ends_with("/comments"))
        .count();
    (creates + patches, comments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_agents_with_a_thousand_flapping_stay_inside_the_issue_limit() {
    let started = Instant::now();
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let mut cfg = EngineConfig::new(dir.path(), "resurrection-pool", "[pool]");
    cfg.max_actions = MAX_ACTIONS;
    cfg.action_window = Duration::from_secs(WINDOW as u64);
    let c = clock.clone();
    let mut e = Engine::new(cfg, Some(GiteaClient::new(&config(&fake.url())).unwrap()))
        .with_clock(Arc::new(move || c.load(Ordering::SeqCst)));

    // (sim time, cumulative writes) after every sweep.
    let mut samples: Vec<(i64, (usize, usize))> = vec![(T0 - 1, (0, 0))];
    let mut after_first_minute = None;
    let mut deferred_max = 0;
    let sweeps = (600 / SWEEP) as usize;
    for n in 0..sweeps {
        let now = clock.load(Ordering::SeqCst);
        // As the pool does: only agents in trouble or just recovered reach
        // the engine; the steady healthy ones are observed in the first sweep
        // only (they cost nothing then: no request, no file written).
        let observed = if n == 0 { AGENTS } else { FLAPPING };
        for k in 0..observed {
            // Flappers fail on even sweeps and recover on odd ones.
            let failing = k < FLAPPING && n % 2 == 0;
            let out = e.observe(&check(k, failing)).await.unwrap();
            assert!(
                !matches!(out, Outcome::Queued { .. }),
                "Gitea is up: nothing is queued ({out:?})"
            );
        }
        samples.push((now, writes(&fake)));
        deferred_max = deferred_max.max(e.deferred_len());
        if now - T0 == 60 {
            after_first_minute = Some(e.memory_footprint());
        }
        clock.fetch_add(SWEEP, Ordering::SeqCst);
    }
    let after_run = e.memory_footprint();

    let run_secs = started.elapsed().as_secs_f64();
    // Settle: one flapper in 100 ends failing, the rest healthy (one last
    // sweep), then the engine is only ticked, as the pool does for quiet
    // agents.
    let ends_failing = |k: usize| k % 100 == 1;
    let now = clock.load(Ordering::SeqCst);
    for k in 0..FLAPPING {
        e.observe(&check(k, ends_failing(k))).await.unwrap();
    }
    samples.push((now, writes(&fake)));
    let mut ticks = 0;
    while e.deferred_len() > 0 {
        ticks += 1;
        assert!(ticks <= 2_000, "deferred subjects never drain");
        clock.fetch_add(SWEEP, Ordering::SeqCst);
        e.tick().await.unwrap();
        samples.push((clock.load(Ordering::SeqCst), writes(&fake)));
    }

    // Volume: in every window of WINDOW seconds, at most MAX_ACTIONS issue
    // creations/state changes and MAX_ACTIONS comments.
    let mut max_seen = (0, 0);
    for (i, (t, _)) in samples.iter().enumerate().skip(1) {
        let base = samples[..i]
            .iter()
            .rev()
            .find(|(t0, _)| *t0 <= t - WINDOW)
            .map_or((0, 0), |s| s.1);
        let cur = samples[i].1;
        max_seen.0 = max_seen.0.max(cur.0 - base.0);
        max_seen.1 = max_seen.1.max(cur.1 - base.1);
    }
    assert!(
        max_seen.0 <= MAX_ACTIONS as usize && max_seen.1 <= MAX_ACTIONS as usize,
        "per-window writes {max_seen:?} exceed the limit {MAX_ACTIONS}"
    );

    // Memory: the in-memory collections are bounded and did not grow
    // beyond what the first minute needed.
    let first = after_first_minute.unwrap();
    for (a, b) in first.iter().zip(after_run.iter()) {
        assert!(b <= a.max(&FLAPPING), "{first:?} -> {after_run:?}");
    }
    assert!(deferred_max <= FLAPPING, "{deferred_max}");
    assert!(after_run[2] <= MAX_ACTIONS as usize);
    assert!(e.outbox().is_empty().unwrap());

    // Nothing lost: every subject's final state is in Gitea.
    let st = fake.st();
    for k in 0..FLAPPING {
        let subject = format!("agent-{k:05}");
        let open = st
            .issues
            .iter()
            .filter(|i| i.open && i.title == format!("[pool] {subject}: agent dead"))
            .count();
        assert_eq!(open, usize::from(ends_failing(k)), "{subject}");
    }
    assert!(
        st.issues
            .iter()
            .all(|i| i.title.starts_with("[pool] agent-0")),
        "only flappers ever got an issue"
    );
    eprintln!(
        "load figures: {AGENTS} agents, {FLAPPING} flapping, {sweeps} sweeps + {ticks} settling ticks; \
         max per {WINDOW}s window: {} creates/state changes, {} comments (limit {MAX_ACTIONS}); \
         issues {}, requests {}; footprint [deferred, order, window, users, since] first minute {first:?}, \
         after run {after_run:?}, deferred max {deferred_max}; {run_secs:.1}s for the sweeps, {:.1}s wall",
        max_seen.0,
        max_seen.1,
        st.issues.len(),
        st.log.len(),
        started.elapsed().as_secs_f64()
    );
    drop(st);
    fake.assert_contract();
}

#[tokio::test]
async fn beyond_the_limit_subjects_wait_and_only_their_final_state_is_filed() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let mut cfg = EngineConfig::new(dir.path(), "watchdog", "[watchdog]");
    cfg.max_actions = 2;
    cfg.action_window = Duration::from_secs(600);
    let c = clock.clone();
    let mut e = Engine::new(cfg, Some(GiteaClient::new(&config(&fake.url())).unwrap()))
        .with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    let mut outs = Vec::new();
    for k in 0..4 {
        outs.push(e.observe(&check(k, true)).await.unwrap());
    }
    assert_eq!(
        outs,
        [
            Outcome::Created { number: 1 },
            Outcome::Created { number: 2 },
            Outcome::Deferred,
            Outcome::Deferred,
        ]
    );
    // agent 2 recovers while waiting: the flap is never filed.
    clock.fetch_add(60, Ordering::SeqCst);
    assert_eq!(e.observe(&check(2, false)).await.unwrap(), Outcome::Nothing);
    assert_eq!(e.deferred_len(), 1);
    // Inside the window: a tick files nothing (it saves the waiting set).
    e.tick().await.unwrap();
    assert_eq!(fake.st().issues.len(), 2);
    assert!(dir.path().join("deferred.json").is_file());
    // The daemon restarts; agent 3 is never observed again, yet once the
    // window allows, its final state is filed.
    drop(e);
    let mut cfg = EngineConfig::new(dir.path(), "watchdog", "[watchdog]");
    cfg.max_actions = 2;
    let c = clock.clone();
    let mut e = Engine::new(cfg, Some(GiteaClient::new(&config(&fake.url())).unwrap()))
        .with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    clock.fetch_add(600, Ordering::SeqCst);
    e.tick().await.unwrap();
    assert_eq!(e.deferred_len(), 0);
    assert!(!dir.path().join("deferred.json").exists());
    let st = fake.st();
    let titles: Vec<&str> = st.issues.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "[watchdog] agent-00000: agent dead",
            "[watchdog] agent-00001: agent dead",
            "[watchdog] agent-00003: agent dead",
        ]
    );
}

/// The window is kept on disk: a daemon that restarts (a crash loop) does not
/// start counting again, and a clock set back does not hold actions beyond
/// one window.
#[tokio::test]
async fn the_limit_holds_across_restarts() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let engine = |clock: &Arc<AtomicI64>| {
        let mut cfg = EngineConfig::new(dir.path(), "pool", "[pool]");
        cfg.max_actions = 2;
        cfg.action_window = Duration::from_secs(600);
        let c = clock.clone();
        Engine::new(cfg, Some(GiteaClient::new(&config(&fake.url())).unwrap()))
            .with_clock(Arc::new(move || c.load(Ordering::SeqCst)))
    };
    let mut e = engine(&clock);
    assert_eq!(
        e.observe(&check(0, true)).await.unwrap(),
        Outcome::Created { number: 1 }
    );
    assert_eq!(
        e.observe(&check(1, true)).await.unwrap(),
        Outcome::Created { number: 2 }
    );
    drop(e);
    assert!(dir.path().join("limiter.json").is_file());
    // Restarted ten seconds later, three times over: still inside the window.
    for _ in 0..3 {
        clock.fetch_add(10, Ordering::SeqCst);
        let mut e = engine(&clock);
        assert_eq!(e.observe(&check(2, true)).await.unwrap(), Outcome::Deferred);
        e.tick().await.unwrap();
    }
    assert_eq!(fake.st().issues.len(), 2, "no action beyond the limit");
    // The window passes: the waiting subject is filed by the next run.
    clock.fetch_add(600, Ordering::SeqCst);
    let mut e = engine(&clock);
    e.tick().await.unwrap();
    assert_eq!(fake.st().issues.len(), 3);
    drop(e);
    // A window saved "in the future" (the clock was set back an hour)
    // counts from now: actions wait one window, not an hour and a window.
    std::fs::write(
        dir.path().join("limiter.json"),
        format!("[{}, {}]", T0 + 10_000, T0 + 10_000),
    )
    .unwrap();
    let mut e = engine(&clock);
    assert_eq!(e.observe(&check(3, true)).await.unwrap(), Outcome::Deferred);
    clock.fetch_add(600, Ordering::SeqCst);
    e.tick().await.unwrap();
    assert_eq!(fake.st().issues.len(), 4, "filed one window later");
    // A corrupt window is ignored, never fatal.
    drop(e);
    std::fs::write(dir.path().join("limiter.json"), "not json").unwrap();
    let mut e = engine(&clock);
    clock.fetch_add(600, Ordering::SeqCst);
    assert_eq!(
        e.observe(&check(4, true)).await.unwrap(),
        Outcome::Created { number: 5 }
    );
}

/// The clock is set back a day while a subject keeps failing: its issue is
/// not left without a comment for that day (one comment follows at once,
/// then the interval runs from there); the rate-limit window is not
/// stretched either.
#[tokio::test]
async fn a_clock_set_back_a_day_does_not_silence_the_issue() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let mut cfg = EngineConfig::new(dir.path(), "pool", "[pool]");
    cfg.comment_min_interval = Duration::from_secs(3600);
    let c = clock.clone();
    let mut e = Engine::new(cfg, Some(GiteaClient::new(&config(&fake.url())).unwrap()))
        .with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    assert_eq!(
        e.observe(&check(0, true)).await.unwrap(),
        Outcome::Created { number: 1 }
    );
    clock.fetch_add(60, Ordering::SeqCst);
    assert_eq!(e.observe(&check(0, true)).await.unwrap(), Outcome::Nothing);
    clock.fetch_sub(86_400, Ordering::SeqCst);
    assert_eq!(
        e.observe(&check(0, true)).await.unwrap(),
        Outcome::Commented { number: 1 },
        "one comment after the jump, not a day of silence"
    );
    clock.fetch_add(60, Ordering::SeqCst);
    assert_eq!(e.observe(&check(0, true)).await.unwrap(), Outcome::Nothing);
    clock.fetch_add(3600, Ordering::SeqCst);
    assert_eq!(
        e.observe(&check(0, true)).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    // Recovery closes the same issue.
    assert_eq!(
        e.observe(&check(0, false)).await.unwrap(),
        Outcome::Resolved { number: 1 }
    );
    assert_eq!(fake.st().issues.len(), 1, "still one issue");
}

/// Issue 16, item 19: during a revive loop the pool's incident body changes
/// every sweep (state, probe lines, heartbeat age, a growing event list),
/// and each change used to be commented at once (6 comments in 15 s despite
/// `comment_min_interval = 1h`). A body whose only change is its
/// diagnostics is the same failure: 10 of them in 15 s give no comment.
/// A change of what fails (here the failing checks, flipping every sweep)
/// is commented at most once per `comment_change_floor`.
#[tokio::test]
async fn a_revive_loop_of_changing_bodies_stays_inside_the_comment_limits() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let cfg = EngineConfig::new(dir.path(), "resurrection-pool", "[pool]");
    assert_eq!(cfg.comment_min_interval, Duration::from_secs(3600));
    let floor = cfg.comment_change_floor.as_secs() as i64;
    assert_eq!(floor, 600);
    let c = clock.clone();
    let mut e = Engine::new(cfg, Some(GiteaClient::new(&config(&fake.url())).unwrap()))
        .with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    // The pool's body, as it changes while the agent is revived again and
    // again: state, probes, heartbeat age, one more event each time.
    let body = |n: i64| {
        let state = ["Dead", "Reviving"][(n % 2) as usize];
        let events: String = (0..=n)
            .rev()
            .take(5)
            .map(|k| {
                format!(
                    "- {} revive_attempt #{k}: launched pid {}\n",
                    T0 + k,
                    4000 + k
                )
            })
            .collect();
        format!(
            "### Agent death detected: timmy\n\n- **State:** {state}\n- **Process alive:** {}\n\
             - **Heartbeat age:** {}s\n- **Revive attempts (window):** {n}\n\n#### Recent events\n{events}",
            n % 2 == 1,
            31 + n
        )
    };
    let check = |n: i64| Check::failing("agent:timmy", "timmy: agent dead", &body(n));
    let comments = |fake: &Fake| fake.st().comments.len();

    // 10 different bodies in 15 s.
    let mut outcomes = Vec::new();
    for n in 0..10 {
        outcomes.push(e.observe(&check(n)).await.unwrap());
        clock.fetch_add(if n % 2 == 0 { 1 } else { 2 }, Ordering::SeqCst);
    }
    assert_eq!(clock.load(Ordering::SeqCst) - T0, 15);
    assert_eq!(outcomes[0], Outcome::Created { number: 1 });
    assert!(
        outcomes[1..].iter().all(|o| *o == Outcome::Nothing),
        "{outcomes:?}"
    );
    assert_eq!(comments(&fake), 0, "{:#?}", fake.st().comments);

    // An hour of it, a body every 15 s, the failing checks changing each
    // time (the process is up after each launch, then gone again).
    let mut n = 10;
    while clock.load(Ordering::SeqCst) < T0 + 3600 {
        let probes: &[&str] = if n % 2 == 0 {
            &["gateway:critical", "process:critical", "heartbeat:critical"]
        } else {
            &["gateway:critical", "heartbeat:critical"]
        };
        e.observe(&check(n).with_problems(probes.iter().copied()))
            .await
            .unwrap();
        n += 1;
        clock.fetch_add(15, Ordering::SeqCst);
    }
    let posted = comments(&fake);
    assert!(
        (1..=(3600 / floor) as usize).contains(&posted),
        "{posted} comments in an hour with a floor of {floor}s"
    );
    // A comment carries the body of its moment.
    let st = fake.st();
    let last = &st.comments.last().unwrap().1;
    assert!(last.contains("revive_attempt #"), "{last}");
    assert_eq!(st.issues.len(), 1);
    drop(st);
    fake.assert_contract();
}
