//! Alertmanager's webhook (`POST /alertmanager`) into the pool's Gitea
//! incident engine: fleet-wide alerts from many hosts, grouped by
//! Alertmanager, become one deduplicated issue per alert group, commented
//! while the group changes and closed when it resolves. Alertmanager has
//! no Gitea receiver of its own.
//!
//! The payload is Alertmanager's webhook format, version 4
//! (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>):
//! `status`, `groupKey`, `groupLabels`, `commonAnnotations`,
//! `truncatedAlerts` and the `alerts`, each with its `status`, `labels`,
//! `annotations`, `startsAt` and `fingerprint`. A group is one subject of
//! the engine (`alertmanager:<fingerprint of groupKey>`), so however many
//! hosts fire the same group, and however often Alertmanager repeats it,
//! there is one issue. What fails is each firing alert (its fingerprint
//! and severity): a host joining or leaving the group may be commented
//! before the engine's comment interval, a repeat may not.
//!
//! The receiver takes a bearer token (`[alertmanager] token_env` /
//! `token_file`, Alertmanager's `http_config.authorization`), reads at most
//! `max_body` bytes, and hands each notification to the pool's loop through
//! a bounded queue (a full one is a 503: Alertmanager retries). Labels and
//! annotations are text from elsewhere: capped, control characters
//! dropped, and shown inside code spans, never as Markdown.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use nexus_alert::gitea::Check;
use nexus_secret::Secret;
use serde::Deserialize;
use tokio::sync::mpsc;

/// How many notifications may wait for the pool's loop.
const QUEUE: usize = 256;
/// Alerts of one group shown in an issue; the rest are counted.
const SHOWN: usize = 50;
/// Longest label or annotation value kept (characters).
const VALUE_CHARS: usize = 300;

/// One webhook notification (Alertmanager's version 4 payload; unknown
/// fields are ignored, as Alertmanager may add some).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `4`.
    #[serde(default)]
    pub version: String,
    /// Identifies the group across notifications.
    pub group_key: String,
    /// `firing` or `resolved` (the group's).
    pub status: String,
    /// The labels the group is grouped by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Annotations every alert of the group has.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alerts left out of this notification by `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// The alerts.
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels (`alertname`, `severity`, `instance`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary`, `description`, …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    #[serde(default)]
    pub starts_at: String,
    /// Alertmanager's fingerprint of its labels.
    #[serde(default)]
    pub fingerprint: String,
}

/// `value` as one line of at most [`VALUE_CHARS`] characters, without
/// control characters or backticks (it is shown inside a code span).
fn clean(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_control() || c == '`' { ' ' } else { c })
        .take(VALUE_CHARS)
        .collect();
    if value.chars().count() > VALUE_CHARS {
        out.push('…');
    }
    out
}

impl Notification {
    /// The group's name for a title: `NexusAgentDead (agent=north, cell=c1)`.
    fn group_name(&self) -> String {
        let name = self
            .group_labels
            .get("alertname")
            .map_or("alert group".to_string(), |n| clean(n));
        let rest: Vec<String> = self
            .group_labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect();
        if rest.is_empty() {
            name
        } else {
            format!("{name} ({})", rest.join(", "))
        }
    }

    /// The observation for the pool's incident engine.
    pub fn check(&self) -> Check {
        let subject = format!(
            "alertmanager:{}",
            nexus_alert::gitea::fingerprint("alertmanager", &self.group_key)
        );
        let group = self.group_name();
        let title = format!("{group}:");
        let firing: Vec<&Alert> = self
            .alerts
            .iter()
            .filter(|a| a.status == "firing")
            .collect();
        if self.status == "resolved" || firing.is_empty() {
            return Check::healthy(&subject, &format!("{group}: resolved"))
                .with_title_subject(&title);
        }
        let n = firing.len() as u64 + self.truncated_alerts;
        let about = self
            .common_annotations
            .get("summary")
            .map(|s| format!(": {}", clean(s)))
            .unwrap_or_default();
        let summary = format!("{group}: {n} alert(s) firing{about}");
        let mut body = format!("Alertmanager reports **{n}** alert(s) of this group firing.\n\n");
        for a in firing.iter().take(SHOWN) {
            let labels: Vec<String> = a
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
                .collect();
            body.push_str(&format!(
                "- `{}` since `{}`",
                labels.join(" "),
                clean(&a.starts_at)
            ));
            for key in ["summary", "description"] {
                if let Some(v) = a.annotations.get(key) {
                    body.push_str(&format!("\n  - {key}: `{}`", clean(v)));
                }
            }
            body.push('\n');
        }
        let hidden = firing.len().saturating_sub(SHOWN) as u64 + self.truncated_alerts;
        if hidden > 0 {
            body.push_str(&format!("- … and {hidden} more\n"));
        }
        let problems = firing
            .iter()
            .map(|a| {
                let sev = a
                    .labels
                    .get("severity")
                    .map_or("warning".into(), |s| clean(s));
                format!("{}:{sev}", clean(&a.fingerprint))
            })
            .collect();
        let mut check = Check::failing(&subject, &summary, &body).with_title_subject(&title);
        check.problems = problems;
        check
    }
}

/// The HTTP side of the receiver.
#[derive(Debug, Clone)]
pub struct AlertIngest {
    tx: mpsc::Sender<Notification>,
    token: std::sync::Arc<Secret>,
    max_body: usize,
}

/// The pool's side: where notifications arrive.
pub type AlertInbox = mpsc::Receiver<Notification>;

