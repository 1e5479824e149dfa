//! `resurrection-pool` flags and config checks through the real binary
//! (fleet scenarios live in the workspace's e2e tests).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use nexus_testkit::canary::Run;
use std::process::Command;

fn pool() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resurrection-pool"));
    c.env_remove("RESURRECTION_CONFIG")
        .env_remove("MISSION_CELLS_ROOT")
        .env_remove("NEXUS_SELF_HEARTBEAT")
        .env("NEXUS_LOG", "error");
    c
}

#[test]
fn check_config_accepts_the_example_and_names_a_bad_key() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples/resurrection-pool.toml");
    // Its `[ping]` and `[alertmanager]` need their tokens, as the daemon would.
    let o = pool()
        .arg("check-config")
        .arg(&example)
        .env("NEXUS_PING_TOKEN", "ping-token-0123456789")
        .env("NEXUS_ALERTMANAGER_TOKEN", "am-token-0123456789")
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The seed's JSON, with its `nostr` object (docs/examples).
    let seed = example.with_file_name("resurrection_pool.json");
    let o = pool().arg("check-config").arg(&seed).run().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("nostr"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pool.toml");
    std::fs::write(&bad, "[revive]\nmax_attemps = 3\n").unwrap();
    let o = pool().arg("check-config").arg(&bad).run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("max_attemps"));
}

/// `[nostr]`: an unknown key, a bad public key and a bad relay URL are
/// each named; a good section is valid.
#[test]
fn check_config_names_a_bad_key_in_the_nostr_section() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pool.toml");
    let npub = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6";
    let good =
        format!("[nostr]\nrelay_url = \"wss://relay.example\"\nrecipient_pubkey = \"{npub}\"\n");
    std::fs::write(&cfg, &good).unwrap();
    let o = pool().arg("check-config").arg(&cfg).run().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("nostr"), "{out}");
    for (text, needle) in [
        (
            format!("{good}recipient_pubkye = \"x\"\n"),
            "recipient_pubkye",
        ),
        (good.replace(npub, "npub1nope"), "recipient_pubkey"),
        (
            good.replace("wss://relay.example", "https://relay.example"),
            "relays",
        ),
        (format!("{good}approvers = [\"00\"]\n"), "approvers"),
        (format!("{good}dm = \"nip99\"\n"), "nip99"),
    ] {
        std::fs::write(&cfg, &text).unwrap();
        let o = pool().arg("check-config").arg(&cfg).run().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// `check-config` checks values, not only keys (issue 21): a section
/// that needs a token without one, a URL that is none, and a cells root
/// that does not exist (a warning: it may appear later).
#[test]
fn check_config_checks_values_in_the_users_terms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pool.toml");
    let check = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        let o = pool()
            .arg("check-config")
            .arg(&cfg)
            .env_remove("NEXUS_PING_TOKEN")
            .env_remove("GITEA_URL")
            .run()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, _, err) = check("[ping]\ndir = \"/tmp\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("error: invalid pool config [ping]: needs a token of at least 16 characters in $NEXUS_PING_TOKEN"),
        "{err}"
    );
    let (code, _, err) = check("[incident]\nurl = \"not a url\"\nrepo = \"o/r\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("error: [incident] `url` (or GITEA_URL): \"not a url\" is not an absolute URL (expected e.g. http://127.0.0.1:8080/)"),
        "{err}"
    );
    assert!(!err.contains("builder error"), "{err}");
    let missing = dir.path().join("no-such-cells");
    let (code, out, err) = check(&format!("[cells]\nroot = \"{}\"\n", missing.display()));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: [cells] `root`") && err.contains("is not a directory (yet)"),
        "{err}"
    );
    assert!(
        out.contains("valid (") && out.contains("1 warning(s))"),
        "{out}"
    );
}

#[test]
fn a_config_too_big_to_be_one_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("pool.toml");
    // Sparse: 17 MiB of NULs without writing them.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let o = pool().arg("check-config").arg(&big).run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&*big.to_string_lossy()) && err.contains("16 MiB limit"),
        "{err}"
    );
}

#[test]
fn an_empty_fleet_is_a_usage_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pool.toml");
    std::fs::write(&cfg, "[pool]\n").unwrap();
    let o = pool()
        .arg("--config")
        .arg(&cfg)
        .arg("--once")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = pool()
        .arg("--config")
        .arg(&cfg)
        .args(["--once", "--allow-empty", "--state-file"])
        .arg(dir.path().join("s.json"))
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A cells root that does not exist is a typo until shown otherwise: exit
/// 2 naming it, unless `--allow-empty`; one that exists but holds no cell
/// is a new install. `--status` shows the last state and names the
/// missing root among its problems.
#[test]
fn list_cells_of_a_missing_root_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let run = |mode: &[&str], root: &std::path::Path| {
        pool()
            .env("HOME", dir.path())
            .args(mode)
            .arg("--cells-root")
            .arg(root)
            .arg("--state-file")
            .arg(&state)
            .run()
            .unwrap()
    };
    let missing = std::path::Path::new("/nonexistent/cells");
    // The daemon too (not a dry run: were the check gone, the cells root's
    // lock would still refuse it, so the test cannot hang).
    let daemon = &["--listen", "127.0.0.1:0"][..];
    for mode in [
        &["--list-cells"][..],
        &["--once"],
        &["--once", "--dry-run"],
        daemon,
    ] {
        let o = run(mode, missing);
        assert_eq!(o.status.code(), Some(2), "{mode:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("cells root /nonexistent/cells does not exist")
                && e.contains("--allow-empty"),
            "{mode:?}: {e}"
        );
    }
    let o = run(&["--once", "--allow-empty"], missing);
    assert_ne!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["--status"], missing);
    assert_ne!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/cells does not exist"));
    let empty = dir.path().join("cells");
    std::fs::create_dir(&empty).unwrap();
    let o = run(&["--once"], &empty);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 agent(s), 0 unhealthy"));
}

