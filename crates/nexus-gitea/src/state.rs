//! Per-subject engine state, one small JSON file per fingerprint, replaced
//! atomically. Losing it is safe: the engine re-finds its issues by
//! fingerprint (see [`crate::Engine::adopt`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The last issue the engine closed for a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Closed {
    pub(crate) number: u64,
    pub(crate) at: i64,
}

/// What the engine remembers about one subject between cycles and restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SubjectState {
    pub(crate) subject: String,
    pub(crate) fingerprint: String,
    /// The open issue, when known.
    pub(crate) open_issue: Option<u64>,
    /// An "open" action is queued in the outbox (number not known yet).
    pub(crate) pending: bool,
    /// Epoch seconds of the first failing observation of this episode.
    pub(crate) failing_since: Option<i64>,
    /// Epoch seconds of the last comment (or of the creation).
    pub(crate) last_comment_at: Option<i64>,
    /// Normalised diagnostics signature of the last comment.
    pub(crate) last_signature: Option<String>,
    pub(crate) last_closed: Option<Closed>,
    /// UTC day number (epoch days) that `created_today` counts.
    pub(crate) created_day: i64,
    pub(crate) created_today: u32,
}

impl SubjectState {
    pub(crate) fn is_open(&self) -> bool {
        self.open_issue.is_some() || self.pending
    }
}

pub(crate) fn path(state_dir: &Path, fingerprint: &str) -> PathBuf {
    state_dir
        .join("subjects")
        .join(format!("{fingerprint}.json"))
}

/// Loads the state; a missing file is a fresh state. A corrupt file is an
/// error naming the file (the caller decides whether to start fresh).
pub(crate) fn load(path: &Path) -> Result<Option<SubjectState>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            op: "read",
            source,
        }),
    }
}

pub(crate) fn save(path: &Path, st: &SubjectState, durable: bool) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(st).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    nexus_stdx::write_private(path, &bytes, durable)?;
    Ok(())
}
