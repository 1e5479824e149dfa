//! Typed errors naming the file and key.

use std::path::PathBuf;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be opened or read.
    #[error("cannot read watchdog config {}: {source}", path.display())]
    Read {
        /// Config path as passed to `load` (not resolved).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Malformed TOML, an unknown key, a wrong type or an inconsistent value.
    #[error("invalid watchdog config {origin}: {message}")]
    Parse {
        /// Config path as given, or the name the caller passed to `parse`.
        origin: String,
        /// What is wrong, with line, column and key where the parser knows them.
        message: String,
    },
    /// A value the parser accepted that the watchdog cannot use.
    #[error("invalid watchdog config {origin}: {at}: {why}")]
    Invalid {
        /// Config path as given, or the name the caller passed to `parse`.
        origin: String,
        /// The table and key (``[watchdog] `interval` ``, `[[recovery]] #2`).
        at: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Why a clean-up rule could not run at all (its root cannot be walked).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// The root is a symlink or not a directory.
    #[error("{}: not a directory (symlinked roots are refused)", root.display())]
    NotADirectory {
        /// The rule's `root`.
        root: PathBuf,
    },
    /// The root cannot be opened: missing, no permission, or another I/O error.
    #[error("{}: {source}", root.display())]
    Open {
        /// The rule's `root`.
        root: PathBuf,
        /// Error from opening the root directory.
        source: std::io::Error,
    },
}
