//! One sweep's probes → the agent's instantaneous health (docs/SPEC.md §6.3).

use serde::{Deserialize, Serialize};

/// What the heartbeat probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Heartbeat {
    /// Written within the threshold.
    Fresh,
    /// Older than the threshold, unreadable, corrupt or from the future: the
    /// mind is not proving it is alive.
    Stale,
    /// No heartbeat file.
    Missing,
    /// The probe could not decide (e.g. it timed out).
    Unknown,
}

/// The three probes of one agent. `None`: not applicable (a remote host's
/// process) or could not check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The gateway answers (TCP connect or `/health`).
    pub gateway: Option<bool>,
    /// The agent's process runs (not a zombie, not stopped).
    pub process: Option<bool>,
    /// What the heartbeat probe saw; alone it decides life under [`DeadRule::Hung`].
    pub heartbeat: Heartbeat,
}

/// The instantaneous health of one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Everything applicable passes.
    Healthy,
    /// The mind is alive (fresh heartbeat) but something else fails.
    Degraded,
    /// Dead under the [`DeadRule`]: heartbeat stale or missing (`Hung`), or every known probe fails (`All`).
    Dead,
    /// Nothing could be evaluated.
    Unknown,
    /// The agent's process is known to have exited: the pool saw its own
    /// child die. Dead at once, no confirmation sweeps, no `dead_after`
    /// wait. [`assess`] never returns it; the caller that knows sets it.
    Gone,
    /// A `/proc` scan shows the agent's process is not running while its
    /// heartbeat is still fresh: degraded at once, no confirmation sweeps
    /// (it turns dead when the heartbeat goes stale). Set by the caller.
    ProcessGone,
    /// The pool's own process of the agent is alive, and its heartbeat is
    /// stale past the threshold (stopped, deadlocked): dead at once, no
    /// `dead_after` wait; the revive stops it first. A process launched
    /// less than `revive_deadline` ago is given that long to beat. Set by
    /// the caller.
    Hung,
    /// No fresh heartbeat and no live process (no heartbeat at all, or its
    /// PID is gone): an `auto` agent the pool meets for the first time is
    /// started at once (not a revive); later it is an inferred death, like
    /// [`Health::Dead`]. Set by the caller.
    NotRunning,
}

/// Which rule decides "dead".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadRule {
    /// A stale or missing heartbeat is dead whatever the gateway and
    /// process show: a hung mind is dead (seed 000's point).
    #[default]
    Hung,
    /// The seed pool's rule: dead only when no probe passes.
    All,
}

/// Assesses one sweep's probes.
pub fn assess(p: &Probe, rule: DeadRule) -> Health {
    let others = [p.gateway, p.process];
    let failing_other = others.contains(&Some(false));
    match rule {
        DeadRule::Hung => match p.heartbeat {
            Heartbeat::Stale | Heartbeat::Missing => Health::Dead,
            Heartbeat::Fresh if failing_other => Health::Degraded,
            Heartbeat::Fresh => Health::Healthy,
            Heartbeat::Unknown if others.iter().all(|o| *o == Some(false)) => Health::Dead,
            Heartbeat::Unknown if failing_other => Health::Degraded,
            Heartbeat::Unknown => Health::Unknown,
        },
        DeadRule::All => {
            let hb = match p.heartbeat {
                Heartbeat::Fresh => Some(true),
                Heartbeat::Stale | Heartbeat::Missing => Some(false),
                Heartbeat::Unknown => None,
            };
            let known: Vec<bool> = [p.gateway, p.process, hb].into_iter().flatten().collect();
            if known.is_empty() {
                Health::Unknown
            } else if known.iter().all(|b| *b) {
                Health::Healthy
            } else if known.iter().all(|b| !*b) {
                Health::Dead
            } else {
                Health::Degraded
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Heartbeat::*;

    fn p(gateway: Option<bool>, process: Option<bool>, heartbeat: Heartbeat) -> Probe {
        Probe {
            gateway,
            process,
            heartbeat,
        }
    }

    #[test]
    fn a_hung_mind_is_dead_not_degraded() {
        let hung = p(Some(true), Some(true), Stale);
        assert_eq!(assess(&hung, DeadRule::Hung), Health::Dead);
        assert_eq!(
            assess(&hung, DeadRule::All),
            Health::Degraded,
            "the seed's rule"
        );
    }

    #[test]
    fn the_hung_rule() {
        let cases = [
            (p(Some(true), Some(true), Fresh), Health::Healthy),
            (p(Some(false), Some(true), Fresh), Health::Degraded),
            (p(Some(true), None, Fresh), Health::Healthy),
            (p(Some(true), Some(true), Missing), Health::Dead),
            (p(None, None, Unknown), Health::Unknown),
            (p(Some(false), Some(false), Unknown), Health::Dead),
            (p(Some(false), Some(true), Unknown), Health::Degraded),
        ];
        for (probe, want) in cases {
            assert_eq!(assess(&probe, DeadRule::Hung), want, "{probe:?}");
        }
    }

    #[test]
    fn the_seed_rule() {
        assert_eq!(
            assess(&p(Some(true), Some(true), Fresh), DeadRule::All),
            Health::Healthy
        );
        assert_eq!(
            assess(&p(Some(false), Some(false), Missing), DeadRule::All),
            Health::Dead
        );
        assert_eq!(
            assess(&p(None, None, Unknown), DeadRule::All),
            Health::Unknown
        );
    }
}
