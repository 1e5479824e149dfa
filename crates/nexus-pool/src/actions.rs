//! The status page's actions (`POST /action`): approve or deny a revive
//! that waits for a human, retry an agent now, acknowledge its episode.
//!
//! Who may act: the page is served on loopback, so its actions are too.
//! A request is taken only when
//! - the `Host` it was sent to is a loopback name or address (a page of
//!   another site that a DNS rebinding points at 127.0.0.1 has another
//!   host name);
//! - it is no cross-site request: `Sec-Fetch-Site`, when the browser sends
//!   it, is `same-origin` or `none`, and `Origin`, when sent, is this
//!   page's own;
//! - its form carries the page's CSRF token: a random value made at start,
//!   written into the page's forms, which another site cannot read;
//! - the pool listens on loopback at all (else the actions are off and the
//!   page shows none).
//!
//! A taken request is handed to the pool's loop (a bounded queue: a full
//! one is a 503, never a wait) and answered `303 See Other` back to the
//! page, which shows what came of it among the agent's events. The pool
//! records every action in the agent's events and its cell's log.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, Form};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use nexus_secret::Secret;
use serde::Deserialize;
use tokio::sync::mpsc;

/// How many actions may wait for the pool's loop.
const QUEUE: usize = 64;

/// An agent key is `<cell uuid>/<name>` or a gateway's name: longer is no key.
const MAX_KEY: usize = 256;

/// What a human asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// Yes to the revive request that waits.
    Approve,
    /// No to it (no revive this episode).
    Deny,
    /// Retry now or acknowledge ([`nexus_revive::command`]).
    Command(nexus_revive::Command),
}

impl What {
    /// The form's word for it, as the events and the cell's log say it.
    pub fn as_str(self) -> &'static str {
        match self {
            What::Approve => "approve",
            What::Deny => "deny",
            What::Command(c) => c.as_str(),
        }
    }

    fn parse(s: &str) -> Option<What> {
        Some(match s {
            "approve" => What::Approve,
            "deny" => What::Deny,
            "retry" => What::Command(nexus_revive::Command::RetryNow),
            "acknowledge" => What::Command(nexus_revive::Command::Acknowledge),
            _ => return None,
        })
    }
}

/// One action, on its way to the pool's loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanAction {
    /// The agent's key (`<cell>/<name>`, or a gateway's name).
    pub key: String,
    /// What was asked.
    pub what: What,
    /// Who asked, as far as the pool can tell.
    pub by: &'static str,
}

/// Who an action is recorded as coming from.
pub const BY_PAGE: &str = "the status page (loopback)";

/// The HTTP side: the queue into the pool's loop and the page's CSRF token.
#[derive(Debug, Clone)]
pub struct PageActions {
    tx: mpsc::Sender<HumanAction>,
    csrf: Arc<Secret>,
}

/// The pool's side: where the actions arrive.
pub type Inbox = mpsc::Receiver<HumanAction>;

impl PageActions {
    /// A queue into the pool's loop and a fresh CSRF token (16 random
    /// bytes from the kernel, hex).
    pub fn new() -> std::io::Result<(PageActions, Inbox)> {
        use std::io::Read as _;
        let mut raw = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok((
            PageActions {
                tx,
                csrf: Arc::new(Secret::new(hex)),
            },
            rx,
        ))
    }

    /// The token the page writes into its forms.
    pub(crate) fn csrf(&self) -> &str {
        self.csrf.expose()
    }

    /// The `POST /action` route; the page's handler finds `self` as an
    /// extension (its forms carry the token).
    pub fn router(self) -> Router {
        Router::new()
            .route("/action", post(act))
            .layer(DefaultBodyLimit::max(4096))
            .layer(Extension(self))
    }
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    agent: String,
    #[serde(rename = "do")]
    what: String,
    csrf: String,
}

fn refuse(code: StatusCode, why: &str) -> Response {
    (code, format!("{why}\n")).into_response()
}

