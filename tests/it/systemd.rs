//! The systemd units shipped in docs/systemd are valid and do what they say.

use std::path::{Path, PathBuf};
use std::process::Command;

use nexus_e2e::{Run, bin};

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/systemd")
}

fn systemd_analyze() -> &'static str {
    let ok = Command::new("systemd-analyze").arg("--version").run();
    assert!(
        ok.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: run scripts/test (scripts/setup.d/00-base.sh installs systemd)"
    );
    "systemd-analyze"
}

/// Copies every unit of docs/systemd into `dir`, with `ExecStart` pointing
/// at the binaries this test run built instead of the package's `/usr/bin`.
fn install_units(dir: &Path) -> Vec<PathBuf> {
    let mut units = Vec::new();
    for entry in std::fs::read_dir(units_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        for b in [
            "cron-heartbeat-check",
            "nexus-health-sidecar",
            "nexus-watchdog",
            "resurrection-pool",
        ] {
            for end in [" ", "\n"] {
                let from = format!("/usr/bin/{b}{end}");
                if text.contains(&from) {
                    text = text.replace(&from, &format!("{}{end}", bin(b).display()));
                }
            }
        }
        let to = dir.join(path.file_name().unwrap());
        std::fs::write(&to, text).unwrap();
        units.push(to);
    }
    units.sort();
    units
}

#[test]
fn every_shipped_unit_verifies_without_a_warning() {
    let analyze = systemd_analyze();
    let tmp = tempfile::tempdir().unwrap();
    let units = install_units(tmp.path());
    assert!(units.len() >= 7, "{units:?}");
    for daemon in ["nexus-health-sidecar.service", "resurrection-pool.service"] {
        assert!(units.iter().any(|u| u.ends_with(daemon)), "{units:?}");
    }
    // `man:` documentation links are checked where the package installs the
    // man pages (scripts/check-package), not here.
    let o = Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(&units)
        .run()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Unknown keys are only warnings for systemd: none is allowed here.
    let dir = tmp.path().to_string_lossy().into_owned();
    for u in &units {
        let text = std::fs::read_to_string(u).unwrap();
        if let Some(exec) = text.lines().find_map(|l| l.strip_prefix("ExecStart=")) {
            assert!(
                !exec.starts_with("/usr/bin/") && !exec.starts_with("/usr/local/bin/"),
                "{} not pointed at a built binary: {exec}",
                u.display()
            );
        }
    }
    let complaints: Vec<_> = stderr.lines().filter(|l| l.contains(&dir)).collect();
    assert!(complaints.is_empty(), "{complaints:?}");
}

/// The minutes of the next three elapses of a timer's `OnCalendar`.
fn next_elapses(analyze: &str, timer: &str) -> Vec<u32> {
    let timer = std::fs::read_to_string(units_dir().join(timer)).unwrap();
    let calendar = timer
        .lines()
        .find_map(|l| l.strip_prefix("OnCalendar="))
        .expect("OnCalendar in the timer");
    let o = Command::new(analyze)
        .args(["calendar", "--iterations", "3", calendar])
        .env("TZ", "UTC")
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .filter(|l| l.contains("Next elapse") || l.contains("Iter. #"))
        .filter_map(|l| {
            let hhmm = l.split_whitespace().find(|w| w.matches(':').count() == 2)?;
            let mut p = hhmm.split(':');
            let h: u32 = p.next()?.parse().ok()?;
            let m: u32 = p.next()?.parse().ok()?;
            Some(h * 60 + m)
        })
        .collect()
}

#[test]
fn timers_fire_at_their_documented_period() {
    let analyze = systemd_analyze();
    for (timer, period) in [
        ("cron-heartbeat-check.timer", 15),
        ("nexus-watchdog-once.timer", 5),
    ] {
        let minutes = next_elapses(analyze, timer);
        assert_eq!(minutes.len(), 3, "{timer}: {minutes:?}");
        for w in minutes.windows(2) {
            assert_eq!((w[1] + 1440 - w[0]) % 1440, period, "{timer}: {minutes:?}");
        }
    }
}
