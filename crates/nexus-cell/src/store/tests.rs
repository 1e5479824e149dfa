use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};

use proptest::prelude::*;

use super::*;

fn store() -> (tempfile::TempDir, CellStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = CellStore::new(dir.path().join("missions"));
    (dir, store)
}

fn new_cell(mission: &str) -> NewCell {
    NewCell {
        mission: mission.into(),
        created_by: "tester".into(),
        ..NewCell::default()
    }
}

fn name(s: &str) -> AgentName {
    AgentName::new(s).unwrap()
}

fn join(agent: &str) -> Join {
    Join {
        agent: name(agent),
        role: Role::Developer,
        home: None,
        revive_cmd: None,
        revive_policy: None,
    }
}

fn kinds(cell: &Cell) -> Vec<String> {
    let log = cell.events().unwrap();
    assert!(log.skipped.is_empty(), "{:?}", log.skipped);
    log.events.iter().map(|(_, e)| e.kind.name()).collect()
}

#[test]
fn provision_creates_the_full_layout() {
    let (_t, s) = store();
    let cell = s.provision(new_cell("port the watchdog")).unwrap();
    assert_eq!(cell.dir(), s.root().join(cell.id().to_string()));
    for sub in [
        "workspace",
        "logs",
        "checkpoints",
        "bus/inbox",
        "bus/outbox",
        ".lazarus/heartbeats",
    ] {
        assert!(cell.dir().join(sub).is_dir(), "{sub}");
    }
    let m = cell.manifest();
    assert_eq!(m.status, Status::Provision);
    assert_eq!(m.uuid.uuid().get_version_num(), 4);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cell.manifest_path()).unwrap()).unwrap();
    assert_eq!(on_disk["status"], "provision");
    assert!(on_disk["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(kinds(&cell), ["cell_created"]);
    assert_eq!(s.open(&cell.id()).unwrap(), cell);
    let e = s.provision(new_cell("  ")).unwrap_err();
    assert!(e.is_usage(), "{e}");
    let mut bad = new_cell("m");
    bad.name = Some("x\u{7}y".into());
    let e = s.provision(bad).unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("name: contains a control character"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(s.root()).unwrap().count(),
        1,
        "nothing half-made"
    );
}

#[test]
fn join_leave_and_lifecycle() {
    let (_t, s) = store();
    let id = s.provision(new_cell("m")).unwrap().id();
    let mut j = join("allegro");
    j.revive_cmd = Some(vec!["true".into()]);
    j.revive_policy = Some(RevivePolicy::Ask);
    j.home = Some("/root/wizards/allegro".into());
    let cell = s.join(&id, j.clone()).unwrap();
    assert_eq!(
        cell.manifest().status,
        Status::Active,
        "first join activates"
    );
    assert!(cell.inbox(&name("allegro")).is_dir());
    let e = s.join(&id, j).unwrap_err();
    assert!(matches!(e, Error::AgentExists { .. }), "{e}");
    s.join(&id, join("ezra")).unwrap();

    let e = s.set_status(&id, Status::Provision).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cell {id}: illegal transition active -> provision (from active only: frozen, archived)"
        )
    );
    let e = s.destroy(&id).unwrap_err();
    assert!(
        e.to_string()
            .contains("illegal transition active -> destroyed"),
        "{e}"
    );
    s.set_status(&id, Status::Frozen).unwrap();
    let e = s.join(&id, join("late")).unwrap_err();
    assert_eq!(e.to_string(), format!("cell {id} is frozen: cannot join"));
    let cell = s.leave(&id, &name("ezra")).unwrap();
    assert_eq!(cell.manifest().agents.len(), 1);
    let e = s.leave(&id, &name("ezra")).unwrap_err();
    assert!(matches!(e, Error::AgentNotFound { .. }), "{e}");
    let cell = s.leave(&id, &name("allegro")).unwrap();
    assert!(cell.manifest().agents.is_empty());
    let e = s.set_status(&id, Status::Active).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cell {id} is frozen: cannot activate a cell without agents")
    );
    s.join(&id, join("allegro")).unwrap_err(); // frozen: no joins
    let cell = s.set_status(&id, Status::Archived).unwrap();
    assert_eq!(
        kinds(&cell),
        [
            "cell_created",
            "agent_joined",
            "cell_activated",
            "agent_joined",
            "cell_frozen",
            "agent_left",
            "agent_left",
            "cell_archived"
        ]
    );
    let e = s.set_status(&id, Status::Active).unwrap_err();
    assert!(matches!(e, Error::Transition { .. }), "{e}");
    s.destroy(&id).unwrap();
    assert!(!s.cell_dir(&id).exists());
    assert!(matches!(s.open(&id).unwrap_err(), Error::NotFound { .. }));
}

