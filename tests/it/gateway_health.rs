//! The gateway health endpoint end to end (issue 19): the real
//! `nexus-health-sidecar` beside a real tokio-tungstenite WebSocket server
//! on loopback (behind a `tcp::Gate` that stops it or wedges it: TCP
//! accepted, the handshake never completed), and the real `nexus-watchdog`
//! reading the sidecar as its `gateway_health` check.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nexus_e2e::{Run, assert_no_canary, bin};
use nexus_testkit::report::{check, json};
use nexus_testkit::{Fetched, Sleeper, WsServer, fetch, tcp};

const FRESH_WITHIN: Duration = Duration::from_secs(1);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A running sidecar, its stderr in a file; killed on drop.
struct Sidecar {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Sidecar {
    /// Serves on a free port for the gateway at `ws`.
    fn start(ws: SocketAddr) -> Sidecar {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("sidecar.log");
        let port = nexus_testkit::free_port();
        let child = sidecar_cmd(ws)
            .env("NEXUS_HEALTH_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Sidecar {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _tmp: tmp,
        };
        s.until("the endpoint answers", |f| f.is_some());
        s
    }

    fn get(&self, target: &str) -> Option<Fetched> {
        fetch(self.addr, "GET", target)
    }

    /// Polls `GET /health` until `cond` holds (at most 15 s).
    fn until(&self, what: &str, cond: impl Fn(Option<&Fetched>) -> bool) -> Option<Fetched> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let f = self.get("/health");
            if cond(f.as_ref()) {
                return f;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: last answer {f:?}\nsidecar log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        assert_no_canary("the sidecar's stderr", &text);
        String::from_utf8_lossy(&text).into_owned()
    }

