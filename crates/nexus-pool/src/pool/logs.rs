//! The level of each action's log line: what a human must act on is an
//! ERROR (an escalation: the budget spent, policy `never`, a revive that
//! failed, an approval denied or timed out; every incident opens for a
//! human), a death and what the pool does about it a WARN (a death, a
//! revive attempt, a hung process stopped), a recovery INFO. One event is
//! one line: what another line already says goes to DEBUG.

use nexus_revive::{Action, State};
use tracing::Level;

/// The level of `a`'s line; `rest` are the actions of the same step after it.
pub(super) fn level<'a>(a: &Action, mut rest: impl Iterator<Item = &'a Action>) -> Level {
    match a {
        Action::Transition { to, .. } => match to {
            State::Dead | State::Degraded => Level::WARN,
            // The escalation's own line says why.
            State::Escalated | State::Reviving | State::Healthy | State::Unknown => Level::INFO,
        },
        Action::OpenIncident { reason } => {
            if rest.any(|b| matches!(b, Action::Escalate { reason: r } if r == reason)) {
                Level::DEBUG
            } else {
                Level::ERROR
            }
        }
        Action::Comment { text } => {
            if text.ends_with(" launched") {
                // The launcher's line ("revive attempt 2: started PID …").
                Level::DEBUG
            } else if text == "revive approved" {
                Level::INFO
            } else {
                Level::WARN
            }
        }
        Action::Escalate { .. } => Level::ERROR,
        Action::Recovered { .. } | Action::RequestApproval { .. } | Action::Launch { .. } => {
            Level::INFO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_revive::{AgentRecord, Health, Policy, Settings, launched, step};

    fn levels(actions: &[Action]) -> Vec<(String, Level)> {
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("{a:?}"), level(a, actions[i + 1..].iter())))
            .collect()
    }

    fn at(actions: &[Action], level: Level) -> usize {
        levels(actions).iter().filter(|(_, l)| *l == level).count()
    }

    /// Sick at once, acted on at once, at most `max_attempts` revives.
    fn prompt(max_attempts: u32) -> Settings {
        Settings {
            fail_threshold: 1,
            startup_grace: 0.0,
            dead_after: 0.0,
            backoff_initial: 0.0,
            max_attempts,
            ..Settings::default()
        }
    }

    #[test]
    fn a_death_is_a_warning_and_a_recovery_information() {
        let s = prompt(5);
        let mut rec = AgentRecord::default();
        step(&mut rec, Health::Healthy, Policy::Never, 0.0, None, &s);
        let died = step(&mut rec, Health::Dead, Policy::Never, 10.0, None, &s);
        let l = levels(&died);
        assert_eq!(l[0].1, Level::WARN, "{l:?}");
        // Policy never: the incident is for a human.
        assert!(
            l.iter()
                .any(|(a, lv)| a.contains("policy never") && *lv == Level::ERROR),
            "{l:?}"
        );
        let back = step(&mut rec, Health::Healthy, Policy::Never, 20.0, None, &s);
        assert!(!back.is_empty());
        assert_eq!(
            at(&back, Level::WARN) + at(&back, Level::ERROR),
            0,
            "{back:?}"
        );
    }

    #[test]
    fn an_escalation_is_one_error_line() {
        let s = prompt(1);
        let mut rec = AgentRecord::default();
        step(&mut rec, Health::Healthy, Policy::Auto, 0.0, None, &s);
        let died = step(&mut rec, Health::Dead, Policy::Auto, 1.0, None, &s);
        assert!(
            matches!(died.last(), Some(Action::Launch { .. })),
            "{died:?}"
        );
        let started = launched(&mut rec, 1.0, nexus_revive::LaunchOutcome::Started, &s);
        // "revive attempt 1 launched": the launcher's own line says it.
        assert_eq!(at(&started, Level::WARN) + at(&started, Level::ERROR), 0);
        let again = step(&mut rec, Health::Gone, Policy::Auto, 2.0, None, &s);
        assert_eq!(rec.state, State::Escalated, "{again:?}");
        let errors: Vec<_> = levels(&again)
            .into_iter()
            .filter(|(_, l)| *l == Level::ERROR)
            .collect();
        // The failed revive's incident, then the escalation (its incident
        // only a comment, at WARN).
        assert!(
            errors.iter().any(|(a, _)| a.starts_with("Escalate")),
            "{errors:?}"
        );
        assert!(
            errors.len() <= 2,
            "one event, one line: {:?}",
            levels(&again)
        );
    }

    #[test]
    fn an_escalation_and_its_incident_with_the_same_words_are_one_line() {
        let reason = "restart budget spent".to_string();
        let actions = [
            Action::Transition {
                from: State::Dead,
                to: State::Escalated,
            },
            Action::OpenIncident {
                reason: reason.clone(),
            },
            Action::Escalate { reason },
        ];
        assert_eq!(
            levels(&actions)
                .into_iter()
                .map(|(_, l)| l)
                .collect::<Vec<_>>(),
            [Level::INFO, Level::DEBUG, Level::ERROR]
        );
    }
}
