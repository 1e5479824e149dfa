//! `mission-cell`: create, inspect, checkpoint and tear down mission cells.
//!
//! Every subcommand takes `--root DIR` (default `$MISSION_CELLS_ROOT`, else
//! `/var/missions`) and `--json`. Exit codes: 0 done, 1 the operation
//! failed (no such cell, illegal transition, I/O error), 2 usage or
//! configuration error (bad flags, hostile names, unreadable proposal).

use nexus_cli::{Fail, errln, out, outln};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use nexus_cell::{
    AgentName, Cell, CellId, CellStore, Event, Join, NewCell, RevivePolicy, Role, Status,
    parse_proposal,
};
use nexus_heartbeat::Rule;
use nexus_stdx::now_epoch;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "mission-cell", version, about = "Manage mission cells")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args)]
struct Global {
    /// Cells root directory.
    #[arg(long, global = true, env = nexus_cell::ROOT_ENV, default_value = nexus_cell::DEFAULT_ROOT)]
    root: PathBuf,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Provision a new cell (from flags or a mission proposal); prints its uuid.
    Create(CreateArgs),
    /// List every cell under the root.
    List {
        /// Only cells with this status.
        #[arg(long)]
        status: Option<Status>,
    },
    /// Show a cell: manifest, agents and their heartbeats.
    Show {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
        /// Heartbeats older than this many seconds are stale.
        #[arg(long, default_value_t = 60.0)]
        stale_after: f64,
    },
    /// Add an agent and how to revive it (`-- CMD ARGS...`).
    Join(JoinArgs),
    /// Remove an agent.
    Leave {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
        /// Agent to remove, as named at `join`.
        #[arg(long)]
        agent: String,
    },
    /// Pause a cell (active -> frozen): shown, never revived.
    Freeze {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
    },
    /// Resume a frozen cell (frozen -> active).
    Resume {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
    },
    /// Mark the mission complete (active|frozen -> archived).
    Archive {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
    },
    /// Delete an archived (or never used) cell; nothing outside it is touched.
    Destroy {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
    },
    /// Write checkpoints/TIMESTAMP.tar.gz of the workspace and manifest.
    Checkpoint {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
    },
    /// Replace the workspace with a checkpoint's (default: the newest).
    Restore {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
        /// Checkpoint file name in checkpoints/.
        checkpoint: Option<String>,
    },
    /// Print the blank mission proposal (fill it in, then `create --proposal`).
    Template,
    /// Print the event log (bad lines are reported on stderr and skipped).
    Events {
        /// The cell's UUID (as `create` and `list` print it).
        uuid: String,
        /// Only these kinds (repeatable), e.g. --kind agent_joined.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Only the last N events.
        #[arg(long)]
        tail: Option<usize>,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["mission", "proposal"])))]
struct CreateArgs {
    /// One-sentence mission.
    #[arg(long)]
    mission: Option<String>,
    /// A filled-in mission proposal (Markdown, the Gitea issue template).
    #[arg(long, value_name = "FILE")]
    proposal: Option<PathBuf>,
    /// Short human name (default: the proposal title).
    #[arg(long)]
    name: Option<String>,
    /// Who creates the cell [default: $USER].
    #[arg(long)]
    by: Option<String>,
    /// The mission's Gitea issue number.
    #[arg(long)]
    gitea_issue: Option<u64>,
    /// The repository the mission works on.
    #[arg(long)]
    repo: Option<String>,
    /// The cell's revive policy: auto, ask or never.
    #[arg(long)]
    policy: Option<RevivePolicy>,
}

#[derive(Debug, Args)]
struct JoinArgs {
    /// The cell's UUID (as `create` and `list` print it).
    uuid: String,
    /// Agent name: [A-Za-z0-9._-], at most 64 bytes.
    #[arg(long)]
    agent: String,
    /// developer, reviewer, observer or coordinator.
    #[arg(long)]
    role: Role,
    /// Revive policy for this agent: auto, ask or never.
    #[arg(long)]
    policy: Option<RevivePolicy>,
    /// The agent's home outside the cell (absolute; never touched).
    #[arg(long)]
    home: Option<PathBuf>,
    /// How to revive the agent: program and arguments, run in workspace/.
    #[arg(last = true, value_name = "REVIVE_CMD")]
    revive_cmd: Vec<String>,
}

type Out = Result<(), Fail>;

fn main() -> ExitCode {
    // Output never panics (`>/dev/full`, `| head`); a stdout that failed
    // for another reason than a closed pipe fails the run (nexus-cli).
    nexus_cli::finish("mission-cell", main_inner())
}

fn main_inner() -> ExitCode {
    if let Some(code) = nexus_cli::generate_if_asked::<Cli>() {
        return code;
    }
    nexus_cli::init_logging(nexus_cli::ONE_SHOT);
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("mission-cell"),
    }
}

