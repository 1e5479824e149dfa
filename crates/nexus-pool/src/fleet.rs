//! The fleet: every agent the pool watches, rebuilt each sweep from the
//! config's gateways and the agents of every active or frozen cell; and the
//! probes of one sweep.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nexus_cell::{AgentName, Cell, CellId, CellStore, Status as CellStatus};
use nexus_heartbeat::{Glance, Rule, State as HbState};
use nexus_probe::{
    HttpSpec, ProbeKind, ProbeSpec, ProcessSpec, PythonSyntaxSpec, Runner, Status, TcpSpec, Verdict,
};
use nexus_revive::{Heartbeat, Policy, Probe};

use crate::config::PoolConfig;
use crate::records::Records;

/// How a dead agent is brought back.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviveHow {
    /// A gateway agent's `revive_cmd` (argv, no shell), and where its
    /// output goes (appended), else nowhere. Boxed: rare, and a `Target`
    /// exists per agent.
    Argv(Box<(Vec<String>, Option<PathBuf>)>),
    /// A cell agent: the cell's revive command and environment.
    Cell,
    /// Nothing configured.
    None,
}

/// One watched agent.
#[derive(Debug, Clone)]
pub struct Target {
    /// Stable key: the gateway name, or `<cell>/<agent>` (shared with the
    /// agent's record).
    pub key: Arc<str>,
    /// The agent's name (shared with the snapshot's view).
    pub name: Arc<str>,
    /// Its cell, when it lives in one (the agent's name in it is `name`).
    pub cell: Option<CellId>,
    /// Its cell's uuid as text (shared by the cell's agents).
    pub cell_label: Option<Arc<str>>,
    /// Its mission's label (shared by the cell's agents).
    pub mission: Option<Arc<str>>,
    /// Effective policy: the agent's own, else its cell's or mission's, else the default.
    pub policy: Policy,
    /// Its cell is frozen: reported, never revived.
    pub frozen: bool,
    /// A gateway agent's gateway and heartbeat file, probed each sweep
    /// (boxed: only gateway agents have one, and a `Target` exists per agent).
    pub gateway: Option<Box<Gateway>>,
    /// How to revive it.
    pub revive: ReviveHow,
    /// The pre-flight check before a revive.
    pub preflight: Option<Box<PythonSyntaxSpec>>,
    /// The heartbeat, read when the fleet is built (cell agents: in the
    /// survey's parallel pass, never following a symlink; gateways: one
    /// synchronous pass), never probed: a probe per file would be a blocking
    /// task per file. Its process, when probed, is in the sweep's
    /// [`ProbePlan`].
    pub beat: Glance,
}

impl Target {
    /// Its cell and its name there, when it lives in one.
    pub fn cell_agent(&self) -> Option<(CellId, AgentName)> {
        let cell = self.cell?;
        // The name came from the cell's manifest, so it is valid.
        AgentName::new(&self.name).ok().map(|name| (cell, name))
    }
}

/// What the pool probes of a gateway agent.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Host of the gateway.
    pub host: String,
    /// Gateway port from `[[gateway]] port` (default the seed's WS port).
    pub port: u16,
    /// Heartbeat file path, `~` expanded.
    pub heartbeat: PathBuf,
    /// Stale beyond this.
    pub stale_threshold: Duration,
}

/// The evidence line of a heartbeat the survey read, for events and issues.
fn glance_line(g: &Glance) -> String {
    match (&g.reason, g.age_seconds) {
        (Some(why), _) => format!("heartbeat {}: {why}", g.state),
        (None, Some(age)) => format!(
            "heartbeat {}: last beat {} ago",
            g.state,
            nexus_stdx::format_duration(age.max(0.0))
        ),
        (None, None) => format!("heartbeat {}", g.state),
    }
}

/// How many probes may run at once: `wanted`, capped so that the probes'
/// sockets fit in the open-file limit beside the HTTP connections and the
/// pool's own reserve ([`crate::fds`]; the soft limit is first raised to
/// the hard one).
pub fn probe_concurrency(wanted: usize) -> usize {
    crate::fds::FdBudget::current(wanted).probes
}

