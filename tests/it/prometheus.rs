//! The shipped Prometheus rules are valid and behave as documented
//! (`promtool check rules`, `promtool test rules`), and the metrics they use
//! are the ones the pool exports.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
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
    assert!(promtool(&["check", "rules", "rules.yml"]).contains("SUCCESS: 4 rules found"));
    assert!(promtool(&["test", "rules", "rules.test.yml"]).contains("SUCCESS"));
}

#[test]
fn every_metric_a_rule_uses_is_exported_by_the_pool() {
    let rules = std::fs::read_to_string(dir().join("rules.yml")).unwrap();
    let exported = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/nexus-pool/src/http.rs"),
    )
    .unwrap();
    let used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("nexus_"))
        .collect();
    assert!(!used.is_empty());
    for metric in used {
        assert!(
            exported.contains(&format!("\"{metric}\"")),
            "{metric} is not exported"
        );
    }
}
