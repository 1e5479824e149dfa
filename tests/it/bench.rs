//! `nexus-bench` smoke run: our binaries only, the smallest sizes, one run;
//! the JSON it writes must describe what it measured.

use std::process::Command;

use nexus_e2e::{Run, bin};
use serde_json::Value;

#[test]
fn quick_ours_only_run_measures_every_case() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let pool = bin("resurrection-pool");
    let out = Command::new(bin("nexus-bench"))
        .args([
            "--quick",
            "--ours-only",
            "--agents",
            "100",
            "--gateways",
            "10",
            "--variants",
            "none",
            "--limit",
            "20",
        ])
        .arg("--bin-dir")
        .arg(pool.parent().unwrap())
        .arg("--json")
        .arg(&json)
        .run()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| case | size | ours wall |"),
        "no table: {stdout}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let cases: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["case"].as_str().unwrap(), r["size"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cases,
        [
            ("start-up, empty root", "0 agents"),
            ("cells, one sweep", "100 agents (10 x 10)"),
            ("gateways, none hung", "10"),
        ]
    );
    for r in rows {
        let ours = &r["ours"];
        assert_eq!(ours["summary"]["n"], 1, "{r}");
        assert!(ours["summary"]["wall_s"].as_f64().unwrap() > 0.0);
        assert_eq!(ours["check"]["ok"], true, "{r}");
        assert_eq!(r["seed"]["skipped"], "seed not run", "{r}");
        // One table line per row, naming its case.
        assert!(stdout.contains(&format!(
            "| {} | {} |",
            r["case"].as_str().unwrap(),
            r["size"].as_str().unwrap()
        )));
    }
    assert!(report["notes"][0].as_str().unwrap().contains("--ours-only"));
    assert_eq!(report["per_agent"][0]["agents"], 100);
    // Each case's program ran once, unmeasured, before its measured run.
    assert_eq!(report["warmup"], 1);
    for label in ["startup-ours", "cells-100-ours", "gw-none-10-ours"] {
        assert!(
            stderr.contains(&format!("{label} warm-up 1:")),
            "{label}: {stderr}"
        );
    }
}

/// `--mttr` smoke run on the debug binaries (figures are not the point,
/// the release bench's are): the crash and cold-start cases run our pool
/// and supervisord side by side and report both in the JSON.
#[test]
fn quick_mttr_run_measures_the_crash_and_the_cold_start_beside_supervisord() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("mttr.json");
    let pool = bin("resurrection-pool");
    let out = Command::new(bin("nexus-bench"))
        .args([
            "--mttr",
            "--quick",
            "--mttr-cases",
            "crash,cold",
            "--limit",
            "20",
        ])
        .arg("--bin-dir")
        .arg(pool.parent().unwrap())
        .arg("--json")
        .arg(&json)
        .run()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("| case | ours (defaults) | supervisord 4.2 |"),
        "{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = report["mttr"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{report:#}");
    for c in cases {
        assert!(
            c["ours"].as_f64().is_some_and(|s| s > 0.0 && s < 10.0),
            "{c}"
        );
        // Installed by scripts/setup.d/60-supervisor.sh.
        assert!(c["supervisord"].as_f64().is_some_and(|s| s > 0.0), "{c}");
    }
}
