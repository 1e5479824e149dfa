//! Heartbeats: the one file format every agent and cron job writes, and the one
//! reader every checker uses.
//!
//! A *heartbeat* is a small JSON document replaced atomically on every beat.
//! Long-running agents write an [`AgentHeartbeat`] (by default
//! `~/.nexus/heartbeat.json`, or `<cell>/.lazarus/heartbeats/<agent>.json`);
//! cron jobs write a [`CronRecord`] to `<dir>/<job>.last`.
//! Both carry a [`WriterStamp`] (`seq`, `boot_id`) so a reader comparing two
//! observations can tell a reboot or a stuck writer ([`compare`]).
//!
//! # Writing
//! [`write_atomic`] is the only way this crate puts bytes on disk: a temp file
//! in the same directory, `fsync`, `rename`, `fsync` of the directory
//! ([`write_private`]: the same, `0600` files in new `0700` directories).
//! A reader never sees a partial document, and a failed write leaves the old
//! file intact. [`HeartbeatWriter`] and [`CronWriter`] build the documents;
//! [`CronDirs`] resolves where cron heartbeats live (primary, fallback,
//! `BEZALEL_HEARTBEAT_DIR`, or an explicit directory).
//!
//! # Reading
//! [`observe`] parses a file leniently (the canonical JSON and the legacy forms:
//! bare epoch number, ISO-8601 string, empty `touch` file with its mtime) into
//! an [`Observation`], never following a symbolic link and never quoting an
//! invalid file beyond a short sample (none unless it is owned as expected); [`classify`] turns it into a [`Classification`]
//! ([`State::Fresh`], `Stale`, `Missing`, `Unreadable`, `Corrupt`,
//! `FromTheFuture`) with the age and a reason that names the file and field.
//! [`classify_many`] does the same for thousands of files on all cores, and
//! [`glance`] is a fleet sweep's fast path: the same verdict (state, age, PID)
//! without keeping the document.
//!
//! # What this crate must never do
//! - Pull in an async runtime or a network stack: agents link it.
//! - Panic on any input: huge, binary, truncated or hostile files are
//!   classified, never unwrapped.
//! - Replace a good heartbeat with a partial one.
//! - Follow a symbolic link to a heartbeat, read a FIFO or a device as one,
//!   or quote more of an invalid file than [`SAMPLE_BYTES`] of printable
//!   ASCII (none of a file that is not owned as expected, see [`observe`]).

mod cron;
mod dirs;
mod doc;
mod error;
mod read;
mod sd;
mod write;

pub use cron::{CronWriter, RunOutcome, write_cron_heartbeat};
pub use dirs::{
    CronDirs, DIR_ENV, FALLBACK_SUBDIR, PERSISTENT_DIR, PRIMARY_DIR, validate_host_name,
    validate_job_name, validate_record_name,
};
pub use doc::{
    AgentHeartbeat, CronRecord, CronStatus, HeartbeatWriter, WriterStamp, boot_id,
    default_agent_path, elapsed_since, hostname, now_epoch, write_heartbeat,
};
pub use error::{Error, JobNameError};
// The agent-facing duration API: one copy, in nexus-stdx (daemon crates use it from there).
pub use nexus_stdx::{DurationError, deserialize_duration, format_duration, parse_duration};
pub use read::{
    Classification, Form, Glance, MAX_CONFIG_BYTES, MAX_FILE_BYTES, Observation, Problem, Progress,
    Rule, SAMPLE_BYTES, State, classify, classify_file, classify_many, compare, glance,
    glance_file, glance_path, observe, observe_file, observe_many, read_config, read_limited,
};
pub use sd::{sd_notify, sd_notify_to};
pub use write::{write_atomic, write_private, write_private_with};
