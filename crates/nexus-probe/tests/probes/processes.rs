//! Real processes (running, zombie, stopped), PID files, a fake `/proc` with
//! unreadable entries, and heartbeat freshness with start-up grace.

use std::path::Path;
use std::time::Duration;

use nexus_probe::{
    HeartbeatSpec, MatchMode, ProbeKind, ProbeSpec, ProcTable, ProcessSpec, Runner, RunnerConfig,
    Status,
};
use nexus_testkit::Sleeper;
use rustix::process::Signal;

use super::{expect, run};

fn pattern(name: &str) -> ProcessSpec {
    ProcessSpec::pattern(name)
}

#[tokio::test]
async fn running_child_and_detached_processes() {
    let child = Sleeper::child("nexus-probe-test-child");
    // Our own children are excluded by default (the watchdog's syntax-check
    // interpreter must never count as the agent) ...
    let v = run(ProbeKind::Process(pattern(&child.name))).await;
    expect(
        &v,
        Status::Critical,
        &format!("No process matching '{}'", child.name),
    );
    // ... unless the caller launches the agents itself (the resurrection pool).
    let v = run(ProbeKind::Process(
        pattern(&child.name).exclude_children(false),
    ))
    .await;
    expect(&v, Status::Ok, &format!("Running (PID: {})", child.pid));
    let age = v.details["processes"][0]["age_seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&age), "age {age}");

    let detached = Sleeper::detached("nexus-probe-test-detached");
    let v = run(ProbeKind::Process(pattern(&detached.name))).await;
    expect(&v, Status::Ok, &format!("Running (PID: {})", detached.pid));
    assert_eq!(v.details["pids"][0], detached.pid);
    // Substring mode matches a fragment, argv mode needs a word.
    let frag = &detached.name[..detached.name.len() - 2];
    let v = run(ProbeKind::Process(pattern(frag).mode(MatchMode::Substring))).await;
    expect(&v, Status::Ok, "Running");
    let v = run(ProbeKind::Process(pattern(frag))).await;
    expect(&v, Status::Critical, "No process matching");

    // By PID.
    let v = run(ProbeKind::Process(ProcessSpec::pid(detached.pid))).await;
    expect(&v, Status::Ok, &format!("Running (PID: {})", detached.pid));
}

#[tokio::test]
async fn the_prober_never_matches_itself() {
    let me = std::env::current_exe().unwrap();
    let name = me.file_name().unwrap().to_str().unwrap().to_string();
    let v = run(ProbeKind::Process(
        pattern(&name).mode(MatchMode::Substring),
    ))
    .await;
    assert_ne!(
        v.details["pids"].as_array().unwrap().first(),
        Some(&std::process::id().into()),
        "{v}"
    );
    let table = ProcTable::scan().unwrap();
    let found = table.find(&name, MatchMode::Substring, true);
    assert!(found.iter().all(|e| e.pid != std::process::id()));
    assert!(table.get(std::process::id()).is_some(), "the scan sees us");
}

#[tokio::test]
async fn zombie_is_dead_and_stopped_is_a_warning() {
    // A child that exits and is not reaped yet: a zombie.
    let mut zombie = std::process::Command::new("true").spawn().unwrap();
    let pid = zombie.id();
    // Wait for the state change (bounded), not a fixed sleep.
    let stat = format!("/proc/{pid}/stat");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
        assert!(
            std::time::Instant::now() < deadline,
            "child never became a zombie"
        );
        std::thread::yield_now();
    }
    let v = run(ProbeKind::Process(ProcessSpec::pid(pid))).await;
    expect(&v, Status::Critical, &format!("PID {pid} is a zombie"));
    zombie.wait().unwrap();
    let v = run(ProbeKind::Process(ProcessSpec::pid(pid))).await;
    expect(&v, Status::Critical, &format!("PID {pid} is not running"));

    let stopped = Sleeper::detached("nexus-probe-test-stopped");
    stopped.signal(Signal::STOP);
    let stat = format!("/proc/{}/stat", stopped.pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&stat).unwrap().contains(") T ") {
        assert!(std::time::Instant::now() < deadline, "never stopped");
        std::thread::yield_now();
    }
    let v = run(ProbeKind::Process(pattern(&stopped.name))).await;
    expect(&v, Status::Warning, "Stopped, not running");
    let v = run(ProbeKind::Process(ProcessSpec::pid(stopped.pid))).await;
    expect(&v, Status::Warning, "is stopped (state T)");
}

