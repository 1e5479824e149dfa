//! Runs probes concurrently, each under its own timeout, with a bound on how
//! many run at once. Results come back in input order.
//!
//! Connections are paced: at most [`CONNECT_BURST`] probes that connect are
//! starting at once; each holds its place until it finishes or for
//! [`CONNECT_HOLD`], whichever is first, so a hung target delays the others
//! by at most that much. A thousand connects issued in one burst are slower
//! than paced ones: their handshakes overflow the kernel's inline
//! network processing into `ksoftirqd`, which then takes turns with the
//! prober on the same core (measured on loopback: 1,000 gateways took 50 to
//! 90 ms unpaced, 44 ms paced; docs/PERFORMANCE.md).

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

use crate::config::{ProbeKind, ProbeSpec, RunnerConfig};
use crate::sweep::Sweep;
use crate::{Outcome, Status, Verdict};

/// How many connecting probes may be starting at once.
pub(crate) const CONNECT_BURST: usize = 16;

/// How long a connecting probe holds its place in the burst at most.
pub(crate) const CONNECT_HOLD: Duration = Duration::from_millis(10);

/// Runs probes. Cheap to create; holds no connections between sweeps.
#[derive(Debug, Clone)]
pub struct Runner {
    config: RunnerConfig,
    proc_root: PathBuf,
}

impl Default for Runner {
    fn default() -> Runner {
        Runner::new(RunnerConfig::default())
    }
}

impl Runner {
    /// A runner reading the real `/proc`.
    pub fn new(config: RunnerConfig) -> Runner {
        Runner {
            config,
            proc_root: PathBuf::from("/proc"),
        }
    }

    /// Reads processes from another directory laid out like `/proc` (tests).
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Runner {
        self.proc_root = root.into();
        self
    }

    /// Settings the runner was built with.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Runs one sweep: every probe once, concurrently (at most
    /// `concurrency` at a time), each under its own timeout. `/proc` is
    /// scanned at most once per sweep, shared by all process and heartbeat
    /// probes. The verdicts are in the order of `probes`.
    pub async fn run(&self, probes: &[ProbeSpec]) -> Vec<Verdict> {
        let sweep = Sweep::new(self.proc_root.clone());
        let bound = self.config.concurrency.max(1);
        let burst = tokio::sync::Semaphore::new(CONNECT_BURST);
        // Unordered, so a hung probe never holds back the slots behind it
        // (`buffered` would: it only frees a slot when the head finishes).
        // A probe that connects is admitted once it has a place in the
        // burst (in order: the stream waits, not a thousand futures).
        let mut done: Vec<(usize, Verdict)> = futures_util::stream::iter(probes.iter().enumerate())
            .then(|(i, p)| {
                let burst = &burst;
                async move {
                    // Never closed, so never an error.
                    let place = match p.kind.connects() {
                        true => burst.acquire().await.ok(),
                        false => None,
                    };
                    (i, p, place)
                }
            })
            .map(|(i, p, place)| {
                let sweep = &sweep;
                async move { (i, self.run_paced(p, sweep, place).await) }
            })
            .buffer_unordered(bound)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, v)| v).collect()
    }

    /// Runs a single probe (its own sweep).
    pub async fn run_one(&self, probe: &ProbeSpec) -> Verdict {
        let sweep = Sweep::new(self.proc_root.clone());
        self.run_in(probe, &sweep).await
    }

    /// [`Runner::run_in`], giving back its `place` in the connect burst
    /// when it finishes or after [`CONNECT_HOLD`], whichever is first.
    async fn run_paced(
        &self,
        probe: &ProbeSpec,
        sweep: &Sweep,
        place: Option<tokio::sync::SemaphorePermit<'_>>,
    ) -> Verdict {
        let Some(place) = place else {
            return self.run_in(probe, sweep).await;
        };
        let run = self.run_in(probe, sweep);
        tokio::pin!(run);
        tokio::select! {
            biased;
            verdict = &mut run => return verdict,
            () = tokio::time::sleep(CONNECT_HOLD) => {}
        }
        drop(place);
        run.await
    }

    async fn run_in(&self, probe: &ProbeSpec, sweep: &Sweep) -> Verdict {
        let timeout = probe.timeout.unwrap_or(self.config.default_timeout);
        let start = Instant::now();
        // A bug in one probe must not take the sweep down (docs/SPEC.md §4.2: a check
        // that raises is Critical "Check failed"). Release builds abort on
        // panic anyway; this keeps tests and dev builds honest.
        let guarded = AssertUnwindSafe(check(&probe.kind, sweep, timeout)).catch_unwind();
        let outcome = match tokio::time::timeout(timeout, guarded).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                Outcome::critical(format!("Check failed: {why}"))
            }
            Err(_) => timed_out(&probe.kind, timeout),
        };
        let latency = start.elapsed();
        let Outcome {
            status,
            mut summary,
            mut details,
        } = outcome;
        clean_outcome(&probe.kind.redactor(), &mut summary, &mut details);
        Verdict {
            name: probe.name.clone(),
            kind: probe.kind.as_str().to_string(),
            status,
            summary,
            details,
            latency,
            checked_at: nexus_stdx::now_epoch(),
        }
    }
}

