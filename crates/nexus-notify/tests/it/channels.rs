//! The webhook and ntfy channels against mockito on 127.0.0.1, driven
//! through the same `Alerter` as Telegram: the request as sent (method,
//! path, headers, body), a 429's `Retry-After` holding the next message, a
//! 500 retried on the next cycle, and no token in any error.

use mockito::{Matcher, Server, ServerGuard};
use nexus_notify::{
    AlertConfig, Alerter, Channel, Error, Ntfy, NtfyConfig, Problem, Sent, Severity, Webhook,
    WebhookConfig,
};
use nexus_secret::Secret;
use serde_json::Value;
use tempfile::TempDir;

const TOKEN: &str = "hook-t0ken-canary";
const T0: i64 = 1_767_225_600;

fn problems() -> Vec<Problem> {
    vec![
        Problem::new("disk", Severity::Critical, "95% used on /").with_hint("free space \"now\""),
        Problem::new("gpu", Severity::Warning, "hot"),
    ]
}

fn alerter(dir: &TempDir, file: &str, channel: impl Channel + 'static) -> Alerter {
    Alerter::with_channel(
        AlertConfig::new(dir.path().join(file), "Nexus watchdog"),
        channel,
    )
}

fn webhook(server: &ServerGuard, body: Option<&str>) -> Webhook {
    let mut cfg = WebhookConfig::new(&format!("{}/hooks/T0/B0/XYZ", server.url()));
    if let Some(b) = body {
        cfg.body = b.into();
    }
    cfg.headers = vec![("X-Nexus".into(), "1".into())];
    cfg.token = Some(Secret::new(TOKEN));
    Webhook::new(&cfg).unwrap()
}

fn ntfy(server: &ServerGuard) -> Ntfy {
    let mut cfg = NtfyConfig::new(&server.url(), "nexus-alerts");
    cfg.tags = vec!["server".into()];
    cfg.token = Some(Secret::new(TOKEN));
    Ntfy::new(&cfg).unwrap()
}

#[tokio::test]
async fn a_webhook_posts_its_template_json_escaped_with_its_headers_and_token() {
    let mut server = Server::new_async().await;
    let m = server
        .mock("POST", "/hooks/T0/B0/XYZ")
        .match_header("content-type", "application/json")
        .match_header("authorization", format!("Bearer {TOKEN}").as_str())
        .match_header("x-nexus", "1")
        .match_request(|req| {
            let v: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
            let content = v["content"].as_str().unwrap_or_default();
            v["kind"] == "problems"
                && v["severity"] == "critical"
                && content.starts_with("🚨 Nexus watchdog\n")
                && content.contains("• disk [CRITICAL] (new): 95% used on /")
                && content.contains("what to do: free space \"now\"")
        })
        .with_status(204)
        .expect(1)
        .create_async()
        .await;
    let dir = TempDir::new().unwrap();
    let body = r#"{"content": "{text}", "kind": "{kind}", "severity": "{severity}"}"#;
    let a = alerter(&dir, "webhook-alerts.json", webhook(&server, Some(body)));
    assert_eq!(a.channel(), "webhook");
    assert_eq!(a.notify(&problems(), T0).await.unwrap(), Sent::Problems);
    // Dedup: the same set a minute later sends nothing.
    assert_eq!(a.notify(&problems(), T0 + 60).await.unwrap(), Sent::Nothing);
    m.assert_async().await;
    // The recovery, with the default body.
    let r = server
        .mock("POST", "/hooks/T0/B0/XYZ")
        .match_body(Matcher::PartialJson(serde_json::json!({
            "text": "✅ Nexus watchdog\n✅ disk recovered\n✅ gpu recovered\nAll problems recovered.\n"
        })))
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    let a = alerter(&dir, "webhook-alerts.json", webhook(&server, None));
    assert_eq!(a.notify(&[], T0 + 120).await.unwrap(), Sent::Recovery);
    r.assert_async().await;
}

