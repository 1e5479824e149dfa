//! What the operator sees must be true (issue 18): the pool's log levels,
//! heartbeats that cannot be parsed, and `--status`, through the real
//! `resurrection-pool` binary with real cells and real agent processes.

use std::path::Path;
use std::process::{Output, Stdio};

use nexus_cell::{RevivePolicy, Status};
use nexus_e2e::Run;
use serde_json::Value;

use crate::mttr::beat_pid;
use crate::pool::{Daemon, Fleet, free_port, wait_for};

/// One `--once` with the log at `level`; its output.
fn once(f: &Fleet, cfg: &Path, level: &str) -> Output {
    f.cmd(cfg)
        .env("NEXUS_LOG", level)
        .args(["--once", "--json"])
        .run()
        .unwrap()
}

/// `--status` (text, or JSON rows).
fn status(f: &Fleet, cfg: &Path) -> (Option<i32>, String) {
    let o = f.cmd(cfg).arg("--status").run().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn status_json(f: &Fleet, cfg: &Path) -> Vec<Value> {
    let o = f.cmd(cfg).args(["--status", "--json"]).run().unwrap();
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
        .as_array()
        .unwrap()
        .clone()
}

fn row<'a>(rows: &'a [Value], key: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == key)
        .unwrap_or_else(|| panic!("{key} not in {rows:?}"))
}

/// The log lines (stderr) of `outputs`.
fn log_lines(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .flat_map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes a heartbeat document (not through the writer: a test of what
/// the reader makes of a bad one).
fn write_beat(path: &Path, timestamp: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!(r#"{{"agent": "d1", "timestamp": {timestamp}}}"#),
    )
    .unwrap();
}

/// The daemon on `cfg`, its log (at `level`) in a file: the daemon, its
/// base URL, the log.
fn daemon(f: &Fleet, cfg: &Path, level: &str) -> (Daemon, String, std::path::PathBuf) {
    let port = free_port();
    let log = f.root.join(format!("daemon-{port}.log"));
    let d = Daemon(
        f.cmd(cfg)
            .env("NEXUS_LOG", level)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    (d, format!("http://127.0.0.1:{port}"), log)
}

/// The daemon's log, checked for the canary tokens like any captured output.
fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    nexus_e2e::assert_no_canary("the daemon's log", text.as_bytes());
    text
}

/// Waits until the daemon at `base` has swept `n` times (1 s apart), so
/// whatever it logs once per sweep would be there `n` times.
fn sweeps(base: &str, n: u64) {
    wait_for("the daemon's sweeps", || {
        crate::full_disk::health(base).0["sweeps"]
            .as_u64()
            .is_some_and(|s| s >= n)
    });
}

#[test]
fn deaths_are_warnings_and_an_escalation_one_error_naming_cell_agent_and_why() {
    let f = Fleet::new();
    f.join("b1", RevivePolicy::Auto, false); // exits at once: a crash loop
    let cfg = f.config("max_attempts = 2\nslow_lane = 100000");
    let key = format!("[{}/b1]", f.cell);
    let mut runs = Vec::new();
    for _ in 0..6 {
        runs.push(once(&f, &cfg, "info"));
    }
    let lines = log_lines(&runs);
    let all = lines.join("\n");
    let of = |needle: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains(&key) && l.contains(needle))
            .collect()
    };
    // Each death names the agent and why, at WARN.
    let deaths = of("→ dead");
    assert!(!deaths.is_empty(), "{all}");
    for d in &deaths {
        assert!(d.contains(" WARN "), "a death is a warning: {d}");
        assert!(d.contains("→ dead: "), "a death says why: {d}");
    }
    // Each revive attempt is a WARN; the first start is not news.
    let revives = of(": started PID");
    assert_eq!(revives.len(), 3, "{all}");
    assert!(revives[0].contains(" INFO ") && revives[0].contains("first start"));
    for r in &revives[1..] {
        assert!(r.contains(" WARN ") && r.contains("revive attempt"), "{r}");
    }
    // The escalation: one ERROR line, with why, once for all these sweeps.
    let escalations = of("escalated: ");
    assert_eq!(escalations.len(), 1, "{all}");
    assert!(
        escalations[0].contains(" ERROR ") && escalations[0].contains("restart budget spent"),
        "{all}"
    );
    // The escalation is the only ERROR: the revives that failed before it
    // were warnings (the pool tried again), its incident says nothing more.
    let errors: Vec<&String> = lines.iter().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors, escalations, "{all}");
    assert!(
        of("ended before its first heartbeat")
            .iter()
            .all(|l| l.contains(" WARN ")),
        "{all}"
    );
    // Nothing more once it escalated.
    let later = log_lines(&[once(&f, &cfg, "info"), once(&f, &cfg, "info")]);
    let later: Vec<&String> = later
        .iter()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(later.is_empty(), "logged again at each sweep: {later:#?}");
}

