//! Cron jobs wrapped by `nexus-heartbeat run`, judged by `cron-heartbeat-check`.

use std::process::Command;

use nexus_e2e::{Run, bin};

#[test]
fn a_wrapped_job_is_ok_then_failed_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let hb = tmp.path().join("heartbeats");
    let wrap = |cmd: &str| {
        Command::new(bin("nexus-heartbeat"))
            .args(["run", "--job", "nightly", "--interval", "1h", "--dir"])
            .arg(&hb)
            .args(["--", "sh", "-c", cmd])
            .status()
            .unwrap()
    };
    let check = || {
        let o = Command::new(bin("cron-heartbeat-check"))
            .arg("--dir")
            .arg(&hb)
            .args(["--json", "--no-self-heartbeat"])
            .run()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            o.status.code(),
            v["jobs"][0]["status"].as_str().unwrap().to_string(),
        )
    };
    assert!(wrap("exit 0").success());
    assert_eq!(check(), (Some(0), "OK".to_string()));
    assert_eq!(wrap("exit 5").code(), Some(5));
    assert_eq!(check(), (Some(1), "FAILED".to_string()));
    assert!(tmp.path().join("alerts/nightly.alert").exists());
    assert!(wrap("true").success());
    assert_eq!(check(), (Some(0), "OK".to_string()));
    assert!(!tmp.path().join("alerts/nightly.alert").exists());
}

/// A `.last` whose `timestamp` is no time, beside a good record of the same
/// job in another directory, is reported (its file and field, exit 1), not
/// dropped because the other one is used.
#[test]
fn a_corrupt_record_behind_a_good_one_is_reported_with_its_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, fallback) = (tmp.path().join("primary"), tmp.path().join("fallback"));
    std::fs::create_dir_all(&primary).unwrap();
    std::fs::create_dir_all(&fallback).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bad = primary.join("nightly.last");
    std::fs::write(&bad, r#"{"job": "nightly", "timestamp": "abc"}"#).unwrap();
    std::fs::write(
        fallback.join("nightly.last"),
        format!(r#"{{"job": "nightly", "timestamp": {now}, "interval_seconds": 3600}}"#),
    )
    .unwrap();
    let o = Command::new(bin("cron-heartbeat-check"))
        .arg("--dir")
        .arg(&primary)
        .arg("--dir")
        .arg(&fallback)
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"][0]["status"], "OK", "{v}");
    assert_eq!(
        o.status.code(),
        Some(1),
        "an ignored file is a warning: {v}"
    );
    let ignored = v["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), 1, "{v}");
    assert_eq!(ignored[0]["path"], bad.display().to_string());
    let reason = ignored[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("corrupt: field `timestamp`: ") && reason.contains("not used"),
        "{reason}"
    );
}