/// A host whose processes are this machine's.
pub fn is_local(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h == "::1" || h.starts_with("127.") || h == nexus_stdx::hostname()
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

/// The agents of one sweep: the config's gateways, then each cell's agents,
/// kept in the per-cell vectors the survey's threads built (one flat copy of
/// 10,000 targets would be 2 MB more at the sweep's peak, for nothing).
#[derive(Debug, Default)]
pub struct Fleet {
    parts: Vec<Vec<Target>>,
    /// The cells read (active, frozen or neither).
    pub cells_read: usize,
    /// The cells that could not be read, and why: by directory name (a
    /// corrupt manifest, a symlink, a bad name), or `None` for the whole
    /// root (it cannot be listed).
    pub unreadable: Vec<(Option<String>, String)>,
}

impl Fleet {
    /// How many agents.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// No agent at all.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Vec::is_empty)
    }

    /// Every agent, gateways first, then cell by cell.
    pub fn iter(&self) -> impl Iterator<Item = &Target> + Clone + '_ {
        self.parts.iter().flatten()
    }

    /// The agents in parts: the config's gateways, then one part per cell
    /// (a sweep steps a part and drops it, so the fleet shrinks as the
    /// sweep's records and views grow).
    pub fn into_parts(self) -> Vec<Vec<Target>> {
        self.parts
    }

    /// Number of gateway targets (the first part).
    pub fn gateways(&self) -> usize {
        self.parts.first().map_or(0, Vec::len)
    }
}

/// The strings a pool already holds, for its survey to share instead of
/// allocating them again at every sweep: the agents' keys (in their
/// records) and names. Unknown ones are allocated as before.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// The pool's records (their keys).
    pub records: &'a Records,
    /// Agent names the pool holds.
    pub names: &'a HashSet<Arc<str>>,
}

impl Known<'_> {
    fn key(&self, key: &str) -> Arc<str> {
        self.records
            .key(key)
            .cloned()
            .unwrap_or_else(|| Arc::from(key))
    }

    fn name(&self, name: &str) -> Arc<str> {
        self.names
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::from(name))
    }
}

/// The fleet of one sweep, and warnings (skipped cells, unknown policies).
pub fn targets(
    cfg: &PoolConfig,
    store: Option<&CellStore>,
    known: Known<'_>,
) -> (Fleet, Vec<String>) {
    let mut out = Vec::with_capacity(cfg.gateways.len());
    let mut warnings = Vec::new();
    let now = nexus_stdx::now_epoch();
    let missions = cfg.mission_index();
    for g in &cfg.gateways {
        let (mission, policy, w) = cfg.mission_in(&missions, &g.name);
        warnings.extend(w);
        let heartbeat = nexus_stdx::expand_home(&g.heartbeat_path);
        let stale_threshold = g.stale_threshold.unwrap_or(cfg.pool.dead_threshold);
        // Read here, in one synchronous pass, rather than as a probe: a
        // thousand heartbeat probes would be a thousand blocking tasks.
        let seen = nexus_heartbeat::Glance::read(
            &heartbeat,
            now,
            &Rule::fixed(stale_threshold.as_secs_f64()),
        );
        let name = known.key(&g.name);
        out.push(Target {
            key: name.clone(),
            name,
            cell: None,
            cell_label: None,
            mission: mission.map(Arc::from),
            policy,
            frozen: false,
            gateway: Some(Box::new(Gateway {
                host: g.host.clone(),
                port: g.port,
                heartbeat,
                stale_threshold,
            })),
            revive: if g.revive_cmd.is_empty() {
                ReviveHow::None
            } else {
                ReviveHow::Argv(Box::new((g.revive_cmd.clone(), g.log_file.clone())))
            },
            preflight: g
                .preflight
                .as_ref()
                .map(|p| PythonSyntaxSpec {
                    path: p.clone(),
                    python: g.python.clone(),
                })
                .or_else(|| implied_preflight(&g.revive_cmd, None))
                .map(Box::new),
            beat: seen,
        });
    }
    let mut fleet = Fleet {
        parts: vec![out],
        ..Fleet::default()
    };
    let (Some(store), Some(cells)) = (store, &cfg.cells) else {
        return (fleet, warnings);
    };
    let policy = cells.revive_policy.parse().unwrap_or(Policy::Auto);
    let rule = Rule::fixed(cells.heartbeat_stale_threshold.as_secs_f64());
    let surveyed = store.glance_with(now, &rule, |cell, beats| {
        cell_targets(&cell, beats, policy, known)
    });
    match surveyed {
        Err(e) => {
            warnings.push(format!("cannot read cells root: {e}"));
            fleet.unreadable.push((None, e.to_string()));
        }
        Ok((per_cell, skipped)) => {
            for s in skipped {
                warnings.push(format!("skipped cell {}: {}", s.path.display(), s.error));
                let name = s.path.file_name().map(|n| n.to_string_lossy().into_owned());
                fleet.unreadable.push((name, s.error.to_string()));
            }
            fleet.cells_read = per_cell.len();
            fleet.parts.extend(per_cell);
        }
    }
    (fleet, warnings)
}

