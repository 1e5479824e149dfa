//! `resurrection-pool --status`: what the last sweep saw, read from the
//! pool's state file (each record and its [`Sighting`]), and the agents the
//! config and the cells declare that no sweep has checked yet. It probes
//! nothing and writes nothing; the cells root is only read (manifests).

use std::collections::BTreeSet;

use nexus_cell::{CellStore, Status as CellStatus};
use nexus_revive::State;
use serde::Serialize;

use crate::config::PoolConfig;
use crate::pool::PoolState;
use crate::sighting::Sighting;

/// The state shown for an agent no sweep has checked yet.
pub const NOT_CHECKED: &str = "not yet checked";

/// One agent of `--status` (its JSON and its line say the same).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// Its key: the gateway's name, or `<cell>/<agent>`.
    pub name: String,
    /// Its state (`healthy`, `dead` …, or "not yet checked").
    pub state: String,
    /// Why it is not healthy, as the last check saw it.
    pub reason: Option<String>,
    /// The heartbeat's age at the last check, seconds (`None`: no heartbeat,
    /// or not checked).
    pub heartbeat_age: Option<f64>,
    /// The gateway answered (`None`: not probed).
    pub gateway_alive: Option<bool>,
    /// The process ran (`None`: not probed).
    pub process_alive: Option<bool>,
    /// When it was last checked (epoch seconds).
    pub last_checked: Option<f64>,
    /// Its cell was frozen at that check: reported, never revived.
    pub frozen: bool,
    /// When the current death episode began (epoch seconds).
    pub first_dead_at: Option<f64>,
    /// An approval request is waiting for an answer.
    pub revive_pending: bool,
    /// Launches inside the restart window.
    pub revive_attempts: usize,
    /// Launches in this episode.
    pub episode_attempts: u32,
    /// An incident is open for this episode.
    pub incident_open: bool,
    /// What it waits for, in words.
    pub waiting: Option<String>,
}

impl StatusRow {
    /// Healthy at the last check.
    pub fn healthy(&self) -> bool {
        self.state == State::Healthy.as_str()
    }

    /// One line for `--status`: state, name, then heartbeat age and probe results.
    pub fn line(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!("{:<15} {}", self.state, self.name);
        let Some(at) = self.last_checked else {
            return out;
        };
        match self.heartbeat_age {
            Some(age) => {
                let _ = write!(out, "  heartbeat {:.0} s ago", age.max(0.0));
            }
            None => out.push_str("  no heartbeat"),
        }
        let alive = |v: bool| if v { "up" } else { "down" };
        if let Some(g) = self.gateway_alive {
            let _ = write!(out, "  gateway {}", alive(g));
        }
        if let Some(p) = self.process_alive {
            let _ = write!(out, "  process {}", alive(p));
        }
        let _ = write!(
            out,
            "  checked {}  attempts {}",
            utc(at),
            self.revive_attempts
        );
        if let Some(r) = &self.reason {
            let _ = write!(out, "  why: {r}");
        }
        if let Some(w) = &self.waiting {
            let _ = write!(out, "  waiting: {w}");
        }
        out
    }
}

/// `epoch` as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(epoch: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    format!("{} UTC", t.format(&f).unwrap_or_default())
}

/// The agents `cfg` and the cells under `store` declare, by key (the
/// config's gateways, then each active or frozen cell's agents, as a sweep
/// reads them), and what could not be read.
pub fn declared(cfg: &PoolConfig, store: Option<&CellStore>) -> (BTreeSet<String>, Vec<String>) {
    let mut keys: BTreeSet<String> = cfg.gateways.iter().map(|g| g.name.clone()).collect();
    let mut problems = Vec::new();
    let Some(store) = store else {
        return (keys, problems);
    };
    match store.discover() {
        Err(e) => problems.push(format!("cannot read cells root: {e}")),
        Ok(d) => {
            for s in d.skipped {
                problems.push(format!("skipped cell {}: {}", s.path.display(), s.error));
            }
            for cell in d.cells {
                let m = cell.manifest();
                if matches!(m.status, CellStatus::Active | CellStatus::Frozen) {
                    for a in &m.agents {
                        keys.insert(format!("{}/{}", cell.id(), a.name));
                    }
                }
            }
        }
    }
    (keys, problems)
}

