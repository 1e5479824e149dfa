//! The four checks of seed 000, used when no config file is given.

use std::path::PathBuf;
use std::time::Duration;

use nexus_probe::{
    HeartbeatSpec, MatchMode, ProbeKind, ProbeSpec, ProcessSpec, PythonSyntaxSpec, TcpSpec,
};

/// The settings of the four default checks (docs/SPEC.md §2.2); every field has a
/// flag and most an environment variable in `nexus-watchdog`.
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
}

impl Default for SeedChecks {
    fn default() -> SeedChecks {
        SeedChecks {
            ws_host: "localhost".to_string(),
            ws_port: 8765,
            process_pattern: "nexus_think".to_string(),
            process_match: MatchMode::Argv,
            heartbeat_path: nexus_heartbeat::default_agent_path(),
            stale_threshold: Duration::from_secs(300),
            think_script: PathBuf::from("nexus/nexus_think.py"),
            python: "python3".to_string(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl SeedChecks {
    /// `ws_gateway`, `consciousness_loop`, `heartbeat`, `syntax`.
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
        .map(|p| p.timeout(self.timeout))
        .collect()
    }
}