#[test]
fn join_validates_its_input() {
    let (_t, s) = store();
    let id = s.provision(new_cell("m")).unwrap().id();
    let mut j = join("a");
    j.home = Some("../../etc".into());
    let e = s.join(&id, j).unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("not an absolute path"),
        "{e}"
    );
    let mut j = join("a");
    j.revive_cmd = Some(vec![]);
    assert!(
        s.join(&id, j)
            .unwrap_err()
            .to_string()
            .contains("empty command")
    );
    let mut j = join("a");
    j.revive_cmd = Some(vec!["x\0y".into()]);
    assert!(s.join(&id, j).unwrap_err().to_string().contains("NUL"));
    assert!(s.open(&id).unwrap().manifest().agents.is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8),
    Leave(u8),
    Set(Status),
    Destroy,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Join),
        (0u8..3).prop_map(Op::Leave),
        proptest::sample::select(Status::ALL.to_vec()).prop_map(Op::Set),
        Just(Op::Destroy),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Arbitrary operations on a real cell: every status change on disk is
    /// an edge of the state machine, refused operations change nothing, and
    /// the manifest's agents always match the events.
    #[test]
    fn store_operations_never_reach_an_illegal_state(ops in proptest::collection::vec(op(), 1..24)) {
        let (_t, s) = store();
        let id = s.provision(new_cell("m")).unwrap().id();
        let mut status = Status::Provision;
        for op in ops {
            let before = s.open(&id).ok().map(|c| c.manifest().clone());
            let result = match &op {
                Op::Join(n) => s.join(&id, join(&format!("a{n}"))).map(|_| ()),
                Op::Leave(n) => s.leave(&id, &name(&format!("a{n}"))).map(|_| ()),
                Op::Set(to) => s.set_status(&id, *to).map(|_| ()),
                Op::Destroy => s.destroy(&id),
            };
            let Some(before) = before else {
                // Destroyed: every operation fails and nothing comes back.
                prop_assert!(result.is_err());
                prop_assert!(!s.cell_dir(&id).exists());
                continue;
            };
            match s.open(&id) {
                Ok(cell) => {
                    let now = cell.manifest().status;
                    if now != status {
                        prop_assert!(status.allowed_next().contains(&now), "{status} -> {now} via {op:?}");
                    }
                    if result.is_err() {
                        prop_assert_eq!(cell.manifest(), &before, "a refused {:?} changed the manifest", op);
                    }
                    if now == Status::Active || now == Status::Frozen {
                        prop_assert!(status != Status::Provision || !cell.manifest().agents.is_empty());
                    }
                    let mut members = BTreeMap::new();
                    for (_, e) in cell.events().unwrap().events {
                        match e.kind {
                            EventKind::AgentJoined { agent, .. } => { members.insert(agent, ()); }
                            EventKind::AgentLeft { agent } => { members.remove(&agent); }
                            _ => {}
                        }
                    }
                    let names: Vec<_> = cell.manifest().agents.iter().map(|a| a.name.clone()).collect();
                    prop_assert_eq!(names.len(), members.len());
                    status = now;
                }
                Err(_) => {
                    prop_assert!(matches!(op, Op::Destroy));
                    prop_assert!(result.is_ok());
                    prop_assert!(status == Status::Archived || status == Status::Provision);
                }
            }
        }
    }
}

#[test]
fn hostile_ids_are_refused_before_any_path_is_built() {
    let (_t, s) = store();
    for bad in ["..", "../..", "/etc", "a/../../b", "x\0", "\u{1b}[31m", ""] {
        let e = s.open_str(bad).unwrap_err();
        assert!(matches!(e, Error::Name(_)), "{bad:?}: {e}");
        assert!(e.is_usage());
    }
}

#[test]
fn symlinked_cells_are_refused() {
    let (t, s) = store();
    let real = s.provision(new_cell("m")).unwrap();
    // A copy of a valid cell outside the root, linked in under a new id.
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let id = CellId::new_v4();
    let copy = outside.join(id.to_string());
    std::fs::create_dir(&copy).unwrap();
    let mut m = real.manifest().clone();
    m.uuid = id;
    std::fs::write(copy.join("cell.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    symlink(&copy, s.cell_dir(&id)).unwrap();

    let e = s.open(&id).unwrap_err();
    assert!(matches!(e, Error::Symlink { .. }), "{e}");
    assert!(e.to_string().contains("outside the cells root"), "{e}");
    assert!(s.destroy(&id).is_err());
    assert!(
        copy.join("cell.json").exists(),
        "destroy left the target alone"
    );
    let found = s.discover().unwrap();
    assert_eq!(found.cells.len(), 1);
    assert_eq!(found.skipped.len(), 1);
    assert!(
        found.skipped[0]
            .error
            .to_string()
            .contains("outside the cells root")
    );
}

#[test]
fn symlinks_inside_a_cell_are_refused() {
    let (t, s) = store();
    let cell = s.provision(new_cell("m")).unwrap();
    let id = cell.id();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"do not touch").unwrap();

    // events.jsonl -> outside file: appends are refused, target untouched.
    std::fs::remove_file(cell.events_path()).unwrap();
    symlink(outside.join("secret"), cell.events_path()).unwrap();
    let e = s.join(&id, join("a")).unwrap_err();
    assert!(matches!(e, Error::Symlink { .. }), "{e}");
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"do not touch"
    );
    std::fs::remove_file(cell.events_path()).unwrap();

    // workspace -> outside dir: checkpoint refuses to archive it.
    std::fs::remove_dir(cell.workspace()).unwrap();
    symlink(&outside, cell.workspace()).unwrap();
    let e = s.checkpoint(&id).unwrap_err();
    assert!(matches!(e, Error::Symlink { .. }), "{e}");
    std::fs::remove_file(cell.workspace()).unwrap();
    std::fs::create_dir(cell.workspace()).unwrap();

    // cell.json -> a manifest outside: refused by name.
    let manifest = std::fs::read(cell.manifest_path()).unwrap();
    std::fs::write(outside.join("cell.json"), &manifest).unwrap();
    std::fs::remove_file(cell.manifest_path()).unwrap();
    symlink(outside.join("cell.json"), cell.manifest_path()).unwrap();
    let e = s.open(&id).unwrap_err();
    assert!(matches!(e, Error::Symlink { .. }), "{e}");
    assert!(e.to_string().contains("cell.json"), "{e}");
}