#[tokio::test]
async fn pidfiles() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = Sleeper::detached("nexus-probe-test-pidfile");
    let file = dir.path().join("agent.pid");
    let s = ProcessSpec {
        pattern: None,
        pidfile: Some(file.clone()),
        ..pattern("x")
    };
    std::fs::write(&file, format!("{}\n", sleeper.pid)).unwrap();
    expect(
        &run(ProbeKind::Process(s.clone())).await,
        Status::Ok,
        "Running",
    );
    std::fs::write(&file, "not a pid").unwrap();
    expect(
        &run(ProbeKind::Process(s.clone())).await,
        Status::Critical,
        "does not hold a PID",
    );
    std::fs::write(&file, [0xff, 0x00, 0x13]).unwrap();
    expect(
        &run(ProbeKind::Process(s.clone())).await,
        Status::Critical,
        "does not hold a PID",
    );
    std::fs::remove_file(&file).unwrap();
    expect(
        &run(ProbeKind::Process(s)).await,
        Status::Critical,
        "is missing",
    );
}

/// A directory laid out like /proc: `entries` are (pid, ppid, state, start_ticks, argv).
fn fake_proc(root: &Path, uptime: f64, entries: &[(u32, u32, char, u64, &str)]) {
    std::fs::write(root.join("uptime"), format!("{uptime} 0.0\n")).unwrap();
    for &(pid, ppid, state, start, argv) in entries {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let comm: String = argv.split(' ').next().unwrap().chars().take(15).collect();
        let stat = format!(
            "{pid} ({comm}) {state} {ppid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0"
        );
        std::fs::write(d.join("stat"), stat).unwrap();
        std::fs::write(d.join("cmdline"), argv.replace(' ', "\0")).unwrap();
    }
}

#[tokio::test]
async fn unreadable_proc_entries_make_no_match_unknown() {
    let root = tempfile::tempdir().unwrap();
    let me = std::process::id();
    fake_proc(
        root.path(),
        1000.0,
        &[(1, 0, 'S', 0, "/sbin/init"), (me, 1, 'R', 10, "prober")],
    );
    // An entry whose cmdline cannot be read (a directory: EISDIR even as root).
    std::fs::create_dir_all(root.path().join("777/cmdline")).unwrap();
    std::fs::write(
        root.path().join("777/stat"),
        "777 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0",
    )
    .unwrap();
    // And one whose stat is garbage.
    std::fs::create_dir_all(root.path().join("778")).unwrap();
    std::fs::write(root.path().join("778/stat"), [0u8, 159, 146, 150]).unwrap();

    let runner = Runner::default().with_proc_root(root.path());
    let probe = |k| ProbeSpec::new("p", k);
    let v = runner
        .run_one(&probe(ProbeKind::Process(pattern("nexus_think"))))
        .await;
    assert_eq!(v.status, Status::Unknown, "{v}");
    assert!(
        v.summary.contains("2 /proc entries could not be read"),
        "{v}"
    );
    let unreadable = v.details["unreadable"].to_string();
    assert!(
        unreadable.contains("/777/cmdline") && unreadable.contains("/778/stat"),
        "{unreadable}"
    );
    let v = runner
        .run_one(&probe(ProbeKind::Process(ProcessSpec::pid(777))))
        .await;
    expect(&v, Status::Unknown, "cannot inspect PID 777");
    let v = runner
        .run_one(&probe(ProbeKind::Process(ProcessSpec::pid(778))))
        .await;
    expect(&v, Status::Unknown, "cannot parse");

    // A /proc that cannot be listed at all.
    let runner = Runner::default().with_proc_root(root.path().join("nope"));
    let v = runner
        .run_one(&probe(ProbeKind::Process(pattern("nexus_think"))))
        .await;
    expect(&v, Status::Unknown, "cannot scan processes");
}

