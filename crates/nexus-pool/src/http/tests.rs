use super::*;
use crate::view::AgentView;
use axum::body::Body;
use axum::http::{Method, Request};
use nexus_metrics::escape_label as label;
use nexus_revive::Policy;
use std::sync::Arc;
use tower::ServiceExt;

pub(crate) fn sample(now: f64) -> PoolSnapshot {
    let agent = |name: &str, state: State, cell: Option<&str>| AgentView {
        name: name.into(),
        cell: cell.map(Arc::from),
        mission: cell.map(|_| Arc::from("Operation <Lazarus>")),
        policy: Policy::Auto,
        state,
        gateway_alive: Some(true),
        process_alive: Some(state == State::Healthy),
        heartbeat_age: Some(if state == State::Healthy { 3.0 } else { 400.0 }),
        revive_attempts: u32::from(state != State::Healthy),
        last_checked: now,
        first_dead_at: None,
        revive_pending: false,
        acknowledged_by: None,
        waiting: None,
        reason: None,
        last_events: Box::new([crate::view::Note {
            at: now - 60.0,
            text: "agent_dead".into(),
        }]),
    };
    PoolSnapshot {
        started_at: now - 100.0,
        sweeps: 7,
        last_sweep_at: now - 2.0,
        last_sweep_seconds: 0.004,
        poll_interval_seconds: 10.0,
        agents: vec![
            agent("allegro", State::Healthy, Some("cell-1")),
            agent("bezalel", State::Dead, Some("cell-1")),
            agent("timmy", State::Reviving, None),
        ],
        faults: Vec::new(),
        channels: Vec::new(),
        unreadable_cells: Vec::new(),
        history: None,
    }
}

async fn call(shared: Shared, method: Method, uri: &str) -> (StatusCode, String, String) {
    let res = router(shared)
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

fn shared(s: PoolSnapshot) -> Shared {
    Arc::new(RwLock::new(s))
}

#[tokio::test]
async fn health_follows_the_sweeps() {
    let t = now();
    let (code, ctype, body) = call(shared(sample(t)), Method::GET, "/health?x=1").await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["service"].as_str()),
        (Some("ok"), Some("resurrection-pool"))
    );
    assert_eq!(v["unhealthy_agents"], 2);

    let mut stuck = sample(t);
    stuck.last_sweep_at = t - 31.0;
    let (code, _, body) = call(shared(stuck), Method::GET, "/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"degraded\""));

    let (code, _, body) = call(shared(sample(t)), Method::HEAD, "/health").await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, ""));
    let (code, _, _) = call(shared(sample(t)), Method::POST, "/health").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _, _) = call(shared(sample(t)), Method::GET, "/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn agents_as_json() {
    let (code, _, body) = call(shared(sample(now())), Method::GET, "/api/agents").await;
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[1]["name"], "bezalel");
    assert_eq!(v[1]["state"], "dead");
    assert_eq!(v[1]["policy"], "auto");
}

