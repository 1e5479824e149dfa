//! `[webhook]`, `[ntfy]` and `[email]`: the other ways to reach a person,
//! serde-only like `[telegram]`, each with the same `repeat`,
//! `max_messages` and `message_window` and its own state file. Their
//! secrets (a bearer token, an access token, an SMTP password) come from a
//! variable (resolved once by the binary with `with_env`) or a private
//! file, never from the configuration file itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_notify::{
    AlertConfig, Alerter, Channel, DEFAULT_WEBHOOK_BODY, Email, EmailConfig, Ntfy, NtfyConfig,
    SmtpTls, Webhook, WebhookConfig,
};
use nexus_secret::Secret;
use nexus_stdx::deserialize_duration;
use serde::Deserialize;

use crate::settings::{Env, var};

/// Why a channel table cannot send: a line for the log or `check-config`
/// naming the table and the key, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelProblem {
    /// The line (`[ntfy]: invalid ntfy configuration: topic: ...`).
    pub why: String,
    /// Only that nothing would be sent (no URL, no password, a token file
    /// that cannot be used): a warning, as `[telegram]`'s missing token,
    /// not an error.
    pub unsent: bool,
}

impl ChannelProblem {
    /// A value that cannot work.
    fn error(why: String) -> ChannelProblem {
        ChannelProblem { why, unsent: false }
    }

    /// Something missing: nothing will be sent on this channel.
    fn unsent(why: String) -> ChannelProblem {
        ChannelProblem {
            why: format!("{why}: no message will be sent"),
            unsent: true,
        }
    }
}

impl std::fmt::Display for ChannelProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for ChannelProblem {}

/// A secret: the file's when one is configured and usable, else the
/// variable's (or a seed's); the error names the table, the key and the
/// file, never the secret.
fn secret(
    table: &str,
    key: &str,
    file: Option<&Path>,
    value: Option<&Secret>,
) -> Result<Option<Secret>, ChannelProblem> {
    match nexus_secret::token(None, file) {
        Ok(Some(s)) => Ok(Some(s)),
        Ok(None) => Ok(value.cloned()),
        Err(e) => Err(ChannelProblem::unsent(format!("[{table}] `{key}`: {e}"))),
    }
}

/// A table's findings: a zero `timeout` and why its channel cannot be
/// built are errors, unless nothing worse follows than no message being
/// sent (a missing URL or password, a token file that cannot be used):
/// warnings, as `[telegram]`'s.
fn findings<T>(
    table: &str,
    timeout: Duration,
    built: Result<T, ChannelProblem>,
) -> nexus_stdx::Findings {
    let mut f = nexus_stdx::Findings::default();
    if timeout.is_zero() {
        f.error(format!("[{table}] `timeout`: must be positive"));
    }
    match built {
        Ok(_) => {}
        Err(p) if p.unsent => f.warn(p.why),
        Err(p) => f.error(p.why),
    }
    f
}

/// An alerter over `channel` with a table's `repeat`, `max_messages` and
/// `message_window`, its state in `<state_dir>/<channel>-alerts.json`.
fn alerter(
    channel: impl Channel + 'static,
    state_dir: &Path,
    title: &str,
    (repeat, max_messages, message_window): (Duration, u32, Duration),
) -> Alerter {
    let file = state_dir.join(format!("{}-alerts.json", channel.name()));
    let mut cfg = AlertConfig::new(file, title);
    cfg.repeat = repeat;
    cfg.max_messages = max_messages;
    cfg.message_window = message_window;
    Alerter::with_channel(cfg, channel)
}

