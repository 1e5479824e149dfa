//! The resurrection pool's edges through its real binary: clients that hold
//! connections open under a lowered open-file limit, a second pool on the
//! same cells root, a bad state file, the modes of the pool's files, and
//! `/ping` on a dry run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nexus_cell::RevivePolicy;
use nexus_e2e::{Run, bin};
use serde_json::Value;

use crate::pool::{Daemon, Fleet, cron_check, free_port, get, job_status, wait_for};

/// Runs `cmd` to its end, which must come within `limit`: else it is
/// killed and the test fails with what it printed.
fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.run());
    });
    match rx.recv_timeout(limit) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            crate::pool::kill("-KILL", pid);
            let o = rx.recv().unwrap().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The pool on `f`'s cells with its own state file (and so its own PID
/// file): a second pool as an operator would start one.
fn pool_with_state(cfg: &Path, state: &Path) -> Command {
    let mut c = Command::new(bin("resurrection-pool"));
    c.arg("--config")
        .arg(cfg)
        .arg("--state-file")
        .arg(state)
        .env_remove("RESURRECTION_CONFIG")
        .env_remove("GITEA_TOKEN")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("TELEGRAM_CHAT_ID")
        .env("NEXUS_LOG", "warn");
    c
}

/// The daemon of [`pool_with_state`] (with `extra` flags) on a free port,
/// answering; killed when dropped.
fn serve_with_state(cfg: &Path, state: &Path, extra: &[&str]) -> (Daemon, String) {
    let port = free_port();
    let d = Daemon(
        pool_with_state(cfg, state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("NEXUS_PING_TOKEN", PUSH_TOKEN)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    get(&format!("{url}/health"));
    (d, url)
}

/// An agent's record in the pool state at `path` (`Null` if none yet).
fn record(path: &Path, key: &str) -> Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|v| v["records"][key].clone())
        .unwrap_or(Value::Null)
}

/// Pool A escalates an agent after its two attempts; pool B, on the same
/// cells root with a state of its own, is refused (exit 2, naming the root
/// and A's PID): as a daemon at once, as `--once` after waiting a probe
/// timeout and a second. No launch beyond A's budget. Once A is gone, B
/// may start.
#[test]
fn a_second_pool_on_the_same_cells_root_is_refused() {
    let f = Fleet::new();
    f.join("b1", RevivePolicy::Auto, false); // never comes back
    let cfg = f.config("max_attempts = 2\nslow_lane = 100000");
    let (a, _port) = f.serve(&cfg);
    let key = format!("{}/b1", f.cell);
    let state_a = f.root.join("pool-state.json");
    wait_for("pool A escalates b1", || {
        record(&state_a, &key)["state"] == "escalated"
    });
    // A first start and two revives (the budget is for revives).
    assert_eq!(f.launches("b1"), 3);
    let root = f.root.join("cells");
    let state_b = f.root.join("b/pool-state.json");
    let named = |o: &Output| {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&*root.to_string_lossy()) && err.contains(&format!("PID {}", a.0.id())),
            "{err}"
        );
    };
    let o = run_within(
        pool_with_state(&cfg, &state_b).args(["--listen", &format!("127.0.0.1:{}", free_port())]),
        Duration::from_secs(10),
    );
    named(&o);
    let t = Instant::now();
    let o = run_within(
        pool_with_state(&cfg, &state_b).arg("--once"),
        Duration::from_secs(20),
    );
    named(&o);
    // probe_timeout = 3s in the fleet's config, plus a second.
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(f.launches("b1"), 3, "no launch beyond pool A's budget");
    assert!(
        record(&state_b, &key).is_null(),
        "pool B never kept a budget of its own"
    );
    // The lock dies with its holder, even by SIGKILL.
    drop(a);
    let o = run_within(
        pool_with_state(&cfg, &state_b).arg("--once"),
        Duration::from_secs(20),
    );
    assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Every file the pool creates in its state directory is 0600 and the