#[test]
fn destroy_leaves_siblings_and_agent_homes_untouched() {
    let (t, s) = store();
    let home = t.path().join("wizards/allegro");
    std::fs::create_dir_all(home.join("notes")).unwrap();
    std::fs::write(home.join("notes/diary"), b"mine").unwrap();
    let sibling = s.root().join("not-a-cell");
    let other = s.provision(new_cell("other")).unwrap();
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("keep"), b"keep").unwrap();

    let cell = s.provision(new_cell("doomed")).unwrap();
    let id = cell.id();
    let mut j = join("allegro");
    j.home = Some(home.clone());
    s.join(&id, j).unwrap();
    // Links from inside the cell to the home, the sibling, the other cell
    // and a file in the home (hard link too): all removed, none followed.
    let ws = cell.workspace();
    symlink(&home, ws.join("home-link")).unwrap();
    symlink(&sibling, ws.join("sibling-link")).unwrap();
    symlink(other.dir(), ws.join("other-cell")).unwrap();
    std::fs::hard_link(home.join("notes/diary"), ws.join("diary-hardlink")).unwrap();
    std::fs::create_dir_all(ws.join("deep/er")).unwrap();
    symlink(&home, ws.join("deep/er/home")).unwrap();

    s.set_status(&id, Status::Archived).unwrap();
    s.destroy(&id).unwrap();

    assert!(!cell.dir().exists());
    assert_eq!(std::fs::read(home.join("notes/diary")).unwrap(), b"mine");
    assert_eq!(std::fs::read(sibling.join("keep")).unwrap(), b"keep");
    assert!(s.open(&other.id()).is_ok());
    let left: Vec<_> = std::fs::read_dir(s.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn destroy_refuses_a_home_inside_the_cell() {
    let (_t, s) = store();
    let cell = s.provision(new_cell("m")).unwrap();
    let mut j = join("a");
    j.home = Some(cell.workspace().join("home"));
    s.join(&cell.id(), j).unwrap();
    s.set_status(&cell.id(), Status::Archived).unwrap();
    let e = s.destroy(&cell.id()).unwrap_err();
    assert!(matches!(e, Error::Unsafe { .. }), "{e}");
    assert!(e.to_string().contains("home of agent a"), "{e}");
    assert!(cell.dir().exists());
}

#[test]
fn corrupt_manifests_are_skipped_with_file_and_field() {
    let (_t, s) = store();
    let good = s.provision(new_cell("good")).unwrap();
    let cases: [(&str, &str, &str); 5] = [
        ("{\"uuid\": ", "uuid", "truncated JSON"),
        ("[1,2]", ".", "invalid type: sequence"),
        ("", ".", "truncated JSON"),
        ("\u{0}\u{1}binary", ".", "expected value"),
        ("{}", ".", "missing field `uuid`"),
    ];
    let mut bad_ids = Vec::new();
    for (text, field, why) in cases {
        let id = s.provision(new_cell("bad")).unwrap().id();
        std::fs::write(s.cell_dir(&id).join("cell.json"), text).unwrap();
        bad_ids.push((id, field, why));
    }
    // Wrong types deep inside name the JSON path.
    let id = s.provision(new_cell("bad")).unwrap().id();
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.cell_dir(&id).join("cell.json")).unwrap()).unwrap();
    v["agents"] = serde_json::json!([{"name": "a", "role": "developer", "joined_at": 5}]);
    std::fs::write(s.cell_dir(&id).join("cell.json"), v.to_string()).unwrap();
    bad_ids.push((id, "agents[0].joined_at", "invalid type"));
    let id = s.provision(new_cell("bad")).unwrap().id();
    v["agents"] = serde_json::json!([{"name": "../../x", "role": "developer", "joined_at": "2026-01-01T00:00:00Z"}]);
    v["uuid"] = serde_json::json!(id);
    std::fs::write(s.cell_dir(&id).join("cell.json"), v.to_string()).unwrap();
    bad_ids.push((id, "agents[0].name", "path separator"));
    // A manifest copied from another cell.
    let id = s.provision(new_cell("bad")).unwrap().id();
    std::fs::copy(good.manifest_path(), s.cell_dir(&id).join("cell.json")).unwrap();
    bad_ids.push((id, "uuid", "does not match the directory name"));
    // A directory without a manifest is not a cell and not a problem.
    std::fs::create_dir(s.root().join("lost+found")).unwrap();

    let found = s.discover().unwrap();
    assert_eq!(found.cells.len(), 1);
    assert_eq!(found.cells[0].id(), good.id());
    assert_eq!(found.skipped.len(), bad_ids.len());
    for (id, field, why) in bad_ids {
        let skip = found
            .skipped
            .iter()
            .find(|k| k.path == s.cell_dir(&id))
            .unwrap();
        let msg = skip.error.to_string();
        let file = s.cell_dir(&id).join("cell.json");
        assert!(
            msg.starts_with(&format!("{}: field `{field}`", file.display())),
            "{msg}"
        );
        assert!(msg.contains(why), "{msg}");
        // Opening it directly gives the same clear error.
        assert_eq!(s.open(&id).unwrap_err().to_string(), msg);
    }
}

#[test]
fn huge_manifest_and_missing_root() {
    let (_t, s) = store();
    assert!(matches!(
        s.discover().unwrap_err(),
        Error::RootMissing { .. }
    ));
    let id = s.provision(new_cell("m")).unwrap().id();
    std::fs::write(
        s.cell_dir(&id).join("cell.json"),
        vec![b' '; MAX_MANIFEST_BYTES as usize + 1],
    )
    .unwrap();
    let e = s.open(&id).unwrap_err();
    assert!(
        e.to_string()
            .contains("cell.json: field `.`: file is larger"),
        "{e}"
    );
}

