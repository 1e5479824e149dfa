//! The incident engine against the stateful fake Gitea.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use nexus_gitea::{
    ActionKind, Check, Engine, EngineConfig, GiteaClient, Outcome, fingerprint, fingerprint_label,
    marker,
};
use tempfile::TempDir;

use crate::client::config;
use crate::fake::Fake;

const T0: i64 = 1_767_225_600;

struct Rig {
    clock: Arc<AtomicI64>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            clock: Arc::new(AtomicI64::new(T0)),
        }
    }
    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }
    fn engine(
        &self,
        url: &str,
        dir: &std::path::Path,
        tune: impl FnOnce(&mut EngineConfig),
    ) -> Engine {
        let mut cfg = EngineConfig::new(dir, "watchdog", "[watchdog]");
        cfg.assignees = vec!["alice".into()];
        // These tests are about finding, creating and delivering: a change
        // of what fails is commented at once. The floor has its own tests.
        cfg.comment_change_floor = Duration::ZERO;
        tune(&mut cfg);
        let c = self.clock.clone();
        Engine::new(cfg, Some(GiteaClient::new(&config(url)).unwrap()))
            .with_clock(Arc::new(move || c.load(Ordering::SeqCst)))
    }
}

/// A failure of `what` (which the diagnostics repeat).
fn failing(what: &str) -> Check {
    Check::failing("nexus", "Nexus unhealthy: heartbeat", what).with_problems([what])
}

fn healthy() -> Check {
    Check::healthy("nexus", "all checks pass")
}