/// directory 0700 (the PID file, the state, the launch journal while a
/// launch is in flight); so is the cells root's lock file.
#[test]
fn the_pools_own_files_are_private() {
    let f = Fleet::new();
    f.join("a1", RevivePolicy::Auto, true);
    let cfg = f.config("");
    let state_dir = f.root.join("var/state");
    let state = state_dir.join("pool-state.json");
    let _d = serve_with_state(&cfg, &state, &[]);
    let key = format!("{}/a1", f.cell);
    wait_for("a1 revived and healthy", || {
        record(&state, &key)["state"] == "healthy"
    });
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    let mut seen = Vec::new();
    let mut dirs = vec![f.root.join("var/state")];
    assert_eq!(mode(&f.root.join("var")), 0o700);
    while let Some(dir) = dirs.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                dirs.push(p);
            } else {
                // A save in progress shows its temporary file, which may be
                // renamed away between the listing and the look: private
                // while it exists, and not one of the pool's files.
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(meta) = std::fs::symlink_metadata(&p) else {
                    assert!(name.contains(".tmp"), "{} vanished", p.display());
                    continue;
                };
                assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{}", p.display());
                if !name.contains(".tmp") {
                    seen.push(name);
                }
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["pool-state.json", "pool-state.pid"]);
    let lock = f.root.join("cells").join(nexus_pool::files::CELLS_LOCK);
    assert_eq!(mode(&lock), 0o600);
}

/// A FIFO at the state path no longer hangs `--once`, a truncated state no
/// longer stops the daemon: each is named as the state file, set aside
/// beside it, and the pool goes on with an empty state.
#[test]
fn a_fifo_or_a_truncated_state_file_is_set_aside() {
    let f = Fleet::new();
    f.join("w1", RevivePolicy::Never, false);
    let cfg = f.config("");
    let state = f.root.join("pool-state.json");
    let aside = || {
        std::fs::read_dir(&f.root)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("pool-state.json.corrupt-")
            })
            .count()
    };
    assert!(
        Command::new("mkfifo")
            .arg(&state)
            .status()
            .unwrap()
            .success()
    );
    let o = run_within(f.cmd(&cfg).arg("--once"), Duration::from_secs(20));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "w1 is dead: {err}");
    assert!(
        err.contains(&format!(
            "bad pool state file {}: not a regular file (a FIFO)",
            state.display()
        )) && err.contains("set aside as"),
        "{err}"
    );
    assert!(!err.contains("invalid pool config"), "{err}");
    assert_eq!(aside(), 1);
    assert!(state.is_file(), "a new state was saved");
    // A truncated one under the daemon.
    std::fs::write(&state, br#"{"records": {"#).unwrap();
    let (d, port) = f.serve(&cfg);
    let health: Value =
        serde_json::from_str(&get(&format!("http://127.0.0.1:{port}/health"))).unwrap();
    assert_eq!(health["service"], "resurrection-pool");
    wait_for("a new state saved", || {
        record(&state, &format!("{}/w1", f.cell))["state"] == "dead"
    });
    assert_eq!(aside(), 2);
    drop(d);
}

/// A pool with its open-file limit lowered to 128 (soft and hard, so it
/// cannot raise it), flooded with 500 connections that send half a request
/// and wait: it keeps its reserve, so it still reads the cells, notices a
/// death, saves its state and writes its heartbeat; every connection is
/// closed within the header timeout (5 s); `/health` answers afterwards.
#[test]
fn a_flood_of_idle_connections_under_a_low_fd_limit_costs_the_pool_nothing() {
    let f = Fleet::new();
    f.join("w1", RevivePolicy::Never, false);
    let cfg = f.config("");
    let port = free_port();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\""])
        .arg(bin("resurrection-pool"));
    let inner = f.cmd(&cfg);
    cmd.args(inner.get_args())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("RESURRECTION_CONFIG")
        .env_remove("GITEA_TOKEN")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("TELEGRAM_CHAT_ID")
        .env("NEXUS_LOG", "warn")
        .stderr(Stdio::null());
    let d = Daemon(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    get(&format!("{base}/health"));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.0.id())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("128")),
        "{limits}"
    );
    // w1 beats (through the test), so it is healthy.
    let hb = f.heartbeat_path("w1");
    let mut w = nexus_heartbeat::HeartbeatWriter::new(hb.clone()).durable(false);
    w.beat(1, "test", "ok").unwrap();
    let key = format!("{}/w1", f.cell);
    let state = f.root.join("pool-state.json");
    wait_for("w1 healthy", || record(&state, &key)["state"] == "healthy");
    // The flood.
    let mut clients = Vec::with_capacity(500);
    for _ in 0..500 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("the pool stopped accepting connections");
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: pool\r\n");
        clients.push(s);
    }
    let sent = Instant::now();
    let own = f.root.join("heartbeats/resurrection_pool.last");
    let own_seq = || {
        std::fs::read(&own)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0)
    };
    let seq_before = own_seq();
    // A death during the flood: the heartbeat is gone.
    std::fs::remove_file(&hb).unwrap();
    wait_for("w1's death noticed and saved", || {
        record(&state, &key)["state"] == "dead"
    });
    wait_for("the pool's own heartbeat written", || {
        own_seq() > seq_before
    });
    // Every connection closed within the header timeout.
    let deadline = sent + Duration::from_secs(5 + 3);
    let mut open = 0;
    for mut s in clients {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        open += usize::from(!closed);
    }
    assert_eq!(
        open,
        0,
        "connections still open {:?} after the flood",
        sent.elapsed()
    );
    let health: Value = serde_json::from_str(&get(&format!("{base}/health"))).unwrap();
    assert_eq!(health["service"], "resurrection-pool");
}