/// The targets of one cell's agents (none unless the cell is active or
/// frozen); runs inside the survey's parallel pass, so the cell's manifest
/// and heartbeat documents are dropped as soon as its targets are built.
fn cell_targets(
    cell: &Cell,
    beats: Vec<Glance>,
    default_policy: Policy,
    known: Known<'_>,
) -> Vec<Target> {
    let m = cell.manifest();
    let frozen = match m.status {
        CellStatus::Active => false,
        CellStatus::Frozen => true,
        _ => return Vec::new(),
    };
    let label: Arc<str> = Arc::from(cell.id().to_string());
    let mission: Arc<str> = Arc::from(m.mission.as_str());
    let mut key_buf = String::with_capacity(label.len() + 1 + nexus_cell::MAX_AGENT_NAME);
    // `beats` is in manifest order, one per agent.
    m.agents
        .iter()
        .zip(beats)
        .map(|(agent, glance)| {
            // Built by hand: `format!` was a tenth of the survey's time.
            key_buf.clear();
            key_buf.push_str(&label);
            key_buf.push('/');
            key_buf.push_str(agent.name.as_str());
            let key = known.key(&key_buf);
            Target {
                name: known.name(agent.name.as_str()),
                cell: Some(cell.id()),
                cell_label: Some(label.clone()),
                mission: Some(mission.clone()),
                policy: agent
                    .revive_policy
                    .or(m.revive_policy)
                    .unwrap_or(default_policy),
                frozen,
                gateway: None,
                revive: if agent.revive_cmd.as_ref().is_some_and(|c| !c.is_empty()) {
                    ReviveHow::Cell
                } else {
                    ReviveHow::None
                },
                preflight: agent
                    .revive_cmd
                    .as_deref()
                    .and_then(|c| implied_preflight(c, Some(&cell.workspace())))
                    .map(Box::new),
                beat: glance,
                key,
            }
        })
        .collect()
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
    /// The verdicts of the probes that ran (empty for a cell agent the pool
    /// did not launch: its heartbeat was read in the survey).
    verdicts: Vec<Verdict>,
}

impl Seen {
    /// One line per probe of `target` (and its surveyed heartbeat), for
    /// events and issues; built only when an agent is reported, not for the
    /// thousands that are fine.
    pub fn lines(&self, target: &Target) -> Vec<String> {
        self.verdicts
            .iter()
            .map(|v| format!("{}: {}", v.status, v.summary))
            .chain(std::iter::once(glance_line(&target.beat)))
            .collect()
    }
}

fn alive(v: Option<&Verdict>) -> Option<bool> {
    match v?.status {
        Status::Ok => Some(true),
        Status::Warning | Status::Critical => Some(false),
        Status::Unknown => None,
    }
}

fn pids_of(p: Option<&Verdict>) -> Vec<u32> {
    p.and_then(|v| v.details.get("pids").cloned())
        .and_then(|v| serde_json::from_value::<Vec<u32>>(v).ok())
        .unwrap_or_default()
}

/// The gateway from its TCP probe and its `/health` (when probed): down if
/// either says so (a wedged gateway still accepts TCP); a health endpoint
/// that is not there (Unknown) leaves it to the TCP probe.
fn gateway_alive(tcp: Option<&Verdict>, health: Option<&Verdict>) -> Option<bool> {
    match (alive(tcp), alive(health)) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (t, h) => t.or(h),
    }
}

/// A sweep's view of an agent whose heartbeat was read in the survey.
fn seen_from(b: &Glance, [g, p, h]: [Option<Verdict>; 3]) -> Seen {
    let heartbeat = match b.state {
        HbState::Fresh => Heartbeat::Fresh,
        HbState::Missing => Heartbeat::Missing,
        _ => Heartbeat::Stale,
    };
    Seen {
        probe: Probe {
            gateway: gateway_alive(g.as_ref(), h.as_ref()),
            process: alive(p.as_ref()),
            heartbeat,
        },
        heartbeat_age: b.age_seconds,
        heartbeat_pid: b.pid,
        pids: pids_of(p.as_ref()),
        verdicts: [g, h, p].into_iter().flatten().collect(),
    }
}

/// The verdicts of one sweep's probes, by agent key: taken one agent at a
/// time as the sweep steps them, so no per-agent vector outlives its step.
#[derive(Debug, Default)]
pub struct Probed {
    verdicts: HashMap<Arc<str>, [Option<Verdict>; 3]>,
}

