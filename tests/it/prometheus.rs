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
    use crate::pool::{Daemon, Fleet, free_port, get, wait_for};
    use nexus_cell::RevivePolicy;
    use std::process::Stdio;

    let prometheus = Command::new("prometheus").arg("--version").run();
    assert!(
        prometheus.is_ok_and(|o| o.status.success()),
        "prometheus is missing: run scripts/test (scripts/setup.d installs it)"
    );
    let mut pools = Vec::new();
    let mut agents = Vec::new();
    let mut targets = Vec::new();
    for (i, agent) in ["north", "south"].into_iter().enumerate() {
        let f = Fleet::new();
        f.join(agent, RevivePolicy::Never, false);
        let hb = f.heartbeat_path(agent);
        // The agent: a loop beating through the CLI, started by the test.
        let looper = Command::new("sh")
            .arg("-c")
            .arg("while :; do \"$0\" beat --no-fsync --path \"$1\"; sleep 0.2; done")
            .arg(nexus_e2e::bin("nexus-heartbeat"))
            .arg(&hb)
            .spawn()
            .unwrap();
        agents.push(looper);
        let cfg = f.root.join("pool.toml");
        std::fs::write(
            &cfg,
            format!(
                "[pool]\npoll_interval = \"1s\"\ndead_threshold = \"0s\"\nheartbeat_dir = \"{hb}\"\n\
                 [cells]\nroot = \"{cells}\"\nheartbeat_stale_threshold = \"2s\"\n\
                 [revive]\nfail_threshold = 1\nok_threshold = 1\nstartup_grace = 0\n",
                hb = f.root.join("heartbeats").display(),
                cells = f.root.join("cells").display()
            ),
        )
        .unwrap();
        let (d, port) = f.serve(&cfg);
        wait_for(&format!("{agent} healthy"), || {
            get(&format!("http://127.0.0.1:{port}/api/agents")).contains("\"healthy\"")
        });
        targets.push(format!("'127.0.0.1:{port}'"));
        pools.push((f, d, i));
    }
    // The shipped rules, with the `for` durations shortened for the test.
    let tmp = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(dir().join("rules.yml"))
        .unwrap()
        .replace("for: 2m", "for: 1s")
        .replace("for: 1m", "for: 1s");
    std::fs::write(tmp.path().join("rules.yml"), rules).unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: resurrection-pool\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let web = free_port();
    let _prom = Daemon(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                tmp.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api = format!("http://127.0.0.1:{web}/api/v1");
    // Both pools are scraped.
    wait_for("two healthy targets", || {
        get(&format!(
            "{api}/query?query=sum(up%7Bjob%3D%22resurrection-pool%22%7D)"
        ))
        .contains("\"2\"")
    });
    // "north" dies; its pool sees it; Prometheus fires the alert for it alone.
    let mut north = agents.remove(0);
    north.kill().unwrap();
    north.wait().unwrap();
    wait_for("NexusAgentDead firing for north", || {
        let alerts = get(&format!("{api}/alerts"));
        alerts.contains("\"alertname\":\"NexusAgentDead\"")
            && alerts.contains("\"agent\":\"north\"")
            && alerts.contains("\"state\":\"firing\"")
    });
    let alerts = get(&format!("{api}/alerts"));
    assert!(!alerts.contains("\"agent\":\"south\""), "{alerts}");
    for mut a in agents {
        let _ = a.kill();
        let _ = a.wait();
    }
    drop(pools);
}
