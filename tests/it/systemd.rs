//! The systemd units shipped in docs/systemd are valid and do what they say.

use std::path::{Path, PathBuf};
use std::process::Command;

use nexus_e2e::bin;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/systemd")
}

fn systemd_analyze() -> &'static str {
    let ok = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        ok.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: run scripts/test (scripts/setup.d/00-base.sh installs systemd)"
    );
    "systemd-analyze"
}

#[test]
fn cron_heartbeat_check_units_verify_and_fire_every_15_minutes() {
    let analyze = systemd_analyze();
    let tmp = tempfile::tempdir().unwrap();
    let checker = bin("cron-heartbeat-check");
    for unit in ["cron-heartbeat-check.service", "cron-heartbeat-check.timer"] {
        let text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
        // Point ExecStart at the binary this test run built.
        let text = text.replace(
            "/usr/local/bin/cron-heartbeat-check",
            checker.to_str().unwrap(),
        );
        std::fs::write(tmp.path().join(unit), text).unwrap();
    }
    let o = Command::new(analyze)
        .arg("verify")
        .arg(tmp.path().join("cron-heartbeat-check.service"))
        .arg(tmp.path().join("cron-heartbeat-check.timer"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Unknown keys are only warnings for systemd: none is allowed here.
    let complaints: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("cron-heartbeat-check"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");

    let timer = std::fs::read_to_string(units_dir().join("cron-heartbeat-check.timer")).unwrap();
    let calendar = timer
        .lines()
        .find_map(|l| l.strip_prefix("OnCalendar="))
        .expect("OnCalendar in the timer");
    let o = Command::new(analyze)
        .args(["calendar", "--iterations", "3", calendar])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let minutes: Vec<u32> = text
        .lines()
        .filter(|l| l.contains("Next elapse") || l.contains("Iter. #"))
        .filter_map(|l| {
            let hhmm = l.split_whitespace().find(|w| w.matches(':').count() == 2)?;
            let mut p = hhmm.split(':');
            let h: u32 = p.next()?.parse().ok()?;
            let m: u32 = p.next()?.parse().ok()?;
            Some(h * 60 + m)
        })
        .collect();
    assert_eq!(minutes.len(), 3, "{text}");
    for w in minutes.windows(2) {
        assert_eq!((w[1] + 1440 - w[0]) % 1440, 15, "{text}");
    }

    // The service's own command line runs (exit 1 = "some job failing" is a success for systemd).
    let service =
        std::fs::read_to_string(units_dir().join("cron-heartbeat-check.service")).unwrap();
    assert!(service.contains("SuccessExitStatus=1"));
    let hb = tmp.path().join("hb");
    let o = Command::new(&checker)
        .arg("--dir")
        .arg(&hb)
        .args(["--no-self-heartbeat"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "empty dir: nothing monitored");
}
