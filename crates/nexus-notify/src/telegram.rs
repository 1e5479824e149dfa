//! The Bot API client: `sendMessage`, `getUpdates`, `answerCallbackQuery`,
//! `editMessageReplyMarkup`, with flood control and the plain-text fallback.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use nexus_secret::{EXCERPT_CHARS, Redactor, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::Error;
use crate::markdown::Text;

/// The largest successful reply read (`getUpdates` asks for 100 updates at
/// most); a longer one is refused with [`Error::TooLarge`] after reading
/// this much at most, never buffered whole.
pub const MAX_REPLY_BYTES: usize = 8 << 20;

/// Of an error reply only this much is read: its description is cut to an
/// excerpt of [`EXCERPT_CHARS`] anyway.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// A bot token, held in a [`Secret`] (`Debug` prints
/// `BotToken(Secret("***"))`; there is no `Display`). It is only ever put
/// into the request path, and request URLs are never logged or kept in
/// errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotToken(Secret);

impl BotToken {
    /// Wraps a token, trimming whitespace; `None` if empty.
    pub fn new(raw: &str) -> Option<BotToken> {
        Secret::trimmed(raw).map(BotToken)
    }

    fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl From<Secret> for BotToken {
    /// A token as given (trim it first: see [`BotToken::new`]).
    fn from(s: Secret) -> BotToken {
        BotToken(s)
    }
}

/// How the client waits (flood control, backoff). Injectable so tests do not
/// really sleep.
pub type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The real sleeper (`tokio::time::sleep`).
pub fn tokio_sleeper() -> Sleeper {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// Where and how to reach the Bot API.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// API root, default `https://api.telegram.org` (tests: mockito).
    pub base_url: String,
    /// Bot token (`<id>:<secret>`), only ever put in the request path.
    pub token: BotToken,
    /// The chat alerts and approval requests go to; the only chat whose
    /// answers count.
    pub chat_id: i64,
    /// HTTP timeout of a call (getUpdates adds its long-poll time). Default 10 s.
    pub timeout: Duration,
    /// Longest flood-control wait honoured; a longer `retry_after` fails with
    /// [`Error::RateLimited`] instead of blocking the caller. Default 60 s.
    pub max_retry_wait: Duration,
}

impl TelegramConfig {
    /// Defaults for a token and chat.
    pub fn new(token: BotToken, chat_id: i64) -> TelegramConfig {
        TelegramConfig {
            base_url: "https://api.telegram.org".into(),
            token,
            chat_id,
            timeout: Duration::from_secs(10),
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

/// `Chat` (only what we read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Chat {
    /// Chat id (groups negative, supergroups `-100…`).
    pub id: i64,
}

/// `User` (only what we read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TgUser {
    /// User id: what approvers are authorised by.
    pub id: i64,
    /// Optional `@username`.
    #[serde(default)]
    pub username: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: String,
}

/// `Message` / `MaybeInaccessibleMessage` (only what we read; an
/// inaccessible message has `date == 0`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// Message id within the chat.
    pub message_id: i64,
    /// Unix seconds (0 for an inaccessible message).
    pub date: i64,
    /// Chat it was posted in; only the configured chat's messages count.
    pub chat: Chat,
    /// Sender (absent for channel posts).
    #[serde(default)]
    pub from: Option<TgUser>,
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// The message this one replies to.
    #[serde(default)]
    pub reply_to_message: Option<Box<Message>>,
}

/// `CallbackQuery` (only what we read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackQuery {
    /// Id to answer.
    pub id: String,
    /// Who pressed the button.
    pub from: TgUser,
    /// Message carrying the button; absent when it is too old for Telegram to include.
    #[serde(default)]
    pub message: Option<Message>,
    /// The button's `callback_data`.
    #[serde(default)]
    pub data: Option<String>,
}

/// `Update` (only the kinds we ask for).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Update {
    /// Increasing id; the next offset is the last one + 1.
    pub update_id: i64,
    /// New message in a chat the bot is in.
    #[serde(default)]
    pub message: Option<Message>,
    /// New post in a channel the bot is in.
    #[serde(default)]
    pub channel_post: Option<Message>,
    /// Inline-keyboard button press (Approve / Deny).
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Bot API client bound to one token and one chat.
#[derive(Clone)]
pub struct Telegram {
    http: reqwest::Client,
    base: String,
    token: BotToken,
    chat_id: i64,
    timeout: Duration,
    max_retry_wait: Duration,
    sleeper: Sleeper,
    /// Server text (descriptions, transport and decode errors) goes through
    /// it before it is logged or kept in an error: a server that echoes the
    /// request path would otherwise show the token.
    redactor: Arc<Redactor>,
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telegram")
            .field("base", &self.base)
            .field("token", &self.token)
            .field("chat_id", &self.chat_id)
            .finish_non_exhaustive()
    }
}