#[tokio::test]
async fn full_lifecycle_create_comment_rate_limit_resolve_reopen() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |c| {
        c.comment_change_floor = Duration::from_secs(600);
    });

    // Healthy with no issue: not a single request.
    assert_eq!(e.observe(&healthy()).await.unwrap(), Outcome::Nothing);
    assert!(fake.st().log.is_empty());
    assert!(
        !dir.path().join("subjects").exists(),
        "and no state file either"
    );

    // Failing: create with labels (ids), marker, assignee.
    let out = e
        .observe(&failing("heartbeat age 301s (pid 4242)"))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Created { number: 1 });
    {
        let st = fake.st();
        let i = &st.issues[0];
        assert_eq!(i.title, "[watchdog] Nexus unhealthy: heartbeat");
        let fp = fingerprint("watchdog", "nexus");
        assert!(i.body.contains(&marker(&fp)), "{}", i.body);
        assert!(i.body.contains("heartbeat age 301s"));
        assert_eq!(i.assignees, vec!["alice".to_string()]);
        let names: Vec<&str> = i
            .labels
            .iter()
            .map(|id| st.labels.iter().find(|l| l.0 == *id).unwrap().1.as_str())
            .collect();
        assert_eq!(names, vec!["watchdog", fingerprint_label(&fp).as_str()]);
    }

    // Same failure, numbers changed, inside the interval: nothing.
    rig.advance(300);
    let before = fake.st().log.len();
    assert_eq!(
        e.observe(&failing("heartbeat age 601s (pid 17)"))
            .await
            .unwrap(),
        Outcome::Nothing
    );
    assert_eq!(
        fake.st().log.len(),
        before,
        "no request for a rate-limited unchanged failure"
    );

    // Only the diagnostics changed (an event more): nothing either.
    let mut more = failing("heartbeat age 601s (pid 17)");
    more.diagnostics.push_str("\n- revive attempt 2 started");
    assert_eq!(e.observe(&more).await.unwrap(), Outcome::Nothing);
    // What fails changed, within the floor (10 min since the issue): nothing.
    assert_eq!(
        e.observe(&failing("process missing")).await.unwrap(),
        Outcome::Nothing
    );
    // ... and once the floor has passed: comment.
    rig.advance(300);
    assert_eq!(
        e.observe(&failing("process missing")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    // Unchanged but the interval passed: comment.
    rig.advance(3600);
    assert_eq!(
        e.observe(&failing("process missing")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    assert_eq!(fake.st().comments.len(), 2);

    // Healthy: recovery comment, then close.
    rig.advance(60);
    assert_eq!(
        e.observe(&healthy()).await.unwrap(),
        Outcome::Resolved { number: 1 }
    );
    {
        let st = fake.st();
        assert!(!st.issues[0].open);
        let last = &st.comments.last().unwrap().1;
        assert!(
            last.contains("Recovered") && last.contains("down for 1h 1"),
            "{last}"
        );
        let n = st.log.len();
        assert!(
            st.log[n - 2].starts_with("POST /api/v1/repos/ops/alerts/issues/1/comments"),
            "{:#?}",
            st.log
        );
        assert!(
            st.log[n - 1].starts_with("PATCH /api/v1/repos/ops/alerts/issues/1"),
            "{:#?}",
            st.log
        );
    }
    assert_eq!(e.observe(&healthy()).await.unwrap(), Outcome::Nothing);

    // Failing again within the reopen window: reopen #1, no new issue.
    rig.advance(600);
    assert_eq!(
        e.observe(&failing("process missing")).await.unwrap(),
        Outcome::Reopened { number: 1 }
    );
    assert_eq!(fake.st().issues.len(), 1);
    assert!(fake.st().issues[0].open);

    // After the window: a new issue.
    rig.advance(60);
    e.observe(&healthy()).await.unwrap();
    rig.advance(2 * 86_400);
    assert_eq!(
        e.observe(&failing("again")).await.unwrap(),
        Outcome::Created { number: 2 }
    );
    fake.assert_contract();
}

#[tokio::test]
async fn unknown_or_unassignable_assignees_are_left_out_and_named() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    // ghost does not exist (404 on /users); bob exists but the create answers 422.
    let mut e = rig.engine(&fake.url(), dir.path(), |c| {
        c.assignees = vec!["ghost".into(), "bob".into(), "alice".into()];
    });
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Created { number: 1 }
    );
    let st = fake.st();
    assert_eq!(st.issues.len(), 1);
    assert!(
        st.issues[0].assignees.is_empty(),
        "retried without assignees after the 422"
    );
    let body = &st.issues[0].body;
    assert!(
        body.contains("could not assign") && body.contains("`ghost`") && body.contains("`bob`"),
        "{body}"
    );
    assert_eq!(st.count("POST /api/v1/repos/ops/alerts/issues"), 2);
    drop(st);
    fake.assert_contract();
}

#[tokio::test]
async fn finds_the_subjects_issue_on_page_3_of_120_and_does_not_duplicate() {
    // Filed two days ago and not commented since.
    let fake = fake_with_issue_on_page_3(None).await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    // Found on page 3 with a fresh state dir: this failing run comments
    // with fresh diagnostics (it does not just note "commented now").
    assert_eq!(
        e.observe(&failing("heartbeat age 999s")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    {
        let st = fake.st();
        assert_eq!(st.issues.len(), 120);
        assert_eq!(st.count("GET /api/v1/repos/ops/alerts/issues?"), 3);
        assert_eq!(st.count("POST /api/v1/repos/ops/alerts/issues"), 1);
        let comments = st.comments_of(1);
        assert_eq!(comments.len(), 1, "{:#?}", st.log);
        assert!(comments[0].contains("heartbeat age 999s"), "{comments:?}");
    }
    // From then on the interval runs from that comment.
    rig.advance(60);
    assert_eq!(
        e.observe(&failing("heartbeat age 999s")).await.unwrap(),
        Outcome::Nothing
    );
    assert_eq!(fake.st().comments.len(), 1);
    fake.assert_contract();
}

/// The subject's issue (#1, filed two days before T0) on page 3 of 120
/// open issues, with a comment `ago` seconds before T0 if given.
async fn fake_with_issue_on_page_3(comment_ago: Option<i64>) -> Fake {
    let fake = Fake::start().await;
    let fp = fingerprint("watchdog", "nexus");
    let mut st = fake.st();
    let l = st.add_label("watchdog");
    let n = st.add_issue(
        "[watchdog] Nexus unhealthy: old",
        &format!("{}\nold", marker(&fp)),
        vec![l],
    );
    st.issues[0].created = T0 - 2 * 86_400;
    if let Some(ago) = comment_ago {
        st.add_comment(n, "looking into it (a person)", T0 - ago);
    }
    for k in 2..=120 {
        st.add_issue(
            &format!("[watchdog] other {k}"),
            &marker(&format!("{k:016x}")),
            vec![l],
        );
    }
    drop(st);
    fake
}

#[tokio::test]
async fn an_adopted_issue_commented_within_the_interval_waits_for_it() {
    // Commented 10 minutes ago (interval 1 h): adopted without a comment.
    let fake = fake_with_issue_on_page_3(Some(600)).await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Adopted { number: 1 }
    );
    assert_eq!(fake.st().comments_of(1).len(), 1, "only the person's");
    // The interval is measured from that comment, not from the adoption.
    rig.advance(2999);
    assert_eq!(e.observe(&failing("x")).await.unwrap(), Outcome::Nothing);
    rig.advance(1);
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    assert_eq!(fake.st().comments_of(1).len(), 2);
    assert_eq!(fake.st().issues.len(), 120);
    fake.assert_contract();
}

#[tokio::test]
async fn adopt_at_start_up_learns_when_the_issue_was_last_commented() {
    // Last commented two hours ago: the first failing cycle comments.
    let fake = fake_with_issue_on_page_3(Some(7200)).await;
    let rig = Rig::new();
    let dir = TempDir::new().unwrap();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    assert_eq!(e.adopt().await.unwrap()[0], 1);
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    assert!(fake.st().comments_of(1)[1].contains("Still failing"));
    drop(fake);

    // Last commented a minute ago: it waits for the rest of the interval.
    let fake = fake_with_issue_on_page_3(Some(60)).await;
    let dir = TempDir::new().unwrap();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    assert_eq!(e.adopt().await.unwrap()[0], 1);
    assert_eq!(e.observe(&failing("x")).await.unwrap(), Outcome::Nothing);
    assert_eq!(fake.st().comments_of(1).len(), 1);
    rig.advance(3540);
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    fake.assert_contract();
}

/// The seed's watchdog issue, filed without a fingerprint two days ago.
fn seed_issue(fake: &Fake, title: &str, label: i64) -> u64 {
    let mut st = fake.st();
    let n = st.add_issue(title, "## Nexus watchdog\n\nfiled by the seed", vec![label]);
    st.issues.last_mut().unwrap().created = T0 - 2 * 86_400;
    n
}

#[tokio::test]
async fn an_issue_filed_by_the_original_tools_is_adopted_not_duplicated() {
    let fake = Fake::start().await;
    let l = fake.st().add_label("watchdog");
    // Closed: never adopted.
    let closed = seed_issue(&fake, "[watchdog] Nexus unhealthy: syntax", l);
    fake.st().issues[0].open = false;
    // Another prefix, one that only starts like ours, and the right title
    // without the label: none of them is the watchdog's.
    let other = seed_issue(&fake, "[heartbeat-checker] 2 cron job(s) silent", l);
    let longer = seed_issue(&fake, "[watchdog]x Nexus unhealthy: heartbeat", l);
    let unlabelled = fake
        .st()
        .add_issue("[watchdog] Nexus unhealthy: heartbeat", "", vec![]);
    let seed = seed_issue(&fake, "[watchdog] Nexus unhealthy: heartbeat", l);
    for k in 0..110 {
        fake.st().add_issue(
            &format!("[watchdog] other {k}"),
            &marker(&format!("{k:016x}")),
            vec![l],
        );
    }
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    // Start-up adoption goes by fingerprint only (the fillers' subjects).
    assert!(!e.adopt().await.unwrap().contains(&seed));
    assert_eq!(
        e.observe(&failing("heartbeat age 999s")).await.unwrap(),
        Outcome::Commented { number: seed }
    );
    let fp = fingerprint("watchdog", "nexus");
    {
        let st = fake.st();
        assert_eq!(
            st.count("POST /api/v1/repos/ops/alerts/issues"),
            st.count("POST /api/v1/repos/ops/alerts/issues/"),
            "no issue created: {:#?}",
            st.log
        );
        let issue = st.issues.iter().find(|i| i.number == seed).unwrap();
        assert!(issue.open);
        assert!(issue.body.contains(&marker(&fp)), "{}", issue.body);
        assert!(issue.body.contains("filed by the seed"), "{}", issue.body);
        let fp_label = st.labels.iter().find(|x| x.1 == fingerprint_label(&fp));
        assert!(issue.labels.contains(&fp_label.unwrap().0));
        assert_eq!(st.comments_of(seed).len(), 1);
        assert!(st.comments_of(seed)[0].contains("heartbeat age 999s"));
        for n in [closed, other, longer, unlabelled] {
            let i = st.issues.iter().find(|i| i.number == n).unwrap();
            assert!(!i.body.contains(&marker(&fp)), "#{n} touched");
            assert!(st.comments_of(n).is_empty(), "#{n} commented");
            assert_eq!(i.open, n != closed);
        }
    }
    // From then on it is the engine's own: found by its fingerprint after
    // the state is lost, and closed on recovery.
    let fresh = TempDir::new().unwrap();
    let mut e = rig.engine(&fake.url(), fresh.path(), |_| {});
    assert!(e.adopt().await.unwrap().contains(&seed));
    rig.advance(60);
    assert_eq!(
        e.observe(&healthy()).await.unwrap(),
        Outcome::Resolved { number: seed }
    );
    assert!(fake.st().open_issues().iter().all(|i| i.number != seed));
    fake.assert_contract();
}

#[tokio::test]
async fn of_several_seed_issues_the_lowest_is_kept_and_the_others_closed() {
    let fake = Fake::start().await;
    let l = fake.st().add_label("watchdog");
    let a = seed_issue(&fake, "[watchdog] Nexus unhealthy: heartbeat", l);
    let b = seed_issue(&fake, "[watchdog] Nexus unhealthy: syntax", l);
    let c = seed_issue(&fake, "[watchdog]", l);
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Commented { number: a }
    );
    let st = fake.st();
    assert_eq!(st.count("POST /api/v1/repos/ops/alerts/issues "), 0);
    let open: Vec<u64> = st.open_issues().iter().map(|i| i.number).collect();
    assert_eq!(open, vec![a]);
    for dup in [b, c] {
        let comments = st.comments_of(dup);
        assert_eq!(comments.len(), 1);
        assert!(
            comments[0].starts_with(&format!("Duplicate of #{a}")),
            "{comments:?}"
        );
    }
    drop(st);
    fake.assert_contract();
}

#[tokio::test]
async fn a_subjects_title_prefix_is_exact() {
    let fake = Fake::start().await;
    let l = fake.st().add_label("resurrection-pool");
    let ab = fake
        .st()
        .add_issue("[pool] ab: agent dead (300s)", "seed", vec![l]);
    // The right title, but another subject's fingerprint.
    let theirs = fake.st().add_issue(
        "[pool] a: agent dead",
        &marker(&fingerprint("resurrection-pool", "other")),
        vec![l],
    );
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |c| {
        c.label = "resurrection-pool".into();
        c.title_prefix = "[pool]".into();
        c.assignees.clear();
    });
    let dead = |name: &str| {
        Check::failing(name, &format!("{name}: agent dead"), "gone")
            .with_title_subject(&format!("{name}:"))
    };
    let Outcome::Created { number } = e.observe(&dead("a")).await.unwrap() else {
        panic!("{:#?}", fake.st().log)
    };
    assert!(number > theirs);
    assert_eq!(
        e.observe(&dead("ab")).await.unwrap(),
        Outcome::Commented { number: ab }
    );
    let st = fake.st();
    assert_eq!(st.open_issues().len(), 3, "nothing closed as a duplicate");
    assert!(st.comments_of(theirs).is_empty());
    drop(st);
    fake.assert_contract();
}

