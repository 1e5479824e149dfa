//! The shipped Prometheus rules are valid and behave as documented
//! (`promtool check rules`, `promtool test rules`), and the metrics they use
//! are the ones the pool exports.

use nexus_e2e::Run;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .run()
        .expect("promtool is missing: run scripts/test (scripts/setup.d installs prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn rules_check_and_their_unit_tests_pass() {
    assert!(promtool(&["check", "rules", "rules.yml"]).contains("SUCCESS: 8 rules found"));
    assert!(promtool(&["test", "rules", "rules.test.yml"]).contains("SUCCESS"));
}

/// What the real watchdog and cron checker write with `--metrics-file`: a
/// failing gateway check and a stale job, in files promtool accepts.
fn textfiles(tmp: &Path) -> (String, String) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = tmp.join("watchdog.toml");
    std::fs::write(
        &config,
        format!(
            "[[probe]]\nname = \"ws_gateway\"\n[probe.tcp]\nhost = \"127.0.0.1\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let watchdog = tmp.join("nexus-watchdog.prom");
    let out = Command::new(nexus_e2e::bin("nexus-watchdog"))
        .arg("--config")
        .arg(&config)
        .arg("--metrics-file")
        .arg(&watchdog)
        .arg("--state-dir")
        .arg(tmp.join("state"))
        .args(["--dry-run", "--json"])
        .run()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let hb = tmp.join("heartbeats");
    std::fs::create_dir_all(&hb).unwrap();
    std::fs::write(
        hb.join("nightly.last"),
        r#"{"job": "nightly", "timestamp": 1000, "interval_seconds": 3600}"#,
    )
    .unwrap();
    let cron = tmp.join("nexus-cron.prom");
    let out = Command::new(nexus_e2e::bin("cron-heartbeat-check"))
        .arg("--dir")
        .arg(&hb)
        .arg("--metrics-file")
        .arg(&cron)
        .args(["--dry-run", "--no-self-heartbeat", "--json"])
        .run()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (read(&watchdog), read(&cron))
}

#[test]
fn the_watchdog_and_the_cron_checker_write_metrics_for_node_exporter() {
    let tmp = tempfile::tempdir().unwrap();
    let (watchdog, cron) = textfiles(tmp.path());
    nexus_testkit::promtool_check_metrics(&watchdog);
    nexus_testkit::promtool_check_metrics(&cron);
    let host = nexus_stdx::hostname();
    assert!(
        watchdog.contains(&format!(
            "nexus_watchdog_check_status{{check=\"ws_gateway\",kind=\"tcp\",host=\"{host}\"}} 2"
        )),
        "{watchdog}"
    );
    assert!(
        cron.contains(&format!(
            "nexus_cron_job_status{{job=\"nightly\",host=\"{host}\",status=\"stale\"}} 1"
        )),
        "{cron}"
    );
}

#[test]
fn every_metric_a_rule_uses_is_exported() {
    let rules = std::fs::read_to_string(dir().join("rules.yml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (watchdog, cron) = textfiles(tmp.path());
    let pool = nexus_pool::http::render_metrics(&nexus_pool::PoolSnapshot::default());
    let exported: std::collections::BTreeSet<&str> = [pool.as_str(), &watchdog, &cron]
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("nexus_"))
        .collect();
    assert!(used.len() >= 8, "{used:?}");
    for metric in used {
        assert!(
            exported.contains(metric),
            "{metric} is not exported: {exported:?}"
        );
    }
}

/// A real Prometheus on loopback scrapes two pools watching different cells;
/// an agent dies in one; the alert fires through the Prometheus API.
#[test]
fn a_real_prometheus_sees_the_alert_fire() {
    use crate::alertmanager::{Host, prometheus};
    use crate::pool::{get, wait_for};

    let version = Command::new("prometheus").arg("--version").run();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "prometheus is missing: run scripts/test (scripts/setup.d installs it)"
    );
    let (mut hosts, targets) = Host::fleet(&["north", "south"]);
    let tmp = tempfile::tempdir().unwrap();
    let (_prom, web) = prometheus(tmp.path(), &targets, None);
    let api = format!("http://127.0.0.1:{web}/api/v1");
    // "north" dies; its pool sees it; Prometheus fires the alert for it alone.
    hosts[0].stop();
    wait_for("NexusAgentDead firing for north", || {
        let alerts = get(&format!("{api}/alerts"));
        alerts.contains("\"alertname\":\"NexusAgentDead\"")
            && alerts.contains("\"agent\":\"north\"")
            && alerts.contains("\"state\":\"firing\"")
    });
    let alerts = get(&format!("{api}/alerts"));
    assert!(!alerts.contains("\"agent\":\"south\""), "{alerts}");
    drop(hosts);
}
