//! The records of agents a sweep did not see.
//!
//! A cell that cannot be read for a moment (its `cell.json` being
//! rewritten by hand, the cells root moved away and back, a manifest an
//! agent broke on purpose) must not cost its agents their records: the
//! restart budget, the escalation and a pending approval would go with
//! them, and an agent able to write its own `cell.json` could reset its own
//! budget. So:
//! - the records of a cell that cannot be read are kept as they are, not
//!   stepped, and shown (state `unknown`, the reason first among their
//!   events); the cell is listed as unreadable on `/health` (`degraded`),
//!   `/metrics` and the page;
//! - the records of agents that really left (the cell's directory absent
//!   from a readable root, the cell archived or destroyed, the agent taken
//!   out of its cell, the gateway out of the config) are *retired*: kept in
//!   the state file, not shown, for `max(attempt_window, slow_lane)` after
//!   they left, and given back as they were if the agent comes back before
//!   that (a cell re-created with its old id, a manifest set back to
//!   `active`). Past that time the attempts they held are out of the
//!   budget's window anyway, and the slow lane would have tried again.

use std::collections::HashMap;
use std::sync::Arc;

use nexus_cell::CellId;
use nexus_revive::{AgentRecord, Policy, State};
use serde::{Deserialize, Serialize};

use super::Pool;
use crate::fleet::Fleet;
use crate::view::{AgentView, UnreadableCell};

/// The record of an agent that left the fleet, kept for a while (see the
/// module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    /// When it left (epoch seconds).
    pub left_at: f64,
    /// Record frozen at the moment the agent left the fleet.
    pub record: AgentRecord,
}

/// What a sweep found about the cells it could not read.
#[derive(Debug, Default)]
pub(super) struct Unseen {
    /// The views of the agents kept without being stepped.
    pub(super) views: Vec<AgentView>,
    /// Every cell that could not be read.
    pub(super) cells: Vec<UnreadableCell>,
}

impl Pool {
    /// How long a retired record is kept.
    fn retirement(&self) -> f64 {
        self.settings.attempt_window.max(self.settings.slow_lane)
    }

    /// Before a sweep steps `fleet`: agents back in the fleet get their
    /// retired records back; retired records past their time go.
    pub(super) fn restore_retired(&mut self, fleet: &Fleet, now: f64) {
        if self.state.retired.is_empty() {
            return;
        }
        let keep = self.retirement();
        self.state.retired.retain(|_, r| {
            // A clock set back: counted from now, not from the future.
            r.left_at = r.left_at.min(now);
            now - r.left_at < keep
        });
        for t in fleet.iter() {
            if let Some(r) = self.state.retired.remove(&*t.key) {
                tracing::warn!(
                    "[{}] back in the fleet: its record is restored (state {}, {} attempt(s))",
                    t.key,
                    r.record.state.as_str(),
                    r.record.attempts.len()
                );
                self.state.records.insert(t.key.clone(), r.record);
            }
        }
    }

    /// After a sweep stepped the fleet: the records it did not see. Those
    /// of a cell that cannot be read are kept and shown; the others are
    /// retired. `unreadable` is the survey's list (by cell directory name,
    /// `None` for the root).
    pub(super) fn settle_unseen(
        &mut self,
        unreadable: &[(Option<String>, String)],
        now: f64,
    ) -> Unseen {
        let root_dir = || {
            let root = self
                .cfg
                .cells
                .as_ref()
                .map(|c| c.root.display().to_string());
            root.unwrap_or_default()
        };
        let mut out = Unseen {
            views: Vec::new(),
            cells: unreadable
                .iter()
                .map(|(name, why)| UnreadableCell {
                    cell: name.clone().unwrap_or_else(root_dir),
                    reason: why.clone(),
                })
                .collect(),
        };
        let root = unreadable
            .iter()
            .find_map(|(name, why)| name.is_none().then_some(why.as_str()));
        let named: HashMap<&str, &str> = unreadable
            .iter()
            .filter_map(|(name, why)| Some((name.as_deref()?, why.as_str())))
            .collect();
        // One verdict per cell: `Some(reason)` while it cannot be read.
        let mut cells: HashMap<CellId, Option<String>> = HashMap::new();
        let mut kept: Vec<(Arc<str>, String)> = Vec::new();
        for key in self.state.records.unmarked() {
            let Some(id) = key
                .split_once('/')
                .and_then(|(cell, _)| CellId::parse(cell).ok())
            else {
                continue; // a gateway out of the config
            };
            let why = cells
                .entry(id)
                .or_insert_with(|| self.unreadable_cell(&id, root, &named));
            if let Some(why) = why {
                kept.push((key.clone(), why.clone()));
            }
        }
        for (id, why) in &cells {
            if let Some(why) = why
                && root.is_none()
                && !named.contains_key(id.to_string().as_str())
            {
                out.cells.push(UnreadableCell {
                    cell: id.to_string(),
                    reason: why.clone(),
                });
            }
        }
        if !kept.is_empty() {
            let before = self.previous_views(&cells);
            let probe = nexus_revive::Probe {
                gateway: None,
                process: None,
                heartbeat: nexus_revive::Heartbeat::Unknown,
            };
            let unread = crate::sighting::Why::CellUnreadable;
            let seen = crate::sighting::Sighting::new(now, State::Unknown, unread, &probe, None);
            for (key, why) in kept {
                self.state.records.mark(&key);
                // Shown unknown, and so by `--status`.
                self.state.records.set_sighting(&key, seen);
                let rec = self.state.records.get(&key).cloned().unwrap_or_default();
                out.views
                    .push(self.unseen_view(&key, &rec, &why, before.get(&*key)));
            }
        }
        let gone = self.state.records.take_unmarked();
        if !gone.is_empty() {
            tracing::info!(
                "{} agent(s) left the fleet; their records are kept {} in case they come back",
                gone.len(),
                nexus_stdx::format_duration(self.retirement())
            );
        }
        for (key, record) in gone {
            let left = Retired {
                left_at: now,
                record,
            };
            self.state.retired.insert(key.to_string(), left);
        }
        out
    }

