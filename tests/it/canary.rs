//! Secrets never leak, by construction: every e2e test, and every binary's
//! own CLI test (`bins/*/tests`), captures a binary's output through
//! `nexus_testkit::canary::Run`, which checks it for the canary tokens, and
//! this test fails when one captures output any other way. The fake
//! Gitea checks every request it receives (on drop) the same way.

use std::process::Command;

use nexus_e2e::{PING_TOKEN, Run, bin};

#[test]
fn no_test_captures_output_around_the_canary_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // Every file under it/, its module directories (attack/) too.
    let mut files = Vec::new();
    let mut dirs = vec![root.join("it")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for bin in std::fs::read_dir(root.join("../bins")).unwrap() {
        let tests = bin.unwrap().path().join("tests");
        if let Ok(rd) = std::fs::read_dir(&tests) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    assert!(files.len() > 10, "{files:?}");
    // Built from pieces so this file does not match itself.
    let banned = [concat!(".out", "put()"), concat!(".wait_with", "_output()")];
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if banned.iter().any(|b| line.contains(b)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "capture output with nexus_testkit::canary::Run (`.run()`), which checks for leaked tokens:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_leaked_token_in_captured_output_fails_the_test() {
    let leak = std::panic::catch_unwind(|| {
        Command::new("echo")
            .arg(format!("token={PING_TOKEN}"))
            .run()
            .unwrap()
    });
    assert!(leak.is_err(), "a token on stdout went unnoticed");
    let clean = Command::new("echo").arg("token=***").run().unwrap();
    assert!(clean.status.success());
}

#[test]
fn the_heartbeat_cli_keeps_its_push_token_out_of_its_errors() {
    // A push to a closed port fails: the error names the URL, not the token.
    let port = nexus_testkit::free_port();
    let o = Command::new(bin("nexus-heartbeat"))
        .args(["run", "--job", "canary_job", "--interval", "1h"])
        .arg("--url")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--", "true"])
        .env("NEXUS_PING_TOKEN", PING_TOKEN)
        .run()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn a_loose_push_token_file_is_refused_by_name_and_the_job_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("push.token");
    std::fs::write(&file, format!("{PING_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = nexus_testkit::free_port();
    let o = Command::new(bin("nexus-heartbeat"))
        .args(["touch", "--job", "canary_job", "--interval", "1h"])
        .arg("--url")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--token-file")
        .arg(&file)
        .env_remove("NEXUS_PING_TOKEN")
        .run()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("push.token") && err.contains("chmod 600"),
        "{err}"
    );
}
