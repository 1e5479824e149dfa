//! `[incident]` and `[telegram]` (and, through [`AlertTables`], the
//! `[webhook]`, `[ntfy]` and `[email]` tables of `channels.rs`):
//! serde-only settings every daemon embeds
//! in its own configuration file, typed. Nothing here reads the process
//! environment: the binary resolves the overrides once, at its edge, with
//! [`IncidentSettings::with_env`] and [`TelegramSettings::with_env`].
//!
//! The defaults configure no forge and no chat: the product's values (the
//! forge URL, the repository, the assignees) live in `docs/examples`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_gitea::{Engine, EngineConfig, GiteaClient, GiteaConfig, Token};
use nexus_notify::{BotToken, Telegram, TelegramConfig};
use nexus_secret::Secret;
use nexus_stdx::deserialize_duration;
use serde::Deserialize;

use crate::channels::{Channels, EmailSettings, NtfySettings, WebhookSettings};

/// A lookup of one environment variable: `|k| std::env::var(k).ok()` at a
/// binary's edge, a table in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `[incident]`: one Gitea issue per failing subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// Gitea base URL (`GITEA_URL` overrides); empty: no forge configured.
    pub url: String,
    /// `owner/name` (`NEXUS_REPO` overrides); empty: no forge configured.
    pub repo: String,
    /// The variable holding the token (never the token itself).
    pub token_env: String,
    /// A file holding the token, mode 0600 or stricter (a looser file is
    /// refused, see `nexus-secret`); used when the variable is not set.
    pub token_file: Option<PathBuf>,
    /// A token from a seed JSON file, or the variable's once
    /// [`IncidentSettings::with_env`] has run; the file wins over a seed's.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// The issue label (empty: the binary's own, see [`IncidentSettings::or_named`]).
    pub label: String,
    /// The title prefix (`[watchdog]`, `[heartbeat-checker]`, `[pool]`;
    /// empty: the binary's own).
    pub title_prefix: String,
    /// Assignees; unknown users are left out and named in the issue.
    pub assignees: Vec<String>,
    /// Issues created per subject per day at most.
    pub max_issues_per_day: u32,
    /// An unchanged failure is commented at most this often (a change of
    /// the diagnostics alone does not count).
    #[serde(deserialize_with = "deserialize_duration")]
    pub comment_min_interval: Duration,
    /// A change of what fails (a check starts or stops failing, a severity
    /// changes) is commented sooner, but not within this of the last
    /// comment.
    #[serde(deserialize_with = "deserialize_duration")]
    pub comment_change_floor: Duration,
    /// A subject failing again within this window reopens its issue.
    #[serde(deserialize_with = "deserialize_duration")]
    pub reopen_window: Duration,
    /// Rate limit: at most this many issue actions (create, comment,
    /// close/reopen) per `action_window`, across all subjects; 0 = none.
    /// Subjects beyond it wait, and only their final state is reported.
    pub max_actions: u32,
    /// The sliding window of `max_actions`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub action_window: Duration,
    /// While Gitea fails, queued actions are retried this often.
    #[serde(deserialize_with = "deserialize_duration")]
    pub retry_interval: Duration,
    /// Timeout of each Gitea request.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
}

impl Default for IncidentSettings {
    fn default() -> IncidentSettings {
        IncidentSettings {
            url: String::new(),
            repo: String::new(),
            token_env: "GITEA_TOKEN".to_string(),
            token_file: None,
            token: None,
            label: String::new(),
            title_prefix: String::new(),
            assignees: Vec::new(),
            max_issues_per_day: 5,
            comment_min_interval: Duration::from_secs(3600),
            comment_change_floor: Duration::from_secs(600),
            reopen_window: Duration::from_secs(86_400),
            max_actions: 60,
            action_window: Duration::from_secs(600),
            retry_interval: nexus_gitea::OUTBOX_RETRY,
            timeout: Duration::from_secs(15),
        }
    }
}

/// The variable's value, trimmed, when set and not blank.
pub(crate) fn var(env: Env<'_>, name: &str) -> Option<Secret> {
    env(name).as_deref().and_then(Secret::trimmed)
}

impl IncidentSettings {
    /// Defaults with a binary's label and title prefix.
    pub fn named(label: &str, title_prefix: &str) -> IncidentSettings {
        IncidentSettings::default().or_named(label, title_prefix)
    }

    /// Fills an empty label or title prefix (a config table that names
    /// neither) with the binary's own.
    pub fn or_named(mut self, label: &str, title_prefix: &str) -> IncidentSettings {
        if self.label.is_empty() {
            self.label = label.to_string();
        }
        if self.title_prefix.is_empty() {
            self.title_prefix = title_prefix.to_string();
        }
        self
    }

