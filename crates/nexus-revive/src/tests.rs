//! Scenario tests and properties of the state machine.

use proptest::prelude::*;

use crate::*;

/// Drives one agent through sweeps, launching whenever asked.
struct Sim {
    rec: AgentRecord,
    s: Settings,
    policy: Policy,
    now: f64,
    /// The time of the last step (`now` is a sweep period past it).
    last: f64,
    log: Vec<(f64, Action)>,
    launch: fn(u32) -> LaunchOutcome,
}

impl Sim {
    fn new(policy: Policy) -> Sim {
        Sim {
            rec: AgentRecord::default(),
            s: Settings {
                startup_grace: 0.0,
                ..Settings::default()
            },
            policy,
            now: 1_000.0,
            last: 940.0,
            log: Vec::new(),
            launch: |_| LaunchOutcome::Started,
        }
    }

    fn sweep(&mut self, h: Health, approval: Option<Approval>) -> Vec<Action> {
        let actions = step(&mut self.rec, h, self.policy, self.now, approval, &self.s);
        let mut all = actions.clone();
        for a in &actions {
            if let Action::Launch { attempt, .. } = a {
                let more = launched(&mut self.rec, self.now, (self.launch)(*attempt), &self.s);
                all.extend(more);
            }
        }
        self.log.extend(all.iter().cloned().map(|a| (self.now, a)));
        self.last = self.now;
        self.now += 60.0;
        all
    }

    /// One step `dt` seconds after the last one (the event engine's pace).
    fn after(&mut self, dt: f64, h: Health) -> Vec<Action> {
        self.now = self.last + dt;
        self.sweep(h, None)
    }

    fn launch_times(&self) -> Vec<f64> {
        self.log
            .iter()
            .filter(|(_, a)| matches!(a, Action::Launch { .. }))
            .map(|(t, _)| *t)
            .collect()
    }

    fn sweeps(&mut self, n: usize, h: Health) {
        for _ in 0..n {
            self.sweep(h, None);
        }
    }

    fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.log.iter().filter(|(_, a)| f(a)).count()
    }

    fn launches(&self) -> usize {
        self.count(|a| matches!(a, Action::Launch { .. }))
    }
}

#[test]
fn auto_revives_an_inferred_death_once_without_an_issue() {
    let mut sim = Sim::new(Policy::Auto);
    sim.sweeps(3, Health::Healthy);
    sim.sweeps(2, Health::Dead);
    assert_eq!(
        sim.rec.state,
        State::Healthy,
        "two failing sweeps are not enough"
    );
    sim.sweeps(1, Health::Dead);
    assert_eq!(sim.rec.state, State::Dead);
    assert_eq!(sim.launches(), 0, "not before dead_after");
    sim.sweeps(5, Health::Dead);
    assert_eq!(sim.launches(), 1);
    assert_eq!(sim.rec.state, State::Reviving);
    sim.sweeps(1, Health::Healthy);
    assert_eq!(
        sim.rec.state,
        State::Healthy,
        "healthy on its first heartbeat"
    );
    assert_eq!(sim.launches(), 1);
    assert_eq!(
        sim.count(|a| matches!(a, Action::OpenIncident { .. })),
        0,
        "a revive that worked is no issue for a human"
    );
    let recovered: Vec<_> = sim
        .log
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Recovered {
                revived,
                attempt,
                down_seconds,
                incident,
            } => Some((*revived, *attempt, *down_seconds, *incident)),
            _ => None,
        })
        .collect();
    assert_eq!(recovered, [(true, 1, 360.0, false)], "{:?}", sim.log);
}

#[test]
fn never_opens_exactly_one_incident_over_ten_sweeps() {
    let mut sim = Sim::new(Policy::Never);
    sim.sweeps(20, Health::Dead);
    assert_eq!(sim.launches(), 0);
    assert_eq!(sim.count(|a| matches!(a, Action::OpenIncident { .. })), 1);
    // An external recovery closes it as "recovered by itself".
    sim.sweeps(1, Health::Healthy);
    assert!(
        sim.log.iter().any(|(_, a)| *a
            == Action::Recovered {
                revived: false,
                attempt: 0,
                down_seconds: 1200.0,
                incident: true,
            }),
        "{:?}",
        sim.log
    );
}

