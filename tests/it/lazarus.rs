//! A lazarus-pit user points the real `resurrection-pool` at their existing
//! `config/lazarus-pit.toml` (the seed's own sample, docs/examples/): the
//! real binary, real mission cells on disk, real processes, the
//! swagger-checked fake Gitea.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nexus_cell::{AgentName, Join, RevivePolicy, Role};
use nexus_e2e::Run;
use serde_json::Value;

use crate::pool::{Fleet, free_port, get, kill, wait_for};

/// The seed's sample, as a lazarus-pit user has it.
const SAMPLE: &str = include_str!("../../docs/examples/lazarus-pit.toml");

/// What every test expects the one warning to name.
const NO_EQUIVALENT: [&str; 5] = [
    "daemon.log_file",
    "gateway.host",
    "gateway.port",
    "gateway.health_host",
    "gateway.health_port",
];

/// The sample with its cells root moved to the fleet's and each
/// `(old, new)` edit applied (each must match), written beside the fleet.
fn lazarus_file(f: &Fleet, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = SAMPLE.replacen(
        "root = \"/var/missions\"",
        &format!("root = \"{}\"", f.root.join("cells").display()),
        1,
    );
    assert_ne!(text, SAMPLE);
    for (old, new) in edits {
        assert!(text.contains(old), "{old}");
        text = text.replacen(old, new, 1);
    }
    let p = f.root.join("lazarus-pit.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The pool on `cfg`, its own heartbeat kept in the fleet, no Gitea from
/// the environment.
fn pool(f: &Fleet, cfg: &Path) -> Command {
    let mut c = f.cmd(cfg);
    c.env("BEZALEL_HEARTBEAT_DIR", f.root.join("heartbeats"))
        .env_remove("GITEA_URL")
        .env_remove("NEXUS_REPO");
    c
}

/// `resurrection-pool check-config <cfg>`.
fn check_config(cfg: &Path) -> Output {
    Command::new(nexus_e2e::bin("resurrection-pool"))
        .arg("check-config")
        .arg(cfg)
        .run()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one warning: once in `log`, naming every key with no equivalent.
fn warned_once(log: &str) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("lazarus-pit config"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    for key in NO_EQUIVALENT {
        assert!(lines[0].contains(key), "{key}: {log}");
    }
}

fn beat_now(f: &Fleet, agent: &str) -> f64 {
    let ts = nexus_stdx::now_epoch();
    nexus_stdx::write_atomic(
        &f.heartbeat_path(agent),
        format!("{{\"timestamp\": {ts}, \"agent\": \"{agent}\", \"status\": \"thinking\"}}")
            .as_bytes(),
        false,
    )
    .unwrap();
    ts
}

#[test]
fn check_config_takes_the_seed_sample_and_names_a_bad_key_in_each_section() {
    let f = Fleet::new();
    let o = check_config(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/lazarus-pit.toml"
    )));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("valid (lazarus-pit TOML") && out.contains("cells under /var/missions"),
        "{out}"
    );
    warned_once(&stderr(&o));
    for (old, new, key) in [
        (
            "log_level = \"INFO\"",
            "log_level = \"LOUD\"",
            "daemon.log_level",
        ),
        (
            "poll_interval = 15",
            "poll_interval = 0",
            "cells.poll_interval",
        ),
        (
            "resurrect_after = 120",
            "resurrect_after = -5",
            "cells.resurrect_after",
        ),
        (
            "health_port = 8766",
            "health_port = \"8766\"",
            "gateway.health_port",
        ),
        (
            "repo = \"Timmy_Foundation/the-nexus\"",
            "repo = 5",
            "gitea.repo",
        ),
        (
            "close_issue_on_revive = true",
            "close_issue_on_revive = \"no\"",
            "notifications.close_issue_on_revive",
        ),
    ] {
        let cfg = lazarus_file(&f, &[(old, new)]);
        let o = check_config(&cfg);
        assert_eq!(o.status.code(), Some(2), "{key}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("`{key}`")) && err.contains("lazarus-pit.toml"),
            "{key}: {err}"
        );
    }
    // Unknown keys are named in the same one warning, not refused.
    let cfg = lazarus_file(&f, &[("[gitea]\n", "[gitea]\nbranch = \"main\"\n")]);
    let o = check_config(&cfg);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    warned_once(&stderr(&o));
    assert!(
        stderr(&o).contains("unknown keys, ignored: gitea.branch"),
        "{}",
        stderr(&o)
    );
    // resurrect_after below the threshold: a warning of its own.
    let cfg = lazarus_file(&f, &[("resurrect_after = 120", "resurrect_after = 30")]);
    let o = check_config(&cfg);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`cells.resurrect_after` (30s) is smaller"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn once_on_the_seed_sample_watches_its_cells_and_warns_once() {
    let f = Fleet::new();
    f.join("steady", RevivePolicy::Auto, false);
    f.join("gone", RevivePolicy::Auto, false);
    beat_now(&f, "steady");
    // The sample as is, but for where the cells are.
    let cfg = lazarus_file(&f, &[]);
    let o = pool(&f, &cfg).args(["--once", "--json"]).run().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let agents: Value = serde_json::from_slice(&o.stdout).unwrap();
    let state = |name: &str| {
        agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {agents:#}"))["state"]
            .clone()
    };
    assert_eq!(state("steady"), "healthy");
    // `auto` (lazarus-pit revives whoever its cells hold): started.
    assert_eq!(state("gone"), "reviving");
    assert_eq!(f.launches("gone"), 1);
    assert_eq!(f.launches("steady"), 0);
    warned_once(&stderr(&o));
    // A value that is not positive: exit 2 naming the key, nothing done.
    let cfg = lazarus_file(&f, &[("poll_interval = 15", "poll_interval = 0")]);
    let o = pool(&f, &cfg).arg("--once").run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`cells.poll_interval`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(f.launches("gone"), 1);
    // An explicit file that is missing is an error too, never the defaults.
    let o = pool(&f, &f.root.join("config/lazarus-pit.toml"))
        .arg("--once")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn the_daemon_revives_past_resurrect_after_within_max_revive_attempts() {
    let f = Fleet::new();
    // An agent that crashes at every launch, each launch's time noted.
    let times = f.root.join("hb1.times");
    f.store
        .join(
            &f.cell,
            Join {
                agent: AgentName::new("hb1").unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    format!("date +%s.%N >> '{}'", times.display()),
                ]),
                revive_policy: None,
            },
        )
        .unwrap();
    let pid_file = f.root.join("run/lazarus-pit.pid");
    let cfg = lazarus_file(
        &f,
        &[
            (
                "pid_file = \"/var/run/lazarus-pit.pid\"",
                &format!("pid_file = \"{}\"", pid_file.display()),
            ),
            ("log_level = \"INFO\"", "log_level = \"WARNING\""),
            (
                "heartbeat_stale_threshold = 60",
                "heartbeat_stale_threshold = 1",
            ),
            ("resurrect_after = 120", "resurrect_after = 3"),
            ("max_revive_attempts = 3", "max_revive_attempts = 2"),
            ("poll_interval = 15", "poll_interval = 1"),
        ],
    );
    std::fs::create_dir(f.root.join("run")).unwrap();
    beat_now(&f, "hb1");
    let log = f.root.join("pool.log");
    let port = free_port();
    let mut daemon = pool(&f, &cfg)
        // The file's `daemon.log_level` decides.
        .env_remove("NEXUS_LOG")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    // The agent beats until the pool has seen it healthy (however slowly
    // the pool starts), then falls silent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let last_beat = loop {
        let ts = beat_now(&f, "hb1");
        let agents: Value =
            serde_json::from_str(&get(&format!("http://127.0.0.1:{port}/api/agents"))).unwrap();
        if agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "hb1" && a["state"] == "healthy")
        {
            break ts;
        }
        assert!(
            Instant::now() < deadline,
            "hb1 never seen healthy: {agents}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = daemon.id();
    wait_for("the escalation", || {
        f.events().contains("\"revive_escalated\"")
    });
    wait_for("both launches to run", || {
        std::fs::read_to_string(&times).is_ok_and(|t| t.lines().count() >= 2)
    });
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        pid_text.trim(),
        pid.to_string(),
        "daemon.pid_file is the PID file"
    );
    kill("-TERM", pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let launched: Vec<f64> = std::fs::read_to_string(&times)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    // max_revive_attempts = 2, then a human.
    assert_eq!(launched.len(), 2, "{launched:?}");
    // Not before the agent was silent for resurrect_after (3 s).
    assert!(
        launched[0] - last_beat >= 2.95,
        "revived {:.2}s after the last beat",
        launched[0] - last_beat
    );
    let events = f.events();
    assert_eq!(events.matches("\"revive_attempt\"").count(), 2, "{events}");
    assert_eq!(events.matches("\"max\":2").count(), 2, "{events}");
    assert_eq!(
        events.matches("\"revive_escalated\"").count(),
        1,
        "{events}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    nexus_e2e::assert_no_canary("the daemon's log", text.as_bytes());
    warned_once(&text);
    assert!(text.contains("hb1"), "the deaths are logged: {text}");
    assert!(
        !text.contains("Resurrection Pool starting"),
        "log_level WARNING hides INFO: {text}"
    );
}

mod notifications {
    use super::*;
    use nexus_testkit::gitea::{Fake, REPO, TOKEN};

    /// A `never` agent that is dead, then beats again: with each pair of
    /// knobs, is an issue opened, and is it closed?
    async fn episode(open: bool, close: bool, token_in_file: bool) -> (usize, Option<bool>) {
        let fake = Fake::start().await;
        let f = Fleet::new();
        f.join("n1", RevivePolicy::Never, false);
        let token_line = if token_in_file {
            format!("token = \"{TOKEN}\"")
        } else {
            "# token = \"\"".to_string()
        };
        let cfg = lazarus_file(
            &f,
            &[
                // A missing heartbeat is dead at once; a fresh one stays
                // fresh however slow the machine.
                ("resurrect_after = 120", "resurrect_after = 1"),
                (
                    "url = \"https://forge.alexanderwhitestone.com\"",
                    &format!("url = \"{}\"", fake.url()),
                ),
                (
                    "repo = \"Timmy_Foundation/the-nexus\"",
                    &format!("repo = \"{REPO}\""),
                ),
                ("# token = \"\"", &token_line),
                (
                    "open_issue_on_death = true",
                    &format!("open_issue_on_death = {open}"),
                ),
                (
                    "close_issue_on_revive = true",
                    &format!("close_issue_on_revive = {close}"),
                ),
            ],
        );
        let run = || {
            let mut c = pool(&f, &cfg);
            c.args(["--once", "--json"]);
            if !token_in_file {
                c.env("GITEA_TOKEN", TOKEN);
            }
            c.run().unwrap()
        };
        for _ in 0..3 {
            let o = run();
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        }
        let opened = fake.st().issues.len();
        beat_now(&f, "n1");
        for _ in 0..2 {
            let o = run();
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
        assert_eq!(f.launches("n1"), 0, "never means never");
        let st = fake.st();
        let still_open = st.issues.first().map(|i| i.open);
        if let Some(i) = st.issues.first() {
            assert_eq!(i.title, "[pool] n1: agent dead");
        }
        drop(st);
        fake.assert_contract();
        (opened, still_open)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn open_issue_on_death_and_close_issue_on_revive_are_honoured() {
        // The file's token, GITEA_TOKEN unset.
        assert_eq!(episode(true, true, true).await, (1, Some(false)));
        // GITEA_TOKEN.
        assert_eq!(episode(true, false, false).await, (1, Some(true)));
        assert_eq!(episode(false, true, false).await, (0, None));
    }
}
