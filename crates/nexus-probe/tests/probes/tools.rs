//! Local tools: Python syntax, Nagios plugins, nvidia-smi, disk, budget files, config.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nexus_probe::{
    BudgetSpec, CommandSpec, DiskSpec, GpuSpec, ProbeFile, ProbeKind, PythonSyntaxSpec, Runner,
    Status,
};

use super::{expect, run, run_with};

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir);
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path().display().to_string());
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[tokio::test]
async fn python_syntax_ok_error_binary_missing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("nexus_think.py");
    std::fs::write(&good, "import os\n\ndef main():\n    return os.getpid()\n").unwrap();
    let bad = dir.path().join("broken.py");
    std::fs::write(&bad, "def main(:\n    pass\n").unwrap();
    let binary = dir.path().join("blob.py");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0, 0, 0xff, 0xfe, 0, 1]).unwrap();
    // A hostile file name is data, never code.
    let hostile = dir
        .path()
        .join("x'); import os; os.system('touch PWNED'); ('.py");
    std::fs::write(&hostile, "x = 1\n").unwrap();
    let before = listing(dir.path());

    let v = run(ProbeKind::PythonSyntax(PythonSyntaxSpec::new(&good))).await;
    expect(&v, Status::Ok, "Syntax OK");
    let v = run(ProbeKind::PythonSyntax(PythonSyntaxSpec::new(&bad))).await;
    expect(
        &v,
        Status::Critical,
        &format!("SyntaxError in {} line 1, col 10", bad.display()),
    );
    assert_eq!(v.details["line"], 1);
    let v = run(ProbeKind::PythonSyntax(PythonSyntaxSpec::new(&binary))).await;
    assert_eq!(v.status, Status::Critical, "{v}");
    assert!(v.summary.contains("null bytes"), "{v}");
    let v = run(ProbeKind::PythonSyntax(PythonSyntaxSpec::new(&hostile))).await;
    expect(&v, Status::Ok, "Syntax OK");
    let v = run(ProbeKind::PythonSyntax(PythonSyntaxSpec::new(
        dir.path().join("gone.py"),
    )))
    .await;
    expect(&v, Status::Critical, "Source not found");

    // Nothing was written: no __pycache__, no PWNED.
    assert_eq!(listing(dir.path()), before);

    let mut spec = PythonSyntaxSpec::new(&good);
    spec.python = "/nonexistent/python3.99".into();
    let v = run(ProbeKind::PythonSyntax(spec)).await;
    expect(
        &v,
        Status::Unknown,
        "Python interpreter \"/nonexistent/python3.99\" not found",
    );
}

#[tokio::test]
async fn python_syntax_times_out_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slowpython");
    std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("a.py");
    std::fs::write(&file, "x = 1\n").unwrap();
    let mut spec = PythonSyntaxSpec::new(&file);
    spec.python = slow.display().to_string();
    let start = Instant::now();
    let v = run_with(ProbeKind::PythonSyntax(spec), Duration::from_millis(300)).await;
    expect(&v, Status::Unknown, "timed out after 300ms");
    assert!(start.elapsed() < Duration::from_secs(2));
}

fn sh(script: &str) -> ProbeKind {
    ProbeKind::Command(CommandSpec::new(["sh", "-c", script]))
}

