//! `logs/events.jsonl` (docs/SPEC.md §5.2): one JSON object per line, each with
//! `ts` (ISO-8601 Z) and `event`, appended by many processes at once.
//!
//! Appends are atomic: the line is built in memory and written with one
//! `write(2)` on an `O_APPEND` descriptor while holding an exclusive
//! `flock`, then `fdatasync`ed. A writer that finds the file not ending in a
//! newline (a crash mid-line) starts its line with one, so the torn fragment
//! stays a single bad line and the new one is intact. A write that fails
//! part-way (a full disk) is cut back off, so a failed append leaves the
//! file as it was. Readers skip and report bad lines; they never fail on
//! them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AgentName, Error, EventError, Role, fsx};

/// Lines longer than this are not events; readers skip them unparsed.
pub const MAX_LINE: usize = 1 << 20;

/// What happened. Serialised flat next to `ts`, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// `provision`: the cell directory and manifest were written (the log's first line).
    CellCreated {
        /// Who created it.
        by: String,
        /// The new cell's UUID, hyphenated lowercase (same as the manifest's `uuid`).
        uuid: Uuid,
    },
    /// The first agent joined: `provision -> active`, or a frozen cell resumed.
    CellActivated,
    /// An agent was added to the manifest's `agents` list.
    AgentJoined {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// Role it joined with, from the join request.
        role: Role,
    },
    /// An agent was removed from the manifest's `agents` list.
    AgentLeft {
        /// Agent name, as it was in the cell manifest's `agents`.
        agent: AgentName,
    },
    /// An agent reported in (logged by agents that want an audit trail).
    Heartbeat {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// Free-form status as the agent reported it (e.g. `thinking`).
        status: String,
    },
    /// The daemon saw a stale heartbeat.
    AgentStale {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// Heartbeat age in seconds.
        age: f64,
    },
    /// The daemon declared the agent dead.
    AgentDead {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// Seconds since the last heartbeat.
        age: f64,
    },
    /// The daemon started an agent that was not running when it first met
    /// it (its first start, not a revive).
    AgentStarted {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
    },
    /// The daemon launched the agent's revive command.
    ReviveAttempt {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// Attempt number, from 1.
        attempt: u32,
        /// Attempts allowed before escalating.
        max: u32,
    },
    /// The revive command was spawned (the agent is not yet known to be healthy).
    ReviveSucceeded {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// PID of the spawned revive command.
        pid: u32,
    },
    /// Revives are exhausted, refused by policy or impossible: a human is asked.
    ReviveEscalated {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// Human-readable cause (e.g. revives exhausted); may be absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A dead agent's heartbeat is fresh again.
    AgentRecovered {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// How long it was down.
        down_seconds: f64,
    },
    /// `active -> frozen`: paused; its agents are still shown but never revived.
    CellFrozen,
    /// `active | frozen -> archived`: mission complete; the cell is kept read-only.
    CellArchived,
    /// The cell is being torn down (the last line before removal).
    CellDestroyed,
    /// A checkpoint was written to `checkpoints/<checkpoint>`.
    CheckpointCreated {
        /// File name under `checkpoints/`, e.g. `<UTC timestamp>.tar.gz`.
        checkpoint: String,
    },
    /// The workspace was restored from `checkpoints/<checkpoint>`.
    CellRestored {
        /// File name under `checkpoints/`, e.g. `<UTC timestamp>.tar.gz`.
        checkpoint: String,
    },
    /// A human acted on an agent from the status page (approve, deny,
    /// retry, acknowledge), and what came of it.
    HumanAction {
        /// Agent name, as in the cell manifest's `agents`.
        agent: AgentName,
        /// `approve`, `deny`, `retry` or `acknowledge`.
        action: String,
        /// Who: `the status page (loopback)`.
        by: String,
        /// `done`, or why it was refused.
        outcome: String,
    },
    /// An event kind this version does not know (read only; kept whole).
    #[serde(skip)]
    Other {
        /// The `event` value.
        event: String,
        /// Every other field.
        fields: Map<String, Value>,
    },
}

