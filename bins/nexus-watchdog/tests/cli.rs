//! `nexus-watchdog` through the real binary against real targets on loopback.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use nexus_testkit::canary::Run;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nexus_testkit::report::{check, json};
use nexus_testkit::{HttpResponse, HttpServer, PostgresServer, RedisServer, Sleeper, tcp};
use serde_json::Value;

/// A sandbox: state dir, heartbeat file, think script.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::write(
            root.join("think.py"),
            "import sys\n\ndef main():\n    return 1\n",
        )
        .unwrap();
        Sandbox { _tmp: tmp, root }
    }
    fn heartbeat(&self, age_seconds: f64) {
        let now = nexus_stdx::now_epoch();
        let doc = format!(
            r#"{{"timestamp":{},"pid":1,"cycle":7,"model":"timmy","status":"thinking"}}"#,
            now - age_seconds
        );
        std::fs::write(self.root.join("heartbeat.json"), doc).unwrap();
    }
    /// The four default checks pointed at this sandbox.
    fn cmd(&self, port: u16, pattern: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"));
        c.args(["--ws-host", "127.0.0.1", "--ws-port", &port.to_string()])
            .args(["--process-pattern", pattern])
            .arg("--heartbeat-path")
            .arg(self.root.join("heartbeat.json"))
            .arg("--think-script")
            .arg(self.root.join("think.py"))
            .arg("--state-dir")
            .arg(self.root.join("state"))
            .arg("--heartbeat-dir")
            .arg(self.root.join("cron"))
            .env_remove("NEXUS_WATCHDOG_CONFIG")
            .env_remove("NEXUS_HEARTBEAT_PATH")
            .env_remove("NEXUS_WS_HOST")
            .env_remove("NEXUS_WS_PORT")
            .env_remove("NEXUS_HEALTH_HOST")
            .env_remove("NEXUS_HEALTH_PORT")
            .env_remove("GITEA_TOKEN")
            .env_remove("NEXUS_SELF_HEARTBEAT");
        c
    }
    /// The watchdog's own cron heartbeat in this sandbox.
    fn own_beat(&self) -> PathBuf {
        self.root.join("cron/nexus_watchdog.last")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn all_healthy_then_each_failure() {
    let gw = tcp::open().await;
    let agent = Sleeper::child("nexus_think");
    let s = Sandbox::new();
    s.heartbeat(5.0);
    // As its timer runs it: with its own heartbeat.
    let o = s
        .cmd(gw.addr.port(), &agent.name)
        .args(["--json", "--self-heartbeat"])
        .run()
        .unwrap();
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["overall_status"], "healthy");
    assert!(
        check(&v, "consciousness_loop")["message"]
            .as_str()
            .unwrap()
            .contains(&agent.pid.to_string())
    );
    // The watchdog beat for cron-heartbeat-check.
    let own: Value = serde_json::from_slice(&std::fs::read(s.own_beat()).unwrap()).unwrap();
    assert_eq!(own["interval_seconds"], 300);

    // Hung mind: the process lives, the heartbeat is ten minutes old.
    s.heartbeat(600.0);
    let o = s
        .cmd(gw.addr.port(), &agent.name)
        .arg("--json")
        .run()
        .unwrap();
    let v = json(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(check(&v, "heartbeat")["status"], "critical");
    assert_eq!(check(&v, "consciousness_loop")["status"], "ok");
    assert!(
        check(&v, "heartbeat")["message"]
            .as_str()
            .unwrap()
            .contains("Stale heartbeat"),
        "{v:#}"
    );

    // A syntax error at a known line is reported with file and line.
    s.heartbeat(5.0);
    std::fs::write(
        s.root.join("think.py"),
        "x = 1\ny = 2\ndef broken(:\n    pass\n",
    )
    .unwrap();
    let o = s
        .cmd(gw.addr.port(), &agent.name)
        .arg("--json")
        .run()
        .unwrap();
    let v = json(&o);
    assert_eq!(o.status.code(), Some(1));
    let msg = check(&v, "syntax")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("think.py") && msg.contains("line 3"), "{msg}");

    // The gateway down.
    std::fs::write(s.root.join("think.py"), "pass\n").unwrap();
    let closed = tcp::closed();
    let o = s
        .cmd(closed.port(), &agent.name)
        .arg("--json")
        .run()
        .unwrap();
    let v = json(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(check(&v, "ws_gateway")["status"], "critical");
    assert_eq!(v["overall_status"], "critical");
}

#[tokio::test(flavor = "multi_thread")]
async fn markdown_report_names_the_failing_check_and_what_to_do() {
    let s = Sandbox::new();
    let closed = tcp::closed();
    let o = s
        .cmd(closed.port(), "no-such-process-xyz")
        .arg("--markdown")
        .run()
        .unwrap();
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("| ws_gateway | ❌ CRITICAL |"), "{md}");
    assert!(
        md.contains("### What to do") && md.contains("restart `server.py`"),
        "{md}"
    );
}

