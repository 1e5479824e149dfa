//! The HTTP rules of `GET /health` as a pure function (docs/SPEC.md §7).

use std::time::Duration;

use serde::Serialize;

use crate::Snapshot;

/// Only this path is served; the query string is ignored, any other path gets 404.
pub const HEALTH_PATH: &str = "/health";

/// The body's `service`, the seed's.
pub const SERVICE: &str = "nexus-gateway";

/// An answer: status, headers, body (empty for `HEAD`, 404 and 405).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status: 200, 503 (stale loop), 404 or 405.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(&'static str, String)>,
    /// What is sent after the head.
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (lower case), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![("content-length", "0".to_string())],
            body: Vec::new(),
        }
    }
}

/// The seed's body, its keys in the seed's order.
#[derive(Serialize)]
struct Body {
    status: &'static str,
    service: &'static str,
    uptime_seconds: f64,
    connected_clients: Option<u64>,
    ws_port: u16,
    ts: f64,
}

/// The answer to `method target` (`target` as sent: path and query).
///
/// `/health` (the query string ignored): `GET` → the JSON body, `HEAD` →
/// the same head without the body; `status` is `ok` with 200 when the loop
/// ticked within `fresh_within`, else `degraded` with 503; other methods →
/// 405 with `Allow`. Any other path → 404, empty. `now` is the wall-clock
/// epoch the body's `ts` shows.
pub fn respond(
    method: &str,
    target: &str,
    snap: &Snapshot,
    fresh_within: Duration,
    now: f64,
) -> Reply {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if path != HEALTH_PATH {
        return Reply::empty(404);
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Reply::empty(405);
            r.headers.push(("allow", "GET, HEAD".to_string()));
            return r;
        }
    };
    let live = snap.since_tick.is_some_and(|d| d <= fresh_within);
    let body = Body {
        status: if live { "ok" } else { "degraded" },
        service: SERVICE,
        uptime_seconds: (snap.uptime.as_secs_f64() * 10.0).round() / 10.0,
        connected_clients: snap.connected_clients,
        ws_port: snap.ws_port,
        ts: if now.is_finite() { now.max(0.0) } else { 0.0 },
    };
    // A struct of numbers and fixed strings always serializes.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    Reply {
        status: if live { 200 } else { 503 },
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("content-length", json.len().to_string()),
            ("cache-control", "no-store".to_string()),
        ],
        body: if head { Vec::new() } else { json },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const WINDOW: Duration = Duration::from_secs(30);

    fn snap(since_tick: Option<u64>) -> Snapshot {
        Snapshot {
            ws_port: 8765,
            uptime: Duration::from_millis(12_345),
            since_tick: since_tick.map(Duration::from_secs),
            connected_clients: Some(3),
        }
    }

    fn json(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn a_fresh_loop_is_ok_with_the_seed_body() {
        let r = respond("GET", "/health", &snap(Some(1)), WINDOW, 1_700_000_000.25);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
        let keys: Vec<&str> = [
            "status",
            "service",
            "uptime_seconds",
            "connected_clients",
            "ws_port",
            "ts",
        ]
        .to_vec();
        let text = String::from_utf8(r.body.clone()).unwrap();
        let mut at = 0;
        for k in &keys {
            let i = text
                .find(&format!("\"{k}\""))
                .unwrap_or_else(|| panic!("{k}: {text}"));
            assert!(i >= at, "key order: {text}");
            at = i;
        }
        let j = json(&r);
        assert_eq!(j.as_object().unwrap().len(), keys.len(), "{j}");
        assert_eq!(j["status"], "ok");
        assert_eq!(j["service"], "nexus-gateway");
        assert_eq!(j["uptime_seconds"].as_f64(), Some(12.3));
        assert!(j["uptime_seconds"].is_f64());
        assert_eq!(j["connected_clients"].as_u64(), Some(3));
        assert_eq!(j["ws_port"].as_u64(), Some(8765));
        assert!(j["ts"].is_f64());
        assert_eq!(j["ts"].as_f64(), Some(1_700_000_000.25));
    }

    #[test]
    fn the_uptime_has_one_decimal_and_is_a_float_even_when_whole() {
        let mut s = snap(Some(0));
        s.uptime = Duration::ZERO;
        let r = respond("GET", "/health", &s, WINDOW, 1.0);
        assert!(String::from_utf8_lossy(&r.body).contains("\"uptime_seconds\":0.0"));
        s.uptime = Duration::from_millis(99_960);
        let j = json(&respond("GET", "/health", &s, WINDOW, 1.0));
        assert_eq!(j["uptime_seconds"].as_f64(), Some(100.0));
    }

    #[test]
    fn a_stale_or_silent_loop_is_degraded_with_503() {
        for since in [Some(31), None] {
            let r = respond("GET", "/health", &snap(since), WINDOW, 1.0);
            assert_eq!(r.status, 503, "{since:?}");
            assert_eq!(json(&r)["status"], "degraded");
            assert_eq!(json(&r)["service"], "nexus-gateway");
        }
        // The window's edge is still fresh.
        assert_eq!(
            respond("GET", "/health", &snap(Some(30)), WINDOW, 1.0).status,
            200
        );
    }

    #[test]
    fn the_query_string_is_ignored() {
        for t in ["/health?x=1", "/health?", "/health?a=b&c=/x", "/health#top"] {
            assert_eq!(
                respond("GET", t, &snap(Some(0)), WINDOW, 1.0).status,
                200,
                "{t}"
            );
        }
        assert_eq!(
            respond("GET", "/?health", &snap(Some(0)), WINDOW, 1.0).status,
            404
        );
    }

    #[test]
    fn head_has_the_head_without_the_body() {
        let get = respond("GET", "/health", &snap(Some(0)), WINDOW, 5.0);
        let head = respond("HEAD", "/health?x", &snap(Some(0)), WINDOW, 5.0);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), get.header("content-length"));
        assert_eq!(head.header("content-type"), Some("application/json"));
        let stale = respond("HEAD", "/health", &snap(None), WINDOW, 5.0);
        assert_eq!((stale.status, stale.body.len()), (503, 0));
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "TRACE"] {
            let r = respond(m, "/health", &snap(Some(0)), WINDOW, 1.0);
            assert_eq!(r.status, 405, "{m}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
            assert!(r.body.is_empty());
            assert_eq!(r.header("content-length"), Some("0"));
        }
    }

    #[test]
    fn other_paths_are_404_empty() {
        for t in [
            "/",
            "",
            "/health/",
            "/healthz",
            "/HEALTH",
            "/api/health",
            "//health",
            "*",
        ] {
            for m in ["GET", "HEAD", "POST"] {
                let r = respond(m, t, &snap(Some(0)), WINDOW, 1.0);
                assert_eq!(r.status, 404, "{m} {t}");
                assert!(r.body.is_empty());
                assert_eq!(r.header("content-length"), Some("0"));
            }
        }
    }

    #[test]
    fn an_uncounted_gateway_says_null() {
        let mut s = snap(Some(0));
        s.connected_clients = None;
        let j = json(&respond("GET", "/health", &s, WINDOW, 1.0));
        assert!(j["connected_clients"].is_null(), "{j}");
        assert!(j.as_object().unwrap().contains_key("connected_clients"));
    }

    #[test]
    fn a_strange_clock_still_gives_a_number() {
        for now in [f64::NAN, f64::INFINITY, -5.0] {
            let j = json(&respond("GET", "/health", &snap(Some(0)), WINDOW, now));
            assert_eq!(j["ts"].as_f64(), Some(0.0), "{now}");
        }
    }

    proptest::proptest! {
        /// Any method and target: one of the four answers, a
        /// `Content-Length` that is the body's (GET's for HEAD), and for
        /// `/health` the seed's JSON; never a panic.
        #[test]
        fn any_request_gets_a_well_formed_answer(
            method in proptest::prop_oneof!["GET|HEAD", "[A-Za-z]{0,8}"],
            target in proptest::prop_oneof!["\\PC{0,64}", "/health([?#]\\PC{0,32})?"],
            since in proptest::option::of(0u64..100),
            uptime_ms in 0u64..10_000_000_000,
            now in proptest::num::f64::ANY,
        ) {
            let mut s = snap(since);
            s.uptime = Duration::from_millis(uptime_ms);
            let r = respond(&method, &target, &s, WINDOW, now);
            proptest::prop_assert!([200, 503, 404, 405].contains(&r.status), "{}", r.status);
            let len: usize = r.header("content-length").unwrap().parse().unwrap();
            if method == "HEAD" {
                proptest::prop_assert!(r.body.is_empty());
            } else {
                proptest::prop_assert_eq!(len, r.body.len());
            }
            if (r.status == 200 || r.status == 503) && method == "GET" {
                let j = json(&r);
                proptest::prop_assert!(j["uptime_seconds"].as_f64().is_some_and(|u| u >= 0.0));
                proptest::prop_assert!(j["ts"].as_f64().is_some_and(|t| t >= 0.0));
                proptest::prop_assert_eq!(j["status"] == "ok", r.status == 200);
            }
        }
    }
}
