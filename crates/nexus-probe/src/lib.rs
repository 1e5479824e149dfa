//! Health probes: every check the seed systems run, with one verdict model,
//! per-probe timeouts and a bounded concurrent runner.
//!
//! A probe is a [`ProbeSpec`] (a name, an optional timeout and a
//! [`ProbeKind`]), usually read from TOML ([`ProbeFile`]: `[[probe]]` tables,
//! `deny_unknown_fields`, durations like `"5s"`). [`Runner::run`] runs a set
//! of probes concurrently (at most [`RunnerConfig::concurrency`] at once), each
//! under its own timeout, so one hung target never delays the others; it
//! returns one [`Verdict`] per probe, in order. A verdict carries a
//! [`Status`] (`Ok`/`Warning`/`Critical`/`Unknown` = Nagios 0/1/2/3), a
//! one-line summary, serde details, the latency and the probe's name.
//!
//! Kinds: TCP connect to every resolved address; WebSocket handshake and
//! optional round trip; HTTP status ranges, JSON assertions and a body cap;
//! processes from one `/proc` scan per sweep ([`ProcTable`]); heartbeat
//! freshness (nexus-heartbeat) with start-up grace; Python syntax through the
//! configured interpreter; Redis PING and memory; PostgreSQL `SELECT 1` and a
//! parameterised threshold query; disk space and inodes; Ollama models; GPU
//! via `nvidia-smi`; a daily token budget; any Nagios plugin.
//!
//! [`seed`] holds the seed agent's default settings (ports, process,
//! heartbeat file) that the watchdog and the pool share.
//!
//! Heavy kinds sit behind default-on features (`redis`, `postgres`, `ws`);
//! without one, that kind answers Unknown.
//!
//! # What this crate must never do
//! - Call "could not check" healthy: a missing tool, an unreadable `/proc`
//!   entry or a misconfiguration is `Unknown`, never `Ok`.
//! - Panic on any input (hostile names, huge bodies, binary files): every
//!   failure is a verdict with a message naming the host, file or field.
//! - Put a password, token or header value in a verdict, error or `Debug`
//!   output, not even where the target echoed it back: every verdict leaves
//!   the runner through `nexus_secret::Redactor::clean` (the probe's
//!   secrets redacted as is and encoded, control characters out, the summary
//!   cut at [`MAX_SUMMARY_CHARS`], every text of the details too).
//! - Read more of a reply than its cap: HTTP bodies chunk by chunk up to the
//!   probe's limit, WebSocket messages up to [`WS_MAX_MESSAGE_BYTES`].
//! - Write to disk, or interpolate a path into code it runs.
//! - Depend on a CLI, logging-setup or web-server crate (clap, anyhow, axum).

mod budget;
mod command;
mod config;
mod disk;
mod error;
mod gpu;
mod heartbeat;
mod http;
mod ollama;
mod postgres;
mod process;
mod python;
mod redis;
mod runner;
mod secrets;
pub mod seed;
mod sweep;
mod tcp;
mod verdict;
mod ws;

pub use budget::{BudgetQuery, BudgetSpec, DEFAULT_BUDGET_QUERY};
pub use command::{CommandSpec, PerfDatum, parse_perfdata};
pub use config::{ConfigError, ProbeFile, ProbeKind, ProbeSpec, RunnerConfig, fill_database_url};
pub use disk::DiskSpec;
pub use error::SpecError;
pub use gpu::GpuSpec;
pub use heartbeat::HeartbeatSpec;
pub use http::{DEFAULT_MAX_BODY, HttpSpec, JsonAssert};
pub use ollama::OllamaSpec;
pub use postgres::PostgresSpec;
pub use process::{MatchMode, ProcEntry, ProcError, ProcTable, ProcessSpec, not_procfs};
pub use python::PythonSyntaxSpec;
pub use redis::RedisSpec;
pub use runner::{MAX_SUMMARY_CHARS, Runner};
pub use secrets::{ConnString, Secret};
pub use tcp::TcpSpec;
pub use verdict::{Outcome, Status, Verdict};
pub use ws::{WS_MAX_MESSAGE_BYTES, WsSpec};