#[tokio::test]
async fn restart_with_an_open_issue_adopts_it() {
    let fake = Fake::start().await;
    let rig = Rig::new();
    let first = TempDir::new().unwrap();
    let mut e = rig.engine(&fake.url(), first.path(), |_| {});
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Created { number: 1 }
    );
    drop(e);

    // Restart with the same state dir: the remembered issue is checked by GET.
    let mut e = rig.engine(&fake.url(), first.path(), |_| {});
    rig.advance(60);
    assert_eq!(
        e.observe(&failing("y")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    drop(e);

    // Restart with the state lost: adopt() at start-up finds it by marker.
    let fresh = TempDir::new().unwrap();
    let mut e = rig.engine(&fake.url(), fresh.path(), |_| {});
    assert_eq!(e.adopt().await.unwrap(), vec![1]);
    rig.advance(60);
    assert_eq!(
        e.observe(&failing("y")).await.unwrap(),
        Outcome::Nothing,
        "same diagnostics, adopted just now"
    );
    assert_eq!(fake.st().issues.len(), 1, "not duplicated");
    // A healthy cycle after the restart closes the adopted issue.
    assert_eq!(
        e.observe(&healthy()).await.unwrap(),
        Outcome::Resolved { number: 1 }
    );

    // Lost state without adopt(): a failing cycle still finds the open issue.
    fake.st().issues[0].open = true;
    let fresh2 = TempDir::new().unwrap();
    let mut e = rig.engine(&fake.url(), fresh2.path(), |_| {});
    assert_eq!(
        e.observe(&failing("z")).await.unwrap(),
        Outcome::Adopted { number: 1 }
    );
    assert_eq!(fake.st().issues.len(), 1);
    fake.assert_contract();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_sharing_a_state_dir_race_to_one_issue() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    for round in 0..5 {
        let mut a = rig.engine(&fake.url(), dir.path(), |_| {});
        let mut b = rig.engine(&fake.url(), dir.path(), |_| {});
        let c = failing("x");
        let (ra, rb) = tokio::join!(a.observe(&c), b.observe(&c));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let open = fake.st().open_issues().len();
        assert_eq!(open, 1, "round {round}: {ra:?} {rb:?}");
        rig.advance(60);
        a.observe(&healthy()).await.unwrap();
        assert!(fake.st().open_issues().is_empty());
        rig.advance(2 * 86_400);
    }
    fake.assert_contract();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_without_a_shared_lock_end_with_one_open_issue() {
    let fake = Fake::start().await;
    let rig = Rig::new();
    let (da, db) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut a = rig.engine(&fake.url(), da.path(), |_| {});
    let mut b = rig.engine(&fake.url(), db.path(), |_| {});
    let c = failing("x");
    let (ra, rb) = tokio::join!(a.observe(&c), b.observe(&c));
    ra.unwrap();
    rb.unwrap();
    let st = fake.st();
    assert_eq!(st.open_issues().len(), 1, "{:#?}", st.log);
    assert_eq!(
        st.labels.iter().filter(|l| l.1 == "watchdog").count(),
        1,
        "{:#?}",
        st.labels
    );
    drop(st);
    fake.assert_contract();
}

#[tokio::test]
async fn post_create_check_closes_the_newer_duplicate() {
    // Deterministic interleaving: another host creates the subject's issue
    // between our find and our create.
    let fake = Fake::start().await;
    let fp = fingerprint("watchdog", "nexus");
    fake.st().inject_before_create = Some(crate::fake::FIssue {
        number: 0,
        title: "[watchdog] Nexus unhealthy: heartbeat".into(),
        body: format!("{}\nfrom the other host", marker(&fp)),
        open: true,
        labels: vec![],
        assignees: vec![],
        created: 0,
        closed_at: None,
    });
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Adopted { number: 1 }
    );
    {
        let st = fake.st();
        assert_eq!(
            st.open_issues()
                .iter()
                .map(|i| i.number)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert!(!st.issues.iter().find(|i| i.number == 2).unwrap().open);
        let (n, body) = st.comments.last().unwrap();
        assert_eq!(*n, 2);
        assert!(body.starts_with("Duplicate of #1"), "{body}");
    }
    // The engine now tracks #1.
    rig.advance(60);
    assert_eq!(
        e.observe(&failing("changed")).await.unwrap(),
        Outcome::Commented { number: 1 }
    );
    fake.assert_contract();
}

#[tokio::test]
async fn daily_cap_stops_creating_and_comments_the_newest_instead() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |c| {
        c.max_issues_per_day = 2;
        c.reopen_window = Duration::ZERO;
    });
    let mut outcomes = Vec::new();
    for k in 0..3 {
        rig.advance(10);
        outcomes.push(e.observe(&failing(&format!("flap {k}"))).await.unwrap());
        rig.advance(10);
        e.observe(&healthy()).await.unwrap();
    }
    assert_eq!(
        outcomes[..2],
        [
            Outcome::Created { number: 1 },
            Outcome::Created { number: 2 }
        ]
    );
    assert_eq!(
        outcomes[2],
        Outcome::CapReached {
            commented_on: Some(2)
        }
    );
    assert_eq!(fake.st().issues.len(), 2);
    assert!(fake.st().comments.last().unwrap().1.contains("Daily cap"));
    // Next UTC day: allowed again.
    rig.advance(86_400);
    assert!(matches!(
        e.observe(&failing("new day")).await.unwrap(),
        Outcome::Created { .. }
    ));
    fake.assert_contract();
}

