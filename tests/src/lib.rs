//! Helpers for the end-to-end tests in `it/`: locating the workspace's built
//! binaries (a test package cannot use `CARGO_BIN_EXE_*` of other packages)
//! and running them with [`Run`], which checks every captured stdout and
//! stderr for the canary tokens (`nexus_testkit::canary`). `it/canary.rs`
//! fails when a test captures output any other way, so every e2e test is
//! covered by construction.

use std::path::PathBuf;

pub use nexus_testkit::canary::{CANARIES, PING_TOKEN, Run, TELEGRAM_TOKEN, assert_no_canary};

/// The path of a binary built by this workspace (`target/<profile>/<name>`).
///
/// Panics with a hint when it is missing: end-to-end tests run through
/// `cargo test --workspace` / `cargo nextest run --workspace`, which build
/// every binary first.
///
/// `NEXUS_E2E_BIN_DIR`, when set, is looked in instead: several worktrees
/// sharing one `CARGO_TARGET_DIR` overwrite each other's
/// `target/<profile>/<name>`, so a run can copy its own binaries aside.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("NEXUS_E2E_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        assert!(
            p.is_file(),
            "{} is missing (NEXUS_E2E_BIN_DIR)",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("test binary has a parent directory");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built: run the tests with `cargo nextest run --workspace` (or scripts/test)",
        p.display()
    );
    p
}
