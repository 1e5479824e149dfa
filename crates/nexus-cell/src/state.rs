//! `.lazarus/state.json` (docs/SPEC.md §5.2): the daemon's per-cell memory, so
//! revive counters survive restarts (defect L2). Written **only** by the
//! daemon, atomically; everything else reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::CellId;

/// The daemon's view of one agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentHealth {
    /// Whether the last poll found a fresh heartbeat.
    pub healthy: bool,
    /// Epoch seconds of the last heartbeat seen (`None`: never).
    #[serde(default)]
    pub last_seen: Option<f64>,
    /// Revive attempts so far in this session.
    #[serde(default)]
    pub revive_count: u32,
    /// Epoch seconds when the daemon first saw the agent unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<f64>,
    /// Whether a human has been asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escalated: bool,
    /// The open Gitea issue about this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_issue: Option<u64>,
    /// Fields this version does not know; preserved on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    /// Cell this state belongs to; equals the manifest's `uuid`.
    pub cell_uuid: CellId,
    /// PID of the daemon process that last wrote the file.
    pub daemon_pid: u32,
    /// Epoch seconds of the last poll.
    pub last_poll: f64,
    /// Per agent, by name.
    #[serde(default)]
    pub agent_health: BTreeMap<String, AgentHealth>,
    /// Fields this version does not know; preserved on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn health() -> impl Strategy<Value = AgentHealth> {
        (
            any::<bool>(),
            proptest::option::of(0f64..1e10),
            any::<u32>(),
            proptest::option::of(0f64..1e10),
            any::<bool>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(
                |(healthy, last_seen, revive_count, unhealthy_since, escalated, open_issue)| {
                    AgentHealth {
                        healthy,
                        last_seen,
                        revive_count,
                        unhealthy_since,
                        escalated,
                        open_issue,
                        extra: Map::new(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn state_round_trips(
            pid in any::<u32>(), last_poll in 0f64..1e10,
            agents in proptest::collection::btree_map("[a-z]{1,8}", health(), 0..5),
            extra in proptest::collection::btree_map("x_[a-z]{1,4}", any::<i64>(), 0..3),
        ) {
            let s = DaemonState {
                cell_uuid: CellId::new_v4(),
                daemon_pid: pid,
                last_poll,
                agent_health: agents,
                extra: extra.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            };
            let text = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<DaemonState>(&text).unwrap(), s);
        }
    }

    #[test]
    fn reads_the_seed_shape() {
        let s: DaemonState = serde_json::from_str(
            r#"{"cell_uuid":"1b4e28ba-2fa1-41d2-883f-0016d3cca427","daemon_pid":7,"last_poll":1.5,
                "agent_health":{"allegro":{"healthy":false,"last_seen":1.0,"revive_count":2}}}"#,
        )
        .unwrap();
        assert_eq!(s.agent_health["allegro"].revive_count, 2);
    }
}
