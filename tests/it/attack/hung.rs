//! A Gitea or a Telegram that accepts connections and never answers (or
//! whose accept backlog is full) under the real resurrection pool: the
//! sweeps keep their pace, so dead `auto` agents are launched within a
//! sweep of their death and `/health` stays ok (the channel's trouble is
//! listed, not the pool's); once the server answers again, what waited is
//! delivered, once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nexus_cell::{AgentName, Join, RevivePolicy, Role};
use nexus_e2e::Run;
use nexus_testkit::gitea::{Fake, REPO, TOKEN};
use serde_json::Value;

use crate::crash::{agent, join_gated, start};
use crate::full_disk::health;
use crate::pool::channels::{bot, gitea};
use crate::pool::{Fleet, kill, wait_for};

/// A dead agent is launched within this of its death: one sweep (the poll
/// interval is 1 s) and a margin for a loaded machine. A channel call that
/// never answers takes 2 s (`channel_deadline`); the old inline calls took
/// up to the clients' own timeouts (Gitea 3 × 1 s plus backoff, Telegram
/// 2 × 10 s) per agent.
const ONE_SWEEP: Duration = Duration::from_millis(2500);

/// The Fleet's config with a 2 s channel deadline and `extra`.
fn config(f: &Fleet, extra: &str) -> PathBuf {
    f.config_with(
        extra,
        &[(
            "probe_timeout = \"3s\"",
            "probe_timeout = \"3s\"\nchannel_deadline = \"2s\"",
        )],
    )
}

/// Waits until each of `agents` was launched once more than it had been
/// when it died (`since`); fails if one took longer than [`ONE_SWEEP`]
/// (waiting at most 60 s to say how long).
fn launched_within_a_sweep(f: &Fleet, agents: &[(&str, usize)], since: Instant) {
    let mut late = Vec::new();
    for (a, before) in agents {
        let n = before + 1;
        while f.launches(a) < n && since.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = since.elapsed();
        assert!(f.launches(a) >= n, "{a} never launched {n} time(s)");
        if t > ONE_SWEEP {
            late.push(format!("{a} after {:.1}s", t.as_secs_f64()));
        }
    }
    assert!(
        late.is_empty(),
        "not relaunched within one sweep ({ONE_SWEEP:?}) of the death: {late:?}"
    );
}

/// `/health` answers 200 `ok` and lists the trouble of `channel`.
fn healthy_with_trouble_in(base: &str, channel: &str) {
    wait_for(&format!("{channel} trouble on /health"), || {
        let (h, _) = health(base);
        h["channels"].to_string().contains(&format!("{channel}: "))
    });
    let (h, ok) = health(base);
    assert!(ok && h["status"] == "ok", "{h:#}");
    let metrics = crate::pool::get(&format!("{base}/metrics"));
    let up = format!("nexus_pool_channel_up{{channel=\"{channel}\"}} 0");
    assert!(metrics.contains(&up), "{metrics}");
}

/// SIGKILLs each of `agents` (the PID its heartbeat names); how many times
/// each had been launched.
fn kill_all<'a>(f: &Fleet, agents: &[&'a str]) -> Vec<(&'a str, usize)> {
    agents
        .iter()
        .map(|a| {
            let before = f.launches(a);
            kill_agent(f, a);
            (*a, before)
        })
        .collect()
}

/// SIGKILLs `agent`'s process (the PID its heartbeat names).
fn kill_agent(f: &Fleet, agent: &str) {
    let beat: Value =
        serde_json::from_slice(&std::fs::read(f.heartbeat_path(agent)).unwrap()).unwrap();
    kill(
        "-KILL",
        u32::try_from(beat["pid"].as_u64().unwrap()).unwrap(),
    );
}

fn gate_file(f: &Fleet) -> PathBuf {
    let gate = f.root.join("gate");
    std::fs::write(&gate, b"").unwrap();
    gate
}

