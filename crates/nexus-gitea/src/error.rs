//! Typed errors. Every variant names the call (method and API path), the file
//! or the field it is about. None of them can carry the token: the token only
//! ever lives in [`crate::Token`], whose `Debug` is redacted, and in the
//! `Authorization` header, which no error formats. Text from the server (its
//! `message`, a decode or transport error that quotes it) is kept only
//! through `nexus_secret::Redactor::clean`: the token redacted even where
//! the server echoed it, no control character, at most an excerpt.

use std::path::PathBuf;

/// An error from the Gitea client, the incident engine or the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Gitea answered with a non-success status (after retries, for 5xx and 429).
    #[error("gitea {method} {path}: HTTP {status}: {}", if message.is_empty() { "(no message)" } else { message.as_str() })]
    Status {
        /// HTTP method.
        method: &'static str,
        /// API path below `/api/v1` (never contains the token).
        path: String,
        /// HTTP status code.
        status: u16,
        /// Gitea's `message` field (or the body's text), cleaned: the token
        /// redacted, no control character, at most
        /// [`nexus_secret::EXCERPT_CHARS`] characters; possibly empty.
        message: String,
    },
    /// Gitea answered 2xx with a body longer than the client reads
    /// ([`crate::MAX_REPLY_BYTES`]); what it sent beyond was never read.
    #[error("gitea {method} {path}: reply larger than {limit} bytes; refused")]
    TooLarge {
        /// HTTP method.
        method: &'static str,
        /// API path below `/api/v1`.
        path: String,
        /// Bytes read before giving up ([`crate::MAX_REPLY_BYTES`]).
        limit: usize,
    },
    /// The request could not be sent or no answer arrived in time (after retries).
    #[error("gitea {method} {path}: unreachable after {attempts} attempt(s): {detail}")]
    Unreachable {
        /// HTTP method.
        method: &'static str,
        /// API path below `/api/v1`.
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// The transport error, with any URL removed.
        detail: String,
    },
    /// Gitea answered 2xx with a body that is not the documented JSON.
    #[error("gitea {method} {path}: unexpected response body: {detail}")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// API path below `/api/v1`.
        path: String,
        /// What did not parse.
        detail: String,
    },
    /// A configuration value is unusable.
    #[error("invalid gitea configuration: {field}: {why}")]
    Config {
        /// The field (`base_url`, `repo`, `token`, ...).
        field: &'static str,
        /// Why it was rejected.
        why: String,
    },
    /// A state, lock or outbox file could not be read or written.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// State, lock or outbox path as configured (not canonicalised).
        path: PathBuf,
        /// What was being done (`lock`, `read`, `create dir`, ...).
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A state or outbox file holds JSON we cannot use.
    #[error("{}: corrupt JSON: {detail}", path.display())]
    Corrupt {
        /// State file, or the outbox entry file.
        path: PathBuf,
        /// The serde error (names line, column and field).
        detail: String,
    },
    /// Writing a state or outbox file atomically failed.
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
}

impl Error {
    /// The HTTP status, when Gitea answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when Gitea could not be reached or is failing (network error, 5xx,
    /// 429): the action should be queued in the outbox and retried later.
    /// Any other 4xx is permanent: retrying the same request cannot succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
