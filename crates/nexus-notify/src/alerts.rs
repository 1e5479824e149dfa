//! Problem-set alerts: one message when new problems appear, one when
//! everything recovers, reminders for an unchanged problem set, and a
//! per-problem cooldown against flapping. State is kept in a file, so a
//! cron `--once` run deduplicates too.
//!
//! The decisions are the same for every [`Channel`] (Telegram, webhook,
//! ntfy, email); each channel has its own alerter and state file, so one
//! channel being down holds only its own messages.
//!
//! Volume is bounded twice: at most `max_messages` per `message_window`
//! (our own limit), and after the channel's server answers 429 with
//! `retry_after` (Telegram's flood control, a webhook's `Retry-After`),
//! nothing is sent on that channel before that time has passed. A message
//! held back is never lost: the state only advances on delivery, so the
//! first message allowed afterwards carries the *current* state (with a line
//! saying how many updates were held back).

use nexus_stdx::SlidingWindow;

use crate::clock::{elapsed, holds};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Outgoing};
use crate::error::Error;
use crate::markdown::Text;
use crate::state;
use crate::telegram::Telegram;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Degraded.
    Warning,
    /// Down.
    Critical,
}

/// One current problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Stable key (component name, agent, job).
    pub key: String,
    /// Severity now.
    pub severity: Severity,
    /// One line, any characters (escaped for you).
    pub message: String,
    /// What a person should do about it (the incident body's hint), if
    /// anything; shown under the problem's line.
    pub hint: Option<String>,
    /// What an automatic recovery action did about it this cycle (the
    /// incident body's recovery result), if one ran.
    pub recovery: Option<String>,
}

impl Problem {
    /// A problem without hint or recovery result.
    pub fn new(key: impl Into<String>, severity: Severity, message: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            severity,
            message: message.into(),
            hint: None,
            recovery: None,
        }
    }

    /// With what a person should do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    /// With what a recovery action did about it.
    pub fn with_recovery(mut self, result: impl Into<String>) -> Problem {
        self.recovery = Some(result.into());
        self
    }
}

/// Settings of an [`Alerter`]: its state file, title and how often it may speak.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// State file, one per channel (e.g.
    /// `~/.local/state/nexus-watchdog/telegram-alerts.json`).
    pub state_file: PathBuf,
    /// First line of every message.
    pub title: String,
    /// Reminder for an unchanged problem set. Default 1 h.
    pub repeat: Duration,
    /// A problem that was announced within this time is not announced again
    /// when it comes back (flapping). Default 5 min.
    pub cooldown: Duration,
    /// At most this many messages per `message_window`; 0 = no limit.
    /// Default 10.
    pub max_messages: u32,
    /// The sliding window of `max_messages`. Default 10 min.
    pub message_window: Duration,
}

