//! Mission-cell event logs written by several processes at once.

use nexus_e2e::Run;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use nexus_cell::{EventKind, EventLog};
use proptest::prelude::*;

/// Starts `writers` appender processes on one log, releases them at once,
/// and checks that every line of every writer is there exactly once,
/// whole, and in each writer's order.
fn check_concurrent_appends(writers: usize, count: u32, pad: usize, torn_start: bool) {
    let exe = nexus_e2e::bin("cell-event-appender");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    if torn_start {
        // A previous writer died mid-line.
        std::fs::write(&path, b"{\"ts\":\"2026-01-01T00:00:00Z\",\"ev").unwrap();
    }
    let mut children: Vec<_> = (0..writers)
        .map(|w| {
            Command::new(&exe)
                .arg(&path)
                .arg(w.to_string())
                .arg(count.to_string())
                .arg(pad.to_string())
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    for c in children {
        let o = c.run().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let log = EventLog::read(&path).unwrap();
    let want_skipped = usize::from(torn_start);
    assert_eq!(log.skipped.len(), want_skipped, "{:?}", log.skipped);
    let mut per_writer: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (_, e) in &log.events {
        let EventKind::Heartbeat { agent, status } = &e.kind else {
            panic!("unexpected event {e:?}");
        };
        let (i, filler) = status.split_once(':').unwrap();
        assert_eq!(filler.len(), pad, "line of {agent} cut or merged");
        assert!(filler.bytes().all(|b| b == b'x'));
        per_writer
            .entry(agent.to_string())
            .or_default()
            .push(i.parse().unwrap());
    }
    assert_eq!(per_writer.len(), writers);
    let expected: Vec<u32> = (0..count).collect();
    for (agent, seen) in per_writer {
        assert_eq!(
            seen, expected,
            "{agent}: lines lost, duplicated or reordered"
        );
    }
    assert_eq!(log.events.len(), writers * count as usize);
}

proptest! {
    // Each case spawns real processes: few cases, bounded sizes.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn prop_concurrent_processes_append_every_line_exactly_once(
        writers in 2usize..6,
        count in 1u32..150,
        pad in prop_oneof![0usize..64, 4000usize..9000],
        torn_start in any::<bool>(),
    ) {
        check_concurrent_appends(writers, count, pad, torn_start);
    }
}

#[test]
fn many_writers_with_lines_larger_than_pipe_buf() {
    check_concurrent_appends(6, 300, 16 * 1024, false);
}

/// An agent beating with `nexus-heartbeat` (as its revive command would
/// run it: in the workspace, with LAZARUS_CELL_UUID set) is seen fresh by
/// `mission-cell show`; an agent that never beat is missing.
/// Runs the real `mission-cell` on the cells under `root`; it must succeed.
pub(crate) fn mission_cell(root: &Path, args: &[&str]) -> String {
    let o = Command::new(nexus_e2e::bin("mission-cell"))
        .env_remove("MISSION_CELLS_ROOT")
        .arg("--root")
        .arg(root)
        .args(args)
        .run()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn mission_cell_sees_heartbeats_written_by_the_heartbeat_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("missions");
    let cell = |args: &[&str]| mission_cell(&root, args);
    let id = cell(&["create", "--mission", "e2e"]).trim().to_string();
    let hb = root.join(&id).join(".lazarus/heartbeats/allegro.json");
    cell(&[
        "join",
        &id,
        "--agent",
        "allegro",
        "--role",
        "developer",
        "--",
        nexus_e2e::bin("nexus-heartbeat").to_str().unwrap(),
        "beat",
        "--agent",
        "allegro",
        "--status",
        "thinking",
        "--path",
        hb.to_str().unwrap(),
    ]);
    cell(&["join", &id, "--agent", "ezra", "--role", "reviewer"]);

    // Revive allegro the way the daemon will.
    let store = nexus_cell::CellStore::new(&root);
    let c = store.open_str(&id).unwrap();
    let agent = nexus_cell::AgentName::new("allegro").unwrap();
    let status = c.revive_command(&agent).unwrap().unwrap().status().unwrap();
    assert!(status.success());

    let v: serde_json::Value = serde_json::from_str(&cell(&["show", &id, "--json"])).unwrap();
    assert_eq!(v["heartbeats"][0]["agent"], "allegro");
    assert_eq!(v["heartbeats"][0]["state"], "fresh");
    assert_eq!(v["heartbeats"][1]["state"], "missing");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&hb).unwrap()).unwrap();
    assert_eq!(
        doc["cell_uuid"],
        id.as_str(),
        "LAZARUS_CELL_UUID reached the agent"
    );
}
