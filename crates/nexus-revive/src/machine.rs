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

/// Thresholds and budgets, in seconds. Defaults are the issue's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Consecutive failing sweeps before a healthy agent is declared sick.
    pub fail_threshold: u32,
    /// Consecutive healthy sweeps before a sick agent is declared healthy.
    pub ok_threshold: u32,
    /// How long an agent must be dead before its policy acts.
    pub dead_after: f64,
    /// After an agent is first seen, no policy acts for this long.
    pub startup_grace: f64,
    /// At most this many launches per `attempt_window`.
    pub max_attempts: u32,
    /// The sliding window of `max_attempts`.
    pub attempt_window: f64,
    /// The first backoff; doubles per attempt in the episode.
    pub backoff_initial: f64,
    /// The backoff never exceeds this.
    pub backoff_cap: f64,
    /// Healthy this long: the attempt history is forgotten.
    pub backoff_reset_after: f64,
    /// A launched agent must be healthy within this, or the attempt failed.
    pub revive_deadline: f64,
    /// Once escalated, one more launch every this long (never gives up).
    pub slow_lane: f64,
    /// How long an approval request waits for an answer.
    pub approval_timeout: f64,
    /// What an unanswered request means.
    pub ask_default: AskDefault,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            fail_threshold: 3,
            ok_threshold: 2,
            dead_after: 300.0,
            startup_grace: 120.0,
            max_attempts: 3,
            attempt_window: 3600.0,
            backoff_initial: 10.0,
            backoff_cap: 300.0,
            backoff_reset_after: 600.0,
            revive_deadline: 120.0,
            slow_lane: 1800.0,
            approval_timeout: 300.0,
            ask_default: AskDefault::Deny,
        }
    }
}