#[tokio::test]
async fn dry_run_makes_no_request_and_writes_nothing() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |c| c.dry_run = true);
    let Outcome::DryRun { plan } = e.observe(&failing("x")).await.unwrap() else {
        panic!()
    };
    assert!(plan.contains("would open an issue"), "{plan}");
    let Outcome::DryRun { plan } = e.observe(&healthy()).await.unwrap() else {
        panic!()
    };
    assert!(plan.contains("nothing to do"), "{plan}");
    assert_eq!(e.adopt().await.unwrap(), Vec::<u64>::new());
    assert_eq!(e.flush().await.unwrap(), 0);
    let log = fake.st().log.clone();
    assert!(log.is_empty(), "{log:#?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn engine_futures_are_send_and_debug_hides_the_token() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine("http://127.0.0.1:9", dir.path(), |_| {});
    let text = format!("{e:?}");
    assert!(!text.contains(crate::fake::TOKEN), "{text}");
    let c = healthy();
    let fut = e.observe(&c);
    assert_send(&fut);
}

#[tokio::test]
async fn no_client_means_disabled() {
    let dir = TempDir::new().unwrap();
    let mut e = Engine::new(
        EngineConfig::new(dir.path(), "watchdog", "[watchdog]"),
        None,
    );
    assert_eq!(e.observe(&failing("x")).await.unwrap(), Outcome::Disabled);
}