fn run(cli: Cli) -> Out {
    let store = CellStore::new(&cli.global.root);
    let json = cli.global.json;
    match cli.cmd {
        Cmd::Create(a) => create(&store, a, json),
        Cmd::List { status } => list(&store, status, json),
        Cmd::Show { uuid, stale_after } => show(&store, &uuid, stale_after, json),
        Cmd::Join(a) => join(&store, a, json),
        Cmd::Leave { uuid, agent } => {
            let agent = AgentName::new(&agent)?;
            move_to(json, || store.leave(&id(&uuid)?, &agent))
        }
        Cmd::Freeze { uuid } => move_to(json, || store.set_status(&id(&uuid)?, Status::Frozen)),
        Cmd::Resume { uuid } => move_to(json, || store.set_status(&id(&uuid)?, Status::Active)),
        Cmd::Archive { uuid } => move_to(json, || store.set_status(&id(&uuid)?, Status::Archived)),
        Cmd::Destroy { uuid } => destroy(&store, &uuid, json),
        Cmd::Checkpoint { uuid } => checkpoint(&store, &uuid, json),
        Cmd::Restore { uuid, checkpoint } => restore(&store, &uuid, checkpoint, json),
        Cmd::Events { uuid, kinds, tail } => events(&store, &uuid, &kinds, tail, json),
        Cmd::Template => {
            if json {
                print_json(&json!({ "template": nexus_cell::PROPOSAL_TEMPLATE }));
            } else {
                out!("{}", nexus_cell::PROPOSAL_TEMPLATE);
            }
            Ok(())
        }
    }
}

fn id(s: &str) -> Result<CellId, nexus_cell::Error> {
    Ok(CellId::parse(s)?)
}

fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(e) => errln!("mission-cell: {e}"),
    }
}

fn summary(cell: &Cell) -> Value {
    let m = cell.manifest();
    json!({
        "uuid": m.uuid,
        "name": m.name,
        "status": m.status,
        "mission": m.mission,
        "agents": m.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        "dir": cell.dir(),
    })
}

fn create(store: &CellStore, a: CreateArgs, json: bool) -> Out {
    let by =
        a.by.or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "mission-cell".to_string());
    let mut new = match (&a.proposal, a.mission) {
        (Some(path), _) => {
            let text = read_proposal(path)?;
            parse_proposal(&text)
                .map_err(|e| Fail::usage(format!("{}: {e}", path.display())))?
                .into_new_cell(by, &text)
        }
        (None, Some(mission)) => NewCell {
            mission,
            created_by: by,
            ..NewCell::default()
        },
        (None, None) => return Err(Fail::usage("give --mission or --proposal")),
    };
    new.name = a.name.or(new.name);
    new.gitea_issue = a.gitea_issue.or(new.gitea_issue);
    new.repo = a.repo.or(new.repo);
    new.revive_policy = a.policy.or(new.revive_policy);
    let cell = store.provision(new)?;
    if json {
        print_json(&summary(&cell));
    } else {
        outln!("{}", cell.id());
    }
    Ok(())
}

