//! The workspace's foundation crate (rust-analyzer's `stdx` is the model):
//! one copy of each small, generic helper (durations, `expand_home`, HTML
//! escaping, `error_chain`) that more than one Nexus crate
//! needs, so helpers are shared instead of copied.
//!
//! It is std-only. The one allowed dependency is `serde`, optional, behind
//! the `serde` feature, for the serde glue (`deserialize_duration`);
//! `scripts/check-deps` keeps it that way. Every crate may depend on it,
//! agents and the heartbeat CLI included; it depends on nothing of ours.
//!
//! It must never do I/O beyond reading the environment (no I/O runtime, no
//! network, no files), set up logging, or hold domain types: a helper that
//! knows about heartbeats, probes or pools belongs in that crate.

mod duration;
mod error;
mod exit;
mod html;
mod path;

pub use duration::{DurationError, format_duration, parse_duration};
#[cfg(feature = "serde")]
pub use duration::{deserialize_duration, deserialize_opt_duration};
pub use error::error_chain;
pub use exit::{ExitKind, HasExitKind};
pub use html::escape_html;
pub use path::{expand_home, expand_home_with};
