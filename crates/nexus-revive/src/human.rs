//! What a human asks for from the status page, decided like everything
//! else here: on the record, with no I/O. Approve and deny are not here:
//! they are answers to a request ([`crate::Approval`]), whichever channel
//! carries them. A retry overrides the budget, the backoff and the policy
//! (a human chose it) but not the facts: it needs a dead or escalated
//! agent and no launch in flight. An acknowledgement is the caller's to
//! keep (it costs the record nothing) until the episode ends; it is
//! handed in, so a second one is refused.

use crate::machine::{Action, AgentRecord, State};

/// A human's command about one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Launch it now, whatever the backoff, the budget or the policy says.
    RetryNow,
    /// "I have seen it": recorded on the episode, shown beside it.
    Acknowledge,
}

impl Command {
    /// `retry` or `acknowledge`, as the page and the events say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::RetryNow => "retry",
            Command::Acknowledge => "acknowledge",
        }
    }
}

/// Why a command was not carried out, in the words the page shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The agent is healthy (or not judged yet): nothing to retry or acknowledge.
    #[error("it is {0}: nothing to do")]
    NothingToDo(&'static str),
    /// A launch is in flight; its outcome comes first.
    #[error("a launch is in flight: wait for its outcome")]
    Launching,
    /// Only a dead or escalated agent is retried (a degraded one still runs).
    #[error("it is degraded, not dead: its process still runs")]
    Degraded,
    /// This episode is acknowledged already.
    #[error("acknowledged already by {0}")]
    Acknowledged(String),
}

/// Carries out `cmd` from `by` on `rec` at `now` (`acknowledged`: who
/// acknowledged the episode already, if anyone): the actions for the
/// caller (a launch to run, a comment to note; for an acknowledgement the
/// caller keeps `by` until the episode ends), or why not.
pub fn command(
    rec: &mut AgentRecord,
    cmd: Command,
    by: &str,
    acknowledged: Option<&str>,
    now: f64,
) -> Result<Vec<Action>, Refused> {
    match rec.state {
        State::Healthy | State::Unknown => return Err(Refused::NothingToDo(rec.state.as_str())),
        State::Reviving => return Err(Refused::Launching),
        _ => {}
    }
    match cmd {
        Command::RetryNow => {
            if rec.state == State::Degraded {
                return Err(Refused::Degraded);
            }
            // A retry is a yes to a request in flight, and lifts a "skip".
            rec.pending = None;
            rec.denied = false;
            rec.approved = true;
            rec.episode_start.get_or_insert(now);
            Ok(vec![
                Action::Comment {
                    text: format!("retry now, asked by {by}"),
                },
                Action::Launch {
                    attempt: rec.episode_attempts + 1,
                    slow_lane: rec.state == State::Escalated,
                    first_start: false,
                },
            ])
        }
        Command::Acknowledge => {
            if let Some(who) = acknowledged {
                return Err(Refused::Acknowledged(who.to_string()));
            }
            Ok(vec![Action::Comment {
                text: format!("acknowledged by {by}"),
            }])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: State) -> AgentRecord {
        AgentRecord {
            state,
            episode_start: Some(10.0),
            episode_attempts: 5,
            ..AgentRecord::default()
        }
    }

    #[test]
    fn a_retry_launches_an_escalated_agent_on_its_slow_lane_and_a_dead_one_at_once() {
        let mut r = rec(State::Escalated);
        r.denied = true;
        let a = command(&mut r, Command::RetryNow, "127.0.0.1", None, 50.0).unwrap();
        assert_eq!(
            a[1],
            Action::Launch {
                attempt: 6,
                slow_lane: true,
                first_start: false
            }
        );
        assert!(r.approved && !r.denied);
        let mut r = rec(State::Dead);
        r.pending = Some(crate::Pending {
            requested_at: 1.0,
            deadline: 99.0,
        });
        let a = command(&mut r, Command::RetryNow, "ops", None, 50.0).unwrap();
        assert!(matches!(
            a[1],
            Action::Launch {
                slow_lane: false,
                ..
            }
        ));
        assert_eq!(r.pending, None, "a retry answers the request in flight");
    }

    #[test]
    fn a_retry_needs_a_dead_agent_and_no_launch_in_flight() {
        for (state, why) in [
            (State::Healthy, Refused::NothingToDo("healthy")),
            (State::Unknown, Refused::NothingToDo("unknown")),
            (State::Reviving, Refused::Launching),
            (State::Degraded, Refused::Degraded),
        ] {
            let mut r = rec(state);
            let before = r.clone();
            assert_eq!(command(&mut r, Command::RetryNow, "x", None, 1.0), Err(why));
            assert_eq!(r, before, "a refusal changes nothing");
        }
    }

    #[test]
    fn an_acknowledgement_is_refused_once_one_is_kept() {
        let mut r = rec(State::Degraded);
        let a = command(&mut r, Command::Acknowledge, "ops", None, 5.0).unwrap();
        assert_eq!(
            a,
            [Action::Comment {
                text: "acknowledged by ops".into()
            }]
        );
        assert_eq!(
            command(&mut r, Command::Acknowledge, "other", Some("ops"), 6.0),
            Err(Refused::Acknowledged("ops".into()))
        );
    }
}
