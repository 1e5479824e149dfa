//! The seed agent's defaults are one copy (`nexus_probe::seed`): the real
//! `nexus-watchdog` (default checks, no `--heartbeat-path`) and the real
//! `resurrection-pool` (a `[[gateway]]` with no `heartbeat_path`) read the
//! same heartbeat file: `$NEXUS_HEARTBEAT_PATH` when it is set, else
//! `~/.nexus/heartbeat.json`. Two files with different ages tell which one
//! each of them read.

use std::path::Path;
use std::process::Command;

use nexus_e2e::{Run, bin};
use nexus_testkit::report::{check, json};
use nexus_testkit::tcp;

fn beat(path: &Path, age: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let at = nexus_stdx::now_epoch() - age;
    std::fs::write(path, format!(r#"{{"timestamp":{at},"pid":1}}"#)).unwrap();
}

/// The age the watchdog's `heartbeat` check saw, and the file it names.
fn watchdog(root: &Path, env: Option<&Path>) -> (f64, String) {
    let p = |x: &Path| x.display().to_string();
    let mut c = Command::new(bin("nexus-watchdog"));
    c.args([
        "--json",
        "--dry-run",
        "--no-self-heartbeat",
        "--no-gateway-health",
    ])
    .args(["--ws-host", "127.0.0.1"])
    .args(["--ws-port", &tcp::closed().port().to_string()])
    .args(["--process-pattern", "nexus_e2e_no_such_agent"])
    .args(["--think-script", &p(&root.join("think.py"))])
    .args(["--state-dir", &p(&root.join("wd-state"))])
    .env("HOME", root.join("home"))
    .env_remove("NEXUS_WATCHDOG_CONFIG")
    .env_remove("GITEA_TOKEN");
    match env {
        Some(path) => c.env("NEXUS_HEARTBEAT_PATH", path),
        None => c.env_remove("NEXUS_HEARTBEAT_PATH"),
    };
    let o = c.run().unwrap();
    let v = json(&o);
    let hb = check(&v, "heartbeat");
    (
        hb["details"]["age_seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("no age in {hb:#}")),
        hb["details"]["path"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The age the pool saw for its one gateway agent.
fn pool(root: &Path, env: Option<&Path>) -> f64 {
    std::fs::create_dir_all(root.join("cells")).unwrap();
    let cfg = root.join("pool.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pool]\nheartbeat_dir = \"{hb}\"\nprobe_timeout = \"2s\"\n[cells]\nroot = \"{cells}\"\n\
             [[gateway]]\nname = \"timmy\"\nhost = \"127.0.0.1\"\nport = {port}\nhealth = false\n",
            hb = root.join("hb").display(),
            cells = root.join("cells").display(),
            port = tcp::closed().port(),
        ),
    )
    .unwrap();
    let mut c = Command::new(bin("resurrection-pool"));
    c.arg("--config")
        .arg(&cfg)
        .arg("--state-file")
        .arg(root.join("pool-state.json"))
        .args(["--once", "--json", "--dry-run"])
        .env("HOME", root.join("home"))
        .env_remove("RESURRECTION_CONFIG")
        .env_remove("GITEA_TOKEN")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env("NEXUS_LOG", "error");
    match env {
        Some(path) => c.env("NEXUS_HEARTBEAT_PATH", path),
        None => c.env_remove("NEXUS_HEARTBEAT_PATH"),
    };
    let o = c.run().unwrap();
    let v = json(&o);
    v[0]["heartbeat_age"]
        .as_f64()
        .unwrap_or_else(|| panic!("no heartbeat age in {v:#}"))
}

#[test]
fn the_watchdog_and_the_pool_watch_the_same_heartbeat_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let home_file = root.join("home/.nexus/heartbeat.json");
    let env_file = root.join("agent/hb.json");
    beat(&home_file, 10.0);
    beat(&env_file, 100.0);
    let near = |a: f64, b: f64| (a - b).abs() < 5.0;

    // NEXUS_HEARTBEAT_PATH set: both read it, not the one under HOME.
    let (wd, path) = watchdog(root, Some(&env_file));
    let pl = pool(root, Some(&env_file));
    assert_eq!(path, env_file.display().to_string());
    assert!(near(wd, 100.0), "the watchdog read another file: {wd}s");
    assert!(near(pl, 100.0), "the pool read another file: {pl}s");

    // Unset: both read ~/.nexus/heartbeat.json.
    let (wd, path) = watchdog(root, None);
    let pl = pool(root, None);
    assert_eq!(path, home_file.display().to_string());
    assert!(near(wd, 10.0), "the watchdog read another file: {wd}s");
    assert!(near(pl, 10.0), "the pool read another file: {pl}s");
}