#[test]
fn watch_mode_stops_within_a_second_of_sigterm() {
    let s = Sandbox::new();
    let closed = tcp::closed();
    let mut child = s
        .cmd(closed.port(), "no-such-process-xyz")
        .args(["--watch", "--interval", "1h"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first cycle's report: the loop is now sleeping.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("Overall status"), "{first}");
    // The daemon writes its own heartbeat after each cycle.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !s.own_beat().exists() {
        assert!(
            std::time::Instant::now() < until,
            "no own heartbeat from --watch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        let _ = tx.send(status);
    });
    let sent = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("nexus-watchdog still running 1 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "watch mode exits 0 on a signal");
    assert!(sent.elapsed() < Duration::from_secs(1));
    waiter.join().unwrap();
}

fn config(s: &Sandbox, text: &str) -> PathBuf {
    let p = s.root.join("watchdog.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `check-config` on `text`, without the channels' variables: the exit
/// code, stdout and stderr.
fn check_config(s: &Sandbox, text: &str) -> (Option<i32>, String, String) {
    let f = config(s, text);
    let o = Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"))
        .arg("check-config")
        .arg(&f)
        .env_remove("NEXUS_WEBHOOK_URL")
        .env_remove("NEXUS_SMTP_PASSWORD")
        .run()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn run_config(s: &Sandbox, cfg: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"))
        .arg("--config")
        .arg(cfg)
        .arg("--state-dir")
        .arg(s.root.join("state"))
        .arg("--heartbeat-dir")
        .arg(s.root.join("cron"))
        .args(extra)
        .env_remove("GITEA_TOKEN")
        .run()
        .unwrap()
}

/// `[history]`: every run records each check; the file keeps the changes
/// (OK, then CRITICAL once the port closes), named `<check>@<host>`.
#[test]
fn history_keeps_each_checks_changes() {
    let s = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let db = s.root.join("history.sqlite");
    let cfg = config(
        &s,
        &format!(
            "[history]\npath = \"{}\"\n\n[[probe]]\nname = \"gateway\"\ntcp = {{ host = \"127.0.0.1\", port = {port} }}\n",
            db.display()
        ),
    );
    let o = run_config(&s, &cfg, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(listener);
    for _ in 0..2 {
        let o = run_config(&s, &cfg, &[]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let r = nexus_history::Reader::open(&db).unwrap();
    let subjects = r.subjects().unwrap();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    let g = &subjects[0];
    assert_eq!(g.subject, format!("gateway@{}", g.group));
    let ev = r
        .last_events(nexus_history::Kind::Check, &g.subject, 10)
        .unwrap();
    let changes: Vec<(&str, &str)> = ev
        .iter()
        .map(|e| (e.old_state.as_str(), e.new_state.as_str()))
        .collect();
    assert_eq!(changes, [("OK", "CRITICAL"), ("", "OK")], "{ev:?}");
}

#[test]
fn the_restart_cap_holds_across_four_one_shot_runs() {
    let s = Sandbox::new();
    let closed = tcp::closed();
    let counter = s.root.join("restarts");
    let cfg = config(
        &s,
        &format!(
            r#"
[[probe]]
name = "gateway"
tcp = {{ host = "127.0.0.1", port = {port} }}

[[recovery]]
check = "gateway"
restart = ["sh", "-c", "echo restart >> \"$0\"", "{counter}"]
max_attempts = 3
window = "1h"
"#,
            port = closed.port(),
            counter = counter.display()
        ),
    );
    // Dry-run first: nothing runs, nothing is counted.
    let o = run_config(&s, &cfg, &["--json", "--dry-run"]);
    assert_eq!(
        json(&o)["recovery"][0]["message"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("dry-run")
    );
    assert!(!counter.exists());
    for run in 1..=4 {
        let o = run_config(&s, &cfg, &["--json"]);
        assert_eq!(o.status.code(), Some(1));
        let v = json(&o);
        let r = &v["recovery"][0];
        if run <= 3 {
            assert_eq!(
                (
                    r["action"].as_str(),
                    r["ok"].as_bool(),
                    r["attempts"].as_u64()
                ),
                (Some("restart"), Some(true), Some(run)),
                "{v:#}"
            );
        } else {
            assert_eq!(r["action"], "none", "{v:#}");
            assert!(
                r["message"].as_str().unwrap().contains("cap reached"),
                "{v:#}"
            );
        }
    }
    let lines = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert_eq!(lines, 3, "exactly three restarts over four runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_002_config_against_real_redis_and_postgresql() {
    let redis = RedisServer::start(0, None);
    let pg = PostgresServer::start();
    pg.psql(
        "CREATE TABLE work_orders (id serial, status text, updated_at timestamptz);
         CREATE TABLE agent_metrics (prompt_tokens int, completion_tokens int, created_at timestamptz);
         INSERT INTO agent_metrics VALUES (1000, 500, now());",
    );
    let gateway = HttpServer::start(|_, _| HttpResponse::json(200, r#"{"status":"ok"}"#)).await;
    let s = Sandbox::new();
    let cfg = config(
        &s,
        &format!(
            r#"
[watchdog]
strict = true
optional = ["gpu"]

[[probe]]
name = "gateway"
http = {{ url = "{gw}", json = [{{ pointer = "/status", equals = "ok" }}] }}

[[probe]]
name = "redis"
redis = {{ url = "{redis}" }}

[[probe]]
name = "postgres"
postgres = {{ url = "{pg}" }}

[[probe]]
name = "agents"
[probe.postgres]
url = "{pg}"
label = "stuck work orders"
query = "SELECT count(*) FROM work_orders WHERE status = 'in_progress' AND updated_at < NOW() - make_interval(secs => $1)"
params = [300]
warn_at = 1

[[probe]]
name = "budget"
budget = {{ limit = 1000000, postgres = {{ url = "{pg}" }} }}

[[probe]]
name = "gpu"
ollama = {{ url = "http://127.0.0.1:{dead}", optional = true }}

[[probe]]
name = "disk"
disk = {{ path = "/", warn_pct = 99.9, crit_pct = 100 }}
"#,
            gw = gateway.url("/health"),
            redis = redis.url(None),
            pg = pg.conninfo(),
            dead = tcp::closed().port(),
        ),
    );
    let o = run_config(&s, &cfg, &["--json"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["overall_status"], "healthy");
    assert_eq!(check(&v, "gpu")["status"], "unknown", "optional and absent");
    // A stuck work order makes it degraded.
    pg.psql("INSERT INTO work_orders (status, updated_at) VALUES ('in_progress', now() - interval '1 hour');");
    let o = run_config(&s, &cfg, &["--json"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["overall_status"], "degraded", "{v:#}");
    assert_eq!(check(&v, "agents")["status"], "warning");
}

#[test]
fn check_config_names_the_bad_key() {
    let s = Sandbox::new();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/watchdog.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"))
        .arg("check-config")
        .arg(&good)
        .run()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bad = config(&s, "[watchdog]\nintervall = \"5s\"\n");
    let o = Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"))
        .arg("check-config")
        .arg(&bad)
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("watchdog.toml") && e.contains("intervall"),
        "{e}"
    );
    let o = run_config(&s, &bad, &[]);
    assert_eq!(o.status.code(), Some(2));
}

/// The `[webhook]`, `[ntfy]` and `[email]` tables (issue 22): a bad key
/// is named, values that cannot work are errors naming the table and key
/// (never the hook's secret path), a login without its password a warning.
#[test]
fn check_config_checks_the_channel_tables() {
    let s = Sandbox::new();
    let check = |text: &str| {
        let (code, _, err) = check_config(&s, text);
        (code, err)
    };
    let probe = "[[probe]]\nname = \"d\"\n[probe.disk]\npath = \"/\"\n";
    let (code, err) = check(&format!("{probe}[ntfy]\ntopik = \"x\"\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("topik"), "{err}");
    let (code, err) = check(&format!(
        "{probe}[webhook]\nurl = \"hooks.example/T0/s3cr3t-path\"\n[email]\nhost = \"mail.example\"\ntls = \"none\"\nfrom = \"nexus@example.org\"\nto = [\"ops@example.org\"]\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("[webhook]") && err.contains("not an absolute URL"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(err.contains("[email]") && err.contains("loopback"), "{err}");
    let (code, err) = check(&format!(
        "{probe}[email]\nhost = \"mail.example\"\nfrom = \"nexus@example.org\"\nto = [\"ops@example.org\"]\nusername = \"nexus\"\n"
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("NEXUS_SMTP_PASSWORD"),
        "{err}"
    );
}

/// `check-config` checks values, not only keys (issue 21), in the
/// user's terms: a URL that is none, a percentage out of range, a disk
/// path that does not exist yet (a warning), `expect_status` as one
/// value or a list, and a wrong one with the accepted forms.
#[test]
fn check_config_checks_values_in_the_users_terms() {
    let s = Sandbox::new();
    let check = |text: &str| check_config(&s, text);
    let http = |extra: &str| {
        format!(
            "[[probe]]\nname = \"gw\"\n[probe.http]\nurl = \"http://127.0.0.1:1/health\"\n{extra}"
        )
    };
    let (code, _, err) = check("[[probe]]\nname = \"gw\"\n[probe.http]\nurl = \"not a url\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("probe \"gw\" (http): `url` \"not a url\" is not an absolute URL (expected e.g. http://127.0.0.1:8080/)"),
        "{err}"
    );
    assert!(!err.contains("builder error"), "{err}");
    let (code, _, err) =
        check("[[probe]]\nname = \"d\"\n[probe.disk]\npath = \"/\"\nwarn_pct = 185\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("probe \"d\" (disk): `warn_pct` 185 is not a percentage (0 to 100)"),
        "{err}"
    );
    let (code, out, err) =
        check("[[probe]]\nname = \"d\"\n[probe.disk]\npath = \"/no/such/data\"\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: [[probe]] \"d\" (disk): `path` /no/such/data does not exist (yet)"),
        "{err}"
    );
    assert!(out.contains("1 warning(s))"), "{out}");
    // The source a syntax check reads and a heartbeat's directory, likewise.
    let (code, out, err) = check(
        "[[probe]]\nname = \"s\"\npython_syntax = { path = \"/no/such/think.py\" }\n\
         [[probe]]\nname = \"h\"\nheartbeat = { path = \"/no/such/dir/hb.json\" }\n\
         [[probe]]\nname = \"h2\"\nheartbeat = { path = \"hb.json\" }\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(
            "[[probe]] \"s\" (python_syntax): `path` /no/such/think.py does not exist (yet)"
        ),
        "{err}"
    );
    assert!(
        err.contains("[[probe]] \"h\" (heartbeat): `path` /no/such/dir does not exist (yet)"),
        "{err}"
    );
    assert!(
        !err.contains("\"h2\""),
        "a file in the working directory: {err}"
    );
    assert!(out.contains("2 warning(s))"), "{out}");
    for ok in [
        "expect_status = \"2xx\"\n",
        "expect_status = 200\n",
        "expect_status = [\"2xx\", 301]\n",
    ] {
        let (code, _, err) = check(&http(ok));
        assert_eq!(code, Some(0), "{ok}: {err}");
    }
    let (code, _, err) = check(&http("expect_status = true\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("expected a status code or range, or a list of them: 200, \"2xx\", \"200-299\" or [\"2xx\", 301]"),
        "{err}"
    );
}

mod incidents {
    use super::*;
    use nexus_testkit::gitea::{Fake, REPO, TOKEN};

    fn with_gitea(c: &mut Command, fake: &Fake, token: bool) {
        c.env("GITEA_URL", fake.url())
            .env("NEXUS_REPO", REPO)
            .args(["--assignee", "alice"]);
        if token {
            c.env("GITEA_TOKEN", TOKEN);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_hung_mind_opens_one_issue_and_recovery_closes_it() {
        let fake = Fake::start().await;
        let gw = tcp::open().await;
        let agent = Sleeper::child("nexus_think");
        let s = Sandbox::new();
        s.heartbeat(600.0); // process alive, heartbeat ten minutes old
        let run = |s: &Sandbox| {
            let mut c = s.cmd(gw.addr.port(), &agent.name);
            with_gitea(&mut c, &fake, true);
            c.run().unwrap()
        };
        let o = run(&s);
        assert_eq!(o.status.code(), Some(1));
        {
            let st = fake.st();
            let open = st.open_issues();
            assert_eq!(open.len(), 1, "{:?}", st.log);
            assert_eq!(open[0].title, "[watchdog] Nexus unhealthy: heartbeat");
            assert!(
                open[0].body.contains("| heartbeat | ❌ CRITICAL |"),
                "{}",
                open[0].body
            );
            assert_eq!(open[0].assignees, ["alice"]);
        }
        // A second failing run does not open another issue.
        let o = run(&s);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(fake.st().issues.len(), 1);
        assert_eq!(fake.st().count("POST /api/v1/repos/ops/alerts/issues "), 0);
        // A fresh heartbeat closes it with a recovery note.
        s.heartbeat(1.0);
        let o = run(&s);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let st = fake.st();
        assert!(st.open_issues().is_empty(), "{:?}", st.log);
        let (number, note) = st.comments.last().expect("a recovery comment");
        assert_eq!(*number, st.issues[0].number);
        assert!(note.to_lowercase().contains("recover"), "{note}");
        drop(st);
        fake.assert_contract();
    }

    /// Issue 16, items 4 and 13: Gitea, Telegram and the probed service
    /// all echo the request (the Gitea token, the `/bot<token>/` path, the
    /// probe's `Authorization` header; as is, URL- and base64-encoded)
    /// behind escape sequences and a forged log line. Nothing of it reaches
    /// the watchdog's output raw: no token in any form, no control
    /// character, no forged line; the servers' words are still quoted.
    #[tokio::test(flavor = "multi_thread")]
    async fn servers_that_echo_the_request_get_no_token_or_forged_line_into_the_output() {
        use nexus_testkit::canary::{PING_TOKEN, TELEGRAM_TOKEN};
        use nexus_testkit::reflect::{assert_clean, echo, telegram_error};
        let fake = Fake::start().await;
        fake.st().reflect = Some(401);
        let telegram = HttpServer::start_with_head(|_, _, head| {
            HttpResponse::json(401, &telegram_error(401, head))
        })
        .await;
        let service = HttpServer::start_with_head(|_, _, head| {
            let body = serde_json::json!({"status": echo(head)});
            HttpResponse::json(200, &body.to_string())
        })
        .await;
        let s = Sandbox::new();
        let cfg = config(
            &s,
            &format!(
                r#"
[watchdog]
subject = "nexus"
[incident]
url = "{gitea}"
repo = "{REPO}"
assignees = []
[telegram]
chat_id = -100123
api_url = "{tg}"
[[probe]]
name = "service"
[probe.http]
url = "{svc}"
json = [{{ pointer = "/status", equals = "ok" }}]
headers = {{ Authorization = "Bearer {PING_TOKEN}" }}
"#,
                gitea = fake.url(),
                tg = telegram.url(""),
                svc = service.url("/health"),
            ),
        );
        for extra in [&[][..], &["--json"][..]] {
            let o = Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"))
                .arg("--config")
                .arg(&cfg)
                .arg("--state-dir")
                .arg(s.root.join("state"))
                .arg("--heartbeat-dir")
                .arg(s.root.join("cron"))
                .args(extra)
                .env("GITEA_TOKEN", TOKEN)
                .env("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN)
                .env_remove("GITEA_URL")
                .env_remove("NEXUS_REPO")
                .env_remove("TELEGRAM_CHAT_ID")
                .run()
                .unwrap();
            assert_eq!(o.status.code(), Some(1));
            let out = String::from_utf8_lossy(&o.stdout);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_clean("the watchdog's stdout", &out);
            assert_clean("the watchdog's stderr", &err);
            assert!(
                err.contains("incident nexus: gitea") && err.contains("HTTP 401: request refused"),
                "{err}"
            );
            assert!(
                err.contains("telegram: telegram sendMessage: HTTP 401: request refused"),
                "{err}"
            );
            assert!(out.contains("request refused"), "{out}");
        }
        assert!(fake.st().log.len() >= 2, "{:?}", fake.st().log);
        fake.st().reflect = None;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dry_run_with_everything_failing_makes_no_http_request() {
        let fake = Fake::start().await;
        let s = Sandbox::new();
        let mut c = s.cmd(tcp::closed().port(), "no-such-process-xyz");
        with_gitea(&mut c, &fake, true);
        let o = c.arg("--dry-run").run().unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(fake.st().log.is_empty(), "{:?}", fake.st().log);
        assert!(!s.root.join("state").exists(), "dry-run writes no state");
        assert!(!s.root.join("cron").exists(), "dry-run writes no heartbeat");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_token_reports_warns_once_and_makes_no_http_request() {
        let fake = Fake::start().await;
        let s = Sandbox::new();
        let mut c = s.cmd(tcp::closed().port(), "no-such-process-xyz");
        with_gitea(&mut c, &fake, false);
        let o = c.run().unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stdout).contains("ws_gateway: critical"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("no Gitea token").count(), 1, "{err}");
        assert!(fake.st().log.is_empty(), "{:?}", fake.st().log);
    }
}

/// A one-shot run by hand is not a scheduled job: it leaves no own
/// heartbeat for cron-heartbeat-check to miss later; `--self-heartbeat` or
/// `NEXUS_SELF_HEARTBEAT=1` (the shipped timer's unit) asks for one, and
/// `--no-self-heartbeat` still wins.
#[test]
fn only_a_scheduled_one_shot_writes_the_own_heartbeat() {
    let s = Sandbox::new();
    let closed = tcp::closed();
    let run = |c: &mut Command| c.run().unwrap().status.code();
    assert_eq!(
        run(&mut s.cmd(closed.port(), "no-such-process-xyz")),
        Some(1)
    );
    assert!(!s.own_beat().exists(), "a hand run wrote its own heartbeat");
    let mut c = s.cmd(closed.port(), "no-such-process-xyz");
    c.env("NEXUS_SELF_HEARTBEAT", "1")
        .arg("--no-self-heartbeat");
    assert_eq!(run(&mut c), Some(1));
    assert!(!s.own_beat().exists(), "--no-self-heartbeat wins");
    let mut c = s.cmd(closed.port(), "no-such-process-xyz");
    c.arg("--self-heartbeat");
    assert_eq!(run(&mut c), Some(1));
    assert!(s.own_beat().is_file(), "--self-heartbeat wrote nothing");
    std::fs::remove_file(s.own_beat()).unwrap();
    let mut c = s.cmd(closed.port(), "no-such-process-xyz");
    c.env("NEXUS_SELF_HEARTBEAT", "1");
    assert_eq!(run(&mut c), Some(1));
    assert!(
        s.own_beat().is_file(),
        "NEXUS_SELF_HEARTBEAT=1 wrote nothing"
    );
}

#[test]
fn a_missing_config_names_its_cause_once() {
    let s = Sandbox::new();
    let o = run_config(&s, &s.root.join("missing.toml"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("missing.toml"), "{e}");
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
}

#[test]
fn a_negative_duration_is_named_as_such() {
    for flag in ["--stale-threshold", "--timeout", "--interval"] {
        let o = Command::new(env!("CARGO_BIN_EXE_nexus-watchdog"))
            .args([flag, "-5s"])
            .run()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("durations cannot be negative"), "{flag}: {e}");
    }
}
