//! Typed errors; every variant names the file (and job and field).

use std::path::PathBuf;

/// A registry file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry file cannot be opened or read.
    #[error("cannot read registry {}: {source}", path.display())]
    Io {
        /// Registry path as given (e.g. `/etc/bezalel/cron-jobs.toml`).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("registry {}: {message}", path.display())]
    Toml {
        /// Registry path as given (e.g. `/etc/bezalel/cron-jobs.toml`).
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A field of one job is invalid.
    #[error("registry {}: job {job}: field `{field}`: {message}", path.display())]
    Field {
        /// Registry path as given (e.g. `/etc/bezalel/cron-jobs.toml`).
        path: PathBuf,
        /// The job (or `[defaults]`).
        job: String,
        /// Key inside the job's table, e.g. `schedule` or `interval`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A state or alert file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing a marker or state file failed.
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
    /// Listing or removing in a directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// State file or `checker-history.jsonl` in the configured state directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
