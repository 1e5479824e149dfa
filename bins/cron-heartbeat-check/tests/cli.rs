//! `cron-heartbeat-check` through the real binary, on real files.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use nexus_testkit::canary::Run;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// A heartbeat tree: `<root>/heartbeats`, `<root>/fallback`, `<root>/alerts`.
struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("heartbeats")).unwrap();
        Tree { _tmp: tmp, root }
    }
    fn hb(&self) -> PathBuf {
        self.root.join("heartbeats")
    }
    fn write(&self, dir: &str, name: &str, body: &str) -> PathBuf {
        let d = self.root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cron-heartbeat-check"));
        c.arg("--dir")
            .arg(self.hb())
            .env_remove("BEZALEL_HEARTBEAT_DIR")
            .env_remove("NEXUS_SELF_HEARTBEAT");
        c
    }
    fn registry(&self, text: &str) -> PathBuf {
        self.write(".", "cron-jobs.toml", text)
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn record(job: &str, age: f64, interval: u64) -> String {
    format!(
        r#"{{"job":"{job}","timestamp":{},"interval_seconds":{interval},"status":"ok"}}"#,
        now() - age
    )
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn status_of(v: &Value, job: &str) -> String {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == job)
        .unwrap_or_else(|| panic!("{job} not in {v}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn twice_the_interval_is_the_boundary() {
    let t = Tree::new();
    t.write("heartbeats", "ok_job.last", &record("ok_job", 590.0, 300));
    let o = t
        .cmd()
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(status_of(&json(&o), "ok_job"), "OK");

    t.write(
        "heartbeats",
        "stale_job.last",
        &record("stale_job", 610.0, 300),
    );
    let o = t
        .cmd()
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(status_of(&v, "stale_job"), "STALE");
    assert_eq!(v["stale"], serde_json::json!(["stale_job"]));
    assert!(
        stderr(&o).contains(
            "P1 cron job stale_job stale: last success 10m 10s ago, interval 5m 0s (ratio 2.03)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn markers_appear_and_recovery_removes_them() {
    let t = Tree::new();
    t.write(
        "heartbeats",
        "db_backup.last",
        &record("db_backup", 1000.0, 300),
    );
    let o = t.cmd().run().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let marker = t.root.join("alerts/db_backup.alert");
    let alert: Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    assert_eq!(
        (alert["job"].as_str(), alert["status"].as_str()),
        (Some("db_backup"), Some("STALE"))
    );
    assert!(alert["detected_at"].as_str().is_some());

    // The job runs again: the marker goes, and the history says so.
    t.write(
        "heartbeats",
        "db_backup.last",
        &record("db_backup", 1.0, 300),
    );
    let o = t.cmd().run().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    assert!(!marker.exists(), "marker removed on recovery");
    let history = std::fs::read_to_string(t.root.join("checker-history.jsonl")).unwrap();
    assert!(history.contains(r#""from":"STALE","to":"OK""#), "{history}");
}

/// `[history]`: each run records every job; the shared file keeps the
/// changes only (STALE, then OK), named `<job>@<host>` in the host's group.
#[test]
fn history_keeps_each_jobs_changes() {
    let t = Tree::new();
    let db = t.root.join("shared/history.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let reg = t.registry(&format!(
        "[history]\npath = \"{}\"\nretention = \"7d\"\n",
        db.display()
    ));
    t.write(
        "heartbeats",
        "db_backup.last",
        &record("db_backup", 1000.0, 300),
    );
    for _ in 0..2 {
        let o = t.cmd().arg("--registry").arg(&reg).run().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    }
    t.write(
        "heartbeats",
        "db_backup.last",
        &record("db_backup", 1.0, 300),
    );
    let o = t.cmd().arg("--registry").arg(&reg).run().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = nexus_history::Reader::open(&db).unwrap();
    let subjects = r.subjects().unwrap();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    let s = &subjects[0];
    let host = s.group.clone();
    assert_eq!(s.subject, format!("db_backup@{host}"));
    assert_eq!(s.state, "OK");
    let ev = r
        .last_events(nexus_history::Kind::Cron, &s.subject, 10)
        .unwrap();
    let changes: Vec<(&str, &str)> = ev
        .iter()
        .map(|e| (e.old_state.as_str(), e.new_state.as_str()))
        .collect();
    assert_eq!(changes, [("STALE", "OK"), ("", "STALE")], "{ev:?}");
    assert!(
        ev[1].reason.starts_with("silent for more than 2x"),
        "{ev:?}"
    );
    // A dry run writes nothing.
    t.write(
        "heartbeats",
        "db_backup.last",
        &record("db_backup", 1000.0, 300),
    );
    let o = t
        .cmd()
        .arg("--registry")
        .arg(&reg)
        .arg("--dry-run")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(r.subjects().unwrap()[0].state, "OK");
}

/// A history file that cannot be opened is said, naming it; the check
/// still runs and exits by the jobs.
#[test]
fn an_unusable_history_file_is_said_and_the_check_goes_on() {
    let t = Tree::new();
    let bad = t.write(".", "not-a-db.sqlite", &"x".repeat(4096));
    let reg = t.registry(&format!("[history]\npath = \"{}\"\n", bad.display()));
    t.write("heartbeats", "ok_job.last", &record("ok_job", 1.0, 300));
    let o = t.cmd().arg("--registry").arg(&reg).run().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("history off") && stderr(&o).contains("not-a-db.sqlite"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn empty_directory_with_registry_is_missing_not_healthy() {
    let t = Tree::new();
    let reg = t.registry(
        "[jobs.nightly_watch]\ninterval = \"1d\"\n[jobs.db_backup]\ninterval_seconds = 86400\n",
    );
    let o = t
        .cmd()
        .arg("--registry")
        .arg(&reg)
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(status_of(&v, "nightly_watch"), "MISSING");
    assert_eq!(status_of(&v, "db_backup"), "MISSING");
    assert!(
        stderr(&o).contains("P1 cron job nightly_watch missing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn nothing_monitored_exits_1() {
    let t = Tree::new();
    let o = t.cmd().arg("--no-self-heartbeat").run().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing monitored"), "{}", stderr(&o));
}

#[test]
fn legacy_files_corrupt_empty_and_bare_number() {
    let t = Tree::new();
    t.write("heartbeats", "corrupt.last", "{\"timestamp\": ");
    t.write("heartbeats", "touched.last", ""); // mtime = now
    t.write("heartbeats", "bare.last", &format!("{}\n", now() - 60.0));
    let o = t
        .cmd()
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    let v = json(&o);
    assert_eq!(status_of(&v, "corrupt"), "ERROR");
    assert_eq!(status_of(&v, "touched"), "OK");
    assert_eq!(status_of(&v, "bare"), "OK");
    let corrupt = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "corrupt")
        .unwrap();
    assert!(
        corrupt["reason"].as_str().unwrap().contains("corrupt.last"),
        "{corrupt}"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn primary_and_fallback_newest_wins() {
    let t = Tree::new();
    t.write("heartbeats", "j.last", &record("j", 5000.0, 300));
    let fresh = t.write("fallback", "j.last", &record("j", 10.0, 300));
    let o = t
        .cmd()
        .arg("--dir")
        .arg(t.root.join("fallback"))
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(status_of(&v, "j"), "OK");
    assert_eq!(v["jobs"][0]["path"], fresh.to_str().unwrap());
}

#[test]
fn a_scheduled_job_that_missed_its_0300_run() {
    let t = Tree::new();
    let reg = t
        .registry("[jobs.nightly_watch]\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n");
    // Last success 2027-01-14 03:10 Berlin (02:10Z); checked 2027-01-15 08:00Z.
    t.write(
        "heartbeats",
        "nightly_watch.last",
        r#"{"job":"nightly_watch","timestamp":1799892600,"status":"ok"}"#,
    );
    let run = |at: &str| {
        t.cmd()
            .arg("--registry")
            .arg(&reg)
            .args(["--json", "--dry-run", "--at", at])
            .run()
            .unwrap()
    };
    let o = run("2027-01-15T08:00:00Z");
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(status_of(&v, "nightly_watch"), "STALE");
    assert!(
        v["jobs"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("missed its scheduled run at 2027-01-15T02:00:00Z"),
        "{v}"
    );
    // Before 03:00 Berlin that day, all was well.
    let o = run("2027-01-15T01:30:00Z");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_job_whose_last_run_failed() {
    let t = Tree::new();
    t.write(
        "heartbeats",
        "backup.last",
        &format!(r#"{{"job":"backup","timestamp":{},"interval_seconds":3600,"status":"failed","exit_code":3,"finished_at":{}}}"#, now() - 100.0, now() - 5.0),
    );
    let o = t
        .cmd()
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(status_of(&v, "backup"), "FAILED");
    assert_eq!(v["jobs"][0]["exit_code"], 3);
}

#[test]
fn dry_run_changes_nothing_and_a_real_run_beats_itself() {
    let t = Tree::new();
    t.write("heartbeats", "x.last", &record("x", 9000.0, 60));
    let o = t.cmd().arg("--dry-run").run().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("dry-run: would mark x"),
        "{}",
        stderr(&o)
    );
    assert!(!t.root.join("alerts").exists());
    assert!(!t.hb().join("cron-heartbeat-check.last").exists());
    assert!(!t.root.join("checker-state.json").exists());

    // By hand: no own heartbeat; as its timer runs it: one.
    let o = t.cmd().env_remove("NEXUS_SELF_HEARTBEAT").run().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(t.root.join("alerts/x.alert").exists());
    assert!(!t.hb().join("cron-heartbeat-check.last").exists());
    let o = t.cmd().env("NEXUS_SELF_HEARTBEAT", "1").run().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let own: Value =
        serde_json::from_slice(&std::fs::read(t.hb().join("cron-heartbeat-check.last")).unwrap())
            .unwrap();
    assert_eq!(own["interval_seconds"], 900);
}

#[test]
fn report_panel_markdown_html_lines_and_output() {
    let t = Tree::new();
    t.write("heartbeats", "ok_job.last", &record("ok_job", 30.0, 300));
    t.write(
        "heartbeats",
        "late_job.last",
        &record("late_job", 7200.0, 300),
    );
    let o = t.cmd().args(["report", "--panel"]).run().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let panel = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        panel.starts_with("## Heartbeat Panel\n\n| job | status | age | interval | ratio |"),
        "{panel}"
    );
    let late = panel.find("late_job").unwrap();
    assert!(
        late < panel.find("ok_job").unwrap(),
        "failing first: {panel}"
    );

    let o = t.cmd().arg("report").run().unwrap();
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("**⚠ 1 blocker(s)**")
            && md.contains("cron job `late_job` has not succeeded for 2h 0m"),
        "{md}"
    );

    let out = t.root.join("night-watch.html");
    let o = t
        .cmd()
        .args(["report", "--html", "--output"])
        .arg(&out)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("<tr class=\"stale\"><td>late_job</td>")
    );

    let o = t.cmd().args(["report", "--lines"]).run().unwrap();
    let lines = String::from_utf8_lossy(&o.stdout);
    assert!(
        lines.contains("- late_job STALE") && lines.contains("+ ok_job OK"),
        "{lines}"
    );
}

#[test]
fn bad_registry_exits_2_naming_file_and_field() {
    let t = Tree::new();
    let reg = t.registry("[jobs.x]\nschedule = \"every day\"\n");
    let o = t.cmd().arg("--registry").arg(&reg).run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("cron-jobs.toml") && e.contains("job x") && e.contains("`schedule`"),
        "{e}"
    );
    let o = t
        .cmd()
        .arg("--registry")
        .arg(t.root.join("nope.toml"))
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("nope.toml"), "{e}");
    assert_eq!(
        e.matches("No such file or directory").count(),
        1,
        "cause twice: {e}"
    );
}

/// A `[webhook]` URL that is none and an ntfy topic that cannot be stop
/// the run too (issue 22), naming the table and the key; `--dry-run` with
/// a good `[webhook]` says it would tell it and sends nothing.
#[test]
fn the_channel_tables_are_checked_at_start_and_dry_run_sends_nothing() {
    let t = Tree::new();
    let reg = t.registry("[webhook]\nurl = \"not a url\"\n[ntfy]\ntopic = \"a/b\"\n");
    let o = t
        .cmd()
        .arg("--registry")
        .arg(&reg)
        .env_remove("NEXUS_WEBHOOK_URL")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("[webhook]") && e.contains("not an absolute URL"),
        "{e}"
    );
    assert!(e.contains("[ntfy]") && e.contains("topic"), "{e}");
    // Nothing listens there: a dry run must not try.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let reg = t.registry(&format!(
        "[jobs.db_backup]\ninterval = \"1h\"\n[webhook]\nurl = \"{url}\"\n"
    ));
    let o = t
        .cmd()
        .arg("--registry")
        .arg(&reg)
        .arg("--dry-run")
        .env_remove("NEXUS_WEBHOOK_URL")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("dry-run: would tell webhook about 1 problem(s)"),
        "{e}"
    );
    assert!(!e.contains("unreachable"), "{e}");
}

/// An `[incident]` URL that is none stops the run in the user's terms,
/// not in the HTTP client's at the first alert (issue 21).
#[test]
fn a_forge_url_that_is_none_exits_2_in_the_users_terms() {
    let t = Tree::new();
    let reg = t.registry("[incident]\nurl = \"not a url\"\nrepo = \"o/r\"\n");
    let o = t
        .cmd()
        .arg("--registry")
        .arg(&reg)
        .env_remove("GITEA_URL")
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("[incident] `url` (or GITEA_URL): \"not a url\" is not an absolute URL"),
        "{e}"
    );
    assert!(!e.contains("builder error"), "{e}");
}

#[test]
fn a_negative_duration_is_named_as_such() {
    let t = Tree::new();
    for flag in ["--default-interval", "--grace", "--self-interval"] {
        let o = t.cmd().args([flag, "-5s"]).run().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let e = stderr(&o);
        assert!(e.contains("durations cannot be negative"), "{flag}: {e}");
    }
}

mod incidents {
    use super::*;
    use nexus_testkit::gitea::{Fake, REPO, TOKEN};

    fn cmd(t: &Tree, fake: &Fake) -> Command {
        let mut c = t.cmd();
        c.env("GITEA_URL", fake.url())
            .env("NEXUS_REPO", REPO)
            .env("GITEA_TOKEN", TOKEN)
            .env_remove("TELEGRAM_CHAT_ID")
            .arg("--registry")
            // No floor: a change of the silent set is commented at once
            // (by default not within 10 minutes of the last comment).
            .arg(t.registry("[incident]\nassignees = [\"alice\"]\ncomment_change_floor = \"0s\"\n"))
            .arg("--no-self-heartbeat");
        c
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_issue_for_the_silent_set_commented_as_it_changes_closed_on_recovery() {
        let fake = Fake::start().await;
        let t = Tree::new();
        t.write(
            "heartbeats",
            "db_backup.last",
            &record("db_backup", 1000.0, 300),
        );
        t.write(
            "heartbeats",
            "runner_health.last",
            &record("runner_health", 10.0, 300),
        );
        let o = cmd(&t, &fake).run().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        {
            let st = fake.st();
            let open = st.open_issues();
            assert_eq!(open.len(), 1, "{:?}", st.log);
            assert_eq!(
                open[0].title,
                "[heartbeat-checker] 1 cron job(s) silent: db_backup"
            );
            assert!(
                open[0].body.contains("## Heartbeat Panel"),
                "{}",
                open[0].body
            );
        }
        // The set changes: a comment, not a second issue.
        t.write(
            "heartbeats",
            "runner_health.last",
            &record("runner_health", 1000.0, 300),
        );
        let o = cmd(&t, &fake).run().unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(fake.st().issues.len(), 1);
        assert_eq!(fake.st().comments.len(), 1, "{:?}", fake.st().log);
        assert!(fake.st().comments[0].1.contains("runner_health"));
        // Everything recovers: the marker goes and the incident closes.
        t.write(
            "heartbeats",
            "db_backup.last",
            &record("db_backup", 1.0, 300),
        );
        t.write(
            "heartbeats",
            "runner_health.last",
            &record("runner_health", 1.0, 300),
        );
        let o = cmd(&t, &fake).run().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!t.root.join("alerts/db_backup.alert").exists());
        assert!(fake.st().open_issues().is_empty(), "{:?}", fake.st().log);
        fake.assert_contract();

        // Dry-run: no HTTP at all.
        let before = fake.st().log.len();
        t.write(
            "heartbeats",
            "db_backup.last",
            &record("db_backup", 1000.0, 300),
        );
        let o = cmd(&t, &fake).arg("--dry-run").run().unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(fake.st().log.len(), before, "{:?}", fake.st().log);
    }
}

/// `.last` files whose names cannot be a job's (not UTF-8, a newline, an
/// escape sequence) are reported with the name escaped, in the table, the
/// JSON and the Night Watch report, and make the check exit 1.
#[test]
fn files_it_cannot_take_for_a_job_are_reported_escaped_not_dropped() {
    use std::os::unix::ffi::OsStrExt;
    let t = Tree::new();
    t.write("heartbeats", "good.last", &record("good", 30.0, 300));
    for name in [
        &b"bad\xff.last"[..],
        b"two\nlines.last",
        b"esc\x1b[31m.last",
    ] {
        let p = t.hb().join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(p, record("x", 30.0, 300)).unwrap();
    }
    let escaped = ["bad\\xff.last", "two\\nlines.last", "esc\\u{1b}[31m.last"];
    let o = t.cmd().arg("--no-self-heartbeat").run().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for e in escaped {
        let row = format!("IGNORED  {}/{e}: ", t.hb().display());
        assert!(table.contains(&row), "{row:?} not in\n{table}");
        assert!(stderr(&o).contains(e), "{}", stderr(&o));
    }
    assert!(
        table.contains("all 1 cron job(s) healthy; 3 heartbeat file(s) ignored"),
        "{table}"
    );
    assert!(!table.contains('\x1b') && !stderr(&o).contains('\x1b'));

    let o = t
        .cmd()
        .args(["--json", "--no-self-heartbeat"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let ignored = v["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), 3, "{v}");
    for e in escaped {
        let i = ignored
            .iter()
            .find(|i| i["path"].as_str().unwrap().ends_with(e))
            .unwrap_or_else(|| panic!("{e} not in {v}"));
        assert!(i["reason"].as_str().unwrap().contains("not"), "{i}");
    }
    assert_eq!(status_of(&v, "good"), "OK");

    let o = t.cmd().arg("report").run().unwrap();
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("3 heartbeat file(s) ignored"), "{md}");
    for e in escaped {
        assert!(md.contains(e), "{e} not in\n{md}");
    }
}
