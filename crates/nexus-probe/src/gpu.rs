//! GPU probe: `nvidia-smi --query-gpu` when it exists, Unknown when it does not.

use std::process::Stdio;

use serde::Deserialize;
use serde_json::json;

use crate::{Outcome, Status};

/// `gpu = { nvidia_smi = "nvidia-smi", temp_warn_c = 85, temp_crit_c = 95 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// The `nvidia-smi` program (default found on `PATH`).
    #[serde(default = "smi")]
    pub nvidia_smi: String,
    /// Warning at a temperature ≥ this, °C (default 85).
    #[serde(default = "t85")]
    pub temp_warn_c: f64,
    /// Critical at a temperature ≥ this, °C (default 95).
    #[serde(default = "t95")]
    pub temp_crit_c: f64,
    /// Warning at memory use ≥ this percentage (default 95).
    #[serde(default = "t95")]
    pub mem_warn_pct: f64,
}

fn smi() -> String {
    "nvidia-smi".to_string()
}
fn t85() -> f64 {
    85.0
}
fn t95() -> f64 {
    95.0
}

impl Default for GpuSpec {
    fn default() -> GpuSpec {
        GpuSpec {
            nvidia_smi: smi(),
            temp_warn_c: t85(),
            temp_crit_c: t95(),
            mem_warn_pct: t95(),
        }
    }
}

const QUERY: &str =
    "--query-gpu=index,name,temperature.gpu,utilization.gpu,memory.used,memory.total";

/// One GPU: name, temperature °C, utilisation %, memory used and total MiB.
type Row = (String, Option<f64>, Option<f64>, Option<f64>, Option<f64>);

/// One CSV line: `0, NVIDIA A100, 41, 0, 10, 40960` (`[N/A]` allowed).
fn parse_line(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.len() < 6 {
        return None;
    }
    let num = |s: &str| s.parse::<f64>().ok();
    Some((
        format!("{} {}", f[0], f[1]),
        num(f[2]),
        num(f[3]),
        num(f[4]),
        num(f[5]),
    ))
}

pub(crate) async fn check(spec: &GpuSpec) -> Outcome {
    let out = tokio::process::Command::new(&spec.nvidia_smi)
        .arg(QUERY)
        .arg("--format=csv,noheader,nounits")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Outcome::unknown(format!(
                "{} not found: no NVIDIA tooling on this host",
                spec.nvidia_smi
            ));
        }
        Err(e) => return Outcome::unknown(format!("cannot run {}: {e}", spec.nvidia_smi)),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let text = if stdout.trim().is_empty() {
            String::from_utf8_lossy(&out.stderr).into_owned()
        } else {
            stdout.into_owned()
        };
        return Outcome::critical(format!(
            "nvidia-smi failed ({}): {}",
            out.status,
            text.lines()
                .next()
                .unwrap_or("no output")
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    let mut status = Status::Ok;
    let mut gpus = Vec::new();
    let mut notes = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let Some((name, temp, util, used, total)) = parse_line(line) else {
            return Outcome::unknown(format!("cannot parse nvidia-smi output: {line:?}"));
        };
        let mem_pct = match (used, total) {
            (Some(u), Some(t)) if t > 0.0 => Some(u / t * 100.0),
            _ => None,
        };
        let t_status = temp.map_or(Status::Ok, |t| {
            Status::at_or_above(t, spec.temp_warn_c, spec.temp_crit_c)
        });
        let m_status = mem_pct.map_or(Status::Ok, |m| {
            Status::at_or_above(m, spec.mem_warn_pct, f64::INFINITY)
        });
        for (s, what) in [
            (t_status, format!("{name} at {}°C", temp.unwrap_or(0.0))),
            (
                m_status,
                format!("{name} memory {:.0} %", mem_pct.unwrap_or(0.0)),
            ),
        ] {
            if s != Status::Ok {
                notes.push(what);
                if s == Status::Critical || status == Status::Ok {
                    status = s;
                }
            }
        }
        gpus.push(json!({ "gpu": name, "temperature_c": temp, "utilization_pct": util, "memory_used_mib": used, "memory_total_mib": total }));
    }
    if gpus.is_empty() {
        return Outcome::unknown("nvidia-smi reported no GPUs");
    }
    let summary = if notes.is_empty() {
        format!("{} GPU(s) OK", gpus.len())
    } else {
        format!("GPU: {}", notes.join("; "))
    };
    Outcome::new(status, summary).with("gpus", gpus)
}
