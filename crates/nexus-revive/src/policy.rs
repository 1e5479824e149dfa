//! Revive policies per mission: the one type for the daemon's default, a
//! cell's and an agent's policy (`nexus-cell` stores it in `cell.json` as
//! `"auto"`, `"ask"` or `"never"`, with `yes`/`no` read as aliases).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What to do with a dead agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Revive at once (within the budget).
    #[serde(alias = "yes")]
    Auto,
    /// Ask a human; revive only on approval.
    Ask,
    /// Record the death; never revive.
    #[serde(alias = "no")]
    Never,
}

impl Policy {
    /// The lower-case word, as written in `cell.json` and the pool's TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::Ask => "ask",
            Policy::Never => "never",
        }
    }
}

/// A policy word that is none of `auto`, `ask`, `never`, `yes`, `no`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown revive policy {0:?} (use auto, ask or never; yes and no are aliases of auto and never)"
)]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Policy, UnknownPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "yes" => Ok(Policy::Auto),
            "ask" => Ok(Policy::Ask),
            "never" | "no" => Ok(Policy::Never),
            _ => Err(UnknownPolicy(s.to_string())),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_aliases() {
        assert_eq!("auto".parse(), Ok(Policy::Auto));
        assert_eq!(" YES ".parse(), Ok(Policy::Auto));
        assert_eq!("ask".parse(), Ok(Policy::Ask));
        assert_eq!("no".parse(), Ok(Policy::Never));
        assert_eq!("never".parse(), Ok(Policy::Never));
        let e = "substitute".parse::<Policy>().unwrap_err();
        assert!(e.to_string().contains("substitute"));
    }

    #[test]
    fn serde_words_and_aliases() {
        for p in [Policy::Auto, Policy::Ask, Policy::Never] {
            let t = serde_json::to_string(&p).unwrap();
            assert_eq!(t, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Policy>(&t).unwrap(), p);
        }
        assert_eq!(
            serde_json::from_str::<Policy>("\"yes\"").unwrap(),
            Policy::Auto
        );
        assert_eq!(
            serde_json::from_str::<Policy>("\"no\"").unwrap(),
            Policy::Never
        );
        assert!(serde_json::from_str::<Policy>("\"maybe\"").is_err());
    }
}