/// Every `event` value [`EventKind`] knows, for filters and readers.
pub const EVENT_KINDS: &[&str] = &[
    "cell_created",
    "cell_activated",
    "agent_joined",
    "agent_left",
    "heartbeat",
    "agent_stale",
    "agent_dead",
    "agent_started",
    "revive_attempt",
    "revive_succeeded",
    "revive_escalated",
    "agent_recovered",
    "cell_frozen",
    "cell_archived",
    "cell_destroyed",
    "checkpoint_created",
    "cell_restored",
    "human_action",
];

impl EventKind {
    /// The `event` value.
    pub fn name(&self) -> String {
        match self {
            EventKind::Other { event, .. } => event.clone(),
            known => serde_json::to_value(known)
                .ok()
                .and_then(|v| v.get("event")?.as_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When (UTC).
    pub ts: OffsetDateTime,
    /// The `event` tag and its fields.
    pub kind: EventKind,
}

impl Event {
    /// Stamped with the current UTC time.
    pub fn now(kind: EventKind) -> Event {
        Event {
            ts: crate::now_utc(),
            kind,
        }
    }

    /// The line's JSON object: `ts` (RFC 3339), `event` and the kind's own fields.
    pub fn to_value(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let ts = time::serde::rfc3339::serialize(&self.ts, serde_json::value::Serializer)?;
        let mut out = Map::new();
        out.insert("ts".into(), ts);
        match &self.kind {
            EventKind::Other { event, fields } => {
                out.insert("event".into(), Value::String(event.clone()));
                for (k, v) in fields {
                    if k != "ts" && k != "event" {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            known => {
                if let Value::Object(m) = serde_json::to_value(known)? {
                    out.extend(m);
                }
            }
        }
        Ok(out)
    }

    /// Parses one line; the error names the field.
    pub fn parse(line: &[u8]) -> Result<Event, EventError> {
        let mut map: Map<String, Value> = serde_json::from_slice(line).map_err(EventError::Json)?;
        let ts = match map.remove("ts") {
            None => return Err(EventError::Missing("ts")),
            Some(v) => time::serde::rfc3339::deserialize(v).map_err(EventError::Time)?,
        };
        let name = match map.get("event") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(EventError::NotAString),
            None => return Err(EventError::Missing("event")),
        };
        let kind = if EVENT_KINDS.contains(&name.as_str()) {
            serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
                let path = e.path().to_string();
                EventError::Fields {
                    event: name,
                    field: (path != ".").then_some(path),
                    source: e.into_inner(),
                }
            })?
        } else {
            map.remove("event");
            EventKind::Other {
                event: name,
                fields: map,
            }
        };
        Ok(Event { ts, kind })
    }
}

impl Serialize for Event {
    /// `ts` and `event` first (for people reading the log), then the
    /// event's fields.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut fields = self.to_value().map_err(serde::ser::Error::custom)?;
        let mut map = s.serialize_map(Some(fields.len()))?;
        for key in ["ts", "event"] {
            if let Some(v) = fields.remove(key) {
                map.serialize_entry(key, &v)?;
            }
        }
        for (k, v) in &fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let v = Value::deserialize(d)?;
        let bytes = serde_json::to_vec(&v).map_err(serde::de::Error::custom)?;
        Event::parse(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Appends one event to `path` atomically (see the module docs). The file
/// is created (mode 0644) if missing; a symlink in its place is refused.
pub fn append_event(path: &Path, event: &Event) -> Result<(), Error> {
    let mut line = serde_json::to_vec(event)
        .map_err(|e| Error::corrupt(path, "event", format!("cannot serialise: {e}")))?;
    line.push(b'\n');
    append_line(path, &line)
}

/// Appends `line` (which must end in `\n`) under the lock.
pub(crate) fn append_line(path: &Path, line: &[u8]) -> Result<(), Error> {
    let mut file = fsx::open_append(path, 0o644)?;
    file.lock().map_err(Error::io(path, "lock"))?;
    let result = (|| {
        let len = file.metadata().map_err(Error::io(path, "stat"))?.len();
        let mut buf;
        let bytes: &[u8] = if len > 0 && !ends_with_newline(&file, len) {
            // A writer died mid-line: close its fragment first.
            buf = Vec::with_capacity(line.len() + 1);
            buf.push(b'\n');
            buf.extend_from_slice(line);
            &buf
        } else {
            line
        };
        if let Err(e) = file.write_all(bytes) {
            // A full disk can take part of the line: cut it back off (we
            // hold the lock), so the file still ends in a whole line.
            let _ = file.set_len(len);
            return Err(Error::io(path, "append")(e));
        }
        file.sync_data().map_err(Error::io(path, "fsync"))
    })();
    // Closing the descriptor releases the lock too; unlock explicitly so a
    // slow close cannot delay the next writer.
    let _ = file.unlock();
    result
}

fn ends_with_newline(file: &File, len: u64) -> bool {
    let mut last = [0u8; 1];
    matches!(file.read_at(&mut last, len - 1), Ok(1) if last[0] == b'\n')
}

/// A line of `events.jsonl` a reader skipped: bad JSON or fields, overlong, or torn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: usize,
    /// Why it was skipped (naming the field where there is one).
    pub reason: String,
    /// The last line, without a newline: a writer crashed mid-line.
    pub torn: bool,
}

/// What a read of `events.jsonl` found.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    /// The log file, as passed to [`EventLog::read`].
    pub path: PathBuf,
    /// Every whole, valid event, in file order, with its line number.
    pub events: Vec<(usize, Event)>,
    /// Lines that were skipped.
    pub skipped: Vec<SkippedLine>,
}

impl EventLog {
    /// Reads the whole log. A missing file is an empty log; bad lines are
    /// skipped and listed in `skipped`, never an error.
    pub fn read(path: &Path) -> Result<EventLog, Error> {
        let mut log = EventLog {
            path: path.to_path_buf(),
            ..EventLog::default()
        };
        let file = match fsx::open_read(path) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(log);
            }
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            let got = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(Error::io(path, "read"))?;
            if got == 0 {
                break;
            }
            n += 1;
            let complete = buf.last() == Some(&b'\n');
            if !complete && buf.len() > MAX_LINE {
                // Skip the rest of an overlong line.
                let mut sink = Vec::new();
                loop {
                    sink.clear();
                    let more = (&mut reader)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut sink)
                        .map_err(Error::io(path, "read"))?;
                    if more == 0 || sink.last() == Some(&b'\n') {
                        break;
                    }
                }
                log.skipped.push(SkippedLine {
                    line: n,
                    reason: format!("line longer than {MAX_LINE} bytes"),
                    torn: false,
                });
                continue;
            }
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match Event::parse(text) {
                Ok(ev) => log.events.push((n, ev)),
                Err(e) => log.skipped.push(SkippedLine {
                    line: n,
                    reason: e.to_string(),
                    torn: !complete,
                }),
            }
        }
        Ok(log)
    }

