//! What the operator sees in Gitea after a real `cron-heartbeat-check` run
//! against the fake Gitea (issue 18): an open issue found by paging with a
//! fresh state directory gets a comment on that run, and an issue the
//! original tools filed (no fingerprint) is adopted, not duplicated.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nexus_e2e::{Run, bin};
use nexus_gitea::{fingerprint, fingerprint_label, marker};
use nexus_testkit::gitea::{Fake, REPO, TOKEN};

const CREATE: &str = "POST /api/v1/repos/ops/alerts/issues";

/// A heartbeat directory with one silent job (`db_backup`, last success two
/// hours ago, interval five minutes) and a registry with the incident table.
struct Tree {
    tmp: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let hb = tmp.path().join("heartbeats");
        std::fs::create_dir_all(&hb).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        std::fs::write(
            hb.join("db_backup.last"),
            format!(
                r#"{{"job":"db_backup","timestamp":{},"interval_seconds":300,"status":"ok"}}"#,
                now - 7200.0
            ),
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("cron-jobs.toml"),
            "[incident]\nassignees = []\n",
        )
        .unwrap();
        Tree { tmp }
    }

    /// One check, its state (and the engine's) under `state`.
    fn check(&self, fake: &Fake, state: &Path) -> Output {
        let root = self.tmp.path();
        Command::new(bin("cron-heartbeat-check"))
            .arg("--dir")
            .arg(root.join("heartbeats"))
            .arg("--state-dir")
            .arg(state)
            .arg("--registry")
            .arg(root.join("cron-jobs.toml"))
            .arg("--no-self-heartbeat")
            .env("GITEA_URL", fake.url())
            .env("NEXUS_REPO", REPO)
            .env("GITEA_TOKEN", TOKEN)
            .env_remove("TELEGRAM_CHAT_ID")
            .env_remove("BEZALEL_HEARTBEAT_DIR")
            .run()
            .unwrap()
    }

    fn fresh_state(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// The cron checker's label, with issue #1 (`title`, `body`) filed long
/// ago and 119 newer issues of other subjects after it: #1 is on page 3.
fn gitea_with_issue_on_page_3(fake: &Fake, title: &str, body: &str) {
    let mut st = fake.st();
    let l = st.add_label("heartbeat-checker");
    st.add_issue(title, body, vec![l]);
    for k in 2..=120 {
        let other = fingerprint("heartbeat-checker", &format!("other-{k}"));
        st.add_issue(
            &format!("[heartbeat-checker] other {k}"),
            &marker(&other),
            vec![l],
        );
    }
}

pub(crate) fn creates(fake: &Fake) -> usize {
    fake.st()
        .log
        .iter()
        .filter(|l| l.as_str() == CREATE)
        .count()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_state_dir_comments_on_the_issue_it_finds_on_page_3() {
    let fake = Fake::start().await;
    let fp = fingerprint("heartbeat-checker", "cron");
    gitea_with_issue_on_page_3(
        &fake,
        "[heartbeat-checker] 1 cron job(s) silent: db_backup",
        &format!("{}\nfiled by an earlier run", marker(&fp)),
    );
    let t = Tree::new();
    let o = t.check(&fake, &t.fresh_state("state"));
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("commented on issue #1"), "{}", out(&o));
    assert_eq!(creates(&fake), 0, "no duplicate: {:#?}", fake.st().log);
    {
        let st = fake.st();
        assert_eq!(
            st.count("GET /api/v1/repos/ops/alerts/issues?"),
            3,
            "every page"
        );
        let comments = st.comments_of(1);
        assert_eq!(comments.len(), 1, "a comment on that run: {:#?}", st.log);
        assert!(comments[0].contains("db_backup"), "{comments:?}");
    }
    // The next run knows it commented: nothing more within the interval.
    let o = t.check(&fake, &t.fresh_state("state"));
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert_eq!(fake.st().comments_of(1).len(), 1);
    assert_eq!(creates(&fake), 0);
    fake.assert_contract();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issue_the_seed_filed_is_adopted_not_duplicated() {
    let fake = Fake::start().await;
    let fp = fingerprint("heartbeat-checker", "cron");
    // As the original checker filed it: label and title prefix, no fingerprint.
    gitea_with_issue_on_page_3(
        &fake,
        "[heartbeat-checker] 2 cron job(s) silent: db_backup, nightly_watch",
        "Stale cron heartbeats detected by bezalel_heartbeat_check.",
    );
    // A closed one of the seed's: never adopted, never touched.
    let closed = {
        let mut st = fake.st();
        let l = st.labels[0].0;
        let n = st.add_issue(
            "[heartbeat-checker] 1 cron job(s) silent: db_backup",
            "old",
            vec![l],
        );
        st.issues.last_mut().unwrap().open = false;
        n
    };
    let t = Tree::new();
    let o = t.check(&fake, &t.fresh_state("state"));
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert_eq!(creates(&fake), 0, "no duplicate: {:#?}", fake.st().log);
    {
        let st = fake.st();
        // The fingerprint was added: in the body (PATCH) and as a label.
        assert_eq!(
            st.count("PATCH /api/v1/repos/ops/alerts/issues/1"),
            1,
            "{:#?}",
            st.log
        );
        assert_eq!(st.count("POST /api/v1/repos/ops/alerts/issues/1/labels"), 1);
        let issue = &st.issues[0];
        assert!(issue.open);
        assert!(issue.body.contains(&marker(&fp)), "{}", issue.body);
        assert!(
            issue.body.starts_with("Stale cron heartbeats"),
            "{}",
            issue.body
        );
        let fp_label = st.labels.iter().find(|l| l.1 == fingerprint_label(&fp));
        assert!(issue.labels.contains(&fp_label.expect("the nx- label").0));
        // And the failing run commented with fresh diagnostics.
        let comments = st.comments_of(1);
        assert_eq!(comments.len(), 1, "{:#?}", st.log);
        assert!(comments[0].contains("db_backup"), "{comments:?}");
        assert!(st.comments_of(closed).is_empty());
        assert!(!st.issues.iter().any(|i| i.number == closed && i.open));
    }
    // From then on it is the checker's own, even with its state lost.
    let o = t.check(&fake, &t.fresh_state("lost"));
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert_eq!(creates(&fake), 0);
    assert_eq!(
        fake.st().count("PATCH /api/v1/repos/ops/alerts/issues/1"),
        1
    );
    fake.assert_contract();
}
