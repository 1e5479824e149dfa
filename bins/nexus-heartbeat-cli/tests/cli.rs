//! Every subcommand of `nexus-heartbeat`, through the real binary.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use nexus_testkit::canary::Run;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nexus-heartbeat"));
    c.env_remove("BEZALEL_HEARTBEAT_DIR")
        .env_remove("NEXUS_HEARTBEAT_PATH")
        .env_remove("LAZARUS_CELL_UUID");
    c
}

fn run(c: &mut Command) -> Output {
    c.run().expect("spawn nexus-heartbeat")
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn beat_writes_an_agent_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nested/heartbeat.json");
    let o = run(cli()
        .args([
            "beat", "--cycle", "7", "--model", "timmy", "--status", "idle", "--agent", "allegro",
            "--path",
        ])
        .arg(&p));
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&p);
    assert_eq!(
        (
            v["cycle"].as_u64(),
            v["model"].as_str(),
            v["status"].as_str()
        ),
        (Some(7), Some("timmy"), Some("idle"))
    );
    assert_eq!(v["agent"], "allegro");
    assert_eq!(
        v["pid"].as_u64(),
        Some(u64::from(std::process::id())),
        "pid is the caller's"
    );
    assert_eq!(v["seq"], 1);
    // `write` is an alias (docs/SPEC.md §2.4); seq continues.
    let o = run(cli().args(["write", "--cycle", "8", "--path"]).arg(&p));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&p)["seq"], 2);
}

#[test]
fn beat_honours_the_env_path_and_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hb.json");
    let o = run(cli().arg("beat").env("NEXUS_HEARTBEAT_PATH", &p));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(p.is_file());

    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let o = run(cli().args(["beat", "--path"]).arg(blocker.join("hb.json")));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("file"), "{}", stderr(&o));
}

#[test]
fn touch_writes_the_canonical_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(cli()
        .args(["touch", "--job", "db_backup", "--interval", "1d", "--dir"])
        .arg(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&dir.path().join("db_backup.last"));
    assert_eq!(v["job"], "db_backup");
    assert_eq!(v["interval_seconds"], 86_400);
    assert_eq!(v["status"], "ok");
    assert!(v["timestamp"].as_f64().unwrap() > 1.7e9);
    assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()));
}

#[test]
fn touch_uses_the_env_dir() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(cli()
        .args(["touch", "--job", "j", "--interval", "90"])
        .env("BEZALEL_HEARTBEAT_DIR", dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&dir.path().join("j.last"))["interval_seconds"], 90);
}

