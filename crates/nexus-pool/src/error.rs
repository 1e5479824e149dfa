//! Typed errors naming the file, field or agent.

use std::path::PathBuf;

/// An error of the pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration that cannot be used.
    #[error("invalid pool config {origin}: {message}")]
    Config {
        /// The file.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another pool holds the PID file lock.
    #[error("another resurrection pool is running (PID file {} is locked{})", path.display(), pid.map(|p| format!(" by PID {p}")).unwrap_or_default())]
    AlreadyRunning {
        /// The PID file.
        path: PathBuf,
        /// The PID written in it, if readable.
        pid: Option<u32>,
    },
    /// A heartbeat or state write failed.
    #[error(transparent)]
    Write(#[from] nexus_heartbeat::Error),
    /// A cell operation failed.
    #[error(transparent)]
    Cell(#[from] nexus_cell::Error),
}
