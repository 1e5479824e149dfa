//! The per-agent state machine (docs/SPEC.md §6.3-§6.4 corrected): hysteresis,
//! death episodes, policies, the restart budget with backoff, escalation
//! with a slow lane, and non-blocking approvals.
//!
//! [`step`] is called once per sweep with the agent's [`Health`]; it updates
//! the [`AgentRecord`] (which the caller persists) and returns [`Action`]s
//! for the caller to carry out. A [`Action::Launch`] is answered with
//! [`launched`] once the caller ran the pre-flight check and the launch.

use serde::{Deserialize, Serialize};

use crate::{Health, Policy};

/// What happens when an approval request expires unanswered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AskDefault {
    /// Record the death; no revive this episode (a human stays in the loop).
    #[default]
    Deny,
    /// Revive anyway.
    Revive,
}

/// Thresholds and budgets, in seconds. The defaults are what a user gets
/// with no tuning (README, "How fast the pool brings an agent back").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Consecutive failing sweeps before a healthy agent is declared sick
    /// (on inferred evidence only: a seen exit or hang is sick at once).
    pub fail_threshold: u32,
    /// Consecutive healthy sweeps before an agent the pool did not launch
    /// is declared healthy again. A launched agent is healthy on its first
    /// fresh heartbeat, whatever this says.
    pub ok_threshold: u32,
    /// How long an *inferred* death (a stale heartbeat of a process the
    /// pool cannot see, a gateway that stopped answering) must last before
    /// its policy acts. A seen exit or hang does not wait.
    pub dead_after: f64,
    /// After an agent is first seen, no policy acts on an inferred death
    /// for this long.
    pub startup_grace: f64,
    /// At most this many revives per `attempt_window` (a first start is
    /// not a revive).
    pub max_attempts: u32,
    /// The sliding window of `max_attempts`.
    pub attempt_window: f64,
    /// The wait between the first start (or the last launch) and the first
    /// revive; doubles per revive since the agent was last healthy for
    /// `backoff_reset_after`. Counted from the previous launch, so an agent
    /// that ran for a while is relaunched at once.
    pub backoff_initial: f64,
    /// The backoff never exceeds this.
    pub backoff_cap: f64,
    /// Healthy this long: the backoff and the attempt budget are given back
    /// (a budget is for crash loops, not for an agent that dies once a day).
    pub backoff_reset_after: f64,
    /// A launched agent must be healthy within this, or the attempt failed.
    pub revive_deadline: f64,
    /// Once escalated, one more launch every this long (never gives up).
    pub slow_lane: f64,
    /// How long an approval request waits for an answer.
    pub approval_timeout: f64,
    /// What an unanswered request means.
    pub ask_default: AskDefault,
    /// An issue is for a human: it opens when a revive failed, the budget is
    /// spent, the policy is `never`, a revive was refused, or the agent has
    /// been dead this long whatever is going on.
    pub incident_after: f64,
    /// A healthy agent whose failure awaits confirmation (`fail_threshold`)
    /// is stepped again this soon.
    pub confirm_every: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            fail_threshold: 3,
            ok_threshold: 1,
            dead_after: 300.0,
            startup_grace: 120.0,
            max_attempts: 5,
            attempt_window: 3600.0,
            backoff_initial: 1.0,
            backoff_cap: 300.0,
            backoff_reset_after: 60.0,
            revive_deadline: 120.0,
            slow_lane: 1800.0,
            approval_timeout: 300.0,
            ask_default: AskDefault::Deny,
            incident_after: 600.0,
            confirm_every: 0.25,
        }
    }
}

impl Settings {
    /// The wait, counted from the previous launch, before revive number
    /// `n` (1-based, counted since the agent was last healthy for
    /// `backoff_reset_after`): `backoff_initial` doubling up to
    /// `backoff_cap`; 0 for `n` = 0.
    pub fn backoff(&self, n: u32) -> f64 {
        if n == 0 {
            return 0.0;
        }
        let exp = (n - 1).min(30);
        (self.backoff_initial * f64::from(1u32 << exp)).min(self.backoff_cap)
    }
}

/// The persisted state of an agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not assessed yet.
    #[default]
    Unknown,
    /// Alive.
    Healthy,
    /// Alive, something around it fails.
    Degraded,
    /// Not alive.
    Dead,
    /// Launched; waiting for it to become healthy.
    Reviving,
    /// The budget is spent or the pre-flight failed: a human is needed.
    Escalated,
}

impl State {
    /// The lower-case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Dead => "dead",
            State::Reviving => "reviving",
            State::Escalated => "escalated",
        }
    }
}