fn snapshot(dir: &Path) -> BTreeMap<String, (String, Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(
                    rel,
                    ("link".into(), t.to_string_lossy().as_bytes().to_vec(), 0),
                );
            } else if m.is_dir() {
                out.insert(rel, ("dir".into(), vec![], mode));
                stack.push(p);
            } else {
                out.insert(rel, ("file".into(), std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

/// A restore, done or refused, leaves no temporary or replaced workspace.
fn assert_no_restore_leftovers(cell: &Cell) {
    let leftovers: Vec<_> = std::fs::read_dir(cell.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".restore") || n.starts_with(".workspace"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn checkpoint_then_restore_gives_back_the_same_workspace() {
    let (_t, s) = store();
    let cell = s.provision(new_cell("m")).unwrap();
    let id = cell.id();
    let ws = cell.workspace();
    std::fs::create_dir_all(ws.join("src/deep")).unwrap();
    std::fs::write(ws.join("README.md"), b"hello\n").unwrap();
    std::fs::write(
        ws.join("src/deep/data.bin"),
        (0..=255u8).cycle().take(300_000).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(ws.join("empty"), b"").unwrap();
    std::fs::write(ws.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(ws.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(ws.join("empty-dir")).unwrap();
    symlink("src/deep/data.bin", ws.join("link")).unwrap();
    symlink("/usr/bin/env", ws.join("abs-link")).unwrap();
    let before = snapshot(&ws);
    // Special files cannot be archived: skipped and listed, not fatal.
    assert!(
        std::process::Command::new("mkfifo")
            .arg(ws.join("src/pipe"))
            .status()
            .unwrap()
            .success()
    );
    let _sock = std::os::unix::net::UnixListener::bind(ws.join("sock")).unwrap();

    let cp = s.checkpoint(&id).unwrap();
    assert_eq!(cp.skipped, ["workspace/sock", "workspace/src/pipe"]);
    std::fs::remove_file(ws.join("src/pipe")).unwrap();
    std::fs::remove_file(ws.join("sock")).unwrap();
    assert!(cp.path.starts_with(cell.checkpoints_dir()));
    assert!(cp.name.ends_with("Z.tar.gz"), "{}", cp.name);
    assert_eq!(s.checkpoints(&id).unwrap(), std::slice::from_ref(&cp.name));

    // Change everything, then restore.
    std::fs::write(ws.join("README.md"), b"changed").unwrap();
    std::fs::remove_dir_all(ws.join("src")).unwrap();
    std::fs::write(ws.join("new-file"), b"new").unwrap();
    s.restore(&id, &cp.name).unwrap();
    assert_eq!(snapshot(&ws), before);
    let k = kinds(&s.open(&id).unwrap());
    assert_eq!(k[k.len() - 2..], ["checkpoint_created", "cell_restored"]);
    assert_no_restore_leftovers(&cell);
}

#[test]
fn restore_refuses_bad_archives() {
    let (_t, s) = store();
    let cell = s.provision(new_cell("m")).unwrap();
    let other = s.provision(new_cell("other")).unwrap();
    std::fs::write(cell.workspace().join("f"), b"original").unwrap();
    let id = cell.id();

    // Another cell's checkpoint, copied in.
    let foreign = s.checkpoint(&other.id()).unwrap();
    std::fs::copy(&foreign.path, cell.checkpoints_dir().join("foreign.tar.gz")).unwrap();
    let e = s.restore(&id, "foreign.tar.gz").unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("belongs to cell {}", other.id())),
        "{e}"
    );

    // Truncated archive.
    let cp = s.checkpoint(&id).unwrap();
    let bytes = std::fs::read(&cp.path).unwrap();
    std::fs::write(
        cell.checkpoints_dir().join("cut.tar.gz"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let e = s.restore(&id, "cut.tar.gz").unwrap_err();
    assert!(matches!(e, Error::Checkpoint { .. }), "{e}");
    assert!(e.to_string().contains("cut.tar.gz"), "{e}");

    // Not gzip at all.
    std::fs::write(cell.checkpoints_dir().join("junk.tar.gz"), b"junk").unwrap();
    let e = s.restore(&id, "junk.tar.gz").unwrap_err();
    assert!(e.to_string().contains("junk.tar.gz"), "{e}");

    // An entry that climbs out of the workspace.
    let evil = hostile_archive(&cell, "workspace/../../../escaped");
    std::fs::write(cell.checkpoints_dir().join("evil.tar.gz"), evil).unwrap();
    let e = s.restore(&id, "evil.tar.gz").unwrap_err();
    assert!(e.to_string().contains("'..' paths are refused"), "{e}");
    assert!(!s.root().parent().unwrap().join("escaped").exists());

    // A symlink, then a file written through it.
    let evil = link_then_file_archive(&cell);
    std::fs::write(cell.checkpoints_dir().join("link.tar.gz"), evil).unwrap();
    let e = s.restore(&id, "link.tar.gz").unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");

    // Names are validated; missing checkpoints are I/O errors naming the file.
    assert!(s.restore(&id, "../../x.tar.gz").unwrap_err().is_usage());
    let e = s.restore(&id, "nope.tar.gz").unwrap_err();
    assert!(e.to_string().contains("nope.tar.gz"), "{e}");

    // After all that the workspace is intact and nothing is left over.
    assert_eq!(
        std::fs::read(cell.workspace().join("f")).unwrap(),
        b"original"
    );
    assert_no_restore_leftovers(&cell);
}

/// The uid, gid and full mode of every entry below `dir` (and of `dir`
/// itself, as ""), symlinks not followed.
fn owners_and_modes(dir: &Path) -> BTreeMap<String, (u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        out.insert(rel, (m.uid(), m.gid(), m.mode() & 0o7777));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// The path and mode of every entry of a checkpoint archive.
fn archive_modes(path: &Path) -> Vec<(String, u32)> {
    let file = std::fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            (p, e.header().mode().unwrap())
        })
        .collect()
}

/// The user agents run as in these tests (`nobody`).
const AGENT: u32 = 65534;

/// Gives `path` to [`AGENT`] (without following a link), then sets `mode`
/// unless it is a link; the tests run as root.
fn agents(path: &Path, mode: Option<u32>) {
    std::os::unix::fs::lchown(path, Some(AGENT), Some(AGENT))
        .unwrap_or_else(|e| panic!("chown {}: {e} (the tests run as root)", path.display()));
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// A store with one cell whose workspace is [`AGENT`]'s.
fn agent_cell() -> (tempfile::TempDir, CellStore, Cell) {
    let (t, s) = store();
    let cell = s.provision(new_cell("m")).unwrap();
    agents(&cell.workspace(), None);
    (t, s, cell)
}

/// A file only root can read, outside the cells root.
fn root_only(t: &tempfile::TempDir, content: &[u8]) -> PathBuf {
    let path = t.path().join("root-only");
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Every entry of a restored tree ([`owners_and_modes`]) is [`AGENT`]'s,
/// with no setuid, setgid or sticky bit.
fn assert_restored_for_the_agent(tree: &BTreeMap<String, (u32, u32, u32)>) {
    for (rel, (uid, gid, mode)) in tree {
        assert_eq!(
            (*uid, *gid),
            (AGENT, AGENT),
            "{rel:?} is not the cell owner's"
        );
        assert_eq!(mode & 0o7000, 0, "{rel:?} restored as {mode:o}");
    }
}

/// Whether a checkpoint archive holds the bytes `SECRET` anywhere.
fn holds_secret(archive: &Path) -> bool {
    let mut tar = Vec::new();
    let file = std::fs::File::open(archive).unwrap();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut tar).unwrap();
    tar.windows(6).any(|w| w == b"SECRET")
}

/// What an agent can plant in its workspace (issue 16): a copy of `id` it
/// made setuid, setgid and sticky directories, a file of root's. The
/// checkpoint records none of the special bits; a restore run as root gives
/// every entry to the cell's owner (uid 65534, the owner of `workspace/`),
/// not to root, with its permission bits only.
#[test]
fn checkpoint_and_restore_strip_setuid_and_give_everything_to_the_cells_owner() {
    let (_t, s, cell) = agent_cell();
    let id = cell.id();
    let ws = cell.workspace();
    std::fs::copy("/usr/bin/id", ws.join("id")).unwrap();
    agents(&ws.join("id"), Some(0o4755));
    std::fs::create_dir(ws.join("shared")).unwrap();
    agents(&ws.join("shared"), Some(0o2777));
    std::fs::write(ws.join("shared/tool"), b"#!/bin/sh\nid\n").unwrap();
    agents(&ws.join("shared/tool"), Some(0o6755));
    std::fs::create_dir(ws.join("tmp")).unwrap();
    agents(&ws.join("tmp"), Some(0o1777));
    std::fs::write(ws.join("root-file"), b"root's\n").unwrap();
    symlink("id", ws.join("link")).unwrap();
    agents(&ws.join("link"), None);
    let before = owners_and_modes(&ws);
    assert_eq!(before["id"], (AGENT, AGENT, 0o4755), "the bits are real");

    let cp = s.checkpoint(&id).unwrap();
    let archive_mode = std::fs::metadata(&cp.path).unwrap().permissions().mode();
    assert_eq!(
        archive_mode & 0o777,
        0o600,
        "the archive is the owner's only"
    );
    let recorded = archive_modes(&cp.path);
    assert_eq!(recorded.len(), 8, "{recorded:?}");
    for (path, mode) in &recorded {
        assert_eq!(mode & 0o7000, 0, "{path} recorded as {mode:o}");
    }

    std::fs::remove_dir_all(ws.join("shared")).unwrap();
    s.restore(&id, &cp.name).unwrap();
    let after = owners_and_modes(&ws);
    let names: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "",
            "id",
            "link",
            "root-file",
            "shared",
            "shared/tool",
            "tmp"
        ]
    );
    assert_restored_for_the_agent(&after);
    assert_eq!(
        after[""], before[""],
        "the workspace keeps its owner and mode"
    );
    let modes: Vec<u32> = ["id", "shared", "shared/tool", "tmp", "root-file"]
        .iter()
        .map(|r| after[*r].2)
        .collect();
    assert_eq!(modes, [0o755, 0o777, 0o755, 0o777, 0o644]);
    assert_eq!(
        std::fs::read(ws.join("id")).unwrap(),
        std::fs::read("/usr/bin/id").unwrap()
    );
    assert_eq!(
        std::fs::read_link(ws.join("link")).unwrap(),
        Path::new("id")
    );
}

/// A root-only file hard-linked into an agent's workspace (possible where
/// `fs.protected_hardlinks` is off): a checkpoint run as root would copy
/// it, and a restore would give the copy to the agent. A file with several
/// links that is not the cell owner's is skipped and listed; the agent's
/// own hard links are archived.
#[test]
fn a_checkpoint_does_not_copy_another_users_file_linked_into_the_workspace() {
    let (t, s, cell) = agent_cell();
    let ws = cell.workspace();
    let secret = root_only(&t, b"SECRET-root-only");
    std::fs::hard_link(&secret, ws.join("linked")).unwrap();
    std::fs::write(ws.join("mine"), b"the agent's").unwrap();
    agents(&ws.join("mine"), Some(0o644));
    std::fs::hard_link(ws.join("mine"), ws.join("mine-too")).unwrap();

    let cp = s.checkpoint(&cell.id()).unwrap();
    assert_eq!(cp.skipped, ["workspace/linked"]);
    let names: Vec<String> = archive_modes(&cp.path)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        names,
        [
            "cell.json",
            "workspace",
            "workspace/mine",
            "workspace/mine-too"
        ]
    );
    assert!(!holds_secret(&cp.path));
}

/// Writes `checkpoints/<name>`, a hand-made archive of the cell's manifest
/// and `entries` (kind, path, mode, data or link target), all owned by root
/// in their headers.
fn plant(cell: &Cell, name: &str, entries: &[(tar::EntryType, &str, u32, &str)]) {
    let archive = archive_with(cell, |b| {
        for &(kind, path, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, path, data).unwrap();
                }
                _ => {
                    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
                        h.set_device_major(5).unwrap();
                        h.set_device_minor(1).unwrap();
                    }
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_bytes()).unwrap();
                }
            }
        }
    });
    std::fs::write(cell.checkpoints_dir().join(name), archive).unwrap();
}