#[test]
fn a_frozen_cells_dead_agent_is_one_warning_and_shown_dead_by_status() {
    let f = Fleet::new();
    f.join("c1", RevivePolicy::Auto, true);
    f.store.set_status(&f.cell, Status::Frozen).unwrap();
    let cfg = f.config("");
    let key = format!("{}/c1", f.cell);
    let runs: Vec<Output> = (0..3).map(|_| once(&f, &cfg, "warn")).collect();
    let lines = log_lines(&runs);
    let warned: Vec<&String> = lines.iter().filter(|l| l.contains(&key)).collect();
    assert_eq!(warned.len(), 1, "once, not once per sweep: {lines:#?}");
    assert!(
        warned[0].contains(" WARN ") && warned[0].contains("dead: cell frozen"),
        "{}",
        warned[0]
    );
    assert_eq!(f.launches("c1"), 0);

    let (code, text) = status(&f, &cfg);
    assert_eq!(code, Some(1), "{text}");
    let line = text.lines().find(|l| l.contains(&key)).unwrap();
    assert!(line.starts_with("dead "), "not unknown: {line}");
    assert!(line.contains("  no heartbeat  "), "{line}");
    assert!(line.contains("  checked 20"), "{line}");
    assert!(line.contains("why: cell frozen"), "{line}");
    let rows = status_json(&f, &cfg);
    let r = row(&rows, &key);
    assert_eq!(r["state"], "dead", "{r}");
    assert_eq!(r["frozen"], true, "{r}");
    assert!(r["heartbeat_age"].is_null(), "{r}");
    assert!(
        r["last_checked"].as_f64().unwrap() > nexus_stdx::now_epoch() - 60.0,
        "{r}"
    );
}

#[test]
fn status_lists_the_declared_agents_before_the_first_sweep_then_what_it_saw() {
    let f = Fleet::new();
    f.join("a1", RevivePolicy::Auto, true);
    let cfg = f.config("");
    let key = format!("{}/a1", f.cell);
    // No state file yet: the cells declare a1.
    let (code, text) = status(&f, &cfg);
    assert_eq!(code, Some(1), "not known healthy: {text}");
    assert_eq!(text.trim(), format!("not yet checked {key}"));
    let rows = status_json(&f, &cfg);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "not yet checked");
    assert!(rows[0]["last_checked"].is_null());
    assert!(
        !f.root.join("pool-state.json").exists(),
        "--status wrote nothing"
    );

    // The first sweep starts it; once it beats, a sweep sees it healthy.
    once(&f, &cfg, "warn");
    wait_for("a1's first beat", || f.heartbeat_path("a1").exists());
    let o = once(&f, &cfg, "warn");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (code, text) = status(&f, &cfg);
    assert_eq!(code, Some(0), "{text}");
    let line = text.lines().find(|l| l.contains(&key)).unwrap();
    assert!(line.starts_with("healthy "), "{line}");
    assert!(line.contains(" s ago  "), "a heartbeat age: {line}");
    assert!(
        line.contains("  checked 20") && !line.contains("why:"),
        "{line}"
    );
    let r = row(&status_json(&f, &cfg), &key).clone();
    assert_eq!(r["state"], "healthy");
    assert!(r["heartbeat_age"].as_f64().unwrap() < 60.0, "{r}");
    assert!(r["reason"].is_null(), "{r}");
}