/// At most 1 MiB of UTF-8 text.
fn read_proposal(path: &Path) -> Result<String, Fail> {
    let meta =
        std::fs::metadata(path).map_err(|e| Fail::usage(format!("{}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err(Fail::usage(format!(
            "{}: not a regular file of at most 1 MiB",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Fail::usage(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        Fail::usage(format!(
            "{}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

fn list(store: &CellStore, status: Option<Status>, json: bool) -> Out {
    let found = match store.discover() {
        Err(nexus_cell::Error::RootMissing { root }) => {
            return Err(Fail::failure(format!("{} does not exist", root.display())));
        }
        other => other?,
    };
    let cells: Vec<&Cell> = found
        .cells
        .iter()
        .filter(|c| status.is_none_or(|s| c.manifest().status == s))
        .collect();
    if json {
        let skipped: Vec<Value> = found
            .skipped
            .iter()
            .map(|s| json!({"path": s.path, "error": s.error.to_string()}))
            .collect();
        print_json(&json!({
            "root": store.root(),
            "cells": cells.iter().map(|c| summary(c)).collect::<Vec<_>>(),
            "skipped": skipped,
        }));
        return Ok(());
    }
    for c in &cells {
        let m = c.manifest();
        outln!("{}: {} — {}", m.uuid, m.status, m.mission);
    }
    for s in &found.skipped {
        let name = s.path.file_name().unwrap_or_default().to_string_lossy();
        outln!("{name}: [unreadable manifest]");
        errln!("mission-cell: skipped {}", s.error);
    }
    if cells.is_empty() && found.skipped.is_empty() {
        outln!("No mission cells found in {}", store.root().display());
    }
    Ok(())
}

fn show(store: &CellStore, uuid: &str, stale_after: f64, json: bool) -> Out {
    let cell = store.open(&id(uuid)?)?;
    let m = cell.manifest();
    let beats = cell.heartbeats(now_epoch(), &Rule::fixed(stale_after));
    if json {
        let mut v = serde_json::to_value(m).map_err(Fail::failure)?;
        v["dir"] = json!(cell.dir());
        v["heartbeats"] = beats
            .iter()
            .map(|(n, c)| {
                json!({"agent": n, "state": c.state, "age_seconds": c.age_seconds,
                       "reason": c.reason, "path": c.path})
            })
            .collect();
        v["checkpoints"] = json!(store.checkpoints(&m.uuid).unwrap_or_default());
        print_json(&v);
        return Ok(());
    }
    outln!("Cell {} [{}]", m.uuid, m.status);
    if let Some(n) = &m.name {
        outln!("  name:       {n}");
    }
    outln!("  mission:    {}", m.mission);
    let created = m
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    outln!("  created:    {created} by {}", m.created_by);
    outln!("  dir:        {}", cell.dir().display());
    if let Some(p) = m.revive_policy {
        outln!("  policy:     {p}");
    }
    if m.agents.is_empty() {
        outln!("  no agents");
    }
    for (a, (_, c)) in m.agents.iter().zip(&beats) {
        let status = c
            .observation
            .as_ref()
            .and_then(|o| o.str_field("status"))
            .unwrap_or("?");
        let revive = a
            .revive_cmd
            .as_ref()
            .map_or("no revive command".to_string(), |c| c.join(" "));
        outln!(
            "  {} ({}): {} [{}] {} — revive: {}",
            a.name,
            a.role,
            status,
            c.state.as_str().to_uppercase(),
            c.reason,
            revive
        );
    }
    for i in &m.invited {
        outln!("  invited: {} ({})", i.name, i.role);
    }
    Ok(())
}

fn join(store: &CellStore, a: JoinArgs, json: bool) -> Out {
    let j = Join {
        agent: AgentName::new(&a.agent)?,
        role: a.role,
        home: a.home,
        revive_cmd: (!a.revive_cmd.is_empty()).then_some(a.revive_cmd),
        revive_policy: a.policy,
    };
    move_to(json, || store.join(&id(&a.uuid)?, j))
}

/// Runs a manifest-changing operation and prints the cell's new state.
fn move_to(json: bool, op: impl FnOnce() -> Result<Cell, nexus_cell::Error>) -> Out {
    let cell = op()?;
    if json {
        print_json(&summary(&cell));
    } else {
        outln!("{}: {}", cell.id(), cell.manifest().status);
    }
    Ok(())
}

fn destroy(store: &CellStore, uuid: &str, json: bool) -> Out {
    let id = id(uuid)?;
    store.destroy(&id)?;
    if json {
        print_json(&json!({"uuid": id, "status": Status::Destroyed}));
    } else {
        outln!("{id}: destroyed");
    }
    Ok(())
}

fn checkpoint(store: &CellStore, uuid: &str, json: bool) -> Out {
    let cp = store.checkpoint(&id(uuid)?)?;
    for s in &cp.skipped {
        errln!(
            "mission-cell: not archived (a socket, FIFO or device, changed while being archived, or another user's hard-linked file): {s}"
        );
    }
    if json {
        print_json(&json!(cp));
    } else {
        outln!("{}", cp.name);
    }
    Ok(())
}

fn restore(store: &CellStore, uuid: &str, name: Option<String>, json: bool) -> Out {
    let id = id(uuid)?;
    let name = match name {
        Some(n) => n,
        None => store
            .checkpoints(&id)?
            .pop()
            .ok_or_else(|| Fail::failure(format!("cell {id} has no checkpoints")))?,
    };
    store.restore(&id, &name)?;
    if json {
        print_json(&json!({"uuid": id, "restored": name}));
    } else {
        outln!("{id}: workspace restored from {name}");
    }
    Ok(())
}

fn events(store: &CellStore, uuid: &str, kinds: &[String], tail: Option<usize>, json: bool) -> Out {
    let cell = store.open(&id(uuid)?)?;
    let log = cell.events()?;
    for p in log.problems() {
        errln!("mission-cell: skipped {p}");
    }
    let picked: Vec<&Event> = log.tail(tail.unwrap_or(usize::MAX), kinds);
    if json {
        // Serialised directly: keeps `ts` and `event` first.
        match serde_json::to_string_pretty(&picked) {
            Ok(s) => outln!("{s}"),
            Err(e) => errln!("mission-cell: {e}"),
        }
        return Ok(());
    }
    for e in picked {
        let mut fields = e.to_value().map_err(Fail::failure)?;
        let ts = fields.remove("ts").unwrap_or_default();
        let kind = fields.remove("event").unwrap_or_default();
        let rest: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let line = format!(
            "{} {} {}",
            ts.as_str().unwrap_or_default(),
            kind.as_str().unwrap_or_default(),
            rest.join(" ")
        );
        outln!("{}", line.trim_end());
    }
    Ok(())
}