/// A hand-made archive dropped into `checkpoints/` (issue 16): setuid and
/// setgid files root owns in the header, 02777 and 01777 directories, a
/// symlink to a root-only file outside the cell, directories it only
/// implies. Restored with permission bits only, everything the cell
/// owner's, the link made but never followed. Devices, a FIFO and hard
/// links (out of the archive or into it) refuse the whole archive, each
/// named, and the workspace stays as it was.
#[test]
fn a_hand_made_archive_plants_no_setuid_file_device_fifo_or_hard_link() {
    use tar::EntryType as T;
    let (t, s, cell) = agent_cell();
    let id = cell.id();
    let ws = cell.workspace();
    let secret = root_only(&t, b"secret");
    let secret_str = secret.to_str().unwrap();
    let ws_before = owners_and_modes(&ws)[""];

    plant(
        &cell,
        "planted.tar.gz",
        &[
            (T::Directory, "workspace", 0o6777, ""),
            (T::Regular, "workspace/suid", 0o4755, "#!/bin/sh\nid\n"),
            (T::Directory, "workspace/sgid-dir", 0o2777, ""),
            (T::Regular, "workspace/sgid-dir/both", 0o6711, "x"),
            (T::Directory, "workspace/sticky", 0o1777, ""),
            (T::Regular, "workspace/deep/er/file", 0o640, "implied"),
            (T::Symlink, "workspace/out", 0o777, secret_str),
        ],
    );
    s.restore(&id, "planted.tar.gz").unwrap();
    let tree = owners_and_modes(&ws);
    assert_restored_for_the_agent(&tree);
    let modes: Vec<(&str, u32)> = tree.iter().map(|(r, m)| (r.as_str(), m.2)).collect();
    assert_eq!(
        modes,
        [
            ("", ws_before.2),
            ("deep", 0o755),
            ("deep/er", 0o755),
            ("deep/er/file", 0o640),
            ("out", 0o777),
            ("sgid-dir", 0o777),
            ("sgid-dir/both", 0o711),
            ("sticky", 0o777),
            ("suid", 0o755),
        ]
    );
    assert_eq!(std::fs::read_link(ws.join("out")).unwrap(), secret);
    let m = std::fs::metadata(&secret).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (m.uid(), m.mode() & 0o7777),
        (0, 0o600),
        "the link was followed"
    );

    let passwd_links = std::fs::metadata("/etc/passwd").unwrap().nlink();
    plant(
        &cell,
        "refused.tar.gz",
        &[
            (T::Regular, "workspace/ok", 0o644, "fine"),
            (T::Char, "workspace/tty", 0o666, ""),
            (T::Block, "workspace/disk", 0o660, ""),
            (T::Fifo, "workspace/fifo", 0o666, ""),
            (T::Link, "workspace/pw", 0o644, "../../etc/passwd"),
            (T::Link, "workspace/abs", 0o644, "/etc/passwd"),
            (T::Link, "workspace/again", 0o644, "workspace/ok"),
            (T::Regular, "workspace/late", 0o644, "after the refusals"),
        ],
    );
    let e = s.restore(&id, "refused.tar.gz").unwrap_err();
    assert!(matches!(e, Error::Checkpoint { .. }), "{e}");
    let msg = e.to_string();
    for want in [
        "refused.tar.gz",
        "nothing was restored",
        r#""workspace/tty" (a character device)"#,
        r#""workspace/disk" (a block device)"#,
        r#""workspace/fifo" (a FIFO)"#,
        r#""workspace/pw" (a hard link to "../../etc/passwd")"#,
        r#""workspace/abs" (a hard link to "/etc/passwd")"#,
        r#""workspace/again" (a hard link to "workspace/ok")"#,
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
    assert!(!msg.contains("workspace/ok\" ("), "{msg}");
    assert_eq!(owners_and_modes(&ws), tree, "the workspace was touched");
    assert_eq!(
        std::fs::metadata("/etc/passwd").unwrap().nlink(),
        passwd_links
    );
    assert_no_restore_leftovers(&cell);
}

