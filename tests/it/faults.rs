//! Gitea failing under the real resurrection pool: unreachable (a closed
//! port), then 500s, then answers that arrive after the timeout but take
//! effect, then back. Every `--once` run is a fresh process (a daemon
//! restart); the outbox on disk carries the queued issue actions across
//! them, and each is delivered once, in order.

use std::process::Output;
use std::time::Duration;

use nexus_cell::RevivePolicy;
use nexus_e2e::Run;
use nexus_testkit::gitea::{Fake, REPO, TOKEN};

use crate::pool::Fleet;

/// The Fleet's usual config, with an `[incident]` table whose timeout and
/// retry interval keep an outage test short.
fn config(f: &Fleet) -> std::path::PathBuf {
    f.config(
        r#"
[incident]
assignees = ["alice"]
timeout = "1s"
retry_interval = "10s"
"#,
    )
}

fn sweep(f: &Fleet, cfg: &std::path::Path, fake: &Fake) -> Output {
    let o = f
        .cmd(cfg)
        .args(["--once", "--json"])
        .env("GITEA_URL", fake.url())
        .env("NEXUS_REPO", REPO)
        .env("GITEA_TOKEN", TOKEN)
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "a dead agent: exit 1; {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The queued actions, oldest first: (kind, agent, action id).
fn queued(f: &Fleet) -> Vec<(String, String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(f.root.join("gitea/outbox"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            let subject = v["check"]["subject"].as_str().unwrap();
            (
                v["kind"].as_str().unwrap().to_string(),
                subject.rsplit('/').next().unwrap().to_string(),
                v["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn opens(q: &[(String, String, String)]) -> Vec<&str> {
    q.iter()
        .filter(|a| a.0 == "open")
        .map(|a| a.1.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_rides_out_a_gitea_outage_and_delivers_each_issue_action_once_in_order() {
    let fake = Fake::start().await;
    let f = Fleet::new();
    f.join("n1", RevivePolicy::Never, true);
    let cfg = config(&f);

    // Unreachable: nothing reaches Gitea, the open is queued on disk once
    // (later sweeps may queue comments with fresh diagnostics behind it).
    fake.unreachable();
    sweep(&f, &cfg, &fake);
    sweep(&f, &cfg, &fake);
    assert_eq!(opens(&queued(&f)), ["n1"], "one open, not one per sweep");
    // A second agent dies during the outage: queued behind the first.
    f.join("n2", RevivePolicy::Never, true);
    sweep(&f, &cfg, &fake);
    assert_eq!(opens(&queued(&f)), ["n1", "n2"]);
    assert!(fake.st().log.is_empty(), "the port was closed");

    // Back on the same port, but answering 500.
    fake.reachable();
    fake.st().fail_next.extend([500; 1000]);
    sweep(&f, &cfg, &fake);
    assert!(fake.st().issues.is_empty());
    assert_eq!(opens(&queued(&f)), ["n1", "n2"]);

    // Then slow: n1's issue is created, but the answer comes after the 1 s
    // timeout; the pool cannot know, so the action stays queued.
    {
        let mut st = fake.st();
        st.fail_next.clear();
        st.slow_prefix = "POST /api/v1/repos/ops/alerts/issues".into();
        st.slow_next = 1;
        st.slow_by = Duration::from_millis(1500);
    }
    sweep(&f, &cfg, &fake);
    assert_eq!(fake.st().issues.len(), 1, "it took effect");
    let backlog = queued(&f);
    assert_eq!(opens(&backlog), ["n1", "n2"], "but the pool saw a timeout");

    // Gitea is fine again: the next sweep delivers the backlog in order.
    sweep(&f, &cfg, &fake);
    assert!(queued(&f).is_empty(), "{:#?}", fake.st().log);
    for _ in 0..2 {
        sweep(&f, &cfg, &fake);
    }
    let st = fake.st();
    let issues: Vec<(u64, &str, bool)> = st
        .issues
        .iter()
        .map(|i| (i.number, i.title.as_str(), i.open))
        .collect();
    assert_eq!(
        issues,
        [
            (1, "[pool] n1: agent dead", true),
            (2, "[pool] n2: agent dead", true)
        ],
        "each agent's issue once, in the order the deaths were queued: {:#?}",
        st.log
    );
    // Every queued action is in Gitea exactly once (its hidden marker), and
    // the queued comments arrived in queue order.
    let mut positions = Vec::new();
    for (kind, agent, id) in &backlog {
        let mark = format!("<!-- nexus-action:{id} -->");
        let in_bodies = st.issues.iter().filter(|i| i.body.contains(&mark)).count();
        let in_comments: Vec<usize> = st
            .comments
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1.contains(&mark))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            in_bodies + in_comments.len(),
            1,
            "{kind} for {agent} delivered once: {:#?}",
            st.log
        );
        positions.extend(in_comments);
    }
    assert!(
        positions.is_sorted(),
        "comments out of queue order: {positions:?}"
    );
    eprintln!(
        "pool outage figures: 8 sweeps (each a restart), {} queued actions ({} opens) delivered once in order, {} requests reached Gitea",
        backlog.len(),
        opens(&backlog).len(),
        st.log.len()
    );
    drop(st);
    fake.assert_contract();
}

/// An agent in a crash loop under the daemon (it exits at once; three
/// revives, then escalated): one issue, opened when the first launch
/// failed, and no flood of "Still failing" comments while the loop runs
/// and after it escalated: the incident engine's per-issue comment
/// interval holds for the pool as for the watchdog.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_files_one_issue_without_a_flood_of_comments() {
    let fake = Fake::start().await;
    let f = Fleet::new();
    f.join("loop1", RevivePolicy::Auto, false);
    let cfg = f.config(
        "max_attempts = 3\nslow_lane = 100000\n[incident]\nassignees = [\"alice\"]\ntimeout = \"2s\"\nretry_interval = \"1s\"\n",
    );
    let _d = crate::pool::Daemon(
        f.cmd(&cfg)
            .args(["--listen", "127.0.0.1:0"])
            .env("GITEA_URL", fake.url())
            .env("NEXUS_REPO", REPO)
            .env("GITEA_TOKEN", TOKEN)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let escalated = || f.events().contains("\"revive_escalated\"") && !fake.st().issues.is_empty();
    crate::pool::wait_for("escalated, its issue filed", escalated);
    // Three safety sweeps (poll 1 s) and the deadlines in between.
    std::thread::sleep(Duration::from_secs(4));
    let st = fake.st();
    assert_eq!(st.issues.len(), 1, "{:#?}", st.log);
    assert!(
        st.comments.len() <= 1,
        "comments flood the issue: {:#?}",
        st.comments
    );
    drop(st);
    assert_eq!(f.launches("loop1"), 4, "a first start and three revives");
    fake.assert_contract();
}
