//! Cron heartbeat checking: no cron job can stop silently.
//!
//! Cron jobs write `<job>.last` records through `nexus-heartbeat`
//! (`nexus-heartbeat run|touch`). This crate turns those files, plus a
//! [`Registry`] of expected jobs, into a [`CheckReport`]: one [`JobReport`]
//! per job with a [`JobStatus`] (OK, RUNNING, LATE, STALE, FAILED, MISSING,
//! ERROR, SKEW), and renders it as the Night Watch report.
//!
//! - [`scan()`] lists `*.last` in every heartbeat directory (the newest record
//!   of a job wins across primary and fallback) and reads them in parallel.
//! - [`evaluate`] judges each job against its interval (STALE beyond
//!   multiplier x interval plus grace) or its cron schedule in its time zone
//!   (STALE when the last scheduled run did not report).
//! - [`alerts`] keeps one `<job>.alert` marker per failing job and removes it
//!   on recovery; [`history`] records state changes for the report.
//! - [`report`] renders the Heartbeat Panel, blockers and the last 24 h as
//!   Markdown, HTML or the `+`/`-` morning lines.
//!
//! # What this crate must never do
//! - Read an empty directory as healthy: no job at all is `nothing_monitored`.
//! - Forget a registered job because its file is gone (MISSING, not absent).
//! - Drop a `*.last` file silently: one it cannot read as a job's record (a
//!   name that is not UTF-8 or not a job name) is reported, name escaped.
//! - Talk to the network: incidents and messages belong to the binary.

mod error;

pub mod alerts;
pub mod history;
mod metrics;
pub mod registry;
pub mod report;
pub mod scan;
pub mod verdict;

pub use error::{Error, RegistryError};
pub use registry::{Expect, JobSpec, Registry, Settings};
pub use scan::{Found, Ignored, Scan, scan};
pub use verdict::{CheckReport, JobReport, JobStatus, evaluate};
