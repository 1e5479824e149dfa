//! Telegram client, alerter and approvals against mockito.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mockito::{Matcher, Server, ServerGuard};
use nexus_notify::{
    AlertConfig, Alerter, Approval, ApprovalConfig, Approvals, BotToken, Error, Problem, Sent,
    Severity, Sleeper, Telegram, TelegramConfig, Text,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use nexus_testkit::botapi::{Violations, check_type};

const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
const CHAT: i64 = -1_001_234_567_890;
const SENT_AT: i64 = 1_767_225_600;

fn path(method: &str) -> String {
    format!("/bot{TOKEN}/{method}")
}

/// A sleeper that records the waits and returns at once.
fn recording_sleeper() -> (Sleeper, Arc<Mutex<Vec<Duration>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let s: Sleeper = Arc::new(move |d| {
        l.lock().unwrap().push(d);
        Box::pin(async {})
    });
    (s, log)
}

fn client(server: &ServerGuard) -> (Telegram, Arc<Mutex<Vec<Duration>>>) {
    let mut cfg = TelegramConfig::new(BotToken::new(TOKEN).unwrap(), CHAT);
    cfg.base_url = server.url();
    cfg.timeout = Duration::from_secs(5);
    let (s, log) = recording_sleeper();
    (Telegram::new(&cfg).unwrap().with_sleeper(s), log)
}

fn message(id: i64, chat: i64, date: i64, text: &str) -> Value {
    let m = json!({
        "message_id": id,
        "from": {"id": 7_000_000_001_i64, "is_bot": true, "first_name": "Monitor", "username": "acme_monitor_bot"},
        "chat": {"id": chat, "title": "Ops", "type": "supergroup"},
        "date": date,
        "text": text
    });
    assert!(
        check_type("Message", &m).is_empty(),
        "{:?}",
        check_type("Message", &m)
    );
    m
}

fn ok(result: Value) -> String {
    json!({"ok": true, "result": result}).to_string()
}

#[tokio::test]
async fn markdown_rejected_then_plain_text_accepted() {
    let mut server = Server::new_async().await;
    let v = Violations::default();
    let rejected = server
        .mock("POST", path("sendMessage").as_str())
        .match_body(Matcher::PartialJson(json!({"parse_mode": "MarkdownV2", "chat_id": CHAT})))
        .match_request(v.checker("sendMessage"))
        .with_status(400)
        .with_body(json!({"ok": false, "error_code": 400, "description": "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 12"}).to_string())
        .expect(1)
        .create_async()
        .await;
    let plain = server
        .mock("POST", path("sendMessage").as_str())
        .match_request(|req| {
            let b: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
            b.get("parse_mode").is_none() && b["text"] == "disk_usage [db-1]: 95% *full*"
        })
        .match_request(v.checker("sendMessage"))
        .with_body(ok(message(
            42,
            CHAT,
            SENT_AT,
            "disk_usage [db-1]: 95% *full*",
        )))
        .expect(1)
        .create_async()
        .await;
    let (tg, _) = client(&server);
    let text = Text::new().text("disk_usage [db-1]: 95% *full*");
    let msg = tg.send(&text, None).await.unwrap();
    assert_eq!(msg.message_id, 42);
    rejected.assert_async().await;
    plain.assert_async().await;
    v.assert_none();
}

#[tokio::test]
async fn flood_control_waits_retry_after_before_retrying() {
    let mut server = Server::new_async().await;
    let limited = server
        .mock("POST", path("sendMessage").as_str())
        .with_status(429)
        .with_header("retry-after", "35")
        .with_body(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 35", "parameters": {"retry_after": 35}}).to_string())
        .expect(1)
        .create_async()
        .await;
    let sent = server
        .mock("POST", path("sendMessage").as_str())
        .with_body(ok(message(43, CHAT, SENT_AT, "x")))
        .expect(1)
        .create_async()
        .await;
    let (tg, waits) = client(&server);
    let started = std::time::Instant::now();
    tg.send(&Text::new().text("x"), None).await.unwrap();
    assert_eq!(
        *waits.lock().unwrap(),
        vec![Duration::from_secs(35)],
        "waited retry_after, once"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the injected sleeper did the waiting"
    );
    limited.assert_async().await;
    sent.assert_async().await;
}

#[tokio::test]
async fn a_retry_after_longer_than_allowed_fails_without_waiting() {
    let mut server = Server::new_async().await;
    let _m = server
        .mock("POST", path("sendMessage").as_str())
        .with_status(429)
        .with_body(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3600", "parameters": {"retry_after": 3600}}).to_string())
        .create_async()
        .await;
    let (tg, waits) = client(&server);
    let err = tg.send(&Text::new().text("x"), None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after: 3600,
                ..
            }
        ),
        "{err}"
    );
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let mut cfg = TelegramConfig::new(BotToken::new(TOKEN).unwrap(), CHAT);
    cfg.base_url = dead;
    let (s, _) = recording_sleeper();
    let tg = Telegram::new(&cfg).unwrap().with_sleeper(s);
    let err = tg.send(&Text::new().text("x"), None).await.unwrap_err();
    let text = format!("{err} {err:?} {tg:?} {cfg:?}");
    assert!(matches!(err, Error::Unreachable { .. }), "{text}");
    assert!(!text.contains("ABC-DEF1234"), "{text}");
    assert!(!text.contains("123456:"), "{text}");

    // An API error from a server that echoes the URL path is not ours to
    // print either: we keep only Telegram's description.
    let mut server = Server::new_async().await;
    let _m = server
        .mock("POST", path("sendMessage").as_str())
        .with_status(401)
        .with_body(
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}).to_string(),
        )
        .create_async()
        .await;
    let (tg, _) = client(&server);
    let err = tg.send(&Text::new().text("x"), None).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("401") && !text.contains("ABC-DEF1234"),
        "{text}"
    );
}