/// One row per agent the state knows and per agent `declared` names that
/// it does not ("not yet checked"), by key.
pub fn rows(state: &PoolState, declared: &BTreeSet<String>) -> Vec<StatusRow> {
    let mut rows: Vec<StatusRow> = state
        .records
        .iter_seen()
        .map(|(key, r, seen)| row(state, key, r, seen))
        .collect();
    for key in declared {
        if state.records.get(key).is_none() {
            rows.push(row(state, key, &Default::default(), Sighting::default()));
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

fn row(state: &PoolState, key: &str, r: &nexus_revive::AgentRecord, seen: Sighting) -> StatusRow {
    // A record from before sightings was checked, when it did not say.
    let checked = seen.checked() || r.state != State::Unknown || r.first_seen.is_some();
    let shown = if seen.checked() { seen.state } else { r.state };
    let detail = state.reasons.get(key).map(String::as_str);
    StatusRow {
        name: key.to_string(),
        state: if checked {
            shown.as_str().to_string()
        } else {
            NOT_CHECKED.to_string()
        },
        reason: seen
            .reason(detail.filter(|_| seen.why.is_bad_file()))
            .filter(|_| shown != State::Healthy),
        heartbeat_age: seen.heartbeat_age(),
        gateway_alive: seen.gateway_alive(),
        process_alive: seen.process_alive(),
        last_checked: seen.checked_at(),
        frozen: seen.is_frozen(),
        first_dead_at: r.dead_since,
        revive_pending: r.pending.is_some(),
        revive_attempts: r.attempts.len(),
        episode_attempts: r.episode_attempts,
        incident_open: r.incident_open,
        waiting: state.waiting.get(key).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sighting::Why;
    use nexus_revive::{AgentRecord, Heartbeat, Probe};
    use std::sync::Arc;

    fn probe() -> Probe {
        Probe {
            gateway: None,
            process: Some(true),
            heartbeat: Heartbeat::Stale,
        }
    }

    #[test]
    fn declared_agents_no_sweep_checked_are_listed_as_not_yet_checked() {
        let state = PoolState::default();
        let declared: BTreeSet<String> = ["c/a".to_string(), "gw".to_string()].into();
        let rows = rows(&state, &declared);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == NOT_CHECKED && !r.healthy()));
        assert_eq!(rows[0].line(), "not yet checked c/a");
    }

    #[test]
    fn a_frozen_agent_shows_the_state_its_check_found_with_age_and_why() {
        let mut state = PoolState::default();
        let key: Arc<str> = Arc::from("c/a");
        state.records.insert(key.clone(), AgentRecord::default());
        let (at, rec, _) = state.records.take(&key).unwrap();
        let seen = Sighting::new(
            1_800_000_000.0,
            State::Dead,
            Why::HeartbeatStale,
            &probe(),
            Some(72.0),
        )
        .frozen();
        state.records.put(at, &key, rec, seen);
        let rows = rows(&state, &BTreeSet::new());
        let r = &rows[0];
        assert_eq!(r.state, "dead", "not the untouched record's unknown");
        assert!(r.frozen);
        assert_eq!(r.heartbeat_age, Some(72.0));
        assert_eq!(r.process_alive, Some(true));
        assert_eq!(r.gateway_alive, None);
        assert_eq!(r.last_checked, Some(1_800_000_000.0));
        assert_eq!(
            r.line(),
            "dead            c/a  heartbeat 72 s ago  process up  checked 2027-01-15 08:00:00 UTC  attempts 0  why: cell frozen (reported, never revived): heartbeat stale: last beat 72 s ago"
        );
    }

    #[test]
    fn a_corrupt_heartbeat_is_named_with_its_file_and_field() {
        let mut state = PoolState::default();
        let key: Arc<str> = Arc::from("c/a");
        state.records.insert(key.clone(), AgentRecord::default());
        let (at, mut rec, _) = state.records.take(&key).unwrap();
        rec.state = State::Dead;
        let seen = Sighting::new(5.0, State::Dead, Why::HeartbeatCorrupt, &probe(), None);
        state.records.put(at, &key, rec, seen);
        let words = "corrupt heartbeat: /x/a.json: field `timestamp`: bad";
        state.reasons.insert("c/a".into(), words.into());
        let r = &rows(&state, &BTreeSet::new())[0];
        assert_eq!(r.reason.as_deref(), Some(words));
        assert!(r.line().contains("  no heartbeat  "), "{}", r.line());
    }

    #[test]
    fn a_record_from_before_sightings_keeps_its_state() {
        let mut state = PoolState::default();
        let rec = AgentRecord {
            state: State::Escalated,
            first_seen: Some(10.0),
            ..AgentRecord::default()
        };
        state.records.insert("c/a", rec);
        let r = &rows(&state, &["c/a".to_string()].into())[0];
        assert_eq!(r.state, "escalated");
        assert_eq!(r.last_checked, None, "when is not known");
        assert_eq!(r.line(), "escalated       c/a");
    }
}
