//! Redis probe (docs/SPEC.md §4.2.2): connect, `PING`, `INFO memory`; used memory
//! against `maxmemory` with warning/critical thresholds. The URL's password
//! never appears in a verdict.

use serde::Deserialize;

use crate::Outcome;
use crate::secrets::ConnString;

/// `redis = { url = "redis://127.0.0.1:6379/0", mem_warn_pct = 90, mem_crit_pct = 98 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://[:password@]host:port/db` (default `redis://localhost:6379/0`).
    #[serde(default = "default_url")]
    pub url: ConnString,
    /// Warning at used/maxmemory ≥ this percentage (default 90), when maxmemory > 0.
    #[serde(default = "ninety")]
    pub mem_warn_pct: f64,
    /// Critical at used/maxmemory ≥ this percentage (default 98).
    #[serde(default = "ninety_eight")]
    pub mem_crit_pct: f64,
}

fn default_url() -> ConnString {
    ConnString::new("redis://localhost:6379/0")
}
fn ninety() -> f64 {
    90.0
}
fn ninety_eight() -> f64 {
    98.0
}

impl RedisSpec {
    /// Default thresholds.
    pub fn new(url: impl Into<String>) -> RedisSpec {
        RedisSpec {
            url: ConnString::new(url),
            mem_warn_pct: ninety(),
            mem_crit_pct: ninety_eight(),
        }
    }
}

/// `used_memory` and `maxmemory` from an `INFO memory` reply.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn parse_info_memory(info: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| {
        info.lines().find_map(|l| {
            l.trim()
                .strip_prefix(key)?
                .strip_prefix(':')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    (field("used_memory"), field("maxmemory"))
}

#[cfg(not(feature = "redis"))]
pub(crate) async fn check(_spec: &RedisSpec) -> Outcome {
    Outcome::unknown("Redis probe unavailable: nexus-probe was built without the `redis` feature")
}

#[cfg(feature = "redis")]
pub(crate) async fn check(spec: &RedisSpec) -> Outcome {
    use crate::Status;
    use crate::verdict::round;

    let fail = |e: &dyn std::fmt::Display| {
        Outcome::critical(spec.url.scrub(&format!("Redis connection failed: {e}")))
    };
    let client = match redis::Client::open(spec.url.expose()) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::unknown(
                spec.url
                    .scrub(&format!("invalid Redis URL {}: {e}", spec.url.redacted())),
            );
        }
    };
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let pong: String = match redis::cmd("PING").query_async(&mut conn).await {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let info: String = match redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
    {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let (used, max) = parse_info_memory(&info);
    let Some(used) = used else {
        return Outcome::unknown("Redis connected, but INFO memory has no used_memory");
    };
    let mb = |b: u64| round(b as f64 / 1024.0 / 1024.0, 2);
    let o = match max.filter(|m| *m > 0) {
        Some(max) => {
            let pct = used as f64 / max as f64 * 100.0;
            let status = Status::at_or_above(pct, spec.mem_warn_pct, spec.mem_crit_pct);
            let what = match status {
                Status::Ok => "Redis connected",
                _ => "Redis memory high",
            };
            Outcome::new(
                status,
                format!(
                    "{what}: {:.1} % of maxmemory used ({} of {} MB)",
                    pct,
                    mb(used),
                    mb(max)
                ),
            )
            .with("maxmemory_mb", mb(max))
            .with("usage_pct", round(pct, 1))
        }
        None => Outcome::ok(format!(
            "Redis connected ({} MB used, no maxmemory)",
            mb(used)
        )),
    };
    o.with("used_memory_mb", mb(used)).with("ping", pong)
}

#[cfg(test)]
mod tests {
    #[test]
    fn info_memory_fields() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:0\r\n";
        assert_eq!(super::parse_info_memory(info), (Some(1_048_576), Some(0)));
        assert_eq!(super::parse_info_memory("garbage"), (None, None));
    }
}
