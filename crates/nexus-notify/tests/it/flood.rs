//! Telegram flood control (429 storms) and our own message limit, on a
//! simulated clock against a stateful mock whose 429 body is the Bot API's:
//! `{"ok":false,"error_code":429,"description":"Too Many Requests: retry
//! after N","parameters":{"retry_after":N}}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mockito::{Matcher, Server, ServerGuard};
use nexus_notify::{
    AlertConfig, Alerter, ApprovalConfig, Approvals, BotToken, Error, Problem, Sent, Severity,
    Telegram, TelegramConfig, Text,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use nexus_testkit::botapi::check_request;

const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
const CHAT: i64 = -1_001_234_567_890;
const T0: i64 = 1_767_225_600;

/// One call as the bot saw it: simulated time, method, answered 429?, text.
type Call = (i64, String, bool, String);

#[derive(Default)]
struct Bot {
    /// The test's simulated time, stamped on every call.
    now: i64,
    /// While set, every call is answered 429 with this `retry_after`.
    storm: Option<u64>,
    calls: Vec<Call>,
    violations: Vec<String>,
    next_id: i64,
}

impl Bot {
    fn answer(&mut self, method: &str, body: &Value) -> (usize, String) {
        for v in check_request(method, body) {
            self.violations.push(format!("{method}: {v}"));
        }
        let text = body["text"].as_str().unwrap_or_default().to_string();
        if let Some(n) = self.storm {
            self.calls.push((self.now, method.into(), true, text));
            let b = json!({"ok": false, "error_code": 429,
                "description": format!("Too Many Requests: retry after {n}"),
                "parameters": {"retry_after": n}});
            return (429, b.to_string());
        }
        self.calls.push((self.now, method.into(), false, text));
        let result = match method {
            "sendMessage" => {
                self.next_id += 1;
                json!({"message_id": self.next_id, "date": self.now,
                    "chat": {"id": CHAT, "title": "Ops", "type": "supergroup"}, "text": body["text"]})
            }
            "getUpdates" => json!([]),
            _ => json!(true),
        };
        (200, json!({"ok": true, "result": result}).to_string())
    }

    fn delivered(&self) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| !c.2 && c.1 == "sendMessage")
            .collect()
    }
}

async fn bot() -> (ServerGuard, Arc<Mutex<Bot>>, Vec<mockito::Mock>) {
    let mut server = Server::new_async().await;
    let bot = Arc::new(Mutex::new(Bot::default()));
    let slot: Arc<Mutex<String>> = Arc::default();
    let mut mocks = Vec::new();
    for method in ["sendMessage", "getUpdates", "answerCallbackQuery"] {
        let (b, s1, s2) = (bot.clone(), slot.clone(), slot.clone());
        let m = server
            .mock("POST", Matcher::Exact(format!("/bot{TOKEN}/{method}")))
            .with_header("content-type", "application/json")
            .with_status_code_from_request(move |req| {
                let body: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
                let (status, text) = b.lock().unwrap().answer(method, &body);
                *s1.lock().unwrap() = text;
                status
            })
            .with_body_from_request(move |_| std::mem::take(&mut *s2.lock().unwrap()).into_bytes())
            .create_async()
            .await;
        mocks.push(m);
    }
    (server, bot, mocks)
}

fn client(server: &ServerGuard) -> Telegram {
    let mut cfg = TelegramConfig::new(BotToken::new(TOKEN).unwrap(), CHAT);
    cfg.base_url = server.url();
    cfg.timeout = Duration::from_secs(5);
    // Longer waits are not slept through: the caller holds instead.
    cfg.max_retry_wait = Duration::from_secs(5);
    Telegram::new(&cfg).unwrap().with_sleeper(Arc::new(|_| {
        panic!("no wait expected: retry_after > max_retry_wait")
    }))
}

fn problem(key: &str) -> Problem {
    Problem::new(key, Severity::Critical, "down")
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_without_hammering_and_the_final_state_is_sent_once() {
    let (server, bot, _m) = bot().await;
    let dir = TempDir::new().unwrap();
    let a = Alerter::new(
        AlertConfig::new(dir.path().join("alerts.json"), "Watchdog"),
        client(&server),
    );
    // Before the storm: redis is announced.
    bot.lock().unwrap().now = T0 - 60;
    assert_eq!(
        a.notify(&[problem("redis")], T0 - 60).await.unwrap(),
        Sent::Problems
    );
    // A three-minute storm (retry_after 30 s); meanwhile gateway fails and
    // redis recovers. One cycle every 10 s for five minutes.
    bot.lock().unwrap().storm = Some(30);
    let mut outcomes = Vec::new();
    for t in (T0..T0 + 300).step_by(10) {
        {
            let mut b = bot.lock().unwrap();
            b.now = t;
            if t >= T0 + 180 {
                b.storm = None;
            }
        }
        let problems = if t < T0 + 60 {
            vec![problem("redis"), problem("gateway")]
        } else {
            vec![problem("gateway")]
        };
        outcomes.push(match a.notify(&problems, t).await {
            Ok(s) => format!("{s:?}"),
            Err(Error::RateLimited { retry_after, .. }) => format!("429:{retry_after}"),
            Err(e) => panic!("{e}"),
        });
    }
    let b = bot.lock().unwrap();
    // No call before retry_after has passed since the last 429.
    let limited: Vec<i64> = b.calls.iter().filter(|c| c.2).map(|c| c.0).collect();
    for w in b.calls.windows(2) {
        if w[0].2 {
            assert!(
                w[1].0 - w[0].0 >= 30,
                "called again {}s after a 429",
                w[1].0 - w[0].0
            );
        }
    }
    assert_eq!(
        limited,
        [T0, T0 + 30, T0 + 60, T0 + 90, T0 + 120, T0 + 150],
        "{outcomes:?}"
    );
    // Exactly one message after the storm, with the final state.
    let delivered = b.delivered();
    assert_eq!(delivered.len(), 2, "{outcomes:?}");
    let (at, _, _, text) = delivered[1];
    assert_eq!(*at, T0 + 180);
    assert!(
        text.contains("gateway") && text.contains("\\(new\\)"),
        "{text}"
    );
    assert!(
        text.contains("redis") && text.contains("recovered"),
        "{text}"
    );
    assert!(text.contains("held back"), "{text}");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "Held").count(),
        12,
        "the cycles inside each hold made no call: {outcomes:?}"
    );
    assert!(b.violations.is_empty(), "{:?}", b.violations);
    eprintln!(
        "429 storm figures: 180 s storm, 30 cycles: {} calls answered 429, {} held cycles without a call, 1 final message",
        limited.len(),
        outcomes.iter().filter(|o| *o == "Held").count()
    );
}

