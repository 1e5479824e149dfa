//! The HTTP surface on a real loopback socket, checked by the real tools:
//! `promtool check metrics` and a headless Chromium reading the status page;
//! and held against clients that hold connections open.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, RwLock};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nexus_pool::http::{ConnLimits, Shared, router, serve, serve_with};
use nexus_pool::{AgentView, PoolSnapshot};
use nexus_revive::{Policy, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn fleet() -> PoolSnapshot {
    let t = now();
    let agent = |name: &str, state: State, age: f64| AgentView {
        name: name.into(),
        cell: Some("0f6c2b1e-demo".into()),
        mission: Some("demo mission".into()),
        policy: Policy::Auto,
        state,
        gateway_alive: Some(true),
        process_alive: Some(state != State::Dead),
        heartbeat_age: Some(age),
        revive_attempts: u32::from(state == State::Reviving),
        last_checked: t,
        first_dead_at: None,
        revive_pending: false,
        acknowledged_by: None,
        waiting: None,
        reason: None,
        last_events: Box::new([nexus_pool::Note {
            at: t - 30.0,
            text: format!("{name}: {state:?}"),
        }]),
    };
    PoolSnapshot {
        started_at: t - 60.0,
        sweeps: 12,
        last_sweep_at: t - 1.0,
        last_sweep_seconds: 0.003,
        poll_interval_seconds: 5.0,
        agents: vec![
            agent("allegro", State::Healthy, 2.0),
            agent("bezalel", State::Dead, 700.0),
            agent("ezra", State::Reviving, 40.0),
        ],
        faults: Vec::new(),
        channels: vec![nexus_pool::ChannelView {
            name: "telegram",
            trouble: Some("no answer within 30s".into()),
            waiting: 1,
        }],
        unreadable_cells: vec![nexus_pool::UnreadableCell {
            cell: "1b4e28ba-2fa1-11d2-883f-0016d3cca427".into(),
            reason: "cell.json: truncated JSON".into(),
        }],
        history: None,
    }
}

/// [`fleet`] with every cell readable: `/health` answers 200.
fn readable_fleet() -> PoolSnapshot {
    PoolSnapshot {
        unreadable_cells: Vec::new(),
        ..fleet()
    }
}

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared: Shared = Arc::new(RwLock::new(fleet()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, shared, Default::default(), async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_accepts_the_metrics() {
    let (base, _stop) = start().await;
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    nexus_testkit::promtool_check_metrics(&body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_sees_every_agent_and_its_state_in_chromium() {
    let (base, _stop) = start().await;
    let dom = nexus_testkit::chromium_dom(&format!("{base}/"));
    // What a person sees: each agent's name next to its state.
    for (name, state) in [
        ("allegro", "healthy"),
        ("bezalel", "dead"),
        ("ezra", "reviving"),
    ] {
        let needle = format!(
            "<span class=\"name\">{name}</span><span class=\"state {state}\">{state}</span>"
        );
        assert!(
            dom.contains(&needle),
            "{needle} not in the rendered page:\n{dom}"
        );
    }
    assert!(dom.contains("3 agent(s), 2 unhealthy"), "{dom}");
    // The pool's own troubles: a channel not answering, a cell unreadable.
    for needle in [
        "telegram: no answer within 30s (1 waiting)",
        "<h2>Unreadable cells</h2>",
        "cell.json: truncated JSON",
    ] {
        assert!(
            dom.contains(needle),
            "{needle} not in the rendered page:\n{dom}"
        );
    }
}

/// The router on a loopback port under `limits`; stops when the sender drops.
async fn start_with(
    app: axum::Router,
    limits: ConnLimits,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with(listener, app, limits, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Reads until the server closes the connection; `None` if it is still open
/// at `deadline`.
async fn closed_by(mut s: TcpStream, deadline: Instant) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    let wait = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(wait, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

const LIMITS: ConnLimits = ConnLimits {
    header_timeout: Duration::from_secs(1),
    lifetime: Duration::from_secs(2),
    max_connections: 64,
};

/// 500 clients send half a request head and wait. Each is closed within
/// the header timeout (beyond the connection cap, at once), and `/health`
/// answers after. (The pool's own work through such a flood, under a low
/// open-file limit: e2e `pool_edge`.)
#[tokio::test(flavor = "multi_thread")]
async fn half_sent_requests_are_closed_within_the_header_timeout() {
    let shared: Shared = Arc::new(RwLock::new(readable_fleet()));
    let (addr, _stop) = start_with(router(shared), LIMITS).await;
    let mut clients = Vec::with_capacity(500);
    for _ in 0..500 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Refused clients may already be closed: a failed write is fine.
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: pool\r\n").await;
        clients.push(s);
    }
    let sent = Instant::now();
    let deadline = sent + LIMITS.header_timeout + Duration::from_secs(3);
    let mut waits = tokio::task::JoinSet::new();
    for s in clients {
        waits.spawn(closed_by(s, deadline));
    }
    let mut open = 0;
    let mut last = sent;
    while let Some(r) = waits.join_next().await {
        match r.unwrap() {
            Some(at) => last = last.max(at),
            None => open += 1,
        }
    }
    assert_eq!(open, 0, "connections still open after the header timeout");
    assert!(
        last - sent < LIMITS.header_timeout + Duration::from_secs(2),
        "closed after {:?}",
        last - sent
    );
    let r = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("resurrection-pool"));
}

/// A kept-alive connection idle after its answer is closed within the
/// header timeout; a client beyond the cap gets a 503 at once.
#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_is_closed_and_the_cap_answers_503() {
    let shared: Shared = Arc::new(RwLock::new(readable_fleet()));
    let limits = ConnLimits {
        max_connections: 1,
        ..LIMITS
    };
    let (addr, _stop) = start_with(router(shared), limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: pool\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("resurrection-pool") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    // The one slot is taken: the next client is turned away at once.
    let mut other = TcpStream::connect(addr).await.unwrap();
    let mut busy = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), other.read_to_end(&mut busy))
        .await
        .unwrap()
        .unwrap();
    assert!(busy.starts_with(b"HTTP/1.1 503"), "{busy:?}");
    // Idle after its answer: closed within the header timeout.
    let answered = Instant::now();
    let at = closed_by(s, answered + LIMITS.header_timeout + Duration::from_secs(2)).await;
    assert!(at.is_some(), "an idle kept-alive connection stayed open");
}

/// A body trickled a byte at a time holds its connection for its lifetime
/// at most.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_body_is_cut_at_the_connection_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let app = nexus_pool::ping::router(nexus_pool::ping::PingIngest {
        dir: dir.path().to_path_buf(),
        token: "a-token-of-sixteen-chars".into(),
        default_interval: Duration::from_secs(60),
        max_body: 4096,
        rate_limit: nexus_pool::ratelimit::RateLimit::default(),
        dry_run: false,
    });
    let (addr, _stop) = start_with(app, LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /ping/j HTTP/1.1\r\nHost: pool\r\nAuthorization: Bearer a-token-of-sixteen-chars\r\n\
          Content-Length: 1000\r\n\r\n",
    )
    .await
    .unwrap();
    let start = Instant::now();
    // At most 40 bytes, 100 ms apart (4 s): the server cuts it before.
    let mut cut = None;
    for _ in 0..40 {
        if s.write_all(b"x").await.is_err() {
            cut = Some(start.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
        {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickling client was never cut off");
    assert!(
        cut >= LIMITS.lifetime && cut < LIMITS.lifetime + Duration::from_millis(1500),
        "cut after {cut:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