    /// The environment overrides, resolved once by the binary: `GITEA_URL`
    /// and `NEXUS_REPO` when set; `$token_env` when set and not blank wins
    /// over `token_file` and a seed's token.
    pub fn with_env(mut self, env: Env<'_>) -> IncidentSettings {
        if let Some(url) = env("GITEA_URL") {
            self.url = url;
        }
        if let Some(repo) = env("NEXUS_REPO") {
            self.repo = repo;
        }
        if let Some(t) = var(env, &self.token_env) {
            self.token = Some(t);
            self.token_file = None;
        }
        self
    }

    /// A forge is configured: a URL and a repository.
    pub fn is_configured(&self) -> bool {
        !self.url.trim().is_empty() && !self.repo.trim().is_empty()
    }

    /// The token: `token_file`'s, else [`IncidentSettings::token`]'s (the
    /// variable's after [`IncidentSettings::with_env`], or a seed's),
    /// trimmed; `None` if none (or the token file is unusable: see
    /// [`IncidentSettings::token_problem`]).
    pub fn token(&self) -> Option<Token> {
        let file = nexus_secret::token(None, self.token_file.as_deref())
            .ok()
            .flatten();
        file.or_else(|| self.token.clone())
            .and_then(|t| Token::new(t.expose()))
    }

    /// The values that cannot work (errors) or leave issues unfiled
    /// (warnings), after [`IncidentSettings::with_env`]: each line names
    /// `[incident]` and the key, never a token.
    pub fn findings(&self) -> nexus_stdx::Findings {
        let mut f = nexus_stdx::Findings::default();
        if !self.url.trim().is_empty()
            && let Some(why) = nexus_stdx::url_problem(self.url.trim(), &["http", "https"])
        {
            f.error(format!("[incident] `url` (or GITEA_URL): {why}"));
        }
        if !self.repo.trim().is_empty() && self.repo.trim().split('/').count() != 2 {
            f.error(format!(
                "[incident] `repo` (or NEXUS_REPO): {:?} is not `owner/name`",
                self.repo
            ));
        }
        if self.is_configured() {
            if let Some(why) = self.token_problem() {
                f.warn(format!(
                    "[incident] `token_file`: {why}: no issue will be filed"
                ));
            } else if self.token().is_none() {
                f.warn(format!(
                    "[incident]: no token in ${} or `token_file`: no issue will be filed (set it where the service's environment comes from)",
                    self.token_env
                ));
            }
        }
        f
    }

    /// Why `token_file` cannot be used (loose mode, empty, missing), when
    /// the variable does not take its place. Names the file, never the token.
    pub fn token_problem(&self) -> Option<String> {
        nexus_secret::token(None, self.token_file.as_deref())
            .err()
            .map(|e| e.to_string())
    }

    /// The engine; without a forge or a token it manages no issue (the
    /// engine warns once).
    pub fn engine(&self, state_dir: &Path, dry_run: bool) -> Engine {
        let client = self.token().filter(|_| self.is_configured()).and_then(|t| {
            let mut g = GiteaConfig::new(&self.url, &self.repo, t);
            g.timeout = self.timeout;
            GiteaClient::new(&g).ok()
        });
        let mut cfg = EngineConfig::new(state_dir, &self.label, &self.title_prefix);
        cfg.assignees = self
            .assignees
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case("none") && !a.is_empty())
            .cloned()
            .collect();
        cfg.max_issues_per_day = self.max_issues_per_day;
        cfg.comment_min_interval = self.comment_min_interval;
        cfg.comment_change_floor = self.comment_change_floor;
        cfg.reopen_window = self.reopen_window;
        cfg.max_actions = self.max_actions;
        cfg.action_window = self.action_window;
        cfg.outbox_retry = self.retry_interval;
        cfg.dry_run = dry_run;
        Engine::new(cfg, client)
    }
}

/// `[telegram]`: messages per problem set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramSettings {
    /// The chat (`TELEGRAM_CHAT_ID` overrides); 0: none.
    pub chat_id: i64,
    /// The variable holding the bot token.
    pub token_env: String,
    /// A file holding the bot token, mode 0600 or stricter; used when the
    /// variable is not set.
    pub token_file: Option<PathBuf>,
    /// A token from a seed JSON file, or the variable's once
    /// [`TelegramSettings::with_env`] has run; the file wins over a seed's.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Bot API root (no token in it), default `https://api.telegram.org`.
    pub api_url: String,
    /// Remind about an unchanged problem set this often.
    #[serde(deserialize_with = "deserialize_duration")]
    pub repeat: Duration,
    /// Rate limit: at most this many alert messages per `message_window`
    /// (0 = none). A message held back is not lost: the next one allowed
    /// carries the current state and says updates were held back.
    pub max_messages: u32,
    /// The sliding window of `max_messages`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub message_window: Duration,
    /// The longest flood-control wait (429 `retry_after`) slept through
    /// inside a cycle; a longer one holds alerts and approvals until it has
    /// passed instead of stalling the cycle.
    #[serde(deserialize_with = "deserialize_duration")]
    pub max_flood_wait: Duration,
}