/// An approval request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// When it was sent.
    pub requested_at: f64,
    /// When it expires.
    pub deadline: f64,
}

/// An answer to an approval request, read by the caller from its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// `revive <name>`.
    Approved,
    /// `skip <name>`: no revive for the rest of the episode.
    Denied,
}

/// Everything the machine remembers about one agent (persist it as is).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentRecord {
    /// Current state.
    pub state: State,
    /// First sweep that saw the agent.
    pub first_seen: Option<f64>,
    /// Start of the current death episode (first non-healthy state).
    pub episode_start: Option<f64>,
    /// When the agent was declared dead in this episode.
    pub dead_since: Option<f64>,
    /// Consecutive failing sweeps.
    pub fail_streak: u32,
    /// Consecutive healthy sweeps.
    pub ok_streak: u32,
    /// Launch times inside the attempt window.
    pub attempts: Vec<f64>,
    /// Launches in this episode.
    pub episode_attempts: u32,
    /// Launches since the agent was last healthy for `backoff_reset_after`:
    /// the backoff grows with it, so a flapping agent does not reset it.
    pub backoff_level: u32,
    /// Epoch seconds of the most recent launch (first start or revive).
    pub last_launch: Option<f64>,
    /// Healthy since (for the backoff reset).
    pub healthy_since: Option<f64>,
    /// An approval request in flight.
    pub pending: Option<Pending>,
    /// Revive refused (skip, or expiry with `ask_default = deny`) for the episode.
    pub denied: bool,
    /// Revive approved (or expiry with `ask_default = revive`) for the episode:
    /// later attempts in the same episode need no new request.
    pub approved: bool,
    /// An incident is open for this episode.
    pub incident_open: bool,
    /// When the episode escalated.
    pub escalated_at: Option<f64>,
    /// This episode's death was seen (the pool's own process exited or
    /// hung), not inferred: no `dead_after` wait, no start-up grace.
    pub confirmed: bool,
    /// The launch in flight is the agent's first start in this pool, not a
    /// revive: it spends no budget, and its readiness ends no episode.
    pub starting: bool,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The state changed (log it, append an event).
    Transition {
        /// State before this step.
        from: State,
        /// State after this step.
        to: State,
    },
    /// Open the episode's incident (at most once per episode).
    OpenIncident {
        /// One line for the issue, e.g. `... did not become healthy within 120s`.
        reason: String,
    },
    /// Add to the open incident.
    Comment {
        /// What happened.
        text: String,
    },
    /// The agent is healthy again after a death episode; close the
    /// incident if `incident` (one was opened for it).
    Recovered {
        /// Our launches brought it back (else it came back by itself).
        revived: bool,
        /// The launch that did, 1-based in the episode (0: none).
        attempt: u32,
        /// How long the episode lasted.
        down_seconds: f64,
        /// An incident is open for the episode: close it.
        incident: bool,
    },
    /// Ask a human (non-blocking; answer through `step`'s `approval`).
    RequestApproval {
        /// When the request expires.
        deadline: f64,
    },
    /// Run the pre-flight check, stop what is left of the agent's process
    /// (a hung one), then launch; report with [`launched`].
    Launch {
        /// The episode's attempt number, 1-based (0 for a first start).
        attempt: u32,
        /// A slow-lane retry after escalation.
        slow_lane: bool,
        /// The agent's first start in this pool (supervisord's `autostart`):
        /// not a revive, spends no budget.
        #[serde(default)]
        first_start: bool,
    },
    /// Tell a human: the budget is spent or the pre-flight failed.
    Escalate {
        /// One line for the human, e.g. `restart budget spent: 5 revive(s) in 3600s; ...`.
        reason: String,
    },
}

/// How a launch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchOutcome {
    /// The process was spawned; health is judged by later sweeps.
    Started,
    /// It could not be started (counts as an attempt).
    Failed(String),
    /// The pre-flight check failed: not launched, escalated at once (a broken
    /// deploy must not become a crash loop).
    PreflightFailed(String),
}

fn set_state(rec: &mut AgentRecord, to: State, actions: &mut Vec<Action>) {
    if rec.state != to {
        actions.push(Action::Transition {
            from: rec.state,
            to,
        });
        rec.state = to;
    }
}