impl AlertConfig {
    /// `state_file` and `title` as given; the rest at the defaults each field names.
    pub fn new(state_file: PathBuf, title: &str) -> AlertConfig {
        AlertConfig {
            state_file,
            title: title.to_owned(),
            repeat: Duration::from_secs(3600),
            cooldown: Duration::from_secs(300),
            max_messages: 10,
            message_window: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Active {
    severity: Option<Severity>,
    since: i64,
    /// Announced in a message that was delivered.
    announced: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct AlertState {
    active: BTreeMap<String, Active>,
    /// Last delivered announcement per key (survives recovery, for the cooldown).
    last_announced: BTreeMap<String, i64>,
    last_sent: Option<i64>,
    /// Delivery times inside the current window (at most `max_messages`).
    sent_times: Vec<i64>,
    /// Telegram asked us (429 `retry_after`) not to send before this time.
    hold_until: Option<i64>,
    /// Cycles whose message was held back since the last delivery.
    held_back: u32,
}

/// What [`Alerter::notify`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Nothing (unchanged, cooling down, or healthy).
    Nothing,
    /// New or escalated problems.
    Problems,
    /// Unchanged problems, after `repeat`.
    Reminder,
    /// Announced problems recovered (all of them, or some while others remain).
    Recovery,
    /// A message was due but the rate limit or the channel's flood control
    /// (a 429's `retry_after`) holds it back; the state did not advance, so a later cycle sends the
    /// then-current state.
    Held,
}

/// Problem-set alerter over one [`Channel`].
#[derive(Debug)]
pub struct Alerter {
    cfg: AlertConfig,
    channel: Box<dyn Channel>,
}

impl Alerter {
    /// Sends through `tg`, keeping its problem-set state in `cfg`'s state file.
    pub fn new(cfg: AlertConfig, tg: Telegram) -> Alerter {
        Alerter::with_channel(cfg, tg)
    }

    /// Sends through `channel` (a [`crate::Webhook`], [`crate::Ntfy`],
    /// [`crate::Email`] or [`Telegram`]), keeping its problem-set state in
    /// `cfg`'s state file.
    pub fn with_channel(cfg: AlertConfig, channel: impl Channel + 'static) -> Alerter {
        Alerter {
            cfg,
            channel: Box::new(channel),
        }
    }

    /// The channel's name (`telegram`, `webhook`, `ntfy`, `email`).
    pub fn channel(&self) -> &'static str {
        self.channel.name()
    }

    /// Call once per cycle with the complete current problem list (empty =
    /// healthy) and the time in epoch seconds. A failed send is returned as
    /// an error and retried on the next cycle (the state only advances on
    /// delivery).
    pub async fn notify(&self, problems: &[Problem], now: i64) -> Result<Sent, Error> {
        let mut st: AlertState = state::load(&self.cfg.state_file)?;
        let cooldown = self.cfg.cooldown.as_secs() as i64;
        // Only announcements inside the cooldown matter: the map stays
        // bounded however many keys come and go.
        st.last_announced.retain(|_, t| elapsed(now, *t) < cooldown);
        let mut fresh = Vec::new();
        for p in problems {
            let prev = st.active.get(&p.key);
            let escalated = prev.is_some_and(|a| a.severity < Some(p.severity));
            let unannounced = prev.is_none_or(|a| !a.announced);
            if escalated || unannounced {
                let cooling = !escalated
                    && st
                        .last_announced
                        .get(&p.key)
                        .is_some_and(|t| elapsed(now, *t) < cooldown);
                if !cooling {
                    fresh.push(p.key.clone());
                }
            }
        }
        let recovered: Vec<String> = st
            .active
            .iter()
            .filter(|(k, a)| a.announced && !problems.iter().any(|p| &p.key == *k))
            .map(|(k, _)| k.clone())
            .collect();

        let kind = if !fresh.is_empty() {
            Sent::Problems
        } else if !recovered.is_empty() {
            // Every announced problem that went away is announced as
            // recovered, even if others remain.
            Sent::Recovery
        } else if !problems.is_empty()
            && problems
                .iter()
                .all(|p| st.active.get(&p.key).is_some_and(|a| a.announced))
            && st
                .last_sent
                .is_some_and(|t| elapsed(now, t) >= self.cfg.repeat.as_secs() as i64)
        {
            Sent::Reminder
        } else {
            Sent::Nothing
        };

        if kind != Sent::Nothing {
            let mut window = SlidingWindow::with_times(
                self.cfg.max_messages as usize,
                self.cfg.message_window.as_secs() as i64,
                st.sent_times.iter().copied(),
                now,
            );
            let allowed = window.allows(now);
            st.sent_times = window.times();
            let flood = st.hold_until.is_some_and(|t| holds(now, t));
            if flood || !allowed {
                st.held_back = st.held_back.saturating_add(1);
                state::save(&self.cfg.state_file, &st)?;
                tracing::info!(
                    channel = self.channel.name(),
                    flood,
                    held_back = st.held_back,
                    "alert held back"
                );
                return Ok(Sent::Held);
            }
            let text = self.render(kind, problems, &fresh, &recovered, st.held_back);
            let msg = Outgoing {
                title: &self.cfg.title,
                text: &text,
                kind,
                severity: problems.iter().map(|p| p.severity).max(),
            };
            match self.channel.send(&msg).await {
                Ok(()) => {}
                Err(e) => {
                    if let Some(retry_after) = e.retry_after() {
                        st.hold_until = Some(now.saturating_add(retry_after as i64));
                        st.held_back = st.held_back.saturating_add(1);
                        state::save(&self.cfg.state_file, &st)?;
                    }
                    return Err(e);
                }
            }
            st.last_sent = Some(now);
            window.record(now);
            st.sent_times = window.times();
            st.hold_until = None;
            st.held_back = 0;
        }
        // Advance the state only now that the message (if any) is delivered.
        let mut next = BTreeMap::new();
        let announcing = matches!(kind, Sent::Problems | Sent::Reminder);
        for p in problems {
            let prev = st.active.get(&p.key).cloned().unwrap_or(Active {
                severity: None,
                since: now,
                announced: false,
            });
            if announcing {
                st.last_announced.insert(p.key.clone(), now);
            }
            next.insert(
                p.key.clone(),
                Active {
                    severity: Some(p.severity),
                    since: prev.since,
                    announced: prev.announced || announcing,
                },
            );
        }
        st.active = next;
        state::save(&self.cfg.state_file, &st)?;
        Ok(kind)
    }

    fn render(
        &self,
        kind: Sent,
        problems: &[Problem],
        fresh: &[String],
        recovered: &[String],
        held_back: u32,
    ) -> Text {
        let critical = problems.iter().any(|p| p.severity == Severity::Critical);
        let icon = match kind {
            Sent::Recovery => "✅",
            _ if critical => "🚨",
            _ => "⚠️",
        };
        let mut t = Text::new()
            .text(icon)
            .text(" ")
            .bold(&self.cfg.title)
            .line();
        if held_back > 0 {
            // First, so a long message cut at 4096 characters keeps it.
            t = t
                .text(&format!(
                    "(updates were held back {held_back} time(s) by flood control or the message limit; this is the current state)"
                ))
                .line();
        }
        if kind == Sent::Recovery {
            for k in recovered {
                t = t.text("✅ ").bold(k).text(" recovered").line();
            }
            if problems.is_empty() {
                return t.text("All problems recovered.").line();
            }
        }
        t = match kind {
            Sent::Recovery | Sent::Reminder => t.text("Still failing:").line(),
            _ => t
                .text(&format!(
                    "{} problem(s), {} new:",
                    problems.len(),
                    fresh.len()
                ))
                .line(),
        };
        for p in problems {
            let sev = match p.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "WARNING",
            };
            let new = if fresh.contains(&p.key) { " (new)" } else { "" };
            t = t
                .text("• ")
                .bold(&p.key)
                .text(&format!(" [{sev}]{new}: {}", one_line(&p.message)))
                .line();
            // The incident body's hint and recovery result, briefly.
            if let Some(h) = p.hint.as_deref().filter(|h| !h.trim().is_empty()) {
                t = t.text(&format!("   ↳ what to do: {}", one_line(h))).line();
            }
            if let Some(r) = p.recovery.as_deref().filter(|r| !r.trim().is_empty()) {
                t = t.text(&format!("   ↳ recovery: {}", one_line(r))).line();
            }
        }
        if kind == Sent::Problems {
            for k in recovered {
                t = t.text("✅ ").bold(k).text(" recovered").line();
            }
        }
        t
    }
}

/// `s` on one line: line breaks become spaces, so one problem stays one
/// bullet.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BotToken, TelegramConfig};

