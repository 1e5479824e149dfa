//! The fleet: every agent the pool watches, rebuilt each sweep from the
//! config's gateways and the agents of every active or frozen cell; and the
//! probes of one sweep.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use nexus_cell::{AgentName, CellId, CellStore, RevivePolicy, Status as CellStatus};
use nexus_heartbeat::{Classification, Rule, State as HbState};
use nexus_probe::{
    HeartbeatSpec, ProbeKind, ProbeSpec, ProcessSpec, PythonSyntaxSpec, Runner, Status, TcpSpec,
    Verdict,
};
use nexus_revive::{Heartbeat, Policy, Probe};

use crate::config::PoolConfig;

/// How a dead agent is brought back.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviveHow {
    /// A gateway agent's `revive_cmd` (argv, no shell).
    Argv {
        /// The command.
        argv: Vec<String>,
        /// Where its output goes (appended), else nowhere.
        log: Option<PathBuf>,
    },
    /// A cell agent: the cell's revive command and environment.
    Cell,
    /// Nothing configured.
    None,
}

/// One watched agent.
#[derive(Debug, Clone)]
pub struct Target {
    /// Stable key: the gateway name, or `<cell>/<agent>`.
    pub key: String,
    /// The agent's name.
    pub name: String,
    /// Its cell, when it lives in one.
    pub cell: Option<(CellId, AgentName)>,
    /// Its mission's label.
    pub mission: Option<String>,
    /// The revive policy.
    pub policy: Policy,
    /// Its cell is frozen: reported, never revived.
    pub frozen: bool,
    /// Gateway host and port, when it has one.
    pub gateway: Option<(String, u16)>,
    /// The heartbeat file.
    pub heartbeat: PathBuf,
    /// Stale beyond this.
    pub stale_threshold: Duration,
    /// How to find its process (`None`: not applicable).
    pub process: Option<ProcessSpec>,
    /// How to revive it.
    pub revive: ReviveHow,
    /// The pre-flight check before a revive.
    pub preflight: Option<PythonSyntaxSpec>,
    /// The heartbeat, already read (cell agents: one parallel pass over all
    /// cells that never follows a symlink); `None`: probe it.
    pub heartbeat_seen: Option<Classification>,
}

/// A host whose processes are this machine's.
pub fn is_local(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h == "::1" || h.starts_with("127.") || h == nexus_heartbeat::hostname()
}

fn expand_home(p: &std::path::Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        Err(_) => p.to_path_buf(),
    }
}

fn policy_of(p: RevivePolicy) -> Policy {
    match p {
        RevivePolicy::Auto => Policy::Auto,
        RevivePolicy::Ask => Policy::Ask,
        RevivePolicy::Never => Policy::Never,
    }
}

/// A revive command that runs a Python file gets that file syntax-checked
/// before each launch (`python3 agent.py ...` → `agent.py`, relative to
/// `cwd`), so a broken deploy escalates instead of crash-looping.
pub fn implied_preflight(
    argv: &[String],
    cwd: Option<&std::path::Path>,
) -> Option<PythonSyntaxSpec> {
    let (program, args) = argv.split_first()?;
    let base = std::path::Path::new(program).file_name()?.to_str()?;
    if !base.starts_with("python") {
        return None;
    }
    let script = args
        .iter()
        .find(|a| a.ends_with(".py") && !a.starts_with('-'))?;
    let path = PathBuf::from(script);
    let path = match cwd {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    };
    Some(PythonSyntaxSpec {
        path,
        python: program.clone(),
    })
}

