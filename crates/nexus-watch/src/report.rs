//! One evaluation, rendered as JSON (`--json`), text, or Markdown (the
//! incident body).

use nexus_probe::{Status, Verdict};
use serde::Serialize;

use crate::Overall;
use crate::recovery::RecoveryResult;

/// One check in the JSON document: the verdict plus the seed's
/// `healthy`/`message` keys.
#[derive(Debug, Clone, Serialize)]
pub struct CheckEntry {
    /// The verdict (name, kind, status, summary, details, latency_ms, checked_at).
    #[serde(flatten)]
    pub verdict: Verdict,
    /// `status == ok`.
    pub healthy: bool,
    /// The summary again, under the seed's key.
    pub message: String,
}

/// One evaluation: every check run exactly once, used for the printed
/// report and the incident alike (defect W3).
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Epoch seconds.
    pub timestamp: f64,
    /// RFC 3339 UTC.
    pub checked_at: String,
    /// The host the watchdog runs on.
    pub host: String,
    /// healthy / degraded / critical / unknown.
    pub overall_status: Overall,
    /// `overall_status == healthy`.
    pub healthy: bool,
    /// Some check is critical.
    pub has_critical: bool,
    /// Every check, in configured order.
    pub checks: Vec<CheckEntry>,
    /// Recovery actions taken (or that would be, in dry-run) this cycle.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<RecoveryResult>,
}

impl Evaluation {
    /// Builds the evaluation from verdicts and the overall rule's answer.
    pub fn new(timestamp: f64, verdicts: Vec<Verdict>, overall: Overall) -> Evaluation {
        Evaluation {
            timestamp,
            checked_at: iso(timestamp),
            host: nexus_heartbeat::hostname().to_string(),
            overall_status: overall,
            healthy: overall == Overall::Healthy,
            has_critical: verdicts.iter().any(|v| v.status == Status::Critical),
            checks: verdicts
                .into_iter()
                .map(|v| CheckEntry {
                    healthy: v.status == Status::Ok,
                    message: v.summary.clone(),
                    verdict: v,
                })
                .collect(),
            recovery: Vec::new(),
        }
    }

    /// The checks that are not Ok.
    pub fn failing(&self) -> impl Iterator<Item = &Verdict> {
        self.checks
            .iter()
            .map(|c| &c.verdict)
            .filter(|v| v.status != Status::Ok)
    }

    /// `ws_gateway, heartbeat`: the names of the failing checks.
    pub fn failing_names(&self) -> String {
        self.failing()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line per check and the overall line (the seed's `--once` output).
    pub fn text(&self) -> String {
        let mut out = format!("Overall status: {}\n", self.overall_status.as_str());
        for c in &self.checks {
            let v = &c.verdict;
            out.push_str(&format!(
                "  {}: {} - {}\n",
                v.name,
                v.status.as_str().to_lowercase(),
                v.summary
            ));
        }
        for r in &self.recovery {
            out.push_str(&format!("  recovery {}: {}\n", r.check, r.message));
        }
        out
    }

    /// The Markdown report: heading, time and host, a table of checks and a
    /// "what to do" hint per failing check.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "## Nexus watchdog: {}\n\nChecked {} on `{}`.\n\n| Check | Status | Details |\n|---|---|---|\n",
            self.overall_status.as_str(),
            self.checked_at,
            self.host
        );
        for c in &self.checks {
            let v = &c.verdict;
            out.push_str(&format!(
                "| {} | {} {} | {} |\n",
                cell(&v.name),
                icon(v.status),
                v.status,
                cell(&v.summary)
            ));
        }
        let hints: Vec<String> = self
            .failing()
            .map(|v| format!("- **{}**: {}", v.name, hint(v)))
            .collect();
        if !hints.is_empty() {
            out.push_str("\n### What to do\n\n");
            out.push_str(&hints.join("\n"));
            out.push('\n');
        }
        if !self.recovery.is_empty() {
            out.push_str("\n### Recovery\n\n");
            for r in &self.recovery {
                out.push_str(&format!(
                    "- **{}**: {}\n",
                    r.check,
                    r.message.replace('\n', " ")
                ));
            }
        }
        out
    }
}

fn icon(s: Status) -> &'static str {
    match s {
        Status::Ok => "✅",
        Status::Warning => "⚠️",
        Status::Critical => "❌",
        Status::Unknown => "❔",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// What a person should do about a failing check.
fn hint(v: &Verdict) -> &'static str {
    match (v.name.as_str(), v.kind.as_str()) {
        ("ws_gateway", _) | ("gateway", _) => {
            "the gateway does not answer: restart `server.py` (the gateway service)"
        }
        ("consciousness_loop", _) | (_, "process") => {
            "the process is not running: start it (`python -m nexus.nexus_think ...`)"
        }
        (_, "heartbeat") => {
            "the loop is hung or never writes heartbeats: read its log, then restart it"
        }
        (_, "python_syntax") => "fix the reported line; the loop cannot start until then",
        (_, "redis") => "check that Redis is running and reachable",
        (_, "postgres") => "check that PostgreSQL is running, and look for stuck work orders",
        (_, "disk") => "free disk space (logs, reports, caches)",
        (_, "budget") => "the daily token budget is nearly or fully used: pause work or raise it",
        (_, "ollama") | (_, "gpu") => "start Ollama / check the GPU",
        _ => "see the details above",
    }
}

/// Epoch seconds as RFC 3339 UTC, to the second.
pub fn iso(epoch: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch.floor() as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{epoch}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v(name: &str, kind: &'static str, status: Status, summary: &str) -> Verdict {
        Verdict {
            name: name.into(),
            kind: kind.into(),
            status,
            summary: summary.into(),
            details: Default::default(),
            latency: Duration::from_millis(3),
            checked_at: 0.0,
        }
    }

    fn sample() -> Evaluation {
        Evaluation::new(
            1_800_000_000.0,
            vec![
                v(
                    "ws_gateway",
                    "tcp",
                    Status::Ok,
                    "TCP:localhost:8765 reachable",
                ),
                v(
                    "heartbeat",
                    "heartbeat",
                    Status::Critical,
                    "Stale heartbeat: 600s ago | x",
                ),
            ],
            Overall::Critical,
        )
    }

    #[test]
    fn json_has_the_seed_keys() {
        let j = serde_json::to_value(sample()).unwrap();
        assert_eq!(j["overall_status"], "critical");
        assert_eq!(j["healthy"], false);
        assert_eq!(j["has_critical"], true);
        assert_eq!(j["checks"][1]["name"], "heartbeat");
        assert_eq!(j["checks"][1]["healthy"], false);
        assert_eq!(j["checks"][1]["status"], "critical");
        assert!(
            j["checks"][1]["message"]
                .as_str()
                .unwrap()
                .starts_with("Stale")
        );
        assert_eq!(j["checked_at"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn markdown_table_and_hints() {
        let md = sample().markdown();
        assert!(
            md.contains("| ws_gateway | ✅ OK | TCP:localhost:8765 reachable |"),
            "{md}"
        );
        assert!(
            md.contains("| heartbeat | ❌ CRITICAL | Stale heartbeat: 600s ago \\| x |"),
            "{md}"
        );
        assert!(md.contains("- **heartbeat**: the loop is hung"), "{md}");
        assert!(
            !md.contains("**ws_gateway**:"),
            "no hint for a passing check"
        );
    }

    #[test]
    fn text_lines() {
        let t = sample().text();
        assert!(
            t.starts_with("Overall status: critical\n  ws_gateway: ok - "),
            "{t}"
        );
        assert_eq!(sample().failing_names(), "heartbeat");
    }
}
