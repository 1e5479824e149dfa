//! The workspace's foundation crate (rust-analyzer's `stdx` is the model):
//! one copy of each small, generic helper that more than one Nexus crate
//! needs, so helpers are shared instead of copied:
//!
//! - files ([`write_atomic`], [`write_private`] and their [`WriteError`];
//!   capped reads [`read_limited`], [`read_config`]; the no-follow,
//!   non-blocking open [`open_nofollow_with`]);
//! - time ([`now_epoch`], [`elapsed_since`], [`rfc3339`]) and durations
//!   ([`parse_duration`], [`format_duration`]);
//! - this machine ([`hostname`], [`boot_id`]), systemd's [`sd_notify`]
//!   (one datagram to a unix socket), and `/proc/<pid>` reading ([`proc`]);
//! - the one rule for names that become path components ([`validate_name`]);
//! - one parallel map ([`par_map`], panics resumed on the caller) and one
//!   sliding-window rate limiter ([`SlidingWindow`]);
//! - text: [`escape_html`], [`error_chain`], [`expand_home`];
//! - config checks: [`Findings`] (errors and warnings), [`url_problem`],
//!   [`percent_problem`].
//!
//! It is std-only. The one allowed dependency is `serde`, optional, behind
//! the `serde` feature, for the serde glue (`deserialize_duration`);
//! `scripts/check-deps` keeps it that way. Every crate may depend on it,
//! agents and the heartbeat CLI included; it depends on nothing of ours.
//!
//! It must never pull in an I/O runtime, touch the network (a datagram to
//! systemd's local notify socket is the one socket it opens), read without
//! a cap, set up logging, link libc or rustix (the few Linux flag values it
//! needs are written out), or hold domain types: a helper that knows about
//! heartbeats, probes or pools belongs in that crate.

mod clock;
mod duration;
mod error;
mod exit;
mod findings;
mod fs;
mod host;
mod html;
mod name;
mod par;
mod path;
pub mod proc;
mod rate;
mod sd;

pub use clock::{elapsed_since, now_epoch, rfc3339};
pub use duration::{DurationError, format_duration, parse_duration};
#[cfg(feature = "serde")]
pub use duration::{deserialize_duration, deserialize_opt_duration};
pub use error::error_chain;
pub use exit::{ExitKind, HasExitKind};
pub use findings::{Findings, percent_problem, url_problem};
pub use fs::{
    MAX_CONFIG_BYTES, NOFOLLOW_NONBLOCK, WriteError, open_nofollow_with, read_capped, read_config,
    read_limited, write_atomic, write_private, write_private_with,
};
pub use host::{boot_id, hostname};
pub use html::escape_html;
pub use name::{NameError, validate_name};
pub use par::{par_map, par_map_with};
pub use path::{expand_home, expand_home_with};
pub use rate::SlidingWindow;
pub use sd::{sd_notify, sd_notify_to};