async fn act(
    Extension(gate): Extension<PageActions>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return refuse(StatusCode::FORBIDDEN, "no Host header");
    };
    if !loopback_host(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "actions are taken only on a loopback address (127.0.0.1, [::1], localhost)",
        );
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return refuse(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok())
        && origin != format!("http://{host}")
    {
        return refuse(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    if !gate.csrf.matches(&form.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the page's token is missing or stale (the pool restarted?): reload the page",
        );
    }
    let Some(what) = What::parse(&form.what) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "`do` is one of approve, deny, retry, acknowledge",
        );
    };
    if form.agent.is_empty()
        || form.agent.len() > MAX_KEY
        || form.agent.chars().any(char::is_control)
    {
        return refuse(StatusCode::BAD_REQUEST, "`agent` is no agent's key");
    }
    let action = HumanAction {
        key: form.agent,
        what,
        by: BY_PAGE,
    };
    match gate.tx.try_send(action) {
        Ok(()) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pool is busy with other actions; try again in a moment",
        ),
    }
}

/// `host` (a `Host` header: name or address, optional port) is loopback.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8767
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn request(csrf: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
        let mut b = Request::post("/action")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = body.replace("CSRF", csrf);
        b.body(Body::from(body)).unwrap()
    }

    async fn send(gate: &PageActions, req: Request<Body>) -> (StatusCode, String) {
        let res = gate.clone().router().oneshot(req).await.unwrap();
        let code = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    const OK_FORM: &str = "agent=c1%2Fallegro&do=retry&csrf=CSRF";

    /// Headers, CSRF token, form, expected status.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, StatusCode);

    #[tokio::test]
    async fn a_same_origin_form_with_the_token_reaches_the_pool() {
        let (gate, mut inbox) = PageActions::new().unwrap();
        let csrf = gate.csrf().to_string();
        let req = request(
            &csrf,
            &[
                ("host", "127.0.0.1:8767"),
                ("origin", "http://127.0.0.1:8767"),
                ("sec-fetch-site", "same-origin"),
            ],
            OK_FORM,
        );
        let (code, _) = send(&gate, req).await;
        assert_eq!(code, StatusCode::SEE_OTHER);
        assert_eq!(
            inbox.try_recv().unwrap(),
            HumanAction {
                key: "c1/allegro".into(),
                what: What::Command(nexus_revive::Command::RetryNow),
                by: BY_PAGE,
            }
        );
    }

    #[tokio::test]
    async fn cross_site_rebound_tokenless_and_malformed_requests_are_refused() {
        let (gate, mut inbox) = PageActions::new().unwrap();
        let csrf = gate.csrf().to_string();
        let host = ("host", "localhost:8767");
        let cases: [Case; 7] = [
            (
                &[("host", "evil.example:8767")],
                &csrf,
                OK_FORM,
                StatusCode::FORBIDDEN,
            ),
            (
                &[host, ("sec-fetch-site", "cross-site")],
                &csrf,
                OK_FORM,
                StatusCode::FORBIDDEN,
            ),
            (
                &[host, ("origin", "http://evil.example")],
                &csrf,
                OK_FORM,
                StatusCode::FORBIDDEN,
            ),
            (&[host], "0000", OK_FORM, StatusCode::FORBIDDEN),
            (
                &[host],
                &csrf,
                "agent=a&do=explode&csrf=CSRF",
                StatusCode::BAD_REQUEST,
            ),
            (
                &[host],
                &csrf,
                "agent=a%0Ab&do=retry&csrf=CSRF",
                StatusCode::BAD_REQUEST,
            ),
            (
                &[host],
                &csrf,
                "agent=&do=retry&csrf=CSRF",
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (headers, token, form, code) in cases {
            let (got, body) = send(&gate, request(token, headers, form)).await;
            assert_eq!(got, code, "{headers:?} {form}: {body}");
            assert!(!body.contains(&csrf), "the token is never echoed: {body}");
        }
        assert!(inbox.try_recv().is_err(), "nothing reached the pool");
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:8767",
            "127.9.9.9",
            "[::1]:80",
            "localhost:1",
            "LOCALHOST",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1:80",
            "evil.example",
            "[2001:db8::1]:80",
            "localhost.evil:1",
            "",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }
}