/// The fleet of one sweep, and warnings (skipped cells, unknown policies).
pub fn targets(
    cfg: &PoolConfig,
    store: Option<&CellStore>,
    children: &HashMap<String, u32>,
) -> (Vec<Target>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for g in &cfg.gateways {
        let (mission, policy, w) = cfg.mission_of(&g.name);
        warnings.extend(w);
        let process = match children.get(&g.name) {
            // The pool launches agents itself: its children must count.
            Some(pid) => Some(ProcessSpec::pid(*pid).exclude_children(false)),
            None if is_local(&g.host) => {
                Some(ProcessSpec::pattern(&g.process_pattern).exclude_children(false))
            }
            None => None,
        };
        out.push(Target {
            key: g.name.clone(),
            name: g.name.clone(),
            cell: None,
            mission,
            policy,
            frozen: false,
            gateway: Some((g.host.clone(), g.port)),
            heartbeat: expand_home(&g.heartbeat_path),
            stale_threshold: g.stale_threshold.unwrap_or(cfg.pool.dead_threshold),
            process,
            revive: if g.revive_cmd.is_empty() {
                ReviveHow::None
            } else {
                ReviveHow::Argv {
                    argv: g.revive_cmd.clone(),
                    log: g.log_file.clone(),
                }
            },
            preflight: g
                .preflight
                .as_ref()
                .map(|p| PythonSyntaxSpec {
                    path: p.clone(),
                    python: g.python.clone(),
                })
                .or_else(|| implied_preflight(&g.revive_cmd, None)),
            heartbeat_seen: None,
        });
    }
    let (Some(store), Some(cells)) = (store, &cfg.cells) else {
        return (out, warnings);
    };
    let default_policy = cells.revive_policy.parse().unwrap_or(Policy::Auto);
    let rule = Rule::fixed(cells.heartbeat_stale_threshold.as_secs_f64());
    match store.survey(nexus_heartbeat::now_epoch(), &rule) {
        Err(e) => warnings.push(format!("cannot read cells root: {e}")),
        Ok((surveyed, skipped)) => {
            for s in &skipped {
                warnings.push(format!("skipped cell {}: {}", s.path.display(), s.error));
            }
            for health in surveyed {
                let cell = health.cell;
                let mut beats = health.agents;
                let m = cell.manifest();
                let frozen = match m.status {
                    CellStatus::Active => false,
                    CellStatus::Frozen => true,
                    _ => continue,
                };
                for agent in m.agents.iter() {
                    let key = format!("{}/{}", cell.id(), agent.name);
                    let seen = beats
                        .iter()
                        .position(|(n, _)| *n == agent.name)
                        .map(|i| beats.swap_remove(i).1);
                    let policy = agent
                        .revive_policy
                        .or(m.revive_policy)
                        .map_or(default_policy, policy_of);
                    out.push(Target {
                        key: key.clone(),
                        name: agent.name.to_string(),
                        cell: Some((cell.id(), agent.name.clone())),
                        mission: Some(m.mission.clone()),
                        policy,
                        frozen,
                        gateway: None,
                        heartbeat: cell.heartbeat_path(&agent.name),
                        stale_threshold: cells.heartbeat_stale_threshold,
                        process: children
                            .get(&key)
                            .map(|pid| ProcessSpec::pid(*pid).exclude_children(false)),
                        revive: if agent.revive_cmd.as_ref().is_some_and(|c| !c.is_empty()) {
                            ReviveHow::Cell
                        } else {
                            ReviveHow::None
                        },
                        preflight: agent
                            .revive_cmd
                            .as_deref()
                            .and_then(|c| implied_preflight(c, Some(&cell.workspace()))),
                        heartbeat_seen: seen,
                    });
                }
            }
        }
    }
    (out, warnings)
}

/// What one sweep saw of one agent.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The three probes, for the state machine.
    pub probe: Probe,
    /// Seconds since the last heartbeat.
    pub heartbeat_age: Option<f64>,
    /// The PID written in the heartbeat.
    pub heartbeat_pid: Option<u32>,
    /// The PIDs of matching processes.
    pub pids: Vec<u32>,
    /// One line per probe, for events and issues.
    pub lines: Vec<String>,
}

fn alive(v: Option<&Verdict>) -> Option<bool> {
    match v?.status {
        Status::Ok => Some(true),
        Status::Warning | Status::Critical => Some(false),
        Status::Unknown => None,
    }
}

