//! The seed agent's default settings, one copy: where its gateway listens,
//! its health endpoint, its process, its heartbeat file, its think script
//! and interpreter. The watchdog (`nexus_watch::SeedChecks`, the
//! `nexus-watchdog` flags), the pool (`[[gateway]]` and the seed JSON's
//! defaults) and the health sidecar's flags all read them here, the lowest crate both depend on that
//! knows what a probe of the agent targets; so with `NEXUS_HEARTBEAT_PATH`
//! set they watch the same file.

use std::path::PathBuf;
use std::time::Duration;

/// Default gateway host (the seed's).
pub const WS_HOST: &str = "localhost";
/// Default gateway WebSocket port (the seed's).
pub const WS_PORT: u16 = 8765;
/// The host of the gateway's health endpoint, for the watchdog and the
/// sidecar that serves it (the pool asks each gateway's own host).
pub const HEALTH_HOST: &str = "127.0.0.1";
/// The port of the gateway's `GET /health` (seed 003).
pub const HEALTH_PORT: u16 = 8766;
/// The consciousness loop's process, matched as an argv word.
pub const PROCESS_PATTERN: &str = "nexus_think";
/// The think script the watchdog syntax-checks.
pub const THINK_SCRIPT: &str = "nexus/nexus_think.py";
/// Interpreter the seed's agent runs under, used for the syntax check.
pub const PYTHON: &str = "python3";
/// A heartbeat older than this is stale (the watchdog's default).
pub const STALE_THRESHOLD: Duration = Duration::from_secs(300);

/// The agent's heartbeat file: `$NEXUS_HEARTBEAT_PATH`, else
/// `$HOME/.nexus/heartbeat.json` (`nexus_heartbeat::AgentHeartbeat::default_path`,
/// where the agent's own writer puts it).
pub fn heartbeat_path() -> PathBuf {
    nexus_heartbeat::AgentHeartbeat::default_path()
}
