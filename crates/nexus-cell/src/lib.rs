//! Mission cells: isolated, auditable homes for missions (docs/SPEC.md §5).
//!
//! A cell is a directory `<root>/<uuid>/` (root `/var/missions` by
//! default) with a fixed layout: `cell.json` ([`CellManifest`]),
//! `workspace/`, `logs/events.jsonl` ([`Event`]), `logs/<agent>.log`,
//! `checkpoints/<timestamp>.tar.gz`, `bus/inbox/<agent>/`, `bus/outbox/`,
//! `.lazarus/heartbeats/<agent>.json` (written by agents with
//! [`Cell::heartbeat_writer`], read with `nexus-heartbeat`'s classifier)
//! and `.lazarus/state.json` ([`DaemonState`], written only by the daemon).
//!
//! # Main types
//! - [`CellStore`]: provision, open, [`join`](CellStore::join) /
//!   [`leave`](CellStore::leave), lifecycle moves
//!   ([`set_status`](CellStore::set_status), [`destroy`](CellStore::destroy))
//!   checked against [`Status`]'s state machine, [`discover`](CellStore::discover)
//!   and [`survey`](CellStore::survey) (all cells plus every heartbeat),
//!   [`checkpoint`](CellStore::checkpoint) and [`restore`](CellStore::restore).
//! - [`Cell`]: one cell's paths, events, heartbeats, daemon state and the
//!   [`revive_command`](Cell::revive_command) of each agent.
//! - [`AgentName`], [`CellId`]: validated names; every path component the
//!   store builds comes from one of them.
//! - [`append_event`] / [`EventLog`]: the atomic append and the tolerant
//!   reader of `events.jsonl`.
//! - [`parse_proposal`]: the mission proposal Markdown (docs/SPEC.md §5.7).
//!
//! # What this crate must never do
//! - Touch anything outside its cells root: names with `..`, `/`, NUL or
//!   control characters are refused, symlinks where the store expects a
//!   cell, a managed directory or a managed file are refused, destroy
//!   never follows a link or crosses a mount point, and agent homes are
//!   only ever recorded.
//! - Read through a `.lazarus` or `.lazarus/heartbeats` that is a symlink:
//!   the cell's agents are `Unreadable`, with the reason.
//! - Follow a link while checkpointing or restoring, record or restore a
//!   setuid, setgid or sticky bit, or set an owner or mode by path (only
//!   through a descriptor opened without following a link).
//! - Give a restored entry to anyone but the cell's owner (the owner of its
//!   `workspace/`; never the restoring user, the archive's uid or a uid in
//!   `cell.json`), or restore a device, a FIFO or a hard link (such an
//!   archive is refused whole, the workspace untouched).
//! - Let others read a checkpoint (archives are 0600), or copy into one a
//!   file with several links that is not the cell owner's (another user's
//!   file an agent linked in).
//! - Lose or interleave an event line, or fail a reader on a bad line.
//! - Panic or abort a scan on a corrupt file: the error names the file and
//!   the field, and discovery skips the cell.
//! - Pull in an async runtime: the daemon calls it from a blocking context.

mod checkpoint;
mod error;
mod events;
mod fsx;
mod lifecycle;
mod names;
mod proposal;
mod schema;
mod state;
mod store;

pub use checkpoint::{Checkpoint, MAX_ENTRIES};
pub use error::{Error, EventError, NameError, TransitionError, UnknownValue};
pub use events::{EVENT_KINDS, Event, EventKind, EventLog, MAX_LINE, SkippedLine, append_event};
pub use lifecycle::Status;
pub use names::{AgentName, CellId, MAX_AGENT_NAME, validate_checkpoint_name};
pub use proposal::{
    PROPOSAL_TEMPLATE, Proposal, ProposalError, ProposalProblem, SettingProblem, parse_proposal,
};
pub use schema::{
    AgentEntry, CellConfig, CellManifest, Invitee, Isolation, MAX_AGENTS, MAX_ARG, MAX_ARGS,
    MAX_SHORT, MAX_TEXT, RevivePolicy, Role, now_utc,
};
pub use state::{AgentHealth, DaemonState};
pub use store::{
    AGENT_ENV, CELL_UUID_ENV, Cell, CellHealth, CellStore, DEFAULT_ROOT, Discovery, Join,
    MANIFEST_FILE, MAX_MANIFEST_BYTES, NewCell, ROOT_ENV, Skipped,
};
