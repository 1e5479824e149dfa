//! The attack suite (issue 16): what a misbehaving agent, a hostile server
//! or a careless operator does to the daemons running as root, through the
//! real binaries. `cargo nextest run -p nexus-e2e attack::` runs it alone.
//!
//! - `setuid`: an agent's setuid copy of `id` through checkpoint and
//!   restore;
//! - `racer`: the watchdog's disk clean-up while a directory is swapped for
//!   a symlink to files outside its root (bounded);
//! - `reflect`: Gitea and Telegram that echo the request, tokens and forged
//!   log lines included;
//! - `hung`: Gitea and Telegram that accept and never answer;
//! - `pool_edge`: idle connections under a low open-file limit, two pools
//!   on one cells root, bad state files, file modes, `/ping` in a dry run;
//! - `output`: stdout and stderr on `/dev/full` or a closed pipe.
//!
//! The unit-level attacks sit beside their code (nexus-cell's restore of
//! hand-made archives, nexus-watch's racer against the walk itself,
//! nexus-heartbeat's symlinked and FIFO heartbeats); docs/RELIABILITY.md
//! lists every one.

mod hung;
mod output;
mod pool_edge;
mod racer;
mod reflect;
mod setuid;
