//! Alerts for the Nexus health suite: to Telegram, a webhook, ntfy or email,
//! surviving hostile text and flood control; and Telegram Approve / Deny
//! requests for the resurrection pool.
//!
//! - [`Telegram`]: the Bot API client. [`Telegram::send`] sends a [`Text`]
//!   as MarkdownV2 (every piece escaped by the builder) and falls back to the
//!   plain rendering when Telegram answers `400 can't parse entities`. A 429
//!   waits `parameters.retry_after` (else the `Retry-After` header) through an
//!   injectable [`Sleeper`] and retries, up to `max_retry_wait`.
//! - [`Channel`]: the one seam between the alerter's decisions and a way to
//!   reach a person. [`Telegram`], [`Webhook`] (a POST with a body template:
//!   Slack, Mattermost, Discord, Matrix bridges), [`Ntfy`] (`POST
//!   <server>/<topic>` with `Title`/`Priority`/`Tags`) and [`Email`] (SMTP
//!   through lettre, STARTTLS required by default) implement it; every
//!   HTTP call has a timeout, error bodies are read up to a cap and
//!   cleaned, a 429 becomes [`Error::retry_after`].
//! - [`Alerter`]: one per channel, each with its own state file; call
//!   [`Alerter::notify`] once per cycle with the whole current problem list. It sends one message per new problem set (new or
//!   escalated problems), one when announced problems recover, a reminder every
//!   `repeat` for an unchanged set, and suppresses a flapping problem within
//!   its `cooldown`. State lives in a file, so one-shot cron runs dedup too;
//!   it only advances when the message was delivered. At most
//!   `max_messages` per `message_window`, and nothing before a 429's
//!   `retry_after` has passed ([`Sent::Held`]); the next message allowed
//!   carries the current state and says updates were held back.
//! - [`Approvals`]: [`Approvals::request`] sends a question with inline
//!   Approve / Deny buttons; [`Approvals::poll`] (once per sweep) reads
//!   `getUpdates` from a persisted offset, accepts answers only from the
//!   configured chat (and approvers), only for that request message or,
//!   for text, dated after it, answers every button press
//!   (`answerCallbackQuery`), and reports [`Decision`]s, including expiry.
//!   After a 429 neither polls nor requests until `retry_after` has passed
//!   (persisted); expiry is still reported meanwhile.
//!
//! Replies are read chunk by chunk up to [`MAX_REPLY_BYTES`] (error replies
//! up to 64 KiB); what the server wrote reaches an [`Error`] or a log line
//! only through `nexus_secret::Redactor::clean` (token redacted in every
//! form, escape sequences and line breaks out, an excerpt).
//!
//! # What this crate must never do
//! - Show the bot token, a webhook URL, an access token or an SMTP
//!   password: no URL is ever logged or kept in an [`Error`]; `Debug` is
//!   redacted; a server that echoes them gets them redacted.
//! - Send an SMTP password or an alert in clear text to anything but a
//!   loopback relay.
//! - Log or keep server text that was not cleaned, or read a reply beyond
//!   its cap.
//! - Drop an alert because of Markdown, flood control or the message limit
//!   (it is held, never dropped), or call again before a 429's `retry_after`.
//! - Accept an approval from another chat, another message, or from before
//!   the request.

mod alerts;
mod approval;
mod channel;
mod clock;
mod email;
mod error;
mod markdown;
mod ntfy;
mod state;
mod telegram;
mod webhook;

pub use alerts::{AlertConfig, Alerter, Problem, Sent, Severity};
pub use approval::{ApprovalConfig, Approvals, Decision, take_expired};
pub use channel::{Channel, Delivery, Outgoing};
pub use email::{Email, EmailConfig, SmtpTls, is_loopback_host};
pub use error::Error;
pub use markdown::{Text, escape_markdown_v2, escape_markdown_v2_code};
pub use nexus_revive::Approval;
pub use ntfy::{Ntfy, NtfyConfig, ntfy_priority};
pub use telegram::{
    BotToken, CallbackQuery, Chat, MAX_REPLY_BYTES, Message, Sleeper, Telegram, TelegramConfig,
    TgUser, Update, tokio_sleeper,
};
pub use webhook::{DEFAULT_WEBHOOK_BODY, Webhook, WebhookConfig};
