//! The durable alert outbox: actions the engine could not deliver because
//! Gitea was unreachable, one JSON file each, delivered oldest first.
//!
//! File names are `<enqueue time in ns, 20 digits>-<pid>-<counter>.json`, so
//! lexical order is enqueue order and two processes never pick the same name.
//! Files are written with [`nexus_stdx::write_atomic`] (fsync + rename),
//! so a crash leaves either the whole action or nothing. An entry is removed
//! only after Gitea accepted it. Entries Gitea rejects for good (a 4xx other
//! than 429) or that do not parse are moved to `failed/` and logged, never
//! silently dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::check::Check;
use crate::error::Error;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What the engine wanted to do for a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Make sure an issue is open (adopt, reopen or create).
    Open,
    /// Comment fresh diagnostics on the open issue (opens one if none).
    Comment,
    /// Recovery comment, then close every open issue of the subject.
    Resolve,
}

/// One queued action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedAction {
    /// Unique id, carried in every comment the action posts as a hidden
    /// marker (`<!-- nexus-action:<id> -->`), so a redelivery after a timeout
    /// that did take effect finds its comment and does not post it twice.
    /// Empty in entries written before ids existed (no duplicate check).
    #[serde(default)]
    pub id: String,
    /// Open, comment or resolve.
    pub kind: ActionKind,
    /// The observation that caused it.
    pub check: Check,
    /// Epoch seconds when it was decided (bodies say "at `<this time>`").
    pub decided_at: i64,
    /// Epoch seconds the subject started failing, for "down for ...".
    pub down_since: Option<i64>,
}

/// Directory of queued actions, one JSON file each, named so that oldest sorts first.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// An outbox in `dir` (created on first enqueue).
    pub fn new(dir: PathBuf) -> Outbox {
        Outbox { dir }
    }

    /// Directory as given to [`Outbox::new`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends an action durably.
    pub fn enqueue(&self, action: &QueuedAction) -> Result<PathBuf, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("{nanos:020}-{}-{n:06}.json", std::process::id()));
        let bytes = serde_json::to_vec_pretty(action).map_err(|e| Error::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        nexus_stdx::write_private(&path, &bytes, true)?;
        Ok(path)
    }

    /// Queued entries, oldest first (paths only).
    pub fn entries(&self) -> Result<Vec<PathBuf>, Error> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    path: self.dir.clone(),
                    op: "list outbox",
                    source,
                });
            }
        };
        let mut out: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Number of queued entries.
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.entries()?.len())
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.entries()?.is_empty())
    }

    pub(crate) fn read(path: &Path) -> Result<QueuedAction, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            op: "read outbox entry",
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }

    pub(crate) fn remove(path: &Path) -> Result<(), Error> {
        std::fs::remove_file(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            op: "remove delivered outbox entry",
            source,
        })
    }

    /// Moves an entry that can never be delivered to `failed/`.
    pub(crate) fn reject(&self, path: &Path) -> Result<PathBuf, Error> {
        let failed = self.dir.join("failed");
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&failed)
            .map_err(|source| Error::Io {
                path: failed.clone(),
                op: "create dir",
                source,
            })?;
        let to = failed.join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &to).map_err(|source| Error::Io {
            path: path.to_owned(),
            op: "move to failed/",
            source,
        })?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Check;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn queued_actions_are_private() {
        let base = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(base.path().join("gitea/outbox"));
        let path = outbox
            .enqueue(&QueuedAction {
                kind: ActionKind::Open,
                check: Check::failing("db", "down", "details"),
                decided_at: 1,
                down_since: None,
                id: "a1".to_string(),
            })
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(outbox.dir()), 0o700);
        let failed = outbox.reject(&path).unwrap();
        assert_eq!(mode(failed.parent().unwrap()), 0o700);
    }
}
