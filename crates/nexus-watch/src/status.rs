//! The overall status of one evaluation (docs/SPEC.md §4.3, with §2.7's rule that
//! "could not check" is never silently healthy).

use nexus_probe::{Status, Verdict};
use serde::Serialize;

/// healthy / degraded / critical / unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// Every check that could be evaluated is Ok.
    Healthy,
    /// Something is Warning (or Unknown when strict).
    Degraded,
    /// Something is Critical.
    Critical,
    /// Nothing could be evaluated.
    Unknown,
}

impl Overall {
    /// Exit code 0 only for healthy.
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::Healthy => 0,
            _ => 1,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Critical => "critical",
            Overall::Unknown => "unknown",
        }
    }
}

/// Whether one verdict counts against the run (docs/SPEC.md §4.3): Critical
/// and Warning always; Unknown only when `strict` and the check is not named
/// in `optional` ("unknown components never make the system unhealthy;
/// `--strict` makes unknown count as degraded"). What counts is what the
/// exit code, the report's problems, the Gitea issue and the Telegram
/// message are about: one rule for all four.
pub fn counts(v: &Verdict, strict: bool, optional: &[String]) -> bool {
    match v.status {
        Status::Critical | Status::Warning => true,
        Status::Unknown => strict && !optional.contains(&v.name),
        Status::Ok => false,
    }
}

/// The rule, in order:
/// 1. any Critical → critical;
/// 2. any Warning → degraded;
/// 3. when `strict`, any Unknown not named in `optional` → degraded
///    (see [`counts`]);
/// 4. at least one Ok and every other check Unknown or Ok → healthy;
/// 5. otherwise (nothing evaluated, or no checks) → unknown.
pub fn overall(verdicts: &[Verdict], strict: bool, optional: &[String]) -> Overall {
    if verdicts.iter().any(|v| v.status == Status::Critical) {
        Overall::Critical
    } else if verdicts.iter().any(|v| counts(v, strict, optional)) {
        Overall::Degraded
    } else if verdicts.iter().any(|v| v.status == Status::Ok) {
        Overall::Healthy
    } else {
        Overall::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v(name: &str, status: Status) -> Verdict {
        Verdict {
            name: name.into(),
            kind: "tcp".into(),
            status,
            summary: String::new(),
            details: Default::default(),
            latency: Duration::ZERO,
            checked_at: 0.0,
        }
    }

    #[test]
    fn four_level_rule() {
        use Status::*;
        let cases: &[(&[Status], bool, Overall)] = &[
            (&[Ok, Ok], false, Overall::Healthy),
            (&[Ok, Unknown], false, Overall::Healthy),
            (&[Ok, Unknown], true, Overall::Degraded),
            (&[Ok, Warning, Unknown], false, Overall::Degraded),
            (&[Warning, Critical], false, Overall::Critical),
            (&[Unknown, Unknown], false, Overall::Unknown),
            (&[], false, Overall::Unknown),
        ];
        for (statuses, strict, want) in cases {
            let vs: Vec<_> = statuses.iter().map(|s| v("x", *s)).collect();
            assert_eq!(
                overall(&vs, *strict, &[]),
                *want,
                "{statuses:?} strict={strict}"
            );
        }
        let vs = [v("core", Status::Ok), v("gpu", Status::Unknown)];
        assert_eq!(overall(&vs, true, &["gpu".to_string()]), Overall::Healthy);
        assert_eq!(Overall::Healthy.exit_code(), 0);
        assert_eq!(Overall::Unknown.exit_code(), 1);
    }
}
