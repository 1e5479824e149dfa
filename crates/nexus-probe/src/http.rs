//! HTTP probe: status code ranges, JSON field assertions, a body size cap.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::SpecError;
use crate::secrets::{Secret, redact_url};
use crate::{Outcome, Status};
use nexus_stdx::error_chain;

/// Default body cap: 1 MiB. A health endpoint returning more is broken.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// `[probe.http]`: `url`, `expect_status`, `json`, `max_body_bytes`, ...
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// The URL (`http://` or `https://`).
    pub url: String,
    /// `GET` (default), `HEAD`, `POST`, ...
    #[serde(default = "get")]
    pub method: String,
    /// Accepted status codes: `"200"`, `"2xx"`, `"200-299"` (default
    /// `["2xx"]`); one (`"2xx"`, `200`) or a list (`["2xx", 301]`).
    #[serde(default = "two_xx", deserialize_with = "one_or_many_statuses")]
    pub expect_status: Vec<String>,
    /// The status given for any other code (default Critical; the seed's
    /// gateway check uses `"warning"`).
    #[serde(default = "critical")]
    pub unexpected_status: Status,
    /// The status given when nothing answers: the connection refused, or
    /// closed before a byte of an answer (a server of another protocol).
    /// Default Critical; `"unknown"` for an endpoint that may not be
    /// deployed, such as the gateway's `/health` without its sidecar (a
    /// timeout or any other failure stays Critical).
    #[serde(default = "critical")]
    pub refused: Status,
    /// JSON assertions on the body, e.g. `{ pointer = "/status", equals = "ok" }`.
    #[serde(default)]
    pub json: Vec<JsonAssert>,
    /// The body is read up to this many bytes; a larger body is Critical.
    #[serde(default = "max_body")]
    pub max_body_bytes: u64,
    /// Extra request headers (values are secrets: never printed).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// One JSON assertion: the value at `pointer` (RFC 6901) must equal `equals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonAssert {
    /// JSON pointer, e.g. `/status` or `/checks/0/ok`.
    pub pointer: String,
    /// The expected value (any JSON/TOML value).
    pub equals: Value,
}

/// `expect_status` as written: a code or range (`"2xx"`, `200`), or a
/// list of them; a wrong value's error shows the accepted forms.
fn one_or_many_statuses<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Statuses;
    const FORMS: &str =
        "a status code or range, or a list of them: 200, \"2xx\", \"200-299\" or [\"2xx\", 301]";
    impl<'de> serde::de::Visitor<'de> for Statuses {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(FORMS)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(one) = seq.next_element::<OneStatus>()? {
                out.push(one.0);
            }
            Ok(out)
        }
    }
    struct OneStatus(String);
    impl<'de> Deserialize<'de> for OneStatus {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OneStatus, D::Error> {
            struct One;
            impl serde::de::Visitor<'_> for One {
                type Value = OneStatus;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(FORMS)
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneStatus, E> {
                    Ok(OneStatus(v.to_string()))
                }
                fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneStatus, E> {
                    Ok(OneStatus(v.to_string()))
                }
                fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneStatus, E> {
                    Ok(OneStatus(v.to_string()))
                }
            }
            d.deserialize_any(One)
        }
    }
    d.deserialize_any(Statuses)
}

fn get() -> String {
    "GET".to_string()
}
fn two_xx() -> Vec<String> {
    vec!["2xx".to_string()]
}
fn critical() -> Status {
    Status::Critical
}
fn max_body() -> u64 {
    DEFAULT_MAX_BODY
}

impl HttpSpec {
    /// A GET of `url` expecting 2xx.
    pub fn get(url: impl Into<String>) -> HttpSpec {
        HttpSpec {
            url: url.into(),
            method: get(),
            expect_status: two_xx(),
            unexpected_status: Status::Critical,
            refused: Status::Critical,
            json: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY,
            headers: BTreeMap::new(),
        }
    }

    /// The gateway's `GET http://host:port/health` (docs/SPEC.md §7), as
    /// the watchdog's `gateway_health` check and the pool's gateway probe
    /// read it: 200 with `"status": "ok"` is Ok; a `degraded` 503 (the
    /// gateway is wedged), another status in the body or no answer within
    /// the timeout is Critical; nothing listening (no endpoint deployed) or
    /// an answer that is not the endpoint's (a 404, a WebSocket server's
    /// 426 or 400) is Unknown, so the gateway's own probe decides.
    pub fn gateway_health(host: &str, port: u16) -> HttpSpec {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let mut spec = HttpSpec::get(format!("http://{host}:{port}/health"));
        spec.expect_status = vec!["200".to_string(), "503".to_string()];
        spec.unexpected_status = Status::Unknown;
        spec.refused = Status::Unknown;
        spec.max_body_bytes = 64 * 1024;
        spec.json = vec![JsonAssert {
            pointer: "/status".to_string(),
            equals: "ok".into(),
        }];
        spec
    }

    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        if let Some(why) = nexus_stdx::url_problem(&self.url, &["http", "https"]) {
            return Err(SpecError::field("url", why));
        }
        self.ranges().map(drop)?;
        reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|_| {
            SpecError::field("method", format!("{:?} is not an HTTP method", self.method))
        })?;
        for a in &self.json {
            if !(a.pointer.is_empty() || a.pointer.starts_with('/')) {
                return Err(SpecError::field(
                    "json",
                    format!("pointer {:?} must start with `/`", a.pointer),
                ));
            }
        }
        Ok(())
    }

    fn ranges(&self) -> Result<Vec<(u16, u16)>, SpecError> {
        self.expect_status.iter().map(|s| parse_range(s)).collect()
    }
}