impl AlertIngest {
    /// A receiver taking `token`, bodies of at most `max_body` bytes.
    pub fn new(token: Secret, max_body: usize) -> (AlertIngest, AlertInbox) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            AlertIngest {
                tx,
                token: std::sync::Arc::new(token),
                max_body,
            },
            rx,
        )
    }

    /// The `POST /alertmanager` route.
    pub fn router(self) -> Router {
        let limit = self.max_body;
        Router::new()
            .route("/alertmanager", post(receive))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }
}

async fn receive(State(ingest): State<AlertIngest>, headers: HeaderMap, body: Bytes) -> Response {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| ingest.token.matches(t.trim()));
    if !authorised {
        return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let n: Notification = match serde_path_to_error::deserialize(de) {
        Ok(n) => n,
        Err(e) => {
            let path = e.path().to_string();
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "not an Alertmanager webhook payload: field `{path}`: {}\n",
                    clean(&e.into_inner().to_string())
                ),
            )
                .into_response();
        }
    };
    match ingest.tx.try_send(n) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the pool is busy; Alertmanager will retry\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// Alertmanager's documented sample, two hosts of one group firing.
    const FIRING: &str = r#"{
      "receiver": "nexus", "status": "firing", "version": "4",
      "groupKey": "{}:{alertname=\"NexusAgentDead\", agent=\"north\"}",
      "truncatedAlerts": 0,
      "groupLabels": {"alertname": "NexusAgentDead", "agent": "north"},
      "commonLabels": {"alertname": "NexusAgentDead", "agent": "north", "severity": "critical"},
      "commonAnnotations": {"summary": "Agent north is dead"},
      "externalURL": "http://127.0.0.1:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "NexusAgentDead", "agent": "north", "instance": "h1:8767", "severity": "critical"},
         "annotations": {"summary": "Agent north is dead", "description": "`rm -rf` <b>x</b>\u001b[31m"},
         "startsAt": "2026-12-04T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prom/graph", "fingerprint": "aaaa"},
        {"status": "firing", "labels": {"alertname": "NexusAgentDead", "agent": "north", "instance": "h2:8767", "severity": "critical"},
         "annotations": {}, "startsAt": "2026-12-04T10:00:01Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prom/graph", "fingerprint": "bbbb"}
      ]}"#;

    fn parse(s: &str) -> Notification {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_firing_group_is_one_failing_subject_with_each_alert_a_problem() {
        let c = parse(FIRING).check();
        assert!(c.subject.starts_with("alertmanager:"), "{}", c.subject);
        assert!(!c.healthy);
        assert_eq!(
            c.summary,
            "NexusAgentDead (agent=north): 2 alert(s) firing: Agent north is dead"
        );
        assert_eq!(
            c.title_subject.as_deref(),
            Some("NexusAgentDead (agent=north):")
        );
        assert_eq!(c.problems, ["aaaa:critical", "bbbb:critical"]);
        assert!(
            c.diagnostics.contains("instance=h1:8767"),
            "{}",
            c.diagnostics
        );
        // Hostile annotation text stays inside its code span.
        assert!(
            c.diagnostics
                .contains("description: ` rm -rf  <b>x</b> [31m`"),
            "{}",
            c.diagnostics
        );
        assert!(!c.diagnostics.contains('\u{1b}'));
    }

    #[test]
    fn the_same_group_from_another_notification_is_the_same_subject_and_resolves_it() {
        let firing = parse(FIRING).check();
        let resolved = parse(&FIRING.replace("\"firing\"", "\"resolved\"")).check();
        assert_eq!(firing.subject, resolved.subject);
        assert!(resolved.healthy);
        assert_eq!(resolved.summary, "NexusAgentDead (agent=north): resolved");
        let other = parse(&FIRING.replace("agent=\\\"north\\\"", "agent=\\\"south\\\"")).check();
        assert_ne!(
            other.subject, firing.subject,
            "another group, another issue"
        );
    }

    #[test]
    fn truncated_and_many_alerts_are_counted_not_listed() {
        let mut n = parse(FIRING);
        let one = n.alerts[0].clone();
        n.alerts = vec![one; SHOWN + 5];
        n.truncated_alerts = 3;
        let c = n.check();
        assert!(
            c.summary
                .contains(&format!("{} alert(s) firing", SHOWN + 8)),
            "{}",
            c.summary
        );
        assert!(c.diagnostics.contains("… and 8 more"), "{}", c.diagnostics);
    }

    async fn post(ingest: &AlertIngest, token: Option<&str>, body: String) -> (StatusCode, String) {
        let mut req = Request::post("/alertmanager").header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = ingest
            .clone()
            .router()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let code = res.status();
        let b = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn the_receiver_wants_its_token_a_payload_and_a_bounded_body() {
        const TOKEN: &str = "am-token-0123456789";
        let (ingest, mut inbox) = AlertIngest::new(Secret::new(TOKEN), 64 * 1024);
        let (code, _) = post(&ingest, None, FIRING.into()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _) = post(&ingest, Some("wrong-token-0123456"), FIRING.into()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, body) = post(
            &ingest,
            Some(TOKEN),
            r#"{"status": "firing", "alerts": 3}"#.into(),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(body.contains("field `alerts`"), "{body}");
        let (code, _) = post(&ingest, Some(TOKEN), "x".repeat(70 * 1024)).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(inbox.try_recv().is_err(), "nothing taken so far");
        let (code, _) = post(&ingest, Some(TOKEN), FIRING.into()).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(inbox.try_recv().unwrap().alerts.len(), 2);
    }
}