    /// Why the cell `id` cannot be read now, or `None` if it is gone (its
    /// directory absent from a readable root) or readable (its agents left
    /// it, or it is no longer active or frozen).
    fn unreadable_cell(
        &self,
        id: &CellId,
        root: Option<&str>,
        named: &HashMap<&str, &str>,
    ) -> Option<String> {
        if let Some(why) = root {
            return Some(format!("cells root: {why}"));
        }
        if let Some(why) = named.get(id.to_string().as_str()) {
            return Some((*why).to_string());
        }
        match self.store.as_ref()?.open(id) {
            Ok(_) | Err(nexus_cell::Error::NotFound { .. }) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The last views of the agents of `cells`, by key (their mission and
    /// policy are in the manifest that cannot be read now).
    fn previous_views(
        &self,
        cells: &HashMap<CellId, Option<String>>,
    ) -> HashMap<String, AgentView> {
        let snapshot = match self.shared.read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        snapshot
            .agents
            .iter()
            .filter(|v| {
                v.cell
                    .as_deref()
                    .and_then(|c| CellId::parse(c).ok())
                    .is_some_and(|id| cells.get(&id).is_some_and(Option::is_some))
            })
            .map(|v| {
                let cell = v.cell.as_deref().unwrap_or_default();
                (format!("{cell}/{}", v.name), v.clone())
            })
            .collect()
    }

    /// An agent of a cell that cannot be read: its record as kept, its
    /// state unknown (not assessed), the reason first among its events.
    fn unseen_view(
        &self,
        key: &str,
        rec: &AgentRecord,
        why: &str,
        before: Option<&AgentView>,
    ) -> AgentView {
        let (cell, name) = key.split_once('/').unwrap_or(("", key));
        let default_policy = self
            .cfg
            .cells
            .as_ref()
            .and_then(|c| c.revive_policy.parse().ok())
            .unwrap_or(Policy::Auto);
        let mut last_events = vec![crate::view::Note::now(format!(
            "cell unreadable, record kept: {why}"
        ))];
        if let Some(q) = self.events.get(key) {
            last_events.extend(q.iter().cloned());
        }
        AgentView {
            waiting: None,
            name: Arc::from(name),
            cell: Some(
                before
                    .and_then(|b| b.cell.clone())
                    .unwrap_or_else(|| Arc::from(cell)),
            ),
            mission: before.and_then(|b| b.mission.clone()),
            policy: before.map_or(default_policy, |b| b.policy),
            state: State::Unknown,
            gateway_alive: None,
            process_alive: None,
            heartbeat_age: None,
            revive_attempts: rec.attempts.len() as u32,
            last_checked: before.map_or(0.0, |b| b.last_checked),
            first_dead_at: rec.dead_since,
            revive_pending: rec.pending.is_some(),
            acknowledged_by: self
                .state
                .acknowledged
                .get(key)
                .map(|b| Box::from(b.as_str())),
            reason: Some(Box::new(format!("cell unreadable, record kept: {why}"))),
            last_events: last_events.into_boxed_slice(),
        }
    }
}