/// `"200"`, `"2xx"` or `"200-299"` as an inclusive range.
pub(crate) fn parse_range(s: &str) -> Result<(u16, u16), SpecError> {
    let bad = || SpecError::StatusRange(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let num = |x: &str| {
        x.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| (100..=599).contains(n))
    };
    let range = if let Some(d) = t.strip_suffix("xx") {
        let d = d
            .parse::<u16>()
            .ok()
            .filter(|d| (1..=5).contains(d))
            .ok_or_else(bad)?;
        (d * 100, d * 100 + 99)
    } else if let Some((a, b)) = t.split_once('-') {
        (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?)
    } else {
        let n = num(&t).ok_or_else(bad)?;
        (n, n)
    };
    if range.0 > range.1 {
        return Err(bad());
    }
    Ok(range)
}

/// Why a body was not read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("response body is {len} bytes, over the {cap}-byte cap")]
    Declared { len: u64, cap: u64 },
    #[error("response body exceeds the {cap}-byte cap")]
    Exceeds { cap: u64 },
    /// The reqwest error's chain, without the URL (it may carry a token).
    #[error("reading the body failed: {0}")]
    Read(String),
}

/// Reads at most `cap` bytes of the body; `Err` says why it stopped.
pub(crate) async fn read_capped(
    resp: &mut reqwest::Response,
    cap: u64,
) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = resp.content_length()
        && len > cap
    {
        return Err(BodyError::Declared { len, cap });
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > cap {
                    return Err(BodyError::Exceeds { cap });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(BodyError::Read(error_chain(&e.without_url())));
            }
        }
    }
}

/// A reqwest error on one line, without the URL (it may carry a token).
pub(crate) fn request_error(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let text = error_chain(&e.without_url());
    if timeout {
        format!("timeout: {text}")
    } else {
        text
    }
}

pub(crate) async fn check(spec: &HttpSpec, client: &reqwest::Client) -> Outcome {
    let shown = redact_url(&spec.url);
    let ranges = match spec.ranges() {
        Ok(r) => r,
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    let Ok(method) = reqwest::Method::from_bytes(spec.method.as_bytes()) else {
        return Outcome::unknown(format!("invalid HTTP method {:?}", spec.method));
    };
    let mut req = client.request(method, spec.url.as_str());
    for (k, v) in &spec.headers {
        req = req.header(k.as_str(), v.expose());
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let status = if refused(&e) {
                spec.refused
            } else {
                Status::Critical
            };
            let why = request_error(e);
            return Outcome::new(status, format!("HTTP {shown} unreachable: {why}"));
        }
    };
    let code = resp.status().as_u16();
    let body = match read_capped(&mut resp, spec.max_body_bytes).await {
        Ok(b) => b,
        Err(why) => {
            return Outcome::critical(format!("HTTP {shown}: {why} (status {code})"))
                .with("status_code", code)
                .with("max_body_bytes", spec.max_body_bytes);
        }
    };
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let base = |o: Outcome| {
        let o = o.with("status_code", code).with("body_bytes", body.len());
        match (&json, body.len() <= 64 * 1024) {
            (Some(j), true) => o.with("body", j),
            _ => o,
        }
    };
    if !ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&code)) {
        return base(Outcome::new(
            spec.unexpected_status,
            format!(
                "HTTP {shown} returned status {code} (expected {})",
                spec.expect_status.join(", ")
            ),
        ));
    }
    if !spec.json.is_empty() {
        let Some(doc) = &json else {
            return base(Outcome::critical(format!(
                "HTTP {shown}: body is not JSON ({} bytes), cannot check {}",
                body.len(),
                spec.json[0].pointer
            )));
        };
        for a in &spec.json {
            match doc.pointer(&a.pointer) {
                None => {
                    return base(Outcome::critical(format!(
                        "HTTP {shown}: JSON field {} is missing",
                        a.pointer
                    )));
                }
                Some(v) if !json_eq(v, &a.equals) => {
                    return base(Outcome::critical(format!(
                        "HTTP {shown}: JSON field {} is {}, expected {}",
                        a.pointer,
                        clip(&v.to_string()),
                        a.equals
                    )));
                }
                Some(_) => {}
            }
        }
    }
    base(Outcome::ok(format!(
        "HTTP {shown} responding (status {code})"
    )))
}

/// Whether nothing answered: a connection refused somewhere in the chain,
/// or closed before an answer began (hyper's `IncompleteMessage`, whose
/// words a test pins).
fn refused(e: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let refused = c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused || c.to_string() == "connection closed before message completed" {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Equality that treats `1` and `1.0` as equal (TOML and JSON differ there).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_range("2xx").unwrap(), (200, 299));
        assert_eq!(parse_range("204").unwrap(), (204, 204));
        assert_eq!(parse_range("301-302").unwrap(), (301, 302));
        for bad in ["", "6xx", "abc", "302-301", "99", "200-"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(!json_eq(&serde_json::json!("1"), &serde_json::json!(1)));
    }
}
