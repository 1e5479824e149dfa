//! What an agent that is not healthy waits for, and when it must be
//! stepped again: the event engine's timers come from [`next_due`], the
//! status page's and the log's "waiting for" lines from [`wait`].

use serde::Serialize;

use crate::machine::{backoff_until, slow_lane_due, unconfirmed};
use crate::{AgentRecord, Policy, Settings, State};

/// What a sick agent waits for. Times are epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    /// Its first start was launched: healthy on its first fresh heartbeat,
    /// failed if none lands by `until`.
    Starting {
        /// Launch time plus `revive_deadline`.
        until: f64,
    },
    /// A revive was launched: healthy on its first fresh heartbeat.
    Reviving {
        /// Which revive, in the episode.
        attempt: u32,
        /// Launch time plus `revive_deadline`.
        until: f64,
    },
    /// An inferred death inside the pool's start-up grace.
    StartupGrace {
        /// Epoch seconds when the start-up grace ends.
        until: f64,
    },
    /// An inferred death being confirmed (`dead_after`).
    Confirming {
        /// When it is confirmed.
        until: f64,
    },
    /// Backing off before the next revive.
    Backoff {
        /// When it may launch.
        until: f64,
        /// The revive it will be, counted in the attempt window.
        attempt: u32,
        /// `max_attempts` per window.
        max: u32,
        /// The budget's window, seconds.
        window: f64,
    },
    /// Awaiting a human's approval (policy `ask`).
    Approval {
        /// When the request expires.
        until: f64,
    },
    /// Escalated (the budget is spent, or the pre-flight failed): a human
    /// is needed.
    Human {
        /// The next slow-lane try (policy `auto` only).
        retry_at: Option<f64>,
        /// The restart budget is spent (else the escalation had another
        /// cause, e.g. a pre-flight that failed): the line says so only then.
        budget_spent: bool,
    },
    /// A human refused the revive for this episode.
    Denied,
    /// Policy `never`: the death is recorded, nobody revives it.
    Never,
}

impl Wait {
    /// When the wait ends by itself, if it does.
    pub fn until(&self) -> Option<f64> {
        match *self {
            Wait::Starting { until }
            | Wait::Reviving { until, .. }
            | Wait::StartupGrace { until }
            | Wait::Confirming { until }
            | Wait::Backoff { until, .. }
            | Wait::Approval { until } => Some(until),
            Wait::Human { retry_at, .. } => retry_at,
            Wait::Denied | Wait::Never => None,
        }
    }

    /// One line for people; `clock` renders a time (e.g. `18:03:12`).
    pub fn describe(&self, now: f64, clock: &dyn Fn(f64) -> String) -> String {
        let secs = |t: f64| format!("{:.0} s", (t - now).max(0.0).ceil());
        match *self {
            Wait::Starting { until } => format!(
                "starting: healthy on its first heartbeat, failed if none by {}",
                clock(until)
            ),
            Wait::Reviving { attempt, until } => format!(
                "revive attempt {attempt} launched: healthy on its first heartbeat, failed if none by {}",
                clock(until)
            ),
            Wait::StartupGrace { until } => format!("start-up grace until {}", clock(until)),
            Wait::Confirming { until } => format!(
                "heartbeat lost (inferred death): confirmed dead at {}",
                clock(until)
            ),
            Wait::Backoff {
                until,
                attempt,
                max,
                window,
            } => format!(
                "backoff {} until {} (attempt {attempt} of {max} in {})",
                secs(until),
                clock(until),
                window_text(window)
            ),
            Wait::Approval { until } => format!("awaiting approval until {}", clock(until)),
            Wait::Human {
                retry_at,
                budget_spent,
            } => {
                let why = if budget_spent {
                    "budget spent"
                } else {
                    "escalated"
                };
                match retry_at {
                    Some(t) => format!("{why}: a human is needed (one more try at {})", clock(t)),
                    None => format!("{why}: a human is needed"),
                }
            }
            Wait::Denied => "revive denied: a human said no for this episode".to_string(),
            Wait::Never => "policy never: a human is needed".to_string(),
        }
    }
}

fn window_text(w: f64) -> String {
    if w >= 3600.0 && w % 3600.0 == 0.0 {
        format!("{:.0} h", w / 3600.0)
    } else if w >= 60.0 && w % 60.0 == 0.0 {
        format!("{:.0} min", w / 60.0)
    } else {
        format!("{w:.0} s")
    }
}

/// What `rec` waits for at `now`; `None` when it is healthy, or nothing
/// but new evidence will move it.
pub fn wait(rec: &AgentRecord, policy: Policy, now: f64, s: &Settings) -> Option<Wait> {
    let revive_until = rec.last_launch.map_or(now, |t| t + s.revive_deadline);
    match rec.state {
        State::Healthy | State::Unknown | State::Degraded => None,
        State::Reviving if rec.starting => Some(Wait::Starting {
            until: revive_until,
        }),
        State::Reviving => Some(Wait::Reviving {
            attempt: rec.episode_attempts,
            until: revive_until,
        }),
        State::Escalated => Some(Wait::Human {
            retry_at: (policy == Policy::Auto && !rec.denied).then(|| slow_lane_due(rec, s)),
            budget_spent: rec.attempts.len() as u32 >= s.max_attempts,
        }),
        State::Dead => {
            let dead_since = rec.dead_since?;
            if unconfirmed(rec, dead_since, now, s) {
                let grace = rec.first_seen.map_or(now, |t| t + s.startup_grace);
                let confirm = dead_since + s.dead_after;
                return Some(if !rec.confirmed && grace > now && grace >= confirm {
                    Wait::StartupGrace { until: grace }
                } else {
                    Wait::Confirming {
                        until: confirm.max(grace),
                    }
                });
            }
            match policy {
                Policy::Never => Some(Wait::Never),
                Policy::Ask if rec.denied => Some(Wait::Denied),
                Policy::Ask if !rec.approved => {
                    rec.pending.map(|p| Wait::Approval { until: p.deadline })
                }
                Policy::Ask | Policy::Auto => {
                    let used = rec
                        .attempts
                        .iter()
                        .filter(|t| now - **t < s.attempt_window)
                        .count() as u32;
                    if used >= s.max_attempts {
                        return Some(Wait::Human {
                            retry_at: None,
                            budget_spent: true,
                        });
                    }
                    backoff_until(rec, s)
                        .filter(|t| *t > now)
                        .map(|until| Wait::Backoff {
                            until,
                            attempt: used + 1,
                            max: s.max_attempts,
                            window: s.attempt_window,
                        })
                }
            }
        }
    }
}

/// When `rec` must be stepped again even if nothing about the agent
/// changes: a wait ends, an incident is due, a healthy agent's failure is
/// to be confirmed. `None`: only new evidence (a heartbeat, an exit, a
/// heartbeat going stale, which the caller times) can move it.
pub fn next_due(rec: &AgentRecord, policy: Policy, now: f64, s: &Settings) -> Option<f64> {
    let mut due: Option<f64> = None;
    let mut at = |t: f64| due = Some(due.map_or(t, |d: f64| d.min(t)));
    if rec.state == State::Healthy {
        if rec.fail_streak > 0 {
            at(now + s.confirm_every);
        }
    } else if let Some(w) = wait(rec, policy, now, s).and_then(|w| w.until()) {
        at(w);
    }
    if let Some(d) = rec.dead_since
        && !rec.incident_open
        && rec.state != State::Healthy
    {
        at(d + s.incident_after);
    }
    // A wait that ended already is due now, not in the past.
    due.map(|d| d.max(now))
}
