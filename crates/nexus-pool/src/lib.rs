//! The resurrection pool: watches gateways listed in its config and the
//! agents of every active mission cell, decides with `nexus-revive`, revives
//! into the agent's cell, and shows all of it.
//!
//! - [`view`]: the snapshot the pool publishes after each sweep
//!   ([`PoolSnapshot`], [`AgentView`]).
//! - [`http`]: the loopback HTTP surface over that snapshot: `/health`,
//!   `/metrics`, `/api/agents` and the status page.
//!
//! # What this crate must never do
//! - Listen beyond loopback unless told to.
//! - Block a sweep on a human (approvals are tracked, never awaited).
//! - Launch an agent through a shell.

pub mod http;
pub mod view;

pub use view::{AgentView, PoolSnapshot};