/// `[webhook]`: a POST per alert with a body template (Slack, Mattermost,
/// Discord, Matrix hook bridges).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// The hook's URL. A Slack or Discord hook URL is itself a secret:
    /// prefer `url_env`.
    pub url: String,
    /// The variable holding the URL; when set it wins over `url`.
    pub url_env: String,
    /// The body: `{title}`, `{text}`, `{markdown}`, `{severity}`, `{kind}`
    /// are replaced (JSON-escaped when `content_type` is JSON). Default
    /// `{"text": "{text}"}`.
    pub body: String,
    /// Default `application/json`.
    pub content_type: String,
    /// Extra request headers (no secrets: the token goes in `token_env` or
    /// `token_file`).
    pub headers: BTreeMap<String, String>,
    /// The variable holding a bearer token (optional).
    pub token_env: String,
    /// A file holding the bearer token, mode 0600 or stricter.
    pub token_file: Option<PathBuf>,
    /// The variable's token once [`WebhookSettings::with_env`] has run.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Timeout of each request.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Remind about an unchanged problem set this often.
    #[serde(deserialize_with = "deserialize_duration")]
    pub repeat: Duration,
    /// At most this many messages per `message_window` (0 = none).
    pub max_messages: u32,
    /// The sliding window of `max_messages`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub message_window: Duration,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            url: String::new(),
            url_env: "NEXUS_WEBHOOK_URL".into(),
            body: DEFAULT_WEBHOOK_BODY.into(),
            content_type: "application/json".into(),
            headers: BTreeMap::new(),
            token_env: "NEXUS_WEBHOOK_TOKEN".into(),
            token_file: None,
            token: None,
            timeout: Duration::from_secs(10),
            repeat: Duration::from_secs(3600),
            max_messages: 10,
            message_window: Duration::from_secs(600),
        }
    }
}

impl WebhookSettings {
    /// `$url_env` and `$token_env`, when set and not blank, win over `url`
    /// and `token_file`.
    pub fn with_env(mut self, env: Env<'_>) -> WebhookSettings {
        if let Some(u) = var(env, &self.url_env) {
            self.url = u.expose().to_owned();
        }
        if let Some(t) = var(env, &self.token_env) {
            self.token = Some(t);
            self.token_file = None;
        }
        self
    }

    /// The channel, or why there is none (never a URL's secret part or a
    /// token).
    pub fn channel(&self) -> Result<Webhook, ChannelProblem> {
        if self.url.trim().is_empty() {
            return Err(ChannelProblem::unsent(format!(
                "[webhook]: no `url` (or ${})",
                self.url_env
            )));
        }
        let token = secret(
            "webhook",
            "token_file",
            self.token_file.as_deref(),
            self.token.as_ref(),
        )?;
        let mut cfg = WebhookConfig::new(&self.url);
        cfg.body = self.body.clone();
        cfg.content_type = self.content_type.clone();
        cfg.headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        cfg.token = token;
        cfg.timeout = self.timeout;
        Webhook::new(&cfg).map_err(|e| ChannelProblem::error(format!("[webhook]: {e}")))
    }

    /// Errors (a URL that is none, a header that cannot be sent) and
    /// warnings (no URL, a token file that cannot be used: nothing would
    /// be sent), after [`WebhookSettings::with_env`].
    pub fn findings(&self) -> nexus_stdx::Findings {
        findings("webhook", self.timeout, self.channel())
    }
}

/// `[ntfy]`: `POST <url>/<topic>` with `Title`, `Priority`, `Tags`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtfySettings {
    /// The server. Default `https://ntfy.sh`.
    pub url: String,
    /// The topic (on a public server it is the password: make it long).
    pub topic: String,
    /// Tags added to every message (emoji short codes show as emoji).
    pub tags: Vec<String>,
    /// The variable holding an access token (optional).
    pub token_env: String,
    /// A file holding the access token, mode 0600 or stricter.
    pub token_file: Option<PathBuf>,
    /// The variable's token once [`NtfySettings::with_env`] has run.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Timeout of each request.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Remind about an unchanged problem set this often.
    #[serde(deserialize_with = "deserialize_duration")]
    pub repeat: Duration,
    /// At most this many messages per `message_window` (0 = none).
    pub max_messages: u32,
    /// The sliding window of `max_messages`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub message_window: Duration,
}

