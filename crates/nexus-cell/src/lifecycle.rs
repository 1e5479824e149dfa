//! The cell lifecycle (docs/SPEC.md §5.3): `provision -> active -> [frozen] ->
//! archived -> destroyed`, as a checked state machine.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::TransitionError;
use crate::error::UnknownValue;

/// The status of a cell, stored in `cell.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, no agent has joined yet.
    #[serde(alias = "provisioned")]
    Provision,
    /// At least one agent has joined; the daemon revives its agents.
    Active,
    /// Intentionally paused: shown, never revived.
    Frozen,
    /// Mission complete, cell kept read-only.
    Archived,
    /// Torn down (final; the directory is removed right after).
    Destroyed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Provision,
        Status::Active,
        Status::Frozen,
        Status::Archived,
        Status::Destroyed,
    ];

    /// The statuses reachable in one step.
    ///
    /// - `provision -> active` (first join) or `destroyed` (abandoned);
    /// - `active -> frozen | archived`; `frozen -> active` (resume) `| archived`;
    /// - `archived -> destroyed`; `destroyed` is final.
    pub fn allowed_next(self) -> &'static [Status] {
        match self {
            Status::Provision => &[Status::Active, Status::Destroyed],
            Status::Active => &[Status::Frozen, Status::Archived],
            Status::Frozen => &[Status::Active, Status::Archived],
            Status::Archived => &[Status::Destroyed],
            Status::Destroyed => &[],
        }
    }

    /// `to` if the state machine allows the step, else an error naming both.
    pub fn transition(self, to: Status) -> Result<Status, TransitionError> {
        if self.allowed_next().contains(&to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    /// Whether the daemon watches the cell (`active` and `frozen`).
    pub fn is_watched(self) -> bool {
        matches!(self, Status::Active | Status::Frozen)
    }

    /// Whether agents may still join (`provision`, `active`).
    pub fn accepts_agents(self) -> bool {
        matches!(self, Status::Provision | Status::Active)
    }

    /// Whether the workspace may be changed by the store (restore).
    pub fn is_writable(self) -> bool {
        matches!(self, Status::Provision | Status::Active | Status::Frozen)
    }

    /// The name used in `cell.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provision => "provision",
            Status::Active => "active",
            Status::Frozen => "frozen",
            Status::Archived => "archived",
            Status::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Status, UnknownValue> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownValue {
                kind: "status",
                value: s.to_string(),
                expected: "provision, active, frozen, archived or destroyed",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The lifecycle order; a legal step never goes back except frozen -> active.
    fn rank(s: Status) -> u8 {
        match s {
            Status::Provision => 0,
            Status::Active => 1,
            Status::Frozen => 2,
            Status::Archived => 3,
            Status::Destroyed => 4,
        }
    }

    #[test]
    fn illegal_transition_names_both_states() {
        let e = Status::Active.transition(Status::Destroyed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "illegal transition active -> destroyed (from active only: frozen, archived)"
        );
        let e = Status::Destroyed.transition(Status::Active).unwrap_err();
        assert_eq!(
            e.to_string(),
            "illegal transition destroyed -> active (destroyed is final)"
        );
    }

    #[test]
    fn round_trips_and_alias() {
        for s in Status::ALL {
            let t = serde_json::to_string(&s).unwrap();
            assert_eq!(t, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Status>(&t).unwrap(), s);
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert_eq!(
            serde_json::from_str::<Status>("\"provisioned\"").unwrap(),
            Status::Provision
        );
        assert!(serde_json::from_str::<Status>("\"zombie\"").is_err());
        assert_eq!(
            "zombie".parse::<Status>().unwrap_err().to_string(),
            "unknown status \"zombie\" (provision, active, frozen, archived or destroyed)"
        );
    }

    proptest! {
        /// Any sequence of requested transitions, applied as the store does
        /// (refused steps leave the status unchanged), only ever takes legal
        /// edges: never leaves `destroyed`, never returns to `provision`, and
        /// only `frozen -> active` goes back in the order.
        #[test]
        fn arbitrary_sequences_stay_legal(steps in proptest::collection::vec(0usize..5, 0..64)) {
            let mut s = Status::Provision;
            let mut seen_destroyed = false;
            for i in steps {
                let to = Status::ALL[i];
                match s.transition(to) {
                    Ok(next) => {
                        prop_assert!(s.allowed_next().contains(&next));
                        prop_assert!(!seen_destroyed, "left destroyed");
                        prop_assert!(next != Status::Provision);
                        prop_assert!(
                            rank(next) > rank(s) || (s, next) == (Status::Frozen, Status::Active),
                            "{s} -> {next} goes backwards"
                        );
                        s = next;
                    }
                    Err(e) => {
                        prop_assert_eq!((e.from, e.to), (s, to));
                        prop_assert!(!s.allowed_next().contains(&to));
                    }
                }
                seen_destroyed |= s == Status::Destroyed;
            }
        }
    }
}
