//! The level of each action's log line: what only a human can end is an
//! ERROR (an escalation: the budget spent, a pre-flight failed, policy
//! `never`, an approval denied or timed out: no revive comes without a
//! human); a death and what the pool does about it a WARN (a death, a
//! revive attempt, a revive that failed and will be tried again, a hung
//! process stopped, an incident opened while the pool still tries); a
//! recovery INFO. One event is one line: what another line already says
//! goes to DEBUG.

use nexus_revive::{Action, AgentRecord, Policy, State};
use tracing::Level;

/// The level of `a`'s line; `rest` are the actions of the same step after
/// it; `needs_human`: after this step no revive comes without a human
/// (see [`needs_human`]).
pub(super) fn level<'a>(
    a: &Action,
    rest: impl Iterator<Item = &'a Action> + Clone,
    needs_human: bool,
) -> Level {
    let escalation = rest.clone().find_map(|b| match b {
        Action::Escalate { reason } => Some(reason),
        _ => None,
    });
    // The escalation's own line is the ERROR of its step.
    let sick = if needs_human && escalation.is_none() {
        Level::ERROR
    } else {
        Level::WARN
    };
    match a {
        Action::Transition { to, .. } => match to {
            State::Dead | State::Degraded => Level::WARN,
            // The escalation's own line says why.
            State::Escalated | State::Reviving | State::Healthy | State::Unknown => Level::INFO,
        },
        // An escalation's incident (or its comment, when one is open)
        // says what the escalation's line says.
        Action::OpenIncident { reason: text } | Action::Comment { text }
            if escalation == Some(text) =>
        {
            Level::DEBUG
        }
        Action::OpenIncident { .. } => sick,
        Action::Comment { text } => {
            if text.ends_with(" launched") {
                // The launcher's line ("revive attempt 2: started PID …").
                Level::DEBUG
            } else if text == "revive approved" {
                Level::INFO
            } else {
                sick
            }
        }
        Action::Escalate { .. } => Level::ERROR,
        Action::Recovered { .. } | Action::RequestApproval { .. } | Action::Launch { .. } => {
            Level::INFO
        }
    }
}

/// No revive comes without a human: escalated, refused (denied, or an
/// approval that timed out with `ask_default = deny`), or policy `never`.
pub(super) fn needs_human(rec: &AgentRecord, policy: Policy) -> bool {
    rec.state == State::Escalated || rec.denied || policy == Policy::Never
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_revive::{Approval, Health, LaunchOutcome, Settings, launched, step};

    /// Each action's words and level, for `rec` after the step.
    fn levels(actions: &[Action], rec: &AgentRecord, policy: Policy) -> Vec<(String, Level)> {
        let human = needs_human(rec, policy);
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("{a:?}"), level(a, actions[i + 1..].iter(), human)))
            .collect()
    }

    fn at(l: &[(String, Level)], level: Level) -> Vec<&str> {
        l.iter()
            .filter(|(_, lv)| *lv == level)
            .map(|(a, _)| a.as_str())
            .collect()
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
    fn a_death_is_a_warning_policy_never_an_error_and_a_recovery_information() {
        let (s, never) = (prompt(5), Policy::Never);
        let mut rec = AgentRecord::default();
        step(&mut rec, Health::Healthy, never, 0.0, None, &s);
        let died = step(&mut rec, Health::Dead, never, 10.0, None, &s);
        let l = levels(&died, &rec, never);
        assert_eq!(l[0].1, Level::WARN, "the death: {l:?}");
        let errors = at(&l, Level::ERROR);
        assert!(
            errors.len() == 1 && errors[0].contains("policy never"),
            "{l:?}"
        );
        let back = step(&mut rec, Health::Healthy, never, 20.0, None, &s);
        let l = levels(&back, &rec, never);
        assert!(!l.is_empty());
        assert!(
            at(&l, Level::WARN).is_empty() && at(&l, Level::ERROR).is_empty(),
            "{l:?}"
        );
    }

    #[test]
    fn a_revive_that_failed_is_a_warning_and_the_escalation_one_error_line() {
        let (s, auto) = (prompt(2), Policy::Auto);
        let mut rec = AgentRecord::default();
        step(&mut rec, Health::Healthy, auto, 0.0, None, &s);
        let mut lines = Vec::new();
        let mut now = 1.0;
        // Dies, is revived, dies again … until the budget is spent.
        while rec.state != State::Escalated && now < 10.0 {
            let actions = step(&mut rec, Health::Gone, auto, now, None, &s);
            lines.extend(levels(&actions, &rec, auto));
            if actions.iter().any(|a| matches!(a, Action::Launch { .. })) {
                let started = launched(&mut rec, now, LaunchOutcome::Started, &s);
                let l = levels(&started, &rec, auto);
                // "revive attempt k launched": the launcher's line says it.
                assert!(at(&l, Level::WARN).is_empty() && at(&l, Level::ERROR).is_empty());
            }
            now += 1.0;
        }
        assert_eq!(rec.state, State::Escalated);
        let errors = at(&lines, Level::ERROR);
        assert_eq!(errors.len(), 1, "one event, one line: {lines:#?}");
        assert!(errors[0].starts_with("Escalate"), "{errors:?}");
        // The failed revive (the pool tries again) is a warning.
        assert!(
            at(&lines, Level::WARN)
                .iter()
                .any(|a| a.contains("revive attempt 1")),
            "{lines:#?}"
        );
    }

    #[test]
    fn an_approval_denied_or_timed_out_is_an_error() {
        let (s, ask) = (prompt(5), Policy::Ask);
        for answer in [Some(Approval::Denied), None] {
            let mut rec = AgentRecord::default();
            step(&mut rec, Health::Healthy, ask, 0.0, None, &s);
            let asked = step(&mut rec, Health::Dead, ask, 1.0, None, &s);
            assert!(rec.pending.is_some(), "{asked:?}");
            let l = levels(&asked, &rec, ask);
            assert!(
                at(&l, Level::ERROR).is_empty(),
                "asking is no escalation: {l:?}"
            );
            // Denied at once, or no answer until the deadline.
            let now = if answer.is_some() {
                2.0
            } else {
                1.0 + s.approval_timeout
            };
            let over = step(&mut rec, Health::Dead, ask, now, answer, &s);
            let l = levels(&over, &rec, ask);
            assert_eq!(at(&l, Level::ERROR).len(), 1, "{answer:?}: {l:?}");
        }
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
        let got: Vec<Level> = actions
            .iter()
            .enumerate()
            .map(|(i, a)| level(a, actions[i + 1..].iter(), true))
            .collect();
        assert_eq!(got, [Level::INFO, Level::DEBUG, Level::ERROR]);
    }
}
