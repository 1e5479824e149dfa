//! Incident delivery for the binaries (watchdog, cron checker, pool): the
//! `[incident]` (Gitea) and `[telegram]` settings they share, with the
//! environment overrides of the spec (`GITEA_URL`, `NEXUS_REPO`,
//! `GITEA_TOKEN`, `TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`), and [`Alerts`],
//! which builds the `nexus-gitea` engine and the `nexus-notify` alerter and
//! is called once per cycle with the cycle's one evaluation.
//!
//! # What this crate must never do
//! - Show a token: settings hold the *name* of the variable; a token read
//!   from a seed file is kept out of `Debug`.
//! - Make an HTTP call in dry-run mode, or fail a cycle because Gitea or
//!   Telegram is down (their own queues and state files keep the work).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_gitea::{Check, Engine, EngineConfig, GiteaClient, GiteaConfig, Outcome, Token};
use nexus_notify::{AlertConfig, Alerter, BotToken, Problem, Telegram, TelegramConfig};
use nexus_stdx::deserialize_duration;
use serde::Deserialize;

pub use nexus_notify::{Problem as AlertProblem, Severity};

/// `[incident]`: one Gitea issue per failing subject.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// Gitea base URL (`GITEA_URL` overrides).
    pub url: String,
    /// `owner/name` (`NEXUS_REPO` overrides).
    pub repo: String,
    /// The variable holding the token (never the token itself).
    pub token_env: String,
    /// A file holding the token, mode 0600 or stricter (a looser file is
    /// refused, see `nexus-secret`); used when the variable is not set.
    pub token_file: Option<PathBuf>,
    /// A token from a seed JSON file; the variable and the file win.
    #[serde(skip)]
    pub token: Option<String>,
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