/// An agent swaps files of its workspace for symlinks to a root-only file,
/// over and over, while checkpoints are taken (issue 16): the checkpoint
/// looks at and opens each entry without following a link, so the file
/// never lands in an archive (whose restore would hand it to the agent).
#[test]
fn a_checkpoint_never_reads_through_a_file_swapped_for_a_symlink() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    const PAIRS: usize = 64;
    const ROUNDS: usize = 100;
    let (t, s) = store();
    let cell = s.provision(new_cell("m")).unwrap();
    let id = cell.id();
    let ws = cell.workspace();
    let secret = root_only(&t, b"SECRET-0123456789");
    for i in 0..PAIRS {
        // As long as the secret, so a leaked read still makes a valid archive.
        std::fs::write(ws.join(format!("a{i}")), b"harmless-01234567").unwrap();
        symlink(&secret, ws.join(format!("b{i}"))).unwrap();
    }
    /// Stops the racer however the checkpoints end (a panic included).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    let (failed, swaps) = std::thread::scope(|scope| {
        let racer = scope.spawn(|| {
            let dir = std::fs::File::open(&ws).unwrap();
            let started = Instant::now();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                for i in 0..PAIRS {
                    rustix::fs::renameat_with(
                        &dir,
                        format!("a{i}"),
                        &dir,
                        format!("b{i}"),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps += 1;
                }
            }
            swaps
        });
        let _stop = Stop(&stop);
        let mut failed = None;
        for round in 0..ROUNDS {
            let cp = match s.checkpoint(&id) {
                Ok(cp) => cp,
                Err(e) => {
                    failed = Some(format!("checkpoint {round} failed: {e}"));
                    break;
                }
            };
            if holds_secret(&cp.path) {
                failed = Some(format!("checkpoint {round} read the secret through a link"));
                break;
            }
            std::fs::remove_file(&cp.path).unwrap();
        }
        drop(_stop);
        (failed, racer.join().unwrap())
    });
    assert!(swaps > 0);
    assert_eq!(failed, None);
}