/// A sweep's view of an agent whose heartbeat was read in the survey.
fn seen_from(c: &Classification, g: Option<Verdict>, p: Option<Verdict>) -> Seen {
    let heartbeat = match c.state {
        HbState::Fresh => Heartbeat::Fresh,
        HbState::Missing => Heartbeat::Missing,
        _ => Heartbeat::Stale,
    };
    let obs = c.observation.as_ref();
    Seen {
        probe: Probe {
            gateway: alive(g.as_ref()),
            process: alive(p.as_ref()),
            heartbeat,
        },
        heartbeat_age: c
            .age_seconds
            .filter(|_| obs.is_some_and(|o| o.timestamp.is_some())),
        heartbeat_pid: obs
            .and_then(|o| o.u64_field("pid"))
            .and_then(|p| u32::try_from(p).ok()),
        pids: p
            .as_ref()
            .and_then(|v| v.details.get("pids").cloned())
            .and_then(|v| serde_json::from_value::<Vec<u32>>(v).ok())
            .unwrap_or_default(),
        lines: [g, p]
            .into_iter()
            .flatten()
            .map(|v| format!("{}: {}", v.status, v.summary))
            .chain(std::iter::once(format!(
                "heartbeat {}: {}",
                c.state, c.reason
            )))
            .collect(),
    }
}

/// Probes the whole fleet at once: every probe concurrently under its own
/// timeout, one `/proc` scan for all process probes.
pub async fn probe(runner: &Runner, fleet: &[Target], timeout: Duration) -> Vec<Seen> {
    let mut specs = Vec::new();
    let mut index = Vec::new(); // (target, kind)
    for (i, t) in fleet.iter().enumerate() {
        if let Some((host, port)) = &t.gateway {
            specs.push(
                ProbeSpec::new(
                    format!("{i}.gateway"),
                    ProbeKind::Tcp(TcpSpec::new(host, *port)),
                )
                .timeout(timeout),
            );
            index.push((i, 'g'));
        }
        if let Some(p) = &t.process {
            specs.push(
                ProbeSpec::new(format!("{i}.process"), ProbeKind::Process(p.clone()))
                    .timeout(timeout),
            );
            index.push((i, 'p'));
        }
        if t.heartbeat_seen.is_none() {
            let hb = HeartbeatSpec {
                path: t.heartbeat.clone(),
                max_age: t.stale_threshold,
                grace: None,
            };
            specs.push(
                ProbeSpec::new(format!("{i}.heartbeat"), ProbeKind::Heartbeat(hb)).timeout(timeout),
            );
            index.push((i, 'h'));
        }
    }
    let verdicts = runner.run(&specs).await;
    let mut per: Vec<[Option<Verdict>; 3]> = vec![[None, None, None]; fleet.len()];
    for ((i, kind), v) in index.into_iter().zip(verdicts) {
        let slot = match kind {
            'g' => 0,
            'p' => 1,
            _ => 2,
        };
        per[i][slot] = Some(v);
    }
    per.into_iter()
        .zip(fleet)
        .map(|([g, p, h], t)| {
            if let Some(c) = &t.heartbeat_seen {
                return seen_from(c, g, p);
            }
            let heartbeat = match &h {
                Some(v) if v.status == Status::Ok => Heartbeat::Fresh,
                Some(v) if v.status == Status::Unknown => Heartbeat::Unknown,
                Some(v) if v.details.get("state").and_then(|s| s.as_str()) == Some("missing") => {
                    Heartbeat::Missing
                }
                Some(_) => Heartbeat::Stale,
                None => Heartbeat::Unknown,
            };
            let detail =
                |v: &Option<Verdict>, k: &str| v.as_ref().and_then(|v| v.details.get(k)).cloned();
            let pids = detail(&p, "pids")
                .and_then(|v| serde_json::from_value::<Vec<u32>>(v).ok())
                .unwrap_or_default();
            Seen {
                probe: Probe {
                    gateway: alive(g.as_ref()),
                    process: alive(p.as_ref()),
                    heartbeat,
                },
                heartbeat_age: detail(&h, "age_seconds").and_then(|v| v.as_f64()),
                heartbeat_pid: detail(&h, "pid")
                    .and_then(|v| v.as_u64())
                    .and_then(|p| u32::try_from(p).ok()),
                pids,
                lines: [g, p, h]
                    .into_iter()
                    .flatten()
                    .map(|v| format!("{}: {}", v.status, v.summary))
                    .collect(),
            }
        })
        .collect()
}