impl Settings {
    /// The wait before launch number `attempt` (1-based, counted since the
    /// agent was last healthy for `backoff_reset_after`): 0 for the first,
    /// then `backoff_initial` doubling up to `backoff_cap`.
    pub fn backoff(&self, attempt: u32) -> f64 {
        if attempt <= 1 {
            return 0.0;
        }
        let exp = (attempt - 2).min(30);
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
    /// The last launch.
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
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The state changed (log it, append an event).
    Transition {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
    /// Open the episode's incident (at most once per episode).
    OpenIncident {
        /// Why.
        reason: String,
    },
    /// Add to the open incident.
    Comment {
        /// What happened.
        text: String,
    },
    /// The agent recovered: close the incident.
    CloseIncident {
        /// Whether our launches brought it back (else it came back by itself).
        revived: bool,
        /// How long the episode lasted.
        down_seconds: f64,
    },
    /// Ask a human (non-blocking; answer through `step`'s `approval`).
    RequestApproval {
        /// When the request expires.
        deadline: f64,
    },
    /// Run the pre-flight check, then launch; report with [`launched`].
    Launch {
        /// The episode's attempt number, 1-based.
        attempt: u32,
        /// A slow-lane retry after escalation.
        slow_lane: bool,
    },
    /// Tell a human: the budget is spent or the pre-flight failed.
    Escalate {
        /// Why.
        reason: String,
    },
}

/// How a launch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchOutcome {
    /// The process started.
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

/// One sweep for one agent.
pub fn step(
    rec: &mut AgentRecord,
    health: Health,
    policy: Policy,
    now: f64,
    approval: Option<Approval>,
    s: &Settings,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let (health, certain) = match health {
        Health::Gone => (Health::Dead, true),
        Health::ProcessGone => (Health::Degraded, true),
        h => (h, false),
    };
    rewind(rec, now);
    rec.first_seen.get_or_insert(now);
    rec.attempts.retain(|t| now - t < s.attempt_window);
    match health {
        Health::Healthy => {
            rec.ok_streak += 1;
            rec.fail_streak = 0;
        }
        Health::Degraded | Health::Dead => {
            rec.fail_streak += 1;
            rec.ok_streak = 0;
        }
        Health::Unknown | Health::Gone | Health::ProcessGone => {}
    }
    if certain {
        rec.fail_streak = rec.fail_streak.max(s.fail_threshold);
    }

    // Hysteresis: the assessed health moves the state only once confirmed.
    let next = match (rec.state, health) {
        (_, Health::Unknown) => rec.state,
        (State::Unknown, h) => from_health(h),
        (State::Healthy, Health::Healthy) => State::Healthy,
        (State::Healthy, h) if rec.fail_streak >= s.fail_threshold => from_health(h),
        (State::Healthy, _) => State::Healthy,
        (_, Health::Healthy) if rec.ok_streak >= s.ok_threshold => State::Healthy,
        (State::Degraded, Health::Dead) if rec.fail_streak >= s.fail_threshold => State::Dead,
        (State::Dead, Health::Degraded) => State::Degraded,
        (State::Reviving, h) if rec.last_launch.is_some_and(|t| now - t > s.revive_deadline) => {
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
        if rec.incident_open {
            actions.push(Action::CloseIncident {
                revived: rec.episode_attempts > 0,
                down_seconds: rec.episode_start.map_or(0.0, |t| now - t),
            });
        }
        set_state(rec, State::Healthy, &mut actions);
        end_episode(rec, now);
        return actions;
    }
    if next == State::Healthy {
        if rec
            .healthy_since
            .is_some_and(|t| now - t >= s.backoff_reset_after)
        {
            rec.backoff_level = 0;
        }
        return actions;
    }
    if rec.episode_start.is_none() && next != State::Unknown {
        rec.episode_start = Some(now);
    }
    if rec.state == State::Reviving && next == State::Dead {
        actions.push(Action::Comment {
            text: format!(
                "revive attempt {} did not become healthy within {:.0}s",
                rec.episode_attempts, s.revive_deadline
            ),
        });
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
        Health::Degraded => State::Degraded,
        Health::Dead => State::Dead,
        Health::Unknown | Health::Gone | Health::ProcessGone => State::Unknown,
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
    let in_grace = rec.first_seen.is_some_and(|t| now - t < s.startup_grace);
    if now - dead_since < s.dead_after || in_grace {
        return;
    }
    if rec.state == State::Escalated {
        // Slow lane: one more try now and then, for auto only; ask and never
        // already have a human in the loop.
        let due = rec
            .last_launch
            .or(rec.escalated_at)
            .is_none_or(|t| now - t >= s.slow_lane);
        if policy == Policy::Auto && !rec.denied && due {
            actions.push(Action::Launch {
                attempt: rec.episode_attempts + 1,
                slow_lane: true,
            });
        }
        return;
    }
    if rec.state != State::Dead {
        return;
    }
    let dead_for = now - dead_since;
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
        Policy::Auto => {
            if !rec.incident_open {
                open_incident(
                    rec,
                    format!("agent dead for {dead_for:.0}s; policy auto: reviving"),
                    actions,
                );
            }
            try_launch(rec, now, s, actions);
        }
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
                    open_incident(
                        rec,
                        format!("agent dead for {dead_for:.0}s; policy ask: approval requested"),
                        actions,
                    );
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
                    actions.push(Action::Comment {
                        text: "revive denied: death recorded, no revive this episode".to_string(),
                    });
                }
                (Some(p), None) if now >= p.deadline => {
                    rec.pending = None;
                    match s.ask_default {
                        AskDefault::Deny => {
                            rec.denied = true;
                            actions.push(Action::Comment {
                                text: "approval timed out: death recorded, no revive this episode"
                                    .to_string(),
                            });
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

fn try_launch(rec: &mut AgentRecord, now: f64, s: &Settings, actions: &mut Vec<Action>) {
    if rec.attempts.len() as u32 >= s.max_attempts {
        escalate(
            rec,
            now,
            format!(
                "restart budget spent: {} launch(es) in {:.0}s; a human is needed",
                rec.attempts.len(),
                s.attempt_window
            ),
            actions,
        );
        return;
    }
    let wait = s.backoff(rec.backoff_level + 1);
    if rec.last_launch.is_some_and(|t| now - t < wait) {
        return; // backing off
    }
    actions.push(Action::Launch {
        attempt: rec.episode_attempts + 1,
        slow_lane: false,
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

/// Records how a [`Action::Launch`] went.
pub fn launched(
    rec: &mut AgentRecord,
    now: f64,
    outcome: LaunchOutcome,
    _s: &Settings,
) -> Vec<Action> {
    let mut actions = Vec::new();
    match outcome {
        LaunchOutcome::PreflightFailed(why) => {
            escalate(
                rec,
                now,
                format!("pre-flight check failed, not reviving: {why}"),
                &mut actions,
            );
            // The slow lane waits a full period before trying again.
            rec.last_launch = Some(now);
        }
        LaunchOutcome::Started | LaunchOutcome::Failed(_) => {
            rec.attempts.push(now);
            rec.episode_attempts += 1;
            rec.backoff_level += 1;
            rec.last_launch = Some(now);
            let k = rec.episode_attempts;
            match outcome {
                LaunchOutcome::Failed(why) => actions.push(Action::Comment {
                    text: format!("revive attempt {k} failed to start: {why}"),
                }),
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