/// One step for one agent: on every full sweep, and whenever the engine
/// learns something about it (a heartbeat landed, its process exited or
/// hung) or the time [`crate::next_due`] named came.
pub fn step(
    rec: &mut AgentRecord,
    health: Health,
    policy: Policy,
    now: f64,
    approval: Option<Approval>,
    s: &Settings,
) -> Vec<Action> {
    let mut actions = Vec::new();
    rewind(rec, now);
    rec.first_seen.get_or_insert(now);
    rec.attempts.retain(|t| now - t < s.attempt_window);
    if rec.state == State::Healthy
        && rec
            .healthy_since
            .is_some_and(|t| now - t >= s.backoff_reset_after)
    {
        // Healthy long enough: this was no crash loop.
        rec.backoff_level = 0;
        rec.attempts.clear();
    }
    // supervisord's `autostart`: an `auto` agent that does not run when
    // the pool first meets it is started at once, as a start, not a revive.
    if rec.state == State::Unknown && health == Health::NotRunning && policy == Policy::Auto {
        actions.push(Action::Launch {
            attempt: 0,
            slow_lane: false,
            first_start: true,
        });
        return actions;
    }
    let launched_lately = rec
        .last_launch
        .is_some_and(|t| now - t <= s.revive_deadline);
    // (health, certain: no confirmation needed, seen: not inferred)
    let (health, certain, seen) = match health {
        Health::Gone => (Health::Dead, true, true),
        // A process just launched has until the revive deadline to beat.
        Health::Hung if rec.state == State::Reviving && launched_lately => {
            (Health::Unknown, false, false)
        }
        Health::Hung => (Health::Dead, true, true),
        Health::ProcessGone => (Health::Degraded, true, false),
        Health::NotRunning => (Health::Dead, false, false),
        h => (h, false, false),
    };
    match health {
        Health::Healthy => {
            rec.ok_streak += 1;
            rec.fail_streak = 0;
        }
        Health::Degraded | Health::Dead => {
            rec.fail_streak += 1;
            rec.ok_streak = 0;
        }
        _ => {}
    }
    if certain {
        rec.fail_streak = rec.fail_streak.max(s.fail_threshold);
    }

    // Hysteresis on healthy → sick only, and only for inferred evidence.
    let next = match (rec.state, health) {
        (_, Health::Unknown) => rec.state,
        (State::Unknown, h) => from_health(h),
        (State::Healthy, Health::Healthy) => State::Healthy,
        (State::Healthy, h) if rec.fail_streak >= s.fail_threshold => from_health(h),
        (State::Healthy, _) => State::Healthy,
        // Readiness is an event: a launched agent is healthy on its first
        // fresh heartbeat.
        (State::Reviving, Health::Healthy) => State::Healthy,
        (_, Health::Healthy) if rec.ok_streak >= s.ok_threshold => State::Healthy,
        (State::Degraded, Health::Dead) if rec.fail_streak >= s.fail_threshold => State::Dead,
        (State::Dead, Health::Degraded) => State::Degraded,
        (State::Reviving, Health::Dead) if certain => State::Dead,
        (State::Reviving, h) if !launched_lately => {
            if h == Health::Dead {
                State::Dead
            } else {
                State::Degraded
            }
        }
        (state, _) => state,
    };

    let was_healthy = rec.state == State::Healthy;
    if next == State::Healthy && !was_healthy {
        if let Some(start) = rec.episode_start {
            actions.push(Action::Recovered {
                revived: rec.episode_attempts > 0,
                attempt: rec.episode_attempts,
                down_seconds: now - start,
                incident: rec.incident_open,
            });
        }
        set_state(rec, State::Healthy, &mut actions);
        end_episode(rec, now);
        return actions;
    }
    if next == State::Healthy {
        return actions;
    }
    let still_starting = rec.starting && next == State::Reviving;
    if rec.episode_start.is_none() && next != State::Unknown && !still_starting {
        rec.episode_start = Some(now);
    }
    if rec.state == State::Reviving && matches!(next, State::Dead | State::Degraded) {
        // A launch that did not become healthy: a revive failed, a human
        // should know (one incident per episode; later ones comment).
        let what = if std::mem::take(&mut rec.starting) {
            "the first start".to_string()
        } else {
            format!("revive attempt {}", rec.episode_attempts)
        };
        let why = if seen {
            "ended before its first heartbeat".to_string()
        } else {
            format!("did not become healthy within {:.0}s", s.revive_deadline)
        };
        open_incident(rec, format!("{what} {why}"), &mut actions);
    }
    // Escalated stays escalated until healthy.
    let next = if rec.state == State::Escalated {
        State::Escalated
    } else {
        next
    };
    set_state(rec, next, &mut actions);
    if matches!(rec.state, State::Dead | State::Escalated) {
        rec.dead_since.get_or_insert(now);
        if seen {
            rec.confirmed = true;
        }
    }
    apply_policy(rec, policy, now, approval, s, &mut actions);
    actions
}

