//! A real Prometheus evaluating the shipped rules over two real pools (two
//! "hosts"), a real Alertmanager grouping what fires, and its webhook into
//! a third pool's Gitea incident engine (`[alertmanager]`): the fleet-wide
//! alert is one issue that names both hosts, closed when the group
//! resolves.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nexus_cell::RevivePolicy;
use nexus_e2e::Run;
use nexus_testkit::gitea::{Fake, FakeState};

use crate::pool::channels::gitea;
use crate::pool::{Daemon, Fleet, free_port, get, wait_for};

const TOKEN: &str = "alertmanager-e2e-token-0123";

/// A pool watching one agent that the test makes beat or stop.
pub(crate) struct Host {
    f: Fleet,
    agent: &'static str,
    looper: Option<Child>,
    _pool: Daemon,
}

impl Host {
    /// The pool (on a free port, returned) and its agent, beating.
    pub(crate) fn start(agent: &'static str) -> (Host, u16) {
        let f = Fleet::new();
        f.join(agent, RevivePolicy::Never, false);
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
        let (pool, port) = f.serve(&cfg);
        let mut h = Host {
            f,
            agent,
            looper: None,
            _pool: pool,
        };
        h.beat();
        wait_for(&format!("{agent} healthy"), || {
            get(&format!("http://127.0.0.1:{port}/api/agents")).contains("\"healthy\"")
        });
        (h, port)
    }

    /// One host per agent, and their pools' addresses as Prometheus
    /// targets (`'127.0.0.1:<port>'`).
    pub(crate) fn fleet(agents: &[&'static str]) -> (Vec<Host>, Vec<String>) {
        agents
            .iter()
            .map(|a| {
                let (h, port) = Host::start(a);
                (h, format!("'127.0.0.1:{port}'"))
            })
            .unzip()
    }

    /// Its agent beats (a loop through the CLI, started by the test).
    fn beat(&mut self) {
        self.looper = Some(
            Command::new("sh")
                .arg("-c")
                .arg("while :; do \"$0\" beat --no-fsync --path \"$1\"; sleep 0.2; done")
                .arg(nexus_e2e::bin("nexus-heartbeat"))
                .arg(self.f.heartbeat_path(self.agent))
                .spawn()
                .unwrap(),
        );
    }

    /// Its agent stops beating.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.looper.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything but the fake Gitea: the hosts, the receiving pool,
/// Alertmanager and Prometheus.
struct World {
    hosts: Vec<Host>,
    _receiver: Daemon,
    _alertmanager: Daemon,
    _prometheus: Daemon,
    _rx: Fleet,
    _tmp: tempfile::TempDir,
}

/// The shipped rules, `for` shortened for the test.
pub(crate) fn rules() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus/rules.yml"),
    )
    .unwrap()
    .replace("for: 2m", "for: 1s")
    .replace("for: 1m", "for: 1s")
}

/// A real Prometheus in `dir` on a free port (returned): the shipped
/// rules ([`rules`]), scraping the pools at `targets` every second,
/// alerting to the Alertmanager on `alertmanager`; once every target is
/// scraped.
pub(crate) fn prometheus(
    dir: &std::path::Path,
    targets: &[String],
    alertmanager: Option<u16>,
) -> (Daemon, u16) {
    std::fs::write(dir.join("rules.yml"), rules()).unwrap();
    let alerting = alertmanager.map_or(String::new(), |port| {
        format!("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{port}']\n")
    });
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n{alerting}\
             scrape_configs:\n  - job_name: resurrection-pool\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let web = free_port();
    let prometheus = daemon(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}")),
    );
    let all = format!("\"{}\"", targets.len());
    wait_for("every pool scraped", || {
        get(&format!(
            "http://127.0.0.1:{web}/api/v1/query?query=sum(up%7Bjob%3D%22resurrection-pool%22%7D)"
        ))
        .contains(&all)
    });
    (prometheus, web)
}

