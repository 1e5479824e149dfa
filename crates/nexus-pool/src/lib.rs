//! The resurrection pool: watches gateways listed in its config and the
//! agents of every active mission cell, decides with `nexus-revive`, revives
//! into the agent's cell, and shows all of it.
//!
//! - [`config`]: `resurrection-pool.toml`, and the seed's JSON and
//!   lazarus-pit's `config/lazarus-pit.toml` as is.
//! - [`fleet`]: the watched agents (config gateways plus the agents of every
//!   active or frozen cell) and one concurrent probe pass over all of them
//!   (one `/proc` scan per sweep).
//! - [`pool`]: [`Pool::sweep`] steps every agent's `nexus-revive` state
//!   machine (the safety sweep), [`Pool::idle`] and [`Pool::step_keys`]
//!   step only the agents an event concerns between sweeps; the actions
//!   are carried out by small executors: the launcher (pre-flight, the
//!   intent journal, spawn, a hung child stopped through its pidfd), the
//!   incidents and messages (see [`channels`]), cell I/O (events and
//!   `.lazarus/state.json`), and the persisted state file.
//! - [`engine`]: the event sources: inotify watches on the cells root, the
//!   cells and the heartbeat directories, and one deadline per agent.
//! - [`records`]: every agent's persisted record, in one sorted vector whose
//!   keys are shared with the fleet; a sweep marks what it saw, keeps the
//!   rest while their cell cannot be read and retires them once it is gone.
//! - [`sighting`]: what the last check of each agent saw (state and why,
//!   heartbeat age, gateway, process, when), kept beside its record and
//!   saved for `--status`.
//! - [`status`]: `--status`, from the state file and the cells' manifests.
//! - [`ping`]: remote heartbeats pushed by cron jobs on other hosts
//!   (`POST /ping/<job>`), stored as ordinary `.last` records.
//! - [`dashboard`]: the history behind the status page (`[history]`): a
//!   thread that reads it into per-subject bars and events off the request
//!   path, and one that records the cron jobs the pool sees.
//! - [`view`]: the snapshot the pool publishes after each sweep
//!   ([`PoolSnapshot`], [`AgentView`]).
//! - [`intent`]: crash safety of launches (an intent saved before each
//!   spawn, re-adopted after a restart) and the test-only pause points.
//! - [`clock`]: monotonic time inside the pool, and heartbeats stamped in
//!   the future judged by progress.
//! - [`faults`]: write faults (a full disk) the pool runs through and reports.
//! - [`channels`]: Gitea incidents and Telegram messages and approvals, each
//!   run by its own executor beside the sweeps, every call under a deadline.
//! - [`notify`]: problem-set alerts (dead, escalated, degraded agents)
//!   through `[webhook]`, `[ntfy]` and `[email]`, beside the sweeps.
//! - [`http`]: the loopback HTTP surface over that snapshot: `/health`,
//!   `/metrics`, `/api/agents` and the status page; clients are held to a
//!   header timeout, a connection lifetime and a connection cap.
//! - [`files`]: the pool's own files: a private state directory, reads
//!   that follow no link and never block, bad state set aside, the PID and
//!   cells-root locks.
//! - [`fds`]: the open-file budget shared by probes, HTTP connections and a
//!   reserve for the pool's own files.
//!
//! # What this crate must never do
//! - Listen beyond loopback unless told to.
//! - Block a sweep on a human (approvals are tracked, never awaited), or on
//!   Gitea or Telegram (their calls run beside the sweeps, see [`channels`]).
//! - Wait a timer out on evidence it already has: a launched child's exit
//!   or hang is acted on at once (after the backoff); only an inferred
//!   death waits `dead_threshold`.
//! - Signal a process it cannot prove is the one it launched (its pidfd,
//!   or its launch intent in `/proc/<pid>/environ`), or leave a hung
//!   process running beside its replacement.
//! - Launch an agent through a shell.
//! - Launch an agent twice because the pool itself died: every launch is
//!   journaled before its spawn and re-adopted after a restart.
//! - Stop because a write fails (a full disk): the fault is reported on
//!   `/health` and `/metrics`, the previous files are left intact.
//! - Time its timers by the wall clock (see [`clock`]).
//! - Let HTTP clients hold the descriptors it needs: a request head has a
//!   timeout, a connection a lifetime, and live connections a cap below
//!   the open-file budget, which keeps a reserve for the pool's own files
//!   ([`fds`]).
//! - Work a cells root another pool works, or trust a lock file someone
//!   else could replace ([`files`]).
//! - Follow a link, block on a FIFO or read without a cap at its own state
//!   files, or stop because one is bad: it is set aside and the pool
//!   starts empty.
//! - Write anything in a dry run, a `/ping` included.
//! - Forget an agent's record because its cell could not be read, or reset
//!   it because the agent left and came back (`pool::unseen`).

pub mod actions;
pub mod alertmanager;
mod badge;
pub mod channels;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod engine;
mod error;
pub mod faults;
pub mod fds;
pub mod files;
pub mod fleet;
pub mod http;
pub mod intent;
pub mod notify;
pub mod page;
pub mod ping;
pub mod pool;
pub mod ratelimit;
pub mod records;
pub mod sighting;
pub mod status;
pub mod view;

pub use config::{ConfigFormat, PoolConfig};
pub use error::Error;
pub use pool::{Pool, PoolOptions, PoolState, Retired, SweepReport, Wake};
pub use view::{AgentView, ChannelView, HistoryCounts, Note, PoolSnapshot, UnreadableCell};