/// The longest verdict summary: one line, not a report.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// The longest text value in a verdict's details.
const MAX_DETAIL_CHARS: usize = 1024;

/// Every verdict leaves the runner through here. Targets answer with text of
/// their own (a JSON body, an error message, a WebSocket reply) that may
/// echo what the probe sent: the probe's secrets are redacted (as is and
/// encoded), control characters taken out, the lengths capped, in the
/// summary and in every text of the details (keys too).
fn clean_outcome(
    redactor: &nexus_secret::Redactor,
    summary: &mut String,
    details: &mut serde_json::Map<String, serde_json::Value>,
) {
    if let std::borrow::Cow::Owned(clean) = redactor.clean(summary, MAX_SUMMARY_CHARS) {
        *summary = clean;
    }
    for v in details.values_mut() {
        clean_value(redactor, v);
    }
}

fn clean_value(redactor: &nexus_secret::Redactor, v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = redactor.clean(s, MAX_DETAIL_CHARS) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| clean_value(redactor, i)),
        Value::Object(map) => {
            let dirty = map.keys().any(|k| {
                matches!(
                    redactor.clean(k, MAX_DETAIL_CHARS),
                    std::borrow::Cow::Owned(_)
                )
            });
            if dirty {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (redactor.clean(&k, MAX_DETAIL_CHARS).into_owned(), v))
                    .collect();
            }
            map.values_mut().for_each(|i| clean_value(redactor, i));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A timeout on a network target is a failure (Critical); a local tool that
/// hangs (interpreter, plugin, nvidia-smi) means "could not check" (Unknown).
fn timed_out(kind: &ProbeKind, timeout: Duration) -> Outcome {
    let status = match kind {
        ProbeKind::PythonSyntax(_) | ProbeKind::Command(_) | ProbeKind::Gpu(_) => Status::Unknown,
        _ => Status::Critical,
    };
    let what = match kind {
        ProbeKind::Tcp(_) => "TCP probe failed".to_string(),
        ProbeKind::Http(_) => "HTTP probe failed".to_string(),
        ProbeKind::Ws(_) => "WebSocket probe failed".to_string(),
        ProbeKind::Redis(_) => "Redis connection failed".to_string(),
        ProbeKind::Postgres(_) => "PostgreSQL connection failed".to_string(),
        other => format!("{} probe failed", other.as_str()),
    };
    Outcome::new(
        status,
        format!("{what}: timed out after {}", human(timeout)),
    )
    .with("timeout_ms", timeout.as_millis() as u64)
    .with("timed_out", true)
}

async fn check(kind: &ProbeKind, sweep: &Sweep, timeout: Duration) -> Outcome {
    match kind {
        ProbeKind::Tcp(s) => crate::tcp::check(s).await,
        ProbeKind::Ws(s) => crate::ws::check(s).await,
        ProbeKind::Http(s) => match sweep.http().await {
            Ok(client) => crate::http::check(s, client).await,
            Err(e) => Outcome::unknown(e.to_string()),
        },
        ProbeKind::Process(s) => {
            crate::process::check(s, sweep.proc_root(), || sweep.procs()).await
        }
        ProbeKind::Heartbeat(s) => crate::heartbeat::check(s, sweep).await,
        ProbeKind::PythonSyntax(s) => crate::python::check(s).await,
        ProbeKind::Redis(s) => crate::redis::check(s).await,
        ProbeKind::Postgres(s) => crate::postgres::check(s, timeout).await,
        ProbeKind::Disk(s) => crate::disk::check(s).await,
        ProbeKind::Ollama(s) => match sweep.http().await {
            Ok(client) => crate::ollama::check(s, client).await,
            Err(e) => Outcome::unknown(e.to_string()),
        },
        ProbeKind::Gpu(s) => crate::gpu::check(s).await,
        ProbeKind::Budget(s) => match sweep.http().await {
            Ok(client) => crate::budget::check(s, client, timeout).await,
            Err(e) => Outcome::unknown(e.to_string()),
        },
        ProbeKind::Command(s) => crate::command::check(s).await,
    }
}

/// `250ms`, `5s`, `1.5s`: for messages.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
