//! Typed errors naming the file and key.

use std::path::PathBuf;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read watchdog config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Malformed TOML, an unknown key, a wrong type or an inconsistent value.
    #[error("invalid watchdog config {origin}: {message}")]
    Parse {
        /// The file name.
        origin: String,
        /// What is wrong, with line, column and key where the parser knows them.
        message: String,
    },
}
