//! The heartbeat documents (docs/SPEC.md §1.2 and §3.1) and the agent-side writer.

use std::path::{Path, PathBuf};

use nexus_stdx::{boot_id, now_epoch, write_atomic};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

/// Who wrote a document and how many times: `seq` grows by one on every
/// write to the same file, `boot_id` is the kernel's boot id. Two reads with
/// the same `seq` mean the writer did not write in between; a new `boot_id`
/// means the machine rebooted. See [`Progress::between`](crate::Progress::between).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterStamp {
    /// Write counter for this file, starting at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id` of the writing machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl WriterStamp {
    /// The stamp for the write after `previous` (seq + 1, this boot).
    pub fn next(previous: Option<u64>) -> WriterStamp {
        WriterStamp {
            seq: Some(previous.unwrap_or(0).saturating_add(1)),
            boot_id: boot_id().map(str::to_owned),
        }
    }
}

/// The agent heartbeat (docs/SPEC.md §1.2): written by an agent at the end of every
/// think cycle. Unknown fields are kept in `extra` and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    /// Unix epoch seconds; the only field liveness logic uses.
    pub timestamp: f64,
    /// PID of the agent process; the writer's own unless the caller sets one.
    pub pid: u32,
    /// Think-cycle counter.
    pub cycle: u64,
    /// Model identifier, free text (quoted in watchdog messages).
    pub model: String,
    /// What the agent is doing, e.g. `"thinking"`.
    pub status: String,
    /// The agent's name (per-agent cell heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The mission cell the agent lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_uuid: Option<String>,
    /// Write counter and boot id.
    #[serde(flatten)]
    pub stamp: WriterStamp,
    /// Fields this version does not know; preserved on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How the last run of a cron job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CronStatus {
    /// The job succeeded (`timestamp` is this run).
    Ok,
    /// The job failed (`timestamp` still names the last success, if any).
    Failed,
    /// A run started (`started_at`) and has not reported its end yet; if it
    /// never does, the run wrapper died or the job hangs.
    Running,
}

/// The canonical `<job>.last` record (docs/SPEC.md §3.1), extended with what a run
/// wrapper knows.
///
/// `timestamp` always means *the last successful completion*: a failed run
/// leaves it where it was, so every reader that only knows the seed format
/// still sees a failing job go stale. `None` means the job has never
/// succeeded (readers treat a missing timestamp as epoch 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronRecord {
    /// The job name (the file stem is authoritative).
    pub job: String,
    /// Epoch seconds of the last successful completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// How often the job is expected to succeed.
    pub interval_seconds: u64,
    /// The process that wrote the record.
    pub pid: u32,
    /// Host name of the machine that ran the job, or the host a pushed run names.
    pub host: String,
    /// Outcome of the most recent run.
    pub status: CronStatus,
    /// Epoch seconds when the most recent run started (run wrapper only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// Epoch seconds when the most recent run ended, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    /// Wall time of the most recent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Exit code of the most recent run (128 + signal when killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Write counter and boot id.
    #[serde(flatten)]
    pub stamp: WriterStamp,
    /// Fields this version does not know; preserved on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AgentHeartbeat {
    /// `$NEXUS_HEARTBEAT_PATH`, else `$HOME/.nexus/heartbeat.json`, else
    /// `.nexus/heartbeat.json` relative to the working directory.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("NEXUS_HEARTBEAT_PATH").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
        home.map(PathBuf::from)
            .unwrap_or_default()
            .join(".nexus/heartbeat.json")
    }
}

/// Reads the `seq` of an existing document, if it has one.
pub(crate) fn previous_seq(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let v: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    v.get("seq")?.as_u64()
}

/// Writes agent heartbeats to one file, counting `seq` across calls.
///
/// ```no_run
/// let mut hb = nexus_heartbeat::HeartbeatWriter::new("/tmp/hb.json".into());
/// for cycle in 1.. {
///     // ... think ...
///     if let Err(e) = hb.beat(cycle, "timmy:v0.1-q4", "thinking") {
///         eprintln!("heartbeat: {e}");
///     }
/// #   break;
/// }
/// ```
#[derive(Debug, Clone)]
pub struct HeartbeatWriter {
    path: PathBuf,
    seq: Option<u64>,
    durable: bool,
    pid: u32,
    agent: Option<String>,
    cell_uuid: Option<String>,
}

impl HeartbeatWriter {
    /// A writer for `path`; `seq` continues from the file's current value.
    /// Durable (fsync) by default.
    pub fn new(path: PathBuf) -> HeartbeatWriter {
        let seq = previous_seq(&path);
        HeartbeatWriter {
            path,
            seq,
            durable: true,
            pid: std::process::id(),
            agent: None,
            cell_uuid: None,
        }
    }

    /// Skip the fsyncs (faster; a power cut may lose the newest beat).
    pub fn durable(mut self, durable: bool) -> HeartbeatWriter {
        self.durable = durable;
        self
    }

