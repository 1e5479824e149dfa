//! The pool's HTTP surface, on loopback by default:
//! - `GET /health`: the seed-003 gateway health JSON, for the pool itself
//!   (`status` is `ok` while sweeps keep finishing, else `degraded` with 503,
//!   as with a write fault or a cell it cannot read (`unreadable_cells`);
//!   a Gitea or Telegram in trouble is listed in `channels`, and stays `ok`:
//!   the pool goes on reviving while what it reports waits);
//! - `GET /metrics`: Prometheus text format 0.0.4 (per-agent state, heartbeat
//!   age, revive attempts; sweep count and duration);
//! - `GET /api/agents`: the agents as JSON;
//! - `GET /`: the status page (server-rendered, refreshes itself, readable
//!   on a phone; with `[history]`, uptime bars, cron jobs and watchdog
//!   checks; `?refresh=0` stops it reloading itself), and `GET /page.js`,
//!   its one script (times in the viewer's zone).
//!
//! Other paths answer 404, other methods 405; `HEAD` works wherever `GET` does.
//!
//! Clients cannot hold the pool's descriptors ([`serve_with`]): a request's
//! head must arrive within [`HEADER_TIMEOUT`] (the same holds for the idle
//! time between kept-alive requests), a connection is closed after
//! [`CONNECTION_LIFETIME`], and past the connection cap of the open-file
//! budget ([`crate::fds`]) a client is answered 503 and closed at once.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use nexus_metrics::{Exposition, Kind};
use serde_json::json;

use crate::view::{ChannelView, PoolSnapshot};
use nexus_revive::State;

/// The snapshot the sweeper publishes and the server reads.
pub type Shared = Arc<RwLock<PoolSnapshot>>;

/// The router over a shared snapshot (tests call it without a socket).
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/agents", get(agents))
        .route("/badge/{file}", get(crate::badge::badge))
        .route("/page.js", get(script))
        .with_state(shared)
}

/// How long a client may take to send a request's head, and how long a
/// kept-alive connection may sit idle before its next one.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection is served at most, whatever it does (a body
/// trickled byte by byte, a response never read).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// What the server allows its clients: a request head within
/// [`HEADER_TIMEOUT`], a connection served for [`CONNECTION_LIFETIME`] at
/// most, at most `max_connections` at once (one more is answered 503 and
/// closed at once, so clients never hold more descriptors than this).
pub type ConnLimits = nexus_gateway_health::Limits;

/// The defaults, with the connection cap from this process's open-file
/// budget ([`crate::fds`]).
pub fn current_limits() -> ConnLimits {
    ConnLimits {
        header_timeout: HEADER_TIMEOUT,
        lifetime: CONNECTION_LIFETIME,
        max_connections: crate::fds::FdBudget::current(1).http,
    }
}

/// What the server offers besides the page, `/health`, `/metrics`,
/// `/api/agents` and the badges, each when given.
#[derive(Debug, Default)]
pub struct Extras {
    /// `/ping/...` (`[ping]`).
    pub ping: Option<crate::ping::PingIngest>,
    /// The page's actions (`POST /action`), on a loopback listener only.
    pub actions: Option<crate::actions::PageActions>,
    /// Alertmanager's webhook (`POST /alertmanager`, `[alertmanager]`).
    pub alertmanager: Option<crate::alertmanager::AlertIngest>,
    /// The history behind the page (`[history]`): bars, cron jobs, checks.
    pub history: Option<crate::dashboard::HistoryFeed>,
}

/// Serves the router and `extras` on `listener` until `shutdown`
/// resolves, within [`current_limits`]. The actions are served only on a
/// loopback listener (see [`crate::actions`]): on another, the page shows
/// none.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    extras: Extras,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = router(shared);
    if let Some(p) = extras.ping {
        app = app.merge(crate::ping::router(p));
    }
    if let Some(a) = extras.alertmanager {
        app = app.merge(a.router());
    }
    if let Some(h) = extras.history {
        app = app.layer(axum::Extension(h));
    }
    let loopback = listener.local_addr()?.ip().is_loopback();
    if let Some(a) = extras.actions.filter(|_| loopback) {
        app = app.merge(a.clone().router()).layer(axum::Extension(a));
    }
    serve_with(listener, app, current_limits(), shutdown).await
}

/// Serves `app` on `listener` until `shutdown` resolves: HTTP/1.1, each
/// connection under `limits` (a request head within the header timeout,
/// the connection closed at the end of its lifetime), at most
/// `max_connections` at once. At shutdown no connection is accepted any
/// more and the live ones finish their request in hand (for at most a
/// second). The connection loop is the gateway health server's
/// (`nexus_gateway_health::serve_with`), one code for both.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(app);
    nexus_gateway_health::serve_with(listener, service, limits, shutdown).await
}

