//! The real `nexus-watchdog`, one cycle with a fresh state directory,
//! against the fake Gitea holding issues it did not file in this state:
//! its own issue on page 3 (a lost state, another host), and an issue filed
//! by the original tools (label and title prefix, no fingerprint). The
//! requests it made are what the operator sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nexus_e2e::{Run, bin};
use nexus_gitea::{fingerprint, fingerprint_label, marker};
use nexus_testkit::gitea::{Fake, FakeState, REPO, TOKEN};

use crate::incident_cron::creates;
use tempfile::TempDir;

const ISSUES: &str = "/api/v1/repos/ops/alerts/issues";

/// A watchdog config whose one probe is a heartbeat file that was never
/// written: every cycle fails.
fn failing_config(dir: &Path) -> PathBuf {
    let p = dir.join("watchdog.toml");
    std::fs::write(
        &p,
        format!(
            "[watchdog]\nheartbeat_dir = \"{}\"\n\n[[probe]]\nname = \"think_loop\"\nheartbeat = {{ path = \"{}\", max_age = \"60s\" }}\n",
            dir.join("beats").display(),
            dir.join("never-written.json").display()
        ),
    )
    .unwrap();
    p
}

/// One `nexus-watchdog` cycle (no `--watch`) with the state in `state`.
fn watchdog_once(cfg: &Path, state: &Path, fake: &Fake) -> Output {
    let o = Command::new(bin("nexus-watchdog"))
        .arg("--config")
        .arg(cfg)
        .arg("--state-dir")
        .arg(state)
        .args(["--no-self-heartbeat", "--assignee", "none"])
        .env("GITEA_URL", fake.url())
        .env("NEXUS_REPO", REPO)
        .env("GITEA_TOKEN", TOKEN)
        .run()
        .unwrap();
    assert_ne!(
        o.status.code(),
        Some(0),
        "the probe fails; {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// 119 open issues of other subjects with the watchdog label, filed after
/// whatever `st` holds: an issue filed before them is on page 3.
fn fillers(st: &mut FakeState, label: i64) {
    for k in 0..119 {
        st.add_issue(
            &format!("[watchdog] other {k}"),
            &marker(&format!("{k:016x}")),
            vec![label],
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_watchdog_comments_on_its_issue_found_on_page_3() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let fp = fingerprint("watchdog", "nexus");
    let own = {
        let mut st = fake.st();
        let l = st.add_label("watchdog");
        let n = st.add_issue(
            "[watchdog] Nexus unhealthy: think_loop",
            &format!("{}\n\nfiled yesterday", marker(&fp)),
            vec![l],
        );
        // Filed and last commented a day before this run.
        st.issues[0].created -= 86_400;
        fillers(&mut st, l);
        n
    };
    let o = watchdog_once(
        &failing_config(dir.path()),
        &dir.path().join("state"),
        &fake,
    );
    assert_eq!(
        creates(&fake),
        0,
        "no duplicate created: {:#?}",
        fake.st().log
    );
    let st = fake.st();
    assert_eq!(
        st.count(&format!("GET {ISSUES}?")),
        3,
        "every page: {:#?}",
        st.log
    );
    assert_eq!(
        st.count(&format!("POST {ISSUES}/{own}/comments")),
        1,
        "one comment on the run that found it: {:#?}\n{}",
        st.log,
        String::from_utf8_lossy(&o.stderr)
    );
    let comments = st.comments_of(own);
    assert!(comments[0].contains("think_loop"), "{comments:?}");
    assert_eq!(st.open_issues().len(), 120);
    drop(st);
    fake.assert_no_leaks();
    fake.assert_contract();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_adopts_the_seeds_issue_instead_of_filing_a_duplicate() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let (seed, lookalike) = {
        let mut st = fake.st();
        let l = st.add_label("watchdog");
        // Filed by the original watchdog two days ago: label and title
        // prefix, no fingerprint.
        let seed = st.add_issue(
            "[watchdog] Nexus unhealthy: think_loop",
            "## Nexus watchdog\n\nfiled by the seed",
            vec![l],
        );
        st.issues[0].created -= 2 * 86_400;
        // Only starts like the prefix: not the watchdog's.
        let lookalike = st.add_issue("[watchdog]x Nexus unhealthy", "not ours", vec![l]);
        fillers(&mut st, l);
        (seed, lookalike)
    };
    let cfg = failing_config(dir.path());
    let state = dir.path().join("state");
    watchdog_once(&cfg, &state, &fake);
    let fp = fingerprint("watchdog", "nexus");
    assert_eq!(
        creates(&fake),
        0,
        "no duplicate created: {:#?}",
        fake.st().log
    );
    {
        let st = fake.st();
        let issue = st.issues.iter().find(|i| i.number == seed).unwrap();
        assert!(issue.open);
        assert!(issue.body.contains(&marker(&fp)), "{}", issue.body);
        assert!(issue.body.contains("filed by the seed"), "{}", issue.body);
        let nx = st
            .labels
            .iter()
            .find(|l| l.1 == fingerprint_label(&fp))
            .expect("the fingerprint label");
        assert!(issue.labels.contains(&nx.0), "{:?}", issue.labels);
        assert_eq!(st.count(&format!("PATCH {ISSUES}/{seed}")), 1);
        assert_eq!(st.count(&format!("POST {ISSUES}/{seed}/labels")), 1);
        let comments = st.comments_of(seed);
        assert_eq!(comments.len(), 1, "{:#?}", st.log);
        assert!(comments[0].contains("think_loop"), "{comments:?}");
        let other = st.issues.iter().find(|i| i.number == lookalike).unwrap();
        assert!(other.open && other.body == "not ours");
        assert!(st.comments_of(lookalike).is_empty());
    }
    // The next run (same state, within the interval) adds nothing: the
    // issue is the watchdog's own now.
    let before = fake.st().log.len();
    watchdog_once(&cfg, &state, &fake);
    let st = fake.st();
    let writes: Vec<&String> = st.log[before..]
        .iter()
        .filter(|l| !l.starts_with("GET "))
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
    assert_eq!(st.comments_of(seed).len(), 1);
    drop(st);
    fake.assert_no_leaks();
    fake.assert_contract();
}