#[test]
fn ask_waits_for_approval_without_blocking() {
    let mut sim = Sim::new(Policy::Ask);
    sim.sweeps(8, Health::Dead);
    assert_eq!(
        sim.count(|a| matches!(a, Action::RequestApproval { .. })),
        1,
        "one request per episode"
    );
    assert_eq!(sim.launches(), 0);
    sim.sweep(Health::Dead, Some(Approval::Approved));
    assert_eq!(sim.launches(), 1);
}

#[test]
fn ask_denied_or_expired_means_no_revive_this_episode() {
    let mut sim = Sim::new(Policy::Ask);
    sim.sweeps(6, Health::Dead);
    sim.sweep(Health::Dead, Some(Approval::Denied));
    sim.sweeps(20, Health::Dead);
    assert_eq!(sim.launches(), 0);
    assert_eq!(
        sim.count(|a| matches!(a, Action::RequestApproval { .. })),
        1
    );
    // A new episode asks again.
    sim.sweeps(2, Health::Healthy);
    sim.sweeps(12, Health::Dead);
    assert_eq!(
        sim.count(|a| matches!(a, Action::RequestApproval { .. })),
        2
    );

    let mut sim = Sim::new(Policy::Ask);
    sim.s.ask_default = AskDefault::Revive;
    sim.sweeps(20, Health::Dead);
    assert!(sim.launches() >= 1, "expired with ask_default = revive");
    assert_eq!(
        sim.count(|a| matches!(a, Action::RequestApproval { .. })),
        1,
        "one request per episode"
    );
}

#[test]
fn budget_exhausted_escalates_once_then_slow_lane() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.slow_lane = 1e9;
    sim.sweeps(60, Health::Dead);
    assert_eq!(sim.launches(), 5, "{:?}", sim.log);
    assert_eq!(sim.count(|a| matches!(a, Action::Escalate { .. })), 1);
    assert_eq!(sim.rec.state, State::Escalated);
    assert_eq!(sim.rec.episode_attempts, 5);
    // The slow lane tries again, rarely.
    sim.s.slow_lane = 1800.0;
    sim.sweeps(100, Health::Dead);
    let slow: Vec<f64> = sim
        .log
        .iter()
        .filter(|(_, a)| {
            matches!(
                a,
                Action::Launch {
                    slow_lane: true,
                    ..
                }
            )
        })
        .map(|(t, _)| *t)
        .collect();
    assert!(slow.len() >= 2, "{slow:?}");
    assert!(slow.windows(2).all(|w| w[1] - w[0] >= 1800.0), "{slow:?}");
    assert_eq!(sim.count(|a| matches!(a, Action::Escalate { .. })), 1);
}

#[test]
fn launches_back_off_exponentially() {
    let s = Settings::default();
    let waits: Vec<f64> = (1..=8).map(|n| s.backoff(n)).collect();
    assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
    assert_eq!(s.backoff(0), 0.0);
    assert_eq!(s.backoff(10), 300.0, "capped");
}

#[test]
fn a_failed_preflight_escalates_without_launching() {
    let mut sim = Sim::new(Policy::Auto);
    sim.launch = |_| LaunchOutcome::PreflightFailed("SyntaxError line 3".into());
    sim.s.slow_lane = 1e9;
    sim.sweeps(20, Health::Dead);
    assert_eq!(sim.rec.state, State::Escalated);
    assert_eq!(sim.rec.episode_attempts, 0, "nothing was launched");
    assert_eq!(
        sim.count(|a| matches!(a, Action::Escalate { reason } if reason.contains("pre-flight"))),
        1
    );
}

#[test]
fn startup_grace_holds_the_policy() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.startup_grace = 900.0;
    sim.sweeps(14, Health::Dead);
    assert_eq!(sim.launches(), 0);
    sim.sweeps(2, Health::Dead);
    assert_eq!(sim.launches(), 1);
}

