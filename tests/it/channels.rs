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
