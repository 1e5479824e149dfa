//! Relays over WebSocket (NIP-01): publish an event and await its `OK`,
//! read what a `REQ` returns up to `EOSE`. Every call has a deadline; a
//! relay that fails (cannot connect, no answer in time) backs off, doubling
//! from `backoff_initial` to `backoff_max`, and is skipped until then.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr::{ClientMessage, Event, EventId, Filter, JsonUtil, RelayMessage, SubscriptionId};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::Error;

/// The largest relay message read (an event with its tags, or a NOTICE).
pub const MAX_MESSAGE: usize = 1 << 20;
/// Events read from one relay for one `REQ` at most.
pub const MAX_EVENTS: usize = 1000;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One relay and its back-off.
#[derive(Debug, Clone)]
struct Relay {
    url: String,
    failures: u32,
    retry_at: Option<Instant>,
}

/// What one relay said about the events published to it.
#[derive(Debug, Default)]
pub struct Published {
    /// Events some relay answered `["OK", id, true, …]` for.
    pub accepted: HashSet<EventId>,
    /// Why the other relays or events failed (relay url first).
    pub problems: Vec<String>,
}

/// The `[nostr]` relays, in configured order, each with its own back-off.
#[derive(Debug, Clone)]
pub struct Relays {
    relays: Vec<Relay>,
    /// Each call (connect, send, the answers) at most this long.
    pub timeout: Duration,
    /// First back-off after a failure.
    pub backoff_initial: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
}

fn short(e: impl std::fmt::Display) -> String {
    nexus_secret::clean(&e.to_string(), 200).into_owned()
}

/// Why one relay failed a call (its text cleaned of controls and cut).
#[derive(Debug, Clone, thiserror::Error)]
enum RelayError {
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Transport(String),
    #[error("closed before {0}")]
    Closed(&'static str),
    #[error("no {what} within {timeout:?}")]
    Timeout {
        what: &'static str,
        timeout: Duration,
    },
    #[error("subscription closed: {0}")]
    SubscriptionClosed(String),
}

fn transport(e: impl std::fmt::Display) -> RelayError {
    RelayError::Transport(short(e))
}

impl Relays {
    /// The relays at `urls` (`ws://` or `wss://`).
    pub fn new(urls: &[String], timeout: Duration) -> Relays {
        Relays {
            relays: urls
                .iter()
                .map(|u| Relay {
                    url: u.clone(),
                    failures: 0,
                    retry_at: None,
                })
                .collect(),
            timeout,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }

    /// The relays not backing off now (their indexes), or how long until
    /// the first is due again.
    fn due(&self) -> Result<Vec<usize>, Error> {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.relays.len())
            .filter(|i| self.relays[*i].retry_at.is_none_or(|t| t <= now))
            .collect();
        if due.is_empty() {
            let next = self
                .relays
                .iter()
                .filter_map(|r| r.retry_at)
                .min()
                .map_or(0.0, |t| (t - now).as_secs_f64());
            return Err(Error::Down {
                retry_in: next,
                why: "every relay is backing off after a failure".into(),
            });
        }
        Ok(due)
    }

    fn failed(&mut self, i: usize, why: &str) {
        let r = &mut self.relays[i];
        let wait = self
            .backoff_initial
            .saturating_mul(1 << r.failures.min(16))
            .min(self.backoff_max);
        r.failures = r.failures.saturating_add(1);
        r.retry_at = Some(Instant::now() + wait);
        tracing::warn!(
            "nostr relay {}: {why}; next try in {}",
            r.url,
            nexus_stdx::format_duration(wait.as_secs_f64())
        );
    }

    fn worked(&mut self, i: usize) {
        let r = &mut self.relays[i];
        if r.failures > 0 {
            tracing::info!("nostr relay {}: reachable again", r.url);
        }
        r.failures = 0;
        r.retry_at = None;
    }

    /// Sends `events` to every relay that is due, concurrently; each counts
    /// only once a relay answered `OK true` for it within the deadline.
    pub async fn publish(&mut self, events: &[Event]) -> Result<Published, Error> {
        let due = self.due()?;
        let timeout = self.timeout;
        let calls = due.iter().map(|&i| {
            let url = self.relays[i].url.clone();
            async move {
                let r = tokio::time::timeout(timeout, publish_one(&url, events)).await;
                (
                    i,
                    r.unwrap_or(Err(RelayError::Timeout {
                        what: "OK",
                        timeout,
                    })),
                )
            }
        });
        let mut out = Published::default();
        let mut last = String::new();
        let mut failed = 0;
        for (i, r) in futures_util::future::join_all(calls).await {
            let url = self.relays[i].url.clone();
            match r {
                Ok((accepted, refused)) => {
                    self.worked(i);
                    out.accepted.extend(accepted);
                    out.problems
                        .extend(refused.into_iter().map(|why| format!("{url}: {why}")));
                }
                Err(why) => {
                    self.failed(i, &why.to_string());
                    failed += 1;
                    last = format!("{url}: {why}");
                    out.problems.push(last.clone());
                }
            }
        }
        if failed == due.len() {
            return Err(Error::Down {
                retry_in: self.due().err().map_or(0.0, |e| e.retry_in()),
                why: last,
            });
        }
        Ok(out)
    }