#[test]
fn a_restarted_daemon_keeps_its_counters() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.slow_lane = 1e9;
    sim.sweeps(12, Health::Dead);
    let launches = sim.launches();
    assert!(launches >= 1);
    // Persist and reload mid-episode.
    let text = serde_json::to_string(&sim.rec).unwrap();
    sim.rec = serde_json::from_str(&text).unwrap();
    sim.sweeps(60, Health::Dead);
    assert_eq!(sim.launches(), 5, "the budget is not reset by a restart");
}

#[test]
fn a_known_exit_is_dead_at_once() {
    let mut sim = Sim::new(Policy::Auto);
    sim.sweeps(3, Health::Healthy);
    sim.sweep(Health::Gone, None);
    assert!(
        sim.log.iter().any(|(_, a)| *a
            == Action::Transition {
                from: State::Healthy,
                to: State::Dead
            }),
        "no confirmation sweeps for a known exit: {:?}",
        sim.log
    );
    assert_eq!(
        sim.launches(),
        1,
        "and no dead_after wait: relaunched at once"
    );
    assert_eq!(sim.rec.state, State::Reviving);
}

#[test]
fn a_vanished_process_is_degraded_at_once() {
    let mut sim = Sim::new(Policy::Auto);
    sim.sweeps(3, Health::Healthy);
    sim.sweep(Health::ProcessGone, None);
    assert_eq!(sim.rec.state, State::Degraded);
    sim.sweep(Health::Dead, None);
    assert_eq!(
        sim.rec.state,
        State::Dead,
        "the stale heartbeat confirms it"
    );
}

#[test]
fn a_single_bad_sweep_does_not_flap() {
    let mut sim = Sim::new(Policy::Auto);
    sim.sweeps(3, Health::Healthy);
    for _ in 0..10 {
        sim.sweep(Health::Dead, None);
        sim.sweep(Health::Healthy, None);
    }
    assert_eq!(sim.rec.state, State::Healthy);
    assert_eq!(
        sim.count(|a| matches!(a, Action::Transition { .. })),
        1,
        "only unknown -> healthy"
    );
}

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![
        3 => Just(Health::Dead),
        2 => Just(Health::Healthy),
        1 => Just(Health::Degraded),
        1 => Just(Health::Unknown),
        1 => Just(Health::Gone),
        1 => Just(Health::ProcessGone),
        1 => Just(Health::Hung),
        1 => Just(Health::NotRunning),
    ]
}

