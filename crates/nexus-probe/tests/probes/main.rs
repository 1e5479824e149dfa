//! Integration tests against real servers and processes on loopback.
//! One test binary; one module per area.

#![allow(missing_docs, clippy::unwrap_used, unreachable_pub)]

mod db;
mod net;
mod processes;
mod tools;

use std::time::Duration;

use nexus_probe::{ProbeKind, ProbeSpec, Runner, Status, Verdict};

/// Runs one probe with a timeout.
pub async fn run_with(kind: ProbeKind, timeout: Duration) -> Verdict {
    let v = Runner::default()
        .run_one(&ProbeSpec::new("t", kind).timeout(timeout))
        .await;
    // Every verdict must serialise and say something.
    assert!(!v.summary.is_empty());
    serde_json::to_string(&v).unwrap();
    v
}

/// Runs one probe with a generous timeout (a loaded CI machine must not
/// turn a slow interpreter start into a failure); timeout tests use [`run_with`].
pub async fn run(kind: ProbeKind) -> Verdict {
    run_with(kind, Duration::from_secs(20)).await
}

#[track_caller]
pub fn expect(v: &Verdict, status: Status, needle: &str) {
    assert_eq!(v.status, status, "{v} {:?}", v.details);
    assert!(
        v.summary.contains(needle),
        "{:?} does not contain {needle:?}",
        v.summary
    );
}