/// Runs `f` on the snapshot under its read lock: a request reads it in
/// place (a copy of 10,000 agents' views per request was 1.4 MB each time
/// `/health` was polled).
pub(crate) fn with_snapshot<R>(shared: &Shared, f: impl FnOnce(&PoolSnapshot) -> R) -> R {
    match shared.read() {
        Ok(s) => f(&s),
        // A panicked writer left it poisoned: the data is still the last snapshot.
        Err(p) => f(&p.into_inner()),
    }
}

/// The snapshot, to change in place (poisoned or not: see [`with_snapshot`]).
pub(crate) fn snapshot_mut(shared: &Shared) -> std::sync::RwLockWriteGuard<'_, PoolSnapshot> {
    match shared.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `ok` while the last sweep finished within three poll intervals (or the
/// first sweep is still within them), else `degraded`.
fn liveness(s: &PoolSnapshot, now: f64) -> bool {
    let since = if s.last_sweep_at > 0.0 {
        s.last_sweep_at
    } else {
        s.started_at
    };
    now - since <= 3.0 * s.poll_interval_seconds.max(1.0)
}

async fn health(AxState(shared): AxState<Shared>) -> Response {
    with_snapshot(&shared, |s| health_of(s, now()))
}

fn health_of(s: &PoolSnapshot, t: f64) -> Response {
    // A write fault (a full disk) is degraded too: the pool runs, but its
    // state, events or heartbeat are not being kept; so is a cell it cannot
    // read: it neither sees nor revives its agents.
    let ok = liveness(s, t) && s.faults.is_empty() && s.unreadable_cells.is_empty();
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "service": "resurrection-pool",
        "uptime_seconds": ((t - s.started_at).max(0.0) * 10.0).round() / 10.0,
        "agents": s.agents.len(),
        "unhealthy_agents": s.unhealthy(),
        "sweeps": s.sweeps,
        "last_sweep_seconds": s.last_sweep_seconds,
        "faults": s.faults,
        "channels": channel_lines(s),
        "unreadable_cells": s.unreadable_cells,
        "ts": t,
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// `name: trouble (N waiting)` for each channel in trouble.
pub(crate) fn channel_lines(s: &PoolSnapshot) -> Vec<String> {
    s.channels
        .iter()
        .filter_map(|c| {
            let t = c.trouble.as_ref()?;
            Some(format!("{}: {t} ({} waiting)", c.name, c.waiting))
        })
        .collect()
}

async fn agents(AxState(shared): AxState<Shared>) -> Response {
    with_snapshot(&shared, |s| axum::Json(&s.agents).into_response())
}

const STATES: [State; 6] = [
    State::Unknown,
    State::Healthy,
    State::Degraded,
    State::Dead,
    State::Reviving,
    State::Escalated,
];

/// One number of a channel, for its gauge.
type ChannelValue = fn(&ChannelView) -> usize;

/// Renders the snapshot in the Prometheus text format (version 0.0.4)
/// through [`nexus_metrics::Exposition`] (escaped labels; `NaN`, `+Inf` and
/// `-Inf` spelled as Prometheus reads them), sorted and deterministic; an
/// agent that left the fleet leaves the metrics too.
pub fn render_metrics(s: &PoolSnapshot) -> String {
    let mut e = Exposition::new();
    // Stable labels on every per-agent series: agent, cell, mission, host.
    let host = nexus_stdx::hostname();
    let ids: Vec<[(&str, &str); 4]> = s
        .agents
        .iter()
        .map(|a| {
            [
                ("agent", &*a.name),
                ("cell", a.cell.as_deref().unwrap_or("")),
                ("mission", a.mission.as_deref().unwrap_or("")),
                ("host", host),
            ]
        })
        .collect();
    e.family(
        "nexus_pool_agent_state",
        Kind::Gauge,
        "1 for the agent's current state, 0 for the others.",
    );
    for (a, [agent, cell, mission, host]) in s.agents.iter().zip(&ids) {
        for st in STATES {
            e.sample(
                "nexus_pool_agent_state",
                &[*agent, *cell, *mission, *host, ("state", st.as_str())],
                f64::from(u8::from(a.state == st)),
            );
        }
    }
    e.family(
        "nexus_pool_agent_heartbeat_age_seconds",
        Kind::Gauge,
        "Seconds since the agent's last heartbeat (absent: none).",
    );
    for (a, id) in s.agents.iter().zip(&ids) {
        if let Some(h) = a.heartbeat_age {
            e.sample("nexus_pool_agent_heartbeat_age_seconds", id, h);
        }
    }
    e.family(
        "nexus_pool_agent_revive_attempts",
        Kind::Gauge,
        "Revive launches inside the restart window.",
    );
    for (a, id) in s.agents.iter().zip(&ids) {
        e.sample(
            "nexus_pool_agent_revive_attempts",
            id,
            f64::from(a.revive_attempts),
        );
    }
    e.family("nexus_pool_agents", Kind::Gauge, "Agents watched.")
        .sample("nexus_pool_agents", &[], s.agents.len() as f64);
    if let Some(h) = &s.history {
        let name = "nexus_pool_history_events_total";
        e.family(
            name,
            Kind::Counter,
            "History events by outcome: written (a row), unchanged (an observation), dropped (queue full), failed (commit failed).",
        );
        for (outcome, n) in [
            ("written", h.written),
            ("unchanged", h.unchanged),
            ("dropped", h.dropped),
            ("failed", h.failed),
        ] {
            e.sample(name, &[("outcome", outcome)], n as f64);
        }
        e.family(
            "nexus_pool_history_pruned_total",
            Kind::Counter,
            "History rows pruned for age.",
        )
        .sample("nexus_pool_history_pruned_total", &[], h.pruned as f64);
    }
    e.family(
        "nexus_pool_sweeps_total",
        Kind::Counter,
        "Sweeps since the pool started.",
    )
    .sample("nexus_pool_sweeps_total", &[], s.sweeps as f64);
    e.family(
        "nexus_pool_last_sweep_timestamp_seconds",
        Kind::Gauge,
        "When the last sweep finished (Unix time); stale means the pool is stuck.",
    )
    .sample(
        "nexus_pool_last_sweep_timestamp_seconds",
        &[],
        s.last_sweep_at,
    );
    e.family(
        "nexus_pool_last_sweep_duration_seconds",
        Kind::Gauge,
        "Wall time of the last sweep.",
    )
    .sample(
        "nexus_pool_last_sweep_duration_seconds",
        &[],
        s.last_sweep_seconds,
    );
    e.family(
        "nexus_pool_write_faults",
        Kind::Gauge,
        "Kinds of files (state, events, cell-state, heartbeat) the pool currently fails to write.",
    )
    .sample("nexus_pool_write_faults", &[], s.faults.len() as f64);
    e.family(
        "nexus_pool_cell_unreadable",
        Kind::Gauge,
        "1 for each cell (or cells root) the last sweep could not read; its agents keep their records.",
    );
    for c in &s.unreadable_cells {
        e.sample(
            "nexus_pool_cell_unreadable",
            &[("cell", &c.cell), ("host", host)],
            1.0,
        );
    }
    let per_channel: [(&str, &str, ChannelValue); 2] = [
        (
            "nexus_pool_channel_up",
            "1 while the channel's last call went through, 0 while Gitea or Telegram is in trouble.",
            |c| usize::from(c.trouble.is_none()),
        ),
        (
            "nexus_pool_channel_waiting",
            "Observations, messages or requests waiting for the channel.",
            |c| c.waiting,
        ),
    ];
    for (name, help, value) in per_channel {
        e.family(name, Kind::Gauge, help);
        for c in &s.channels {
            e.sample(name, &[("channel", c.name)], value(c) as f64);
        }
    }
    e.into_string()
}

async fn metrics(AxState(shared): AxState<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        with_snapshot(&shared, render_metrics),
    )
        .into_response()
}

/// `HH:MM:SS` UTC of an epoch time (event stamps on the page).
pub fn clock(epoch: f64) -> String {
    let s = epoch.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

async fn page(
    AxState(shared): AxState<Shared>,
    actions: Option<axum::Extension<crate::actions::PageActions>>,
    history: Option<axum::Extension<crate::dashboard::HistoryFeed>>,
    uri: axum::http::Uri,
) -> Response {
    let now = now();
    let csrf = actions.as_ref().map(|a| a.csrf());
    let view = history.map(|h| h.current());
    // `?refresh=0`: a page that does not reload itself.
    let refresh = !uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "refresh=0"));
    Html(with_snapshot(&shared, |s| {
        crate::page::render_with(s, now, csrf, view.as_deref(), refresh)
    }))
    .into_response()
}

/// `/page.js`: the page's one script (times in the viewer's zone).
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        crate::page::SCRIPT,
    )
        .into_response()
}

#[cfg(test)]
pub(crate) mod tests;
