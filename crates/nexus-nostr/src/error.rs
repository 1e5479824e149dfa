//! Errors: never with the secret key in them.

use std::path::PathBuf;

/// What went wrong with Nostr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is wrong (names the key, never the secret).
    #[error("[nostr] `{field}`: {why}")]
    Config {
        /// Key in `[nostr]`, e.g. `relays` or `recipient_pubkey`.
        field: &'static str,
        /// What is wrong with the value (never the secret itself).
        why: String,
    },
    /// No relay could be reached or answered in time.
    #[error("no nostr relay answered ({why}); next try in {retry_in:.0}s")]
    Down {
        /// Seconds until a relay is tried again.
        retry_in: f64,
        /// Last relay's failure as `<url>: <reason>`, or that every relay is backing off.
        why: String,
    },
    /// Relays answered, but none accepted the event.
    #[error("no nostr relay accepted the request: {0}")]
    Refused(String),
    /// Building, signing or encrypting an event failed.
    #[error("nostr: {0}")]
    Event(String),
    /// The approval state file could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// State file path as configured.
        path: PathBuf,
        /// Error from reading or writing the file.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Seconds until a relay is due again (0 when not a back-off).
    pub fn retry_in(&self) -> f64 {
        match self {
            Error::Down { retry_in, .. } => *retry_in,
            _ => 0.0,
        }
    }
}
