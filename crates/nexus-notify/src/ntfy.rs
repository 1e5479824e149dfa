//! ntfy (<https://docs.ntfy.sh/publish/>): `POST <server>/<topic>` with
//! the plain text as the body and the `Title`, `Priority` and `Tags`
//! headers; an access token as `Authorization: Bearer`.

use std::fmt;
use std::time::Duration;

use nexus_secret::{Redactor, Secret};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::alerts::{Sent, Severity};
use crate::channel::{Channel, Delivery, Outgoing, http_client, http_outcome, http_url};
use crate::error::Error;

const CHANNEL: &str = "ntfy";

/// Where to publish.
#[derive(Debug, Clone)]
pub struct NtfyConfig {
    /// The server, default `https://ntfy.sh`.
    pub url: String,
    /// The topic (on a public server the topic is the password: pick one
    /// that cannot be guessed).
    pub topic: String,
    /// Tags added to every message (ntfy shows known emoji names as emoji);
    /// the alerter adds `rotating_light`, `warning` or `white_check_mark`.
    pub tags: Vec<String>,
    /// Access token (`tk_...`), sent as `Authorization: Bearer`, if set.
    pub token: Option<Secret>,
    /// Timeout of the whole request. Default 10 s.
    pub timeout: Duration,
}

impl NtfyConfig {
    /// `topic` on `url`, no tags or token, 10 s.
    pub fn new(url: &str, topic: &str) -> NtfyConfig {
        NtfyConfig {
            url: url.to_owned(),
            topic: topic.to_owned(),
            tags: Vec::new(),
            token: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// An ntfy [`Channel`].
#[derive(Clone)]
pub struct Ntfy {
    http: reqwest::Client,
    /// `<server>/<topic>`.
    url: String,
    tags: Vec<String>,
    auth: Option<HeaderValue>,
    /// The token `auth` carries, for `Debug` (redacted).
    token: Option<Secret>,
    redactor: Redactor,
}

impl fmt::Debug for Ntfy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ntfy")
            // The topic is a password on a public server: only the server.
            .field("server", &crate::channel::origin(&self.url))
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// ntfy's priority for a message: 5 (`urgent`) for critical problems, 4
/// (`high`) for warnings, 3 (`default`) for a recovery.
pub fn ntfy_priority(kind: Sent, severity: Option<Severity>) -> u8 {
    match (kind, severity) {
        (Sent::Recovery, _) | (_, None) => 3,
        (_, Some(Severity::Critical)) => 5,
        (_, Some(Severity::Warning)) => 4,
    }
}

impl Ntfy {
    /// Checks the server URL, topic and token and builds the client.
    pub fn new(cfg: &NtfyConfig) -> Result<Ntfy, Error> {
        let base = http_url(CHANNEL, &cfg.url)?;
        let topic = cfg.topic.trim();
        if topic.is_empty()
            || topic.len() > 64
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Setting {
                channel: CHANNEL,
                field: "topic",
                why: "must be 1 to 64 letters, digits, `-` or `_` (ntfy's rule)".into(),
            });
        }
        let mut redactor = Redactor::new().secret(topic);
        let auth = match &cfg.token {
            Some(t) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                        Error::Setting {
                            channel: CHANNEL,
                            field: "token",
                            why: "contains characters a header cannot carry".into(),
                        }
                    })?;
                v.set_sensitive(true);
                redactor.add(t.expose());
                Some(v)
            }
            None => None,
        };
        Ok(Ntfy {
            http: http_client(CHANNEL, cfg.timeout)?,
            url: format!("{}/{topic}", base.trim_end_matches('/')),
            tags: cfg.tags.iter().map(|t| t.trim().to_owned()).collect(),
            auth,
            token: cfg.token.clone(),
            redactor,
        })
    }

    /// The request headers for `msg`: `Title` (when it is printable ASCII;
    /// otherwise none, and the body keeps its title line), `Priority`,
    /// `Tags`. Whether a `Title` was set.
    fn headers(&self, msg: &Outgoing<'_>) -> (HeaderMap, bool) {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let title = msg.title.trim();
        let titled = match HeaderValue::from_str(title) {
            Ok(v) if title.is_ascii() && !title.is_empty() => {
                h.insert("Title", v);
                true
            }
            _ => false,
        };
        h.insert(
            "Priority",
            HeaderValue::from(u16::from(ntfy_priority(msg.kind, msg.severity))),
        );
        let icon = match (msg.kind, msg.severity) {
            (Sent::Recovery, _) | (_, None) => "white_check_mark",
            (_, Some(Severity::Critical)) => "rotating_light",
            (_, Some(Severity::Warning)) => "warning",
        };
        let tags: Vec<&str> = std::iter::once(icon)
            .chain(self.tags.iter().map(String::as_str))
            .filter(|t| !t.is_empty() && t.is_ascii() && !t.contains(','))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&tags.join(",")) {
            h.insert("Tags", v);
        }
        if let Some(a) = &self.auth {
            h.insert(AUTHORIZATION, a.clone());
        }
        (h, titled)
    }
}

impl Channel for Ntfy {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn send<'a>(&'a self, msg: &'a Outgoing<'a>) -> Delivery<'a> {
        Box::pin(async move {
            let (headers, titled) = self.headers(msg);
            // The body without the title line when the `Title` header
            // carries it: ntfy shows the title apart.
            let plain = msg.text.plain();
            let body = match plain.split_once('\n') {
                Some((_, rest)) if titled && !rest.trim().is_empty() => rest,
                _ => plain,
            };
            let sent = self
                .http
                .post(&self.url)
                .headers(headers)
                .body(body.to_owned())
                .send()
                .await;
            http_outcome(CHANNEL, sent, &self.redactor).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_severity_and_recovery_is_default() {
        assert_eq!(ntfy_priority(Sent::Problems, Some(Severity::Critical)), 5);
        assert_eq!(ntfy_priority(Sent::Reminder, Some(Severity::Warning)), 4);
        assert_eq!(ntfy_priority(Sent::Recovery, Some(Severity::Critical)), 3);
        assert_eq!(ntfy_priority(Sent::Recovery, None), 3);
    }

    #[test]
    fn a_bad_topic_is_refused_and_the_token_never_shows() {
        for t in ["", "a/b", "has space", &"x".repeat(65)] {
            let e = Ntfy::new(&NtfyConfig::new("https://ntfy.sh", t)).unwrap_err();
            assert!(e.to_string().contains("topic"), "{e}");
        }
        let mut cfg = NtfyConfig::new("https://ntfy.sh", "nexus-alerts");
        cfg.token = Some(Secret::new("tk_canary"));
        let n = Ntfy::new(&cfg).unwrap();
        assert!(!format!("{n:?}").contains("canary"));
    }
}