impl Default for TelegramSettings {
    fn default() -> TelegramSettings {
        TelegramSettings {
            chat_id: 0,
            token_env: "TELEGRAM_BOT_TOKEN".to_string(),
            token_file: None,
            token: None,
            api_url: "https://api.telegram.org".to_string(),
            repeat: Duration::from_secs(3600),
            max_messages: 10,
            message_window: Duration::from_secs(600),
            max_flood_wait: Duration::from_secs(5),
        }
    }
}

impl TelegramSettings {
    /// The environment overrides, resolved once by the binary:
    /// `TELEGRAM_CHAT_ID` when set and a number; `$token_env` when set and
    /// not blank wins over `token_file` and a seed's token.
    pub fn with_env(mut self, env: Env<'_>) -> TelegramSettings {
        if let Some(chat) = env("TELEGRAM_CHAT_ID").and_then(|c| c.trim().parse().ok()) {
            self.chat_id = chat;
        }
        if let Some(t) = var(env, &self.token_env) {
            self.token = Some(t);
            self.token_file = None;
        }
        self
    }

    /// The values that cannot work (errors) or leave messages unsent
    /// (warnings), after [`TelegramSettings::with_env`]: each line names
    /// `[telegram]` and the key, never a token.
    pub fn findings(&self) -> nexus_stdx::Findings {
        let mut f = nexus_stdx::Findings::default();
        if let Some(why) = nexus_stdx::url_problem(&self.api_url, &["http", "https"]) {
            f.error(format!("[telegram] `api_url`: {why}"));
        }
        if self.chat_id == 0 {
            f.warn("[telegram]: no `chat_id` (or TELEGRAM_CHAT_ID): no message will be sent");
        }
        match nexus_secret::token(None, self.token_file.as_deref()) {
            Err(e) => f.warn(format!("[telegram] `token_file`: {e}: no message will be sent")),
            Ok(None) if self.token.is_none() => f.warn(format!(
                "[telegram]: no bot token in ${} or `token_file`: no message will be sent (set it where the service's environment comes from)",
                self.token_env
            )),
            Ok(_) => {}
        }
        f
    }

    /// The Telegram client, when a token and a chat are known.
    pub fn client(&self) -> Option<Telegram> {
        if self.chat_id == 0 {
            return None;
        }
        let raw = nexus_secret::token(None, self.token_file.as_deref())
            .ok()
            .flatten()
            .or_else(|| self.token.clone())?;
        let mut cfg = TelegramConfig::new(BotToken::new(raw.expose())?, self.chat_id);
        cfg.base_url = self.api_url.clone();
        cfg.max_retry_wait = self.max_flood_wait;
        Telegram::new(&cfg).ok()
    }
}

/// The alert tables of a daemon's configuration file, for a library that
/// owns the rest of the file and lets its binary type these
/// (`nexus_cron::Registry::load_with`, `nexus_watch::WatchdogFile::load_with`).
/// Other tables are the library's: they are skipped here.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertTables {
    /// `[incident]`.
    #[serde(default)]
    pub incident: Option<IncidentSettings>,
    /// `[telegram]`.
    #[serde(default)]
    pub telegram: Option<TelegramSettings>,
    /// `[webhook]`.
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    /// `[ntfy]`.
    #[serde(default)]
    pub ntfy: Option<NtfySettings>,
    /// `[email]`.
    #[serde(default)]
    pub email: Option<EmailSettings>,
}

impl AlertTables {
    /// Every table's findings (see [`IncidentSettings::findings`]), after
    /// the environment is applied with `env`.
    pub fn findings(&self, env: Env<'_>) -> nexus_stdx::Findings {
        let mut f = nexus_stdx::Findings::default();
        if let Some(i) = &self.incident {
            f.extend(i.clone().with_env(env).findings());
        }
        if let Some(t) = &self.telegram {
            f.extend(t.clone().with_env(env).findings());
        }
        f.extend(self.channels(env).findings());
        f
    }

    /// `[webhook]`, `[ntfy]` and `[email]` with the environment applied
    /// (for [`crate::Alerts::with_channels`]).
    pub fn channels(&self, env: Env<'_>) -> Channels {
        Channels {
            webhook: self.webhook.clone().map(|w| w.with_env(env)),
            ntfy: self.ntfy.clone().map(|n| n.with_env(env)),
            email: self.email.clone().map(|e| e.with_env(env)),
        }
    }
}
