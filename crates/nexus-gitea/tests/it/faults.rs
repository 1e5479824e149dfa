//! Gitea failing for minutes (500s, answers past the timeout that still take
//! effect, a closed port) and back: every queued action is delivered once,
//! in order, across an engine restart. Minutes are simulated (injected
//! clock); only the late answers cost real time (a few hundred ms each).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use nexus_gitea::{ActionKind, Check, Engine, EngineConfig, GiteaClient, Outcome};
use tempfile::TempDir;

use crate::client::config;
use crate::fake::Fake;

const T0: i64 = 1_767_225_600;

fn engine(url: &str, dir: &std::path::Path, clock: &Arc<AtomicI64>) -> Engine {
    let mut cfg = EngineConfig::new(dir, "watchdog", "[watchdog]");
    cfg.assignees = vec!["alice".into()];
    // A change of what fails is commented at once (no floor): more actions
    // to queue and deliver.
    cfg.comment_change_floor = Duration::ZERO;
    let mut client = config(url);
    client.timeout = Duration::from_millis(300);
    let c = clock.clone();
    Engine::new(cfg, Some(GiteaClient::new(&client).unwrap()))
        .with_clock(Arc::new(move || c.load(Ordering::SeqCst)))
}

fn queued(kind: ActionKind) -> Outcome {
    Outcome::Queued { kind }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_minute_outage_of_every_kind_delivers_each_action_once_in_order() {
    let fake = Fake::start().await;
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let sweep = || clock.fetch_add(30, Ordering::SeqCst);
    let mut e = engine(&fake.url(), dir.path(), &clock);
    let fail =
        |s: &str, d: &str| Check::failing(s, &format!("{s} unhealthy"), d).with_problems([d]);
    let ok = |s: &str| Check::healthy(s, "all checks pass");

    assert_eq!(
        e.observe(&fail("a", "heartbeat stale")).await.unwrap(),
        Outcome::Created { number: 1 }
    );
    let before_outage = fake.st().log.len();

    // t+30: the comment is posted but answered after the client's timeout.
    sweep();
    {
        let mut st = fake.st();
        st.slow_prefix = "POST".into();
        st.slow_next = 1;
        st.slow_by = Duration::from_millis(700);
    }
    let o1 = e.observe(&fail("a", "process missing")).await.unwrap();
    assert_eq!(fake.st().comments_of(1).len(), 1, "it took effect");
    // t+60: Gitea answers 500 to everything for a while.
    sweep();
    fake.st().fail_next.extend([500; 10_000]);
    let o2 = e.observe(&fail("b", "heartbeat stale")).await.unwrap();
    // t+90: and then the port is closed.
    sweep();
    fake.unreachable();
    let o3 = e.observe(&fail("a", "process missing")).await.unwrap();
    sweep();
    let o4 = e.observe(&ok("a")).await.unwrap();
    // The daemon restarts in the middle of the outage.
    drop(e);
    let mut e = engine(&fake.url(), dir.path(), &clock);
    sweep();
    let o5 = e.observe(&fail("c", "gateway refused")).await.unwrap();
    // t+180: the port is back, still answering 500.
    sweep();
    fake.reachable();
    let o6 = e.observe(&fail("b", "port closed")).await.unwrap();
    let mut quiet = Vec::new();
    for _ in 0..3 {
        sweep();
        quiet.push(e.observe(&fail("c", "gateway refused")).await.unwrap());
    }
    // t+300: the 500s stop; the issue creation is answered late once more.
    sweep();
    {
        let mut st = fake.st();
        st.fail_next.clear();
        st.slow_prefix = "POST /api/v1/repos/ops/alerts/issues?".into();
        st.slow_next = 1;
    }
    quiet.push(e.observe(&fail("b", "port closed")).await.unwrap());
    assert_eq!(
        [o1, o2, o3, o4, o5, o6],
        [
            queued(ActionKind::Comment),
            queued(ActionKind::Open),
            Outcome::Nothing, // unchanged within the comment interval
            queued(ActionKind::Resolve),
            queued(ActionKind::Open),
            queued(ActionKind::Comment),
        ]
    );
    assert!(quiet.iter().all(|o| *o == Outcome::Nothing), "{quiet:?}");
    let during = fake.st().log.len() - before_outage;
    // Gitea is back for good: the next cycles after the retry delay deliver.
    for _ in 0..4 {
        sweep();
        e.observe(&ok("d")).await.unwrap();
    }
    assert_eq!(e.flush().await.unwrap(), 0, "outbox drained");

    let st = fake.st();
    let titles: Vec<(u64, &str, bool)> = st
        .issues
        .iter()
        .map(|i| (i.number, i.title.as_str(), i.open))
        .collect();
    assert_eq!(
        titles,
        [
            (1, "[watchdog] a unhealthy", false),
            (2, "[watchdog] b unhealthy", true),
            (3, "[watchdog] c unhealthy", true),
        ],
        "one issue per subject, created in queue order: {:#?}",
        st.log
    );
    let all: Vec<(u64, String)> = st
        .comments
        .iter()
        .map(|(n, b)| (*n, b.lines().next().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        all,
        [
            (1, "## Still failing: a unhealthy".to_string()),
            (1, "## ✅ Recovered: `a`".to_string()),
            (2, "## Still failing: b unhealthy".to_string()),
        ],
        "each comment once, in order: {:#?}",
        st.log
    );
    assert!(st.comments[0].1.contains("process missing"));
    assert!(st.comments[2].1.contains("port closed"));
    // The close of #1 (queued 3rd) came before c's issue (queued 4th).
    let close = st
        .log
        .iter()
        .position(|l| l.starts_with("PATCH /api/v1/repos/ops/alerts/issues/1"))
        .unwrap();
    let create_c = st
        .log
        .iter()
        .rposition(|l| {
            l.starts_with("POST /api/v1/repos/ops/alerts/issues?")
                || l == "POST /api/v1/repos/ops/alerts/issues"
        })
        .unwrap();
    assert!(close < create_c, "{:#?}", st.log);
    // Six simulated minutes of outage cost a bounded number of requests:
    // at most one delivery attempt per outbox_retry (60 s), not one per cycle.
    assert!(
        during <= 40,
        "{during} requests during the outage: {:#?}",
        st.log
    );
    eprintln!(
        "outage figures: {during} requests reached Gitea during 6 simulated minutes; {} in total; 5 queued actions delivered once",
        st.log.len()
    );
    drop(st);
    fake.assert_contract();
}
