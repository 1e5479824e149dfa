//! Heartbeat freshness (docs/SPEC.md §2.3.3, §6.2.3) on top of nexus-heartbeat, with
//! the start-up grace of §2.3 and the "never written" hint of defect W1.

use std::path::PathBuf;
use std::time::Duration;

use nexus_heartbeat::{Rule, State};
use serde::Deserialize;

use crate::Outcome;
use crate::error::SpecError;
use crate::process::{ProcessSpec, evaluate_pattern};
use crate::sweep::Sweep;
use crate::verdict::round;

/// `heartbeat = { path = "~/.nexus/heartbeat.json", max_age = "5m", grace = { pattern = "nexus_think" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSpec {
    /// The heartbeat file (`~/` is expanded).
    pub path: PathBuf,
    /// Stale beyond this age (default 300 s; exactly at it is fresh).
    #[serde(
        default = "five_minutes",
        deserialize_with = "nexus_stdx::deserialize_duration"
    )]
    pub max_age: Duration,
    /// The agent's process: a missing heartbeat while it is younger than
    /// `max_age` is "starting" (Warning), not dead.
    #[serde(default)]
    pub grace: Option<ProcessSpec>,
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

impl HeartbeatSpec {
    /// A spec with the default 300 s threshold and no grace.
    pub fn new(path: impl Into<PathBuf>) -> HeartbeatSpec {
        HeartbeatSpec {
            path: path.into(),
            max_age: five_minutes(),
            grace: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        if self.max_age.is_zero() {
            return Err(SpecError::field("max_age", "must be positive"));
        }
        match &self.grace {
            Some(g) if g.pattern.is_none() => Err(SpecError::field("grace", "needs a `pattern`")),
            Some(g) => g.validate().map_err(|e| SpecError::Grace(Box::new(e))),
            None => Ok(()),
        }
    }
}

pub(crate) async fn check(spec: &HeartbeatSpec, sweep: &Sweep) -> Outcome {
    if let Err(why) = spec.validate() {
        return Outcome::unknown(format!("heartbeat probe misconfigured: {why}"));
    }
    let path = nexus_stdx::expand_home(&spec.path);
    let max_age = spec.max_age.as_secs_f64();
    let rule = Rule::fixed(max_age);
    let file = path.clone();
    let c = match tokio::task::spawn_blocking(move || {
        nexus_heartbeat::Classification::read(&file, nexus_stdx::now_epoch(), &rule)
    })
    .await
    {
        Ok(c) => c,
        Err(e) => return Outcome::unknown(format!("heartbeat read did not finish: {e}")),
    };
    let shown = path.display();
    let obs = c.observation.as_ref();
    let cycle = obs.and_then(|o| o.fields.get("cycle")).cloned();
    let model = obs.and_then(|o| o.str_field("model")).map(str::to_string);
    let pid = obs.and_then(|o| o.u64_field("pid"));
    let age = c.age_seconds.map(|a| round(a, 1));
    let text =
        |v: &Option<serde_json::Value>| v.as_ref().map_or("?".to_string(), |v| v.to_string());
    let m = model.clone().unwrap_or_else(|| "?".to_string());
    let outcome = match c.state {
        State::Fresh => Outcome::ok(format!(
            "Alive: cycle={}, {:.0}s ago, model={m}",
            text(&cycle),
            c.age_seconds.unwrap_or(0.0).max(0.0)
        )),
        State::Stale => Outcome::critical(format!(
            "Stale heartbeat: {:.0}s ago (threshold {max_age:.0}s), cycle={}, model={m}",
            c.age_seconds.unwrap_or(0.0),
            text(&cycle)
        )),
        State::Missing => return missing(spec, sweep, &path, max_age).await,
        State::Unreadable | State::Corrupt => {
            Outcome::critical(format!("Heartbeat file unreadable: {shown}: {}", c.reason))
        }
        State::FromTheFuture => {
            Outcome::critical(format!("Heartbeat clock skew: {shown}: {}", c.reason))
        }
    };
    outcome
        .with("path", shown.to_string())
        .with("state", c.state.as_str())
        .with("age_seconds", age)
        .with("max_age_seconds", max_age)
        .with("cycle", cycle)
        .with("model", model)
        .with("pid", pid)
}

/// No file: starting (grace), never written (process is old), or just missing.
async fn missing(
    spec: &HeartbeatSpec,
    sweep: &Sweep,
    path: &std::path::Path,
    max_age: f64,
) -> Outcome {
    let base = |o: Outcome| {
        o.with("path", path.display().to_string())
            .with("state", "missing")
            .with("max_age_seconds", max_age)
    };
    let plain = format!("No heartbeat file at {}", path.display());
    let Some(grace) = &spec.grace else {
        return base(Outcome::critical(plain));
    };
    let Some(pattern) = &grace.pattern else {
        return base(Outcome::critical(plain));
    };
    let table = sweep.procs().await;
    let Ok(table) = table.as_ref() else {
        return base(Outcome::critical(plain));
    };
    let found = evaluate_pattern(grace, pattern, table);
    let youngest = found
        .live
        .iter()
        .filter_map(|&(pid, age)| age.map(|a| (pid, a)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match youngest {
        Some((pid, age)) if age <= max_age => base(Outcome::warning(format!(
            "starting (no heartbeat yet): PID {pid} is {age:.0}s old, grace {max_age:.0}s"
        )))
        .with("pid", pid)
        .with("process_age_seconds", round(age, 1)),
        Some((pid, age)) => base(Outcome::critical(format!(
            "{plain}: never written although PID {pid} has run for {age:.0}s \
             (is the heartbeat writer wired into the agent?)"
        )))
        .with("pid", pid)
        .with("process_age_seconds", round(age, 1)),
        None => base(Outcome::critical(plain)),
    }
}