fn approval() -> impl Strategy<Value = Option<Approval>> {
    prop_oneof![6 => Just(None), 1 => Just(Some(Approval::Approved)), 1 => Just(Some(Approval::Denied))]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::Auto), Just(Policy::Ask), Just(Policy::Never)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_history(
        policy in policy(),
        steps in proptest::collection::vec((health(), approval(), 1.0f64..400.0), 1..150),
        fail_launch in any::<bool>(),
    ) {
        let s = Settings { slow_lane: 1e12, ..Settings::default() };
        let mut rec = AgentRecord::default();
        let mut now = 0.0;
        let mut launches: Vec<f64> = Vec::new();
        let mut open = false;
        let mut requested = false;
        for (h, approval, dt) in steps {
            now += dt;
            let pending_before = rec.pending.is_some();
            let approved_before = rec.approved;
            if rec.state == State::Healthy
                && rec.healthy_since.is_some_and(|t| now - t >= s.backoff_reset_after)
            {
                // Healthy long enough: the budget is given back.
                launches.clear();
            }
            let mut queue: std::collections::VecDeque<Action> =
                step(&mut rec, h, policy, now, approval, &s).into();
            while let Some(a) = queue.pop_front() {
                match &a {
                    Action::Launch { slow_lane, first_start, .. } => {
                        prop_assert!(policy != Policy::Never, "never launches");
                        prop_assert!(!*slow_lane, "slow lane is off here");
                        prop_assert!(rec.pending.is_none());
                        if *first_start {
                            prop_assert_eq!(policy, Policy::Auto);
                            prop_assert_eq!(rec.state, State::Unknown);
                            prop_assert_eq!(h, Health::NotRunning);
                        } else {
                            prop_assert!(matches!(rec.state, State::Dead), "launch from {:?}", rec.state);
                            if policy == Policy::Ask {
                                prop_assert!(approved_before || (pending_before && approval == Some(Approval::Approved)));
                            }
                            let dead_since = rec.dead_since.unwrap();
                            prop_assert!(rec.confirmed || now - dead_since >= s.dead_after);
                            let recent = launches.iter().filter(|t| now - **t < s.attempt_window).count();
                            prop_assert!((recent as u32) < s.max_attempts, "budget: {recent} recent launches");
                            if let Some(last) = rec.last_launch {
                                prop_assert!(now - last >= s.backoff(rec.backoff_level + 1));
                            }
                        }
                        let outcome = if fail_launch { LaunchOutcome::Failed("boom".into()) } else { LaunchOutcome::Started };
                        queue.extend(launched(&mut rec, now, outcome, &s));
                        if !*first_start {
                            launches.push(now);
                        }
                    }
                    Action::OpenIncident { .. } => {
                        prop_assert!(!open, "two incidents in one episode");
                        open = true;
                    }
                    Action::Recovered { incident, .. } => {
                        prop_assert_eq!(*incident, open, "closed an incident that was not open");
                        open = false;
                        requested = false;
                    }
                    Action::RequestApproval { deadline } => {
                        prop_assert!(policy == Policy::Ask);
                        prop_assert!(!requested, "two requests in one episode");
                        prop_assert!(*deadline > now);
                        requested = true;
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(rec.incident_open, open);
            if rec.state == State::Reviving { prop_assert!(rec.last_launch.is_some()); }
            if rec.state == State::Escalated { prop_assert!(rec.escalated_at.is_some()); }
            if rec.state == State::Healthy { prop_assert!(!rec.incident_open && rec.pending.is_none()); }
        }
    }

    #[test]
    fn records_round_trip(policy in policy(), steps in proptest::collection::vec(health(), 0..40)) {
        let s = Settings::default();
        let mut rec = AgentRecord::default();
        for (i, h) in steps.into_iter().enumerate() {
            step(&mut rec, h, policy, i as f64 * 100.0, None, &s);
        }
        let back: AgentRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        prop_assert_eq!(back, rec);
    }
}

/// The wall clock set back by a day mid-episode: the dead agent is still
/// revived within `dead_after` of the jump (not a day later), the budget
/// still counts the launches made before it, and a live agent raises nothing.
#[test]
fn a_clock_set_back_neither_hides_a_dead_agent_nor_alarms_a_live_one() {
    const DAY: f64 = 86_400.0;
    let mut dead = Sim::new(Policy::Auto);
    dead.s.max_attempts = 2;
    dead.s.revive_deadline = 120.0;
    dead.sweeps(3, Health::Dead);
    assert_eq!(dead.rec.state, State::Dead);
    dead.sweeps(5, Health::Dead);
    assert_eq!(dead.launches(), 1, "revived once before the jump");
    dead.now -= DAY;
    let jumped_at = dead.now;
    // Stuck in `reviving` for a day without the clamp; here it fails the
    // revive deadline, waits dead_after again at most, and launches.
    let mut second = None;
    for _ in 0..20 {
        dead.sweep(Health::Dead, None);
        if dead.launches() == 2 && second.is_none() {
            second = Some(dead.now - 60.0);
        }
    }
    let second = second.expect("a second launch after the jump");
    assert!(
        second - jumped_at <= dead.s.revive_deadline + dead.s.dead_after + 120.0,
        "relaunched {}s after the jump",
        second - jumped_at
    );
    assert_eq!(dead.launches(), 2, "the budget kept the pre-jump launch");
    assert_eq!(dead.rec.state, State::Escalated);

    let mut live = Sim::new(Policy::Auto);
    live.sweeps(3, Health::Healthy);
    live.now -= DAY;
    live.sweeps(5, Health::Healthy);
    live.now += 3.0 * DAY; // and forward again
    live.sweeps(5, Health::Healthy);
    assert_eq!(live.rec.state, State::Healthy);
    assert!(live.log.is_empty() || live.count(|a| !matches!(a, Action::Transition { .. })) == 0);
    assert_eq!(
        live.count(|a| matches!(a, Action::Transition { .. })),
        1,
        "unknown → healthy only"
    );
}

#[test]
fn a_pending_approval_keeps_its_timeout_across_a_clock_set_back() {
    let mut sim = Sim::new(Policy::Ask);
    sim.s.dead_after = 0.0;
    sim.sweeps(3, Health::Dead);
    let p = sim.rec.pending.expect("a request");
    sim.now -= 10_000.0;
    sim.sweep(Health::Dead, None);
    let q = sim.rec.pending.expect("still pending");
    assert!(q.deadline - q.requested_at == p.deadline - p.requested_at);
    assert!(q.requested_at <= sim.now);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the clock does (jumps back or forward by up to a day), no
    /// time in a record is ever after the `now` it was stepped with, and
    /// the budget holds.
    #[test]
    fn no_record_time_is_in_the_future_after_a_step(
        steps in proptest::collection::vec((health(), -86_400.0f64..86_400.0), 1..120),
    ) {
        let s = Settings { startup_grace: 0.0, dead_after: 0.0, slow_lane: 1e12, ..Settings::default() };
        let mut rec = AgentRecord::default();
        let mut now = 1.0e9;
        let mut launches = 0u32;
        for (h, dt) in steps {
            now += dt;
            for a in step(&mut rec, h, Policy::Auto, now, None, &s) {
                if matches!(a, Action::Launch { .. }) {
                    launched(&mut rec, now, LaunchOutcome::Started, &s);
                    launches += 1;
                }
            }
            let times = [rec.first_seen, rec.episode_start, rec.dead_since, rec.last_launch, rec.healthy_since, rec.escalated_at];
            prop_assert!(times.iter().flatten().all(|t| *t <= now), "{rec:?} at {now}");
            prop_assert!(rec.attempts.iter().all(|t| *t <= now));
            prop_assert!(rec.attempts.len() as u32 <= s.max_attempts);
        }
        let _ = launches;
    }
}

// The event engine's rules (issue 17): act on evidence, not on a timer.

fn opened(sim: &Sim) -> usize {
    sim.count(|a| matches!(a, Action::OpenIncident { .. }))
}

#[test]
fn an_auto_agent_not_running_at_first_sight_is_started_at_once_and_spends_no_budget() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.startup_grace = 120.0; // no grace holds a start
    let first = sim.after(60.0, Health::NotRunning);
    assert_eq!(
        first[0],
        Action::Launch {
            attempt: 0,
            slow_lane: false,
            first_start: true
        }
    );
    assert_eq!(sim.rec.state, State::Reviving);
    assert!(sim.rec.attempts.is_empty(), "a start is not a revive");
    assert_eq!(sim.rec.episode_attempts, 0);
    let w = wait(&sim.rec, Policy::Auto, sim.last, &sim.s);
    assert!(matches!(w, Some(Wait::Starting { .. })), "{w:?}");
    // Healthy on its first heartbeat; no death episode to report.
    sim.after(0.3, Health::Healthy);
    assert_eq!(sim.rec.state, State::Healthy);
    assert_eq!(sim.count(|a| matches!(a, Action::Recovered { .. })), 0);
    assert_eq!(opened(&sim), 0);
}

#[test]
fn only_auto_agents_are_started_and_only_at_first_sight() {
    for policy in [Policy::Ask, Policy::Never] {
        let mut sim = Sim::new(policy);
        sim.after(1.0, Health::NotRunning);
        assert_eq!(sim.launches(), 0, "{policy}");
        assert_eq!(sim.rec.state, State::Dead, "{policy}");
    }
    // Known before: not running is an inferred death (dead_after holds).
    let mut sim = Sim::new(Policy::Auto);
    sim.after(1.0, Health::Healthy);
    for _ in 0..3 {
        sim.after(1.0, Health::NotRunning);
    }
    assert_eq!(sim.rec.state, State::Dead);
    assert_eq!(sim.launches(), 0, "inferred: dead_after first");
    let w = wait(&sim.rec, Policy::Auto, sim.last, &sim.s).unwrap();
    assert!(matches!(w, Wait::Confirming { .. }), "{w:?}");
}

#[test]
fn a_seen_exit_is_relaunched_at_once_without_the_dead_threshold() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.startup_grace = 1e9; // grace is for inferred deaths only
    sim.after(1.0, Health::NotRunning);
    sim.after(0.5, Health::Healthy);
    sim.after(30.0, Health::Healthy);
    let t = sim.last + 10.0;
    sim.after(10.0, Health::Gone);
    assert_eq!(
        sim.launch_times().last(),
        Some(&t),
        "relaunched in the same step"
    );
    assert_eq!(sim.rec.attempts.len(), 1);
    sim.after(0.2, Health::Healthy);
    assert_eq!(sim.rec.state, State::Healthy);
    assert_eq!(opened(&sim), 0, "a revive that worked files no issue");
    assert!(sim.log.iter().any(|(_, a)| matches!(
        a,
        Action::Recovered {
            revived: true,
            attempt: 1,
            incident: false,
            ..
        }
    )));
}