    /// The stored events matching `filters` from every relay that is due
    /// (read until `EOSE`, at most [`MAX_EVENTS`] each), signatures
    /// verified, without duplicates. An error only when no relay answered.
    pub async fn fetch(&mut self, filters: &[Filter]) -> Result<Vec<Event>, Error> {
        let due = self.due()?;
        let timeout = self.timeout;
        let calls = due.iter().map(|&i| {
            let url = self.relays[i].url.clone();
            async move {
                let r = tokio::time::timeout(timeout, fetch_one(&url, filters)).await;
                (
                    i,
                    r.unwrap_or(Err(RelayError::Timeout {
                        what: "EOSE",
                        timeout,
                    })),
                )
            }
        });
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut last = None;
        let mut answered = false;
        for (i, r) in futures_util::future::join_all(calls).await {
            match r {
                Ok(events) => {
                    self.worked(i);
                    answered = true;
                    for e in events {
                        if e.verify().is_ok() && seen.insert(e.id) {
                            out.push(e);
                        }
                    }
                }
                Err(why) => {
                    self.failed(i, &why.to_string());
                    last = Some(format!("{}: {why}", self.relays[i].url));
                }
            }
        }
        match (answered, last) {
            (false, Some(why)) => Err(Error::Down {
                retry_in: self.due().err().map_or(0.0, |e| e.retry_in()),
                why,
            }),
            _ => Ok(out),
        }
    }
}

/// TLS for `wss://`: rustls with aws-lc-rs (named, not the process
/// default, which is ambiguous when a test build links ring too) and the
/// platform verifier (the system's roots), as reqwest verifies Gitea and
/// Telegram.
fn tls() -> Result<Connector, RelayError> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, RelayError>> =
        std::sync::OnceLock::new();
    let cfg = CONFIG.get_or_init(|| {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .map(|b| Arc::new(b.with_no_client_auth()))
            .map_err(|e| RelayError::Tls(short(e)))
    });
    cfg.clone().map(Connector::Rustls)
}

async fn connect(url: &str) -> Result<Ws, RelayError> {
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connector = if url.starts_with("wss://") {
        Some(tls()?)
    } else {
        Some(Connector::Plain)
    };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, Some(cfg), true, connector)
        .await
        .map_err(|e| RelayError::Connect(short(e)))?;
    Ok(ws)
}

/// The next relay message (pings answered by the library; other frames
/// skipped); `None` when the relay closed.
async fn next(ws: &mut Ws) -> Result<Option<RelayMessage<'static>>, RelayError> {
    loop {
        let Some(m) = ws.next().await else {
            return Ok(None);
        };
        match m.map_err(transport)? {
            Message::Text(t) => match RelayMessage::from_json(t.as_str()) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => tracing::debug!("nostr: unreadable relay message: {}", short(e)),
            },
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
}

type Outcome = (Vec<EventId>, Vec<String>);

async fn publish_one(url: &str, events: &[Event]) -> Result<Outcome, RelayError> {
    let mut ws = connect(url).await?;
    let mut waiting: HashSet<EventId> = HashSet::new();
    for e in events {
        let msg = ClientMessage::event(e.clone()).as_json();
        ws.send(Message::text(msg)).await.map_err(transport)?;
        waiting.insert(e.id);
    }
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    while !waiting.is_empty() {
        match next(&mut ws).await? {
            None => return Err(RelayError::Closed("OK")),
            Some(RelayMessage::Ok {
                event_id,
                status,
                message,
            }) if waiting.remove(&event_id) => {
                if status {
                    accepted.push(event_id);
                } else {
                    refused.push(format!("refused {event_id}: {}", short(message)));
                }
            }
            Some(RelayMessage::Notice(n)) => tracing::debug!("nostr {url}: NOTICE {}", short(n)),
            Some(_) => {}
        }
    }
    let _ = ws.close(None).await;
    Ok((accepted, refused))
}

async fn fetch_one(url: &str, filters: &[Filter]) -> Result<Vec<Event>, RelayError> {
    let mut ws = connect(url).await?;
    let sub = SubscriptionId::generate();
    let req = ClientMessage::req(sub.clone(), filters.to_vec()).as_json();
    ws.send(Message::text(req)).await.map_err(transport)?;
    let mut out: HashMap<EventId, Event> = HashMap::new();
    loop {
        match next(&mut ws).await? {
            None => return Err(RelayError::Closed("EOSE")),
            Some(RelayMessage::Event {
                subscription_id,
                event,
            }) if *subscription_id == sub => {
                if out.len() < MAX_EVENTS {
                    let e = event.into_owned();
                    out.insert(e.id, e);
                }
            }
            Some(RelayMessage::EndOfStoredEvents(s)) if *s == sub => break,
            Some(RelayMessage::Closed {
                subscription_id,
                message,
            }) if *subscription_id == sub => {
                return Err(RelayError::SubscriptionClosed(short(message)));
            }
            Some(_) => {}
        }
    }
    let close = ClientMessage::close(sub).as_json();
    let _ = ws.send(Message::text(close)).await;
    let _ = ws.close(None).await;
    Ok(out.into_values().collect())
}