/// Flood-control retries per call.
const MAX_429: u32 = 3;

impl Telegram {
    /// Builds a client.
    pub fn new(cfg: &TelegramConfig) -> Result<Telegram, Error> {
        let base = cfg.base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config {
                field: "base_url",
                why: format!("{base:?} is not an http(s) URL"),
            });
        }
        if cfg
            .token
            .expose()
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(Error::Config {
                field: "token",
                why: "contains characters a bot token never has".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            // The token is in the path: never follow (or log) a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config {
                field: "http client",
                why: e.to_string(),
            })?;
        Ok(Telegram {
            http,
            base,
            token: cfg.token.clone(),
            chat_id: cfg.chat_id,
            timeout: cfg.timeout,
            max_retry_wait: cfg.max_retry_wait,
            sleeper: tokio_sleeper(),
            redactor: Arc::new(Redactor::new().secret(cfg.token.expose())),
        })
    }

    /// Server text as it may be logged or kept: token redacted, controls
    /// out, at most [`EXCERPT_CHARS`] characters.
    fn server_text(&self, text: &str) -> String {
        self.redactor.clean(text, EXCERPT_CHARS).into_owned()
    }

    /// Replaces the sleeper (tests).
    pub fn with_sleeper(mut self, sleeper: Sleeper) -> Telegram {
        self.sleeper = sleeper;
        self
    }

    /// Chat id from [`TelegramConfig::chat_id`]; messages go only there.
    pub fn chat_id(&self) -> i64 {
        self.chat_id
    }

    /// Calls a Bot API method with a JSON body. Honours 429 `retry_after`
    /// (then the `Retry-After` header, then 1 s), retries a network error or
    /// 5xx once after 1 s, fails at once on other errors.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &Value,
        extra_timeout: Duration,
    ) -> Result<T, Error> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let mut transient_retry = true;
        let mut flood = 0;
        loop {
            let sent = self
                .http
                .post(&url)
                .timeout(self.timeout + extra_timeout)
                .json(body)
                .send()
                .await;
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    // Never keep the URL: it contains the token.
                    let detail = self.server_text(&e.without_url().to_string());
                    if transient_retry {
                        transient_retry = false;
                        tracing::warn!(method, error = %detail, "telegram unreachable; retrying once");
                        (self.sleeper)(Duration::from_secs(1)).await;
                        continue;
                    }
                    return Err(Error::Unreachable { method, detail });
                }
            };
            let status = resp.status().as_u16();
            let header_wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let success = (200..300).contains(&status);
            let cap = if success {
                MAX_REPLY_BYTES
            } else {
                MAX_ERROR_BYTES
            };
            let Some(bytes) =
                read_capped(&mut resp, cap, success)
                    .await
                    .map_err(|e| Error::Unreachable {
                        method,
                        detail: self.server_text(&e.without_url().to_string()),
                    })?
            else {
                return Err(Error::TooLarge {
                    method,
                    limit: MAX_REPLY_BYTES,
                });
            };
            let env: Option<Envelope> = serde_json::from_slice(&bytes).ok();
            if status == 429 {
                let wait = env
                    .as_ref()
                    .and_then(|e| e.parameters.as_ref())
                    .and_then(|p| p.retry_after)
                    .or(header_wait)
                    .unwrap_or(1);
                flood += 1;
                if flood > MAX_429 || Duration::from_secs(wait) > self.max_retry_wait {
                    return Err(Error::RateLimited {
                        method,
                        retry_after: wait,
                    });
                }
                tracing::warn!(
                    method,
                    retry_after = wait,
                    "telegram flood control; waiting"
                );
                (self.sleeper)(Duration::from_secs(wait)).await;
                continue;
            }
            if status >= 500 && transient_retry {
                transient_retry = false;
                (self.sleeper)(Duration::from_secs(1)).await;
                continue;
            }
            let Some(env) = env else {
                return Err(if (200..300).contains(&status) {
                    Error::Decode {
                        method,
                        detail: format!("HTTP {status}: not a Bot API envelope"),
                    }
                } else {
                    Error::Api {
                        method,
                        status,
                        description: self.server_text(&String::from_utf8_lossy(&bytes)),
                    }
                });
            };
            if !env.ok {
                return Err(Error::Api {
                    method,
                    status,
                    description: self.server_text(&env.description.unwrap_or_default()),
                });
            }
            let result = env.result.unwrap_or(Value::Null);
            // A serde error quotes the value it choked on: server text.
            return serde_json::from_value(result).map_err(|e| Error::Decode {
                method,
                detail: self.server_text(&e.to_string()),
            });
        }
    }

    /// Sends `text` to the configured chat as MarkdownV2; if Telegram rejects
    /// the entities (`400 can't parse entities`), sends the plain rendering
    /// without `parse_mode`. `reply_markup` is passed through (inline keyboard).
    pub async fn send(&self, text: &Text, reply_markup: Option<Value>) -> Result<Message, Error> {
        let (md, plain) = text.bounded();
        let mut body = json!({
            "chat_id": self.chat_id,
            "text": md,
            "parse_mode": "MarkdownV2",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(m) = &reply_markup {
            body["reply_markup"] = m.clone();
        }
        match self
            .call::<Message>("sendMessage", &body, Duration::ZERO)
            .await
        {
            Err(Error::Api {
                status: 400,
                description,
                ..
            }) if description.contains("can't parse entities") => {
                tracing::warn!(%description, "telegram rejected MarkdownV2; sending plain text");
                let mut body = json!({
                    "chat_id": self.chat_id,
                    "text": plain,
                    "link_preview_options": {"is_disabled": true},
                });
                if let Some(m) = reply_markup {
                    body["reply_markup"] = m;
                }
                self.call("sendMessage", &body, Duration::ZERO).await
            }
            other => other,
        }
    }

    /// `getUpdates` with `offset`, a long-poll `timeout` (seconds, ≤ 50) and
    /// `allowed_updates` = message, channel_post, callback_query. The HTTP
    /// timeout is the long-poll time plus the configured timeout.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_s: u32,
    ) -> Result<Vec<Update>, Error> {
        let timeout_s = timeout_s.min(50);
        let mut body = json!({
            "timeout": timeout_s,
            "limit": 100,
            "allowed_updates": ["message", "channel_post", "callback_query"],
        });
        if let Some(o) = offset {
            body["offset"] = json!(o);
        }
        self.call(
            "getUpdates",
            &body,
            Duration::from_secs(u64::from(timeout_s)),
        )
        .await
    }

    /// `answerCallbackQuery` (a toast). A too-late answer is logged, not an error.
    pub async fn answer_callback(&self, id: &str, text: &str) -> Result<(), Error> {
        let body =
            json!({"callback_query_id": id, "text": text.chars().take(200).collect::<String>()});
        match self
            .call::<bool>("answerCallbackQuery", &body, Duration::ZERO)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Api {
                status: 400,
                description,
                ..
            }) => {
                tracing::warn!(%description, "answerCallbackQuery refused");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the inline keyboard of a message (after a decision). "message
    /// is not modified" counts as success.
    pub async fn clear_buttons(&self, message_id: i64) -> Result<(), Error> {
        let body = json!({"chat_id": self.chat_id, "message_id": message_id, "reply_markup": {"inline_keyboard": []}});
        match self
            .call::<Value>("editMessageReplyMarkup", &body, Duration::ZERO)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Api {
                status: 400,
                description,
                ..
            }) if description.contains("not modified") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl crate::channel::Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    /// [`Telegram::send`] to the configured chat, without buttons.
    fn send<'a>(&'a self, msg: &'a crate::channel::Outgoing<'a>) -> crate::channel::Delivery<'a> {
        Box::pin(async move { Telegram::send(self, msg.text, None).await.map(|_| ()) })
    }
}

/// Reads at most `cap` bytes of a reply, chunk by chunk. A successful reply
/// longer than that is `None` (the rest is never read: dropping the
/// response closes the connection); an error reply is cut at `cap`.
pub(crate) async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
    whole: bool,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if whole && resp.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            if whole {
                return Ok(None);
            }
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
