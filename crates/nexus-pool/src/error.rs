//! Typed errors naming the file, field or agent.

use std::path::PathBuf;

/// Everything the pool's library calls can fail with; each names what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration that cannot be used.
    #[error("invalid pool config {origin}: {message}")]
    Config {
        /// Config file path as given, or a pseudo-source such as `(nostr secret key)`.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A read, write or stat of one of the pool's files failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path as configured (not canonicalised).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another pool holds the PID file lock.
    #[error("another resurrection pool is running (PID file {} is locked{})", path.display(), pid.map(|p| format!(" by PID {p}")).unwrap_or_default())]
    AlreadyRunning {
        /// PID file path as configured.
        path: PathBuf,
        /// The PID written in it, if readable.
        pid: Option<u32>,
    },
    /// Another pool watches the same cells root.
    #[error("another resurrection pool{} is watching the cells root {} (lock file {}); one pool per cells root", pid.map(|p| format!(" (PID {p})")).unwrap_or_default(), root.display(), lock.display())]
    CellsRootBusy {
        /// Cells root as configured in `[cells] root`.
        root: PathBuf,
        /// `<root>/.resurrection-pool.lock`, held while a pool runs.
        lock: PathBuf,
        /// The holder's PID, if the lock file says.
        pid: Option<u32>,
    },
    /// A lock file (or its directory) anyone else could replace, or that
    /// cannot be taken.
    #[error("cannot lock {}: {why}", path.display())]
    Lock {
        /// PID file, or the cells root's `.resurrection-pool.lock`.
        path: PathBuf,
        /// In words: the root is not a directory, others could replace the file, or the I/O error.
        why: String,
    },
    /// The pool's state file is not one (a link, a FIFO, bad JSON ...).
    #[error("bad pool state file {}: {reason}", path.display())]
    State {
        /// State file path as configured.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A heartbeat or state write failed.
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
    /// Opening, reading or writing a mission cell failed.
    #[error(transparent)]
    Cell(#[from] nexus_cell::Error),
    /// `[ping]` is set but its token file cannot be used (a ping endpoint
    /// without a token would let anyone write heartbeats).
    #[error("invalid pool config [ping]: {0}")]
    PingTokenUnreadable(#[source] nexus_secret::Error),
    /// `[ping]` is set but neither its variable nor its file holds a token
    /// long enough.
    #[error("invalid pool config [ping]: needs a token of at least 16 characters in ${env}{}", file.as_ref().map(|f| format!(" or {}", f.display())).unwrap_or_default())]
    PingTokenMissing {
        /// The variable named by `token_env`.
        env: String,
        /// The file named by `token_file`.
        file: Option<PathBuf>,
    },
    /// A table that needs a token (`[alertmanager]`) names a token file
    /// that cannot be used.
    #[error("invalid pool config [{table}]: {source}")]
    TokenUnreadable {
        /// The table.
        table: &'static str,
        /// Why the file cannot be used.
        #[source]
        source: nexus_secret::Error,
    },
    /// A table that needs a token (`[alertmanager]`) has neither its
    /// variable nor its file holding one long enough.
    #[error("invalid pool config [{table}]: needs a token of at least 16 characters in ${env}{}", file.as_ref().map(|f| format!(" or {}", f.display())).unwrap_or_default())]
    TokenMissing {
        /// The table.
        table: &'static str,
        /// The variable named by `token_env`.
        env: String,
        /// The file named by `token_file`.
        file: Option<PathBuf>,
    },
    /// A revive command without a program.
    #[error("empty revive_cmd")]
    EmptyReviveCmd,
    /// Cell events could not be appended; they wait in memory for the
    /// next try.
    #[error("{source} ({kept} events kept to retry)")]
    EventsKept {
        /// Error of the most recent failed append (earlier ones are not kept).
        source: nexus_cell::Error,
        /// How many events wait.
        kept: usize,
    },
}

impl Error {
    /// Whether a person must fix something before the pool can run (the
    /// config, another pool on the same state or cells root, a lock file
    /// others could replace): exit code 2 rather than 1.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::AlreadyRunning { .. }
                | Error::CellsRootBusy { .. }
                | Error::Lock { .. }
                | Error::Config { .. }
                | Error::PingTokenUnreadable(_)
                | Error::PingTokenMissing { .. }
                | Error::TokenUnreadable { .. }
                | Error::TokenMissing { .. }
        )
    }
}

/// What a person must fix ([`Error::is_usage`]) is a configuration error
/// (exit code 2); the rest is a failure (1).
impl nexus_stdx::HasExitKind for Error {
    fn exit_kind(&self) -> nexus_stdx::ExitKind {
        nexus_stdx::ExitKind::config_if(self.is_usage())
    }
}
