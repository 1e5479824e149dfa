//! `nexus-health-sidecar`: the gateway's `GET /health` (docs/SPEC.md §7)
//! for a gateway that cannot embed `nexus-gateway-health`, the Python one.
//!
//! It probes the gateway with a real WebSocket handshake every
//! `--probe-interval` (each under `--probe-timeout`, on its own task, never
//! on a request's path) and serves the seed's JSON on
//! `NEXUS_HEALTH_HOST:NEXUS_HEALTH_PORT`: `ok` with 200 while a handshake
//! succeeded within `--fresh-within`, else `degraded` with 503. It cannot
//! see the gateway's clients, so `connected_clients` is `null`; its
//! `uptime_seconds` is how long the gateway has passed every handshake
//! (a lower bound of its uptime; while degraded, the time since the last
//! failed one). Exit codes: 0 on SIGTERM/SIGINT, 2 usage error or an
//! address it cannot listen on (named), 1 any other failure.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nexus_gateway_health::{Limits, Liveness, Options};
use nexus_probe::{ProbeKind, ProbeSpec, Runner, RunnerConfig, Status, WsSpec, seed};

#[derive(Debug, Parser)]
#[command(
    name = "nexus-health-sidecar",
    version,
    about = "Serve the gateway's GET /health, live while WebSocket handshakes with it succeed"
)]
struct Cli {
    /// Address the health endpoint listens on.
    #[arg(long, env = "NEXUS_HEALTH_HOST", default_value = seed::HEALTH_HOST)]
    host: String,
    /// Port the health endpoint listens on.
    #[arg(long, env = "NEXUS_HEALTH_PORT", default_value_t = seed::HEALTH_PORT)]
    port: u16,
    /// Gateway host to open the WebSocket handshake with (name, IPv4 or bare IPv6).
    #[arg(long, env = "NEXUS_WS_HOST", default_value = seed::WS_HOST)]
    ws_host: String,
    /// Gateway WebSocket port; also reported as `ws_port` in the body.
    #[arg(long, env = "NEXUS_WS_PORT", default_value_t = seed::WS_PORT)]
    ws_port: u16,
    /// The path of the handshake's request.
    #[arg(long, default_value = "/")]
    ws_path: String,
    /// `ok` only if a handshake succeeded within this long.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "30s")]
    fresh_within: Duration,
    /// How often the gateway is probed.
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "10s")]
    probe_interval: Duration,
    /// A handshake not done within this long failed (a wedged gateway).
    #[arg(long, allow_hyphen_values = true, value_parser = nexus_cli::duration_arg, default_value = "5s")]
    probe_timeout: Duration,
}

impl Cli {
    /// What clap cannot check: the periods against each other.
    fn validate(&self) -> Result<(), String> {
        for (name, d) in [
            ("--fresh-within", self.fresh_within),
            ("--probe-interval", self.probe_interval),
            ("--probe-timeout", self.probe_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.probe_interval + self.probe_timeout > self.fresh_within {
            return Err(format!(
                "--probe-interval ({}) plus --probe-timeout ({}) must not exceed --fresh-within ({}): \
                 a live gateway would be shown degraded between two probes",
                nexus_stdx::format_duration(self.probe_interval.as_secs_f64()),
                nexus_stdx::format_duration(self.probe_timeout.as_secs_f64()),
                nexus_stdx::format_duration(self.fresh_within.as_secs_f64()),
            ));
        }
        if !self.ws_path.starts_with('/') {
            return Err(format!("--ws-path {:?} must start with `/`", self.ws_path));
        }
        Ok(())
    }

    fn ws_url(&self) -> String {
        let host = if self.ws_host.contains(':') && !self.ws_host.starts_with('[') {
            format!("[{}]", self.ws_host)
        } else {
            self.ws_host.clone()
        };
        format!("ws://{host}:{}{}", self.ws_port, self.ws_path)
    }
}

fn main() -> ExitCode {
    nexus_cli::finish("nexus-health-sidecar", main_inner())
}

fn main_inner() -> ExitCode {
    if let Some(code) = nexus_cli::generate_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    nexus_cli::init_logging(nexus_cli::DAEMON);
    if let Err(e) = cli.validate() {
        return nexus_cli::Fail::usage(e).report("nexus-health-sidecar");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return nexus_cli::Fail::failure(format_args!("cannot start the runtime: {e}"))
                .report("nexus-health-sidecar");
        }
    };
    rt.block_on(run(&cli))
}

async fn run(cli: &Cli) -> ExitCode {
    // The port first: a sidecar that cannot serve says so and stops.
    let listener = match nexus_gateway_health::bind(&cli.host, cli.port).await {
        Ok(l) => l,
        Err(e) => return nexus_cli::Fail::config(e).report("nexus-health-sidecar"),
    };
    match serve(cli, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            nexus_cli::Fail::chain(nexus_cli::ExitKind::Failure, &*e).report("nexus-health-sidecar")
        }
    }
}