#[test]
fn a_crash_loop_backs_off_doubling_spends_the_budget_and_escalates_once() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.slow_lane = 1e9;
    sim.after(1.0, Health::NotRunning);
    // The agent exits at once after every launch; the engine steps it on
    // each exit and whenever next_due says.
    for _ in 0..200 {
        let due = next_due(&sim.rec, Policy::Auto, sim.last, &sim.s);
        let h = if sim.rec.state == State::Reviving {
            Health::Gone
        } else {
            Health::NotRunning
        };
        let dt = match (sim.rec.state, due) {
            (State::Reviving, _) => 0.05,
            (_, Some(d)) => (d - sim.last).max(0.0),
            (_, None) => break,
        };
        if sim.rec.state == State::Escalated {
            break;
        }
        sim.after(dt, h);
    }
    let t = sim.launch_times();
    let gaps: Vec<f64> = t
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 100.0).round() / 100.0)
        .collect();
    assert_eq!(gaps, [1.0, 2.0, 4.0, 8.0, 16.0], "{:?}", sim.log);
    assert_eq!(sim.rec.attempts.len(), 5, "the first start spent nothing");
    assert_eq!(sim.count(|a| matches!(a, Action::Escalate { .. })), 1);
    assert_eq!(
        opened(&sim),
        1,
        "one incident, opened when a start first failed"
    );
    assert_eq!(sim.rec.state, State::Escalated);
}