fn archive_with(cell: &Cell, add: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let manifest = std::fs::read(cell.manifest_path()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "cell.json", manifest.as_slice())
        .unwrap();
    add(&mut b);
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

fn hostile_archive(cell: &Cell, path: &str) -> Vec<u8> {
    archive_with(cell, |b| {
        let mut h = tar::Header::new_gnu();
        // set_path refuses "..": write the name bytes directly.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
    })
}

fn link_then_file_archive(cell: &Cell) -> Vec<u8> {
    let outside = cell.dir().parent().unwrap().parent().unwrap().to_path_buf();
    archive_with(cell, |b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_cksum();
        b.append_link(&mut h, "workspace/out", &outside).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "workspace/out/pwned", &b"evil"[..])
            .unwrap();
    })
}

#[test]
fn revive_environment() {
    let (_t, s) = store();
    let id = s.provision(new_cell("m")).unwrap().id();
    let mut j = join("allegro");
    j.revive_cmd = Some(vec![
        "sh".into(),
        "-c".into(),
        "pwd; echo \"$LAZARUS_CELL_UUID $LAZARUS_AGENT\"; echo oops >&2".into(),
    ]);
    let cell = s.join(&id, j).unwrap();
    s.join(&id, join("silent")).unwrap();
    let cell = s.open(&cell.id()).unwrap();
    for _ in 0..2 {
        let mut cmd = cell.revive_command(&name("allegro")).unwrap().unwrap();
        assert!(cmd.status().unwrap().success());
    }
    let log = std::fs::read_to_string(cell.agent_log(&name("allegro"))).unwrap();
    let ws = cell.workspace().canonicalize().unwrap();
    let once = format!("{}\n{id} allegro\noops\n", ws.display());
    assert_eq!(log, once.repeat(2), "appended, not truncated");
    assert!(cell.revive_command(&name("silent")).unwrap().is_none());
    let e = cell.revive_command(&name("ghost")).unwrap_err();
    assert!(matches!(e, Error::AgentNotFound { .. }), "{e}");
}

#[test]
fn daemon_state_and_heartbeats() {
    let (_t, s) = store();
    let id = s.provision(new_cell("m")).unwrap().id();
    s.join(&id, join("fresh")).unwrap();
    let cell = s.join(&id, join("silent")).unwrap();
    assert!(cell.read_state().unwrap().is_none());
    let mut st = DaemonState {
        cell_uuid: id,
        daemon_pid: 42,
        last_poll: 1.0,
        agent_health: Default::default(),
        extra: Default::default(),
    };
    st.agent_health.insert("fresh".into(), Default::default());
    cell.write_daemon_state(&st).unwrap();
    assert_eq!(cell.read_state().unwrap(), Some(st));
    std::fs::write(cell.state_path(), br#"{"cell_uuid": 5}"#).unwrap();
    let e = cell.read_state().unwrap_err();
    assert!(
        e.to_string()
            .contains("state.json: field `cell_uuid`: invalid type"),
        "{e}"
    );

    let mut w = cell.heartbeat_writer(&name("fresh")).durable(false);
    let doc = w.beat(1, "m", "thinking").unwrap();
    assert_eq!(doc.cell_uuid.as_deref(), Some(id.to_string().as_str()));
    let now = nexus_stdx::now_epoch();
    let rule = Rule::fixed(60.0);
    let states: Vec<_> = cell
        .heartbeats(now, &rule)
        .into_iter()
        .map(|(n, c)| (n.to_string(), c.state))
        .collect();
    use nexus_heartbeat::State;
    assert_eq!(
        states,
        [
            ("fresh".into(), State::Fresh),
            ("silent".into(), State::Missing)
        ]
    );
    let (cells, skipped) = s.survey(now, &rule).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].agents.len(), 2);
    assert_eq!(cells[0].agents[0].1.state, State::Fresh);
}