/// A server that reflects the request (the `/bot<token>/` path, every
/// header) in its error description, URL- and base64-encoded, behind escape
/// sequences and a forged log line: neither the errors nor the log lines
/// carry the token or a control character, and descriptions are excerpts.
#[tokio::test]
async fn a_reflecting_server_gets_no_token_and_no_forged_line_into_errors_or_logs() {
    use nexus_testkit::canary::TELEGRAM_TOKEN;
    use nexus_testkit::reflect::{assert_clean, head_of, telegram_error};
    let logs = nexus_testkit::logs::capture();
    let mut errors = Vec::new();
    // 500: retried once, then the error; 400 and 401: at once (400 on
    // answerCallbackQuery is logged, not returned).
    for status in [500_u16, 400, 401] {
        let mut server = Server::new_async().await;
        let _m = server
            .mock("POST", Matcher::Any)
            .with_status(status.into())
            .with_body_from_request(move |req| telegram_error(status, &head_of(req)).into_bytes())
            .create_async()
            .await;
        let mut cfg = TelegramConfig::new(BotToken::new(TELEGRAM_TOKEN).unwrap(), CHAT);
        cfg.base_url = server.url();
        let (s, _) = recording_sleeper();
        let tg = Telegram::new(&cfg).unwrap().with_sleeper(s);
        errors.push(tg.send(&Text::new().text("x"), None).await.unwrap_err());
        errors.push(tg.get_updates(Some(7), 0).await.unwrap_err());
        if let Err(e) = tg.answer_callback("cb-1", "ok").await {
            errors.push(e);
        }
    }
    assert_eq!(errors.len(), 8, "{errors:?}");
    let text: Vec<String> = errors.iter().map(|e| format!("{e}\n{e:?}")).collect();
    assert_clean("the errors", &text.join("\n"));
    let logged = logs.text();
    assert!(logged.contains("answerCallbackQuery refused"), "{logged}");
    assert_clean("the log lines", &logged);
    for e in &errors {
        let Error::Api { description, .. } = e else {
            panic!("{e:?}")
        };
        assert!(description.starts_with("request refused"), "{description}");
        assert!(description.chars().count() <= nexus_secret::EXCERPT_CHARS + 1);
    }
}