#[tokio::test]
async fn ancestors_and_children_are_excluded_in_a_fake_table() {
    let root = tempfile::tempdir().unwrap();
    let tk = rustix::param::clock_ticks_per_second();
    fake_proc(
        root.path(),
        5000.0,
        &[
            (1, 0, 'S', 0, "/sbin/init"),
            (10, 1, 'S', 100, "bash -c watchdog --pattern nexus_think"),
            (20, 10, 'S', 200, "watchdog --pattern nexus_think"),
            (
                30,
                20,
                'S',
                300,
                "python3 -I -B -c code /srv/nexus_think.py",
            ),
            (31, 20, 'S', 300, "python3 /srv/nexus_think.py"),
            (
                40,
                1,
                'S',
                4000 * tk,
                "python3 /srv/nexus_think.py --model m",
            ),
            (41, 1, 'Z', 400_000, "python3 /srv/nexus_think.py"),
            (50, 1, 'S', 100, "vim /srv/nexus_think.py"),
        ],
    );
    let t = ProcTable::scan_at(root.path(), 20).unwrap();
    let pids = |mode, kids| {
        t.find("nexus_think", mode, kids)
            .iter()
            .map(|e| e.pid)
            .collect::<Vec<_>>()
    };
    assert_eq!(pids(MatchMode::Argv, true), [40, 41]);
    assert_eq!(pids(MatchMode::Argv, false), [31, 40, 41]);
    assert_eq!(pids(MatchMode::Substring, true), [40, 41, 50]);
    let age = t.age_seconds(t.get(40).unwrap()).unwrap();
    assert!((age - 1000.0).abs() < 0.01, "{age}");

    // Through the runner (self = this test process, not in the fake table).
    let runner = Runner::default().with_proc_root(root.path());
    let v = runner
        .run_one(&ProbeSpec::new(
            "p",
            ProbeKind::Process(pattern("nexus_think")),
        ))
        .await;
    assert_eq!(v.status, Status::Ok, "{v}");
    assert_eq!(v.details["zombies"], serde_json::json!([41]));
}

fn write_heartbeat(path: &Path, age: f64) {
    let ts = nexus_stdx::now_epoch() - age;
    std::fs::write(
        path,
        format!(r#"{{"timestamp": {ts}, "cycle": 7, "model": "timmy", "pid": 1}}"#),
    )
    .unwrap();
}

#[tokio::test]
async fn heartbeat_fresh_stale_corrupt_missing_and_grace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heartbeat.json");
    let spec = HeartbeatSpec::new(&path);

    write_heartbeat(&path, 10.0);
    let v = run(ProbeKind::Heartbeat(spec.clone())).await;
    expect(&v, Status::Ok, "Alive: cycle=7, 10s ago, model=timmy");
    assert_eq!(v.details["cycle"], 7);

    write_heartbeat(&path, 400.0);
    let v = run(ProbeKind::Heartbeat(spec.clone())).await;
    expect(
        &v,
        Status::Critical,
        "Stale heartbeat: 400s ago (threshold 300s), cycle=7, model=timmy",
    );

    std::fs::write(&path, [0u8, 0xff, 0xfe]).unwrap();
    let v = run(ProbeKind::Heartbeat(spec.clone())).await;
    expect(&v, Status::Critical, "Heartbeat file unreadable");

    // A timestamp that is no time: the message (the seed's words, docs/SPEC.md
    // §2.3.3) names the file and the field.
    std::fs::write(&path, r#"{"timestamp": "abc", "cycle": 7}"#).unwrap();
    let v = run(ProbeKind::Heartbeat(spec.clone())).await;
    expect(
        &v,
        Status::Critical,
        &format!(
            "Heartbeat file unreadable: {}: field `timestamp`: a string that is neither epoch seconds nor ISO-8601",
            path.display()
        ),
    );

    write_heartbeat(&path, -3600.0);
    expect(
        &run(ProbeKind::Heartbeat(spec.clone())).await,
        Status::Critical,
        "clock skew",
    );

    std::fs::remove_file(&path).unwrap();
    let v = run(ProbeKind::Heartbeat(spec.clone())).await;
    expect(&v, Status::Critical, "No heartbeat file at");

    // Start-up grace: the agent is younger than the threshold.
    let agent = Sleeper::detached("nexus-probe-test-agent");
    let mut graced = spec.clone();
    graced.grace = Some(pattern(&agent.name));
    let v = run(ProbeKind::Heartbeat(graced.clone())).await;
    expect(&v, Status::Warning, "starting (no heartbeat yet)");
    assert_eq!(v.details["pid"], agent.pid);
}

/// A heartbeat replaced by a link to a secrets file (or to a heartbeat that
/// would pass) is reported, never followed: nothing of the target reaches
/// the verdict that becomes an issue body or `--json`.
#[tokio::test]
async fn a_symlinked_heartbeat_is_reported_and_its_target_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, "GITEA_TOKEN=s3cr3t-canary\n").unwrap();
    let alive = dir.path().join("alive.json");
    let ts = nexus_stdx::now_epoch();
    std::fs::write(
        &alive,
        format!(r#"{{"timestamp": {ts}, "cycle": 1, "model": "s3cr3t-model"}}"#),
    )
    .unwrap();
    for target in [&secrets, &alive] {
        let path = dir.path().join("heartbeat.json");
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path).unwrap();
        let v = run(ProbeKind::Heartbeat(HeartbeatSpec::new(&path))).await;
        expect(&v, Status::Critical, "a symbolic link, not followed");
        let shown = format!("{v} {}", serde_json::to_string(&v).unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(v.details["state"], "unreadable");
    }
}

