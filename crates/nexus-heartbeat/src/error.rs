//! Typed errors. Every variant names the file (and field) it is about.

use std::path::PathBuf;

/// An error while writing a heartbeat.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The parent directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The target path has no file name (e.g. `/` or `..`).
    #[error("{}: not a file path", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// Writing, syncing or renaming the temp file failed; the old file is intact.
    #[error("cannot write {}: {op}: {source}", path.display())]
    Write {
        /// The heartbeat file that was being replaced.
        path: PathBuf,
        /// The step that failed (`create temp file`, `write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The document could not be serialised (never expected for our types).
    #[error("cannot serialise heartbeat for {}: {source}", path.display())]
    Serialise {
        /// The target path.
        path: PathBuf,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A cron job name outside `[A-Za-z0-9._-]+`.
    #[error(transparent)]
    JobName(#[from] JobNameError),
    /// No candidate directory accepted the cron heartbeat.
    #[error("cannot write heartbeat for job {job:?} in any directory: {}", tried.join("; "))]
    NoDirectory {
        /// The job.
        job: String,
        /// One line per directory tried: `<dir>: <error>`.
        tried: Vec<String>,
    },
}

/// A job name that cannot be used as a file name stem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job name {name:?}: {why}")]
pub struct JobNameError {
    /// The rejected name (as given).
    pub name: String,
    /// Why it was rejected.
    pub why: &'static str,
}
