//! One evaluation, rendered as JSON (`--json`), text, or Markdown (the
//! incident body).

use nexus_probe::{Status, Verdict};
use serde::Serialize;

use crate::recovery::RecoveryResult;
use crate::{Overall, counts, overall};

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
    /// Counts against the run: it makes the run unhealthy and is what the
    /// incident and the Telegram message are about (Critical, Warning, and
    /// Unknown when strict and not optional; see [`crate::counts`]).
    pub problem: bool,
}

/// A check that counts against the run ([`Evaluation::findings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding<'a> {
    /// Verdict of the check as the runner returned it.
    pub verdict: &'a Verdict,
    /// Critical (else a warning).
    pub critical: bool,
    /// What a person should do about it.
    pub hint: &'static str,
    /// What the recovery actions did about it this cycle, if one ran.
    pub recovery: Option<String>,
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
    /// One observation per check for the shared history (`[history]`),
    /// named `<check>@<host>` in the host's group, stamped when the check
    /// finished; the recorder keeps a row only when a status changed.
    pub fn history_events(&self) -> Vec<nexus_history::Event> {
        self.checks
            .iter()
            .map(|c| nexus_history::Event {
                at_ms: (c.verdict.checked_at * 1000.0) as i64,
                kind: nexus_history::Kind::Check,
                group: self.host.clone(),
                subject: format!("{}@{}", c.verdict.name, self.host),
                old_state: String::new(),
                new_state: c.verdict.status.as_str().to_owned(),
                reason: c.verdict.summary.clone(),
                actor: String::new(),
            })
            .collect()
    }

    /// Judges the verdicts by the overall rule ([`crate::overall`]) and
    /// marks the ones that count ([`crate::counts`]); when nothing could be
    /// evaluated at all (overall unknown), every Unknown counts.
    pub fn new(
        timestamp: f64,
        verdicts: Vec<Verdict>,
        strict: bool,
        optional: &[String],
    ) -> Evaluation {
        let overall = overall(&verdicts, strict, optional);
        Evaluation {
            timestamp,
            checked_at: nexus_stdx::rfc3339(timestamp),
            host: nexus_stdx::hostname().to_string(),
            overall_status: overall,
            healthy: overall == Overall::Healthy,
            has_critical: verdicts.iter().any(|v| v.status == Status::Critical),
            checks: verdicts
                .into_iter()
                .map(|v| CheckEntry {
                    healthy: v.status == Status::Ok,
                    message: v.summary.clone(),
                    problem: counts(&v, strict, optional)
                        || (overall == Overall::Unknown && v.status == Status::Unknown),
                    verdict: v,
                })
                .collect(),
            recovery: Vec::new(),
        }
    }

    /// The checks that count against the run (see [`CheckEntry::problem`]):
    /// an optional Unknown is not one unless strict.
    pub fn failing(&self) -> impl Iterator<Item = &Verdict> {
        self.checks.iter().filter(|c| c.problem).map(|c| &c.verdict)
    }

    /// The failing checks, each with the hint and the recovery result the
    /// Markdown report (the issue body) gives it: what the binary turns
    /// into alert problems.
    pub fn findings(&self) -> Vec<Finding<'_>> {
        self.failing()
            .map(|v| {
                let results: Vec<&str> = self
                    .recovery
                    .iter()
                    .filter(|r| r.check == v.name)
                    .map(|r| r.message.as_str())
                    .collect();
                Finding {
                    verdict: v,
                    critical: v.status == Status::Critical,
                    hint: hint(v),
                    recovery: (!results.is_empty()).then(|| results.join("; ")),
                }
            })
            .collect()
    }

    /// The incident's one-line summary: `all checks pass`, or `Nexus
    /// unhealthy: <failing checks>`.
    pub fn summary(&self) -> String {
        if self.healthy {
            "all checks pass".to_string()
        } else {
            format!("Nexus unhealthy: {}", self.failing_names())
        }
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
        ("gateway_health", _) => {
            "the gateway accepts connections but is not live (its /health says degraded: a wedged \
             event loop, or the sidecar cannot complete a WebSocket handshake): read its log, then \
             restart `server.py` (the gateway service)"
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
            false,
            &[],
        )
    }

    #[test]
    fn each_check_is_one_history_observation_named_with_its_host() {
        let mut e = sample();
        e.host = "h1".into();
        let ev = e.history_events();
        let got: Vec<(&str, &str, &str, &str)> = ev
            .iter()
            .map(|x| {
                (
                    x.group.as_str(),
                    x.subject.as_str(),
                    x.new_state.as_str(),
                    x.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("h1", "ws_gateway@h1", "OK", "TCP:localhost:8765 reachable"),
                (
                    "h1",
                    "heartbeat@h1",
                    "CRITICAL",
                    "Stale heartbeat: 600s ago | x"
                )
            ]
        );
        assert!(ev.iter().all(|x| x.kind == nexus_history::Kind::Check));
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

    /// Issue 18 item 1: an optional Unknown (Ollama not running) is no
    /// problem unless strict: the run is healthy, and nothing is failing,
    /// so no issue and no message; strict, it is degraded and a warning
    /// with its hint. Named in `optional`, it never counts.
    #[test]
    fn an_optional_unknown_is_a_problem_only_when_strict() {
        let verdicts = || {
            vec![
                v("core", "tcp", Status::Ok, "reachable"),
                v(
                    "gpu",
                    "ollama",
                    Status::Unknown,
                    "Ollama not available (optional): refused",
                ),
            ]
        };
        let e = Evaluation::new(0.0, verdicts(), false, &[]);
        assert_eq!(e.overall_status, Overall::Healthy);
        assert!(e.healthy && e.findings().is_empty(), "{:?}", e.findings());
        assert_eq!(e.summary(), "all checks pass");
        assert!(!e.markdown().contains("What to do"), "{}", e.markdown());
        assert_eq!(
            serde_json::to_value(&e).unwrap()["checks"][1]["problem"],
            false
        );

        let e = Evaluation::new(0.0, verdicts(), true, &[]);
        assert_eq!(e.overall_status, Overall::Degraded);
        let p = e.findings();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].verdict.name.as_str(), p[0].critical), ("gpu", false));
        assert_eq!(p[0].hint, "start Ollama / check the GPU");
        assert_eq!(e.summary(), "Nexus unhealthy: gpu");
        assert!(
            e.markdown().contains("- **gpu**: start Ollama"),
            "{}",
            e.markdown()
        );

        let e = Evaluation::new(0.0, verdicts(), true, &["gpu".to_string()]);
        assert!(e.healthy && e.findings().is_empty());

        // Nothing evaluated at all: unknown, and every Unknown is the problem.
        let e = Evaluation::new(
            0.0,
            vec![v("gpu", "ollama", Status::Unknown, "Ollama not available")],
            false,
            &[],
        );
        assert_eq!(e.overall_status, Overall::Unknown);
        assert_eq!(e.findings().len(), 1);
    }

    /// Issue 18 item 3: the alert problem carries the issue body's hint
    /// and the recovery action's result for that check.
    #[test]
    fn problems_carry_the_hint_and_the_recovery_result() {
        let mut e = sample();
        e.recovery.push(RecoveryResult {
            check: "heartbeat".into(),
            action: "restart",
            ok: true,
            message: "restarted: systemctl restart nexus (attempt 1/3)".into(),
            attempts: 1,
            freed_bytes: None,
        });
        let p = e.findings();
        assert_eq!(p.len(), 1);
        assert!(p[0].critical);
        let hint = p[0].hint;
        assert!(e.markdown().contains(&format!("- **heartbeat**: {hint}")));
        assert_eq!(
            p[0].recovery.as_deref(),
            Some("restarted: systemctl restart nexus (attempt 1/3)")
        );
    }
}