fn healthy(base: &str, agents: &[&str]) {
    wait_for("every agent healthy", || {
        agents.iter().all(|a| agent(base, a)["state"] == "healthy")
    });
}

/// Gitea accepts and never answers while four `auto` agents die twice:
/// every death is revived within a sweep; when Gitea answers again, each
/// agent's issue is filed once, and closed (both episodes reached it).
#[tokio::test(flavor = "multi_thread")]
async fn a_gitea_that_never_answers_delays_no_revive_and_gets_every_episode_once_back() {
    const AGENTS: [&str; 4] = ["a1", "a2", "a3", "a4"];
    let fake = Fake::start().await;
    fake.hung();
    let f = Fleet::new();
    let gate = gate_file(&f);
    for a in AGENTS {
        join_gated(&f, a, RevivePolicy::Auto, &gate);
    }
    // `incident_after = 0`: every death is an issue, even one a revive
    // fixes at once (by default only a failed revive, a spent budget or a
    // long death is).
    let cfg = config(
        &f,
        "max_attempts = 10\nincident_after = 0\n[incident]\nassignees = [\"alice\"]\ntimeout = \"1s\"\nretry_interval = \"1s\"\n",
    );
    let url = fake.url();
    let env = [
        ("GITEA_URL", url.as_str()),
        ("NEXUS_REPO", REPO),
        ("GITEA_TOKEN", TOKEN),
    ];
    let started = Instant::now();
    let (_d, base) = start(&f, &cfg, None, &env);
    // Dead from the start: the first sweep launches them all.
    launched_within_a_sweep(&f, &AGENTS.map(|a| (a, 0)), started);
    healthy(&base, &AGENTS);
    healthy_with_trouble_in(&base, "gitea");

    let died = Instant::now();
    let before = kill_all(&f, &AGENTS);
    launched_within_a_sweep(&f, &before, died);
    healthy(&base, &AGENTS);
    assert!(
        fake.st().log.is_empty(),
        "nothing got through: {:?}",
        fake.st().log
    );

    // Gitea answers again: both episodes of every agent reach it, in order.
    fake.reachable();
    wait_for("every issue filed and closed", || {
        let st = fake.st();
        st.issues.len() == AGENTS.len() && st.issues.iter().all(|i| !i.open)
    });
    let (h, ok) = health(&base);
    assert!(ok, "{h:#}");
    wait_for("the gitea channel clear", || {
        health(&base).0["channels"] == serde_json::json!([])
    });
    let st = fake.st();
    let mut titles: Vec<&str> = st.issues.iter().map(|i| i.title.as_str()).collect();
    titles.sort_unstable();
    assert_eq!(
        titles,
        AGENTS.map(|a| format!("[pool] {a}: agent dead")),
        "one issue per agent, however many sweeps observed it: {:#?}",
        st.log
    );
    drop(st);
    fake.assert_contract();
}