#[tokio::test]
async fn nagios_plugins() {
    let v = run(sh(
        "echo 'LOAD OK - load 0.1|load1=0.1;5;9;0 users=3'; exit 0",
    ))
    .await;
    expect(&v, Status::Ok, "LOAD OK - load 0.1");
    assert_eq!(v.details["perfdata"][0]["label"], "load1");
    assert_eq!(v.details["perfdata"][1]["value"], 3.0);
    expect(
        &run(sh("echo 'DISK WARNING'; exit 1")).await,
        Status::Warning,
        "DISK WARNING",
    );
    expect(
        &run(sh("echo 'DOWN'; exit 2")).await,
        Status::Critical,
        "DOWN",
    );
    expect(
        &run(sh("echo 'confused'; exit 3")).await,
        Status::Unknown,
        "confused",
    );
    expect(
        &run(sh("exit 7")).await,
        Status::Unknown,
        "exited with code 7",
    );
    expect(
        &run(sh("kill -9 $$")).await,
        Status::Unknown,
        "killed by signal 9",
    );
    let v = run(ProbeKind::Command(CommandSpec::new([
        "/nonexistent/check_x",
    ])))
    .await;
    expect(&v, Status::Unknown, "cannot run /nonexistent/check_x");
    let start = Instant::now();
    let v = run_with(sh("sleep 30"), Duration::from_millis(300)).await;
    expect(&v, Status::Unknown, "timed out after 300ms");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn gpu_without_and_with_nvidia_smi() {
    let mut spec = GpuSpec {
        nvidia_smi: "/nonexistent/nvidia-smi".into(),
        ..GpuSpec::default()
    };
    let v = run(ProbeKind::Gpu(spec.clone())).await;
    expect(&v, Status::Unknown, "not found");

    // A stand-in nvidia-smi that prints what the real one prints for this query.
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho '0, NVIDIA A100, 41, 3, 1000, 40960'\necho '1, NVIDIA A100, 88, 99, 40000, 40960'\n").unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    spec.nvidia_smi = smi.display().to_string();
    let v = run(ProbeKind::Gpu(spec)).await;
    expect(&v, Status::Warning, "1 NVIDIA A100 at 88°C");
    assert_eq!(v.details["gpus"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn disk_thresholds_and_missing_path() {
    let v = run(ProbeKind::Disk(DiskSpec::new("/"))).await;
    assert!(v.details["usage_pct"].as_f64().unwrap() >= 0.0, "{v}");
    let mut spec = DiskSpec::new("/");
    spec.warn_pct = 0.0;
    spec.crit_pct = 1000.0;
    expect(
        &run(ProbeKind::Disk(spec.clone())).await,
        Status::Warning,
        "Disk usage high",
    );
    spec.crit_pct = 0.0;
    expect(
        &run(ProbeKind::Disk(spec)).await,
        Status::Critical,
        "Disk nearly full",
    );
    let v = run(ProbeKind::Disk(DiskSpec::new("/nonexistent/mount"))).await;
    expect(
        &v,
        Status::Critical,
        "Disk check failed: /nonexistent/mount",
    );
}

#[tokio::test]
async fn budget_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("usage");
    let spec = BudgetSpec::from_file(1000.0, &f);
    std::fs::write(&f, "500\n").unwrap();
    expect(
        &run(ProbeKind::Budget(spec.clone())).await,
        Status::Ok,
        "Token budget OK: 50.0 %",
    );
    std::fs::write(&f, r#"{"tokens_used": 800}"#).unwrap();
    expect(
        &run(ProbeKind::Budget(spec.clone())).await,
        Status::Warning,
        "nearly exhausted",
    );
    std::fs::write(&f, "1000").unwrap();
    expect(
        &run(ProbeKind::Budget(spec.clone())).await,
        Status::Critical,
        "exceeded",
    );
    std::fs::write(&f, [0u8, 0xff, 3]).unwrap();
    expect(
        &run(ProbeKind::Budget(spec.clone())).await,
        Status::Critical,
        "Budget check failed",
    );
    std::fs::remove_file(&f).unwrap();
    expect(
        &run(ProbeKind::Budget(spec)).await,
        Status::Critical,
        "Budget check failed",
    );
    let mut bad = BudgetSpec::from_file(0.0, &f);
    bad.warn_pct = 1.0;
    expect(
        &run(ProbeKind::Budget(bad)).await,
        Status::Unknown,
        "`limit` must be a positive number",
    );
}

#[tokio::test]
async fn a_toml_file_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let hb = dir.path().join("hb.json");
    std::fs::write(&hb, format!("{}", nexus_stdx::now_epoch())).unwrap();
    let text = format!(
        r#"
        [runner]
        concurrency = 4
        default_timeout = "2s"

        [[probe]]
        name = "disk"
        disk = {{ path = "/" , warn_pct = 100, crit_pct = 100 }}

        [[probe]]
        name = "heartbeat"
        heartbeat = {{ path = "{}", max_age = "1m" }}

        [[probe]]
        name = "plugin"
        timeout = "1s"
        command = {{ argv = ["sh", "-c", "echo fine; exit 0"] }}
        "#,
        hb.display()
    );
    let file = dir.path().join("probes.toml");
    std::fs::write(&file, text).unwrap();
    let cfg = ProbeFile::load(&file).unwrap();
    let verdicts = Runner::new(cfg.runner).run(&cfg.probes).await;
    let names: Vec<_> = verdicts
        .iter()
        .map(|v| (v.name.as_str(), v.status))
        .collect();
    assert_eq!(
        names,
        [
            ("disk", Status::Ok),
            ("heartbeat", Status::Ok),
            ("plugin", Status::Ok)
        ],
        "{verdicts:?}"
    );

    let e = ProbeFile::load(&dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
}
