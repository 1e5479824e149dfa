//! healthchecks.io's clients against a real pool: the exact command lines
//! healthchecks' documentation gives for curl, and runitor's requests
//! (runitor is a Go binary not in Debian: its documented requests, sent
//! the way it sends them: POST `/start?rid=…&create=1`, then POST
//! `/<exit status>?rid=…` with the command's output as the body and its
//! User-Agent). What they report is what `cron-heartbeat-check` then sees.

use std::process::{Command, Output, Stdio};

use nexus_e2e::Run;

use crate::pool::{Daemon, Fleet, cron_status, free_port, get};

const KEY: &str = "hc-ping-key-0123456789";

/// `sh -c script` with `$PING` set to the pool's `/ping/<key>` base.
fn sh(script: &str, ping: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .env("PING", ping)
        .run()
        .unwrap()
}

#[test]
fn curl_one_liners_and_runitor_report_to_the_pool_as_to_healthchecks() {
    let f = Fleet::new();
    let pings = f.root.join("pings");
    let cfg = f.config(&format!("[ping]\ndir = \"{}\"\n", pings.display()));
    let port = free_port();
    let _pool = Daemon(
        f.cmd(&cfg)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("NEXUS_PING_TOKEN", KEY)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    get(&format!("http://127.0.0.1:{port}/health"));
    let ping = format!("http://127.0.0.1:{port}/ping/{KEY}");

    // healthchecks' curl line for an unknown slug: 404, so curl -f fails.
    let o = sh(
        r#"curl -fsS -m 10 --retry 5 -o /dev/null "$PING/db-backup""#,
        &ping,
    );
    assert_eq!(o.status.code(), Some(22), "404 not found");
    // Auto-provisioning (docs "Auto Provisioning"): created on the first ping.
    let o = sh(
        r#"curl -fsS -m 10 --retry 5 -o /dev/null -w '%{http_code}' "$PING/db-backup?create=1""#,
        &ping,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "201");
    assert_eq!(cron_status(&pings, "db-backup"), "OK");

    // The /start and exit-status pattern of the docs' "Bash" page.
    let o = sh(
        r#"curl -fsS -m 10 --retry 5 -o /dev/null "$PING/db-backup/start"
           false
           curl -fsS -m 10 --retry 5 -o /dev/null "$PING/db-backup/$?""#,
        &ping,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(cron_status(&pings, "db-backup"), "FAILED");
    // A run's output as the body (`--data-raw "$m"`), and a success.
    let o = sh(
        r#"m=$(echo "renewed 3 certificates" 2>&1)
           curl -fsS -m 10 --retry 5 --data-raw "$m" "$PING/db-backup""#,
        &ping,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK");
    assert_eq!(cron_status(&pings, "db-backup"), "OK");
    // /fail.
    sh(
        r#"curl -fsS -m 10 --retry 5 -o /dev/null "$PING/db-backup/fail""#,
        &ping,
    );
    assert_eq!(cron_status(&pings, "db-backup"), "FAILED");

    // runitor's requests for `runitor -ping-key K -slug nightly -create -- cmd`
    // (one run id for the start and the end; the output as the body).
    let runitor = r#"
        ua='runitor/v1.3.0 (+https://bdd.fi/x/runitor)'
        rid=$(cat /proc/sys/kernel/random/uuid)
        curl -fsS -m 10 -A "$ua" -X POST --data-binary '' "$PING/nightly/start?create=1&rid=$rid" || exit 90
        out=$(sh -c "$CMD" 2>&1); code=$?
        printf '%s' "$out" | curl -fsS -m 10 -A "$ua" -X POST --data-binary @- "$PING/nightly/$code?rid=$rid" || exit 91
    "#;
    let run = |cmd: &str| {
        Command::new("sh")
            .args(["-c", runitor])
            .env("PING", &ping)
            .env("CMD", cmd)
            .run()
            .unwrap()
    };
    let o = run("echo all good");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "CreatedOK");
    assert_eq!(cron_status(&pings, "nightly"), "OK");
    let o = run("echo boom >&2; exit 4");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(cron_status(&pings, "nightly"), "FAILED");

    // The key is the only way in: another key is the suite's own grammar
    // (POST with a bearer token), so a GET is refused.
    let o = sh(
        r#"curl -sS -m 10 -o /dev/null -w '%{http_code}' "${PING%/*}/not-the-key/db-backup""#,
        &ping,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "405");
}