#[tokio::test]
async fn ntfy_publishes_plain_text_with_title_priority_tags_and_bearer() {
    let mut server = Server::new_async().await;
    let m = server
        .mock("POST", "/nexus-alerts")
        .match_header("title", "Nexus watchdog")
        .match_header("priority", "5")
        .match_header("tags", "rotating_light,server")
        .match_header("authorization", format!("Bearer {TOKEN}").as_str())
        .match_header("content-type", Matcher::Regex("^text/plain".into()))
        .match_request(|req| {
            let body = String::from_utf8_lossy(req.body().unwrap()).into_owned();
            // The title is in the header, not repeated in the body.
            body.starts_with("2 problem(s), 2 new:\n")
                && body.contains("• gpu [WARNING] (new): hot")
        })
        .with_status(200)
        .with_body(r#"{"id":"abc","event":"message"}"#)
        .expect(1)
        .create_async()
        .await;
    let dir = TempDir::new().unwrap();
    let a = alerter(&dir, "ntfy-alerts.json", ntfy(&server));
    assert_eq!(a.notify(&problems(), T0).await.unwrap(), Sent::Problems);
    m.assert_async().await;
    let warn = server
        .mock("POST", "/nexus-alerts")
        .match_header("priority", "3")
        .match_header("tags", "white_check_mark,server")
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    // disk recovers, gpu (a warning) stays: a recovery at default priority.
    let left = [Problem::new("gpu", Severity::Warning, "hot")];
    assert_eq!(a.notify(&left, T0 + 60).await.unwrap(), Sent::Recovery);
    warn.assert_async().await;
}

/// A 429 holds the channel for its `Retry-After`; a 500 is an error the
/// next cycle retries; the token and the hook's secret path never reach an
/// error, even when the server echoes them.
async fn held_then_retried<C: Channel + 'static>(
    path: &str,
    file: &str,
    make: impl Fn(&ServerGuard) -> C,
) {
    let mut server = Server::new_async().await;
    let dir = TempDir::new().unwrap();
    let a = alerter(&dir, file, make(&server));
    let limited = server
        .mock("POST", path)
        .with_status(429)
        .with_header("retry-after", "120")
        .expect(1)
        .create_async()
        .await;
    let err = a.notify(&problems(), T0).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Throttled {
                retry_after: 120,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.retry_after(), Some(120));
    // Within the 120 s: held, no request.
    assert_eq!(a.notify(&problems(), T0 + 60).await.unwrap(), Sent::Held);
    limited.assert_async().await;
    limited.remove_async().await;
    // After it: a 500 that echoes the request's secrets.
    let echo = format!("upstream broke: Bearer {TOKEN} at {path}\x1b[31m");
    let broken = server
        .mock("POST", path)
        .with_status(500)
        .with_body(echo)
        .expect(1)
        .create_async()
        .await;
    let err = a.notify(&problems(), T0 + 121).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Refused { .. }), "{text}");
    assert!(
        text.contains("HTTP 500") && text.contains("upstream broke"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains("XYZ") && !text.contains('\x1b'), "{text}");
    broken.assert_async().await;
    broken.remove_async().await;
    // The next cycle retries and delivers the current state, once.
    let ok = server
        .mock("POST", path)
        .with_status(200)
        .expect(1)
        .create_async()
        .await;
    assert_eq!(
        a.notify(&problems(), T0 + 181).await.unwrap(),
        Sent::Problems
    );
    assert_eq!(
        a.notify(&problems(), T0 + 241).await.unwrap(),
        Sent::Nothing
    );
    ok.assert_async().await;
}

#[tokio::test]
async fn a_webhook_429_holds_the_next_message_and_a_500_is_retried() {
    held_then_retried("/hooks/T0/B0/XYZ", "webhook-alerts.json", |s| {
        webhook(s, None)
    })
    .await;
}

#[tokio::test]
async fn an_ntfy_429_holds_the_next_message_and_a_500_is_retried() {
    held_then_retried("/nexus-alerts", "ntfy-alerts.json", ntfy).await;
}

#[tokio::test]
async fn an_unreachable_webhook_is_an_error_without_its_url() {
    let addr = nexus_testkit::tcp::closed();
    let mut cfg = WebhookConfig::new(&format!("http://{addr}/hooks/s3cr3t-path"));
    cfg.token = Some(Secret::new(TOKEN));
    let dir = TempDir::new().unwrap();
    let a = alerter(&dir, "webhook-alerts.json", Webhook::new(&cfg).unwrap());
    let err = a.notify(&problems(), T0).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Failed { .. }), "{text}");
    assert!(!text.contains("s3cr3t") && !text.contains(TOKEN), "{text}");
}