async fn serve(cli: &Cli, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let addr = listener.local_addr().context("the listener's address")?;
    let live = Liveness::uncounted(cli.ws_port);
    let url = cli.ws_url();
    let options = Options {
        fresh_within: cli.fresh_within,
        limits: Limits::default(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(nexus_gateway_health::serve(
        listener,
        live.clone(),
        options,
        async move {
            let _ = stop_rx.await;
        },
    ));
    tracing::info!(
        "serving http://{addr}/health for {url} (ok while a handshake succeeded within {})",
        nexus_stdx::format_duration(cli.fresh_within.as_secs_f64())
    );
    nexus_stdx::sd_notify("READY=1");
    let prober = tokio::spawn(probe_loop(live, url, cli.probe_interval, cli.probe_timeout));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    prober.abort();
    let _ = stop_tx.send(());
    server
        .await
        .context("the HTTP server task")?
        .context("the HTTP server")?;
    Ok(())
}

/// Probes the gateway every `interval` for ever; a success ticks `live`.
async fn probe_loop(live: Liveness, url: String, interval: Duration, timeout: Duration) {
    let runner = Runner::new(RunnerConfig {
        concurrency: 1,
        default_timeout: timeout,
    });
    let spec = ProbeSpec::new(
        "gateway",
        ProbeKind::Ws(WsSpec {
            url,
            send: None,
            expect: None,
        }),
    )
    .timeout(timeout);
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // None: not probed yet.
    let mut was_live: Option<bool> = None;
    loop {
        every.tick().await;
        let v = runner.run_one(&spec).await;
        let ok = v.status == Status::Ok;
        if ok {
            if was_live != Some(true) {
                live.restart_uptime();
                tracing::info!("gateway live: {}", v.summary);
            }
            live.tick();
        } else {
            live.restart_uptime();
            if was_live != Some(false) {
                tracing::warn!("gateway not live: {}", v.summary);
            }
        }
        was_live = Some(ok);
        nexus_stdx::sd_notify("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("nexus-health-sidecar").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn the_periods_must_fit_the_window() {
        assert!(cli(&[]).validate().is_ok());
        let e = cli(&["--fresh-within", "10s"]).validate().unwrap_err();
        assert!(e.contains("--fresh-within"), "{e}");
        assert!(cli(&["--probe-timeout", "0"]).validate().is_err());
        assert!(cli(&["--ws-path", "x"]).validate().is_err());
    }

    #[test]
    fn the_url_brackets_an_ipv6_host() {
        assert_eq!(cli(&["--ws-host", "::1"]).ws_url(), "ws://[::1]:8765/");
        assert_eq!(
            cli(&["--ws-host", "127.0.0.1", "--ws-port", "9"]).ws_url(),
            "ws://127.0.0.1:9/"
        );
    }
}