    fn alerter() -> Alerter {
        let token = BotToken::new("123:render-only").unwrap();
        let mut cfg = TelegramConfig::new(token, 1);
        cfg.base_url = "http://127.0.0.1:9".into();
        let tg = Telegram::new(&cfg).unwrap();
        Alerter::new(AlertConfig::new("unused.json".into(), "Nexus watchdog"), tg)
    }

    /// Issue 18 item 3: a problem's message carries the incident body's
    /// hint and recovery result, on lines of their own, escaped.
    #[test]
    fn a_problem_carries_its_hint_and_recovery_result() {
        let p = Problem::new("ws_gateway", Severity::Critical, "refused")
            .with_hint("restart `server.py` (the gateway)")
            .with_recovery("restart ok\nattempt 1/3");
        let bare = Problem::new("disk", Severity::Warning, "Disk usage high");
        let t = alerter().render(Sent::Problems, &[p, bare], &["ws_gateway".into()], &[], 0);
        let plain = t.plain();
        assert!(
            plain.contains(
                "• ws_gateway [CRITICAL] (new): refused\n   ↳ what to do: restart `server.py` (the gateway)\n   ↳ recovery: restart ok attempt 1/3\n• disk"
            ),
            "{plain}"
        );
        assert!(
            !plain.contains("disk [WARNING]: Disk usage high\n   ↳"),
            "{plain}"
        );
        assert!(
            t.markdown()
                .contains("what to do: restart \\`server\\.py\\` \\(the gateway\\)"),
            "{}",
            t.markdown()
        );
    }
}