#[tokio::test]
async fn gitea_down_queues_durably_and_delivers_in_order_after_a_restart() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    // Gitea unreachable: a port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let mut e = rig.engine(&dead, dir.path(), |_| {});
    let o1 = e.observe(&failing("heartbeat stale")).await.unwrap();
    rig.advance(60);
    let o2 = e.observe(&failing("heartbeat stale")).await.unwrap(); // rate-limited: nothing queued
    rig.advance(60);
    let o3 = e.observe(&failing("process missing")).await.unwrap();
    rig.advance(60);
    let o4 = e.observe(&healthy()).await.unwrap();
    rig.advance(60);
    let o5 = e.observe(&failing("port closed")).await.unwrap();
    assert_eq!(
        [o1, o2, o3, o4, o5],
        [
            Outcome::Queued {
                kind: ActionKind::Open
            },
            Outcome::Nothing,
            Outcome::Queued {
                kind: ActionKind::Comment
            },
            Outcome::Queued {
                kind: ActionKind::Resolve
            },
            Outcome::Queued {
                kind: ActionKind::Open
            },
        ]
    );
    assert_eq!(e.outbox().len().unwrap(), 4);
    drop(e); // the process "restarts"

    // Gitea is back; meanwhile it still answers 503 for a while.
    fake.st().down = true;
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    rig.advance(60);
    assert_eq!(
        e.observe(&failing("port closed")).await.unwrap(),
        Outcome::Nothing,
        "unchanged failure: nothing new is queued while the backlog waits"
    );
    assert_eq!(e.outbox().len().unwrap(), 4);
    fake.st().down = false;
    fake.st().log.clear();
    assert_eq!(e.flush().await.unwrap(), 0);
    {
        let st = fake.st();
        let writes: Vec<&str> = st
            .log
            .iter()
            .filter(|l| !l.starts_with("GET"))
            .map(|l| l.split('?').next().unwrap())
            .collect();
        assert_eq!(
            writes,
            vec![
                "POST /api/v1/repos/ops/alerts/labels",
                "POST /api/v1/repos/ops/alerts/labels",
                "POST /api/v1/repos/ops/alerts/issues", // open
                "POST /api/v1/repos/ops/alerts/issues/1/comments", // process missing
                "POST /api/v1/repos/ops/alerts/issues/1/comments", // recovery
                "PATCH /api/v1/repos/ops/alerts/issues/1", // close
                "POST /api/v1/repos/ops/alerts/issues/1/comments", // port closed
                "PATCH /api/v1/repos/ops/alerts/issues/1", // reopen (within window)
            ],
            "{:#?}",
            st.log
        );
        assert!(st.issues[0].open);
        assert!(st.comments[0].1.contains("process missing"));
        assert!(st.comments[1].1.contains("Recovered"));
        assert!(st.comments[2].1.contains("port closed"));
    }
    assert!(e.outbox().is_empty().unwrap());
    // And the engine goes on from the delivered state.
    rig.advance(60);
    e.observe(&healthy()).await.unwrap();
    assert!(fake.st().open_issues().is_empty());
    fake.assert_contract();
}