impl Probed {
    /// What the sweep saw of `t`.
    pub fn take(&mut self, t: &Target) -> Seen {
        // Most agents (cell agents the pool did not launch) had no probe.
        let probed = if self.verdicts.is_empty() {
            Default::default()
        } else {
            self.verdicts.remove(&t.key).unwrap_or_default()
        };
        seen_from(&t.beat, probed)
    }
}

/// The probes of one sweep, planned from the config and the pool's own
/// children alone, before the fleet is read: so they run (network waits,
/// one `/proc` scan) while the survey reads every cell and heartbeat on
/// other threads. Each gateway's port and process (its child's PID, else
/// its `process_pattern` on a local host), and the process of every cell
/// agent the pool launched. Other cell agents need no probe.
#[derive(Debug, Default)]
pub struct ProbePlan {
    specs: Vec<ProbeSpec>,
    /// Per spec: the agent's key, and its slot (0 gateway, 1 process, 2 the
    /// gateway's `/health`).
    index: Vec<(Arc<str>, usize)>,
}

impl ProbePlan {
    /// The plan for `cfg`'s gateways and the pool's `children` (key → PID).
    pub fn new(cfg: &PoolConfig, children: &HashMap<String, u32>, timeout: Duration) -> ProbePlan {
        let mut plan = ProbePlan::default();
        let mut add = |key: &Arc<str>, slot: usize, kind: ProbeKind| {
            let label = ["gateway", "process", "health"][slot];
            plan.specs
                .push(ProbeSpec::new(format!("{key}.{label}"), kind).timeout(timeout));
            plan.index.push((key.clone(), slot));
        };
        let mut gateways = std::collections::HashSet::with_capacity(cfg.gateways.len());
        for g in &cfg.gateways {
            let key: Arc<str> = Arc::from(g.name.as_str());
            add(&key, 0, ProbeKind::Tcp(TcpSpec::new(&g.host, g.port)));
            if g.health {
                let health = HttpSpec::gateway_health(&g.host, g.health_port);
                add(&key, 2, ProbeKind::Http(health));
            }
            let process = match children.get(&g.name) {
                // The pool launches agents itself: its children must count.
                Some(pid) => Some(ProcessSpec::pid(*pid)),
                None if is_local(&g.host) => Some(ProcessSpec::pattern(&g.process_pattern)),
                None => None,
            };
            if let Some(p) = process {
                add(&key, 1, ProbeKind::Process(p.exclude_children(false)));
            }
            gateways.insert(key);
        }
        // The cell agents the pool launched (keys `<cell>/<agent>`); one whose
        // cell has left the fleet is probed for nothing, and dropped.
        for (key, pid) in children {
            if !gateways.contains(key.as_str()) {
                let process = ProcessSpec::pid(*pid).exclude_children(false);
                add(&Arc::from(key.as_str()), 1, ProbeKind::Process(process));
            }
        }
        plan
    }

    /// Nothing to probe.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Keeps the probes of the agents whose key `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let mut specs = std::mem::take(&mut self.specs).into_iter();
        let mut index = Vec::new();
        for (entry, spec) in std::mem::take(&mut self.index)
            .into_iter()
            .zip(specs.by_ref())
        {
            if keep(&entry.0) {
                index.push(entry);
                self.specs.push(spec);
            }
        }
        self.index = index;
    }

    /// Runs every probe at once, each under its own timeout, with one
    /// `/proc` scan for all process probes.
    pub async fn run(self, runner: &Runner) -> Probed {
        let verdicts = if self.specs.is_empty() {
            Vec::new()
        } else {
            runner.run(&self.specs).await
        };
        let mut per: HashMap<Arc<str>, [Option<Verdict>; 3]> =
            HashMap::with_capacity(self.index.len());
        for ((key, slot), v) in self.index.into_iter().zip(verdicts) {
            per.entry(key).or_default()[slot] = Some(v);
        }
        Probed { verdicts: per }
    }
}

#[cfg(test)]
mod plan {
    use super::*;

