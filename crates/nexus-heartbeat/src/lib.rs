//! Heartbeats: the one file format every agent and cron job writes, and the one
//! reader every checker uses.
//!
//! A *heartbeat* is a small JSON document replaced atomically on every beat.
//! Long-running agents write an [`AgentHeartbeat`] (by default
//! `~/.nexus/heartbeat.json`, or `<cell>/.lazarus/heartbeats/<agent>.json`);
//! cron jobs write a [`CronRecord`] to `<dir>/<job>.last`, or push it to
//! the resurrection pool as a [`Ping`] (the `/ping` URL grammar, shared by
//! the heartbeat CLI and the pool's server).
//! Both carry a [`WriterStamp`] (`seq`, `boot_id`) so a reader comparing two
//! observations can tell a reboot or a stuck writer ([`Progress::between`]).
//!
//! # Writing
//! Every write is `nexus_stdx::write_atomic`: a temp file in the same
//! directory, `fsync`, `rename`, `fsync` of the directory. A reader never
//! sees a partial document, and a failed write leaves the old file intact.
//! [`HeartbeatWriter`] and [`CronWriter`] build the documents; [`CronDirs`]
//! resolves where cron heartbeats live (primary, fallback,
//! `BEZALEL_HEARTBEAT_DIR`, or an explicit directory).
//!
//! # Reading
//! [`Observation::read`] parses a file leniently (the canonical JSON and the
//! legacy forms: bare epoch number, ISO-8601 string, empty `touch` file with
//! its mtime) into an [`Observation`], never following a symbolic link and
//! never quoting an invalid file beyond a short sample (none unless it is
//! owned as expected); [`Classification::of`] turns it into a
//! [`Classification`] ([`State::Fresh`], `Stale`, `Missing`, `Unreadable`,
//! `Corrupt`, `FromTheFuture`) with the age and a reason that names the file
//! and field. [`Classification::read_many`] does the same for thousands of
//! files on all cores, and [`Glance`] is a fleet sweep's fast path: the same
//! verdict (state, age, PID) without keeping the document.
//!
//! Each operation is an associated function or constant of the type it
//! returns (`Observation::read`, `Classification::read`, `Glance::read`,
//! `Progress::between`, `AgentHeartbeat::default_path`,
//! `CronDirs::validate_job_name`, `Observation::MAX_FILE_BYTES`), so the
//! crate exports few names.
//!
//! Generic helpers (time, host id, durations, capped reads, `sd_notify`)
//! live in `nexus-stdx`; this crate does not re-export them, and
//! `scripts/check-deps` keeps its dependencies and its exported names few.
//!
//! # What this crate must never do
//! - Pull in an async runtime or a network stack: agents link it.
//! - Panic on any input: huge, binary, truncated or hostile files are
//!   classified, never unwrapped.
//! - Replace a good heartbeat with a partial one.
//! - Follow a symbolic link to a heartbeat, read a FIFO or a device as one,
//!   or quote more of an invalid file than [`Observation::SAMPLE_BYTES`] of
//!   printable ASCII (none of a file that is not owned as expected, see
//!   [`Observation::read`]).

mod cron;
mod dirs;
mod doc;
mod error;
mod ping;
mod read;

pub use cron::{CronWriter, RunOutcome};
pub use dirs::CronDirs;
pub use doc::{AgentHeartbeat, CronRecord, CronStatus, HeartbeatWriter, WriterStamp};
pub use error::{Error, JobNameError};
pub use ping::{Ping, PingError, PingKind};
pub use read::{
    Classification, FieldProblem, Form, Glance, Observation, ParseError, Problem, Progress, Rule,
    State,
};
