//! The pool's problem-set alerts through `[webhook]`, `[ntfy]` and
//! `[email]` (nexus-alert, the watchdog's and the cron checker's code):
//! one message when agents die, escalate or degrade, reminders while the
//! set is unchanged, one when they recover; per channel, the same dedup,
//! cooldown and message limits, and a state file of its own
//! (`<state dir>/webhook-alerts.json`, ...), so a channel that is down
//! holds only its own messages. (Telegram stays the pool's own executor,
//! with its approvals: see [`crate::channels`].)
//!
//! [`spawn`] runs beside the sweeps: it reads the published snapshot every
//! [`LOOK_EVERY`] and tells the channels when the problem set changed, or
//! every [`REMIND_EVERY`] (for the reminders); a channel's call has its
//! own timeout and never holds a sweep. A one-shot calls [`tell`] once.

use std::time::{Duration, Instant};

use nexus_alert::{AlertProblem, Alerts, Severity};
use nexus_revive::State;

use crate::http::{Shared, with_snapshot};
use crate::view::{AgentView, PoolSnapshot};

/// How often the snapshot is looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(5);
/// How often the channels are told the unchanged set (their `repeat`
/// decides whether a reminder is due).
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// The message's first line.
pub const TITLE: &str = "Resurrection pool";

/// The agents that need a person ([`problem`] of each).
pub fn problems(s: &PoolSnapshot) -> Vec<AlertProblem> {
    s.agents.iter().filter_map(problem).collect()
}

/// An agent that needs a person, as an alert problem: dead and escalated
/// (critical), degraded (warning), named `<agent> (<mission or cell>)`,
/// with why and, for one waiting on a human, what to do.
pub fn problem(a: &AgentView) -> Option<AlertProblem> {
    let severity = match a.state {
        State::Dead | State::Escalated => Severity::Critical,
        State::Degraded => Severity::Warning,
        State::Healthy | State::Reviving | State::Unknown => return None,
    };
    let place = a
        .mission
        .as_deref()
        .map(str::to_owned)
        .or_else(|| a.cell.as_deref().map(|c| c.chars().take(8).collect()));
    let key = match place {
        Some(p) => format!("{} ({p})", a.name),
        None => a.name.to_string(),
    };
    let message = match &a.reason {
        Some(r) => format!("{}: {r}", a.state.as_str()),
        None => a.state.as_str().to_string(),
    };
    let p = AlertProblem::new(key, severity, message);
    Some(match crate::page::todo(a) {
        Some(t) => p.with_hint(t),
        None => p,
    })
}

/// Tells every channel of `alerts` the current problem set of `shared`
/// once; the lines to log.
pub async fn tell(alerts: &mut Alerts, shared: &Shared) -> Vec<String> {
    let problems = with_snapshot(shared, problems);
    alerts.tell(&problems).await
}

/// What the set is, for "has it changed": each key and severity.
fn fingerprint(p: &[AlertProblem]) -> Vec<(String, Severity)> {
    let mut v: Vec<(String, Severity)> = p.iter().map(|p| (p.key.clone(), p.severity)).collect();
    v.sort();
    v
}

/// Runs the alerts beside the sweeps until the runtime stops (see the
/// module's doc).
pub fn spawn(mut alerts: Alerts, shared: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<(Vec<(String, Severity)>, Instant)> = None;
        let mut tick = tokio::time::interval(LOOK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Nothing before the first sweep: every agent is unknown.
            if with_snapshot(&shared, |s| s.sweeps) == 0 {
                continue;
            }
            let problems = with_snapshot(&shared, problems);
            let now = fingerprint(&problems);
            let due = match &last {
                None => true,
                Some((set, at)) => *set != now || at.elapsed() >= REMIND_EVERY,
            };
            if !due {
                continue;
            }
            for line in alerts.tell(&problems).await {
                tracing::info!("alerts: {line}");
            }
            last = Some((now, Instant::now()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::sample;

    #[test]
    fn the_agents_that_need_a_person_are_the_problems() {
        let mut s = sample(1_800_000_000.0);
        // allegro healthy, bezalel dead (cell-1), timmy reviving (no cell).
        s.agents[0].state = State::Degraded;
        s.agents[1].reason = Some(Box::new("no heartbeat".into()));
        s.agents[2].state = State::Escalated;
        let p = problems(&s);
        let got: Vec<(&str, Severity, &str)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.severity, p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "allegro (Operation <Lazarus>)",
                    Severity::Warning,
                    "degraded"
                ),
                (
                    "bezalel (Operation <Lazarus>)",
                    Severity::Critical,
                    "dead: no heartbeat"
                ),
                ("timmy", Severity::Critical, "escalated"),
            ]
        );
        assert!(p[2].hint.as_deref().unwrap().contains("revive budget"));
        assert_eq!(fingerprint(&p).len(), 3);
        s.agents.iter_mut().for_each(|a| a.state = State::Healthy);
        assert!(problems(&s).is_empty());
    }
}
