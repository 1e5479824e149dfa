//! `[history]`: the table the pool, the cron checker and the watchdog each
//! embed in their configuration file, typed the same everywhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{HistoryError, Options, Recorder};

/// `[history]`: where and how long state changes are kept. Present means
/// on (unless `enabled = false`); absent means off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Off: nothing recorded.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The SQLite file; default `history.sqlite` in the daemon's state
    /// directory. Point the pool, the cron checker and the watchdog at one
    /// file and the pool's page shows all three.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Rows older than this are pruned (default `"30d"`).
    #[serde(
        default = "thirty_days",
        deserialize_with = "nexus_stdx::deserialize_duration"
    )]
    pub retention: Duration,
}

fn yes() -> bool {
    true
}

fn thirty_days() -> Duration {
    Duration::from_secs(30 * 86_400)
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            path: None,
            retention: thirty_days(),
        }
    }
}

/// A configuration file's tables a binary owns, `A`, beside its
/// `[history]`: `WithHistory<nexus_alert::AlertTables>` is what the cron
/// checker and the watchdog read from their files.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WithHistory<A> {
    /// The other tables (flattened: they sit beside `[history]`).
    #[serde(flatten)]
    pub tables: A,
    /// `[history]`, when present.
    #[serde(default)]
    pub history: Option<Settings>,
}

impl Settings {
    /// The file: `path`, else `history.sqlite` in `state_dir`.
    pub fn file(&self, state_dir: &Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| state_dir.join("history.sqlite"))
    }

    /// Starts a recorder on [`Settings::file`] (`None` when disabled). The
    /// writer thread is detached: it commits what is queued when the last
    /// recorder clone is dropped; call [`Recorder::flush`] before a
    /// one-shot exits.
    pub fn start(&self, state_dir: &Path) -> Result<Option<Recorder>, HistoryError> {
        if !self.enabled {
            return Ok(None);
        }
        let options = Options {
            retention: self.retention,
            ..Options::default()
        };
        Recorder::start(&self.file(state_dir), options).map(|(rec, _writer)| Some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_wrong_key_named() {
        let s: Settings = toml::from_str("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(
            s.file(Path::new("/var/lib/x")),
            Path::new("/var/lib/x/history.sqlite")
        );
        let s: Settings = toml::from_str("retention = \"7d\"\nenabled = false").unwrap();
        assert_eq!(s.retention, Duration::from_secs(7 * 86_400));
        assert!(s.start(Path::new("/nonexistent")).unwrap().is_none());
        let e = toml::from_str::<Settings>("retain = \"7d\"").unwrap_err();
        assert!(e.to_string().contains("retain"), "{e}");
        // Beside other tables.
        let w: WithHistory<std::collections::BTreeMap<String, toml::Value>> =
            toml::from_str("[history]\nenabled = false\n[other]\nx = 1\n").unwrap();
        assert!(w.tables.contains_key("other"));
        assert!(!w.history.unwrap().enabled);
    }
}
