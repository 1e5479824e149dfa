//! A generic webhook: one POST per alert, the body from a template. Covers
//! Slack, Mattermost and Discord-compatible bridges (`{"text": "{text}"}`),
//! Discord itself (`{"content": "{text}"}`) and Matrix hook bridges
//! (hookshot: `{"text": "{text}", "username": "nexus"}`).

use std::fmt;
use std::time::Duration;

use nexus_secret::{Redactor, Secret};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::channel::{Channel, Delivery, Outgoing, http_client, http_outcome, http_url};
use crate::error::Error;

const CHANNEL: &str = "webhook";

/// The body Slack, Mattermost and most bridges accept.
pub const DEFAULT_WEBHOOK_BODY: &str = r#"{"text": "{text}"}"#;

/// Where and what to POST.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The hook's URL (it often is a secret itself: it is never logged or
    /// kept in an error).
    pub url: String,
    /// The body template: `{title}`, `{text}` (plain), `{markdown}`
    /// (Telegram's MarkdownV2), `{severity}` (`critical`, `warning`, `ok`)
    /// and `{kind}` (`problems`, `reminder`, `recovery`) are replaced,
    /// JSON-escaped when `content_type` is JSON; any other `{...}` stays.
    pub body: String,
    /// `Content-Type` of the body. Default `application/json`.
    pub content_type: String,
    /// Extra request headers (no secrets here: use `token`).
    pub headers: Vec<(String, String)>,
    /// Sent as `Authorization: Bearer <token>`, if set.
    pub token: Option<Secret>,
    /// Timeout of the whole request. Default 10 s.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// `url` with the default body, JSON, no header or token, 10 s.
    pub fn new(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: url.to_owned(),
            body: DEFAULT_WEBHOOK_BODY.to_owned(),
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            token: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A webhook [`Channel`].
#[derive(Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: String,
    body: String,
    json: bool,
    headers: HeaderMap,
    redactor: Redactor,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            // A hook's path is its secret (Slack, Discord): the origin only.
            .field("url", &crate::channel::origin(&self.url))
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Checks the URL and headers and builds the client.
    pub fn new(cfg: &WebhookConfig) -> Result<Webhook, Error> {
        let url = http_url(CHANNEL, &cfg.url)?;
        let mut headers = HeaderMap::new();
        let setting = |field, why: String| Error::Setting {
            channel: CHANNEL,
            field,
            why,
        };
        let content_type = HeaderValue::from_str(cfg.content_type.trim())
            .map_err(|_| setting("content_type", "not a header value".into()))?;
        headers.insert(CONTENT_TYPE, content_type);
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|_| setting("headers", format!("{k:?} is not a header name")))?;
            let value = HeaderValue::from_str(v.trim()).map_err(|_| {
                setting(
                    "headers",
                    format!("the value of {k:?} is not a header value"),
                )
            })?;
            headers.insert(name, value);
        }
        let mut redactor = Redactor::new().secret(&url);
        // The path and query of a hook URL are its secret (Slack, Discord).
        if let Some((_, rest)) = url.split_once("://")
            && let Some((_, path)) = rest.split_once('/')
            && path.len() >= 8
        {
            redactor.add(path);
        }
        if let Some(t) = &cfg.token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                    setting("token", "contains characters a header cannot carry".into())
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
            redactor.add(t.expose());
        }
        let hook = Webhook {
            http: http_client(CHANNEL, cfg.timeout)?,
            url,
            body: cfg.body.clone(),
            json: cfg.content_type.to_ascii_lowercase().contains("json"),
            headers,
            redactor,
        };
        // A JSON body must still be JSON with any text in it: the
        // placeholders are in strings (`"{text}"`), not bare.
        if hook.json {
            let text = crate::markdown::Text::new().text("\"a\" {b}\\").line();
            let sample = Outgoing {
                title: "t",
                text: &text,
                kind: crate::alerts::Sent::Problems,
                severity: None,
            };
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&hook.render(&sample)) {
                return Err(setting(
                    "body",
                    format!(
                        "not JSON once filled in ({e}); put each placeholder inside a string, e.g. {DEFAULT_WEBHOOK_BODY}"
                    ),
                ));
            }
        }
        Ok(hook)
    }

    /// The body for `msg` (see [`WebhookConfig::body`]).
    pub fn render(&self, msg: &Outgoing<'_>) -> String {
        render_template(&self.body, msg, self.json)
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn send<'a>(&'a self, msg: &'a Outgoing<'a>) -> Delivery<'a> {
        Box::pin(async move {
            let sent = self
                .http
                .post(&self.url)
                .headers(self.headers.clone())
                .body(self.render(msg))
                .send()
                .await;
            http_outcome(CHANNEL, sent, &self.redactor).await
        })
    }
}

