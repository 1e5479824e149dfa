//! Hostile names, paths and commands against the real binaries: a heartbeat
//! directory full of traps is reported, never followed or hung on; revive
//! commands are argv, never given to a shell.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nexus_cell::{AgentName, CellStore, Join, NewCell, Role};
use nexus_e2e::{Run, bin};

#[test]
fn a_heartbeat_directory_full_of_traps_is_reported_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let hb = tmp.path().join("heartbeats");
    std::fs::create_dir(&hb).unwrap();
    let secret = tmp.path().join("shadow");
    std::fs::write(&secret, "root:t0psecret-hash").unwrap();
    std::os::unix::fs::symlink(&secret, hb.join("evil.last")).unwrap();
    std::os::unix::fs::symlink("/", hb.join("root.last")).unwrap();
    // A FIFO nobody writes: a blocking open would hang the checker.
    let fifo = hb.join("fifo.last");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir(hb.join("adir.last")).unwrap();
    std::fs::write(hb.join(OsStr::from_bytes(b"bad\xff.last")), b"{}").unwrap();
    std::fs::write(hb.join(format!("{}.last", "a".repeat(250))), b"1").unwrap();
    std::fs::write(hb.join("huge.last"), vec![b' '; 8 << 20]).unwrap();
    std::fs::write(hb.join("nul.last"), b"{\"timestamp\":\0}").unwrap();
    std::fs::write(
        hb.join("good.last"),
        br#"{"timestamp": 1, "interval_seconds": 60}"#,
    )
    .unwrap();

    let started = Instant::now();
    let o = Command::new(bin("cron-heartbeat-check"))
        .arg("--dir")
        .arg(&hb)
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the checker hung"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(101), "panicked: {err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("t0psecret") && !err.contains("t0psecret"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = |job: &str| {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job"] == job)
            .map(|j| j["status"].as_str().unwrap().to_string())
    };
    for job in ["evil", "root", "fifo", "huge", "nul", "good", "adir"] {
        assert!(status(job).is_some(), "{job} is not in the report: {out}");
    }
    assert_ne!(status("evil").as_deref(), Some("OK"));
    assert_ne!(status("huge").as_deref(), Some("OK"));
}

#[test]
fn revive_commands_are_argv_never_a_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CellStore::new(tmp.path().join("cells"));
    let id = store
        .provision(NewCell {
            mission: "m".into(),
            created_by: "t".into(),
            ..NewCell::default()
        })
        .unwrap()
        .id();
    let agent = AgentName::new("allegro").unwrap();
    let hostile = "$(touch pwned1); touch pwned2 `touch pwned3` | tee pwned4 && exit 7";
    store
        .join(
            &id,
            Join {
                agent: agent.clone(),
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec!["echo".into(), hostile.into()]),
                revive_policy: None,
            },
        )
        .unwrap();
    let cell = store.open(&id).unwrap();
    let status = cell
        .revive_command(&agent)
        .unwrap()
        .unwrap()
        .status()
        .unwrap();
    assert!(status.success(), "a shell would have exited 7");
    let log = std::fs::read_to_string(cell.agent_log(&agent)).unwrap();
    assert_eq!(log, format!("{hostile}\n"), "echo got the text verbatim");
    let made: Vec<_> = std::fs::read_dir(cell.workspace())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(made.is_empty(), "a shell ran: {made:?}");
}
