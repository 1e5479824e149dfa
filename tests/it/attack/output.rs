//! Issue 16, item 8: output that cannot be written. Every binary, its
//! stdout on `/dev/full` or on a pipe whose reader is gone (`| head -c 10`),
//! and its stderr on `/dev/full`: it never aborts (exit 134 was a panic in
//! `println!` under `panic = "abort"`), a closed pipe ends the output
//! quietly with the code the work decided, a full disk is named and makes a
//! success 1, and the side effects (alert markers, the own heartbeat)
//! happen whatever became of the output.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nexus_e2e::{Run, bin};

/// Where each stream goes.
#[derive(Debug, Clone, Copy)]
enum To {
    /// Captured (checked for canaries by `Run`).
    Captured,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// A pipe whose read end is closed: every write fails with EPIPE.
    Closed,
}

fn stdio(to: To) -> Stdio {
    match to {
        To::Captured => Stdio::piped(),
        To::Full => File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
            .into(),
        To::Closed => {
            let (reader, writer) = std::io::pipe().expect("pipe");
            drop(reader);
            writer.into()
        }
    }
}

/// One program with the arguments that make it print a report, in a
/// fresh directory; `check` says what its side effects must have left.
struct Case {
    name: &'static str,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// The exit code when the output is written.
    code: i32,
}

impl Case {
    fn run(&self, out: To, err: To) -> Output {
        Command::new(bin(self.name))
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("BEZALEL_HEARTBEAT_DIR", self.dir.path().join("beats"))
            .env("HOME", self.dir.path())
            .env_remove("NEXUS_LOG")
            .stdout(stdio(out))
            .stderr(stdio(err))
            .run()
            .unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Each binary doing something that prints, healthy where it can be.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    let d = dir();
    let hb = d.path().join("hb.json");
    write(
        &hb,
        &format!("{{\"timestamp\": {}}}", nexus_stdx::now_epoch()),
    );
    cases.push(Case {
        name: "nexus-heartbeat",
        args: vec!["check".into(), hb.display().to_string()],
        dir: d,
        code: 0,
    });

    let d = dir();
    let beats = d.path().join("beats");
    write(
        &beats.join("db_backup.last"),
        &format!(
            "{{\"job\": \"db_backup\", \"timestamp\": {}, \"interval_seconds\": 60}}",
            nexus_stdx::now_epoch()
        ),
    );
    cases.push(Case {
        name: "cron-heartbeat-check",
        args: vec![
            "--dir".into(),
            beats.display().to_string(),
            "--state-dir".into(),
            d.path().join("state").display().to_string(),
            "--no-self-heartbeat".into(),
        ],
        dir: d,
        code: 0,
    });

    let d = dir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The listener lives as long as the test process: leaked on purpose.
    std::mem::forget(listener);
    let cfg = d.path().join("watchdog.toml");
    write(
        &cfg,
        &format!(
            "[[probe]]\nname = \"gateway\"\ntcp = {{ host = \"127.0.0.1\", port = {port} }}\n"
        ),
    );
    cases.push(Case {
        name: "nexus-watchdog",
        args: vec![
            "--config".into(),
            cfg.display().to_string(),
            "--state-dir".into(),
            d.path().join("state").display().to_string(),
            "--no-self-heartbeat".into(),
        ],
        dir: d,
        code: 0,
    });

    let d = dir();
    let root = d.path().join("missions");
    let o = Command::new(bin("mission-cell"))
        .arg("--root")
        .arg(&root)
        .args(["create", "--mission", "output"])
        .env_remove("MISSION_CELLS_ROOT")
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    cases.push(Case {
        name: "mission-cell",
        args: vec!["--root".into(), root.display().to_string(), "list".into()],
        dir: d,
        code: 0,
    });

    let d = dir();
    let root = d.path().join("missions");
    std::fs::create_dir_all(&root).unwrap();
    cases.push(Case {
        name: "resurrection-pool",
        args: vec![
            "--once".into(),
            "--dry-run".into(),
            "--allow-empty".into(),
            "--cells-root".into(),
            root.display().to_string(),
        ],
        dir: d,
        code: 0,
    });
    cases
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_with_the_works_own_code() {
    for case in cases() {
        let normal = case.run(To::Captured, To::Captured);
        assert_eq!(
            normal.status.code(),
            Some(case.code),
            "{}: {}",
            case.name,
            text(&normal.stderr)
        );
        assert!(!normal.stdout.is_empty(), "{} prints nothing", case.name);
        let o = case.run(To::Closed, To::Captured);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(case.code), "{}: {err}", case.name);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{}: {err}",
            case.name
        );
    }
}

#[test]
fn a_full_stdout_is_named_and_fails_a_success_without_an_abort() {
    for case in cases() {
        let o = case.run(To::Full, To::Captured);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", case.name);
        assert!(
            err.contains(&format!("{}: cannot write the output", case.name))
                && err.contains("No space left on device"),
            "{}: {err}",
            case.name
        );
        assert!(!err.contains("panicked"), "{}: {err}", case.name);
    }
}

#[test]
fn with_both_streams_full_every_binary_exits_with_a_code_not_a_signal() {
    for case in cases() {
        let o = case.run(To::Full, To::Full);
        assert_eq!(o.status.code(), Some(1), "{}: {:?}", case.name, o.status);
        let o = case.run(To::Closed, To::Full);
        assert_eq!(
            o.status.code(),
            Some(case.code),
            "{}: {:?}",
            case.name,
            o.status
        );
    }
}

/// `cron-heartbeat-check 2>/dev/full` aborted before writing any alert
/// marker: with both streams full, a silent job still gets its marker and
/// the checker its own heartbeat.
#[test]
fn the_cron_checker_leaves_its_markers_whatever_became_of_its_output() {
    let d = dir();
    let beats = d.path().join("beats");
    write(
        &beats.join("db_backup.last"),
        "{\"job\": \"db_backup\", \"timestamp\": 1000, \"interval_seconds\": 60}",
    );
    let case = Case {
        name: "cron-heartbeat-check",
        args: vec![
            "--dir".into(),
            beats.display().to_string(),
            "--state-dir".into(),
            d.path().join("state").display().to_string(),
            "--alerts-dir".into(),
            d.path().join("alerts").display().to_string(),
            "--self-heartbeat".into(),
        ],
        dir: d,
        code: 1,
    };
    for (out, err) in [(To::Full, To::Full), (To::Closed, To::Full)] {
        let _ = std::fs::remove_file(case.path("alerts/db_backup.alert"));
        for e in std::fs::read_dir(case.path("beats")).unwrap() {
            let p = e.unwrap().path();
            if !p.ends_with("db_backup.last") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let o = case.run(out, err);
        assert_eq!(o.status.code(), Some(1), "{out:?}/{err:?}: {:?}", o.status);
        assert!(
            case.path("alerts/db_backup.alert").is_file(),
            "{out:?}/{err:?}: no alert marker"
        );
        let own: Vec<_> = std::fs::read_dir(case.path("beats"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "db_backup.last")
            .collect();
        assert_eq!(own.len(), 1, "{out:?}/{err:?}: own heartbeat {own:?}");
    }
}
