//! The one alerting boundary of the suite: every daemon (watchdog, cron
//! checker, pool) reaches Gitea, Telegram, webhooks, ntfy and email only
//! through this crate.
//!
//! - [`IncidentSettings`] (`[incident]`: per-subject Gitea issues),
//!   [`TelegramSettings`] (`[telegram]`: alerts and approvals),
//!   [`WebhookSettings`] (`[webhook]`), [`NtfySettings`] (`[ntfy]`) and
//!   [`EmailSettings`] (`[email]`) are serde-only settings each daemon
//!   embeds typed in its configuration file ([`AlertTables`] for the
//!   files a library owns; [`Channels`] the last three, resolved). Their defaults
//!   configure nothing: the forge URL, repository and assignees live in
//!   `docs/examples`. The environment overrides (`GITEA_URL`, `NEXUS_REPO`,
//!   `GITEA_TOKEN`, `TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`) are resolved
//!   once, by the binary, with their `with_env`.
//! - [`Alerts`] builds the `nexus-gitea` engine and one `nexus-notify`
//!   alerter per configured channel ([`Alerts::with_channels`]), each with
//!   the same dedup, reminders and rate limits and its own state file
//!   (`<channel>-alerts.json`), and is called once per cycle with the
//!   cycle's one evaluation.
//! - [`gitea`] and [`telegram`] re-export the channel types a daemon that
//!   runs its own executors needs (the pool: the engine, approvals).
//!
//! # What this crate must never do
//! - Show a token: tokens are held in `nexus_secret::Secret`, whose `Debug`
//!   is redacted.
//! - Read the process environment: the binary passes it in.
//! - Make an HTTP or SMTP call in dry-run mode, or fail a cycle because
//!   Gitea or a channel is down (their own queues and state files keep the
//!   work; one channel down holds only its own messages).

use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use nexus_gitea::{Check, Engine, Outcome};
use nexus_notify::{AlertConfig, Alerter, Problem};

mod channels;
mod settings;

pub use channels::{ChannelProblem, Channels, EmailSettings, NtfySettings, WebhookSettings};
pub use nexus_notify::{Problem as AlertProblem, Severity};
pub use settings::{AlertTables, Env, IncidentSettings, TelegramSettings};

/// The Gitea side, for a daemon that drives the engine itself (the pool).
pub mod gitea {
    pub use nexus_gitea::{Check, Engine, Error, Outcome, fingerprint};
}

/// The Telegram side, for a daemon that drives messages and approvals
/// itself (the pool).
pub mod telegram {
    pub use nexus_notify::{
        ApprovalConfig, Approvals, Decision, Error, Telegram, Text, take_expired,
    };
}