/// A 100 MB reply, with and without `Content-Length`: refused at the cap,
/// read no further, and the client's memory stays bounded.
#[tokio::test]
async fn a_100_mb_reply_is_cut_at_the_cap_with_bounded_memory() {
    let errors =
        nexus_testkit::assert_reads_capped(nexus_notify::MAX_REPLY_BYTES, |url| async move {
            let mut cfg = TelegramConfig::new(BotToken::new(TOKEN).unwrap(), CHAT);
            cfg.base_url = url;
            Telegram::new(&cfg)
                .unwrap()
                .get_updates(None, 0)
                .await
                .unwrap_err()
        })
        .await;
    for err in errors {
        assert!(
            matches!(err, Error::TooLarge { limit, .. } if limit == nexus_notify::MAX_REPLY_BYTES),
            "{err:?}"
        );
    }
}

fn problem(key: &str, sev: Severity, msg: &str) -> Problem {
    Problem::new(key, sev, msg)
}

#[tokio::test]
async fn alerts_one_message_per_new_problem_set_and_one_on_recovery() {
    let mut server = Server::new_async().await;
    let v = Violations::default();
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let b = bodies.clone();
    let send = server
        .mock("POST", path("sendMessage").as_str())
        .match_request(v.checker("sendMessage"))
        .match_request(move |req| {
            let j: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
            b.lock()
                .unwrap()
                .push(j["text"].as_str().unwrap().to_owned());
            true
        })
        .with_body(ok(message(50, CHAT, SENT_AT, "alert")))
        .expect(5)
        .create_async()
        .await;
    let (tg, _) = client(&server);
    let dir = TempDir::new().unwrap();
    let cfg = AlertConfig::new(dir.path().join("alerts.json"), "NEXUS Health Alert");
    let t0 = SENT_AT;
    let a = Alerter::new(cfg.clone(), tg.clone());
    let redis = problem(
        "redis",
        Severity::Critical,
        "connection refused (127.0.0.1:6379)",
    );
    let disk = problem("disk_usage", Severity::Warning, "91.5% used");

    assert_eq!(
        a.notify(std::slice::from_ref(&redis), t0).await.unwrap(),
        Sent::Problems
    ); // 1
    assert_eq!(
        a.notify(std::slice::from_ref(&redis), t0 + 60)
            .await
            .unwrap(),
        Sent::Nothing
    );
    // A restart (new alerter, same state file) still dedups.
    let a = Alerter::new(cfg.clone(), tg.clone());
    assert_eq!(
        a.notify(std::slice::from_ref(&redis), t0 + 120)
            .await
            .unwrap(),
        Sent::Nothing
    );
    // A new problem joins: one message listing both.
    assert_eq!(
        a.notify(&[redis.clone(), disk.clone()], t0 + 180)
            .await
            .unwrap(),
        Sent::Problems
    ); // 2
    assert_eq!(
        a.notify(&[redis.clone(), disk.clone()], t0 + 240)
            .await
            .unwrap(),
        Sent::Nothing
    );
    // Unchanged for an hour: one reminder.
    assert_eq!(
        a.notify(&[redis.clone(), disk.clone()], t0 + 180 + 3600)
            .await
            .unwrap(),
        Sent::Reminder
    ); // 3
    // disk recovers, redis remains: one message for that.
    assert_eq!(
        a.notify(std::slice::from_ref(&redis), t0 + 3850)
            .await
            .unwrap(),
        Sent::Recovery
    ); // 4
    assert_eq!(
        a.notify(std::slice::from_ref(&redis), t0 + 3860)
            .await
            .unwrap(),
        Sent::Nothing
    );
    // All recovered: one message.
    assert_eq!(a.notify(&[], t0 + 3900).await.unwrap(), Sent::Recovery); // 5
    assert_eq!(a.notify(&[], t0 + 3960).await.unwrap(), Sent::Nothing);
    // Flapping back within the cooldown: suppressed, and so is its recovery.
    assert_eq!(
        a.notify(std::slice::from_ref(&redis), t0 + 3970)
            .await
            .unwrap(),
        Sent::Nothing
    );
    assert_eq!(a.notify(&[], t0 + 3980).await.unwrap(), Sent::Nothing);
    send.assert_async().await;
    v.assert_none();
    let bodies = bodies.lock().unwrap();
    assert!(
        bodies[0].contains("*redis*") && bodies[0].contains("127\\.0\\.0\\.1:6379"),
        "{}",
        bodies[0]
    );
    assert!(
        bodies[1].contains("disk\\_usage") && bodies[1].contains("\\(new\\)"),
        "{}",
        bodies[1]
    );
    assert!(
        bodies[3].contains("*disk\\_usage* recovered") && bodies[3].contains("Still failing"),
        "{}",
        bodies[3]
    );
    assert!(
        bodies[4].contains("All problems recovered"),
        "{}",
        bodies[4]
    );
}