#[tokio::test]
async fn heartbeat_never_written_by_an_old_process() {
    let root = tempfile::tempdir().unwrap();
    let ticks = rustix::param::clock_ticks_per_second();
    // Started at 100 s after boot, uptime 5000 s: the agent is ~4900 s old.
    fake_proc(
        root.path(),
        5000.0,
        &[(40, 1, 'S', 100 * ticks, "python3 /srv/nexus_think.py")],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HeartbeatSpec::new(dir.path().join("none.json"));
    spec.grace = Some(pattern("nexus_think"));
    let runner = Runner::new(RunnerConfig::default()).with_proc_root(root.path());
    let v = runner
        .run_one(&ProbeSpec::new("hb", ProbeKind::Heartbeat(spec)))
        .await;
    expect(
        &v,
        Status::Critical,
        "never written although PID 40 has run for 4900s",
    );
}

/// Issue 18 item 4 (docs/SPEC.md §2.3 item 2): only a readable procfs can
/// prove absence. An empty directory (an empty mount over `/proc`) lists no
/// process, which is "cannot tell" (Unknown), never "not running"
/// (Critical), by pattern and by PID alike; the real `/proc` still proves it.
#[tokio::test]
async fn a_proc_root_that_is_not_procfs_proves_no_absence() {
    let empty = tempfile::tempdir().unwrap();
    let t = ProcTable::scan_at(empty.path(), 1).unwrap();
    let why = t.not_procfs().unwrap();
    assert!(why.contains("is not a procfs mount"), "{why}");
    assert_eq!(nexus_probe::not_procfs(Path::new("/proc")), None);

    let runner = Runner::default().with_proc_root(empty.path());
    let probe = |k| ProbeSpec::new("p", k);
    let v = runner
        .run_one(&probe(ProbeKind::Process(pattern("nexus_think"))))
        .await;
    expect(&v, Status::Unknown, "is not a procfs mount");
    assert!(
        v.summary.contains("Cannot tell whether a process matches"),
        "{v}"
    );
    let v = runner
        .run_one(&probe(ProbeKind::Process(ProcessSpec::pid(4_000_000))))
        .await;
    expect(&v, Status::Unknown, "cannot tell whether PID 4000000 runs");

    let v = Runner::default()
        .run_one(&probe(ProbeKind::Process(pattern("no-such-process-q7x"))))
        .await;
    expect(
        &v,
        Status::Critical,
        "No process matching 'no-such-process-q7x'",
    );
    let v = Runner::default()
        .run_one(&probe(ProbeKind::Process(ProcessSpec::pid(4_000_000))))
        .await;
    expect(&v, Status::Critical, "PID 4000000 is not running");
}