    /// The last `n` events whose `event` is in `kinds` (all when empty).
    pub fn tail(&self, n: usize, kinds: &[String]) -> Vec<&Event> {
        let mut out: Vec<&Event> = self
            .events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| kinds.is_empty() || kinds.contains(&e.kind.name()))
            .collect();
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
        out
    }

    /// One line per skipped line, naming the file (for warnings).
    pub fn problems(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| {
                format!(
                    "{}: line {}: {}{}",
                    self.path.display(),
                    s.line,
                    if s.torn {
                        "torn last line (a writer stopped mid-line): "
                    } else {
                        ""
                    },
                    s.reason
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::{agent_name, utc_time};
    use proptest::prelude::*;

    #[test]
    fn a_bad_line_names_the_field() {
        let says = |line: &str| Event::parse(line.as_bytes()).unwrap_err().to_string();
        assert!(says("{\"ts\":").starts_with("invalid JSON: "));
        assert_eq!(says("{\"event\":\"x\"}"), "field `ts` is missing");
        assert!(
            says("{\"ts\":\"yesterday\",\"event\":\"x\"}").starts_with("field `ts`: "),
            "{}",
            says("{\"ts\":\"yesterday\",\"event\":\"x\"}")
        );
        let ts = "\"ts\":\"2026-01-01T00:00:00Z\"";
        assert_eq!(says(&format!("{{{ts}}}")), "field `event` is missing");
        assert_eq!(
            says(&format!("{{{ts},\"event\":7}}")),
            "field `event` is not a string"
        );
        let e = says(&format!(
            "{{{ts},\"event\":\"agent_joined\",\"agent\":\"a1\",\"role\":\"pilot\"}}"
        ));
        assert!(
            e.starts_with("event agent_joined: unknown variant `pilot`"),
            "{e}"
        );
        let e = says(&format!("{{{ts},\"event\":\"agent_left\"}}"));
        assert!(
            e.starts_with("event agent_left: missing field `agent`"),
            "{e}"
        );
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        let f = || -1e9f64..1e9;
        prop_oneof![
            ("[a-z]{0,8}", any::<[u8; 16]>()).prop_map(|(by, b)| EventKind::CellCreated {
                by,
                uuid: Uuid::from_bytes(b)
            }),
            Just(EventKind::CellActivated),
            (agent_name(), proptest::sample::select(Role::ALL.to_vec()))
                .prop_map(|(agent, role)| EventKind::AgentJoined { agent, role }),
            agent_name().prop_map(|agent| EventKind::AgentLeft { agent }),
            (agent_name(), ".{0,10}")
                .prop_map(|(agent, status)| EventKind::Heartbeat { agent, status }),
            (agent_name(), f()).prop_map(|(agent, age)| EventKind::AgentStale { agent, age }),
            (agent_name(), f()).prop_map(|(agent, age)| EventKind::AgentDead { agent, age }),
            agent_name().prop_map(|agent| EventKind::AgentStarted { agent }),
            (agent_name(), any::<u32>(), any::<u32>()).prop_map(|(agent, attempt, max)| {
                EventKind::ReviveAttempt {
                    agent,
                    attempt,
                    max,
                }
            }),
            (agent_name(), any::<u32>())
                .prop_map(|(agent, pid)| EventKind::ReviveSucceeded { agent, pid }),
            (agent_name(), proptest::option::of(".{0,10}"))
                .prop_map(|(agent, reason)| EventKind::ReviveEscalated { agent, reason }),
            (agent_name(), f()).prop_map(|(agent, down_seconds)| EventKind::AgentRecovered {
                agent,
                down_seconds
            }),
            Just(EventKind::CellFrozen),
            Just(EventKind::CellArchived),
            Just(EventKind::CellDestroyed),
            "[0-9TZ.]{1,20}".prop_map(|checkpoint| EventKind::CheckpointCreated { checkpoint }),
            "[0-9TZ.]{1,20}".prop_map(|checkpoint| EventKind::CellRestored { checkpoint }),
            (agent_name(), "[a-z]{1,10}", ".{0,10}", ".{0,10}").prop_map(
                |(agent, action, by, outcome)| EventKind::HumanAction {
                    agent,
                    action,
                    by,
                    outcome
                }
            ),
            (
                "zz_[a-z]{1,8}",
                proptest::collection::btree_map("[a-y]{1,6}", any::<i64>(), 0..3)
            )
                .prop_map(|(event, m)| EventKind::Other {
                    event,
                    fields: m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
                }),
        ]
    }

    proptest! {
        #[test]
        fn events_round_trip(ts in utc_time(), kind in kind()) {
            let ev = Event { ts, kind };
            let line = serde_json::to_string(&ev).unwrap();
            prop_assert!(!line.contains('\n'));
            let back = Event::parse(line.as_bytes()).unwrap();
            prop_assert_eq!(&back, &ev);
            let back: Event = serde_json::from_str(&line).unwrap();
            prop_assert_eq!(back, ev);
        }
    }

    #[test]
    fn every_known_kind_is_listed() {
        let a = AgentName::new("a").unwrap();
        let samples = [
            EventKind::CellCreated {
                by: "x".into(),
                uuid: Uuid::nil(),
            },
            EventKind::CellActivated,
            EventKind::AgentJoined {
                agent: a.clone(),
                role: Role::Observer,
            },
            EventKind::AgentLeft { agent: a.clone() },
            EventKind::Heartbeat {
                agent: a.clone(),
                status: "s".into(),
            },
            EventKind::AgentStale {
                agent: a.clone(),
                age: 1.0,
            },
            EventKind::AgentDead {
                agent: a.clone(),
                age: 1.0,
            },
            EventKind::AgentStarted { agent: a.clone() },
            EventKind::ReviveAttempt {
                agent: a.clone(),
                attempt: 1,
                max: 3,
            },
            EventKind::ReviveSucceeded {
                agent: a.clone(),
                pid: 1,
            },
            EventKind::ReviveEscalated {
                agent: a.clone(),
                reason: None,
            },
            EventKind::AgentRecovered {
                agent: a.clone(),
                down_seconds: 1.0,
            },
            EventKind::CellFrozen,
            EventKind::CellArchived,
            EventKind::CellDestroyed,
            EventKind::CheckpointCreated {
                checkpoint: "c".into(),
            },
            EventKind::CellRestored {
                checkpoint: "c".into(),
            },
            EventKind::HumanAction {
                agent: a.clone(),
                action: "retry".into(),
                by: "page".into(),
                outcome: "done".into(),
            },
        ];
        let names: Vec<String> = samples.iter().map(EventKind::name).collect();
        assert_eq!(names, EVENT_KINDS);
    }

    #[test]
    fn the_wire_format_is_flat() {
        let ev = Event {
            ts: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            kind: EventKind::AgentJoined {
                agent: AgentName::new("allegro").unwrap(),
                role: Role::Developer,
            },
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"ts":"2023-11-14T22:13:20Z","event":"agent_joined","agent":"allegro","role":"developer"}"#
        );
    }

    #[test]
    fn reader_skips_and_reports_bad_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let good = |n: u32| {
            serde_json::to_string(&Event::now(EventKind::ReviveAttempt {
                agent: AgentName::new("a").unwrap(),
                attempt: n,
                max: 3,
            }))
            .unwrap()
        };
        let text = format!(
            "{}\nnot json\n\n{{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"agent_left\",\"agent\":\"../x\"}}\n{{\"event\":\"cell_frozen\"}}\n{}\n{{\"ts\":\"2026-01-01T00:0",
            good(1),
            good(2)
        );
        std::fs::write(&p, text).unwrap();
        let log = EventLog::read(&p).unwrap();
        assert_eq!(log.events.len(), 2);
        assert_eq!(log.events[1].0, 6);
        let skipped: Vec<(usize, bool)> = log.skipped.iter().map(|s| (s.line, s.torn)).collect();
        assert_eq!(skipped, [(2, false), (4, false), (5, false), (7, true)]);
        assert!(
            log.skipped[1]
                .reason
                .contains("invalid agent name \"../x\""),
            "{:?}",
            log.skipped[1]
        );
        assert!(log.skipped[2].reason.contains("`ts` is missing"));
        let problems = log.problems();
        assert!(
            problems[3].contains("events.jsonl: line 7: torn last line"),
            "{problems:?}"
        );

        // The next append closes the torn fragment and stays whole.
        append_event(&p, &Event::now(EventKind::CellArchived)).unwrap();
        let log = EventLog::read(&p).unwrap();
        assert_eq!(log.events.len(), 3);
        assert_eq!(log.events[2].1.kind, EventKind::CellArchived);
        assert_eq!(log.skipped.len(), 4);
        assert!(!log.skipped[3].torn, "no longer the last line");
        assert_eq!(log.tail(1, &[]).len(), 1);
        assert_eq!(log.tail(10, &["revive_attempt".into()]).len(), 2);
    }

    #[test]
    fn missing_log_is_empty_and_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        assert!(EventLog::read(&p).unwrap().events.is_empty());
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"").unwrap();
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        let e = append_event(&p, &Event::now(EventKind::CellFrozen)).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"");
    }

    #[test]
    fn threads_appending_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..50 {
                        append_event(
                            p,
                            &Event::now(EventKind::ReviveAttempt {
                                agent: AgentName::new(&format!("t{t}")).unwrap(),
                                attempt: i,
                                max: 50,
                            }),
                        )
                        .unwrap();
                    }
                });
            }
        });
        let log = EventLog::read(&p).unwrap();
        assert!(log.skipped.is_empty(), "{:?}", log.skipped);
        assert_eq!(log.events.len(), 200);
    }
}