#[tokio::test]
async fn approvals_under_flood_control_wait_retry_after_and_still_expire() {
    let (server, bot, _m) = bot().await;
    let dir = TempDir::new().unwrap();
    let mut cfg = ApprovalConfig::new(dir.path().join("approvals.json"));
    cfg.poll_timeout = 0;
    let a = Approvals::new(cfg, client(&server));
    let now = nexus_stdx::now_epoch() as i64;
    bot.lock().unwrap().now = now;
    a.request(
        "timmy-1",
        "timmy",
        &Text::new().text("Revive timmy?"),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    bot.lock().unwrap().storm = Some(100);
    let err = a.poll(now).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after: 100,
                ..
            }
        ),
        "{err}"
    );
    // A second request while held: refused without a call.
    let err = a
        .request(
            "tilly-1",
            "tilly",
            &Text::new().text("Revive tilly?"),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    let calls = bot.lock().unwrap().calls.len();
    assert_eq!(a.poll(now + 10).await.unwrap(), vec![]);
    // The request expires while Telegram is still held: reported anyway.
    let d = a.poll(now + 61).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].verdict, None);
    assert_eq!(
        bot.lock().unwrap().calls.len(),
        calls,
        "no call inside the hold"
    );
    bot.lock().unwrap().storm = None;
    assert_eq!(a.poll(now + 100).await.unwrap(), vec![]);
    assert_eq!(
        bot.lock().unwrap().calls.len(),
        calls + 1,
        "polled again after retry_after"
    );
    assert!(bot.lock().unwrap().violations.is_empty());
}

#[tokio::test]
async fn ten_thousand_agents_with_a_thousand_flapping_stay_inside_the_message_limit() {
    const FLAPPING: usize = 1_000;
    const MAX: u32 = 2;
    const WINDOW: i64 = 600;
    let (server, bot, _m) = bot().await;
    let dir = TempDir::new().unwrap();
    let mut cfg = AlertConfig::new(dir.path().join("alerts.json"), "Resurrection pool");
    cfg.max_messages = MAX;
    cfg.message_window = Duration::from_secs(WINDOW as u64);
    let a = Alerter::new(cfg, client(&server));
    let key = |k: usize| format!("agent-{k:05}");
    let state_sizes = || {
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("alerts.json")).unwrap())
                .unwrap();
        [
            v["active"].as_object().map_or(0, |m| m.len()),
            v["last_announced"].as_object().map_or(0, |m| m.len()),
            v["sent_times"].as_array().map_or(0, |m| m.len()),
        ]
    };
    let mut t = T0;
    let mut first_minute = None;
    // Ten minutes of 30 s sweeps: the 1,000 flappers (of 10,000 agents; the
    // healthy 9,000 are no problem) fail on even sweeps.
    for n in 0..20 {
        bot.lock().unwrap().now = t;
        let problems: Vec<Problem> = if n % 2 == 0 {
            (0..FLAPPING).map(|k| problem(&key(k))).collect()
        } else {
            Vec::new()
        };
        a.notify(&problems, t).await.unwrap();
        if n == 2 {
            first_minute = Some(state_sizes());
        }
        t += 30;
    }
    let after_run = state_sizes();
    // Settle: ten stay failing; cycles go on until the final state is out.
    let final_set: Vec<Problem> = (0..FLAPPING)
        .step_by(100)
        .map(|k| problem(&key(k)))
        .collect();
    let mut cycles = 0;
    loop {
        bot.lock().unwrap().now = t;
        let s = a.notify(&final_set, t).await.unwrap();
        cycles += 1;
        if s != Sent::Held && s != Sent::Nothing {
            break;
        }
        assert!(cycles < 100, "the final state was never sent");
        t += 30;
    }
    let b = bot.lock().unwrap();
    let times: Vec<i64> = b.delivered().iter().map(|c| c.0).collect();
    let max_seen = times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && **t < t0 + WINDOW)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        max_seen <= MAX as usize,
        "{max_seen} messages in one window: {times:?}"
    );
    let last = b.delivered().last().unwrap().3.replace('\\', "");
    for p in &final_set {
        assert!(
            last.contains(&p.key),
            "{} missing from the final message",
            p.key
        );
    }
    let first = first_minute.unwrap();
    assert!(
        after_run
            .iter()
            .zip(first)
            .all(|(a, f)| *a <= f.max(FLAPPING)),
        "{first:?} -> {after_run:?}"
    );
    assert!(after_run[2] <= MAX as usize);
    eprintln!(
        "telegram load figures: 1000 flapping for 10 min: {} messages, max {max_seen} per {WINDOW}s (limit {MAX}); \
         state sizes [active, last_announced, sent_times] first minute {first:?}, after {after_run:?}; final state after {cycles} settling cycle(s)",
        times.len()
    );
}
