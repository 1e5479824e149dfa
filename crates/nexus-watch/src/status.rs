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

/// The rule, in order:
/// 1. any Critical → critical;
/// 2. any Warning → degraded;
/// 3. when `strict`, any Unknown not named in `optional` → degraded;
/// 4. at least one Ok and every other check Unknown or Ok → healthy;
/// 5. otherwise (nothing evaluated, or no checks) → unknown.
pub fn overall(verdicts: &[Verdict], strict: bool, optional: &[String]) -> Overall {
    let any = |s: Status| verdicts.iter().any(|v| v.status == s);
    let unknown_counts = strict
        && verdicts
            .iter()
            .any(|v| v.status == Status::Unknown && !optional.contains(&v.name));
    if any(Status::Critical) {
        Overall::Critical
    } else if any(Status::Warning) || unknown_counts {
        Overall::Degraded
    } else if any(Status::Ok) {
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
