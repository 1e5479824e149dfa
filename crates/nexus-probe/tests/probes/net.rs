//! TCP, HTTP, WebSocket, Ollama and the runner's concurrency.

use std::time::{Duration, Instant};

use nexus_probe::{
    BudgetSpec, HttpSpec, JsonAssert, OllamaSpec, ProbeKind, ProbeSpec, Runner, RunnerConfig,
    Status, TcpSpec, WsSpec,
};
use nexus_testkit::{HttpResponse, HttpServer, WsServer, tcp};

use super::{expect, run, run_with};

/// TCP probes of `127.0.0.1` at `ports`, named `p0`, `p1`, ...
fn tcp_probes(ports: impl Iterator<Item = u16>, timeout: Duration) -> Vec<ProbeSpec> {
    ports
        .enumerate()
        .map(|(i, port)| {
            ProbeSpec::new(
                format!("p{i}"),
                ProbeKind::Tcp(TcpSpec::new("127.0.0.1", port)),
            )
            .timeout(timeout)
        })
        .collect()
}

fn tcp_kind(host: &str, port: i64) -> ProbeKind {
    ProbeKind::Tcp(TcpSpec {
        host: host.into(),
        port,
    })
}

#[tokio::test]
async fn tcp_open_closed_silent_and_hung() {
    let open = tcp::open().await;
    let v = run(tcp_kind("127.0.0.1", open.addr.port().into())).await;
    expect(
        &v,
        Status::Ok,
        &format!("TCP:127.0.0.1:{} reachable", open.addr.port()),
    );

    let closed = tcp::closed();
    let v = run(tcp_kind("127.0.0.1", closed.port().into())).await;
    expect(&v, Status::Critical, "refused (errno=111)");

    // Accepts and never answers: a TCP connect succeeds (the handshake is the kernel's).
    let silent = tcp::silent().await;
    let v = run(tcp_kind("127.0.0.1", silent.addr.port().into())).await;
    expect(&v, Status::Ok, "reachable");

    // A full backlog: the connect hangs, the probe's timeout ends it.
    let hung = tcp::full_backlog().await;
    let start = Instant::now();
    let v = run_with(
        tcp_kind("127.0.0.1", hung.addr.port().into()),
        Duration::from_millis(300),
    )
    .await;
    expect(
        &v,
        Status::Critical,
        "TCP probe failed: timed out after 300ms",
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn tcp_localhost_tries_every_address() {
    let open = tcp::open().await; // 127.0.0.1 only; ::1 (if resolved) is refused
    let v = run(tcp_kind("localhost", open.addr.port().into())).await;
    expect(&v, Status::Ok, "reachable");
    assert_eq!(v.details["address"], open.addr.to_string());
}

#[tokio::test]
async fn tcp_ipv6_literals() {
    let v6 = tcp::open_v6().await;
    let port = i64::from(v6.addr.port());
    for host in ["::1", "[::1]"] {
        let v = run(tcp_kind(host, port)).await;
        expect(&v, Status::Ok, &format!("TCP:{host}:{port} reachable"));
        assert_eq!(v.details["address"], format!("[::1]:{port}"));
    }
    // The same port on IPv4 is someone else's (or nobody's).
    let v = run(tcp_kind("127.0.0.1", port)).await;
    let v6_addr = format!("[::1]:{port}");
    assert_ne!(
        v.details.get("address").and_then(|a| a.as_str()),
        Some(v6_addr.as_str()),
        "{v}"
    );
}

#[tokio::test]
async fn tcp_bad_input_is_a_verdict_not_a_panic() {
    let v = run(tcp_kind("127.0.0.1", 70000)).await;
    expect(&v, Status::Unknown, "port 70000 out of range 1-65535");
    let v = run(tcp_kind("127.0.0.1", 0)).await;
    expect(&v, Status::Unknown, "out of range");
    let v = run(tcp_kind("127.0.0.1", -5)).await;
    expect(&v, Status::Unknown, "out of range");
    // Unresolvable name: refused locally, no DNS traffic leaves the machine.
    let v = run(tcp_kind("no-such-host.invalid", 80)).await;
    expect(
        &v,
        Status::Critical,
        "cannot resolve host \"no-such-host.invalid\"",
    );
    let v = run(tcp_kind("evil host; rm -rf /", 80)).await;
    expect(&v, Status::Critical, "invalid host name");
}

fn json_health(status: u16, body: &'static str) -> impl Fn(&str, &str) -> HttpResponse {
    move |_, path| match path {
        "/health" => HttpResponse::json(status, body),
        "/text" => HttpResponse::text(200, "plain text"),
        "/big" => HttpResponse::huge(50 << 20, false),
        "/big-stream" => HttpResponse::huge(50 << 20, true),
        _ => HttpResponse::text(404, "nope"),
    }
}

#[tokio::test]
async fn http_status_json_assertions_and_body_cap() {
    let srv = HttpServer::start(json_health(200, r#"{"status":"ok","version":3}"#)).await;
    let mut spec = HttpSpec::get(srv.url("/health"));
    spec.json = vec![
        JsonAssert {
            pointer: "/status".into(),
            equals: "ok".into(),
        },
        JsonAssert {
            pointer: "/version".into(),
            equals: 3.0.into(),
        },
    ];
    let v = run(ProbeKind::Http(spec.clone())).await;
    expect(&v, Status::Ok, "responding (status 200)");
    assert_eq!(v.details["body"]["status"], "ok");

    spec.json[0].equals = "degraded".into();
    let v = run(ProbeKind::Http(spec.clone())).await;
    expect(
        &v,
        Status::Critical,
        "JSON field /status is \"ok\", expected \"degraded\"",
    );

    spec.json = vec![JsonAssert {
        pointer: "/missing".into(),
        equals: 1.into(),
    }];
    let v = run(ProbeKind::Http(spec)).await;
    expect(&v, Status::Critical, "/missing is missing");

    // 200 with a non-JSON body is healthy when nothing is asserted (defect H13).
    let v = run(ProbeKind::Http(HttpSpec::get(srv.url("/text")))).await;
    expect(&v, Status::Ok, "responding");

    let v = run(ProbeKind::Http(HttpSpec::get(srv.url("/nope")))).await;
    expect(&v, Status::Critical, "returned status 404 (expected 2xx)");
    let mut spec = HttpSpec::get(srv.url("/nope"));
    spec.expect_status = vec!["200".into(), "400-404".into()];
    expect(&run(ProbeKind::Http(spec)).await, Status::Ok, "status 404");
    let mut spec = HttpSpec::get(srv.url("/nope"));
    spec.unexpected_status = Status::Warning;
    expect(
        &run(ProbeKind::Http(spec)).await,
        Status::Warning,
        "status 404",
    );

    // 50 MB: refused from Content-Length, or cut off at the cap while streaming.
    for path in ["/big", "/big-stream"] {
        let start = Instant::now();
        let v = run(ProbeKind::Http(HttpSpec::get(srv.url(path)))).await;
        expect(&v, Status::Critical, "1048576-byte cap");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{path}: {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn http_and_ws_against_dead_and_silent_servers() {
    let closed = tcp::closed();
    let v = run(ProbeKind::Http(HttpSpec::get(format!(
        "http://{closed}/health"
    ))))
    .await;
    expect(&v, Status::Critical, "unreachable");
    // A token in the URL never reaches the verdict.
    let v = run(ProbeKind::Http(HttpSpec::get(format!(
        "http://user:s3cret@{closed}/h?token=s3cret"
    ))))
    .await;
    assert!(
        !serde_json::to_string(&v).unwrap().contains("s3cret"),
        "{v}"
    );

    let silent = tcp::silent().await;
    let start = Instant::now();
    let v = run_with(
        ProbeKind::Http(HttpSpec::get(format!("http://{}/", silent.addr))),
        Duration::from_millis(400),
    )
    .await;
    expect(
        &v,
        Status::Critical,
        "HTTP probe failed: timed out after 400ms",
    );
    let v = run_with(
        ProbeKind::Ws(WsSpec {
            url: format!("ws://{}/", silent.addr),
            send: None,
            expect: None,
        }),
        Duration::from_millis(400),
    )
    .await;
    expect(&v, Status::Critical, "WebSocket probe failed: timed out");
    assert!(start.elapsed() < Duration::from_secs(3));

    let v = run(ProbeKind::Ws(WsSpec {
        url: format!("ws://{closed}/"),
        send: None,
        expect: None,
    }))
    .await;
    expect(&v, Status::Critical, "WebSocket probe failed");
    // An HTTP server that does not upgrade.
    let srv = HttpServer::start(json_health(200, "{}")).await;
    let v = run(ProbeKind::Ws(WsSpec {
        url: format!("ws://{}/health", srv.addr),
        send: None,
        expect: None,
    }))
    .await;
    expect(&v, Status::Critical, "WebSocket probe failed");
}

#[tokio::test]
async fn websocket_handshake_and_round_trip() {
    let ws = WsServer::echo().await;
    let v = run(ProbeKind::Ws(WsSpec {
        url: ws.url(),
        send: None,
        expect: None,
    }))
    .await;
    expect(&v, Status::Ok, "handshake OK");
    assert_eq!(v.details["http_status"], 101);
    let v = run(ProbeKind::Ws(WsSpec {
        url: ws.url(),
        send: Some("ping-42".into()),
        expect: Some("42".into()),
    }))
    .await;
    expect(&v, Status::Ok, "round trip OK");
    assert_eq!(v.details["reply"], "ping-42");
    let v = run(ProbeKind::Ws(WsSpec {
        url: ws.url(),
        send: Some("ping".into()),
        expect: Some("pong".into()),
    }))
    .await;
    expect(&v, Status::Critical, "does not contain \"pong\"");
}

/// A target that echoes the request (its `Authorization` header, the
/// token in the query, as is, URL- and base64-encoded, behind escape
/// sequences and a forged log line) in its JSON body: the verdict (summary,
/// details, JSON) holds no secret and no control character.
#[tokio::test]
async fn a_target_that_echoes_the_request_gets_no_secret_or_control_character_into_the_verdict() {
    use nexus_probe::{MAX_SUMMARY_CHARS, Secret};
    use nexus_testkit::canary::{PING_TOKEN, TELEGRAM_TOKEN};
    use nexus_testkit::gitea::TOKEN;
    use nexus_testkit::reflect::{assert_clean, echo};
    let srv = HttpServer::start_with_head(|_, _, head| {
        let e = echo(head);
        let body = serde_json::json!({"status": e, "echo": {e.clone(): [e]}});
        HttpResponse::json(200, &body.to_string())
    })
    .await;
    let mut spec = HttpSpec::get(srv.url(&format!("/health?token={PING_TOKEN}")));
    spec.headers.insert(
        "Authorization".into(),
        Secret::new(format!("token {TOKEN}")),
    );
    spec.headers
        .insert("X-Bot".into(), Secret::new(TELEGRAM_TOKEN));
    spec.json = vec![JsonAssert {
        pointer: "/status".into(),
        equals: "ok".into(),
    }];
    let v = run(ProbeKind::Http(spec)).await;
    let shown = format!(
        "{v}\n{}\n{:?}",
        serde_json::to_string(&v).unwrap(),
        v.details
    );
    assert_clean("the verdict", &shown);
    expect(&v, Status::Critical, "JSON field /status is");
    assert!(v.summary.chars().count() <= MAX_SUMMARY_CHARS + 1);
    // The body is still shown, cleaned: the reflection is there, the
    // secrets are not.
    let body = v.details["body"]["status"].as_str().unwrap();
    assert!(body.starts_with("request refused"), "{body}");
    assert!(body.contains("authorization: ***"), "{body}");
}

/// A WebSocket reply larger than the cap is refused, not buffered.
#[tokio::test]
async fn a_websocket_reply_over_the_cap_is_refused() {
    let ws = WsServer::echo().await;
    let big = "x".repeat(nexus_probe::WS_MAX_MESSAGE_BYTES + 1);
    let v = run(ProbeKind::Ws(WsSpec {
        url: ws.url(),
        send: Some(big),
        expect: None,
    }))
    .await;
    expect(&v, Status::Critical, "receive failed");
    assert!(v.summary.to_lowercase().contains("too"), "{}", v.summary);
}

#[tokio::test]
async fn ollama_tags_and_required_models() {
    let srv = HttpServer::start(|_, path| match path {
        "/api/tags" => HttpResponse::json(
            200,
            r#"{"models":[{"name":"llama3:latest"},{"name":"qwen2:7b"}]}"#,
        ),
        _ => HttpResponse::text(404, ""),
    })
    .await;
    let base = format!("http://{}", srv.addr);
    let v = run(ProbeKind::Ollama(OllamaSpec::new(
        &base,
        &["llama3", "qwen2:7b"],
    )))
    .await;
    expect(&v, Status::Ok, "Ollama available (2 models)");
    let v = run(ProbeKind::Ollama(OllamaSpec::new(&base, &["mistral"]))).await;
    expect(&v, Status::Critical, "missing required models: mistral");
    let closed = tcp::closed();
    let mut spec = OllamaSpec::new(format!("http://{closed}"), &[]);
    expect(
        &run(ProbeKind::Ollama(spec.clone())).await,
        Status::Critical,
        "Ollama not available",
    );
    spec.optional = true;
    expect(
        &run(ProbeKind::Ollama(spec)).await,
        Status::Unknown,
        "Ollama not available (optional)",
    );
}

#[tokio::test]
async fn budget_from_http() {
    let srv = HttpServer::start(|_, path| match path {
        "/usage" => HttpResponse::json(200, r#"{"tokens_used": 850000}"#),
        _ => HttpResponse::text(200, "1200000"),
    })
    .await;
    let mut spec = BudgetSpec::from_file(1_000_000.0, "/unused");
    spec.file = None;
    spec.http = Some(srv.url("/usage"));
    let v = run(ProbeKind::Budget(spec.clone())).await;
    expect(&v, Status::Warning, "Token budget nearly exhausted: 85.0 %");
    assert_eq!(v.details["usage_pct"], 85.0);
    spec.http = Some(srv.url("/plain"));
    expect(
        &run(ProbeKind::Budget(spec)).await,
        Status::Critical,
        "Token budget exceeded",
    );
}

#[tokio::test]
async fn one_hung_target_does_not_delay_the_others() {
    let open = tcp::open().await;
    let hung = tcp::full_backlog().await;
    let probes = tcp_probes(
        (0..40).map(|i| if i % 10 == 3 { &hung } else { &open }.addr.port()),
        Duration::from_millis(500),
    );
    let runner = Runner::new(RunnerConfig {
        concurrency: 8,
        ..RunnerConfig::default()
    });
    let start = Instant::now();
    let verdicts = runner.run(&probes).await;
    let took = start.elapsed();
    // 4 hung probes fit in 8 slots: one timeout, not four.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    for (i, v) in verdicts.iter().enumerate() {
        assert_eq!(v.name, format!("p{i}"), "order kept");
        let want = if i % 10 == 3 {
            Status::Critical
        } else {
            Status::Ok
        };
        assert_eq!(v.status, want, "{v}");
        if want == Status::Ok {
            assert!(
                v.latency < Duration::from_millis(400),
                "{v} took {:?}",
                v.latency
            );
        }
    }
}

#[tokio::test]
async fn hung_targets_hold_their_place_in_the_connect_burst_only_briefly() {
    // More hung targets than connects may be starting at once, all listed
    // before the open ones: the open ones must not wait for the hung ones'
    // timeouts to get a place.
    let open = tcp::open().await;
    let hung = tcp::full_backlog().await;
    let timeout = Duration::from_secs(2);
    let probes = tcp_probes(
        (0..30).map(|i| if i < 24 { &hung } else { &open }.addr.port()),
        timeout,
    );
    let started = nexus_stdx::now_epoch();
    let t0 = Instant::now();
    let verdicts = Runner::default().run(&probes).await;
    assert!(
        t0.elapsed() < timeout + Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
    for v in &verdicts[..24] {
        assert_eq!(v.status, Status::Critical, "{v}");
    }
    for v in &verdicts[24..] {
        assert_eq!(v.status, Status::Ok, "{v}");
        let done_after = v.checked_at - started;
        assert!(
            done_after < 1.0,
            "{v} finished {done_after:.3} s in: it waited for a hung target"
        );
    }
}

/// `refused = "unknown"`: an endpoint that is not deployed (nothing listens)
/// is Unknown, while one that listens and hangs or answers badly fails.
#[tokio::test]
async fn http_refused_can_be_unknown_and_only_refused() {
    let closed = tcp::closed();
    let mut spec = HttpSpec::get(format!("http://{closed}/health"));
    spec.refused = Status::Unknown;
    let v = run(ProbeKind::Http(spec.clone())).await;
    expect(&v, Status::Unknown, "unreachable");

    let silent = tcp::silent().await;
    spec.url = format!("http://{}/health", silent.addr);
    let v = run_with(ProbeKind::Http(spec.clone()), Duration::from_millis(300)).await;
    expect(&v, Status::Critical, "timed out");

    let srv = HttpServer::start(|_, _| HttpResponse::json(503, r#"{"status":"degraded"}"#)).await;
    spec.url = srv.url("/health");
    let v = run(ProbeKind::Http(spec)).await;
    expect(&v, Status::Critical, "returned status 503");
}

/// The gateway health endpoint's rule: ok / degraded / not there.
#[tokio::test]
async fn gateway_health_tells_ok_degraded_and_absent_apart() {
    let health = |port: u16| ProbeKind::Http(HttpSpec::gateway_health("127.0.0.1", port));
    let ok = HttpServer::start(|_, _| HttpResponse::json(200, r#"{"status":"ok"}"#)).await;
    expect(&run(health(ok.addr.port())).await, Status::Ok, "status 200");
    let degraded =
        HttpServer::start(|_, _| HttpResponse::json(503, r#"{"status":"degraded"}"#)).await;
    let v = run(health(degraded.addr.port())).await;
    expect(&v, Status::Critical, "/status is \"degraded\"");
    // Not the endpoint: a 426 from a WebSocket server, a 404.
    for code in [426, 404] {
        let other = HttpServer::start(move |_, _| HttpResponse::text(code, "no")).await;
        let v = run(health(other.addr.port())).await;
        expect(&v, Status::Unknown, &format!("status {code}"));
    }
    let v = run(health(tcp::closed().port())).await;
    expect(&v, Status::Unknown, "unreachable");
    // A WebSocket server (tokio-tungstenite) closes a plain GET unanswered:
    // not the endpoint either (another gateway on the health port).
    let ws = WsServer::echo().await;
    let v = run(health(ws.addr.port())).await;
    expect(&v, Status::Unknown, "closed before message completed");
    assert_eq!(
        HttpSpec::gateway_health("::1", 8766).url,
        "http://[::1]:8766/health"
    );
}