/// The wall clock was set back (or a record came from a host whose clock
/// ran ahead): every time in the record later than `now` becomes `now`.
/// Without this, `now - t` stays negative until the clock catches up, so
/// `dead_after`, the backoff and `revive_deadline` would hold a dead agent
/// unrevived (or stuck in `reviving`) for as long as the jump. Clamping
/// restarts those timers at most once, a bounded delay; attempts are kept
/// (clamped, never dropped), so the budget still holds.
fn rewind(rec: &mut AgentRecord, now: f64) {
    let clamp = |t: &mut f64| {
        if *t > now {
            *t = now;
        }
    };
    for t in [
        &mut rec.first_seen,
        &mut rec.episode_start,
        &mut rec.dead_since,
        &mut rec.last_launch,
        &mut rec.healthy_since,
        &mut rec.escalated_at,
    ]
    .into_iter()
    .flatten()
    {
        clamp(t);
    }
    rec.attempts.iter_mut().for_each(clamp);
    if let Some(p) = &mut rec.pending
        && p.requested_at > now
    {
        // The request keeps its full timeout from now.
        p.deadline -= p.requested_at - now;
        p.requested_at = now;
    }
}

fn from_health(h: Health) -> State {
    match h {
        Health::Healthy => State::Healthy,
        Health::Degraded | Health::ProcessGone => State::Degraded,
        Health::Dead | Health::Gone | Health::Hung | Health::NotRunning => State::Dead,
        Health::Unknown => State::Unknown,
    }
}

fn end_episode(rec: &mut AgentRecord, now: f64) {
    rec.episode_start = None;
    rec.dead_since = None;
    rec.episode_attempts = 0;
    rec.pending = None;
    rec.denied = false;
    rec.approved = false;
    rec.incident_open = false;
    rec.escalated_at = None;
    rec.confirmed = false;
    rec.starting = false;
    rec.healthy_since = Some(now);
}

fn open_incident(rec: &mut AgentRecord, reason: String, actions: &mut Vec<Action>) {
    if !rec.incident_open {
        rec.incident_open = true;
        actions.push(Action::OpenIncident { reason });
    } else {
        actions.push(Action::Comment { text: reason });
    }
}

/// An inferred death still waiting for its confirmation: inside the
/// start-up grace, or dead for less than `dead_after`.
pub(crate) fn unconfirmed(rec: &AgentRecord, dead_since: f64, now: f64, s: &Settings) -> bool {
    if rec.confirmed {
        return false;
    }
    let in_grace = rec.first_seen.is_some_and(|t| now - t < s.startup_grace);
    now - dead_since < s.dead_after || in_grace
}

fn apply_policy(
    rec: &mut AgentRecord,
    policy: Policy,
    now: f64,
    approval: Option<Approval>,
    s: &Settings,
    actions: &mut Vec<Action>,
) {
    let Some(dead_since) = rec.dead_since else {
        return;
    };
    let dead_for = now - dead_since;
    if !rec.incident_open && dead_for >= s.incident_after {
        open_incident(
            rec,
            format!("agent dead for {dead_for:.0}s, not back yet (policy {policy})"),
            actions,
        );
    }
    if unconfirmed(rec, dead_since, now, s) {
        return;
    }
    if rec.state == State::Escalated {
        // Slow lane: one more try now and then, for auto only; ask and never
        // already have a human in the loop.
        if policy == Policy::Auto && !rec.denied && slow_lane_due(rec, s) <= now {
            actions.push(Action::Launch {
                attempt: rec.episode_attempts + 1,
                slow_lane: true,
                first_start: false,
            });
        }
        return;
    }
    if rec.state != State::Dead {
        return;
    }
    match policy {
        Policy::Never => {
            if !rec.incident_open {
                open_incident(
                    rec,
                    format!("agent dead for {dead_for:.0}s; policy never: no revive"),
                    actions,
                );
            }
        }
        Policy::Auto => try_launch(rec, now, s, actions),
        Policy::Ask => {
            if rec.denied {
                return;
            }
            if rec.approved {
                try_launch(rec, now, s, actions);
                return;
            }
            match (rec.pending, approval) {
                (None, _) => {
                    let deadline = now + s.approval_timeout;
                    rec.pending = Some(Pending {
                        requested_at: now,
                        deadline,
                    });
                    actions.push(Action::Comment {
                        text: format!(
                            "agent dead for {dead_for:.0}s; policy ask: approval requested"
                        ),
                    });
                    actions.push(Action::RequestApproval { deadline });
                }
                (Some(_), Some(Approval::Approved)) => {
                    rec.pending = None;
                    rec.approved = true;
                    actions.push(Action::Comment {
                        text: "revive approved".to_string(),
                    });
                    try_launch(rec, now, s, actions);
                }
                (Some(_), Some(Approval::Denied)) => {
                    rec.pending = None;
                    rec.denied = true;
                    open_incident(
                        rec,
                        "revive denied: death recorded, no revive this episode".to_string(),
                        actions,
                    );
                }
                (Some(p), None) if now >= p.deadline => {
                    rec.pending = None;
                    match s.ask_default {
                        AskDefault::Deny => {
                            rec.denied = true;
                            open_incident(
                                rec,
                                "approval timed out: death recorded, no revive this episode"
                                    .to_string(),
                                actions,
                            );
                        }
                        AskDefault::Revive => {
                            rec.approved = true;
                            actions.push(Action::Comment {
                                text: "approval timed out: reviving (ask_default = revive)"
                                    .to_string(),
                            });
                            try_launch(rec, now, s, actions);
                        }
                    }
                }
                (Some(_), None) => {}
            }
        }
    }
}

