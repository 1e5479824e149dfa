//! Names that become path components: agent names, cell ids, checkpoint
//! file names. Validated once, at the edge, and carried as types after that.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::NameError;

/// Longest agent name, in bytes.
pub const MAX_AGENT_NAME: usize = 64;

/// An agent name that is safe as a file stem: `[A-Za-z0-9._-]{1,64}`, not
/// starting with `.` (so never `.` or `..`), no `/`, NUL or control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentName(String);

impl AgentName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<AgentName, NameError> {
        check_component("agent name", name, MAX_AGENT_NAME)?;
        Ok(AgentName(name.to_string()))
    }

    /// Validated name, usable as a file stem.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentName {
    type Error = NameError;
    fn try_from(s: String) -> Result<AgentName, NameError> {
        AgentName::new(&s)
    }
}

impl From<AgentName> for String {
    fn from(n: AgentName) -> String {
        n.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AgentName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<AgentName, NameError> {
        AgentName::new(s)
    }
}

/// A cell id: a version 4 UUID in its hyphenated lower-case form, which is
/// also the cell's directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CellId(Uuid);

impl CellId {
    /// A fresh random (v4) id.
    pub fn new_v4() -> CellId {
        CellId(Uuid::new_v4())
    }

    /// Parses a hyphenated UUID (upper case accepted); refuses anything that
    /// could be a path (`..`, `/`, NUL, ...) and UUIDs that are not version 4.
    pub fn parse(s: &str) -> Result<CellId, NameError> {
        let err = |why| NameError {
            kind: "cell id",
            name: clip(s),
            why,
        };
        check_component("cell id", s, 36)?;
        if s.len() != 36 {
            return Err(err("not a hyphenated UUID (36 characters)"));
        }
        let u = Uuid::try_parse(s).map_err(|_| err("not a hyphenated UUID"))?;
        if u.get_version_num() != 4 {
            return Err(err("not a version 4 UUID"));
        }
        Ok(CellId(u))
    }

    /// The UUID (the cell directory's name when hyphenated).
    pub fn uuid(&self) -> Uuid {
        self.0
    }

    /// The first 8 hex digits (for issue titles and log prefixes).
    pub fn short(&self) -> String {
        self.to_string()[..8].to_string()
    }
}

impl TryFrom<String> for CellId {
    type Error = NameError;
    fn try_from(s: String) -> Result<CellId, NameError> {
        CellId::parse(&s)
    }
}

impl From<CellId> for String {
    fn from(c: CellId) -> String {
        c.to_string()
    }
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for CellId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<CellId, NameError> {
        CellId::parse(s)
    }
}

/// A checkpoint file name as listed in `checkpoints/`: a safe component
/// ending in `.tar.gz`.
pub fn validate_checkpoint_name(name: &str) -> Result<(), NameError> {
    check_component("checkpoint name", name, 128)?;
    if !name.ends_with(".tar.gz") {
        return Err(NameError {
            kind: "checkpoint name",
            name: clip(name),
            why: "does not end in .tar.gz",
        });
    }
    Ok(())
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The workspace's one rule for names used as one path component
/// (`nexus_stdx::validate_name`), worded as this crate's [`NameError`].
fn check_component(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    nexus_stdx::validate_name(kind, name, max).map_err(|e| NameError {
        kind: e.kind,
        name: e.name,
        why: e.why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn agent_names() {
        for ok in ["allegro", "timmy-2", "a.b_c", "A9", &"x".repeat(64)] {
            AgentName::new(ok).unwrap();
        }
        let cases = [
            ("", "empty"),
            (".", "contains '..'"),
            ("..", "contains '..'"),
            ("a..b", "contains '..'"),
            (".hidden", "starts with '.'"),
            ("a/b", "contains a path separator"),
            ("../../etc/passwd", "contains a path separator"),
            ("a\\b", "contains a path separator"),
            ("x\0y", "contains NUL"),
            ("x\ny", "contains a control character"),
            ("x\u{7f}", "contains a control character"),
            ("a b", "only A-Z a-z 0-9 . _ - are allowed"),
            ("é", "only A-Z a-z 0-9 . _ - are allowed"),
            (&"x".repeat(65), "longer than 64 bytes"),
        ];
        for (bad, why) in cases {
            let e = AgentName::new(bad).unwrap_err();
            assert_eq!(e.why, why, "{bad:?}");
            assert!(e.to_string().starts_with("invalid agent name"), "{e}");
        }
    }

    #[test]
    fn agent_name_serde_validates() {
        let n: AgentName = serde_json::from_str("\"allegro\"").unwrap();
        assert_eq!(n.as_str(), "allegro");
        let e = serde_json::from_str::<AgentName>("\"../x\"").unwrap_err();
        assert!(e.to_string().contains("path separator"), "{e}");
    }

    #[test]
    fn cell_ids() {
        let id = CellId::new_v4();
        assert_eq!(CellId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(
            CellId::parse(&id.to_string().to_uppercase()).unwrap(),
            id,
            "upper case is the same id"
        );
        assert_eq!(id.short().len(), 8);
        for (bad, why) in [
            ("..", "contains '..'"),
            ("../../../etc", "contains a path separator"),
            ("", "empty"),
            ("x\0", "contains NUL"),
            (
                "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                "not a version 4 UUID",
            ),
            (
                "6ba7b8109dad11d180b400c04fd430c8",
                "not a hyphenated UUID (36 characters)",
            ),
            (
                "zzzzzzzz-zzzz-4zzz-zzzz-zzzzzzzzzzzz",
                "not a hyphenated UUID",
            ),
            (&"a".repeat(100), "longer than 36 bytes"),
        ] {
            assert_eq!(CellId::parse(bad).unwrap_err().why, why, "{bad:?}");
        }
    }

    #[test]
    fn checkpoint_names() {
        validate_checkpoint_name("20261122T235959.123456Z.tar.gz").unwrap();
        for bad in ["../x.tar.gz", "x.tar", ".x.tar.gz", "a/b.tar.gz"] {
            validate_checkpoint_name(bad).unwrap_err();
        }
    }

    proptest! {
        #[test]
        fn valid_agent_names_are_single_safe_components(s in "\\PC{0,80}") {
            if let Ok(n) = AgentName::new(&s) {
                let p = std::path::Path::new(n.as_str());
                prop_assert_eq!(p.components().count(), 1);
                prop_assert!(matches!(p.components().next(), Some(std::path::Component::Normal(_))));
                prop_assert!(!n.as_str().starts_with('.'));
            }
        }

        #[test]
        fn cell_ids_round_trip(bytes in any::<[u8; 16]>()) {
            let id = CellId(uuid::Builder::from_random_bytes(bytes).into_uuid());
            let text = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<CellId>(&text).unwrap(), id);
        }
    }
}
