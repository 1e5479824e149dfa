//! The HTTP surface on a real loopback socket, checked by the real tools:
//! `promtool check metrics` and a headless Chromium reading the status page.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, RwLock};

use nexus_pool::http::{Shared, serve};
use nexus_pool::{AgentView, PoolSnapshot};
use nexus_revive::{Policy, State};

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
        last_events: vec![format!("{name}: {state:?}")],
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
    }
}

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared: Shared = Arc::new(RwLock::new(fleet()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, shared, None, async {
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