/// A hand-run `--once` leaves no own heartbeat for cron-heartbeat-check to
/// miss later; `--self-heartbeat` or `NEXUS_SELF_HEARTBEAT=1` (its timer's
/// unit) asks for one. (The daemon's own beat: the e2e pool tests.)
#[test]
fn only_a_scheduled_once_writes_the_own_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let beats = dir.path().join("beats");
    let cfg = dir.path().join("pool.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pool]\nheartbeat_dir = {:?}\n",
            beats.display().to_string()
        ),
    )
    .unwrap();
    let own = beats.join("resurrection_pool.last");
    let once = |extra: &[&str], env: Option<&str>| {
        let mut c = pool();
        if let Some(v) = env {
            c.env("NEXUS_SELF_HEARTBEAT", v);
        }
        c.env("HOME", dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(["--once", "--allow-empty", "--state-file"])
            .arg(dir.path().join("s.json"))
            .args(extra)
            .run()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(once(&[], None), Some(0));
    assert!(!own.exists(), "a hand-run --once wrote its own heartbeat");
    assert_eq!(once(&[], Some("0")), Some(0));
    assert!(!own.exists(), "NEXUS_SELF_HEARTBEAT=0 wrote one");
    assert_eq!(once(&["--self-heartbeat"], None), Some(0));
    assert!(own.is_file(), "--self-heartbeat wrote nothing");
    std::fs::remove_file(&own).unwrap();
    assert_eq!(once(&[], Some("1")), Some(0));
    assert!(own.is_file(), "NEXUS_SELF_HEARTBEAT=1 wrote nothing");
}

#[test]
fn operator_mistakes_read_as_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let o = pool().arg("--config").arg(&missing).run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("missing.toml"), "{e}");
    assert_eq!(
        e.matches("No such file or directory").count(),
        1,
        "cause twice: {e}"
    );
    for flag in ["--dead-threshold", "--poll-interval"] {
        let o = pool().args([flag, "-5s", "--once"]).run().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("durations cannot be negative"), "{flag}: {e}");
    }
    let o = pool().args(["--listen", "localhost"]).run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("expected ADDRESS:PORT, e.g. 127.0.0.1:8767"),
        "{e}"
    );
}

/// `--status` and `--list-cells` print what was asked, and no INFO line
/// about a missing config file on every run.
#[test]
fn status_and_list_cells_are_quiet_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let cells = dir.path().join("cells");
    std::fs::create_dir(&cells).unwrap();
    for mode in ["--status", "--list-cells"] {
        let o = pool()
            .env_remove("NEXUS_LOG")
            .env("HOME", dir.path())
            .arg(mode)
            .arg("--cells-root")
            .arg(&cells)
            .run()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{mode}: {o:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.is_empty(), "{mode}: {e}");
    }
}

/// `--once`'s report is its output: the log shows warnings only unless
/// `NEXUS_LOG` asks for more (a death is one: a WARN line naming the agent
/// and why), and never carries terminal colour codes into a pipe or a file.
#[test]
fn once_logs_warnings_only_and_plain_text_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pool.toml");
    std::fs::write(
        &cfg,
        "[[gateway]]\nname = \"lost\"\nhost = \"127.0.0.1\"\nport = 1\n\
         heartbeat_path = \"/nonexistent/heartbeat.json\"\nprocess_pattern = \"no-such-agent-xyz\"\n",
    )
    .unwrap();
    let run = |log: Option<&str>| {
        let mut c = pool();
        c.env_remove("NEXUS_LOG");
        if let Some(l) = log {
            c.env("NEXUS_LOG", l);
        }
        c.arg("--config")
            .arg(&cfg)
            .args(["--once", "--dry-run", "--state-file"])
            .arg(dir.path().join("s.json"))
            .run()
            .unwrap()
    };
    let quiet = run(None);
    assert_eq!(quiet.status.code(), Some(1), "the gateway is dead");
    let report = String::from_utf8_lossy(&quiet.stdout);
    assert!(report.contains("lost"), "{report}");
    let log = String::from_utf8_lossy(&quiet.stderr);
    assert!(!log.contains(" INFO "), "info lines: {log}");
    let death: Vec<&str> = log.lines().filter(|l| l.contains("→ dead")).collect();
    assert_eq!(death.len(), 1, "{log}");
    assert!(
        death[0].contains(" WARN ") && death[0].contains("[lost] unknown → dead: not running"),
        "{log}"
    );
    let verbose = run(Some("info"));
    let log = String::from_utf8_lossy(&verbose.stderr);
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe: {log:?}");
}
