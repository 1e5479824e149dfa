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
