//! The resurrection pool's decisions, as pure logic: no I/O, no clock, no
//! threads, so every rule is property-tested.
//!
//! - [`assess`] turns one sweep's [`Probe`] (gateway, process, heartbeat)
//!   into a [`Health`]; a hung agent (process and port alive, heartbeat
//!   stale) is dead, not degraded ([`DeadRule::Hung`], the default).
//! - [`step`] advances an agent's persisted [`AgentRecord`] by one sweep:
//!   hysteresis (`fail_threshold` / `ok_threshold`), death *episodes*, the
//!   mission [`Policy`] (`auto` / `ask` / `never`), the restart budget
//!   (`max_attempts` per window) with exponential backoff, escalation to a
//!   human with a slow-lane retry, and non-blocking approvals (a request has
//!   a deadline and a default). It returns [`Action`]s for the caller.
//! - [`launched`] records how a requested launch went (started, failed, or
//!   refused by the pre-flight check, which escalates at once).
//!
//! A wall clock set back is survived: times in a record later than `now`
//! are clamped to it, so no timer waits out the jump.
//!
//! # What this crate must never do
//! - Perform I/O or read the clock: `now` is always passed in.
//! - Launch under `never`, while an approval is pending, inside the startup
//!   grace or the backoff, or beyond the budget (slow lane excepted).
//! - Open more than one incident per episode, or close one it did not open.

mod assess;
mod machine;
mod policy;

pub use assess::{DeadRule, Health, Heartbeat, Probe, assess};
pub use machine::{
    Action, AgentRecord, Approval, AskDefault, LaunchOutcome, Pending, Settings, State, launched,
    step,
};
pub use policy::{Policy, UnknownPolicy};

#[cfg(test)]
mod tests;