/// `template` with its placeholders replaced in one pass (a value that
/// contains `{text}` is never expanded again).
fn render_template(template: &str, msg: &Outgoing<'_>, json: bool) -> String {
    let mut out = String::with_capacity(template.len() + msg.text.plain().len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let v = match &after[..close] {
                "title" => msg.title,
                "text" => msg.text.plain(),
                "markdown" => msg.text.markdown(),
                "severity" => msg.severity_name(),
                "kind" => msg.kind_name(),
                _ => return None,
            };
            Some((v, close))
        });
        match value {
            Some((v, close)) => {
                if json {
                    let quoted = serde_json::Value::String(v.to_owned()).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                } else {
                    out.push_str(v);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Sent, Severity};
    use crate::markdown::Text;

    fn msg(text: &Text) -> Outgoing<'_> {
        Outgoing {
            title: "Nexus \"watchdog\"",
            text,
            kind: Sent::Problems,
            severity: Some(Severity::Critical),
        }
    }

    #[test]
    fn placeholders_are_json_escaped_once_and_other_braces_stay() {
        let text = Text::new().bold("disk").text(": \"full\" {text}\\").line();
        let m = msg(&text);
        let body = render_template(DEFAULT_WEBHOOK_BODY, &m, true);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "disk: \"full\" {text}\\\n");
        let t = r#"{"content": "{title} [{severity}/{kind}] {unknown} {markdown}"#;
        let body = render_template(t, &m, true);
        assert_eq!(
            body,
            r#"{"content": "Nexus \"watchdog\" [critical/problems] {unknown} *disk*: \"full\" \\{text\\}\\\\\n"#
        );
        let plain = render_template("{title}: {text}", &m, false);
        assert_eq!(plain, "Nexus \"watchdog\": disk: \"full\" {text}\\\n");
        assert_eq!(render_template("{tit", &m, true), "{tit");
    }

    #[test]
    fn a_json_body_that_is_no_json_once_filled_in_is_refused() {
        for bad in [r#"{"text": {text}}"#, r#"{"text": "{text}""#] {
            let mut cfg = WebhookConfig::new("https://hooks.example/x");
            cfg.body = bad.into();
            let e = Webhook::new(&cfg).unwrap_err().to_string();
            assert!(e.contains("body") && e.contains("not JSON"), "{e}");
        }
        let mut cfg = WebhookConfig::new("https://hooks.example/x");
        cfg.body = "{text}".into();
        cfg.content_type = "text/plain".into();
        assert!(Webhook::new(&cfg).is_ok());
    }

    #[test]
    fn the_url_and_token_never_show_in_debug() {
        let mut cfg = WebhookConfig::new("https://hooks.example/services/T000/B000/s3cr3t-path");
        cfg.token = Some(Secret::new("t0ken-canary"));
        let w = Webhook::new(&cfg).unwrap();
        let d = format!("{w:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("canary"), "{d}");
        let e = Webhook::new(&WebhookConfig::new("hooks.example/x?token=s3cr3t"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("url") && !e.contains("s3cr3t"), "{e}");
    }
}