#[tokio::test]
async fn a_failed_alert_is_sent_again_next_cycle() {
    let mut server = Server::new_async().await;
    let fail = server
        .mock("POST", path("sendMessage").as_str())
        .with_status(500)
        .with_body(json!({"ok": false, "error_code": 500, "description": "Internal Server Error: restart"}).to_string())
        .expect(2)
        .create_async()
        .await;
    let (tg, _) = client(&server);
    let dir = TempDir::new().unwrap();
    let a = Alerter::new(AlertConfig::new(dir.path().join("a.json"), "T"), tg);
    let p = [problem("redis", Severity::Critical, "down")];
    assert!(a.notify(&p, SENT_AT).await.is_err());
    fail.assert_async().await;
    let ok_mock = server
        .mock("POST", path("sendMessage").as_str())
        .with_body(ok(message(51, CHAT, SENT_AT, "x")))
        .expect(1)
        .create_async()
        .await;
    assert_eq!(a.notify(&p, SENT_AT + 60).await.unwrap(), Sent::Problems);
    ok_mock.assert_async().await;
}

fn callback(update_id: i64, chat: i64, message_id: i64, from: i64, data: &str) -> Value {
    let u = json!({"update_id": update_id, "callback_query": {
        "id": format!("cb-{update_id}"),
        "from": {"id": from, "is_bot": false, "first_name": "Alice", "username": "alice"},
        "message": message(message_id, chat, SENT_AT, "Revive timmy?"),
        "chat_instance": "-8245318471234567890",
        "data": data}});
    assert!(
        check_type("Update", &u).is_empty(),
        "{:?}",
        check_type("Update", &u)
    );
    u
}

async fn approvals(
    server: &mut ServerGuard,
    dir: &TempDir,
    v: &Violations,
) -> (Approvals, mockito::Mock) {
    let req = server
        .mock("POST", path("sendMessage").as_str())
        .match_body(Matcher::PartialJson(
            json!({"reply_markup": {"inline_keyboard": [[
            {"text": "✅ Approve", "callback_data": "approve:timmy-1"},
            {"text": "❌ Deny", "callback_data": "deny:timmy-1"}]]}}),
        ))
        .match_request(v.checker("sendMessage"))
        .with_body(ok(message(42, CHAT, SENT_AT, "Revive timmy?")))
        .expect(1)
        .create_async()
        .await;
    let (tg, _) = client(server);
    let mut cfg = ApprovalConfig::new(dir.path().join("approvals.json"));
    cfg.poll_timeout = 0;
    let a = Approvals::new(cfg, tg);
    a.request(
        "timmy-1",
        "timmy",
        &Text::new().text("Revive ").bold("timmy").text("?"),
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    (a, req)
}

#[tokio::test]
async fn an_approval_from_another_chat_is_ignored() {
    let mut server = Server::new_async().await;
    let v = Violations::default();
    let dir = TempDir::new().unwrap();
    let (a, req) = approvals(&mut server, &dir, &v).await;
    req.assert_async().await;

    // First poll: a button press from another chat (same message id, even).
    let foreign = server
        .mock("POST", path("getUpdates").as_str())
        .match_request(|req| {
            serde_json::from_slice::<Value>(req.body().unwrap())
                .unwrap()
                .get("offset")
                .is_none()
        })
        .match_request(v.checker("getUpdates"))
        .with_body(ok(json!([callback(
            900_000_001,
            -999,
            42,
            11_111_111,
            "approve:timmy-1"
        )])))
        .expect(1)
        .create_async()
        .await;
    let refused = server
        .mock("POST", path("answerCallbackQuery").as_str())
        .match_body(Matcher::PartialJson(
            json!({"callback_query_id": "cb-900000001"}),
        ))
        .match_request(v.checker("answerCallbackQuery"))
        .with_body(ok(json!(true)))
        .expect(1)
        .create_async()
        .await;
    assert!(a.poll(SENT_AT + 10).await.unwrap().is_empty());
    assert!(a.is_pending("timmy-1").unwrap());
    foreign.assert_async().await;
    refused.assert_async().await;

    // Second poll (after a restart): the persisted offset is last + 1, and a
    // press in the configured chat on the request message approves.
    let (tg, _) = client(&server);
    let mut cfg = ApprovalConfig::new(dir.path().join("approvals.json"));
    cfg.poll_timeout = 0;
    let a = Approvals::new(cfg, tg);
    let mine = server
        .mock("POST", path("getUpdates").as_str())
        .match_body(Matcher::PartialJson(json!({"offset": 900_000_002_i64})))
        .match_request(v.checker("getUpdates"))
        .with_body(ok(json!([callback(
            900_000_002,
            CHAT,
            42,
            11_111_111,
            "approve:timmy-1"
        )])))
        .expect(1)
        .create_async()
        .await;
    let answered = server
        .mock("POST", path("answerCallbackQuery").as_str())
        .match_body(Matcher::PartialJson(
            json!({"callback_query_id": "cb-900000002", "text": "Approved by @alice"}),
        ))
        .match_request(v.checker("answerCallbackQuery"))
        .with_body(ok(json!(true)))
        .expect(1)
        .create_async()
        .await;
    let cleared = server
        .mock("POST", path("editMessageReplyMarkup").as_str())
        .match_request(v.checker("editMessageReplyMarkup"))
        .with_body(ok(message(42, CHAT, SENT_AT, "Revive timmy?")))
        .expect(1)
        .create_async()
        .await;
    let d = a.poll(SENT_AT + 20).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].verdict, Some(Approval::Approved));
    assert_eq!(d[0].subject, "timmy");
    assert_eq!(d[0].by.as_deref(), Some("@alice"));
    assert!(!a.is_pending("timmy-1").unwrap());
    mine.assert_async().await;
    answered.assert_async().await;
    cleared.assert_async().await;
    v.assert_none();
}