#[test]
fn touch_never_breaks_the_job_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(cli()
        .args(["touch", "--job", "../evil", "--interval", "5m", "--dir"])
        .arg(dir.path()));
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("invalid job name"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let o = run(cli()
        .args([
            "touch",
            "--strict",
            "--job",
            "../evil",
            "--interval",
            "5m",
            "--dir",
        ])
        .arg(dir.path()));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn run_records_success_and_failure_distinguishably() {
    let dir = tempfile::tempdir().unwrap();
    let last = dir.path().join("nightly.last");
    let o = run(cli()
        .args(["run", "--job", "nightly", "--interval", "1h", "--dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "exit 0"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ok = json(&last);
    assert_eq!(
        (ok["status"].as_str(), ok["exit_code"].as_i64()),
        (Some("ok"), Some(0))
    );
    assert!(ok["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert!(ok["started_at"].as_f64().unwrap() <= ok["finished_at"].as_f64().unwrap());

    let o = run(cli()
        .args(["run", "--job", "nightly", "--interval", "1h", "--dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "echo out; exit 3"]));
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "out\n",
        "the job's output passes through"
    );
    let bad = json(&last);
    assert_eq!(
        (bad["status"].as_str(), bad["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(
        bad["timestamp"], ok["timestamp"],
        "a failure does not count as a success"
    );
    assert_eq!(bad["seq"], 4, "start and end of two runs");
}

#[test]
fn run_says_running_while_the_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let last = dir.path().join("slow.last");
    // The job itself reads its own record while it runs.
    let o = run(cli()
        .args(["run", "--job", "slow", "--interval", "60", "--dir"])
        .arg(dir.path())
        .args(["--", "cat"])
        .arg(&last));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let during: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(during["status"], "running");
    assert!(during["started_at"].as_f64().is_some() && during.get("finished_at").is_none());
    assert_eq!(json(&last)["status"], "ok");
}

#[test]
fn run_reports_signals_and_missing_commands() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(cli()
        .args(["run", "--job", "k", "--interval", "60", "--dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "kill -9 $$"]));
    assert_eq!(o.status.code(), Some(137));
    assert_eq!(json(&dir.path().join("k.last"))["exit_code"], 137);

    let o = run(cli()
        .args(["run", "--job", "nf", "--interval", "60", "--dir"])
        .arg(dir.path())
        .args(["--", "/no/such/program"]));
    assert_eq!(o.status.code(), Some(127));
    let v = json(&dir.path().join("nf.last"));
    assert_eq!(
        (v["status"].as_str(), v["exit_code"].as_i64()),
        (Some("failed"), Some(127))
    );
}

#[test]
fn run_keeps_the_exit_code_when_the_heartbeat_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let o = run(cli()
        .args(["run", "--job", "j", "--interval", "60", "--dir"])
        .arg(&blocker)
        .args(["--", "sh", "-c", "exit 4"]));
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("cannot write heartbeat"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_classifies_and_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.json");
    let o = run(cli().args(["beat", "--path"]).arg(&fresh));
    assert!(o.status.success());
    let o = run(cli().args(["check", "--max-age", "90s"]).arg(&fresh));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("FRESH"));

    let stale = dir.path().join("stale.json");
    std::fs::write(&stale, r#"{"timestamp": 1000}"#).unwrap();
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, r#"{"timestamp": "yesterday"}"#).unwrap();
    let missing = dir.path().join("missing.json");
    let o = run(cli()
        .args(["check", "--json"])
        .args([&fresh, &stale, &corrupt, &missing]));
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let states: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["fresh", "stale", "corrupt", "missing"]);
    assert!(v[2]["reason"].as_str().unwrap().contains("`timestamp`"));
}

#[test]
fn check_uses_twice_the_interval_of_last_records() {
    let dir = tempfile::tempdir().unwrap();
    let last = dir.path().join("j.last");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::fs::write(
        &last,
        format!(
            r#"{{"job":"j","timestamp":{},"interval_seconds":60}}"#,
            now - 100.0
        ),
    )
    .unwrap();
    let o = run(cli().arg("check").arg(&last));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    std::fs::write(
        &last,
        format!(
            r#"{{"job":"j","timestamp":{},"interval_seconds":60}}"#,
            now - 130.0
        ),
    )
    .unwrap();
    let o = run(cli().arg("check").arg(&last));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["check", "--max-age", "soon", "x"][..],
        &["touch", "--job", "j", "--interval", "-5"],
        &["run", "--job", "j", "--interval", "5m"],
        &["bogus"],
    ] {
        let o = run(cli().args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    for args in [
        &["touch", "--job", "j", "--interval", "-5s"][..],
        &["check", "--max-age", "-5s", "x"],
        &["check", "--default-interval", "-1d", "x"],
        &["check", "--future-tolerance", "-5s", "x"],
    ] {
        let o = run(cli().args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("durations cannot be negative"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_push_to_a_dead_pool_never_breaks_the_job() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again when the listener drops
    // With credentials (a canary password): shown without them, whatever
    // goes wrong (`run` fails the test on the canary).
    let password = nexus_testkit::gitea::TOKEN;
    let url = format!("http://pinger:{password}@127.0.0.1:{port}");
    let o = run(cli()
        .args(["touch", "--job", "j", "--interval", "1h", "--url", &url])
        .env("NEXUS_PING_TOKEN", "some-token-value"));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains(&format!("push to http://127.0.0.1:{port} failed")),
        "{}",
        stderr(&o)
    );
    // The reason, not only reqwest's "error sending request".
    assert!(stderr(&o).contains("Connection refused"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("some-token-value"));
    let o = run(cli()
        .args([
            "run",
            "--job",
            "j",
            "--interval",
            "1h",
            "--url",
            &url,
            "--",
            "sh",
            "-c",
            "exit 6",
        ])
        .env("NEXUS_PING_TOKEN", "some-token-value"));
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(stderr(&o).matches("push to http://127.0.0.1:").count(), 2);
    let o = run(cli().args([
        "touch",
        "--strict",
        "--job",
        "j",
        "--interval",
        "1h",
        "--url",
        &url,
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no push token"), "{}", stderr(&o));
}

#[test]
fn check_never_follows_a_link_or_prints_its_target() {
    let dir = tempfile::tempdir().unwrap();
    // A secrets file, and a link to it where a heartbeat should be. The
    // canary must appear in neither output (`run` fails the test if it does).
    let secrets = dir.path().join("secrets.env");
    let token = nexus_testkit::gitea::TOKEN;
    std::fs::write(&secrets, format!("GITEA_TOKEN={token}\n")).unwrap();
    let link = dir.path().join("heartbeat.json");
    std::os::unix::fs::symlink(&secrets, &link).unwrap();
    let o = run(cli().arg("check").arg(&link));
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("UNREADABLE"), "{out}");
    assert!(out.contains("a symbolic link, not followed"), "{out}");
    let o = run(cli().args(["check", "--json"]).arg(&link));
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["state"], "unreadable");
    assert_eq!(v[0]["observation"], Value::Null);
}

/// A `--url` with credentials and a pool that refuses the push: the error
/// shows the URL without them (`run` fails the test on the canary; a dead
/// pool: `a_push_to_a_dead_pool_never_breaks_the_job`).
#[test]
fn a_push_url_is_shown_without_its_credentials() {
    use std::io::{Read, Write};
    let password = nexus_testkit::gitea::TOKEN;
    // A pool that answers 401 once, then is gone.
    let pool = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = pool.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = pool.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).unwrap();
        c.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
    });
    let url = format!("http://pinger:{password}@127.0.0.1:{port}/");
    let o = run(cli()
        .args(["touch", "--strict", "--job", "j", "--interval", "1h"])
        .args(["--url", &url])
        .env("NEXUS_PING_TOKEN", "some-token-value"));
    server.join().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("push to http://127.0.0.1:{port}/ refused: 401")),
        "{}",
        stderr(&o)
    );
}

/// Waits (bounded) for `cond`, polling a file system fact the job creates.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// SIGTERM, SIGINT or SIGHUP to `nexus-heartbeat run` reach the job (its
/// whole process group: a `sh -c` job's own child too), the wrapper waits
/// for it, records a failed run with the signal's code and exits with it.
#[test]
fn a_stop_signal_is_passed_on_to_the_job_and_recorded() {
    use rustix::process::{Pid, Signal, kill_process};
    for (sig, code) in [(Signal::TERM, 143), (Signal::INT, 130), (Signal::HUP, 129)] {
        let dir = tempfile::tempdir().unwrap();
        let started = dir.path().join("started");
        let grandchild = dir.path().join("grandchild");
        // The job starts a child of its own, says so through a file, and
        // waits; the signal must reach the whole group. (Its output goes
        // elsewhere, so the wrapper's captured output ends with the wrapper.)
        let script = format!(
            "exec >/dev/null 2>&1; sleep 60 & echo $! > '{g}'; echo $$ > '{s}.tmp' && mv '{s}.tmp' '{s}'; wait",
            g = grandchild.display(),
            s = started.display()
        );
        let mut c = cli();
        c.args(["run", "--job", "long", "--interval", "1h", "--dir"])
            .arg(dir.path())
            .args(["--", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let wrapper = c.spawn().unwrap();
        wait_until("the job started", || started.exists());
        let job: u32 = std::fs::read_to_string(&started)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let sleeper: u32 = std::fs::read_to_string(&grandchild)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            json(&dir.path().join("long.last"))["status"],
            "running",
            "the run is recorded as started"
        );
        kill_process(Pid::from_raw(wrapper.id() as i32).unwrap(), sig).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(wrapper.run()));
        let o = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the wrapper still ran 20 s after the signal")
            .unwrap();
        assert_eq!(o.status.code(), Some(code), "{sig:?}: {}", stderr(&o));
        let last = json(&dir.path().join("long.last"));
        assert_eq!(
            (last["status"].as_str(), last["exit_code"].as_i64()),
            (Some("failed"), Some(i64::from(code))),
            "{sig:?}: {last}"
        );
        assert!(stderr(&o).contains("passed on to sh"), "{}", stderr(&o));
        assert!(gone(job), "{sig:?}: the job {job} was orphaned");
        if sig == Signal::INT {
            // A non-interactive shell starts `&` commands ignoring SIGINT
            // (POSIX): the group got it, the sleeper ignores it.
            let _ = kill_process(Pid::from_raw(sleeper as i32).unwrap(), Signal::KILL);
        }
        wait_until("the job's own child is gone", || gone(sleeper));
    }
}
