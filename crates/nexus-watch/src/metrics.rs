//! The watchdog's Prometheus metrics, written after every evaluation to a
//! file for node_exporter's textfile collector (`--metrics-file`). The rules
//! in docs/prometheus/rules.yml alert on a failing check and on a watchdog
//! that stopped writing.

use nexus_metrics::{Exposition, Kind};
use nexus_probe::Verdict;

use crate::{Evaluation, Overall};

/// A per-check family: its name, its help and its value.
type PerCheck = (&'static str, &'static str, fn(&Verdict) -> f64);

fn overall_code(o: Overall) -> f64 {
    match o {
        Overall::Healthy => 0.0,
        Overall::Degraded => 1.0,
        Overall::Critical => 2.0,
        Overall::Unknown => 3.0,
    }
}

impl Evaluation {
    /// The evaluation in the Prometheus text format. `interval` is the
    /// cycle period (the timer's, for one-shot runs): the stall rule allows
    /// three of them.
    pub fn metrics(&self, interval: std::time::Duration) -> String {
        let host = self.host.as_str();
        let mut e = Exposition::new();
        let per_check: [PerCheck; 2] = [
            (
                "nexus_watchdog_check_status",
                "The check's Nagios code: 0 ok, 1 warning, 2 critical, 3 unknown.",
                |v| f64::from(v.status.exit_code()),
            ),
            (
                "nexus_watchdog_check_latency_seconds",
                "How long the check took.",
                |v| v.latency.as_secs_f64(),
            ),
        ];
        for (name, help, value) in per_check {
            e.family(name, Kind::Gauge, help);
            for c in &self.checks {
                let v = &c.verdict;
                let labels = [
                    ("check", v.name.as_str()),
                    ("kind", v.kind.as_str()),
                    ("host", host),
                ];
                e.sample(name, &labels, value(v));
            }
        }
        e.family(
            "nexus_watchdog_overall_status",
            Kind::Gauge,
            "0 healthy, 1 degraded, 2 critical, 3 unknown (nothing could be checked).",
        )
        .sample(
            "nexus_watchdog_overall_status",
            &[("host", host)],
            overall_code(self.overall_status),
        )
        .family(
            "nexus_watchdog_last_run_timestamp_seconds",
            Kind::Gauge,
            "When the last evaluation ran (epoch seconds).",
        )
        .sample(
            "nexus_watchdog_last_run_timestamp_seconds",
            &[("host", host)],
            self.timestamp,
        )
        .family(
            "nexus_watchdog_interval_seconds",
            Kind::Gauge,
            "The period between evaluations.",
        )
        .sample(
            "nexus_watchdog_interval_seconds",
            &[("host", host)],
            interval.as_secs_f64(),
        );
        e.into_string()
    }
}

#[cfg(test)]
mod tests {
    use nexus_probe::{Status, Verdict};

    use crate::Evaluation;

    fn v(name: &str, kind: &str, status: Status) -> Verdict {
        Verdict {
            name: name.to_string(),
            kind: kind.to_string(),
            status,
            summary: String::new(),
            details: Default::default(),
            latency: std::time::Duration::from_millis(3),
            checked_at: 1000.0,
        }
    }

    #[test]
    fn every_check_is_a_series_and_promtool_accepts_them() {
        let bad = v("gateway \"main\"", "tcp", Status::Critical);
        let ok = v("heartbeat", "heartbeat", Status::Ok);
        let eval = Evaluation::new(1000.0, vec![bad, ok], false, &[]);
        let text = eval.metrics(std::time::Duration::from_secs(60));
        let host = nexus_stdx::hostname();
        for line in [
            format!(
                "nexus_watchdog_check_status{{check=\"gateway \\\"main\\\"\",kind=\"tcp\",host=\"{host}\"}} 2"
            ),
            format!(
                "nexus_watchdog_check_status{{check=\"heartbeat\",kind=\"heartbeat\",host=\"{host}\"}} 0"
            ),
            format!("nexus_watchdog_overall_status{{host=\"{host}\"}} 2"),
            format!("nexus_watchdog_last_run_timestamp_seconds{{host=\"{host}\"}} 1000"),
            format!("nexus_watchdog_interval_seconds{{host=\"{host}\"}} 60"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        nexus_testkit::promtool_check_metrics(&text);
    }
}