#[test]
fn a_corrupt_heartbeat_is_one_warning_per_episode_naming_the_file_and_field() {
    let f = Fleet::new();
    f.join("d1", RevivePolicy::Never, false);
    let cfg = f.config("");
    let key = format!("{}/d1", f.cell);
    let path = f.heartbeat_path("d1");
    write_beat(&path, r#""abc""#);
    let words = format!("corrupt heartbeat: {}: field `timestamp`: ", path.display());
    // The episode's own line (a death it causes says why too).
    let corrupt_lines = |runs: &[Output]| -> Vec<String> {
        log_lines(runs)
            .into_iter()
            .filter(|l| l.contains(&format!("[{key}] corrupt heartbeat")))
            .collect()
    };
    let runs: Vec<Output> = (0..3).map(|_| once(&f, &cfg, "warn")).collect();
    let warned = corrupt_lines(&runs);
    assert_eq!(warned.len(), 1, "once per episode: {warned:#?}");
    assert!(
        warned[0].contains(" WARN ") && warned[0].contains(&format!("[{key}] {words}")),
        "{}",
        warned[0]
    );
    // --once shows it (from the first sweep on), --status gives it as the reason.
    for run in &runs {
        let shown: Value = serde_json::from_slice(&run.stdout).unwrap();
        let d1 = shown.as_array().unwrap().iter().find(|a| a["name"] == "d1");
        let reason = d1.and_then(|a| a["reason"].as_str()).unwrap_or_default();
        assert!(reason.starts_with(&words), "{shown}");
    }
    let r = row(&status_json(&f, &cfg), &key).clone();
    assert!(r["reason"].as_str().unwrap().starts_with(&words), "{r}");
    let (_, text) = status(&f, &cfg);
    assert!(text.contains(&format!("why: {words}")), "{text}");
    let o = f.cmd(&cfg).arg("--once").run().unwrap();
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        line.contains(&format!("  why: {words}")),
        "--once's line: {line}"
    );

    // Readable in between: a new episode, a new warning.
    write_beat(&path, &format!("{}", nexus_stdx::now_epoch()));
    let fine = corrupt_lines(&[once(&f, &cfg, "warn")]);
    assert!(fine.is_empty(), "{fine:#?}");
    assert!(row(&status_json(&f, &cfg), &key)["reason"].is_null());
    write_beat(&path, r#""abc""#);
    let again = corrupt_lines(&[once(&f, &cfg, "warn"), once(&f, &cfg, "warn")]);
    assert_eq!(again.len(), 1, "{again:#?}");

    // The daemon carries the episode on (no warning again) and shows the
    // reason in /api/agents.
    let (_d, base, log) = daemon(&f, &cfg, "warn");
    sweeps(&base, 3);
    let d1 = crate::crash::agent(&base, "d1");
    let reason = d1["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with(&words), "{reason}");
    let logged = read_log(&log);
    assert!(!logged.contains("corrupt heartbeat"), "{logged}");
}

#[test]
fn a_cell_that_stays_unreadable_is_one_warning_not_one_per_sweep() {
    let f = Fleet::new();
    f.join("e1", RevivePolicy::Never, false);
    let broken = f
        .store
        .provision(nexus_cell::NewCell {
            mission: "broken".into(),
            created_by: "tests".into(),
            ..nexus_cell::NewCell::default()
        })
        .unwrap()
        .id();
    let manifest = f.store.open(&broken).unwrap().manifest_path();
    std::fs::write(&manifest, "{").unwrap();
    let cfg = f.config("");
    let (_d, base, log) = daemon(&f, &cfg, "warn");
    sweeps(&base, 4);
    let logged = read_log(&log);
    let skipped: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("skipped cell") && l.contains(&broken.to_string()))
        .collect();
    assert_eq!(skipped.len(), 1, "{logged}");
    assert!(
        skipped[0].contains(" WARN ") && skipped[0].contains("cell.json"),
        "{logged}"
    );
}

#[test]
fn a_hang_its_kill_and_the_revive_are_warnings_the_recovery_information() {
    let f = Fleet::new();
    f.join("h1", RevivePolicy::Auto, true);
    let cfg = f.root.join("hang.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pool]\nheartbeat_dir = \"{}\"\n[cells]\nroot = \"{}\"\nheartbeat_stale_threshold = \"2s\"\n",
            f.root.join("heartbeats").display(),
            f.root.join("cells").display(),
        ),
    )
    .unwrap();
    let (_d, base, log) = daemon(&f, &cfg, "info");
    let state = || crate::crash::agent(&base, "h1")["state"].clone();
    wait_for("h1 healthy", || state() == "healthy");
    let hung = beat_pid(&f, "h1").unwrap();
    crate::pool::kill("-STOP", hung);
    wait_for("a new PID beating", || {
        beat_pid(&f, "h1").is_some_and(|p| p != hung)
    });
    wait_for("h1 healthy again", || state() == "healthy");
    let logged = read_log(&log);
    let key = format!("[{}/h1]", f.cell);
    let lines = |needle: &str| -> Vec<&str> {
        logged
            .lines()
            .filter(|l| l.contains(&key) && l.contains(needle))
            .collect()
    };
    let one = |needle: &str, level: &str| {
        let found = lines(needle);
        assert_eq!(found.len(), 1, "{needle}: {logged}");
        assert!(found[0].contains(level), "{needle} at {level}: {logged}");
    };
    one("healthy → dead: hung", " WARN ");
    one(&format!("{key} hung: SIGTERM sent to PID {hung}"), " WARN ");
    // Its exit ends the event the SIGTERM line began.
    one(&format!("launched process {hung} exited"), " INFO ");
    one("revive attempt 1: started PID", " WARN ");
    one("revived and healthy (attempt 1)", " INFO ");
    assert!(!logged.contains(" ERROR "), "no escalation: {logged}");
}
