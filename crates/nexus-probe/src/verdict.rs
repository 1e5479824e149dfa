//! The one verdict model every probe returns (Nagios plugin semantics).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The outcome of one probe, with the Nagios plugin exit codes 0/1/2/3.
///
/// "Could not check" is always [`Status::Unknown`], never `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy (exit 0).
    Ok,
    /// Degraded: works, but a threshold is crossed or something is odd (exit 1).
    Warning,
    /// Down, failing or over the critical threshold (exit 2).
    Critical,
    /// The probe could not decide: missing tool, misconfiguration, no access (exit 3).
    Unknown,
}

impl Status {
    /// The Nagios plugin exit code: 0, 1, 2 or 3.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// The status for a Nagios plugin exit code; anything but 0..=3 is Unknown.
    pub fn from_exit_code(code: i32) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Critical,
            _ => Status::Unknown,
        }
    }

    /// The upper-case Nagios word (`OK`, `WARNING`, `CRITICAL`, `UNKNOWN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Classifies `value` against "at or above" thresholds (the seeds use `>=`).
    pub fn at_or_above(value: f64, warn: f64, crit: f64) -> Status {
        if value >= crit {
            Status::Critical
        } else if value >= warn {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of running one probe. Serialises to (and reads back from)
/// JSON, so callers can persist the last verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The probe's configured name (e.g. `ws_gateway`).
    pub name: String,
    /// The probe kind (`tcp`, `http`, `process`, ...).
    pub kind: String,
    /// Ok, Warning, Critical or Unknown.
    pub status: Status,
    /// One human line, e.g. `TCP:localhost:8765 reachable`.
    pub summary: String,
    /// Structured details (addresses tried, PIDs, ages, thresholds, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    /// How long the probe took (serialised as `latency_ms`).
    #[serde(
        rename = "latency_ms",
        serialize_with = "as_millis",
        deserialize_with = "from_millis"
    )]
    pub latency: Duration,
    /// When the probe finished, Unix epoch seconds.
    pub checked_at: f64,
}

fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(d)?;
    if ms.is_finite() && ms >= 0.0 {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(serde::de::Error::custom(format!(
            "latency_ms {ms} is not a duration"
        )))
    }
}

impl Verdict {
    /// The Nagios exit code of this verdict.
    pub fn exit_code(&self) -> u8 {
        self.status.exit_code()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.name, self.status, self.summary)
    }
}

/// What a probe kind returns before the runner adds name, kind, latency and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Verdict; "could not check" is always `Unknown`.
    pub status: Status,
    /// One line for humans, e.g. `Alive: cycle=12, 3s ago, model=m`.
    pub summary: String,
    /// Structured details.
    pub details: Map<String, Value>,
}

impl Outcome {
    /// No structured details; add them to `details` if needed.
    pub fn new(status: Status, summary: impl Into<String>) -> Outcome {
        Outcome {
            status,
            summary: summary.into(),
            details: Map::new(),
        }
    }

    /// Ok.
    pub fn ok(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Ok, summary)
    }

    /// Warning.
    pub fn warning(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Warning, summary)
    }

    /// Critical.
    pub fn critical(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Critical, summary)
    }

    /// Unknown.
    pub fn unknown(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Unknown, summary)
    }

    /// Adds one detail (serialisation failures are recorded as the error text).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Outcome {
        let v = serde_json::to_value(value).unwrap_or_else(|e| Value::String(e.to_string()));
        self.details.insert(key.to_string(), v);
        self
    }
}

/// Rounds to `places` decimals (for percentages and sizes in details).
pub(crate) fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_nagios() {
        let all = [
            Status::Ok,
            Status::Warning,
            Status::Critical,
            Status::Unknown,
        ];
        for (i, s) in all.into_iter().enumerate() {
            assert_eq!(s.exit_code() as usize, i);
            assert_eq!(Status::from_exit_code(i as i32), s);
        }
        assert_eq!(Status::from_exit_code(4), Status::Unknown);
        assert_eq!(Status::from_exit_code(-1), Status::Unknown);
    }

    #[test]
    fn thresholds_are_at_or_above() {
        assert_eq!(Status::at_or_above(84.9, 85.0, 95.0), Status::Ok);
        assert_eq!(Status::at_or_above(85.0, 85.0, 95.0), Status::Warning);
        assert_eq!(Status::at_or_above(95.0, 85.0, 95.0), Status::Critical);
    }

    #[test]
    fn verdict_serialises_with_lowercase_status_and_millis() {
        let v = Verdict {
            name: "gw".into(),
            kind: "tcp".into(),
            status: Status::Critical,
            summary: "down".into(),
            details: Map::new(),
            latency: Duration::from_micros(1500),
            checked_at: 1.0,
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["status"], "critical");
        assert_eq!(j["latency_ms"], 1.5);
        assert!(j.get("details").is_none());
        assert_eq!(v.to_string(), "gw CRITICAL: down");
        let back: Verdict = serde_json::from_value(j).unwrap();
        assert_eq!(back, v);
    }
}