#[tokio::test]
async fn metrics_per_agent() {
    let (code, ctype, body) = call(shared(sample(now())), Method::GET, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let host = nexus_stdx::hostname();
    let id = |agent: &str, cell: &str, mission: &str| {
        format!(r#"agent="{agent}",cell="{cell}",mission="{mission}",host="{host}""#)
    };
    let bez = id("bezalel", "cell-1", "Operation <Lazarus>");
    let all = id("allegro", "cell-1", "Operation <Lazarus>");
    let tim = id("timmy", "", "");
    for line in [
        format!("nexus_pool_agent_state{{{bez},state=\"dead\"}} 1"),
        format!("nexus_pool_agent_state{{{bez},state=\"healthy\"}} 0"),
        format!("nexus_pool_agent_heartbeat_age_seconds{{{all}}} 3"),
        format!("nexus_pool_agent_state{{{tim},state=\"reviving\"}} 1"),
        "nexus_pool_sweeps_total 7".to_string(),
    ] {
        assert!(body.contains(&line), "{line} not in\n{body}");
    }
    assert!(
        body.contains("nexus_pool_last_sweep_timestamp_seconds "),
        "{body}"
    );
    assert_eq!(label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
}

/// A heartbeat age or sweep time that is not a finite number (a clock
/// gone wrong) is spelled as Prometheus reads it (`NaN`, `+Inf`, `-Inf`),
/// not as Rust prints it (`inf`), and the whole text passes promtool.
#[test]
fn non_finite_values_are_spelled_as_prometheus_reads_them() {
    let mut s = sample(now());
    s.agents[0].heartbeat_age = Some(f64::NAN);
    s.agents[1].heartbeat_age = Some(f64::INFINITY);
    s.last_sweep_seconds = f64::NEG_INFINITY;
    let body = render_metrics(&s);
    let host = nexus_stdx::hostname();
    let age = |a: &AgentView, v: &str| {
        format!(
            r#"nexus_pool_agent_heartbeat_age_seconds{{agent="{}",cell="{}",mission="{}",host="{host}"}} {v}"#,
            label(&a.name),
            label(a.cell.as_deref().unwrap_or("")),
            label(a.mission.as_deref().unwrap_or("")),
        )
    };
    for line in [
        age(&s.agents[0], "NaN"),
        age(&s.agents[1], "+Inf"),
        "nexus_pool_last_sweep_duration_seconds -Inf".to_string(),
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in\n{body}");
    }
    assert!(!body.contains("inf"), "Rust's spelling leaked:\n{body}");
    nexus_testkit::promtool_check_metrics(&body);
}

/// `[history]`'s recorder counts, one counter by outcome, valid for
/// promtool; without a recorder, no such family.
#[test]
fn the_history_recorders_counts_are_metrics() {
    let mut s = sample(now());
    assert!(!render_metrics(&s).contains("nexus_pool_history"));
    s.history = Some(crate::view::HistoryCounts {
        written: 7,
        unchanged: 40,
        dropped: 2,
        failed: 1,
        pruned: 5,
    });
    let body = render_metrics(&s);
    for line in [
        r#"nexus_pool_history_events_total{outcome="written"} 7"#,
        r#"nexus_pool_history_events_total{outcome="unchanged"} 40"#,
        r#"nexus_pool_history_events_total{outcome="dropped"} 2"#,
        r#"nexus_pool_history_events_total{outcome="failed"} 1"#,
        "nexus_pool_history_pruned_total 5",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in\n{body}");
    }
    nexus_testkit::promtool_check_metrics(&body);
}

/// `/page.js` is the page's script, served as JavaScript.
#[tokio::test]
async fn the_page_script_is_served() {
    let (code, ctype, body) = call(shared(sample(now())), Method::GET, "/page.js").await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("text/javascript"), "{ctype}");
    assert!(body.contains("time[datetime]"), "{body}");
}

#[tokio::test]
async fn status_page_escapes_and_shows_every_agent() {
    let (code, ctype, body) = call(shared(sample(now())), Method::GET, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("text/html"));
    for name in ["allegro", "bezalel", "timmy"] {
        assert!(body.contains(&format!("data-agent=\"{name}\"")), "{name}");
    }
    assert!(body.contains("data-state=\"dead\""));
    assert!(body.contains("Operation &lt;Lazarus&gt;") && !body.contains("<Lazarus>"));
    assert!(body.contains("name=\"viewport\"") && body.contains("http-equiv=\"refresh\""));
}

#[tokio::test]
async fn other_methods_get_405_with_allow_and_nothing_changes() {
    let now = super::now();
    let s = shared(sample(now));
    for path in ["/", "/health", "/metrics", "/api/agents"] {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let res = router(s.clone())
                .oneshot(
                    Request::builder()
                        .method(method.clone())
                        .uri(path)
                        .body(Body::from(vec![b'x'; 1 << 20]))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            let allow = res.headers()[header::ALLOW].to_str().unwrap().to_string();
            assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
        }
    }
    assert_eq!(
        with_snapshot(&s, |s| s.sweeps),
        7,
        "the snapshot is read-only over HTTP"
    );
}

/// A Gitea or Telegram in trouble is listed and leaves `/health` ok (the
/// pool goes on reviving); a cell the pool cannot read makes it degraded.
/// Both are in the metrics and on the page, escaped.
#[tokio::test]
async fn a_channel_in_trouble_is_shown_and_an_unreadable_cell_degrades_health() {
    use crate::view::{ChannelView, UnreadableCell};
    let mut s = sample(now());
    s.channels = vec![ChannelView {
        name: "gitea",
        trouble: Some("no answer within 30s".into()),
        waiting: 3,
    }];
    let (code, _, body) = call(shared(s.clone()), Method::GET, "/health").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["channels"][0], "gitea: no answer within 30s (3 waiting)");

    s.unreadable_cells = vec![UnreadableCell {
        cell: "c<1>".into(),
        reason: "cell.json: truncated JSON".into(),
    }];
    let (code, _, body) = call(shared(s.clone()), Method::GET, "/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(
        v["unreadable_cells"][0]["reason"],
        "cell.json: truncated JSON"
    );

    let (_, _, metrics) = call(shared(s.clone()), Method::GET, "/metrics").await;
    for line in [
        "nexus_pool_channel_up{channel=\"gitea\"} 0",
        "nexus_pool_channel_waiting{channel=\"gitea\"} 3",
        "nexus_pool_cell_unreadable{cell=\"c<1>\",host=",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let (_, _, page) = call(shared(s), Method::GET, "/").await;
    assert!(
        page.contains("gitea: no answer within 30s (3 waiting)"),
        "{page}"
    );
    assert!(page.contains("c&lt;1&gt;") && page.contains("cell.json: truncated JSON"));
}

#[tokio::test]
async fn what_a_sick_agent_waits_for_is_on_the_page_and_in_the_api() {
    let now = nexus_stdx::now_epoch();
    let mut snap = sample(now);
    snap.agents[1].waiting = Some("backoff 2 s until 18:03:12 (attempt 2 of 5 in 1 h) <b>".into());
    let shared: Shared = Arc::new(std::sync::RwLock::new(snap));
    let (_, _, page) = call(shared.clone(), Method::GET, "/").await;
    assert!(
        page.contains("waiting: backoff 2 s until 18:03:12 (attempt 2 of 5 in 1 h) &lt;b&gt;"),
        "{page}"
    );
    let (_, _, api) = call(shared, Method::GET, "/api/agents").await;
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(
        v[1]["waiting"],
        "backoff 2 s until 18:03:12 (attempt 2 of 5 in 1 h) <b>"
    );
    assert!(v[0]["waiting"].is_null());
}

#[tokio::test]
async fn why_a_sick_agent_is_sick_is_on_the_page_and_in_the_api() {
    let now = nexus_stdx::now_epoch();
    let mut snap = sample(now);
    let why = "corrupt heartbeat: /c/x.json: field `timestamp`: <bad>";
    snap.agents[1].reason = Some(Box::new(why.to_string()));
    let shared: Shared = Arc::new(std::sync::RwLock::new(snap));
    let (_, _, page) = call(shared.clone(), Method::GET, "/").await;
    assert!(
        page.contains("why: corrupt heartbeat: /c/x.json: field `timestamp`: &lt;bad&gt;"),
        "{page}"
    );
    let (_, _, api) = call(shared, Method::GET, "/api/agents").await;
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v[1]["reason"], why);
    assert!(v[0]["reason"].is_null());
}

#[tokio::test]
async fn badges_per_agent_and_a_grey_one_for_an_unknown_name() {
    let s = shared(sample(now()));
    let (code, ctype, body) = call(s.clone(), Method::GET, "/badge/bezalel.svg").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ctype, "image/svg+xml; charset=utf-8");
    assert!(body.contains("aria-label=\"bezalel: dead\""), "{body}");
    let (code, _, body) = call(s.clone(), Method::GET, "/badge/nobody.svg").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("aria-label=\"nobody: not found\""), "{body}");
    let (code, _, _) = call(s.clone(), Method::GET, "/badge/bezalel").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, ctype, body) = call(s, Method::HEAD, "/badge/allegro.svg").await;
    assert_eq!(
        (code, ctype.as_str(), body.as_str()),
        (StatusCode::OK, "image/svg+xml; charset=utf-8", "")
    );
}