impl std::fmt::Debug for IncidentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentSettings")
            .field("url", &self.url)
            .field("repo", &self.repo)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("label", &self.label)
            .field("title_prefix", &self.title_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for IncidentSettings {
    fn default() -> IncidentSettings {
        IncidentSettings {
            url: "https://forge.alexanderwhitestone.com".to_string(),
            repo: "Timmy_Foundation/the-nexus".to_string(),
            token_env: "GITEA_TOKEN".to_string(),
            token_file: None,
            token: None,
            label: String::new(),
            title_prefix: String::new(),
            assignees: vec!["Timmy".to_string()],
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

    /// The token: the variable, else `token_file`, else the seed file's,
    /// trimmed; `None` if none (or the token file is unusable: see
    /// [`IncidentSettings::token_problem`]).
    pub fn token(&self) -> Option<Token> {
        nexus_secret::token(&self.token_env, self.token_file.as_deref())
            .ok()
            .flatten()
            .or_else(|| self.token.clone())
            .and_then(|t| Token::new(t.trim()))
    }

    /// Why `token_file` cannot be used (loose mode, empty, missing), when
    /// the variable does not take its place. Names the file, never the token.
    pub fn token_problem(&self) -> Option<String> {
        nexus_secret::token(&self.token_env, self.token_file.as_deref())
            .err()
            .map(|e| e.to_string())
    }

    /// The engine; without a token it manages no issue (one warning).
    pub fn engine(&self, state_dir: &Path, dry_run: bool) -> Engine {
        let url = std::env::var("GITEA_URL").unwrap_or_else(|_| self.url.clone());
        let repo = std::env::var("NEXUS_REPO").unwrap_or_else(|_| self.repo.clone());
        let client = self.token().and_then(|t| {
            let mut g = GiteaConfig::new(&url, &repo, t);
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
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramSettings {
    /// The chat (`TELEGRAM_CHAT_ID` overrides).
    pub chat_id: i64,
    /// The variable holding the bot token.
    pub token_env: String,
    /// A file holding the bot token, mode 0600 or stricter; used when the
    /// variable is not set.
    pub token_file: Option<PathBuf>,
    /// A token from a seed JSON file; the variable and the file win.
    #[serde(skip)]
    pub token: Option<String>,
    /// The Bot API base URL.
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

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("chat_id", &self.chat_id)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
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
    /// The Telegram client, when a token and a chat are known.
    pub fn client(&self) -> Option<Telegram> {
        let chat = std::env::var("TELEGRAM_CHAT_ID")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(self.chat_id);
        if chat == 0 {
            return None;
        }
        let raw = nexus_secret::token(&self.token_env, self.token_file.as_deref())
            .ok()
            .flatten()
            .or_else(|| self.token.clone())?;
        let mut cfg = TelegramConfig::new(BotToken::new(raw.trim())?, chat);
        cfg.base_url = self.api_url.clone();
        cfg.max_retry_wait = self.max_flood_wait;
        Telegram::new(&cfg).ok()
    }
}

/// One binary's alert channels.
#[derive(Debug)]
pub struct Alerts {
    engine: Engine,
    alerter: Option<Alerter>,
    has_token: bool,
    token_problem: Option<String>,
    dry_run: bool,
    warned: bool,
}

impl Alerts {
    /// Builds the channels; state lives under `state_dir` (`gitea/`,
    /// `telegram-alerts.json`).
    pub fn new(
        incident: &IncidentSettings,
        telegram: Option<&TelegramSettings>,
        state_dir: &Path,
        dry_run: bool,
        title: &str,
    ) -> Alerts {
        let alerter = telegram.and_then(|t| {
            let client = t.client()?;
            let mut cfg = AlertConfig::new(state_dir.join("telegram-alerts.json"), title);
            cfg.repeat = t.repeat;
            cfg.max_messages = t.max_messages;
            cfg.message_window = t.message_window;
            Some(Alerter::new(cfg, client))
        });
        Alerts {
            engine: incident.engine(&state_dir.join("gitea"), dry_run),
            alerter,
            has_token: incident.token().is_some(),
            token_problem: incident.token_problem(),
            dry_run,
            warned: false,
        }
    }

    /// Re-finds open issues after a restart (once, at start-up).
    pub async fn adopt(&mut self) -> Option<String> {
        self.engine
            .adopt()
            .await
            .err()
            .map(|e| format!("cannot adopt open issues: {e}"))
    }

    /// One cycle: the incident for `subject` and the Telegram message for
    /// `problems`. Returns lines for the log; never fails the cycle.
    pub async fn cycle(
        &mut self,
        subject: &str,
        healthy: bool,
        summary: &str,
        markdown: &str,
        problems: &[Problem],
    ) -> Vec<String> {
        let mut log = Vec::new();
        if !self.has_token && !self.dry_run {
            // The engine itself warned "no Gitea token: issue management is
            // skipped" (a log line, like every library warning); add why a
            // token file could not stand in, once.
            if !self.warned {
                if let Some(why) = &self.token_problem {
                    log.push(format!("Gitea token file unusable: {why}"));
                }
                self.warned = true;
            }
        } else {
            let check = if healthy {
                Check::healthy(subject, summary)
            } else {
                // What fails, and how badly: a change of it may be
                // commented before the interval, a change of the
                // Markdown alone may not.
                Check::failing(subject, summary, markdown).with_problems(problems.iter().map(|p| {
                    let severity = match p.severity {
                        Severity::Warning => "warning",
                        Severity::Critical => "critical",
                    };
                    format!("{}:{severity}", p.key)
                }))
            };
            match self.engine.observe(&check).await {
                Ok(Outcome::Nothing) => {}
                Ok(o) => log.push(format!("incident {subject}: {o}")),
                Err(e) => log.push(format!("incident {subject}: {e}")),
            }
        }
        if let Some(a) = &self.alerter {
            if self.dry_run {
                if !problems.is_empty() {
                    log.push(format!(
                        "dry-run: would tell Telegram about {} problem(s)",
                        problems.len()
                    ));
                }
            } else {
                let now = nexus_stdx::now_epoch() as i64;
                match a.notify(problems, now).await {
                    Ok(nexus_notify::Sent::Nothing) => {}
                    Ok(sent) => log.push(format!("telegram: {sent:?}")),
                    Err(e) => log.push(format!("telegram: {e}")),
                }
            }
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_never_show_a_token() {
        let i: IncidentSettings =
            toml::from_str("title_prefix = \"[cron]\"\ncomment_min_interval = \"30m\"").unwrap();
        let i = i.or_named("heartbeat-checker", "[heartbeat-checker]");
        assert_eq!(
            (i.label.as_str(), i.title_prefix.as_str()),
            ("heartbeat-checker", "[cron]")
        );
        assert_eq!(i.comment_min_interval, Duration::from_secs(1800));
        assert_eq!(i.assignees, ["Timmy"]);
        let with_token = IncidentSettings {
            token: Some("s3cr3t".into()),
            ..i
        };
        assert!(!format!("{with_token:?}").contains("s3cr3t"));
        let t = TelegramSettings {
            token: Some("123:secret".into()),
            ..TelegramSettings::default()
        };
        assert!(!format!("{t:?}").contains("secret"));
        // The rate limits and fault settings, with their defaults.
        assert_eq!(
            (i.max_actions, i.action_window),
            (60, Duration::from_secs(600))
        );
        let i: IncidentSettings = toml::from_str(
            "max_actions = 5\naction_window = \"1h\"\nretry_interval = \"2m\"\ntimeout = \"3s\"",
        )
        .unwrap();
        assert_eq!(
            (i.max_actions, i.action_window, i.retry_interval, i.timeout),
            (
                5,
                Duration::from_secs(3600),
                Duration::from_secs(120),
                Duration::from_secs(3)
            )
        );
        let t: TelegramSettings =
            toml::from_str("max_messages = 3\nmessage_window = \"5m\"").unwrap();
        assert_eq!(
            (t.max_messages, t.message_window),
            (3, Duration::from_secs(300))
        );
        let e = toml::from_str::<IncidentSettings>("lable = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lable"), "{e}");
    }

    /// The watchdog's and the cron checker's problems reach the engine:
    /// new Markdown alone (ages, another line) is not commented before the
    /// interval; a severity that changes is (here with no floor).
    #[tokio::test]
    async fn a_severity_change_is_commented_and_new_markdown_alone_is_not() {
        use nexus_testkit::gitea::{Fake, REPO, TOKEN};
        let fake = Fake::start().await;
        let d = tempfile::tempdir().unwrap();
        let mut i: IncidentSettings =
            toml::from_str("comment_change_floor = \"0s\"\nassignees = []").unwrap();
        i.url = fake.url();
        i.repo = REPO.into();
        i.token_env = "NEXUS_ALERT_TEST_UNSET".into();
        i.token = Some(TOKEN.into());
        let i = i.or_named("watchdog", "[watchdog]");
        assert_eq!(i.comment_change_floor, Duration::ZERO);
        let mut a = Alerts::new(&i, None, d.path(), false, "Nexus watchdog");
        let heartbeat = |severity| [AlertProblem::new("heartbeat", severity, "heartbeat stale")];
        let summary = "Nexus unhealthy: heartbeat";
        for (markdown, severity) in [
            ("age 301s", Severity::Warning),
            ("age 331s\n- restart attempted", Severity::Warning),
            (
                "age 361s\n- restart attempted\n- restart attempted",
                Severity::Warning,
            ),
            ("age 391s", Severity::Critical),
        ] {
            let log = a
                .cycle("nexus", false, summary, markdown, &heartbeat(severity))
                .await;
            assert!(log.iter().all(|l| !l.contains("gitea")), "{log:?}");
        }
        let st = fake.st();
        assert_eq!(st.issues.len(), 1);
        assert_eq!(st.comments.len(), 1, "{:#?}", st.comments);
        assert!(
            st.comments[0].1.contains("age 391s"),
            "{}",
            st.comments[0].1
        );
        drop(st);
        fake.assert_contract();
    }

    #[test]
    fn tokens_come_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("gitea.token");
        std::fs::write(&path, "f1le-t0ken-canary\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "token_env = \"NEXUS_ALERT_TEST_UNSET\"\ntoken_file = {:?}",
            path.display().to_string()
        );
        let i: IncidentSettings = toml::from_str(&text).unwrap();
        assert!(i.token().is_some());
        assert_eq!(i.token_problem(), None);
        let t: TelegramSettings = toml::from_str(&text).unwrap();
        assert_eq!(t.token_file.as_deref(), Some(path.as_path()));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            i.token().is_none(),
            "a world-readable token file is refused"
        );
        let why = i.token_problem().unwrap();
        assert!(why.contains("gitea.token") && why.contains("0644"), "{why}");
        assert!(!why.contains("canary") && !format!("{i:?}").contains("canary"));
    }
}