fn daemon(cmd: &mut Command) -> Daemon {
    Daemon(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

impl World {
    fn start(gitea_url: &str) -> World {
        let (hosts, targets) = Host::fleet(&["north", "south"]);
        // The receiving pool: nothing to watch, Gitea and the receiver on.
        let rx = Fleet::new();
        let rx_cfg = rx.config("[incident]\nassignees = [\"alice\"]\n\n[alertmanager]\n");
        let rx_port = free_port();
        let receiver = daemon(
            gitea(&mut rx.cmd(&rx_cfg), gitea_url)
                .args(["--allow-empty", "--listen", &format!("127.0.0.1:{rx_port}")])
                .env("NEXUS_ALERTMANAGER_TOKEN", TOKEN),
        );
        get(&format!("http://127.0.0.1:{rx_port}/health"));

        // Alertmanager: one group per alert name, whatever the host; its
        // cluster listener off (loopback only).
        let tmp = tempfile::tempdir().unwrap();
        let am_port = free_port();
        std::fs::write(
            tmp.path().join("alertmanager.yml"),
            format!(
                "route:\n  receiver: pool\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: pool\n    webhook_configs:\n      - url: http://127.0.0.1:{rx_port}/alertmanager\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials: {TOKEN}\n"
            ),
        )
        .unwrap();
        let p = tmp.path();
        let alertmanager = daemon(
            Command::new("prometheus-alertmanager")
                .arg(format!(
                    "--config.file={}",
                    p.join("alertmanager.yml").display()
                ))
                .arg(format!("--storage.path={}", p.join("am").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
                .arg("--cluster.listen-address="),
        );
        get(&format!("http://127.0.0.1:{am_port}/-/ready"));

        let (prometheus, _) = prometheus(p, &targets, Some(am_port));
        World {
            hosts,
            _receiver: receiver,
            _alertmanager: alertmanager,
            _prometheus: prometheus,
            _rx: rx,
            _tmp: tmp,
        }
    }
}

/// Waits (at most 90 s: Prometheus, Alertmanager and the engine each take
/// their intervals) until the fake Gitea's state satisfies `cond`.
async fn until(fake: &Fake, what: &str, cond: impl Fn(&FakeState) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if cond(&fake.st()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            fake.st().log
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything said about issue 1: its body and its comments.
fn said(st: &FakeState) -> String {
    let mut all = st
        .issues
        .first()
        .map(|i| i.body.clone())
        .unwrap_or_default();
    for (n, c) in &st.comments {
        if *n == 1 {
            all.push_str(c);
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_wide_alert_is_one_gitea_issue_closed_when_it_resolves() {
    for tool in ["prometheus", "prometheus-alertmanager"] {
        let ok = Command::new(tool).arg("--version").run();
        assert!(
            ok.is_ok_and(|o| o.status.success()),
            "{tool} is missing: run scripts/test (scripts/setup.d installs it)"
        );
    }
    let fake = Fake::start().await;
    let url = fake.url();
    let mut world = tokio::task::spawn_blocking(move || World::start(&url))
        .await
        .unwrap();
    // Both hosts lose their agent: NexusAgentDead fires on each, in one
    // Alertmanager group.
    for h in &mut world.hosts {
        h.stop();
    }
    until(&fake, "one issue naming both hosts", |st| {
        let s = said(st);
        st.issues.len() == 1 && s.contains("agent=north") && s.contains("agent=south")
    })
    .await;
    {
        let st = fake.st();
        assert!(st.issues[0].open);
        assert!(
            st.issues[0].title.contains("NexusAgentDead"),
            "{}",
            st.issues[0].title
        );
    }
    // They beat again: the group resolves, the issue is closed.
    for h in &mut world.hosts {
        h.beat();
    }
    until(&fake, "the issue closed", |st| {
        st.issues.first().is_some_and(|i| !i.open)
    })
    .await;
    assert_eq!(fake.st().issues.len(), 1, "one issue for the group, ever");
    fake.assert_contract();
    tokio::task::spawn_blocking(move || drop(world))
        .await
        .unwrap();
}

/// The shipped Alertmanager example, the pool's receiver included, is one
/// Alertmanager accepts.
#[test]
fn the_shipped_alertmanager_config_is_valid() {
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus/alertmanager.yml");
    let out = Command::new("amtool")
        .arg("check-config")
        .arg(&file)
        .run()
        .expect("amtool is missing: run scripts/test (scripts/setup.d installs prometheus-alertmanager)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SUCCESS"), "{text}");
    let shipped = std::fs::read_to_string(&file).unwrap();
    assert!(
        shipped.contains("/alertmanager"),
        "the pool's receiver is in the example"
    );
}