#[tokio::test]
async fn old_or_unrelated_text_is_ignored_and_expiry_is_reported() {
    let mut server = Server::new_async().await;
    let v = Violations::default();
    let dir = TempDir::new().unwrap();
    let (a, _req) = approvals(&mut server, &dir, &v).await;
    let updates = json!([
        // Yesterday's "revive timmy" (before the request): ignored.
        {"update_id": 10, "message": message(40, CHAT, SENT_AT - 86_400, "revive timmy")},
        // "+1" not as a reply to the request: ignored.
        {"update_id": 11, "message": message(43, CHAT, SENT_AT + 5, "+1")},
        // Right words, other chat: ignored.
        {"update_id": 12, "message": message(44, -5, SENT_AT + 6, "revive timmy")},
    ]);
    let _m = server
        .mock("POST", path("getUpdates").as_str())
        .with_body(ok(updates))
        .expect(1)
        .create_async()
        .await;
    assert!(a.poll(SENT_AT + 30).await.unwrap().is_empty());
    assert!(a.is_pending("timmy-1").unwrap());
    let _empty = server
        .mock("POST", path("getUpdates").as_str())
        .match_body(Matcher::PartialJson(json!({"offset": 13})))
        .with_body(ok(json!([])))
        .create_async()
        .await;
    let d = a.poll(SENT_AT + 601).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].verdict, None);
}

/// A request answered on another channel is withdrawn: its buttons go,
/// the chat is told, and a later press on it is not accepted.
#[tokio::test]
async fn a_withdrawn_request_loses_its_buttons_says_why_and_ignores_a_later_press() {
    let mut server = Server::new_async().await;
    let v = Violations::default();
    let dir = TempDir::new().unwrap();
    let (a, _req) = approvals(&mut server, &dir, &v).await;
    let cleared = server
        .mock("POST", path("editMessageReplyMarkup").as_str())
        .match_body(Matcher::PartialJson(json!({"message_id": 42})))
        .match_request(v.checker("editMessageReplyMarkup"))
        .with_body(ok(message(42, CHAT, SENT_AT, "Revive timmy?")))
        .expect(1)
        .create_async()
        .await;
    let note = server
        .mock("POST", path("sendMessage").as_str())
        .match_body(Matcher::Regex("Answered via Nostr".into()))
        .match_request(v.checker("sendMessage"))
        .with_body(ok(message(43, CHAT, SENT_AT + 5, "Answered via Nostr")))
        .expect(1)
        .create_async()
        .await;
    let text = Text::new().text("Answered via Nostr by npub1abc: revive timmy");
    assert!(a.withdraw("timmy-1", &text).await.unwrap());
    assert!(!a.withdraw("timmy-1", &text).await.unwrap(), "said once");
    assert!(!a.is_pending("timmy-1").unwrap());
    cleared.assert_async().await;
    note.assert_async().await;
    let _press = server
        .mock("POST", path("getUpdates").as_str())
        .with_body(ok(json!([callback(30, CHAT, 42, 7, "approve:timmy-1")])))
        .create_async()
        .await;
    let refused = server
        .mock("POST", path("answerCallbackQuery").as_str())
        .match_body(Matcher::PartialJson(json!({"text": "Not accepted here"})))
        .with_body(ok(json!(true)))
        .expect(1)
        .create_async()
        .await;
    assert!(a.poll(SENT_AT + 30).await.unwrap().is_empty());
    refused.assert_async().await;
    v.assert_none();
}