    /// SIGTERM; the exit status once it is gone (within 10 s).
    fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sidecar_cmd(ws: SocketAddr) -> Command {
    let mut c = Command::new(bin("nexus-health-sidecar"));
    c.env("NEXUS_HEALTH_HOST", "127.0.0.1")
        .env("NEXUS_WS_HOST", ws.ip().to_string())
        .env("NEXUS_WS_PORT", ws.port().to_string())
        .env("NEXUS_LOG", "info")
        .args(["--fresh-within", "1s", "--probe-interval", "200ms"])
        .args(["--probe-timeout", "500ms"]);
    c
}

fn status_of(f: Option<&Fetched>) -> Option<(u16, String)> {
    let f = f?;
    let s = f.json()["status"].as_str()?.to_string();
    Some((f.status, s))
}

fn is(f: Option<&Fetched>, code: u16, status: &str) -> bool {
    status_of(f).is_some_and(|(c, s)| c == code && s == status)
}

/// A real WebSocket server on its own runtime, behind a gate.
fn gateway() -> (tokio::runtime::Runtime, WsServer, tcp::Gate) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(WsServer::echo());
    let gate = tcp::Gate::start(ws.addr);
    (rt, ws, gate)
}

#[test]
fn the_sidecar_follows_a_real_gateway_through_stop_and_wedge() {
    let (_rt, _ws, gate) = gateway();
    let side = Sidecar::start(gate.addr);

    // Live: the seed's body, connected_clients null (the sidecar cannot count them).
    let f = side.until("ok", |f| is(f, 200, "ok")).expect("an answer");
    assert_eq!(f.header("content-type"), Some("application/json"));
    assert_eq!(f.header("content-length"), Some(&*f.body.len().to_string()));
    let j = f.json();
    assert_eq!(j["service"], "nexus-gateway");
    assert_eq!(j["ws_port"], gate.addr.port());
    assert!(j["connected_clients"].is_null(), "{j}");
    assert!(
        j["uptime_seconds"].as_f64().is_some_and(|u| u >= 0.0),
        "{j}"
    );
    let ts = j["ts"].as_f64().unwrap();
    assert!((ts - nexus_stdx::now_epoch()).abs() < 60.0, "{j}");
    // The query string is ignored; HEAD has no body; other methods 405; other paths 404.
    assert_eq!(side.get("/health?x=1").unwrap().status, 200);
    let head = fetch(side.addr, "HEAD", "/health?probe=1").unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = fetch(side.addr, "POST", "/health").unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    for path in ["/", "/healthz"] {
        let f = side.get(path).unwrap();
        assert_eq!((f.status, f.body.as_str()), (404, ""), "{path}");
    }

    // Stopped: degraded with 503 within the freshness window (plus a
    // probe's period and timeout, and slack for a loaded machine).
    gate.close();
    let stopped = Instant::now();
    side.until("degraded once the gateway stopped", |f| {
        is(f, 503, "degraded")
    });
    let took = stopped.elapsed();
    assert!(
        took < FRESH_WITHIN + PROBE_INTERVAL + PROBE_TIMEOUT + Duration::from_secs(3),
        "{took:?}"
    );
    // HEAD says so too.
    let head = fetch(side.addr, "HEAD", "/health").unwrap();
    assert_eq!((head.status, head.body.as_str()), (503, ""));

    gate.open();
    side.until("ok again", |f| is(f, 200, "ok"));

    // Wedged: the port accepts, the handshake never completes.
    gate.hang();
    side.until("degraded while the gateway is wedged", |f| {
        is(f, 503, "degraded")
    });

    let log = side.log();
    assert!(log.contains("gateway not live"), "{log}");
    assert!(log.contains("gateway live"), "{log}");
    let st = side.stop();
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn a_gateway_wedged_from_the_start_is_never_ok() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let wedged = rt.block_on(tcp::silent());
    let side = Sidecar::start(wedged.addr);
    // Before and after the first handshake timed out: 503 degraded.
    assert!(is(side.get("/health").as_ref(), 503, "degraded"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !side.log().contains("gateway not live") {
        assert!(Instant::now() < deadline, "no failed probe logged");
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(side.log().contains("timed out"), "{}", side.log());
    assert!(is(side.get("/health").as_ref(), 503, "degraded"));
}

#[test]
fn a_port_in_use_is_a_clear_error_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let o: Output = sidecar_cmd(tcp::closed())
        .env("NEXUS_HEALTH_PORT", port.to_string())
        .run()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("already in use"),
        "{stderr}"
    );
    // The listener that holds it is untouched.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// The watchdog's default checks, all healthy but for what the test changes.
struct Watch {
    root: PathBuf,
    agent: Sleeper,
    _tmp: tempfile::TempDir,
}

impl Watch {
    fn new() -> Watch {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::write(root.join("think.py"), "def main():\n    return 1\n").unwrap();
        let doc = format!(
            r#"{{"timestamp":{},"pid":1,"cycle":1,"model":"m","status":"thinking"}}"#,
            nexus_stdx::now_epoch()
        );
        std::fs::write(root.join("heartbeat.json"), doc).unwrap();
        Watch {
            root,
            agent: Sleeper::child("nexus_think"),
            _tmp: tmp,
        }
    }

    /// One `--json` run against the gateway `ws` and the health port `health`.
    fn run(&self, ws: SocketAddr, health: u16) -> (Option<i32>, serde_json::Value) {
        let p = |x: &Path| x.display().to_string();
        let o = Command::new(bin("nexus-watchdog"))
            .args(["--json", "--dry-run", "--no-self-heartbeat"])
            .args([
                "--ws-host",
                "127.0.0.1",
                "--ws-port",
                &ws.port().to_string(),
            ])
            .args(["--process-pattern", &self.agent.name])
            .args(["--heartbeat-path", &p(&self.root.join("heartbeat.json"))])
            .args(["--think-script", &p(&self.root.join("think.py"))])
            .args(["--state-dir", &p(&self.root.join("state"))])
            .env("NEXUS_HEALTH_HOST", "127.0.0.1")
            .env("NEXUS_HEALTH_PORT", health.to_string())
            .env_remove("NEXUS_WATCHDOG_CONFIG")
            .env_remove("GITEA_TOKEN")
            .run()
            .unwrap();
        (o.status.code(), json(&o))
    }
}

#[test]
fn the_watchdog_reads_the_sidecar_and_tolerates_its_absence() {
    let (_rt, _ws, gate) = gateway();
    let w = Watch::new();

    // No sidecar: gateway_health is Unknown and optional; the TCP check
    // decides, and the run is healthy.
    let (code, v) = w.run(gate.addr, tcp::closed().port());
    assert_eq!(code, Some(0), "{v:#}");
    let h = check(&v, "gateway_health");
    assert_eq!(h["status"], "unknown", "{v:#}");
    assert_eq!(h["problem"], false, "{v:#}");
    assert_eq!(check(&v, "ws_gateway")["status"], "ok");

    // A live gateway behind the sidecar: ok.
    let side = Sidecar::start(gate.addr);
    side.until("ok", |f| is(f, 200, "ok"));
    let (code, v) = w.run(gate.addr, side.addr.port());
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(check(&v, "gateway_health")["status"], "ok", "{v:#}");

    // Wedged: TCP still connects, so only the health check sees it.
    gate.hang();
    side.until("degraded", |f| is(f, 503, "degraded"));
    let (code, v) = w.run(gate.addr, side.addr.port());
    assert_eq!(code, Some(1), "{v:#}");
    let h = check(&v, "gateway_health");
    assert_eq!(h["status"], "critical", "{v:#}");
    assert_eq!(h["problem"], true, "{v:#}");
    assert!(
        h["message"]
            .as_str()
            .unwrap()
            .contains("JSON field /status is \"degraded\""),
        "{v:#}"
    );
    assert_eq!(check(&v, "ws_gateway")["status"], "ok", "{v:#}");
    assert_eq!(v["overall_status"], "critical", "{v:#}");
}

#[test]
fn check_config_names_a_bad_key_of_the_new_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "nexus-watchdog",
            "w.toml",
            "[[probe]]\nname = \"gateway_health\"\n[probe.http]\nurl = \"http://127.0.0.1:8766/health\"\nrefsued = \"unknown\"\n",
            "refsued",
        ),
        (
            "resurrection-pool",
            "p.toml",
            "[[gateway]]\nname = \"timmy\"\nhealth_prot = 8766\n",
            "health_prot",
        ),
        (
            "resurrection-pool",
            "q.toml",
            "[[gateway]]\nname = \"timmy\"\nhealth = \"off\"\n",
            "health",
        ),
    ];
    for (binary, file, text, key) in cases {
        let path = tmp.path().join(file);
        std::fs::write(&path, text).unwrap();
        let o = Command::new(bin(binary))
            .arg("check-config")
            .arg(&path)
            .run()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{binary}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(file),
            "{binary}: {stderr}"
        );
    }
    // The shipped examples, with the new keys, are valid.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    for (binary, file) in [
        ("nexus-watchdog", "watchdog.toml"),
        ("resurrection-pool", "resurrection-pool.toml"),
    ] {
        // The pool's `[ping]` and `[alertmanager]` need their tokens.
        let o = Command::new(bin(binary))
            .arg("check-config")
            .arg(examples.join(file))
            .env("NEXUS_PING_TOKEN", "ping-token-0123456789")
            .env("NEXUS_ALERTMANAGER_TOKEN", "am-token-0123456789")
            .run()
            .unwrap();
        assert!(
            o.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The pool's `[[gateway]]` reads `/health` too: a wedged gateway (TCP still
/// accepted) is down; no endpoint leaves the TCP probe to decide.
#[test]
fn the_pool_counts_a_wedged_gateway_down_through_its_health() {
    let (_rt, _ws, gate) = gateway();
    let w = Watch::new();
    let once = |health_port: u16| {
        let root = &w.root;
        std::fs::create_dir_all(root.join("cells")).unwrap();
        std::fs::write(
            root.join("heartbeat.json"),
            format!(r#"{{"timestamp":{},"pid":1}}"#, nexus_stdx::now_epoch()),
        )
        .unwrap();
        let cfg = root.join("pool.toml");
        std::fs::write(
            &cfg,
            format!(
                "[pool]\nheartbeat_dir = \"{hb}\"\nprobe_timeout = \"2s\"\n[cells]\nroot = \"{cells}\"\n\
                 [[gateway]]\nname = \"timmy\"\nhost = \"127.0.0.1\"\nport = {port}\n\
                 heartbeat_path = \"{beat}\"\nprocess_pattern = \"{pattern}\"\nhealth_port = {health_port}\n",
                hb = root.join("hb").display(),
                cells = root.join("cells").display(),
                port = gate.addr.port(),
                beat = root.join("heartbeat.json").display(),
                pattern = w.agent.name,
            ),
        )
        .unwrap();
        let o = Command::new(bin("resurrection-pool"))
            .arg("--config")
            .arg(&cfg)
            .arg("--state-file")
            .arg(root.join("state.json"))
            .args(["--once", "--json", "--dry-run"])
            .env_remove("RESURRECTION_CONFIG")
            .env_remove("GITEA_TOKEN")
            .env_remove("TELEGRAM_BOT_TOKEN")
            .env("NEXUS_LOG", "error")
            .run()
            .unwrap();
        let v = json(&o);
        (o.status.code(), v[0].clone())
    };
    // No sidecar: the TCP probe decides, the agent is healthy.
    let (code, a) = once(tcp::closed().port());
    assert_eq!((code, &a["state"]), (Some(0), &"healthy".into()), "{a:#}");
    // The sidecar says ok: healthy.
    let side = Sidecar::start(gate.addr);
    side.until("ok", |f| is(f, 200, "ok"));
    let (code, a) = once(side.addr.port());
    assert_eq!((code, &a["state"]), (Some(0), &"healthy".into()), "{a:#}");
    // Wedged: TCP connects, /health is degraded: the gateway is down.
    gate.hang();
    side.until("degraded", |f| is(f, 503, "degraded"));
    let (code, a) = once(side.addr.port());
    assert_eq!(code, Some(1), "{a:#}");
    assert_eq!(a["gateway_alive"], false, "{a:#}");
    assert_eq!(a["state"], "degraded", "{a:#}");
}