impl Default for NtfySettings {
    fn default() -> NtfySettings {
        NtfySettings {
            url: "https://ntfy.sh".into(),
            topic: String::new(),
            tags: Vec::new(),
            token_env: "NTFY_TOKEN".into(),
            token_file: None,
            token: None,
            timeout: Duration::from_secs(10),
            repeat: Duration::from_secs(3600),
            max_messages: 10,
            message_window: Duration::from_secs(600),
        }
    }
}

impl NtfySettings {
    /// `$token_env`, when set and not blank, wins over `token_file`.
    pub fn with_env(mut self, env: Env<'_>) -> NtfySettings {
        if let Some(t) = var(env, &self.token_env) {
            self.token = Some(t);
            self.token_file = None;
        }
        self
    }

    /// The channel, or why there is none (never the token).
    pub fn channel(&self) -> Result<Ntfy, ChannelProblem> {
        let token = secret(
            "ntfy",
            "token_file",
            self.token_file.as_deref(),
            self.token.as_ref(),
        )?;
        let mut cfg = NtfyConfig::new(&self.url, &self.topic);
        cfg.tags = self.tags.clone();
        cfg.token = token;
        cfg.timeout = self.timeout;
        Ntfy::new(&cfg).map_err(|e| ChannelProblem::error(format!("[ntfy]: {e}")))
    }

    /// Errors (a URL that is none, no or a bad topic) and warnings (a
    /// token file that cannot be used), after [`NtfySettings::with_env`].
    pub fn findings(&self) -> nexus_stdx::Findings {
        findings("ntfy", self.timeout, self.channel())
    }
}

/// `[email]`: SMTP, STARTTLS required by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// The SMTP server (its certificate must name it).
    pub host: String,
    /// Default 587 (465 for `tls = "tls"`).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (only to
    /// a loopback relay).
    pub tls: String,
    /// `From:`.
    pub from: String,
    /// `To:`, at least one address.
    pub to: Vec<String>,
    /// The SMTP login, if the server wants one.
    pub username: Option<String>,
    /// The variable holding the SMTP password.
    pub password_env: String,
    /// A file holding the password, mode 0600 or stricter.
    pub password_file: Option<PathBuf>,
    /// The variable's password once [`EmailSettings::with_env`] has run.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// Extra CA certificates (PEM) to trust: a private CA or a self-signed
    /// relay.
    pub ca_file: Option<PathBuf>,
    /// Timeout of each SMTP step (the whole exchange: three times this).
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Remind about an unchanged problem set this often.
    #[serde(deserialize_with = "deserialize_duration")]
    pub repeat: Duration,
    /// At most this many messages per `message_window` (0 = none).
    pub max_messages: u32,
    /// The sliding window of `max_messages`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub message_window: Duration,
}

impl Default for EmailSettings {
    fn default() -> EmailSettings {
        EmailSettings {
            host: String::new(),
            port: None,
            tls: "starttls".into(),
            from: String::new(),
            to: Vec::new(),
            username: None,
            password_env: "NEXUS_SMTP_PASSWORD".into(),
            password_file: None,
            password: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
            repeat: Duration::from_secs(3600),
            max_messages: 10,
            message_window: Duration::from_secs(600),
        }
    }
}

impl EmailSettings {
    /// `$password_env`, when set and not blank, wins over `password_file`.
    pub fn with_env(mut self, env: Env<'_>) -> EmailSettings {
        if let Some(p) = var(env, &self.password_env) {
            self.password = Some(p);
            self.password_file = None;
        }
        self
    }