#[tokio::test]
async fn plus_one_as_a_reply_approves_and_skip_denies() {
    let mut server = Server::new_async().await;
    let v = Violations::default();
    let dir = TempDir::new().unwrap();
    let (a, _req) = approvals(&mut server, &dir, &v).await;
    let mut reply = message(45, CHAT, SENT_AT + 5, "+1");
    reply["reply_to_message"] = message(42, CHAT, SENT_AT, "Revive timmy?");
    let _m = server
        .mock("POST", path("getUpdates").as_str())
        .with_body(ok(json!([{"update_id": 20, "message": reply}])))
        .expect(1)
        .create_async()
        .await;
    let d = a.poll(SENT_AT + 30).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].verdict, Some(Approval::Approved));
}

#[tokio::test]
async fn a_bad_request_id_is_refused_before_any_request() {
    let server = Server::new_async().await;
    let (tg, _) = client(&server);
    let dir = TempDir::new().unwrap();
    let a = Approvals::new(ApprovalConfig::new(dir.path().join("s.json")), tg);
    let err = a
        .request(
            "has space",
            "x",
            &Text::new().text("?"),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("request_id"), "{err}");
}

/// The clock is set back a day while a problem lasts: the alerter neither
/// goes silent for that day (a reminder comes one `repeat` later) nor
/// believes a flood hold that ends a week ahead.
#[tokio::test]
async fn a_clock_set_back_a_day_does_not_silence_reminders() {
    let mut server = Server::new_async().await;
    let send = server
        .mock("POST", path("sendMessage").as_str())
        .with_body(ok(message(51, CHAT, SENT_AT, "alert")))
        .expect(3)
        .create_async()
        .await;
    let (tg, _) = client(&server);
    let dir = TempDir::new().unwrap();
    let cfg = AlertConfig::new(dir.path().join("alerts.json"), "NEXUS Health Alert");
    let a = Alerter::new(cfg.clone(), tg.clone());
    let redis = problem("redis", Severity::Critical, "connection refused");
    let t0 = SENT_AT;
    let at = |t| a.notify(std::slice::from_ref(&redis), t);
    assert_eq!(at(t0).await.unwrap(), Sent::Problems); // 1
    // The clock goes back a day: the last message is "in the future".
    let back = t0 - 86_400;
    assert_eq!(
        at(back).await.unwrap(),
        Sent::Reminder,
        "one early reminder, not a day of silence"
    ); // 2
    assert_eq!(at(back + 60).await.unwrap(), Sent::Nothing);
    assert_eq!(at(back + 3600).await.unwrap(), Sent::Reminder); // 3, one `repeat` later
    // A flood hold a week ahead was set before a jump: it is not believed.
    let state = dir.path().join("alerts.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    st["hold_until"] = serde_json::json!(back + 7 * 86_400);
    std::fs::write(&state, serde_json::to_vec(&st).unwrap()).unwrap();
    send.assert_async().await;
    let again = server
        .mock("POST", path("sendMessage").as_str())
        .with_body(ok(message(52, CHAT, SENT_AT, "alert")))
        .expect(1)
        .create_async()
        .await;
    assert_eq!(at(back + 7200).await.unwrap(), Sent::Reminder);
    again.assert_async().await;
}
