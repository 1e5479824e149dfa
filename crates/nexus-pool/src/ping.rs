//! Remote heartbeats: cron jobs on other hosts push their runs to the pool,
//! in either of two grammars on `/ping`:
//!
//! - **the suite's own**, sent by `nexus-heartbeat --url`: `POST
//!   /ping/<job>?host=<host>`, `/ping/<job>/start`, `/ping/<job>/fail`,
//!   `/ping/<job>/<exit code>`, optional `&interval=1h`, token-authenticated
//!   (`Authorization: Bearer <token>`, else 401), body at most `max_body`
//!   bytes (else 413); other methods get 405 with `Allow: POST`. Each ping
//!   is stored as the `.last` record a local job writes, named
//!   `<job>@<host>.last` after the sending host (a ping that names none gets
//!   400): a pushed `db_backup` from host B and a local `db_backup` are two
//!   records.
//! - **healthchecks.io's** slug URLs, which curl one-liners, runitor and the
//!   hc client libraries send (<https://healthchecks.io/docs/http_api/>):
//!   `GET`, `HEAD` or `POST` on `/ping/<ping-key>/<slug>`, with `/start`,
//!   `/fail`, `/log` or `/<exit status 0-255>` after it (0 is a success, any
//!   other a failure, as is `/fail`; `/log` is answered and changes no
//!   state, nor creates a check), `?rid=<uuid>` run ids (a malformed one is 400) and
//!   `?create=1`: a slug with no record yet is 404 `not found`, or created
//!   (201 `Created`) with `create=1`, as healthchecks auto-provisions a
//!   check; a created check's interval is `default_interval` (1 day, as
//!   healthchecks'). The ping key is the `[ping]` token, a secret in the URL
//!   (compared in constant time; a request whose first segment is not the
//!   key is read in the suite's grammar, which needs the bearer token). The
//!   record is `<slug>.last` (a slug is one check, whichever host sends
//!   it). Like healthchecks, the pool reads at most the first 100 kB of a
//!   body and ignores the rest, never refusing a ping for its size, and
//!   says so in a `Ping-Body-Limit: 100000` header (runitor cuts the output
//!   it sends to it).
//!
//! Both are rate-limited as one endpoint (`rate_limit`: one token bucket,
//! checked before the token, else 429 with `Retry-After`). One
//! `cron-heartbeat-check` over the ping directory checks every record. A
//! dry-run pool writes nothing: an authorised ping gets 503.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
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

/// How much of a healthchecks-style ping's body is read (healthchecks.io
/// keeps the first 100 kB; the rest is ignored, the ping still counts).
pub const HC_BODY_LIMIT: usize = 100_000;

/// The routes, to merge into the pool's router.
pub fn router(ingest: PingIngest) -> Router {
    let bucket = Arc::new(TokenBucket::new(ingest.rate_limit));
    Router::new()
        .route("/ping/{a}", any(ping))
        .route("/ping/{a}/{b}", any(ping))
        .route("/ping/{a}/{b}/{c}", any(ping))
        .route_layer(middleware::from_fn_with_state(bucket, limited))
        .with_state(Arc::new(ingest))
}

/// Reads `body` up to `cap` bytes: the bytes read and whether there was
/// more (not read).
async fn read_capped(body: Body, cap: usize) -> (usize, bool) {
    let mut body = body;
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            break;
        };
        if let Some(data) = frame.data_ref() {
            n += data.len();
            if n > cap {
                return (cap, true);
            }
        }
    }
    (n, false)
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

fn authorised(ingest: &PingIngest, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| ingest.token.matches(t.trim()))
}

/// One handler for both routes: the path and query are parsed by the one
/// `/ping` grammar ([`Ping::parse`]), which the heartbeat CLI formats.
/// The body is read (and so capped at `max_body`) but not used.
async fn ping(
    State(ingest): State<Arc<PingIngest>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // healthchecks' grammar when the first segment is the ping key.
    let first = uri
        .path()
        .strip_prefix("/ping/")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    if ingest.token.matches(first) {
        return hc::ping(ingest, &method, &uri, body).await;
    }
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "this endpoint takes POST (or healthchecks' /ping/<ping-key>/<slug>)\n",
        )
            .into_response();
    }
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
    if read_capped(body, ingest.max_body).await.1 {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a ping body is at most {} bytes\n", ingest.max_body),
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
    if store(
        ingest.dir.clone(),
        record,
        Some(ping.host),
        ping.kind,
        interval,
    )
    .await
    {
        (StatusCode::OK, "OK\n".into())
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot record the ping\n".into(),
        )
    }
}