    fn config(&self) -> Result<EmailConfig, ChannelProblem> {
        let tls = match self.tls.trim().to_ascii_lowercase().as_str() {
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                return Err(ChannelProblem::error(format!(
                    "[email] `tls`: {other:?} is none of \"starttls\", \"tls\", \"none\""
                )));
            }
        };
        if self.host.trim().is_empty() {
            return Err(ChannelProblem::error("[email]: no `host`".into()));
        }
        if self.from.trim().is_empty() {
            return Err(ChannelProblem::error("[email]: no `from` address".into()));
        }
        if self.to.is_empty() {
            return Err(ChannelProblem::error("[email]: no `to` address".into()));
        }
        let mut cfg = EmailConfig::new(&self.host, &self.from, &[]);
        cfg.to = self.to.clone();
        cfg.tls = tls;
        cfg.port = self
            .port
            .unwrap_or(if tls == SmtpTls::Tls { 465 } else { 587 });
        cfg.ca_file = self.ca_file.clone();
        cfg.timeout = self.timeout;
        cfg.username = self.username.clone().filter(|u| !u.trim().is_empty());
        Ok(cfg)
    }

    /// The channel, or why there is none (never the password).
    pub fn channel(&self) -> Result<Email, ChannelProblem> {
        let mut cfg = self.config()?;
        if cfg.username.is_some() {
            let password = secret(
                "email",
                "password_file",
                self.password_file.as_deref(),
                self.password.as_ref(),
            )?;
            cfg.password = Some(password.ok_or_else(|| {
                ChannelProblem::unsent(format!(
                    "[email]: `username` without a password in ${} or `password_file`",
                    self.password_env
                ))
            })?);
        }
        Email::new(&cfg).map_err(|e| ChannelProblem::error(format!("[email]: {e}")))
    }

    /// Errors (no host, from or to, an address that is none, a TLS mode
    /// that is none or clear text off loopback, a CA file that cannot be
    /// read) and warnings (no password for the login), after
    /// [`EmailSettings::with_env`].
    pub fn findings(&self) -> nexus_stdx::Findings {
        findings("email", self.timeout, self.channel())
    }
}

/// The configured `[webhook]`, `[ntfy]` and `[email]` tables, the
/// environment applied ([`crate::AlertTables::channels`]).
#[derive(Debug, Clone, Default)]
pub struct Channels {
    /// `[webhook]`.
    pub webhook: Option<WebhookSettings>,
    /// `[ntfy]`.
    pub ntfy: Option<NtfySettings>,
    /// `[email]`.
    pub email: Option<EmailSettings>,
}

impl Channels {
    /// One alerter per configured channel (state files
    /// `<channel>-alerts.json` under `state_dir`), and why a configured
    /// one could not be built.
    pub(crate) fn alerters(
        &self,
        state_dir: &Path,
        title: &str,
    ) -> (Vec<Alerter>, Vec<ChannelProblem>) {
        let built = [
            self.webhook.as_ref().map(|w| {
                let l = (w.repeat, w.max_messages, w.message_window);
                w.channel().map(|c| alerter(c, state_dir, title, l))
            }),
            self.ntfy.as_ref().map(|n| {
                let l = (n.repeat, n.max_messages, n.message_window);
                n.channel().map(|c| alerter(c, state_dir, title, l))
            }),
            self.email.as_ref().map(|e| {
                let l = (e.repeat, e.max_messages, e.message_window);
                e.channel().map(|c| alerter(c, state_dir, title, l))
            }),
        ];
        let mut ok = Vec::new();
        let mut why = Vec::new();
        for b in built.into_iter().flatten() {
            match b {
                Ok(a) => ok.push(a),
                Err(w) => why.push(w),
            }
        }
        (ok, why)
    }

