//! Cell I/O: the events the pool appends to each cell's log (kept and
//! retried, in order, while a log cannot be written) and each cell's
//! `.lazarus/state.json`.

use std::collections::BTreeMap;

use nexus_cell::{AgentHealth, CellId, DaemonState, Event, EventKind};
use nexus_revive::State;

use super::{Pool, UNWRITTEN_EVENTS_KEPT};
use crate::fleet::{Seen, Target};

impl Pool {
    pub(super) fn cell_event(&mut self, t: &Target, s: &Seen, to: State) {
        if self.dry_run {
            return;
        }
        let Some((cell, agent)) = t.cell_agent() else {
            return;
        };
        let age = s.heartbeat_age.unwrap_or(-1.0);
        let kind = match to {
            State::Dead => EventKind::AgentDead { agent, age },
            State::Degraded => EventKind::AgentStale { agent, age },
            _ => return,
        };
        self.cell_append(cell, kind);
    }

    /// Appends an event to `cell`'s log, behind any of its events still
    /// waiting to be written; one that cannot be written now waits too.
    pub(super) fn cell_append(&mut self, cell: CellId, kind: EventKind) {
        if self.unwritten.len() >= UNWRITTEN_EVENTS_KEPT {
            self.unwritten.pop_front();
            self.unwritten_dropped += 1;
        }
        self.unwritten.push_back((cell, Event::now(kind)));
        self.write_events();
    }

    /// Writes the waiting cell events, oldest first. A cell whose log fails
    /// keeps the rest of its events, in order, for the next sweep; other
    /// cells go on. A cell that no longer exists has nowhere to write: its
    /// events are dropped.
    pub(super) fn write_events(&mut self) {
        crate::files::off_runtime(|| self.write_events_now());
    }

    fn write_events_now(&mut self) {
        let Some(store) = &self.store else {
            self.unwritten.clear();
            return;
        };
        let mut blocked: Vec<CellId> = Vec::new();
        let mut fault: Option<nexus_cell::Error> = None;
        self.unwritten.retain(|(id, event)| {
            if blocked.contains(id) {
                return true;
            }
            let cell = match store.open(id) {
                Ok(c) => c,
                Err(e @ nexus_cell::Error::NotFound { .. }) => {
                    tracing::warn!("cell {id}: event dropped, the cell is gone: {e}");
                    return false;
                }
                // Unreadable for now (its manifest, the root moved away):
                // the event waits, as for a full disk.
                Err(e) => {
                    blocked.push(*id);
                    fault = Some(e);
                    return true;
                }
            };
            match cell.append_event(event) {
                Ok(()) => false,
                Err(e) => {
                    blocked.push(*id);
                    fault = Some(e);
                    true
                }
            }
        });
        let result = match fault {
            None => {
                if self.unwritten_dropped > 0 {
                    tracing::warn!(
                        "cell events: {} of them were dropped (more than {UNWRITTEN_EVENTS_KEPT} waited while the logs could not be written)",
                        self.unwritten_dropped
                    );
                    self.unwritten_dropped = 0;
                }
                Ok(())
            }
            Some(source) => {
                let e = crate::Error::EventsKept {
                    source,
                    kept: self.unwritten.len(),
                };
                tracing::warn!("cell events: {e}");
                Err(e)
            }
        };
        self.fault_result("events", result);
    }

    /// Writes the `state.json` of the cell whose agents are `part` (one
    /// part of the fleet); the error if it failed. Gateways have no cell.
    pub(super) fn write_cell_state(
        &self,
        part: &[Target],
        now: f64,
    ) -> Result<(), nexus_cell::Error> {
        crate::files::off_runtime(|| self.write_cell_state_now(part, now))
    }

    fn write_cell_state_now(&self, part: &[Target], now: f64) -> Result<(), nexus_cell::Error> {
        let (Some(store), Some(cell)) = (&self.store, part.first().and_then(|t| t.cell)) else {
            return Ok(());
        };
        let mut agents: BTreeMap<String, AgentHealth> = BTreeMap::new();
        for t in part {
            let rec = self.state.records.get(&t.key).cloned().unwrap_or_default();
            agents.insert(
                t.name.to_string(),
                AgentHealth {
                    healthy: rec.state == State::Healthy,
                    // The last heartbeat, not this sweep.
                    last_seen: t.beat.age_seconds.map(|age| now - age),
                    revive_count: rec.attempts.len() as u32,
                    unhealthy_since: rec.episode_start,
                    escalated: rec.state == State::Escalated,
                    open_issue: None,
                    extra: Default::default(),
                },
            );
        }
        let Ok(c) = store.open(&cell) else {
            return Ok(());
        };
        let st = DaemonState {
            cell_uuid: c.id(),
            daemon_pid: std::process::id(),
            last_poll: now,
            agent_health: agents,
            extra: Default::default(),
        };
        c.write_daemon_state(&st).inspect_err(|e| {
            tracing::warn!("{cell}: state.json not written: {e}");
        })
    }
}
