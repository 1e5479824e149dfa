//! `nexus-health-sidecar`'s own contract: usage errors and help (a port in
//! use and the end-to-end behaviour are in tests/it/gateway_health.rs).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use nexus_testkit::canary::Run;

fn sidecar() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nexus-health-sidecar"));
    for v in [
        "NEXUS_HEALTH_HOST",
        "NEXUS_HEALTH_PORT",
        "NEXUS_WS_HOST",
        "NEXUS_WS_PORT",
    ] {
        c.env_remove(v);
    }
    c
}

#[test]
fn periods_that_cannot_show_a_live_gateway_are_refused() {
    let o = sidecar()
        .args([
            "--port",
            "0",
            "--fresh-within",
            "5s",
            "--probe-interval",
            "10s",
        ])
        .run()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("must not exceed --fresh-within"),
        "{stderr}"
    );
    let o = sidecar().args(["--port", "x"]).run().unwrap();
    assert_eq!(o.status.code(), Some(2));
    for flag in ["--fresh-within", "--probe-interval", "--probe-timeout"] {
        let o = sidecar().args([flag, "-5s"]).run().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("durations cannot be negative"), "{flag}: {e}");
    }
}

#[test]
fn help_names_the_environment() {
    let o = sidecar().arg("--help").run().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for v in [
        "NEXUS_HEALTH_HOST",
        "NEXUS_HEALTH_PORT",
        "NEXUS_WS_HOST",
        "NEXUS_WS_PORT",
    ] {
        assert!(text.contains(v), "{v}: {text}");
    }
}