/// Telegram accepts and never answers: an `auto` agent that dies is
/// revived within a sweep, an `ask` agent waits, an escalation waits; when
/// Telegram answers again, the approval request and the escalation are
/// each sent exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_telegram_that_never_answers_delays_no_revive_and_gets_each_message_once_back() {
    const CHAT: i64 = -1004;
    let (server, bot, _mocks) = bot().await;
    let telegram = nexus_testkit::tcp::Gate::start(server.socket_address());
    telegram.hang();
    let f = Fleet::new();
    let gate = gate_file(&f);
    join_gated(&f, "auto1", RevivePolicy::Auto, &gate);
    f.join("asker", RevivePolicy::Ask, false);
    // Its revive fails its pre-flight check: "needs a human" at once.
    let broken = f.root.join("broken.py");
    std::fs::write(&broken, "def (:\n").unwrap();
    f.store
        .join(
            &f.cell,
            Join {
                agent: AgentName::new("esc").unwrap(),
                role: Role::Developer,
                home: None,
                revive_cmd: Some(vec!["python3".into(), broken.display().to_string()]),
                revive_policy: Some(RevivePolicy::Auto),
            },
        )
        .unwrap();
    let cfg = config(
        &f,
        &format!(
            "max_attempts = 10\nslow_lane = 100000\napproval_timeout = 3600\n[telegram]\nchat_id = {CHAT}\napi_url = \"http://{}\"\n",
            telegram.addr
        ),
    );
    let started = Instant::now();
    let (_d, base) = start(
        &f,
        &cfg,
        None,
        &[("TELEGRAM_BOT_TOKEN", "123456:test-token")],
    );
    launched_within_a_sweep(&f, &[("auto1", 0)], started);
    healthy(&base, &["auto1"]);
    wait_for("esc escalated", || {
        agent(&base, "esc")["state"] == "escalated"
    });
    healthy_with_trouble_in(&base, "telegram");

    let died = Instant::now();
    let before = kill_all(&f, &["auto1"]);
    launched_within_a_sweep(&f, &before, died);
    assert_eq!(f.launches("asker"), 0, "no answer, no revive");
    assert!(bot.lock().unwrap().sent.is_empty());

    // Telegram answers again.
    telegram.open();
    let sent =
        |what: &dyn Fn(&Value) -> bool| bot.lock().unwrap().sent.iter().filter(|m| what(m)).count();
    let request = |m: &Value| m["reply_markup"]["inline_keyboard"].is_array();
    let escalation = |m: &Value| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("needs a human") && t.contains("esc"))
    };
    wait_for("the request and the escalation sent", || {
        sent(&request) >= 1 && sent(&escalation) >= 1
    });
    let sweeps = health(&base).0["sweeps"].as_u64().unwrap();
    wait_for("three more sweeps", || {
        health(&base).0["sweeps"].as_u64().unwrap() >= sweeps + 3
    });
    let all = bot.lock().unwrap().sent.clone();
    assert_eq!(
        (sent(&request), sent(&escalation)),
        (1, 1),
        "each once: {all:#?}"
    );
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(f.launches("asker"), 0);
    assert!(health(&base).1, "200 ok");
}

/// `--once` against a Gitea whose accept backlog is full (connects hang):
/// it records two deaths, waits for Gitea at most its deadline, keeps the
/// observations in its state and exits; the next run, with Gitea
/// answering, files them.
#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_waits_for_a_hung_gitea_at_most_its_deadline_and_the_next_run_delivers() {
    let hung = nexus_testkit::tcp::full_backlog().await;
    let fake = Fake::start().await;
    let f = Fleet::new();
    // Policy never: a death a human must hear of (an auto agent's first
    // start files nothing).
    f.join("n1", RevivePolicy::Never, false);
    f.join("n2", RevivePolicy::Never, false);
    let cfg = config(
        &f,
        "[incident]\nassignees = [\"alice\"]\ntimeout = \"1s\"\nretry_interval = \"10s\"\n",
    );
    let once = |url: &str| {
        gitea(f.cmd(&cfg).args(["--once", "--json"]), url)
            .run()
            .unwrap()
    };
    let t0 = Instant::now();
    let o = once(&format!("http://{}", hung.addr));
    let took = t0.elapsed();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!((f.launches("n1"), f.launches("n2")), (0, 0));
    // Waiting before the sweep and after it, each at most the 2 s deadline.
    assert!(took < Duration::from_millis(5500), "{took:?}");
    let waiting = f.pool_state()["observations"].clone();
    let subjects: Vec<&str> = waiting
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["subject"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        subjects,
        [format!("{}/n1", f.cell), format!("{}/n2", f.cell)],
        "{waiting:#}"
    );
    assert!(fake.st().log.is_empty());

    let o = once(&fake.url());
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let titles: Vec<String> = fake.st().issues.iter().map(|i| i.title.clone()).collect();
    assert_eq!(titles, ["[pool] n1: agent dead", "[pool] n2: agent dead"]);
    assert!(f.pool_state().get("observations").is_none(), "delivered");
    fake.assert_contract();
}