/// The daemon with `[ping]` serving a token.
fn ping_daemon(f: &Fleet, pings: &Path, state: &Path, extra: &[&str]) -> (Daemon, String) {
    let cfg = f.config(&format!("[ping]\ndir = \"{}\"\n", pings.display()));
    serve_with_state(&cfg, state, extra)
}

const PUSH_TOKEN: &str = "a-push-token-of-some-length";

/// `nexus-heartbeat run --url` on "host B" pushes a successful
/// `db_backup`; the local `db_backup` failed. The pool keeps the push as
/// `db_backup@hostB`, so `cron-heartbeat-check` over both directories
/// reports the local failure and the remote success, neither hiding the
/// other.
#[test]
fn a_pushed_run_never_hides_the_local_job_of_the_same_name() {
    let f = Fleet::new();
    f.join("w1", RevivePolicy::Never, false);
    let pings = f.root.join("pings");
    let local = f.root.join("local");
    let (_d, url) = ping_daemon(&f, &pings, &f.root.join("pool-state.json"), &[]);
    let run = |args: &[&str], cmd: &str| {
        Command::new(bin("nexus-heartbeat"))
            .args(["run", "--job", "db_backup", "--interval", "1h"])
            .args(args)
            .args(["--", "sh", "-c", cmd])
            .env("NEXUS_PING_TOKEN", PUSH_TOKEN)
            .run()
            .unwrap()
    };
    let o = run(&["--dir", &local.to_string_lossy()], "exit 3");
    assert_eq!(o.status.code(), Some(3));
    // The push comes after the local failure: the newer record.
    let o = run(&["--url", &url, "--host", "hostB"], "exit 0");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (v, code) = cron_check(&[&local, &pings]);
    let status = |job: &str| job_status(&v, job);
    assert_eq!(status("db_backup"), "FAILED", "{v:#}");
    assert_eq!(status("db_backup@hostB"), "OK", "{v:#}");
    assert_eq!(code, Some(1), "a failed job fails the check");
    assert!(pings.join("db_backup@hostB.last").is_file());
}

/// A dry-run pool answers a ping 503 and writes no `.last` file (nor its
/// PID file, state directory or lock).
#[test]
fn a_dry_run_pool_records_no_ping() {
    let f = Fleet::new();
    f.join("w1", RevivePolicy::Never, false);
    let pings = f.root.join("pings");
    let state_dir = f.root.join("dry");
    let state = state_dir.join("pool-state.json");
    let (_d, url) = ping_daemon(&f, &pings, &state, &["--dry-run"]);
    let o = Command::new("curl")
        .args(["-s", "-X", "POST", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {PUSH_TOKEN}"))
        .arg(format!("{url}/ping/db_backup?host=hostB"))
        .run()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with("\n503") && out.contains("dry run"), "{out}");
    assert!(!pings.exists(), "the dry run wrote a ping");
    assert!(
        !state_dir.exists(),
        "the dry run created its state directory"
    );
    assert!(
        !f.root
            .join("cells")
            .join(nexus_pool::files::CELLS_LOCK)
            .exists(),
        "the dry run took the cells root's lock"
    );
}
