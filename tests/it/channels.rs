//! Issue 22 item 4: the real `cron-heartbeat-check` with a `[webhook]`
//! table pointing at a loopback server (mockito) tells it once about a
//! stale job, nothing on the next run (the dedup state in
//! `webhook-alerts.json` outlives the one-shot process), and once more
//! when the job has beaten again (recovery). The bearer token comes from
//! the variable `token_env` names and never reaches the output.

use std::path::Path;
use std::process::{Command, Output};

use mockito::Matcher;
use nexus_e2e::{Run, bin};

const TOKEN: &str = "e2e-hook-t0ken-canary";

fn beat(hb: &Path) {
    let ok = Command::new(bin("nexus-heartbeat"))
        .args(["run", "--job", "db_backup", "--interval", "1h", "--dir"])
        .arg(hb)
        .args(["--", "true"])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn check(dir: &Path, at: f64) -> Output {
    let o = Command::new(bin("cron-heartbeat-check"))
        .arg("--dir")
        .arg(dir.join("heartbeats"))
        .arg("--registry")
        .arg(dir.join("cron-jobs.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--json", "--no-self-heartbeat", "--at", &at.to_string()])
        .env("NEXUS_E2E_HOOK_TOKEN", TOKEN)
        .env_remove("TELEGRAM_CHAT_ID")
        .env_remove("GITEA_URL")
        .env_remove("NEXUS_WEBHOOK_URL")
        .run()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains(TOKEN), "{all}");
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_job_is_posted_once_then_its_recovery() {
    let mut server = mockito::Server::new_async().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hb = dir.join("heartbeats");
    std::fs::create_dir_all(&hb).unwrap();
    std::fs::write(
        dir.join("cron-jobs.toml"),
        format!(
            "[jobs.db_backup]\ninterval = \"1h\"\n\
             [webhook]\nurl = \"{}/hooks/cron\"\ntoken_env = \"NEXUS_E2E_HOOK_TOKEN\"\n\
             body = '{{\"text\": \"{{text}}\", \"kind\": \"{{kind}}\", \"severity\": \"{{severity}}\"}}'\n",
            server.url()
        ),
    )
    .unwrap();
    beat(&hb);
    let now = nexus_stdx::now_epoch();
    let stale = server
        .mock("POST", "/hooks/cron")
        .match_header("authorization", format!("Bearer {TOKEN}").as_str())
        .match_header("content-type", "application/json")
        .match_body(Matcher::AllOf(vec![
            Matcher::PartialJson(serde_json::json!({"kind": "problems", "severity": "critical"})),
            Matcher::Regex("Cron heartbeats".into()),
            Matcher::Regex("db_backup".into()),
        ]))
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    // Three hours on: the hourly job is STALE; the hook hears it once.
    let o = check(dir, now + 3.0 * 3600.0);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"][0]["status"], "STALE", "{v:#}");
    let o = check(dir, now + 3.0 * 3600.0 + 60.0);
    assert_eq!(o.status.code(), Some(1));
    stale.assert_async().await;
    assert!(
        dir.join("state/checker-alerts/webhook-alerts.json")
            .is_file()
    );
    // The job beats again: one recovery message.
    let recovered = server
        .mock("POST", "/hooks/cron")
        .match_body(Matcher::AllOf(vec![
            Matcher::PartialJson(serde_json::json!({"kind": "recovery", "severity": "ok"})),
            Matcher::Regex("db_backup recovered".into()),
        ]))
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    beat(&hb);
    let o = check(dir, nexus_stdx::now_epoch() + 60.0);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = check(dir, nexus_stdx::now_epoch() + 120.0);
    assert_eq!(o.status.code(), Some(0));
    recovered.assert_async().await;
    stale.assert_async().await;
}

/// The pool tells `[webhook]` and `[ntfy]` about a dead agent: once over
/// two `--once` runs (the dedup state outlives the process), and the
/// daemon on its own, beside its sweeps.
#[tokio::test(flavor = "multi_thread")]
async fn the_pool_tells_a_webhook_and_ntfy_about_a_dead_agent() {
    use crate::pool::Fleet;
    use nexus_cell::RevivePolicy;
    let mut server = mockito::Server::new_async().await;
    let f = Fleet::new();
    f.join("omega", RevivePolicy::Never, false);
    let cfg = f.config(&format!(
        "[webhook]\nurl = \"{url}/hooks/pool\"\n[ntfy]\nurl = \"{url}\"\ntopic = \"nexus-e2e\"\ntoken_env = \"NEXUS_E2E_HOOK_TOKEN\"\n",
        url = server.url()
    ));
    let hook = server
        .mock("POST", "/hooks/pool")
        .match_body(Matcher::AllOf(vec![
            Matcher::Regex("Resurrection pool".into()),
            Matcher::Regex("omega \\(e2e mission\\)".into()),
            Matcher::Regex("dead".into()),
        ]))
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    let ntfy = server
        .mock("POST", "/nexus-e2e")
        .match_header("authorization", format!("Bearer {TOKEN}").as_str())
        .match_header("priority", "5")
        .match_body(Matcher::Regex("omega \\(e2e mission\\)".into()))
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    for _ in 0..2 {
        let o = f
            .cmd(&cfg)
            .arg("--once")
            .env("NEXUS_E2E_HOOK_TOKEN", TOKEN)
            .run()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!String::from_utf8_lossy(&o.stderr).contains(TOKEN));
    }
    hook.assert_async().await;
    ntfy.assert_async().await;
    assert!(f.root.join("webhook-alerts.json").is_file());

    // The daemon, with fresh alert state: it tells the hook by itself.
    std::fs::remove_file(f.root.join("webhook-alerts.json")).unwrap();
    std::fs::remove_file(f.root.join("ntfy-alerts.json")).unwrap();
    let again = server
        .mock("POST", "/hooks/pool")
        .match_body(Matcher::Regex("omega \\(e2e mission\\)".into()))
        .with_status(200)
        .expect_at_least(1)
        .create_async()
        .await;
    let port = crate::pool::free_port();
    let _d = crate::pool::Daemon(
        f.cmd(&cfg)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("NEXUS_E2E_HOOK_TOKEN", TOKEN)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !again.matched_async().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never told the hook"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