    #[test]
    fn the_probes_are_planned_from_the_config_and_the_children_alone() {
        let cfg = PoolConfig::from_seed_json(
            r#"{"gateways": [
                {"name": "local", "port": 8765},
                {"name": "remote", "host": "10.0.0.5", "port": 8765},
                {"name": "launched", "port": 8766}
            ]}"#,
            "pool.json",
        )
        .unwrap();
        let children = HashMap::from([
            ("launched".to_string(), 41),
            (
                "00000000-1234-4b5e-8def-000000000000/agent-0001".to_string(),
                42,
            ),
        ]);
        let plan = ProbePlan::new(&cfg, &children, Duration::from_secs(1));
        let mut got: Vec<(String, usize, String)> = plan
            .index
            .iter()
            .zip(&plan.specs)
            .map(|((key, slot), spec)| (key.to_string(), *slot, spec.kind.as_str().to_string()))
            .collect();
        got.sort();
        let want = [
            (
                "00000000-1234-4b5e-8def-000000000000/agent-0001",
                1,
                "process",
            ),
            ("launched", 0, "tcp"),
            ("launched", 1, "process"),
            ("launched", 2, "http"),
            ("local", 0, "tcp"),
            ("local", 1, "process"),
            ("local", 2, "http"),
            // A remote gateway's processes are not this machine's.
            ("remote", 0, "tcp"),
            ("remote", 2, "http"),
        ]
        .map(|(k, s, kind)| (k.to_string(), s, kind.to_string()));
        assert_eq!(got, want);
        // The launched gateway is found by its PID, not its pattern.
        let launched = plan
            .index
            .iter()
            .zip(&plan.specs)
            .find(|((k, slot), _)| &**k == "launched" && *slot == 1)
            .map(|(_, spec)| spec.kind.clone());
        assert!(
            matches!(launched, Some(ProbeKind::Process(ref p)) if p.pid == Some(41)),
            "{launched:?}"
        );
        // `/health` on the gateway's host, the seed's port unless told.
        let urls: Vec<String> = plan
            .specs
            .iter()
            .filter_map(|s| match &s.kind {
                ProbeKind::Http(h) => Some(h.url.clone()),
                _ => None,
            })
            .collect();
        assert!(
            urls.contains(&"http://10.0.0.5:8766/health".to_string()),
            "{urls:?}"
        );
        let cfg = PoolConfig::parse(
            "[[gateway]]\nname = \"a\"\nhealth = false\n[[gateway]]\nname = \"b\"\nhealth_port = 9766\n",
            "pool.toml",
        )
        .unwrap();
        let plan = ProbePlan::new(&cfg, &HashMap::new(), Duration::from_secs(1));
        let urls: Vec<(&str, &str)> = plan
            .index
            .iter()
            .zip(&plan.specs)
            .filter_map(|((k, _), s)| match &s.kind {
                ProbeKind::Http(h) => Some((&**k, h.url.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(urls, [("b", "http://localhost:9766/health")]);
    }

    fn verdict(status: Status) -> Verdict {
        Verdict {
            name: "x".into(),
            kind: "tcp".into(),
            status,
            summary: String::new(),
            details: Default::default(),
            latency: Duration::ZERO,
            checked_at: 0.0,
        }
    }

    /// A wedged gateway accepts TCP: its `degraded` /health says it is down;
    /// no endpoint leaves the TCP probe to decide.
    #[test]
    fn the_gateway_is_down_if_tcp_or_its_health_says_so() {
        use Status::*;
        let cases = [
            (Some(Ok), None, Some(true)),
            (Some(Ok), Some(Ok), Some(true)),
            (Some(Ok), Some(Unknown), Some(true)),
            (Some(Ok), Some(Critical), Some(false)),
            (Some(Critical), Some(Ok), Some(false)),
            (Some(Critical), Some(Unknown), Some(false)),
            (Some(Unknown), Some(Ok), Some(true)),
            (Some(Unknown), Some(Unknown), None),
            (None, None, None),
        ];
        for (tcp, health, want) in cases {
            let (t, h) = (tcp.map(verdict), health.map(verdict));
            assert_eq!(
                gateway_alive(t.as_ref(), h.as_ref()),
                want,
                "{tcp:?} {health:?}"
            );
        }
    }
}

#[cfg(test)]
mod footprint {
    use super::{Seen, Target};
    use crate::view::AgentView;

    /// A `Target`, a `Seen` and an `AgentView` exist per agent per sweep: at
    /// 10,000 agents every byte here is 10 kB of the daemon's peak RSS
    /// (docs/PERFORMANCE.md). Box what only gateway agents need.
    #[test]
    fn per_agent_structs_stay_small() {
        let sizes = (
            size_of::<Target>(),
            size_of::<Seen>(),
            size_of::<AgentView>(),
        );
        eprintln!("Target, Seen, AgentView: {sizes:?} bytes");
        assert!(sizes.0 <= 176, "Target grew: {sizes:?}");
        assert!(sizes.1 <= 80, "Seen grew: {sizes:?}");
        // 160: `waiting` (what a sick agent waits for) is 16 of them, and
        // `acknowledged_by` (the page's acknowledgement) 16 more: 160 kB of
        // peak RSS at 10,000 agents, for a field the page cannot do without.
        assert!(sizes.2 <= 160, "AgentView grew: {sizes:?}");
    }
}