/// Writes what a ping of `record` says into `dir`, off the runtime: true
/// when it was written (a failure is logged).
async fn store(
    dir: PathBuf,
    record: String,
    host: Option<String>,
    kind: PingKind,
    interval: Duration,
) -> bool {
    let written = tokio::task::spawn_blocking(move || {
        let mut w = CronWriter::new(CronDirs::only(&dir));
        if let Some(h) = &host {
            w = w.host(h);
        }
        let secs = interval.as_secs().max(1);
        let now = now_epoch();
        match kind {
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
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::error!("ping: {e}");
            false
        }
        Err(_) => false,
    }
}

/// healthchecks.io's slug grammar (see the module's documentation).
mod hc {
    use super::*;

    /// A plain-text answer with healthchecks' `Ping-Body-Limit` header
    /// (runitor and the hc clients cut what they send to it).
    fn answer(code: StatusCode, text: &'static str) -> Response {
        (
            code,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::HeaderName::from_static("ping-body-limit"),
                    HC_BODY_LIMIT_TEXT,
                ),
            ],
            text,
        )
            .into_response()
    }

    /// [`super::HC_BODY_LIMIT`] as the header's text.
    const HC_BODY_LIMIT_TEXT: &str = "100000";

    /// `8-4-4-4-12` hex digits.
    fn is_uuid(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
            && parts
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    pub(super) async fn ping(
        ingest: Arc<PingIngest>,
        method: &Method,
        uri: &Uri,
        body: Body,
    ) -> Response {
        if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET, HEAD, POST")],
                "",
            )
                .into_response();
        }
        let mut segs = uri.path().trim_start_matches("/ping/").split('/').skip(1);
        let (Some(slug), what) = (segs.next(), segs.next()) else {
            return answer(StatusCode::NOT_FOUND, "not found");
        };
        if CronDirs::validate_job_name(slug).is_err() {
            return answer(StatusCode::BAD_REQUEST, "invalid url format");
        }
        // What the ping says; `None`: a log, which changes no state.
        let kind = match what {
            None => Some(PingKind::Success),
            Some("start") => Some(PingKind::Start),
            Some("fail") => Some(PingKind::Exit(1)),
            Some("log") => None,
            Some(code) if code.bytes().all(|b| b.is_ascii_digit()) => match code.parse::<u8>() {
                Ok(c) => Some(PingKind::exit(i32::from(c))),
                Err(_) => return answer(StatusCode::BAD_REQUEST, "invalid url format"),
            },
            Some(_) => return answer(StatusCode::NOT_FOUND, "not found"),
        };
        let (mut create, mut rid_ok) = (false, true);
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("create", v) => create = v == "1",
                ("rid", v) => rid_ok &= is_uuid(v),
                _ => {}
            }
        }
        if !rid_ok {
            return answer(StatusCode::BAD_REQUEST, "invalid rid");
        }
        // The body is not kept; its first 100 kB are read, the rest ignored.
        let _ = read_capped(body, HC_BODY_LIMIT).await;
        if ingest.dry_run {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "dry run: this pool records no pings",
            );
        }
        let record = slug.to_string();
        let known = ingest.dir.join(format!("{record}.last")).is_file();
        // A log changes nothing, so it creates nothing either.
        let Some(kind) = kind.filter(|_| known || create) else {
            return if known {
                answer(StatusCode::OK, "OK")
            } else {
                answer(StatusCode::NOT_FOUND, "not found")
            };
        };
        let interval = ingest.default_interval;
        match store(ingest.dir.clone(), record, None, kind, interval).await {
            true if known => answer(StatusCode::OK, "OK"),
            true => answer(StatusCode::CREATED, "Created"),
            false => answer(StatusCode::INTERNAL_SERVER_ERROR, "cannot record the ping"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::is_uuid;

        #[test]
        fn run_ids_are_uuids() {
            assert!(is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
            for bad in [
                "",
                "x",
                "3f2504e0-4f89-11d3-9a0c-0305e82c330",
                "3f2504e0_4f89_11d3_9a0c_0305e82c3301",
                "zf2504e0-4f89-11d3-9a0c-0305e82c3301",
            ] {
                assert!(!is_uuid(bad), "{bad}");
            }
        }
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

    /// healthchecks' slug grammar, as its docs give it: GET, HEAD and POST;
    /// 404 for an unknown slug, 201 when `?create=1` makes it, 200 after;
    /// `/start`, `/fail`, exit statuses and `/log`; a bad rid or exit
    /// status is 400; a body past 100 kB is read no further, never refused.
    #[tokio::test]
    async fn healthchecks_slug_pings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let hc = |method: Method, uri: String, body: Vec<u8>| {
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body))
                .unwrap();
            reply(app(d), req)
        };
        let base = format!("/ping/{TOKEN}/backup");
        let (code, _, body) = hc(Method::GET, base.clone(), vec![]).await;
        assert_eq!((code, body.as_str()), (StatusCode::NOT_FOUND, "not found"));
        let (code, _, body) = hc(Method::HEAD, format!("{base}?create=1"), vec![]).await;
        assert_eq!((code, body.as_str()), (StatusCode::CREATED, ""));
        assert_eq!(record(d, "backup")["status"], "ok");
        assert_eq!(record(d, "backup")["interval_seconds"], 86_400);
        let (code, headers, body) = hc(Method::GET, format!("{base}?create=1"), vec![]).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "OK"));
        // As healthchecks.io says how much of a body it keeps.
        assert_eq!(
            headers["ping-body-limit"],
            HC_BODY_LIMIT.to_string().as_str()
        );
        let rid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let (code, _, _) = hc(Method::POST, format!("{base}/start?rid={rid}"), vec![]).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(record(d, "backup")["status"], "running");
        let (code, _, _) = hc(
            Method::POST,
            format!("{base}/3?rid={rid}"),
            b"disk full".to_vec(),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let r = record(d, "backup");
        assert_eq!(
            (r["status"].as_str(), r["exit_code"].as_i64()),
            (Some("failed"), Some(3))
        );
        let (code, _, _) = hc(Method::POST, format!("{base}/log"), b"note".to_vec()).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            record(d, "backup")["status"],
            "failed",
            "a log changes nothing"
        );
        let (code, _, _) = hc(Method::POST, format!("{base}/0"), vec![b'x'; 300_000]).await;
        assert_eq!(code, StatusCode::OK, "a big body is truncated, not refused");
        assert_eq!(record(d, "backup")["status"], "ok");
        let (code, _, _) = hc(Method::GET, format!("{base}/fail"), vec![]).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(record(d, "backup")["exit_code"], 1);
        for (uri, code, text) in [
            (
                format!("{base}?rid=nope"),
                StatusCode::BAD_REQUEST,
                "invalid rid",
            ),
            (
                format!("{base}/256"),
                StatusCode::BAD_REQUEST,
                "invalid url format",
            ),
            (
                format!("/ping/{TOKEN}/..%2Fx?create=1"),
                StatusCode::BAD_REQUEST,
                "invalid url format",
            ),
            (
                format!("/ping/{TOKEN}/other/log?create=1"),
                StatusCode::NOT_FOUND,
                "not found",
            ),
            (
                format!("{base}/explode"),
                StatusCode::NOT_FOUND,
                "not found",
            ),
        ] {
            let (got, _, body) = hc(Method::GET, uri.clone(), vec![]).await;
            assert_eq!((got, body.as_str()), (code, text), "{uri}");
        }
        let (code, headers, _) = hc(Method::PUT, base.clone(), vec![]).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers.get(header::ALLOW).unwrap(), "GET, HEAD, POST");
        // Only the ping key opens this grammar: a wrong key is the suite's
        // grammar, which wants POST and the bearer token.
        let (code, _, _) = hc(Method::GET, "/ping/not-the-key/backup".into(), vec![]).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        let names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".last"))
            .collect();
        assert_eq!(names, ["backup.last"]);
    }
}