    /// Every table's findings.
    pub fn findings(&self) -> nexus_stdx::Findings {
        let mut f = nexus_stdx::Findings::default();
        if let Some(w) = &self.webhook {
            f.extend(w.findings());
        }
        if let Some(n) = &self.ntfy {
            f.extend(n.findings());
        }
        if let Some(e) = &self.email {
            f.extend(e.findings());
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertProblem, AlertTables, Alerts, IncidentSettings, Severity};
    use std::collections::HashMap;

    fn tables(text: &str) -> AlertTables {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_tables_parse_with_their_defaults_and_name_a_bad_key() {
        let t = tables(
            "[jobs.a]\n[webhook]\nurl = \"https://hooks.example/x\"\nrepeat = \"2h\"\nheaders = { X-Env = \"prod\" }\n[ntfy]\ntopic = \"nexus-alerts\"\ntags = [\"server\"]\nmax_messages = 3\n[email]\nhost = \"mail.example\"\nfrom = \"nexus@example.org\"\nto = [\"ops@example.org\"]\nmessage_window = \"5m\"",
        );
        let w = t.webhook.unwrap();
        assert_eq!(w.repeat, Duration::from_secs(7200));
        assert_eq!(w.body, r#"{"text": "{text}"}"#);
        assert_eq!(w.headers["X-Env"], "prod");
        let n = t.ntfy.unwrap();
        assert_eq!((n.url.as_str(), n.max_messages), ("https://ntfy.sh", 3));
        let e = t.email.unwrap();
        assert_eq!((e.tls.as_str(), e.port), ("starttls", None));
        assert_eq!(e.message_window, Duration::from_secs(300));
        for (table, typo) in [("webhook", "urll"), ("ntfy", "topik"), ("email", "too")] {
            let err = toml::from_str::<AlertTables>(&format!("[{table}]\n{typo} = 1"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(typo), "{err}");
        }
    }

    #[test]
    fn findings_name_the_table_and_key_and_never_a_secret() {
        let none = |_: &str| None;
        let t = tables(
            "[webhook]\nurl = \"hooks.example/T0/s3cr3t-path\"\n[ntfy]\ntopic = \"\"\n[email]\nhost = \"mail.example\"\ntls = \"none\"\nfrom = \"nexus@example.org\"\nto = [\"ops@example.org\"]",
        );
        let f = t.findings(&none);
        let all = f.errors.join("\n");
        assert!(all.contains("[webhook]") && all.contains("url"), "{all}");
        assert!(!all.contains("s3cr3t"), "{all}");
        assert!(all.contains("[ntfy]") && all.contains("topic"), "{all}");
        assert!(all.contains("[email]") && all.contains("loopback"), "{all}");
        let t = tables("[email]\nhost = \"mail.example\"\nto = []");
        let all = t.findings(&none).errors.join("\n");
        assert!(all.contains("`from`"), "{all}");
        let t = tables("[email]\nhost = \"mail.example\"\nfrom = \"nexus@example.org\"");
        let all = t.findings(&none).errors.join("\n");
        assert!(all.contains("`to`"), "{all}");
        let t = tables(
            "[email]\nhost = \"mail.example\"\nfrom = \"x\"\nto = [\"ops@example.org\"]\ntls = \"ssl\"",
        );
        let all = t.findings(&none).errors.join("\n");
        assert!(all.contains("`tls`") && all.contains("\"ssl\""), "{all}");
        // A login without its password, a token file that cannot be used:
        // warnings (nothing will be sent), naming the variable or file.
        let t = tables(
            "[email]\nhost = \"mail.example\"\nfrom = \"nexus@example.org\"\nto = [\"ops@example.org\"]\nusername = \"nexus\"\n[ntfy]\ntopic = \"nexus-alerts\"\ntoken_file = \"/nonexistent/ntfy.token\"",
        );
        let f = t.findings(&none);
        assert!(f.usable(), "{:?}", f.errors);
        let w = f.warnings.join("\n");
        assert!(
            w.contains("NEXUS_SMTP_PASSWORD") && w.contains("ntfy.token"),
            "{w}"
        );
        // The password from the environment: no warning left.
        let vars: HashMap<&str, &str> = [
            ("NEXUS_SMTP_PASSWORD", "pw-canary"),
            ("NTFY_TOKEN", "tk_canary"),
        ]
        .into();
        let env = |k: &str| vars.get(k).map(|v| v.to_string());
        let f = t.findings(&env);
        assert!(f.warnings.is_empty() && f.errors.is_empty(), "{f:?}");
        let c = t.channels(&env);
        assert!(!format!("{c:?}").contains("canary"));
    }

    #[test]
    fn a_webhook_url_and_token_may_come_from_the_environment() {
        let vars: HashMap<&str, &str> = [
            (
                "NEXUS_WEBHOOK_URL",
                "https://hooks.example/T0/B0/url-canary",
            ),
            ("NEXUS_WEBHOOK_TOKEN", " tok-canary\n"),
        ]
        .into();
        let env = |k: &str| vars.get(k).map(|v| v.to_string());
        let w = WebhookSettings::default().with_env(&env);
        assert!(w.url.ends_with("url-canary"));
        assert_eq!(w.token.as_ref().map(Secret::expose), Some("tok-canary"));
        let shown = format!("{:?}", w.channel().unwrap());
        assert!(!shown.contains("canary"), "{shown}");
        let why = WebhookSettings::default()
            .channel()
            .unwrap_err()
            .to_string();
        assert!(why.contains("NEXUS_WEBHOOK_URL"), "{why}");
    }

    fn problem() -> [AlertProblem; 1] {
        [AlertProblem::new("disk", Severity::Critical, "full")]
    }

    /// Every configured channel is told; one that fails holds only its own
    /// message (its state file), retried next cycle; dry-run tells none.
    #[tokio::test]
    async fn every_channel_is_told_and_one_down_holds_only_itself() {
        let mut server = mockito::Server::new_async().await;
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "[webhook]\nurl = \"{0}/hook\"\n[ntfy]\nurl = \"{0}\"\ntopic = \"nexus-alerts\"",
            server.url()
        );
        let channels = tables(&text).channels(&|_| None);
        let i = IncidentSettings::named("watchdog", "[watchdog]");
        let mut dry =
            Alerts::new(&i, None, d.path(), true, "Nexus watchdog").with_channels(&channels);
        assert_eq!(dry.channel_names(), ["webhook", "ntfy"]);
        let log = dry.cycle("nexus", false, "down", "", &problem()).await;
        assert!(
            log.contains(&"dry-run: would tell webhook about 1 problem(s)".to_string()),
            "{log:?}"
        );
        assert!(
            log.contains(&"dry-run: would tell ntfy about 1 problem(s)".to_string()),
            "{log:?}"
        );

        let hook_down = server
            .mock("POST", "/hook")
            .with_status(503)
            .expect(1)
            .create_async()
            .await;
        let ntfy = server
            .mock("POST", "/nexus-alerts")
            .with_status(200)
            .expect(1)
            .create_async()
            .await;
        let mut a =
            Alerts::new(&i, None, d.path(), false, "Nexus watchdog").with_channels(&channels);
        let log = a.cycle("nexus", false, "down", "", &problem()).await;
        assert!(
            log.iter()
                .any(|l| l.starts_with("webhook: refused: HTTP 503")),
            "{log:?}"
        );
        assert!(log.contains(&"ntfy: Problems".to_string()), "{log:?}");
        hook_down.assert_async().await;
        hook_down.remove_async().await;
        let hook = server
            .mock("POST", "/hook")
            .with_status(200)
            .expect(1)
            .create_async()
            .await;
        let log = a.cycle("nexus", false, "down", "", &problem()).await;
        assert!(log.contains(&"webhook: Problems".to_string()), "{log:?}");
        hook.assert_async().await;
        ntfy.assert_async().await;
        assert!(d.path().join("webhook-alerts.json").is_file());
        assert!(d.path().join("ntfy-alerts.json").is_file());
    }

    #[tokio::test]
    async fn a_channel_that_cannot_work_is_said_once() {
        let d = tempfile::tempdir().unwrap();
        let channels = tables("[ntfy]\ntopic = \"bad topic\"").channels(&|_| None);
        let i = IncidentSettings::named("watchdog", "[watchdog]");
        let mut a =
            Alerts::new(&i, None, d.path(), false, "Nexus watchdog").with_channels(&channels);
        assert!(a.channel_names().is_empty());
        let first = a.cycle("nexus", true, "ok", "", &[]).await;
        assert!(
            first
                .iter()
                .any(|l| l.contains("[ntfy]") && l.contains("topic")),
            "{first:?}"
        );
        let second = a.cycle("nexus", true, "ok", "", &[]).await;
        assert!(second.iter().all(|l| !l.contains("[ntfy]")), "{second:?}");
    }
}
