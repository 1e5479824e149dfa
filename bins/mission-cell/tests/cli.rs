//! Every subcommand of `mission-cell`, through the real binary.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use nexus_testkit::canary::Run;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("missions");
        Env { _tmp: tmp, root }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mission-cell"));
        c.env_remove("MISSION_CELLS_ROOT")
            .arg("--root")
            .arg(&self.root);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).run().expect("spawn mission-cell")
    }

    /// Runs and asserts exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn create(&self) -> String {
        self.ok(&["create", "--mission", "port the watchdog", "--by", "lead"])
            .trim()
            .to_string()
    }

    fn cell(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn create_prints_the_uuid_and_lays_out_the_cell() {
    let env = Env::new();
    let id = env.create();
    assert_eq!(id.len(), 36, "{id}");
    let dir = env.cell(&id);
    for sub in [
        "workspace",
        "logs",
        "checkpoints",
        "bus/inbox",
        "bus/outbox",
        ".lazarus/heartbeats",
    ] {
        assert!(dir.join(sub).is_dir(), "{sub}");
    }
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join("cell.json")).unwrap()).unwrap();
    assert_eq!(m["uuid"], id.as_str());
    assert_eq!(m["status"], "provision");
    assert_eq!(m["created_by"], "lead");
    let v = env.json(&[
        "create",
        "--mission",
        "m2",
        "--policy",
        "never",
        "--gitea-issue",
        "7",
    ]);
    assert_eq!(v["status"], "provision");
    let m: Value = serde_json::from_slice(
        &std::fs::read(env.cell(v["uuid"].as_str().unwrap()).join("cell.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (m["revive_policy"].as_str(), m["gitea_issue"].as_u64()),
        (Some("never"), Some(7))
    );
}

#[test]
fn root_comes_from_the_environment_unless_given() {
    let env = Env::new();
    let other = env.root.with_file_name("other");
    let o = Command::new(env!("CARGO_BIN_EXE_mission-cell"))
        .env("MISSION_CELLS_ROOT", &other)
        .args(["create", "--mission", "m"])
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id = String::from_utf8(o.stdout).unwrap();
    assert!(other.join(id.trim()).join("cell.json").is_file());
    // --root wins over the environment.
    let o = env
        .cmd()
        .env("MISSION_CELLS_ROOT", &other)
        .args(["list"])
        .run()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("{} does not exist", env.root.display())),
        "{}",
        stderr(&o)
    );
}

const PROPOSAL: &str = r#"---
name: Mission Proposal
title: "[MISSION] Port the watchdog"
labels: mission-proposal
---
## Mission Summary
<!-- One-sentence description of the mission objective -->
Port the nexus watchdog to Rust.

## Objective
A watchdog that passes the scenarios.

## Agents Invited
- @allegro — developer
- @ezra — reviewer

## Isolation Requirements
- [x] No wizard home-directory access needed
- [ ] Read-only access to the following homes: (list or "none")
- [ ] External network access required: no

## Cell Configuration
| Setting | Value |
|--------------------------|-------|
| Max duration | 2d |
| Checkpoint interval | 1h |
| Auto-archive on close | yes / no |
| Max revive attempts | 5 |
"#;