#[test]
fn a_hung_process_is_dead_at_once_but_a_fresh_launch_gets_its_deadline() {
    let mut sim = Sim::new(Policy::Auto);
    sim.after(1.0, Health::Healthy);
    sim.after(100.0, Health::Hung);
    assert_eq!(sim.launches(), 1, "no confirmation, no dead_after");
    // The new process has not beaten yet: the old heartbeat is stale, its
    // process alive: not hung before the revive deadline.
    sim.after(5.0, Health::Hung);
    assert_eq!(sim.rec.state, State::Reviving);
    assert_eq!(sim.launches(), 1);
    sim.after(sim.s.revive_deadline, Health::Hung);
    assert_eq!(opened(&sim), 1, "the revive failed: a human should know");
    assert_eq!(
        sim.launches(),
        2,
        "and it is tried again (backoff 2 s passed)"
    );
}

#[test]
fn an_agent_healthy_for_backoff_reset_after_gets_its_attempts_back() {
    let mut sim = Sim::new(Policy::Auto);
    sim.after(1.0, Health::Healthy);
    for _ in 0..5 {
        sim.after(sim.s.backoff_reset_after + 1.0, Health::Gone);
        sim.after(0.2, Health::Healthy);
    }
    assert_eq!(sim.launches(), 5);
    // A sixth death within the hour is revived: the agent was healthy long
    // enough between deaths, so none of them was a crash loop.
    sim.after(sim.s.backoff_reset_after + 1.0, Health::Gone);
    assert_eq!(sim.launches(), 6);
    assert_eq!(sim.count(|a| matches!(a, Action::Escalate { .. })), 0);
    assert_eq!(sim.rec.attempts.len(), 1);
    // A second death soon after a revive waits the doubled backoff.
    sim.after(0.2, Health::Healthy);
    sim.after(1.0, Health::Gone);
    assert_eq!(sim.launches(), 6, "backoff 2 s from the last launch");
    let w = wait(&sim.rec, Policy::Auto, sim.last, &sim.s).unwrap();
    let text = w.describe(sim.last, &|t| format!("t+{:.1}", t - sim.last));
    assert_eq!(text, "backoff 1 s until t+0.8 (attempt 2 of 5 in 1 h)");
}

