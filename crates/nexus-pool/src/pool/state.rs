//! The pool's persisted state (`PoolState`): the records, the launch
//! intents, what waits for Gitea and Telegram, the retired records and
//! what each sick agent waits for; read without following a link and under
//! a cap, a bad file set aside, written atomically and streamed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use nexus_revive::Approval;
use serde::{Deserialize, Serialize};

use super::unseen::Retired;
use crate::Error;
use crate::channels::Observations;
use crate::intent::LaunchIntent;
use crate::records::Records;

/// What the pool persists between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolState {
    /// Per-agent records by key.
    pub records: Records,
    /// The approval request id of each agent with one in flight.
    pub requests: BTreeMap<String, String>,
    /// The approval channels that have each agent's request (`telegram`,
    /// `nostr`), so a restart asks only those that do not. A request in
    /// `requests` without an entry here is Telegram's (a state from before
    /// Nostr).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub asked_on: BTreeMap<String, BTreeSet<String>>,
    /// The last launch of each agent, saved before its spawn (see
    /// [`crate::intent`]).
    pub launched: BTreeMap<String, LaunchIntent>,
    /// Telegram messages not delivered yet (flood control, Telegram
    /// unreachable), oldest first: retried at every sweep, across restarts.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    pub unsent: VecDeque<Unsent>,
    /// Observations for Gitea the incident engine has not taken yet (Gitea
    /// not answering, or the pool stopped first): sent again, in order.
    #[serde(skip_serializing_if = "Observations::is_empty")]
    pub observations: Observations,
    /// Approval answers read from Telegram and not acted on yet, by request
    /// id (`approvals.json` forgets a request once it is answered).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, Approval>,
    /// Records of agents that left the fleet, by key, kept for a while in
    /// case they come back (see `pool::unseen`): leaving and coming back
    /// never resets a restart budget.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub retired: BTreeMap<String, Retired>,
    /// What each agent that is not healthy waits for, in words (for
    /// `--status`, which reads this file and nothing else).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub waiting: BTreeMap<String, String>,
    /// Who acknowledged each agent's current episode from the status page
    /// (dropped when the episode ends).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acknowledged: BTreeMap<String, String>,
    /// The words of each agent's heartbeat that cannot be read or parsed
    /// ("corrupt heartbeat: `<file>`: field `timestamp`: …"), by key, while
    /// it lasts: the few agents with one (the rest's reasons are codes in
    /// their records' `seen`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, String>,
}

/// A Telegram message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsent {
    /// Message text as queued; resent unchanged.
    pub text: String,
    /// Not before this time (epoch seconds): Telegram's `retry_after`.
    pub not_before: f64,
    /// Which message a channel event is about (this run only).
    #[serde(skip)]
    pub(super) id: u64,
}

impl PoolState {
    /// Loads the state; a missing file is empty, a bad one (a link, a FIFO,
    /// too big, not the state's JSON) is an [`Error::State`] naming the
    /// file. Never follows a link, never blocks, reads at most
    /// [`crate::files::MAX_STATE_BYTES`].
    pub fn load(path: &Path) -> Result<PoolState, Error> {
        let mut state = PoolState::read(path)?;
        state.replay_journal(path);
        Ok(state)
    }

    /// [`PoolState::load`] for a pool starting up: a bad state file is
    /// logged as an error, set aside as `<name>.corrupt-<UTC time>` (unless
    /// `dry_run`: then it is left alone) and the pool starts with an empty
    /// state. Only an I/O error (no descriptor, no permission) is returned.
    pub fn load_or_reset(path: &Path, dry_run: bool) -> Result<PoolState, Error> {
        let mut state = match PoolState::read(path) {
            Err(e @ Error::State { .. }) => {
                let aside = if dry_run {
                    "left in place (dry run)".to_string()
                } else {
                    match crate::files::set_aside(path) {
                        Ok(p) => format!("set aside as {}", p.display()),
                        Err(e) => format!("cannot be set aside: {e}"),
                    }
                };
                tracing::error!("{e}; {aside}; starting with an empty state");
                PoolState::default()
            }
            other => other?,
        };
        state.replay_journal(path);
        Ok(state)
    }

    fn read(path: &Path) -> Result<PoolState, Error> {
        let bad = |reason| Error::State {
            path: path.to_path_buf(),
            reason,
        };
        let found =
            crate::files::read_own(path, crate::files::MAX_STATE_BYTES).map_err(|source| {
                Error::Io {
                    op: "read state",
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        match found {
            crate::files::Found::Missing => Ok(PoolState::default()),
            crate::files::Found::Bad(why) => Err(bad(why)),
            crate::files::Found::Bytes(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("not the pool's state: {e}"))),
        }
    }

    /// Launches recorded since the last save (see [`crate::intent`]).
    fn replay_journal(&mut self, path: &Path) {
        for e in crate::intent::journal_read(&crate::intent::journal_path(path)) {
            self.records.insert(e.key.as_str(), e.record);
            self.launched.insert(e.key, e.intent);
        }
    }

    #[cfg(test)]
    pub(crate) fn save_for_tests(&self, path: &Path) {
        self.save(path).unwrap();
    }

    pub(super) fn save(&self, path: &Path) -> Result<(), Error> {
        // Written as it is serialised: 10,000 records are 5 MB of JSON,
        // never held in memory whole.
        nexus_stdx::write_private_with(
            path,
            &mut |w| serde_json::to_writer_pretty(w, self).map_err(std::io::Error::other),
            true,
        )?;
        // The state now holds every journaled launch.
        let journal = crate::intent::journal_path(path);
        match std::fs::remove_file(&journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("cannot remove {}: {e}", journal.display());
            }
            _ => {}
        }
        Ok(())
    }
}
