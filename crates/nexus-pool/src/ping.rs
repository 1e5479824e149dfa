//! Remote heartbeats: cron jobs on other hosts push their runs to the pool
//! (`POST /ping/<job>?host=<host>`, `/ping/<job>/start`, `/ping/<job>/fail`,
//! `/ping/<job>/<exit code>`, optional `&interval=1h`), token-authenticated
//! (`Authorization: Bearer <token>`, else 401), body at most `max_body`
//! bytes (else 413), at most `rate_limit` requests (one token bucket for
//! the endpoint, checked before the token: else 429 with `Retry-After`);
//! other methods get 405 with `Allow: POST`. Each
//! ping is stored as the `.last` record a local job writes, named
//! `<job>@<host>.last` after the sending host (a ping that names none gets
//! 400): a pushed `db_backup` from host B and a local `db_backup` are two
//! records, and one `cron-heartbeat-check` over the ping directory and the
//! local ones checks both. A dry-run pool writes nothing: an authorised
//! ping gets 503.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use nexus_heartbeat::{CronDirs, CronWriter, Ping, PingKind, RunOutcome};
use nexus_secret::Secret;
use nexus_stdx::now_epoch;

use crate::ratelimit::{RateLimit, TokenBucket};

/// Where pings go and who may send them.
#[derive(Debug, Clone)]
pub struct PingIngest {
    /// The directory of the `<job>.last` records.
    pub dir: PathBuf,
    /// The token a sender must present.
    pub token: Secret,
    /// Interval recorded for a job whose ping names none.
    pub default_interval: Duration,
    /// Largest accepted request body.
    pub max_body: usize,
    /// Requests accepted at once and per minute (all senders together).
    pub rate_limit: RateLimit,
    /// A dry run: nothing is written, an authorised ping gets 503.
    pub dry_run: bool,
}

/// The routes, to merge into the pool's router.
pub fn router(ingest: PingIngest) -> Router {
    let max = ingest.max_body;
    let bucket = Arc::new(TokenBucket::new(ingest.rate_limit));
    Router::new()
        .route("/ping/{job}", post(ping))
        .route("/ping/{job}/{what}", post(ping))
        .route_layer(middleware::from_fn_with_state(bucket, limited))
        .layer(DefaultBodyLimit::max(max))
        .with_state(Arc::new(ingest))
}

/// 429 with `Retry-After` (whole seconds) once the bucket is empty.
async fn limited(State(bucket): State<Arc<TokenBucket>>, req: Request, next: Next) -> Response {
    match bucket.take() {
        Ok(()) => next.run(req).await,
        Err(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            "too many pings; retry later\n",
        )
            .into_response(),
    }
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorised(ingest: &PingIngest, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim(), ingest.token.expose()))
}

