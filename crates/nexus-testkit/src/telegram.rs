//! A Telegram Bot API stand-in for the binaries' alerts: a mockito server
//! that answers `sendMessage` as the Bot API does (a `Message` with an id,
//! the chat and the date), records each accepted body, checks every request
//! against the Bot API description ([`crate::botapi`]); `getUpdates` returns
//! the updates a test queued.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// What the stand-in saw.
#[derive(Debug, Default)]
pub struct BotState {
    /// Accepted `sendMessage` bodies, in order.
    pub sent: Vec<Value>,
    /// Bot API contract violations of the requests.
    pub violations: Vec<String>,
    /// Every request, method and body, in order.
    pub calls: Vec<(String, Value)>,
    /// Updates the next `getUpdates` returns (then forgets), as a test
    /// queued them: `Update` objects of the Bot API.
    pub updates: Vec<Value>,
    next_id: i64,
}

/// The running stand-in; stops when dropped.
pub struct Bot {
    server: mockito::ServerGuard,
    st: Arc<Mutex<BotState>>,
    _mock: mockito::Mock,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("url", &self.server.url())
            .finish_non_exhaustive()
    }
}

impl Bot {
    /// Starts it on 127.0.0.1.
    pub async fn start() -> Bot {
        let mut server = mockito::Server::new_async().await;
        let st = Arc::new(Mutex::new(BotState::default()));
        let s = st.clone();
        let mock = server
            .mock(
                "POST",
                mockito::Matcher::Regex("^/bot[^/]+/[A-Za-z]+$".into()),
            )
            .with_header("content-type", "application/json")
            .with_body_from_request(move |req| {
                let method = req
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let body: Value =
                    serde_json::from_slice(req.body().unwrap()).unwrap_or(Value::Null);
                let mut st = s.lock().unwrap();
                let found = crate::botapi::check_request(&method, &body);
                st.violations
                    .extend(found.into_iter().map(|v| format!("{method}: {v}")));
                st.calls.push((method.clone(), body.clone()));
                let result = match method.as_str() {
                    "sendMessage" => {
                        st.next_id += 1;
                        let r = json!({"message_id": st.next_id, "date": now(),
                            "chat": {"id": body["chat_id"], "type": "group"},
                            "text": body["text"]});
                        st.sent.push(body);
                        r
                    }
                    "getUpdates" => Value::Array(std::mem::take(&mut st.updates)),
                    _ => json!(true),
                };
                json!({"ok": true, "result": result})
                    .to_string()
                    .into_bytes()
            })
            .create_async()
            .await;
        Bot {
            server,
            st,
            _mock: mock,
        }
    }

    /// The base URL (`[telegram] api_url`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The state, locked.
    pub fn st(&self) -> std::sync::MutexGuard<'_, BotState> {
        self.st.lock().unwrap()
    }

    /// The texts of the accepted messages, in order.
    pub fn texts(&self) -> Vec<String> {
        self.st()
            .sent
            .iter()
            .map(|b| b["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The same texts as a reader sees them: MarkdownV2's escapes and
    /// bold marks taken out (`*gpu* \\[WARNING\\]` reads `gpu [WARNING]`).
    pub fn read(&self) -> Vec<String> {
        self.texts()
            .iter()
            .map(|t| {
                let mut out = String::with_capacity(t.len());
                let mut chars = t.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        '*' => {}
                        c => out.push(c),
                    }
                }
                out
            })
            .collect()
    }

    /// Fails the test if a request broke the Bot API contract.
    pub fn assert_contract(&self) {
        let st = self.st();
        assert!(
            st.violations.is_empty(),
            "Bot API contract violations:\n{}",
            st.violations.join("\n")
        );
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
