//! Heartbeat writes under concurrency and SIGKILL, and agent -> CLI checks.

use nexus_e2e::Run;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexus_heartbeat::{AgentHeartbeat, HeartbeatWriter};
use nexus_stdx::write_atomic;

/// A document whose padding encodes its cycle: torn writes cannot pass.
fn stress_doc(cycle: u64, pad_len: usize) -> Vec<u8> {
    let digit = char::from(b'0' + (cycle % 10) as u8);
    let v = serde_json::json!({
        "timestamp": 1.0 + cycle as f64, "pid": 1, "cycle": cycle, "model": "m",
        "status": "thinking", "pad": digit.to_string().repeat(pad_len),
    });
    serde_json::to_vec(&v).unwrap()
}

/// Panics unless `bytes` is one whole stress document; returns its cycle.
fn assert_whole(bytes: &[u8], pad_len: usize) -> u64 {
    let doc: AgentHeartbeat = serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "reader saw invalid JSON ({e}), {} bytes: {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        )
    });
    let pad = doc.extra["pad"].as_str().expect("pad is a string");
    let digit = char::from(b'0' + (doc.cycle % 10) as u8);
    assert_eq!(pad.len(), pad_len, "pad length of cycle {}", doc.cycle);
    assert!(
        pad.chars().all(|c| c == digit),
        "torn pad in cycle {}",
        doc.cycle
    );
    doc.cycle
}

#[test]
fn concurrent_writers_and_readers_never_see_partial_json() {
    const WRITERS: u64 = 4;
    const ROUNDS: u64 = 2_000;
    const PAD: usize = 8 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heartbeat.json");
    write_atomic(&path, &stress_doc(0, PAD), false).unwrap();
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                        let bytes = std::fs::read(&path).unwrap();
                        assert_whole(&bytes, PAD);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let path = &path;
                s.spawn(move || {
                    for i in 0..ROUNDS {
                        write_atomic(path, &stress_doc(w * ROUNDS + i, PAD), false).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
    });
    assert!(Instant::now() < deadline, "test ran out of time");
    assert!(reads.load(Ordering::Relaxed) > 100, "readers barely ran");
    // The last write of some writer is on disk, whole.
    assert_whole(&std::fs::read(&path).unwrap(), PAD);
    // No temp files are left by completed writes.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

fn read_cycle(path: &Path, pad: usize) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    Some(assert_whole(&bytes, pad))
}

#[test]
fn sigkill_mid_write_leaves_the_old_or_the_new_document() {
    const ROUNDS: u64 = 30;
    const PAD: usize = 256 * 1024; // large, so kills often land mid-write
    let writer = nexus_e2e::bin("heartbeat-stress-writer");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heartbeat.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_seen = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&writer)
            .arg(&path)
            .arg(PAD.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "round {round}");
        // Let the writer get `round % 7 + 1` documents further, then kill it.
        let target = round % 7 + 1;
        while read_cycle(&path, PAD).unwrap_or(0) < target {
            assert!(Instant::now() < deadline, "writer made no progress");
            std::thread::yield_now();
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let cycle = read_cycle(&path, PAD).expect("file exists after the kill");
        assert!(cycle >= target, "round {round}: went back to cycle {cycle}");
        last_seen = cycle;
    }
    assert!(last_seen > 0);
}

#[test]
fn an_agent_linking_the_library_is_checked_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.json");
    let mut w = HeartbeatWriter::new(path.clone());
    w.beat(41, "timmy:v0.1-q4", "thinking").unwrap();
    w.beat(42, "timmy:v0.1-q4", "thinking").unwrap();
    let out = Command::new(nexus_e2e::bin("nexus-heartbeat"))
        .args(["check", "--json", "--max-age", "5m"])
        .arg(&path)
        .run()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["state"], "fresh");
    assert_eq!(v[0]["observation"]["fields"]["cycle"], 42);
    assert_eq!(v[0]["observation"]["fields"]["seq"], 2);
    assert_eq!(v[0]["max_age_seconds"], 300.0);
}

/// A gateway's `heartbeat_path` replaced by a link (to a secrets file, or
/// to a heartbeat that would pass) is reported as such by the real pool,
/// never followed: the issue says so, and the target's content appears
/// neither in the issue (the fake Gitea fails on a canary), `/api/agents`
/// nor the status page.
#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_gateway_heartbeat_is_reported_not_followed() {
    use crate::pool::{Daemon, Fleet, free_port, get, wait_for};
    use nexus_testkit::gitea::{Fake, REPO, TOKEN};
    let fake = Fake::start().await;
    let f = Fleet::new();
    let secrets = f.root.join("secrets.env");
    std::fs::write(&secrets, format!("GITEA_TOKEN={TOKEN}\n")).unwrap();
    let alive = f.root.join("alive.json");
    HeartbeatWriter::new(alive.clone())
        .beat(1, &format!("model-{TOKEN}"), "thinking")
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut extra = String::from(
        "[incident]\nassignees = [\"alice\"]\n\n[missions.m]\nagents = [\"leaky\", \"faked\"]\nrevive_policy = \"never\"\n",
    );
    for (name, target) in [("leaky", &secrets), ("faked", &alive)] {
        let link = f.root.join(format!("{name}.json"));
        std::os::unix::fs::symlink(target, &link).unwrap();
        extra.push_str(&format!(
            "\n[[gateway]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             heartbeat_path = \"{}\"\nstale_threshold = \"60s\"\n",
            link.display()
        ));
    }
    let cfg = f.config(&extra);
    let http = free_port();
    let _d = Daemon(
        f.cmd(&cfg)
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .env("GITEA_URL", fake.url())
            .env("NEXUS_REPO", REPO)
            .env("GITEA_TOKEN", TOKEN)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let not_followed = "heartbeat unreadable: a symbolic link, not followed";
    wait_for("an issue for each gateway (or a leak)", || {
        let st = fake.st();
        st.issues.len() == 2 || !st.leaks.is_empty()
    });
    fake.assert_no_leaks();
    for issue in &fake.st().issues {
        assert!(issue.body.contains(not_followed), "{}", issue.body);
    }
    let base = format!("http://127.0.0.1:{http}");
    let agents = get(&format!("{base}/api/agents"));
    let page = get(&format!("{base}/"));
    for (what, text) in [("/api/agents", &agents), ("the status page", &page)] {
        nexus_e2e::assert_no_canary(what, text.as_bytes());
        assert!(
            !text.contains("model-"),
            "{what} shows a link's target: {text}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&agents).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{agents}");
    for a in v.as_array().unwrap() {
        assert_eq!(a["state"], "dead", "{a}");
    }
    fake.assert_no_leaks();
    fake.assert_contract();
    drop(listener);
}