    /// Report this PID instead of the current process's (a shell script
    /// calling the CLI reports itself, not the CLI).
    pub fn pid(mut self, pid: u32) -> HeartbeatWriter {
        self.pid = pid;
        self
    }

    /// Set the `agent` and `cell_uuid` fields of cell heartbeats.
    pub fn cell(mut self, agent: Option<String>, cell_uuid: Option<String>) -> HeartbeatWriter {
        self.agent = agent;
        self.cell_uuid = cell_uuid;
        self
    }

    /// The file this writer replaces.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one heartbeat with the current time.
    pub fn beat(&mut self, cycle: u64, model: &str, status: &str) -> Result<AgentHeartbeat, Error> {
        let doc = AgentHeartbeat {
            timestamp: now_epoch(),
            pid: self.pid,
            cycle,
            model: model.to_string(),
            status: status.to_string(),
            agent: self.agent.clone(),
            cell_uuid: self.cell_uuid.clone(),
            stamp: WriterStamp::next(self.seq),
            extra: Map::new(),
        };
        self.write(&doc)?;
        Ok(doc)
    }

    /// Writes `doc` as given (its `stamp` is replaced by the next one).
    pub fn write(&mut self, doc: &AgentHeartbeat) -> Result<(), Error> {
        let mut doc = doc.clone();
        doc.stamp = WriterStamp::next(self.seq);
        let bytes = serde_json::to_vec(&doc).map_err(|source| Error::Serialise {
            path: self.path.clone(),
            source,
        })?;
        write_atomic(&self.path, &bytes, self.durable)?;
        self.seq = doc.stamp.seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn extra_map() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map("x_[a-z]{1,8}", any::<i64>(), 0..4).prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect::<Map<_, _>>()
        })
    }

    fn stamp() -> impl Strategy<Value = WriterStamp> {
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of("[0-9a-f-]{36}"),
        )
            .prop_map(|(seq, boot_id)| WriterStamp { seq, boot_id })
    }

    fn finite() -> impl Strategy<Value = f64> {
        -1e12f64..1e12f64
    }

    proptest! {
        #[test]
        fn agent_heartbeat_round_trips(
            timestamp in finite(), pid in any::<u32>(), cycle in any::<u64>(),
            model in ".{0,20}", status in ".{0,12}",
            agent in proptest::option::of("[a-z]{1,10}"),
            cell_uuid in proptest::option::of("[0-9a-f-]{36}"),
            stamp in stamp(), extra in extra_map(),
        ) {
            let doc = AgentHeartbeat { timestamp, pid, cycle, model, status, agent, cell_uuid, stamp, extra };
            let text = serde_json::to_string(&doc).unwrap();
            let back: AgentHeartbeat = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, doc);
        }

        #[test]
        fn cron_record_round_trips(
            job in "[a-z_]{1,16}", timestamp in proptest::option::of(finite()),
            interval_seconds in any::<u64>(), pid in any::<u32>(), host in "[a-z]{1,12}",
            ok in any::<bool>(), started_at in proptest::option::of(finite()),
            finished_at in proptest::option::of(finite()),
            duration_seconds in proptest::option::of(0f64..1e6),
            exit_code in proptest::option::of(any::<i32>()),
            stamp in stamp(), extra in extra_map(),
        ) {
            let doc = CronRecord {
                job, timestamp, interval_seconds, pid, host,
                status: if ok { CronStatus::Ok } else { CronStatus::Failed },
                started_at, finished_at, duration_seconds, exit_code, stamp, extra,
            };
            let text = serde_json::to_string(&doc).unwrap();
            let back: CronRecord = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, doc);
        }

        #[test]
        fn writer_stamp_round_trips(stamp in stamp()) {
            let text = serde_json::to_string(&stamp).unwrap();
            let back: WriterStamp = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, stamp);
        }
    }

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let text = r#"{"timestamp":1.5,"pid":7,"cycle":3,"model":"m","status":"thinking","mood":"calm","nested":{"a":[1,2]}}"#;
        let doc: AgentHeartbeat = serde_json::from_str(text).unwrap();
        assert_eq!(doc.extra["mood"], "calm");
        let again = serde_json::to_value(&doc).unwrap();
        assert_eq!(again["nested"]["a"][1], 2);
    }

    #[test]
    fn writer_counts_seq_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hb.json");
        let mut w = HeartbeatWriter::new(p.clone()).durable(false);
        assert_eq!(w.beat(1, "m", "thinking").unwrap().stamp.seq, Some(1));
        assert_eq!(w.beat(2, "m", "thinking").unwrap().stamp.seq, Some(2));
        // A restarted agent continues the count from the file.
        let doc = HeartbeatWriter::new(p.clone())
            .beat(3, "m", "thinking")
            .unwrap();
        assert_eq!(doc.stamp.seq, Some(3));
        assert_eq!(doc.pid, std::process::id());
        let on_disk: AgentHeartbeat = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(on_disk, doc);
    }
}