/// One binary's alert channels.
#[derive(Debug)]
pub struct Alerts {
    /// The incident engine; `None` for [`Alerts::channels_only`].
    engine: Option<Engine>,
    /// One per channel: Telegram first, then webhook, ntfy, email.
    alerters: Vec<Alerter>,
    /// Why a configured channel could not be built, said once.
    channel_problems: Vec<String>,
    state_dir: PathBuf,
    title: String,
    /// A forge is configured and a token known.
    enabled: bool,
    /// Why not, said once.
    disabled_why: Option<String>,
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
            engine: Some(incident.engine(&state_dir.join("gitea"), dry_run)),
            alerters: alerter.into_iter().collect(),
            channel_problems: Vec::new(),
            state_dir: state_dir.to_path_buf(),
            title: title.to_owned(),
            enabled: incident.is_configured() && incident.token().is_some(),
            disabled_why: if !incident.is_configured() {
                Some("no forge configured ([incident] url and repo): no issues are opened".into())
            } else {
                // The engine itself warns "no Gitea token"; add why a
                // token file could not stand in.
                incident
                    .token_problem()
                    .map(|why| format!("Gitea token file unusable: {why}"))
            },
            dry_run,
            warned: false,
        }
    }

    /// The `[webhook]`, `[ntfy]` and `[email]` channels alone, with no
    /// incident engine and no Telegram (the pool runs its own): only
    /// [`Alerts::tell`] does anything. State files as [`Alerts::with_channels`].
    pub fn channels_only(
        channels: &Channels,
        state_dir: &Path,
        dry_run: bool,
        title: &str,
    ) -> Alerts {
        Alerts {
            engine: None,
            alerters: Vec::new(),
            channel_problems: Vec::new(),
            state_dir: state_dir.to_path_buf(),
            title: title.to_owned(),
            enabled: false,
            disabled_why: None,
            dry_run,
            warned: true,
        }
        .with_channels(channels)
    }

    /// Adds the configured `[webhook]`, `[ntfy]` and `[email]` channels
    /// (state files `webhook-alerts.json`, `ntfy-alerts.json`,
    /// `email-alerts.json` next to Telegram's). A table that cannot work
    /// (see the tables' `findings`) sends nothing; the first cycle says why.
    pub fn with_channels(mut self, channels: &Channels) -> Alerts {
        let (alerters, problems) = channels.alerters(&self.state_dir, &self.title);
        self.alerters.extend(alerters);
        self.channel_problems
            .extend(problems.into_iter().map(|p| p.why));
        self
    }

    /// The channels that will be told, in order (`telegram`, `webhook`,
    /// `ntfy`, `email`).
    pub fn channel_names(&self) -> Vec<&'static str> {
        self.alerters.iter().map(Alerter::channel).collect()
    }

    /// Re-finds open issues after a restart (once, at start-up).
    pub async fn adopt(&mut self) -> Option<String> {
        self.engine
            .as_mut()?
            .adopt()
            .await
            .err()
            .map(|e| format!("cannot adopt open issues: {e}"))
    }

    /// One cycle: the incident for `subject` and each channel's message
    /// for `problems`. Returns lines for the log; never fails the cycle.
    pub async fn cycle(
        &mut self,
        subject: &str,
        healthy: bool,
        summary: &str,
        markdown: &str,
        problems: &[Problem],
    ) -> Vec<String> {
        let mut log = Vec::new();
        let Some(engine) = self.engine.as_mut() else {
            log.extend(self.tell(problems).await);
            return log;
        };
        if !self.enabled && !self.dry_run {
            if !self.warned {
                log.extend(self.disabled_why.clone());
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
            match engine.observe(&check).await {
                Ok(Outcome::Nothing) => {}
                Ok(o) => log.push(format!("incident {subject}: {o}")),
                Err(e) => log.push(format!("incident {subject}: {e}")),
            }
        }
        log.extend(self.tell(problems).await);
        log
    }

    /// Each channel's message for `problems` alone, with no incident (for
    /// a daemon whose incidents run elsewhere: the pool). Returns lines
    /// for the log; never fails.
    pub async fn tell(&mut self, problems: &[Problem]) -> Vec<String> {
        let mut log = Vec::new();
        log.append(&mut self.channel_problems);
        if self.dry_run {
            if !problems.is_empty() {
                for name in self.channel_names() {
                    let shown = if name == "telegram" { "Telegram" } else { name };
                    log.push(format!(
                        "dry-run: would tell {shown} about {} problem(s)",
                        problems.len()
                    ));
                }
            }
            return log;
        }
        // Every channel at once, each on its own: one that hangs until its
        // timeout delays no other, one that is down holds only its own
        // messages (its state file).
        let now = nexus_stdx::now_epoch() as i64;
        let sent = join_all(self.alerters.iter().map(|a| a.notify(problems, now))).await;
        for (a, sent) in self.alerters.iter().zip(sent) {
            let name = a.channel();
            match sent {
                Ok(nexus_notify::Sent::Nothing) => {}
                Ok(sent) => log.push(format!("{name}: {sent:?}")),
                Err(e) => {
                    let e = e.to_string();
                    // The new channels' errors start with their name.
                    if e.starts_with(name) && name != "telegram" {
                        log.push(e);
                    } else {
                        log.push(format!("{name}: {e}"));
                    }
                }
            }
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_secret::Secret;
    use std::time::Duration;

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
        assert!(i.assignees.is_empty() && !i.is_configured(), "{i:?}");
        let with_token = IncidentSettings {
            token: Some(Secret::new("s3cr3t")),
            ..i
        };
        assert!(!format!("{with_token:?}").contains("s3cr3t"));
        let t = TelegramSettings {
            token: Some(Secret::new("123:secret")),
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
        // A daemon's file: other tables are skipped, a bad key in the alert
        // tables is named.
        let text = "[jobs.a]\ninterval = \"1h\"\n[telegram]\nchat_id = 5";
        let t: AlertTables = toml::from_str(text).unwrap();
        assert_eq!(t.telegram.map(|t| t.chat_id), Some(5));
        assert!(t.incident.is_none());
        let e = toml::from_str::<AlertTables>("[jobs.a]\n[incident]\nrepos = \"a/b\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("repos"), "{e}");
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
        i.token = Some(Secret::new(TOKEN));
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

    /// The overrides the binary resolves at its edge: the same variables
    /// and the same precedence as before (the variable, then the file,
    /// then a seed's token).
    #[test]
    fn the_environment_is_applied_once_by_with_env() {
        use std::collections::HashMap;
        let vars: HashMap<&str, &str> = [
            ("GITEA_URL", "http://127.0.0.1:3000"),
            ("NEXUS_REPO", "ops/alerts"),
            ("MY_GITEA_TOKEN", " env-t0ken-canary\n"),
            ("TELEGRAM_CHAT_ID", "-1001"),
            ("TELEGRAM_BOT_TOKEN", "123:bot-canary"),
        ]
        .into();
        let env = |k: &str| vars.get(k).map(|v| v.to_string());
        let i: IncidentSettings = toml::from_str(
            "url = \"https://forge.example\"\nrepo = \"a/b\"\ntoken_env = \"MY_GITEA_TOKEN\"\ntoken_file = \"/nonexistent/gitea.token\"",
        )
        .unwrap();
        assert!(i.token().is_none() && i.token_problem().is_some());
        let i = i.with_env(&env);
        assert_eq!(
            (i.url.as_str(), i.repo.as_str()),
            ("http://127.0.0.1:3000", "ops/alerts")
        );
        assert!(i.is_configured());
        assert_eq!(i.token(), nexus_gitea::Token::new("env-t0ken-canary"));
        assert_eq!(
            i.token_problem(),
            None,
            "the variable takes the file's place"
        );
        assert!(!format!("{i:?}").contains("canary"));
        // Nothing set: the settings stay as they were.
        let none = |_: &str| None;
        let j = IncidentSettings::named("w", "[w]").with_env(&none);
        assert!(!j.is_configured() && j.token().is_none());
        let t = TelegramSettings::default().with_env(&env);
        assert_eq!(t.chat_id, -1001);
        assert!(t.client().is_some());
        assert!(!format!("{t:?}").contains("canary"));
        assert!(
            TelegramSettings::default()
                .with_env(&none)
                .client()
                .is_none()
        );
    }

    /// No forge configured (the code's default): no issue is opened, and
    /// the daemon is told once.
    #[tokio::test]
    async fn without_a_forge_no_issue_is_opened_and_it_is_said_once() {
        let d = tempfile::tempdir().unwrap();
        let i = IncidentSettings {
            token: Some(Secret::new("a-token")),
            ..IncidentSettings::named("watchdog", "[watchdog]")
        };
        let mut a = Alerts::new(&i, None, d.path(), false, "Nexus watchdog");
        let p = [AlertProblem::new("disk", Severity::Critical, "full")];
        let first = a.cycle("nexus", false, "down", "", &p).await;
        assert!(
            first.len() == 1 && first[0].contains("no forge configured"),
            "{first:?}"
        );
        let second = a.cycle("nexus", false, "down", "", &p).await;
        assert!(second.is_empty(), "{second:?}");
        assert!(!d.path().join("gitea").exists());
    }
}