#[tokio::test]
async fn a_refused_queued_action_moves_to_failed_and_the_rest_is_delivered() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let outbox = nexus_gitea::Outbox::new(dir.path().join("outbox"));
    std::fs::create_dir_all(outbox.dir()).unwrap();
    std::fs::write(
        outbox.dir().join("00000000000000000001-1-000000.json"),
        b"{not json",
    )
    .unwrap();
    outbox
        .enqueue(&nexus_gitea::QueuedAction {
            id: String::new(),
            kind: ActionKind::Open,
            check: failing("queued"),
            decided_at: T0,
            down_since: Some(T0),
        })
        .unwrap();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    assert_eq!(e.flush().await.unwrap(), 0);
    assert_eq!(fake.st().issues.len(), 1);
    assert_eq!(
        std::fs::read_dir(outbox.dir().join("failed"))
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test]
async fn corrupt_state_starts_fresh_without_duplicating() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    e.observe(&failing("x")).await.unwrap();
    let fp = fingerprint("watchdog", "nexus");
    std::fs::write(
        dir.path().join("subjects").join(format!("{fp}.json")),
        b"\x00garbage",
    )
    .unwrap();
    rig.advance(60);
    assert_eq!(
        e.observe(&failing("x")).await.unwrap(),
        Outcome::Adopted { number: 1 }
    );
    assert_eq!(fake.st().issues.len(), 1);
}

