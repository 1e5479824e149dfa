//! The four checks of seed 000, used when no config file is given, and the
//! gateway's health endpoint beside them (`gateway_health`, optional).

use std::path::PathBuf;
use std::time::Duration;

use nexus_probe::{
    HeartbeatSpec, HttpSpec, MatchMode, ProbeKind, ProbeSpec, ProcessSpec, PythonSyntaxSpec,
    TcpSpec, seed,
};

/// The name of the health endpoint's check.
pub const GATEWAY_HEALTH: &str = "gateway_health";

/// The settings of the four default checks (docs/SPEC.md §2.2); every field has a
/// flag and most an environment variable in `nexus-watchdog`. The defaults
/// are the seed agent's, from [`nexus_probe::seed`] (shared with the pool).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedChecks {
    /// Gateway host (`--ws-host`, `NEXUS_WS_HOST`).
    pub ws_host: String,
    /// Gateway port (`--ws-port`, `NEXUS_WS_PORT`).
    pub ws_port: u16,
    /// The consciousness loop's process pattern (`--process-pattern`).
    pub process_pattern: String,
    /// `argv` (the pattern is a word of the command line) or `substring`.
    pub process_match: MatchMode,
    /// Heartbeat file (`--heartbeat-path`, `NEXUS_HEARTBEAT_PATH`).
    pub heartbeat_path: PathBuf,
    /// Stale beyond this (`--stale-threshold`).
    pub stale_threshold: Duration,
    /// The think script to syntax-check (`--think-script`).
    pub think_script: PathBuf,
    /// The agent's interpreter (`--python`, `NEXUS_PYTHON`).
    pub python: String,
    /// Per-check timeout; the whole run is bounded by it.
    pub timeout: Duration,
    /// The gateway's health endpoint (`--health-host`, `NEXUS_HEALTH_HOST`).
    pub health_host: String,
    /// Its port (`--health-port`, `NEXUS_HEALTH_PORT`).
    pub health_port: u16,
    /// Run the `gateway_health` check (`--no-gateway-health` turns it off).
    pub gateway_health: bool,
}

impl Default for SeedChecks {
    fn default() -> SeedChecks {
        SeedChecks {
            ws_host: seed::WS_HOST.to_string(),
            ws_port: seed::WS_PORT,
            process_pattern: seed::PROCESS_PATTERN.to_string(),
            process_match: MatchMode::Argv,
            heartbeat_path: seed::heartbeat_path(),
            stale_threshold: seed::STALE_THRESHOLD,
            think_script: PathBuf::from(seed::THINK_SCRIPT),
            python: seed::PYTHON.to_string(),
            timeout: Duration::from_secs(5),
            health_host: seed::HEALTH_HOST.to_string(),
            health_port: seed::HEALTH_PORT,
            gateway_health: true,
        }
    }
}

impl SeedChecks {
    /// `ws_gateway`, `consciousness_loop`, `heartbeat`, `syntax`, then
    /// `gateway_health` (unless turned off), read by
    /// [`HttpSpec::gateway_health`]: a `degraded` 503 (a wedged gateway)
    /// or a timeout is Critical, while no endpoint there (refused, or an
    /// answer that is not the endpoint's) is Unknown, which
    /// [`SeedChecks::optional`] lets pass: the TCP check `ws_gateway`
    /// decides then.
    pub fn probes(&self) -> Vec<ProbeSpec> {
        let process = ProcessSpec::pattern(&self.process_pattern).mode(self.process_match);
        let heartbeat = HeartbeatSpec {
            path: self.heartbeat_path.clone(),
            max_age: self.stale_threshold,
            grace: Some(process.clone()),
        };
        let syntax = PythonSyntaxSpec {
            path: self.think_script.clone(),
            python: self.python.clone(),
        };
        vec![
            ProbeSpec::new(
                "ws_gateway",
                ProbeKind::Tcp(TcpSpec::new(&self.ws_host, self.ws_port)),
            ),
            ProbeSpec::new("consciousness_loop", ProbeKind::Process(process)),
            ProbeSpec::new("heartbeat", ProbeKind::Heartbeat(heartbeat)),
            ProbeSpec::new("syntax", ProbeKind::PythonSyntax(syntax)),
        ]
        .into_iter()
        .chain(self.gateway_health.then(|| self.health_probe()))
        .map(|p| p.timeout(self.timeout))
        .collect()
    }

    /// The checks whose Unknown is tolerated: `gateway_health`, when run.
    pub fn optional(&self) -> Vec<String> {
        if self.gateway_health {
            vec![GATEWAY_HEALTH.to_string()]
        } else {
            Vec::new()
        }
    }

    fn health_probe(&self) -> ProbeSpec {
        let spec = HttpSpec::gateway_health(&self.health_host, self.health_port);
        ProbeSpec::new(GATEWAY_HEALTH, ProbeKind::Http(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_four_then_the_optional_health_check() {
        let s = SeedChecks::default();
        let names: Vec<_> = s.probes().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "ws_gateway",
                "consciousness_loop",
                "heartbeat",
                "syntax",
                "gateway_health"
            ]
        );
        assert_eq!(s.optional(), ["gateway_health"]);
        let ProbeKind::Http(h) = &s.probes()[4].kind else {
            panic!("not http")
        };
        assert_eq!(h.url, "http://127.0.0.1:8766/health");
        assert_eq!(h.refused, nexus_probe::Status::Unknown);
        let off = SeedChecks {
            gateway_health: false,
            ..SeedChecks::default()
        };
        assert_eq!(off.probes().len(), 4);
        assert!(off.optional().is_empty());
        let v6 = SeedChecks {
            health_host: "::1".into(),
            ..SeedChecks::default()
        };
        let ProbeKind::Http(h) = &v6.probes()[4].kind else {
            panic!("not http")
        };
        assert_eq!(h.url, "http://[::1]:8766/health");
    }
}
