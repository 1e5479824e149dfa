//! Typed errors. The bot token is part of every Bot API URL, so no variant
//! ever holds a URL: transport errors are stored with the URL stripped. Text
//! from the server (a description, an error quoting the reply) is kept only
//! through `nexus_secret::Redactor::clean`: the token redacted even where
//! the server echoed the request path, no control character, an excerpt.

use std::path::PathBuf;

/// An error from the Telegram client, the alerter or the approval poller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Telegram answered `ok: false` (HTTP status = `error_code`).
    #[error("telegram {method}: HTTP {status}: {description}")]
    Api {
        /// Bot API method (`sendMessage`, ...).
        method: &'static str,
        /// HTTP status / `error_code`.
        status: u16,
        /// Telegram's `description` (or the body's text), cleaned: the
        /// token redacted, no control character, at most
        /// [`nexus_secret::EXCERPT_CHARS`] characters.
        description: String,
    },
    /// A successful reply longer than the client reads
    /// ([`crate::MAX_REPLY_BYTES`]); the rest was never read.
    #[error("telegram {method}: reply larger than {limit} bytes; refused")]
    TooLarge {
        /// Bot API method.
        method: &'static str,
        /// Bytes read before giving up ([`crate::MAX_REPLY_BYTES`]).
        limit: usize,
    },
    /// Flood control asked for a longer wait than allowed, or kept refusing.
    #[error("telegram {method}: rate limited (retry after {retry_after}s)")]
    RateLimited {
        /// Bot API method.
        method: &'static str,
        /// Seconds Telegram asked to wait.
        retry_after: u64,
    },
    /// No answer (network error or timeout), after retries.
    #[error("telegram {method}: unreachable: {detail}")]
    Unreachable {
        /// Bot API method.
        method: &'static str,
        /// The transport error without the URL.
        detail: String,
    },
    /// A 2xx answer that is not the documented envelope.
    #[error("telegram {method}: unexpected response: {detail}")]
    Decode {
        /// Bot API method.
        method: &'static str,
        /// What did not parse.
        detail: String,
    },
    /// A configuration value is unusable.
    #[error("invalid telegram configuration: {field}: {why}")]
    Config {
        /// Config field or argument at fault (`base_url`, `token`, `request_id`, ...).
        field: &'static str,
        /// What is wrong with the value (never the value itself when it is the token).
        why: String,
    },
    /// A state file could not be read.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// State file path as configured.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing a state file atomically failed.
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
}