#[test]
fn create_from_a_mission_proposal() {
    let env = Env::new();
    let file = env.root.with_file_name("proposal.md");
    std::fs::write(&file, PROPOSAL).unwrap();
    let id = env.ok(&["create", "--proposal", file.to_str().unwrap()]);
    let dir = env.cell(id.trim());
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join("cell.json")).unwrap()).unwrap();
    assert_eq!(m["name"], "Port the watchdog");
    assert_eq!(m["mission"], "Port the nexus watchdog to Rust.");
    assert_eq!(m["invited"][1]["name"], "ezra");
    assert_eq!(m["invited"][1]["role"], "reviewer");
    assert_eq!(m["config"]["max_duration_seconds"], 172_800);
    assert_eq!(m["config"]["max_revive_attempts"], 5);
    assert!(m["config"].get("auto_archive").is_none());
    assert_eq!(m["isolation"]["external_network"], false);
    assert_eq!(
        std::fs::read_to_string(dir.join("proposal.md")).unwrap(),
        PROPOSAL
    );

    // Joining an invitee removes it from the invitations.
    env.ok(&["join", id.trim(), "--agent", "ezra", "--role", "reviewer"]);
    let v = env.json(&["show", id.trim()]);
    assert_eq!(v["invited"].as_array().unwrap().len(), 1);

    // A broken proposal is a usage error naming the file and the line.
    std::fs::write(
        &file,
        PROPOSAL.replace("- @ezra — reviewer", "- @ezra — pilot"),
    )
    .unwrap();
    let o = env.run(&["create", "--proposal", file.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("proposal.md: line 15: unknown role \"pilot\""),
        "{err}"
    );
    let o = env.run(&["create", "--proposal", "/nonexistent/p.md"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("/nonexistent/p.md"));
}

#[test]
fn join_records_the_revive_command_and_policy() {
    let env = Env::new();
    let id = env.create();
    let out = env.ok(&[
        "join",
        &id,
        "--agent",
        "allegro",
        "--role",
        "developer",
        "--policy",
        "ask",
        "--home",
        "/root/wizards/allegro",
        "--",
        "python3",
        "-m",
        "nexus.nexus_think",
        "--model",
        "timmy",
    ]);
    assert_eq!(out.trim(), format!("{id}: active"));
    let v = env.json(&["show", &id]);
    let a = &v["agents"][0];
    assert_eq!(
        a["revive_cmd"],
        serde_json::json!(["python3", "-m", "nexus.nexus_think", "--model", "timmy"])
    );
    assert_eq!(a["revive_policy"], "ask");
    assert_eq!(a["home"], "/root/wizards/allegro");
    assert!(a["joined_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["heartbeats"][0]["state"], "missing");
    assert!(env.cell(&id).join("bus/inbox/allegro").is_dir());

    // `yes` is an alias of auto; no revive command is fine.
    env.ok(&[
        "join", &id, "--agent", "ezra", "--role", "reviewer", "--policy", "yes",
    ]);
    assert_eq!(
        env.json(&["show", &id])["agents"][1]["revive_policy"],
        "auto"
    );

    for (args, why) in [
        (
            vec!["--agent", "../../etc", "--role", "developer"],
            "path separator",
        ),
        (
            vec!["--agent", "a\u{1b}b", "--role", "developer"],
            "control character",
        ),
        (vec!["--agent", "..", "--role", "developer"], "'..'"),
        (vec!["--agent", "ok", "--role", "pilot"], "unknown role"),
        (
            vec!["--agent", "ok", "--role", "developer", "--policy", "maybe"],
            "unknown revive policy",
        ),
        (
            vec!["--agent", "ok", "--role", "developer", "--home", "rel/home"],
            "not an absolute path",
        ),
    ] {
        let mut a = vec!["join", id.as_str()];
        a.extend(args);
        let o = env.run(&a);
        assert_eq!(code(&o), 2, "{a:?}");
        assert!(stderr(&o).contains(why), "{a:?}: {}", stderr(&o));
    }
    let o = env.run(&["join", &id, "--agent", "ezra", "--role", "reviewer"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("agent ezra has already joined"));

    env.ok(&["leave", &id, "--agent", "ezra"]);
    let o = env.run(&["leave", &id, "--agent", "ezra"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

#[test]
fn lifecycle_through_the_cli() {
    let env = Env::new();
    let id = env.create();
    // Not active yet: freezing is illegal and names both states.
    let o = env.run(&["freeze", &id]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("illegal transition provision -> frozen"),
        "{}",
        stderr(&o)
    );
    env.ok(&["join", &id, "--agent", "a", "--role", "developer"]);
    assert_eq!(env.ok(&["freeze", &id]).trim(), format!("{id}: frozen"));
    assert_eq!(env.json(&["resume", &id])["status"], "active");
    let o = env.run(&["destroy", &id]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("illegal transition active -> destroyed"),
        "{}",
        stderr(&o)
    );
    assert!(env.cell(&id).is_dir());
    env.ok(&["archive", &id]);
    let o = env.run(&["join", &id, "--agent", "b", "--role", "developer"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is archived: cannot join"));
    assert_eq!(env.json(&["destroy", &id])["status"], "destroyed");
    assert!(!env.cell(&id).exists());
    let o = env.run(&["show", &id]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no cell"), "{}", stderr(&o));
}

#[test]
fn hostile_ids_are_usage_errors() {
    let env = Env::new();
    env.create();
    for sub in [
        "show",
        "freeze",
        "archive",
        "destroy",
        "checkpoint",
        "restore",
        "events",
    ] {
        for bad in [
            "../..",
            "/etc",
            "..",
            "x\0y".replace('\0', "\u{1}").as_str(),
        ] {
            let o = env.run(&[sub, bad]);
            assert_eq!(code(&o), 2, "{sub} {bad:?}: {}", stderr(&o));
            assert!(stderr(&o).contains("invalid cell id"), "{}", stderr(&o));
        }
    }
}

fn tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.file_name().unwrap().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for (k, v) in tree(&p) {
                out.insert(format!("{rel}/{k}"), v);
            }
        } else if meta.file_type().is_symlink() {
            out.insert(
                rel,
                (
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                    0,
                ),
            );
        } else {
            out.insert(
                rel,
                (
                    std::fs::read(&p).unwrap(),
                    meta.permissions().mode() & 0o777,
                ),
            );
        }
    }
    out
}

#[test]
fn checkpoint_and_restore_through_the_cli() {
    let env = Env::new();
    let id = env.create();
    let ws = env.cell(&id).join("workspace");
    std::fs::create_dir_all(ws.join("a/b")).unwrap();
    std::fs::write(ws.join("a/b/c.txt"), b"deep").unwrap();
    std::fs::write(ws.join("bin"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    std::fs::set_permissions(ws.join("bin"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("a/b/c.txt", ws.join("link")).unwrap();
    let before = tree(&ws);

    let name = env.ok(&["checkpoint", &id]).trim().to_string();
    assert!(env.cell(&id).join("checkpoints").join(&name).is_file());
    std::fs::write(ws.join("a/b/c.txt"), b"changed").unwrap();
    std::fs::write(ws.join("extra"), b"x").unwrap();
    let v = env.json(&["checkpoint", &id]);
    assert!(v["bytes"].as_u64().unwrap() > 0);

    env.ok(&["restore", &id, &name]);
    assert_eq!(tree(&ws), before);
    // Without a name: the newest.
    env.ok(&["restore", &id]);
    assert_eq!(std::fs::read(ws.join("a/b/c.txt")).unwrap(), b"changed");
    let o = env.run(&["restore", &id, "../../../etc/x.tar.gz"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = env.run(&["restore", &id, "missing.tar.gz"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("missing.tar.gz"), "{}", stderr(&o));
}

#[test]
fn events_tail_and_filter_and_survive_a_torn_line() {
    let env = Env::new();
    let id = env.create();
    for a in ["a", "b", "c"] {
        env.ok(&["join", &id, "--agent", a, "--role", "observer"]);
    }
    env.ok(&["leave", &id, "--agent", "b"]);
    let all = env.json(&["events", &id]);
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "cell_created",
            "agent_joined",
            "cell_activated",
            "agent_joined",
            "agent_joined",
            "agent_left"
        ]
    );
    let joined = env.json(&["events", &id, "--kind", "agent_joined", "--tail", "2"]);
    let agents: Vec<&str> = joined
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["b", "c"]);
    let text = env.ok(&["events", &id, "--kind", "agent_left"]);
    assert!(text.trim().ends_with("agent_left agent=\"b\""), "{text}");

    // A writer that died mid-line: reported, skipped, not fatal.
    let log = env.cell(&id).join("logs/events.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"agent_jo",
    )
    .unwrap();
    let o = env.run(&["events", &id, "--tail", "1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("agent_left"));
    let err = stderr(&o);
    assert!(
        err.contains("events.jsonl: line 7: torn last line"),
        "{err}"
    );
    // The next append is intact.
    env.ok(&["freeze", &id]);
    let last = env.json(&["events", &id, "--tail", "1"]);
    assert_eq!(last[0]["event"], "cell_frozen");
}

#[test]
fn list_reports_corrupt_cells_and_keeps_going() {
    let env = Env::new();
    let o = env.run(&["list"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let good = env.create();
    let bad = env.create();
    let cut = env.create();
    std::fs::write(env.cell(&bad).join("cell.json"), br#"{"uuid": 12}"#).unwrap();
    let text = std::fs::read(env.cell(&cut).join("cell.json")).unwrap();
    std::fs::write(env.cell(&cut).join("cell.json"), &text[..text.len() / 2]).unwrap();

    let o = env.run(&["list"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("{good}: provision — port the watchdog")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{bad}: [unreadable manifest]")),
        "{out}"
    );
    let err = stderr(&o);
    let bad_file = env.cell(&bad).join("cell.json");
    assert!(
        err.contains(&format!(
            "{}: field `uuid`: invalid type",
            bad_file.display()
        )),
        "{err}"
    );
    let cut_file = env.cell(&cut).join("cell.json");
    assert!(
        err.contains(&format!("{}: field `", cut_file.display())),
        "{err}"
    );
    assert!(err.contains("truncated JSON"), "{err}");

    let v = env.json(&["list"]);
    assert_eq!(v["cells"].as_array().unwrap().len(), 1);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2);
    let o = env.run(&["show", &bad]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(&bad_file.display().to_string()));
    let v = env.json(&["list", "--status", "active"]);
    assert!(v["cells"].as_array().unwrap().is_empty());
}

#[test]
fn concurrent_joins_from_many_processes_lose_nothing() {
    const AGENTS: usize = 12;
    let env = Env::new();
    let id = env.create();
    let children: Vec<_> = (0..AGENTS)
        .map(|i| {
            env.cmd()
                .args([
                    "join",
                    &id,
                    "--agent",
                    &format!("agent-{i}"),
                    "--role",
                    "developer",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.run().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let v = env.json(&["show", &id]);
    let mut names: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..AGENTS).map(|i| format!("agent-{i}")).collect();
    want.sort();
    assert_eq!(names, want);
    let joined = env.json(&["events", &id, "--kind", "agent_joined"]);
    assert_eq!(joined.as_array().unwrap().len(), AGENTS);
    let activated = env.json(&["events", &id, "--kind", "cell_activated"]);
    assert_eq!(
        activated.as_array().unwrap().len(),
        1,
        "activated exactly once"
    );
}

#[test]
fn the_template_round_trips_through_create() {
    let env = Env::new();
    let blank = env.ok(&["template"]);
    assert!(blank.contains("## Mission Summary"));
    let file = env.root.with_file_name("p.md");
    std::fs::write(&file, &blank).unwrap();
    let o = env.run(&["create", "--proposal", file.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "a blank proposal has no mission");
    assert!(stderr(&o).contains("Mission Summary"), "{}", stderr(&o));
    let filled = blank
        .replace("title: \"[MISSION] \"", "title: \"[MISSION] Night watch\"")
        .replace(
            "<!-- One-sentence description of the mission objective -->",
            "Watch the night.",
        );
    std::fs::write(&file, filled).unwrap();
    let id = env.ok(&[
        "create",
        "--proposal",
        file.to_str().unwrap(),
        "--name",
        "override",
    ]);
    let v = env.json(&["show", id.trim()]);
    assert_eq!(v["mission"], "Watch the night.");
    assert_eq!(v["name"], "override", "flags win over the proposal");
    // An empty, existing root lists nothing and says so.
    let empty = Env::new();
    std::fs::create_dir_all(&empty.root).unwrap();
    assert!(empty.ok(&["list"]).starts_with("No mission cells found in"));
}

#[test]
fn every_subcommand_takes_root_and_json() {
    let env = Env::new();
    for sub in [
        "create",
        "list",
        "show",
        "join",
        "leave",
        "freeze",
        "resume",
        "archive",
        "destroy",
        "checkpoint",
        "restore",
        "events",
        "template",
    ] {
        let o = env.run(&[sub, "--help"]);
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(
            help.contains("--root <ROOT>") && help.contains("--json"),
            "{sub}: {help}"
        );
        assert!(help.contains("MISSION_CELLS_ROOT"), "{sub}: {help}");
    }
    let o = env.run(&["bogus"]);
    assert_eq!(code(&o), 2);
}