#[test]
fn symlinked_heartbeats_are_not_read() {
    let (t, s) = store();
    let id = s.provision(new_cell("m")).unwrap().id();
    s.join(&id, join("sneaky")).unwrap();
    let cell = s.join(&id, join("honest")).unwrap();
    let secret = t.path().join("secret");
    std::fs::write(&secret, b"root:$6$topsecrethash").unwrap();
    symlink(&secret, cell.heartbeat_path(&name("sneaky"))).unwrap();
    cell.heartbeat_writer(&name("honest"))
        .durable(false)
        .beat(1, "m", "thinking")
        .unwrap();
    let now = nexus_stdx::now_epoch();
    let rule = Rule::fixed(60.0);
    let got = cell.heartbeats(now, &rule);
    use nexus_heartbeat::State;
    assert_eq!(got[0].1.state, State::Unreadable);
    assert!(
        got[0].1.reason.contains("symbolic link"),
        "{}",
        got[0].1.reason
    );
    assert!(!format!("{:?}", got[0].1).contains("topsecret"));
    assert_eq!(got[1].1.state, State::Fresh);

    // A FIFO does not hang the reader; a huge file is not read.
    s.join(&id, join("fifo")).unwrap();
    let cell = s.join(&id, join("huge")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(cell.heartbeat_path(&name("fifo")))
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        cell.heartbeat_path(&name("huge")),
        vec![b' '; nexus_heartbeat::Observation::MAX_FILE_BYTES as usize + 1],
    )
    .unwrap();
    let got = cell.heartbeats(now, &rule);
    assert_eq!(got[2].1.state, State::Unreadable, "{}", got[2].1);
    assert_eq!(got[3].1.state, State::Corrupt, "{}", got[3].1);

    // The whole heartbeats directory replaced by a link.
    let hb = cell.heartbeats_dir();
    std::fs::rename(&hb, t.path().join("moved")).unwrap();
    symlink(t.path().join("moved"), &hb).unwrap();
    let (cells, _) = s.survey(now, &rule).unwrap();
    let states: Vec<_> = cells[0].agents.iter().map(|(_, c)| c.state).collect();
    assert_eq!(states, [State::Unreadable; 4]);
    assert!(cells[0].agents[1].1.reason.contains("not a real directory"));
    // No heartbeats directory at all: every agent is missing.
    std::fs::remove_file(&hb).unwrap();
    let got = cell.heartbeats(now, &rule);
    assert!(
        got.iter().all(|(_, c)| c.state == State::Missing),
        "{got:?}"
    );
}

/// `.lazarus` replaced by a link to a look-alike tree outside the cell:
/// the survey, the glance and the state reader refuse it by name exactly as
/// they refuse a linked `.lazarus/heartbeats`, and never read through it.
#[test]
fn a_symlinked_lazarus_directory_is_not_followed() {
    let (t, s) = store();
    let id = s.provision(new_cell("m")).unwrap().id();
    let cell = s.join(&id, join("allegro")).unwrap();
    // Outside the cell: a fresh heartbeat and a state file that quote a secret.
    let fake = t.path().join("fake-lazarus");
    std::fs::create_dir_all(fake.join("heartbeats")).unwrap();
    let mut w = HeartbeatWriter::new(fake.join("heartbeats/allegro.json")).durable(false);
    w.beat(1, "m", "topsecret-status").unwrap();
    std::fs::write(fake.join("state.json"), br#"{"cell_uuid": "topsecret"}"#).unwrap();
    let lazarus = cell.dir().join(".lazarus");
    std::fs::remove_dir_all(&lazarus).unwrap();
    symlink(&fake, &lazarus).unwrap();

    let now = nexus_stdx::now_epoch();
    let rule = Rule::fixed(60.0);
    let (cells, skipped) = s.survey(now, &rule).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let (_, c) = &cells[0].agents[0];
    assert_eq!(c.state, State::Unreadable, "{c}");
    assert!(c.reason.contains(".lazarus is not a real directory"), "{c}");
    assert!(c.reason.contains("not followed"), "{c}");
    assert!(!format!("{c:?}").contains("topsecret"), "{c:?}");
    let (glances, _) = s.glance_with(now, &rule, |_, g| g).unwrap();
    assert_eq!(glances[0][0].state, State::Unreadable);
    let e = cell.read_state().unwrap_err();
    assert!(matches!(e, Error::Symlink { .. }), "{e}");
    assert!(!e.to_string().contains("topsecret"), "{e}");

    // The same through a link one level down, for comparison.
    std::fs::remove_file(&lazarus).unwrap();
    std::fs::create_dir(&lazarus).unwrap();
    symlink(fake.join("heartbeats"), cell.heartbeats_dir()).unwrap();
    let got = s.open(&id).unwrap().heartbeats(now, &rule);
    assert_eq!(got[0].1.state, State::Unreadable, "{}", got[0].1);
    assert!(
        got[0]
            .1
            .reason
            .contains("heartbeats is not a real directory")
    );
}

#[test]
fn mountinfo_unescaping() {
    assert_eq!(unescape_mount("/a\\040b"), "/a b");
    assert_eq!(unescape_mount("/plain"), "/plain");
    assert_eq!(unescape_mount("/x\\"), "/x\\");
    assert!(
        mount_points_under(Path::new("/"))
            .iter()
            .any(|m| m == Path::new("/"))
    );
}

#[test]
fn root_resolution() {
    let s = CellStore::resolve(Some(Path::new("/x")), Some("/y".as_ref()));
    assert_eq!(s.root(), Path::new("/x"));
    let s = CellStore::resolve(None, Some("/y".as_ref()));
    assert_eq!(s.root(), Path::new("/y"));
    let s = CellStore::resolve(None, Some("".as_ref()));
    assert_eq!(s.root(), Path::new(DEFAULT_ROOT));
    assert_eq!(
        CellStore::resolve(None, None).root(),
        Path::new(DEFAULT_ROOT)
    );
}