/// When an escalated agent's next slow-lane launch is due.
pub(crate) fn slow_lane_due(rec: &AgentRecord, s: &Settings) -> f64 {
    rec.last_launch
        .or(rec.escalated_at)
        .map_or(f64::NEG_INFINITY, |t| t + s.slow_lane)
}

/// When the next revive may launch (the backoff, from the last launch).
pub(crate) fn backoff_until(rec: &AgentRecord, s: &Settings) -> Option<f64> {
    let wait = s.backoff(rec.backoff_level + 1);
    rec.last_launch.map(|t| t + wait)
}

fn try_launch(rec: &mut AgentRecord, now: f64, s: &Settings, actions: &mut Vec<Action>) {
    if rec.attempts.len() as u32 >= s.max_attempts {
        escalate(
            rec,
            now,
            format!(
                "restart budget spent: {} revive(s) in {:.0}s; a human is needed",
                rec.attempts.len(),
                s.attempt_window
            ),
            actions,
        );
        return;
    }
    if backoff_until(rec, s).is_some_and(|t| now < t) {
        return; // backing off
    }
    actions.push(Action::Launch {
        attempt: rec.episode_attempts + 1,
        slow_lane: false,
        first_start: false,
    });
}

fn escalate(rec: &mut AgentRecord, now: f64, reason: String, actions: &mut Vec<Action>) {
    if rec.escalated_at.is_none() {
        rec.escalated_at = Some(now);
        set_state(rec, State::Escalated, actions);
        open_incident(rec, reason.clone(), actions);
        actions.push(Action::Escalate { reason });
    }
}

/// Records how a [`Action::Launch`] went. A first start (the launch
/// [`step`] asked for while the record was still `unknown`) spends no
/// budget.
pub fn launched(
    rec: &mut AgentRecord,
    now: f64,
    outcome: LaunchOutcome,
    _s: &Settings,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let first_start = rec.state == State::Unknown;
    match outcome {
        LaunchOutcome::PreflightFailed(why) => {
            rec.episode_start.get_or_insert(now);
            rec.dead_since.get_or_insert(now);
            escalate(
                rec,
                now,
                format!("pre-flight check failed, not reviving: {why}"),
                &mut actions,
            );
            // The slow lane waits a full period before trying again.
            rec.last_launch = Some(now);
        }
        LaunchOutcome::Failed(why) if first_start => {
            rec.last_launch = Some(now);
            set_state(rec, State::Dead, &mut actions);
            rec.episode_start = Some(now);
            rec.dead_since = Some(now);
            rec.confirmed = true;
            open_incident(rec, format!("the first start failed: {why}"), &mut actions);
        }
        LaunchOutcome::Started if first_start => {
            rec.last_launch = Some(now);
            rec.starting = true;
            actions.push(Action::Comment {
                text: "first start launched".to_string(),
            });
            set_state(rec, State::Reviving, &mut actions);
        }
        LaunchOutcome::Started | LaunchOutcome::Failed(_) => {
            rec.attempts.push(now);
            rec.episode_attempts += 1;
            rec.backoff_level += 1;
            rec.last_launch = Some(now);
            rec.starting = false;
            let k = rec.episode_attempts;
            match outcome {
                LaunchOutcome::Failed(why) => open_incident(
                    rec,
                    format!("revive attempt {k} failed to start: {why}"),
                    &mut actions,
                ),
                _ => {
                    actions.push(Action::Comment {
                        text: format!("revive attempt {k} launched"),
                    });
                    if rec.state != State::Escalated {
                        set_state(rec, State::Reviving, &mut actions);
                    }
                }
            }
        }
    }
    actions
}