#[tokio::test]
async fn a_failing_gitea_is_retried_once_per_outbox_retry_not_once_per_subject() {
    let fake = Fake::start().await;
    fake.st().down = true;
    let dir = TempDir::new().unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), dir.path(), |_| {});
    let mut after = Vec::new();
    for agent in ["a", "b", "c", "d"] {
        let out = e
            .observe(&Check::failing(agent, "dead", "x"))
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Queued {
                kind: ActionKind::Open
            }
        );
        after.push(fake.st().log.len());
    }
    // a: its own attempt (3 tries); b: one outbox attempt; c, d: none.
    assert_eq!(after, vec![3, 6, 6, 6], "{:#?}", fake.st().log);
    rig.advance(nexus_gitea::OUTBOX_RETRY.as_secs() as i64);
    fake.st().down = false;
    e.observe(&Check::healthy("e", "fine")).await.unwrap();
    assert!(e.outbox().is_empty().unwrap());
    assert_eq!(fake.st().open_issues().len(), 4);
    fake.assert_contract();
}

/// Every file and directory under `dir`, relative, each checked: 0700
/// directories, 0600 files.
fn assert_private(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let mode = std::fs::symlink_metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{} is {mode:04o}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            seen.push(p.strip_prefix(dir).unwrap().display().to_string());
            if meta.is_dir() {
                todo.push(p);
            } else {
                let mode = meta.permissions().mode() & 0o7777;
                assert!(meta.is_file(), "{}", p.display());
                assert_eq!(mode, 0o600, "{} is {mode:04o}", p.display());
            }
        }
    }
    seen.sort();
    seen
}

