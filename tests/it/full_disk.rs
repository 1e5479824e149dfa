//! A full disk: a small tmpfs mounted by the test and filled up. Heartbeat,
//! pool state and cell event writes fail with an error naming the file, the
//! previous files stay byte-identical, the pool keeps running and reports
//! the fault (`/health`, `/metrics`), and everything recovers when space
//! returns.
//!
//! Mounting needs root (CI runs as root). Without it these tests fail with
//! a clear message, unless `NEXUS_SKIP_MOUNT=1` is set (then they are
//! skipped, saying so).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nexus_cell::{AgentName, CellStore, Event, EventKind, EventLog, Join, NewCell, Role};
use nexus_e2e::{Run, bin};
use serde_json::Value;

use super::pool::{Daemon, free_port, get, wait_for};

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` only when mounting is impossible and `NEXUS_SKIP_MOUNT=1`.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .run();
        let why = match out {
            Ok(o) if o.status.success() => {
                return Some(Tmpfs {
                    dir: dir.to_path_buf(),
                });
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        if std::env::var("NEXUS_SKIP_MOUNT").as_deref() == Ok("1") {
            eprintln!("SKIPPED full-disk test: cannot mount a tmpfs ({why}); NEXUS_SKIP_MOUNT=1");
            return None;
        }
        panic!(
            "the full-disk tests mount a small tmpfs and need root (CI runs as root): \
             `mount -t tmpfs tmpfs {}` failed: {why}. Run as root, or set NEXUS_SKIP_MOUNT=1 to skip them.",
            dir.display()
        );
    }

    /// Fills the filesystem up; returns the filler (delete it to free space).
    fn fill(&self) -> PathBuf {
        let filler = self.dir.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        for _ in 0..10_000 {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}"); // ENOSPC
                return filler;
            }
        }
        panic!("{} never filled up", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open there: detach it lazily.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn no_temp_files(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(
        left.is_empty(),
        "temp files left in {}: {left:?}",
        dir.display()
    );
}

/// The heartbeat CLI and a cell event append on a full disk.
#[test]
fn heartbeat_and_event_writes_fail_cleanly_on_a_full_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), "128k") else {
        return;
    };
    let hb = disk.dir.join("beats/agent.json");
    let beat = || {
        Command::new(bin("nexus-heartbeat"))
            .args(["beat", "--agent", "a1", "--path"])
            .arg(&hb)
            .run()
            .unwrap()
    };
    assert!(beat().status.success());
    let events = disk.dir.join("events.jsonl");
    let agent = AgentName::new("a1").unwrap();
    let event = |n: usize| {
        Event::now(EventKind::Heartbeat {
            agent: agent.clone(),
            status: format!("{n}:{}", "x".repeat(6000)),
        })
    };
    nexus_cell::append_event(&events, &event(0)).unwrap();

    let filler = disk.fill();
    let hb_before = std::fs::read(&hb).unwrap();
    let o = beat();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "a beat on a full disk succeeded");
    assert!(err.contains(&hb.display().to_string()), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(
        std::fs::read(&hb).unwrap(),
        hb_before,
        "the old beat changed"
    );
    no_temp_files(hb.parent().unwrap());

    // Lines larger than a page: an append that fails part-way must leave
    // no fragment behind. Bounded: the slack of the last page is < 1 line.
    let mut failed = None;
    for n in 1..=4 {
        let before = std::fs::read(&events).unwrap();
        match nexus_cell::append_event(&events, &event(n)) {
            Ok(()) => continue,
            Err(e) => {
                let after = std::fs::read(&events).unwrap();
                assert!(
                    after == before,
                    "a failed append ({e}) changed the log: {} bytes before, {} after",
                    before.len(),
                    after.len()
                );
                failed = Some(e.to_string());
                break;
            }
        }
    }
    let err = failed.expect("an append on a full disk failed");
    assert!(err.contains("events.jsonl"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let log = EventLog::read(&events).unwrap();
    assert!(log.skipped.is_empty(), "{:?}", log.skipped);

    // Space returns: both work again.
    std::fs::remove_file(filler).unwrap();
    assert!(beat().status.success());
    assert_ne!(std::fs::read(&hb).unwrap(), hb_before);
    nexus_cell::append_event(&events, &event(99)).unwrap();
    let log = EventLog::read(&events).unwrap();
    assert!(log.skipped.is_empty(), "{:?}", log.skipped);
    drop(disk);
}

/// An event about agent `w2`.
fn is_w2(e: &Event) -> bool {
    serde_json::to_string(&e.kind)
        .unwrap()
        .contains("\"agent\":\"w2\"")
}

/// Whole seconds since the epoch (event stamps are compared at that grain).
fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `/health`'s body, and whether it answered 200 (else 503 or nothing).
pub(crate) fn health(base: &str) -> (Value, bool) {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "2", "-w", "\n%{http_code}"])
        .arg(format!("{base}/health"))
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (
        serde_json::from_str(body).unwrap_or(Value::Null),
        code == "200",
    )
}

/// The pool on a full disk: its state, the cell's `state.json` and its own
/// heartbeat cannot be written; it keeps sweeping, says so on `/health`
/// (503, `faults` naming the files) and `/metrics`, keeps the previous
/// files byte-identical, and recovers when space returns.
#[test]
fn the_pool_runs_through_a_full_disk_and_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), "128k") else {
        return;
    };
    let root = disk.dir.clone();
    let store = CellStore::new(root.join("cells"));
    std::fs::create_dir_all(root.join("cells")).unwrap();
    let cell = store
        .provision(NewCell {
            mission: "full disk".into(),
            created_by: "tests".into(),
            ..NewCell::default()
        })
        .unwrap()
        .id();
    store
        .join(
            &cell,
            Join {
                agent: AgentName::new("w1").unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: None,
                revive_policy: Some(nexus_cell::RevivePolicy::Never),
            },
        )
        .unwrap();
    // w2 beats once, before the disk fills: it goes stale (2 s) while the
    // cell's event log cannot be written.
    store
        .join(
            &cell,
            Join {
                agent: AgentName::new("w2").unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: None,
                revive_policy: Some(nexus_cell::RevivePolicy::Never),
            },
        )
        .unwrap();
    let w2_beat = store
        .open(&cell)
        .unwrap()
        .heartbeat_path(&AgentName::new("w2").unwrap());
    let o = Command::new(bin("nexus-heartbeat"))
        .args(["beat", "--agent", "w2", "--path"])
        .arg(&w2_beat)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = tmp.path().join("pool.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pool]\npoll_interval = \"1s\"\nprobe_timeout = \"3s\"\nheartbeat_dir = \"{}\"\n\n[cells]\nroot = \"{}\"\nheartbeat_stale_threshold = \"2s\"\n",
            root.join("heartbeats").display(),
            root.join("cells").display()
        ),
    )
    .unwrap();
    let w2_events = || {
        store
            .open(&cell)
            .unwrap()
            .events()
            .unwrap()
            .events
            .iter()
            .filter(|(_, e)| is_w2(e))
            .count()
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = tmp.path().join("pool.log");
    let _d = Daemon(
        Command::new(bin("resurrection-pool"))
            .arg("--config")
            .arg(&cfg)
            .arg("--state-file")
            .arg(root.join("pool-state.json"))
            .arg("--pid-file")
            .arg(tmp.path().join("pool.pid"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("RESURRECTION_CONFIG")
            .env("NEXUS_LOG", "warn")
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let state = root.join("pool-state.json");
    let cell_state = store.open(&cell).unwrap().state_path();
    let own = root.join("heartbeats/resurrection_pool.last");
    get(&format!("{base}/health"));
    wait_for("first writes", || {
        state.exists() && cell_state.exists() && own.exists()
    });
    assert!(health(&base).1, "healthy before the disk fills");

    let filler = disk.fill();
    // The log's last page may have room for a few lines: fill it with
    // short lines until one fails (bounded: a page holds < 100 of them).
    let log_path = store.open(&cell).unwrap().events_path();
    let pad = Event::now(EventKind::Heartbeat {
        agent: AgentName::new("pad").unwrap(),
        status: "x".into(),
    });
    assert!(
        (0..200).any(|_| nexus_cell::append_event(&log_path, &pad).is_err()),
        "the event log still takes lines on a full disk"
    );
    let filled_at = epoch_now();
    let w2_before = w2_events();
    wait_for("the faults on /health", || {
        let (h, ok) = health(&base);
        let faults = h["faults"].to_string();
        !ok && h["status"] == "degraded"
            && faults.contains("pool-state.json")
            && faults.contains(&cell_state.display().to_string())
            && faults.contains("resurrection_pool.last")
            && faults.contains("No space left on device")
            // w2 went stale: its events wait to be written.
            && faults.contains("events.jsonl")
            && faults.contains("events kept to retry")
    });
    let before: Vec<Vec<u8>> = [&state, &cell_state, &own]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let sweeps = health(&base).0["sweeps"].as_u64().unwrap();
    wait_for("three sweeps on a full disk", || {
        health(&base).0["sweeps"].as_u64().unwrap() >= sweeps + 3
    });
    for (p, b) in [&state, &cell_state, &own].iter().zip(&before) {
        assert_eq!(&std::fs::read(p).unwrap(), b, "{} changed", p.display());
        let _: Value = serde_json::from_slice(b).unwrap();
        no_temp_files(p.parent().unwrap());
    }
    let metrics = get(&format!("{base}/metrics"));
    // state, cell-state, heartbeat and events.
    assert!(metrics.contains("nexus_pool_write_faults 4"), "{metrics}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("write fault (state)"), "{logged}");
    assert!(logged.contains("No space left on device"), "{logged}");

    assert_eq!(
        w2_events(),
        w2_before,
        "nothing was written on the full disk"
    );
    std::fs::remove_file(filler).unwrap();
    let freed_at = epoch_now();
    wait_for("healthy again", || {
        let (h, ok) = health(&base);
        ok && h["faults"].as_array().is_some_and(Vec::is_empty)
    });
    wait_for("the files written again", || {
        [&state, &cell_state, &own]
            .iter()
            .zip(&before)
            .all(|(p, b)| std::fs::read(p).is_ok_and(|now| &now != b))
    });
    assert!(get(&format!("{base}/metrics")).contains("nexus_pool_write_faults 0"));
    // The events of the outage were kept and written, with the time they
    // happened, in order.
    let events = store.open(&cell).unwrap().events().unwrap();
    assert!(events.skipped.is_empty(), "{:?}", events.skipped);
    let w2: Vec<&Event> = events
        .events
        .iter()
        .filter(|(_, e)| is_w2(e))
        .map(|(_, e)| e)
        .skip(w2_before)
        .collect();
    assert!(!w2.is_empty(), "w2's events of the outage were lost");
    assert!(
        w2.iter().all(|e| {
            let ts = e.ts.unix_timestamp();
            ts >= filled_at && ts <= freed_at
        }),
        "stamped when they happened: {w2:?}"
    );
    assert!(
        events.events.windows(2).all(|p| p[0].1.ts <= p[1].1.ts),
        "in order"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("write fault cleared")
    );
    drop(_d);
    drop(disk);
}
