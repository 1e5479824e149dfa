//! The one seam between the [`crate::Alerter`]'s decisions and a way to
//! reach a person: Telegram, a webhook, ntfy, email. A channel only
//! delivers; dedup, reminders, cooldown, the message limit and the hold
//! after a 429 are the alerter's, the same for every channel.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use nexus_secret::{EXCERPT_CHARS, Redactor};

use crate::alerts::{Sent, Severity};
use crate::error::Error;
use crate::markdown::Text;

/// One alert message as the alerter decided it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The alerter's title (`Nexus watchdog`, `Cron heartbeats`).
    pub title: &'a str,
    /// The message, in both renderings (its first line is the title).
    pub text: &'a Text,
    /// What the message says: [`Sent::Problems`], [`Sent::Reminder`] or
    /// [`Sent::Recovery`].
    pub kind: Sent,
    /// The worst current problem's severity; `None` when everything
    /// recovered.
    pub severity: Option<Severity>,
}

impl Outgoing<'_> {
    /// `problems`, `reminder` or `recovery` (the webhook's `{kind}`).
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Sent::Recovery => "recovery",
            Sent::Reminder => "reminder",
            _ => "problems",
        }
    }

    /// `critical`, `warning` or `ok` (the webhook's `{severity}`).
    pub fn severity_name(&self) -> &'static str {
        match self.severity {
            Some(Severity::Critical) => "critical",
            Some(Severity::Warning) => "warning",
            None => "ok",
        }
    }

    /// The subject line: the plain rendering's first line.
    pub fn subject(&self) -> &str {
        self.text
            .plain()
            .lines()
            .next()
            .unwrap_or(self.title)
            .trim()
    }
}

/// The future a [`Channel`] returns.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// A way to reach a person. `send` delivers one message or says why not;
/// [`Error::retry_after`] on its error holds the channel's next message.
pub trait Channel: fmt::Debug + Send + Sync {
    /// `telegram`, `webhook`, `ntfy`, `email`: for logs and errors.
    fn name(&self) -> &'static str;

    /// Delivers `msg` (`Ok` only once the server accepted it).
    fn send<'a>(&'a self, msg: &'a Outgoing<'a>) -> Delivery<'a>;
}

/// Of an error reply only this much is read: its text is cut to an
/// excerpt of [`EXCERPT_CHARS`] anyway.
pub(crate) const MAX_ERROR_BYTES: usize = 16 << 10;

/// The wait when a 429 names none.
pub(crate) const DEFAULT_RETRY_AFTER: u64 = 60;

/// The outcome of an HTTP channel's request: 2xx delivered (the body is
/// never read), 429 [`Error::Throttled`] with `Retry-After` (seconds),
/// anything else [`Error::Refused`] with at most [`MAX_ERROR_BYTES`] of
/// the body, cleaned through `redactor`.
pub(crate) async fn http_outcome(
    channel: &'static str,
    sent: Result<reqwest::Response, reqwest::Error>,
    redactor: &Redactor,
) -> Result<(), Error> {
    let clean = |s: &str| redactor.clean(s, EXCERPT_CHARS).into_owned();
    let mut resp = sent.map_err(|e| Error::Failed {
        channel,
        detail: clean(&e.without_url().to_string()),
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status.as_u16() == 429 {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_RETRY_AFTER);
        return Err(Error::Throttled {
            channel,
            retry_after,
        });
    }
    let body = crate::telegram::read_capped(&mut resp, MAX_ERROR_BYTES, false)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    Err(Error::Refused {
        channel,
        status: format!("HTTP {}", status.as_u16()),
        detail: clean(&String::from_utf8_lossy(&body)),
    })
}

/// An HTTP client for a channel: `timeout` per request, no redirect (a
/// token in a header must not follow one elsewhere).
pub(crate) fn http_client(
    channel: &'static str,
    timeout: Duration,
) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Setting {
            channel,
            field: "http client",
            why: e.to_string(),
        })
}

/// `url` checked to be an absolute http(s) URL with a host.
pub(crate) fn http_url(channel: &'static str, url: &str) -> Result<String, Error> {
    let url = url.trim();
    match nexus_stdx::url_problem(url, &["http", "https"]) {
        Some(why) => Err(Error::Setting {
            channel,
            field: "url",
            // The problem quotes the URL: only its origin (a hook's path
            // and query are its secret).
            why: why.replace(url, &origin(url)),
        }),
        None => Ok(url.to_owned()),
    }
}

/// `scheme://host[:port]` of `url`, without user info, path or query
/// (where a hook URL or an ntfy topic keeps its secret).
pub(crate) fn origin(url: &str) -> String {
    let redacted = nexus_secret::redact_url(url);
    match redacted.split_once("://") {
        Some((scheme, rest)) => {
            format!("{scheme}://{}", rest.split('/').next().unwrap_or_default())
        }
        None => redacted.split('/').next().unwrap_or_default().to_owned(),
    }
}