/// One handler for both routes: the path and query are parsed by the one
/// `/ping` grammar ([`Ping::parse`]), which the heartbeat CLI formats.
/// The body is read (and so capped at `max_body`) but not used.
async fn ping(
    State(ingest): State<Arc<PingIngest>>,
    uri: Uri,
    headers: HeaderMap,
    _body: axum::body::Bytes,
) -> Response {
    if !authorised(&ingest, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong token\n",
        )
            .into_response();
    }
    if ingest.dry_run {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "dry run: this pool records no pings\n",
        )
            .into_response();
    }
    match Ping::parse(uri.path(), uri.query()) {
        Ok(ping) => record_authorised(ingest, ping).await.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn record_authorised(ingest: Arc<PingIngest>, ping: Ping) -> (StatusCode, String) {
    let interval = ping.interval.unwrap_or(ingest.default_interval);
    let record = ping.record_name();
    let dir = ingest.dir.clone();
    let written = tokio::task::spawn_blocking(move || {
        let w = CronWriter::new(CronDirs::only(&dir)).host(&ping.host);
        let secs = interval.as_secs().max(1);
        let now = now_epoch();
        match ping.kind {
            PingKind::Success => w.success(&record, secs),
            PingKind::Start => w.start(&record, secs, now),
            PingKind::Exit(code) => w.run(
                &record,
                secs,
                RunOutcome {
                    started_at: now,
                    finished_at: now,
                    exit_code: i32::from(code),
                },
            ),
        }
    })
    .await;
    match written {
        Ok(Ok(_)) => (StatusCode::OK, "OK\n".into()),
        Ok(Err(e)) => {
            tracing::error!("ping: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot record the ping\n".into(),
            )
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot record the ping\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    const TOKEN: &str = "p1ng-t0ken";

    fn ingest(dir: &std::path::Path) -> PingIngest {
        PingIngest {
            dir: dir.to_path_buf(),
            token: TOKEN.into(),
            default_interval: Duration::from_secs(86_400),
            max_body: 1024,
            rate_limit: RateLimit::default(),
            dry_run: false,
        }
    }

    fn app(dir: &std::path::Path) -> Router {
        router(ingest(dir))
    }

    async fn send(
        app: Router,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> StatusCode {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        app.oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap()
            .status()
    }

    fn record(dir: &std::path::Path, job: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(format!("{job}.last"))).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn pings_become_last_records() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ok = |uri: &'static str| send(app(d), Method::POST, uri, Some(TOKEN), vec![]);
        assert_eq!(
            ok("/ping/db_backup/start?interval=1h&host=hostB").await,
            StatusCode::OK
        );
        let db = "db_backup@hostB";
        assert_eq!(record(d, db)["status"], "running");
        assert_eq!(record(d, db)["interval_seconds"], 3600);
        assert_eq!(record(d, db)["host"], "hostB");
        assert_eq!(
            ok("/ping/db_backup?interval=1h&host=hostB").await,
            StatusCode::OK
        );
        assert_eq!(record(d, db)["status"], "ok");
        assert_eq!(ok("/ping/db_backup/17?host=hostB").await, StatusCode::OK);
        let r = record(d, db);
        assert_eq!(
            (r["status"].as_str(), r["exit_code"].as_i64()),
            (Some("failed"), Some(17))
        );
        assert_eq!(ok("/ping/nightly/fail?host=h2").await, StatusCode::OK);
        assert_eq!(record(d, "nightly@h2")["exit_code"], 1);
        assert_eq!(ok("/ping/nightly/0?host=h2").await, StatusCode::OK);
        assert_eq!(record(d, "nightly@h2")["status"], "ok");
    }

    #[tokio::test]
    async fn refuses_what_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            send(app(d), Method::POST, "/ping/j", None, vec![]).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            send(app(d), Method::POST, "/ping/j", Some("wrong-token"), vec![]).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            send(app(d), Method::POST, "/ping/..%2Fetc", Some(TOKEN), vec![]).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            send(app(d), Method::POST, "/ping/j/999", Some(TOKEN), vec![]).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            send(
                app(d),
                Method::POST,
                "/ping/j?interval=soon&host=h",
                Some(TOKEN),
                vec![]
            )
            .await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            send(
                app(d),
                Method::POST,
                "/ping/j",
                Some(TOKEN),
                vec![b'x'; 4096]
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            send(app(d), Method::GET, "/ping/j", Some(TOKEN), vec![]).await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            std::fs::read_dir(d).unwrap().count(),
            0,
            "nothing was written"
        );
        let debug = format!(
            "{:?}",
            PingIngest {
                dir: d.into(),
                token: TOKEN.into(),
                default_interval: Duration::ZERO,
                max_body: 1,
                rate_limit: RateLimit::default(),
                dry_run: false,
            }
        );
        assert!(!debug.contains(TOKEN));
    }

    async fn reply(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = app.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_bad_method_gets_405_with_allow() {
        let dir = tempfile::tempdir().unwrap();
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let req = Request::builder()
                .method(method.clone())
                .uri("/ping/j/start")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap();
            let (status, headers, _) = reply(app(dir.path()), req).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            let allow = headers.get(header::ALLOW).map(|v| v.to_str().unwrap());
            assert_eq!(allow, Some("POST"), "{method}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_wrong_token_gets_401_without_any_token_in_the_reply() {
        let dir = tempfile::tempdir().unwrap();
        for sent in [None, Some("guess-xyz"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let mut req = Request::builder().method(Method::POST).uri("/ping/j");
            if let Some(t) = sent {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let (status, headers, body) =
                reply(app(dir.path()), req.body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
            let all = format!("{headers:?}{body}");
            let short = &TOKEN[..TOKEN.len() - 1];
            assert!(!all.contains(short) && !all.contains("guess-xyz"), "{all}");
        }
    }

    #[tokio::test]
    async fn a_flood_gets_429_with_retry_after_and_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(PingIngest {
            dir: dir.path().to_path_buf(),
            token: TOKEN.into(),
            default_interval: Duration::from_secs(60),
            max_body: 1024,
            rate_limit: RateLimit {
                burst: 5,
                per_minute: 1,
            },
            dry_run: false,
        });
        let mut codes = Vec::new();
        for i in 0..8 {
            let token = if i == 0 { "wrong" } else { TOKEN };
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!("/ping/job{i}?host=h"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let (status, headers, _) = reply(app.clone(), req).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait: u64 = headers[header::RETRY_AFTER]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&wait), "{wait}");
            }
            codes.push(status.as_u16());
        }
        // A wrong token spends a token too (no free guessing).
        assert_eq!(codes, [401, 200, 200, 200, 200, 429, 429, 429]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    /// A pushed record is `<job>@<host>`: it never takes the place of the
    /// local record of a job of the same name, and a ping that names no
    /// host (or a bad one, or smuggles one into the job) writes nothing.
    #[tokio::test]
    async fn a_pushed_record_is_named_after_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let local = d.join("db_backup.last");
        nexus_heartbeat::CronWriter::new(CronDirs::only(d))
            .run(
                "db_backup",
                60,
                RunOutcome {
                    started_at: 1.0,
                    finished_at: 2.0,
                    exit_code: 3,
                },
            )
            .unwrap();
        let before = std::fs::read(&local).unwrap();
        for (uri, code) in [
            ("/ping/db_backup", StatusCode::BAD_REQUEST),
            ("/ping/db_backup?host=", StatusCode::BAD_REQUEST),
            ("/ping/db_backup?host=..", StatusCode::BAD_REQUEST),
            ("/ping/db_backup?host=a%2Fb", StatusCode::BAD_REQUEST),
            ("/ping/db_backup@hostB?host=hostC", StatusCode::BAD_REQUEST),
            ("/ping/db_backup?host=hostB", StatusCode::OK),
        ] {
            assert_eq!(
                send(app(d), Method::POST, uri, Some(TOKEN), vec![]).await,
                code,
                "{uri}"
            );
        }
        assert_eq!(std::fs::read(&local).unwrap(), before, "the local record");
        assert_eq!(record(d, "db_backup@hostB")["status"], "ok");
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 2);
    }

    /// A dry-run pool answers an authorised ping 503 and writes nothing (a
    /// wrong token is still 401).
    #[tokio::test]
    async fn a_dry_run_answers_503_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dry = router(PingIngest {
            dry_run: true,
            ..ingest(dir.path())
        });
        for (token, code) in [
            (Some(TOKEN), StatusCode::SERVICE_UNAVAILABLE),
            (Some("wrong"), StatusCode::UNAUTHORIZED),
        ] {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri("/ping/j/start?host=h");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let (status, _, body) = reply(dry.clone(), req.body(Body::empty()).unwrap()).await;
            assert_eq!(status, code);
            if code == StatusCode::SERVICE_UNAVAILABLE {
                assert!(body.contains("dry run"), "{body}");
            }
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
