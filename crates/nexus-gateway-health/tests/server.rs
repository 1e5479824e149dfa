//! The health server on a real socket, embedded in a real WebSocket gateway
//! (tokio-tungstenite) on loopback.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nexus_gateway_health::{
    BindError, HealthServer, Limits, Liveness, Options, spawn, tick_period,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(10);

/// Sends `request` on a new connection and reads the answer to its end.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let run = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        // What arrived before a reset counts too.
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("no answer to {request:?} within {DEADLINE:?}"))
}

async fn get(addr: SocketAddr, method: &str, target: &str) -> (u16, String, String) {
    let text = raw(
        addr,
        &format!("{method} {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    )
    .await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    (code, head.to_ascii_lowercase(), body.to_string())
}

/// A WebSocket echo gateway whose accept loop ticks `live` (on every
/// accept and every tick period) and counts its clients, as the crate's
/// documentation says a gateway does. Returns its address.
async fn gateway(live: Liveness, fresh_within: Duration) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(tick_period(fresh_within));
        loop {
            live.tick();
            tokio::select! {
                a = l.accept() => {
                    let Ok((s, _)) = a else { continue };
                    let guard = live.client();
                    tokio::spawn(async move {
                        let _guard = guard;
                        let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else { return };
                        while let Some(Ok(m)) = ws.next().await {
                            if m.is_text() && ws.send(m).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                _ = every.tick() => {}
            }
        }
    });
    addr
}

/// A health server for `live` on a free loopback port.
async fn start(
    live: &Liveness,
    fresh_within: Duration,
    header_timeout: Duration,
    max_connections: usize,
) -> HealthServer {
    let limits = Limits {
        header_timeout,
        lifetime: Duration::from_secs(30),
        max_connections,
    };
    let options = Options {
        fresh_within,
        limits,
    };
    spawn("127.0.0.1", 0, live.clone(), options).await.unwrap()
}

/// Polls `f` until it is true, at most `DEADLINE`.
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f().await {
        assert!(Instant::now() < end, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_endpoint_counts_clients_and_answers_every_form() {
    let fresh = Duration::from_secs(30);
    let live = Liveness::new(0);
    let gw = gateway(live.clone(), fresh).await;
    let health = start(&live, fresh, Duration::from_secs(5), 64).await;
    let h = health.local_addr();

    let (code, head, body) = get(h, "GET", "/health?probe=1").await;
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["status"], "ok");
    assert_eq!(j["connected_clients"], 0);

    // A real WebSocket client is counted while it is connected.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{gw}/"))
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
    let (_, _, body) = get(h, "GET", "/health").await;
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["connected_clients"], 1, "{j}");
    drop(ws);
    until("the client leaves the count", async || {
        let (_, _, body) = get(h, "GET", "/health").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["connected_clients"] == 0
    })
    .await;

    let (code, head, body) = get(h, "HEAD", "/health").await;
    assert_eq!(code, 200);
    assert!(body.is_empty(), "{body:?}");
    assert!(head.contains("content-length: "), "{head}");
    assert!(
        !head.contains("content-length: 0"),
        "HEAD gives GET's length: {head}"
    );
    let (code, head, _) = get(h, "POST", "/health").await;
    assert_eq!(code, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    for path in ["/", "/healthz", "/metrics"] {
        let (code, _, body) = get(h, "GET", path).await;
        assert_eq!((code, body.as_str()), (404, ""), "{path}");
    }
    health.stop().await;
    assert!(TcpStream::connect(h).await.is_err(), "stopped means closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_stops_ticking_goes_degraded_with_503() {
    let fresh = Duration::from_millis(300);
    let live = Liveness::new(8765);
    let health = start(&live, fresh, Duration::from_secs(5), 64).await;
    let h = health.local_addr();
    // Never ticked: not live.
    let (code, _, body) = get(h, "GET", "/health").await;
    assert_eq!(code, 503);
    assert!(body.contains("\"status\":\"degraded\""), "{body}");
    live.tick();
    assert_eq!(get(h, "GET", "/health").await.0, 200);
    // No more ticks: degraded once the window has passed.
    until("degraded after the window", async || {
        get(h, "GET", "/health").await.0 == 503
    })
    .await;
    let (code, _, body) = get(h, "HEAD", "/health").await;
    assert_eq!((code, body.as_str()), (503, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_request_stalls_nobody() {
    let live = Liveness::new(8765);
    live.tick();
    let header_timeout = Duration::from_millis(500);
    let health = start(&live, Duration::from_secs(30), header_timeout, 64).await;
    let h = health.local_addr();
    // Half a request, then nothing.
    let mut stalled = TcpStream::connect(h).await.unwrap();
    stalled
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    // Probes in parallel all answer at once, well inside the stall.
    let started = Instant::now();
    let probes: Vec<_> = (0..16)
        .map(|_| tokio::spawn(async move { get(h, "GET", "/health").await.0 }))
        .collect();
    for p in probes {
        assert_eq!(p.await.unwrap(), 200);
    }
    assert!(
        started.elapsed() < header_timeout,
        "16 probes took {:?} beside a stalled client",
        started.elapsed()
    );
    // And the stalled client is cut off after the header timeout.
    let mut buf = [0u8; 256];
    let cut = tokio::time::timeout(DEADLINE, stalled.read(&mut buf)).await;
    assert!(cut.is_ok(), "the stalled client was never cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_client_gets_503_at_once() {
    let live = Liveness::new(8765);
    live.tick();
    let health = start(&live, Duration::from_secs(30), Duration::from_secs(5), 2).await;
    let h = health.local_addr();
    let _a = TcpStream::connect(h).await.unwrap();
    let _b = TcpStream::connect(h).await.unwrap();
    // The answer comes before any request (one sent would be unread at the
    // close, which turns the close into a reset).
    until("the third connection is refused", async || {
        raw(h, "")
            .await
            .starts_with("HTTP/1.1 503 Service Unavailable")
    })
    .await;
    drop((_a, _b));
    until("served again once they left", async || {
        get(h, "GET", "/health").await.0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_typed_error_and_the_gateway_serves_on() {
    let fresh = Duration::from_secs(30);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let live = Liveness::new(0);
    let gw = gateway(live.clone(), fresh).await;
    let e = spawn("127.0.0.1", port, live.clone(), Options::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BindError::InUse { addr } if *addr == format!("127.0.0.1:{port}")),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    // The gateway is untouched: a WebSocket round trip still works.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{gw}/"))
        .await
        .unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
}