/// Issue 16, item 12: the rate-limit window, the deferred subjects, the
/// lock, the subjects' state, the outbox and its `failed/` are 0600 files in
/// 0700 directories, whatever the umask; a state directory and a lock file
/// left loose by an older version are narrowed.
#[tokio::test]
async fn every_file_the_engine_keeps_is_private() {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let fake = Fake::start().await;
    let base = TempDir::new().unwrap();
    let dir = base.path().join("gitea");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("engine.lock"), b"").unwrap();
    std::fs::set_permissions(
        dir.join("engine.lock"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let rig = Rig::new();
    let mut e = rig.engine(&fake.url(), &dir, |c| {
        c.max_actions = 1;
        c.action_window = Duration::from_secs(600);
    });
    let fail = |s: &str| Check::failing(s, &format!("{s} down"), "details");
    assert_eq!(
        e.observe(&fail("a")).await.unwrap(),
        Outcome::Created { number: 1 }
    );
    assert_eq!(e.observe(&fail("b")).await.unwrap(), Outcome::Deferred);
    e.tick().await.unwrap();
    let fa = fingerprint("watchdog", "a");
    let fb = fingerprint("watchdog", "b");
    assert_eq!(
        assert_private(&dir),
        [
            "deferred.json".to_string(),
            "engine.lock".into(),
            "limiter.json".into(),
            "subjects".into(),
            format!("subjects/{fa}.json"),
        ]
    );
    // Gitea fails when b's turn comes: queued in the outbox.
    fake.st().down = true;
    rig.advance(600);
    e.tick().await.unwrap();
    assert_eq!(e.outbox().len().unwrap(), 1);
    // Then refuses it for good: moved to failed/.
    fake.st().down = false;
    fake.st().fail_next.push_back(422);
    rig.advance(600);
    assert_eq!(e.flush().await.unwrap(), 0);
    let seen = assert_private(&dir);
    assert!(seen.contains(&"outbox/failed".to_string()), "{seen:?}");
    assert!(
        seen.iter()
            .any(|p| p.starts_with("outbox/failed/") && p.ends_with(".json")),
        "{seen:?}"
    );
    assert!(seen.contains(&format!("subjects/{fb}.json")), "{seen:?}");
}

/// The state directory or the lock file swapped for a symbolic link is
/// refused: nothing is created or opened through it.
#[tokio::test]
async fn a_symlinked_state_dir_or_lock_file_is_refused() {
    let fake = Fake::start().await;
    let base = TempDir::new().unwrap();
    let rig = Rig::new();
    let elsewhere = base.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let linked = base.path().join("gitea-link");
    std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
    let mut e = rig.engine(&fake.url(), &linked, |_| {});
    let err = e.observe(&failing("x")).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    let dir = base.path().join("gitea");
    std::fs::create_dir(&dir).unwrap();
    let victim = base.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("engine.lock")).unwrap();
    let mut e = rig.engine(&fake.url(), &dir, |_| {});
    let err = e.observe(&failing("x")).await.unwrap_err();
    assert!(
        err.to_string().contains("engine.lock") && err.to_string().contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(fake.st().log.is_empty(), "no request: {:?}", fake.st().log);
}
