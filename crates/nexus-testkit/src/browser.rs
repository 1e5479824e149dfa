//! A real headless Chromium driven over the DevTools protocol (CDP), for
//! tests that click: one page, navigated, evaluated in, its forms
//! submitted, each step awaited on the page's own `load` event (no
//! sleeps). Chromium's browser endpoint is read off its stderr ("DevTools
//! listening on ws://…"), a page target is created and attached in
//! flattened mode, so one WebSocket carries everything. Every wait is
//! bounded ([`PATIENCE`]); the browser is killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one step may take.
pub const PATIENCE: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A headless Chromium with one page.
#[derive(Debug)]
pub struct Browser {
    rt: tokio::runtime::Runtime,
    ws: Ws,
    session: String,
    next_id: u64,
    child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (`tools::CHROMIUM_FLAGS`) with its DevTools
    /// endpoint on a free port.
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args(crate::tools::CHROMIUM_FLAGS)
            .args(["--remote-debugging-port=0", "about:blank"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromium is missing ({e}): run scripts/test (scripts/setup.d installs it)")
            });
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reads to EOF (so Chromium never blocks on a full pipe); the
            // first endpoint line is sent, the rest dropped.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(PATIENCE) else {
            let _ = child.kill();
            panic!("chromium printed no DevTools endpoint within {PATIENCE:?}");
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ws = rt.block_on(async {
            tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url.as_str()))
                .await
                .expect("DevTools connection timed out")
                .expect("DevTools connection")
                .0
        });
        let mut b = Browser {
            rt,
            ws,
            session: String::new(),
            next_id: 0,
            child,
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends one command (to the page once attached) and returns its
    /// `result`; events that arrive meanwhile are dropped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let ws = &mut self.ws;
        self.rt.block_on(async {
            ws.send(Message::text(msg.to_string())).await.unwrap();
            tokio::time::timeout(PATIENCE, async {
                loop {
                    let v = next_json(ws).await;
                    if v["id"] == id {
                        if let Some(e) = v.get("error") {
                            panic!("{method} failed: {e}");
                        }
                        return v["result"].clone();
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer within {PATIENCE:?}"))
        })
    }

    /// Waits for the page's next `load` event.
    fn loaded(&mut self) {
        let (ws, session) = (&mut self.ws, self.session.clone());
        self.rt.block_on(async {
            tokio::time::timeout(PATIENCE, async {
                loop {
                    let v = next_json(ws).await;
                    if v["method"] == "Page.loadEventFired" && v["sessionId"] == session.as_str() {
                        return;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("the page did not load within {PATIENCE:?}"));
        });
    }

    /// Shows the pages as a viewer in time zone `tz` (an IANA name such as
    /// `Asia/Tokyo`) would see them.
    pub fn set_timezone(&mut self, tz: &str) {
        self.call("Emulation.setTimezoneOverride", json!({"timezoneId": tz}));
    }

    /// Lays pages out as a screen of `width` x `height` CSS pixels would
    /// (a phone: 390 x 844).
    pub fn set_viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
    }

    /// Opens `url` and waits until it has loaded.
    pub fn goto(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "{url}: {r}");
        self.loaded();
    }

    /// Evaluates `js` in the page; its value (JSON).
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Clicks the element `selector` names (a form's submit button) and
    /// waits for the page that follows to load.
    pub fn click_and_wait(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.click(); return true; }})()"
        ));
        assert_eq!(found, json!(true), "no element {selector}");
        self.loaded();
    }

    /// The page's DOM as HTML.
    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).expect("DevTools sent JSON");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("DevTools connection: {e}"),
            None => panic!("DevTools connection closed"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
