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
//! - [`wait`] says what a sick agent waits for and until when (shown on the
//!   status page, `--once` and the log); [`next_due`] when it must be
//!   stepped again with no new evidence: the event engine's timers.
//! - [`command`] carries out a human's [`Command`] from the status page:
//!   retry now (a launch, overriding budget, backoff and policy) or
//!   acknowledge (kept on the episode); a [`Refused`] says why not.
//!
//! Evidence, not timers (issue 17): a death the pool *saw* (its own child
//! exited, [`Health::Gone`]; its own process hung, [`Health::Hung`]) is
//! acted on at once, after a backoff counted from the previous launch
//! (1 s doubling to 5 min); an `auto` agent not running when the pool
//! first meets it ([`Health::NotRunning`]) is started at once and spends
//! no budget; a launched agent is healthy on its first fresh heartbeat.
//! Only *inferred* deaths (a stale heartbeat of a process the pool cannot
//! see, a silent gateway) wait for `dead_after` and the start-up grace.
//! An incident is for a human: it opens when a revive failed, the budget
//! is spent, the policy is `never`, a revive was refused, or the agent
//! stayed dead past `incident_after`; never for a revive that worked.
//!
//! A wall clock set back is survived: times in a record later than `now`
//! are clamped to it, so no timer waits out the jump.
//!
//! # What this crate must never do
//! - Perform I/O or read the clock: `now` is always passed in.
//! - Launch under `never`, while an approval is pending, inside the startup
//!   grace or the backoff, or beyond the budget (slow lane and a human's
//!   retry excepted).
//! - Open more than one incident per episode, or close one it did not open.
//! - Count a first start against the restart budget.

mod assess;
mod human;
mod machine;
mod policy;
mod wait;

pub use assess::{DeadRule, Health, Heartbeat, Probe, assess};
pub use human::{Command, Refused, command};
pub use machine::{
    Action, AgentRecord, Approval, AskDefault, LaunchOutcome, Pending, Settings, State, launched,
    step,
};
pub use policy::{Policy, UnknownPolicy};
pub use wait::{Wait, next_due, wait};

#[cfg(test)]
mod tests;