#[test]
fn readiness_is_the_first_fresh_heartbeat_whatever_ok_threshold_says() {
    let mut sim = Sim::new(Policy::Auto);
    sim.s.ok_threshold = 5;
    sim.after(1.0, Health::Healthy);
    sim.after(10.0, Health::Gone);
    assert_eq!(sim.rec.state, State::Reviving);
    sim.after(0.5, Health::Healthy);
    assert_eq!(sim.rec.state, State::Healthy);
    // An agent the pool did not launch keeps the hysteresis.
    let mut ext = Sim::new(Policy::Never);
    ext.s.ok_threshold = 2;
    ext.sweeps(4, Health::Dead);
    ext.sweep(Health::Healthy, None);
    assert_eq!(ext.rec.state, State::Dead);
    ext.sweep(Health::Healthy, None);
    assert_eq!(ext.rec.state, State::Healthy);
}

#[test]
fn an_issue_opens_when_the_agent_stays_dead_past_incident_after() {
    let mut sim = Sim::new(Policy::Ask);
    sim.s.dead_after = 0.0;
    sim.s.approval_timeout = 1e9;
    sim.sweep(Health::Dead, None);
    assert_eq!(opened(&sim), 0, "an approval request is not an issue");
    let due = next_due(&sim.rec, Policy::Ask, sim.last, &sim.s).unwrap();
    assert_eq!(due, sim.rec.dead_since.unwrap() + sim.s.incident_after);
    sim.after(due - sim.last, Health::Dead);
    assert_eq!(opened(&sim), 1);
    sim.sweeps(10, Health::Dead);
    assert_eq!(opened(&sim), 1);
}

#[test]
fn waits_say_what_and_until_when() {
    let s = Settings::default();
    let clock = |t: f64| format!("@{t:.0}");
    let mut rec = AgentRecord {
        state: State::Dead,
        dead_since: Some(100.0),
        first_seen: Some(0.0),
        pending: Some(Pending {
            requested_at: 400.0,
            deadline: 700.0,
        }),
        ..AgentRecord::default()
    };
    let w = wait(&rec, Policy::Ask, 450.0, &s).unwrap();
    assert_eq!(w.describe(450.0, &clock), "awaiting approval until @700");
    assert_eq!(next_due(&rec, Policy::Ask, 450.0, &s), Some(700.0));
    assert_eq!(
        wait(&rec, Policy::Never, 450.0, &s)
            .unwrap()
            .describe(450.0, &clock),
        "policy never: a human is needed"
    );
    rec.state = State::Escalated;
    rec.last_launch = Some(300.0);
    assert_eq!(
        wait(&rec, Policy::Auto, 450.0, &s)
            .unwrap()
            .describe(450.0, &clock),
        "escalated: a human is needed (one more try at @2100)",
        "no revive was spent: the escalation had another cause (a pre-flight)"
    );
    rec.attempts = vec![300.0; s.max_attempts as usize];
    assert_eq!(
        wait(&rec, Policy::Auto, 450.0, &s)
            .unwrap()
            .describe(450.0, &clock),
        "budget spent: a human is needed (one more try at @2100)"
    );
    rec.attempts.clear();
    rec.state = State::Dead;
    assert_eq!(
        wait(&rec, Policy::Auto, 200.0, &s)
            .unwrap()
            .describe(200.0, &clock),
        "heartbeat lost (inferred death): confirmed dead at @400"
    );
    assert_eq!(wait(&AgentRecord::default(), Policy::Auto, 1.0, &s), None);
}
