//! Typed errors. The bot token is part of every Bot API URL (and a webhook
//! URL is often a secret of its own), so no variant ever holds a URL:
//! transport errors are stored with the URL stripped. Text from a server (a
//! description, an error quoting the reply, an SMTP answer) is kept only
//! through `nexus_secret::Redactor::clean`: the token redacted even where
//! the server echoed the request path, no control character, an excerpt.

use std::path::PathBuf;

/// An error from the Telegram client, the other channels (webhook, ntfy,
/// email), the alerter or the approval poller.
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
    /// A webhook, ntfy or SMTP server answered with an error.
    #[error("{channel}: refused: {status}: {detail}")]
    Refused {
        /// `webhook`, `ntfy`, `email`.
        channel: &'static str,
        /// `HTTP 500`, `SMTP 550`, ...
        status: String,
        /// The server's text, cleaned (secrets redacted, no control
        /// character, an excerpt).
        detail: String,
    },
    /// A webhook or ntfy server asked us to slow down (429): nothing is
    /// sent on this channel before `retry_after` has passed.
    #[error("{channel}: rate limited (retry after {retry_after}s)")]
    Throttled {
        /// `webhook`, `ntfy`.
        channel: &'static str,
        /// Seconds the server asked to wait (`Retry-After`, else 60).
        retry_after: u64,
    },
    /// A webhook, ntfy or SMTP server could not be reached or the exchange
    /// broke off (connect, TLS, timeout).
    #[error("{channel}: unreachable: {detail}")]
    Failed {
        /// `webhook`, `ntfy`, `email`.
        channel: &'static str,
        /// What went wrong, without the URL, cleaned.
        detail: String,
    },
    /// A channel's configuration value is unusable.
    #[error("invalid {channel} configuration: {field}: {why}")]
    Setting {
        /// `webhook`, `ntfy`, `email`.
        channel: &'static str,
        /// Config field at fault.
        field: &'static str,
        /// What is wrong with the value (never a token or password).
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

impl Error {
    /// The seconds a server asked us to wait before the next message on
    /// this channel (a 429 from Telegram, a webhook or ntfy), if it did.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Throttled { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}
