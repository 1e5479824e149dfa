//! The WebSocket gateway's `GET /health` endpoint (docs/SPEC.md §7, defects
//! G1–G4) as a component: a Rust gateway embeds it, and the
//! `nexus-health-sidecar` binary serves it for a gateway written in another
//! language (the Python one).
//!
//! Main types:
//! - [`Liveness`]: the cheap handle the gateway's accept loop ticks (an
//!   atomic monotonic timestamp) and its connections hold a [`ClientGuard`]
//!   of (a counter); [`Liveness::snapshot`] reads both.
//! - [`respond`]: the HTTP rules as a pure function of (method, request
//!   target, [`Snapshot`], freshness window, now): `/health` after the query
//!   is stripped, `GET` and `HEAD` (no body), 405 for other methods, 404
//!   for other paths, `ok`/200 only if the loop ticked within the window,
//!   else `degraded`/503, with the seed's JSON body either way.
//! - [`bind`] / [`spawn`]: the listener, whose failure is a typed
//!   [`BindError`] naming the address (a port in use is
//!   [`BindError::InUse`]); the embedding gateway logs it and keeps running.
//! - [`serve`] / [`serve_with`]: HTTP/1.1, one task per connection, a
//!   request head within [`Limits::header_timeout`], a connection lifetime,
//!   a connection cap (one more is answered 503 and closed at once).
//!
//! How a gateway ticks: its accept loop waits on `accept()` *or* a timer
//! (a third of the freshness window, [`tick_period`]) and calls
//! [`Liveness::tick`] on every turn, so an idle gateway stays `ok` while a
//! wedged loop (a blocked runtime, a loop that returned) goes `degraded`:
//!
//! ```text
//! let live = Liveness::new(ws_port);
//! let _health = nexus_gateway_health::spawn("127.0.0.1", 8766, live.clone(), Options::default())
//!     .await
//!     .map_err(|e| tracing::error!("{e}; the gateway runs without /health"));
//! let mut every = tokio::time::interval(tick_period(Options::default().fresh_within));
//! loop {
//!     live.tick();
//!     tokio::select! {
//!         a = ws_listener.accept() => { let guard = live.client(); /* spawn the connection, holding guard */ }
//!         _ = every.tick() => {}
//!     }
//! }
//! ```
//!
//! # What this crate must never do
//! - Answer `ok` without a tick inside the window (uptime alone proves nothing).
//! - Invent a number it does not know: a liveness that does not count
//!   clients ([`Liveness::uncounted`], the sidecar's) says
//!   `"connected_clients": null`.
//! - Take the gateway down: a failed bind is an error value, never a panic
//!   or an exit; a client cannot stall another (per-connection tasks,
//!   header timeout, cap).
//! - Write an access log: non-2xx answers are logged at debug only.
//! - Depend on a CLI, logging setup or HTTP client (checked by
//!   `scripts/check-deps`): a gateway links it.

mod liveness;
mod response;
mod server;

pub use liveness::{ClientGuard, Liveness, Snapshot};
pub use response::{HEALTH_PATH, Reply, SERVICE, respond};
pub use server::{
    BindError, DEFAULT_FRESH_WITHIN, HealthServer, Limits, Options, bind, serve, serve_with, spawn,
    tick_period,
};
