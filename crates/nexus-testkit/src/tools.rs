//! The real outside tools the tests check our output with: a headless
//! Chromium that renders a page as a person would get it, and promtool.

use std::io::Write;
use std::process::{Command, Stdio};

/// How Chromium runs here: headless, no sandbox (tests run as root), no
/// background networking (this machine's network is closed), a
/// phone-sized window.
pub(crate) const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=390,844",
];

/// The DOM of `url` after a headless Chromium loaded it (phone-sized window).
pub fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .arg("--dump-dom")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("chromium is missing ({e}): run scripts/test (scripts/setup.d installs it)")
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics unless `promtool check metrics` accepts `text` without a word.
pub fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is missing ({e}): run scripts/test (scripts/setup.d installs prometheus)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {report}\n{text}");
    assert!(
        report.trim().is_empty(),
        "promtool complained: {report}\n{text}"
    );
}
