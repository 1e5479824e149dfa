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
    /// Another pool watches the same cells root.
    #[error("another resurrection pool{} is watching the cells root {} (lock file {}); one pool per cells root", pid.map(|p| format!(" (PID {p})")).unwrap_or_default(), root.display(), lock.display())]
    CellsRootBusy {
        /// The cells root.
        root: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// The holder's PID, if the lock file says.
        pid: Option<u32>,
    },
    /// A lock file (or its directory) anyone else could replace, or that
    /// cannot be taken.
    #[error("cannot lock {}: {why}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The pool's state file is not one (a link, a FIFO, bad JSON ...).
    #[error("bad pool state file {}: {reason}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A heartbeat or state write failed.
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
    /// A cell operation failed.
    #[error(transparent)]
    Cell(#[from] nexus_cell::Error),
}
