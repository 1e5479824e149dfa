//! Test fixtures for the Nexus crates: real servers on loopback, real processes.
//!
//! Dev-dependency only. Everything here binds `127.0.0.1`, lives in a temp
//! directory and is stopped when its guard is dropped:
//! - [`tcp`]: an accepting listener, a closed port, a listener that accepts
//!   and never answers, one whose backlog is full (connects hang), and a
//!   [`tcp::Gate`] that forwards to a server and can close, hang and reopen
//!   its port (a real "unreachable" or "not answering", then back);
//! - [`HttpServer`]: a tiny HTTP/1.1 server with a handler closure, able to
//!   stream bodies of any size;
//! - [`WsServer`]: a WebSocket echo server (tokio-tungstenite);
//! - [`RedisServer`], [`PostgresServer`]: the Debian `redis-server` and
//!   PostgreSQL binaries, started on a free port in a temp dir (PostgreSQL runs
//!   as the `postgres` user when the tests run as root);
//! - [`smtp::SmtpServer`]: Debian's aiosmtpd writing to a Maildir, with
//!   STARTTLS required on a certificate from a CA made for the test, or
//!   plain text;
//! - [`Sleeper`]: a process with a unique name, as a child or detached;
//! - [`gitea::Fake`]: a stateful fake Gitea checked against the swagger,
//!   with fault modes: 500s for the next N requests (`fail_next`), 503 for
//!   everything (`down`), answers delayed past the client's timeout after
//!   the request took effect (`slow_next`), its port closed and
//!   reopened (`unreachable` / `reachable`, through a gate) or hung, its
//!   connections accepted and never answered (`hung`), and errors that
//!   reflect the request (`reflect`);
//! - [`telegram::Bot`]: a Telegram Bot API stand-in that records the
//!   messages the binaries send, checked against the Bot API description;
//! - [`botapi`]: Telegram mock bodies checked against the Bot API
//!   description; [`contracts`]: that description and the Gitea swagger,
//!   kept in `contracts/` with their sources and licences;
//! - [`browser::Browser`]: a real headless Chromium driven over the
//!   DevTools protocol, for tests that click (each step awaited on the
//!   page's `load` event);
//! - [`canary`]: the tokens tests use, and the check that none leaks (in
//!   any form: as is, percent- or base64-encoded);
//! - [`reflect`]: error bodies that echo the request (headers, path) behind
//!   escape sequences and forged log lines, and the check of what a client
//!   makes of them; [`logs`]: log lines captured as the binaries print them;
//!   [`report`]: a binary's `--json` document and a watchdog check in it.
//!
//! Fixtures panic with a clear message when they cannot start: a missing
//! server binary is a test failure that points at `scripts/test`, never a
//! silent pass.

#![allow(clippy::unwrap_used, missing_docs)]

pub mod botapi;
pub mod browser;
pub mod canary;
pub mod contracts;
pub mod gitea;
mod http;
pub mod logs;
mod process;
pub mod reflect;
pub mod report;
mod servers;
pub mod smtp;
pub mod tcp;
pub mod telegram;
mod tools;

pub use http::{Body, Fetched, HttpResponse, HttpServer, assert_reads_capped, fetch};
pub use process::{Sleeper, peak_rss, reset_peak_rss};
pub use servers::{PostgresServer, RedisServer, WsServer};
pub use tools::{chromium_dom, promtool_check_metrics};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"))
}

/// Where a missing test dependency comes from.
pub const INSTALL_HINT: &str =
    "run scripts/test (it installs the test servers via scripts/setup.d/20-redis-postgres.sh)";
