//! The cell store: provision, open, join/leave, lifecycle transitions,
//! discovery and destroy, all confined to one cells root.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nexus_heartbeat::{Classification, Glance, HeartbeatWriter, Problem, Rule, State};
use nexus_stdx::write_atomic;
use rustix::fs::{Mode, OFlags};
use serde::Serialize;

use crate::events::{Event, EventKind, EventLog, append_event};
use crate::schema::{check_home, check_revive_cmd, check_text};
use crate::{
    AgentEntry, AgentName, CellConfig, CellId, CellManifest, DaemonState, Error, Invitee,
    Isolation, RevivePolicy, Role, Status, fsx, now_utc,
};

/// Where cells live unless told otherwise.
pub const DEFAULT_ROOT: &str = "/var/missions";
/// Environment variable naming the cells root (the CLI's `--root` wins).
pub const ROOT_ENV: &str = "MISSION_CELLS_ROOT";
/// Environment variable a revived agent finds its cell id in.
pub const CELL_UUID_ENV: &str = "LAZARUS_CELL_UUID";
/// Environment variable a revived agent finds its own name in.
pub const AGENT_ENV: &str = "LAZARUS_AGENT";
/// Manifest file name inside each cell directory.
pub const MANIFEST_FILE: &str = "cell.json";
/// Largest `cell.json` read (a bigger file is reported corrupt).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Serialises manifest updates between processes (inside the cell).
const LOCK_FILE: &str = ".cell.lock";

/// A cell on disk: its directory and its manifest as last read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    dir: PathBuf,
    manifest: CellManifest,
}

impl Cell {
    /// The cell directory `<root>/<uuid>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Cell UUID, as in the manifest (equals the directory name).
    pub fn id(&self) -> CellId {
        self.manifest.uuid
    }
    /// Manifest as last read or written by this handle (may be stale).
    pub fn manifest(&self) -> &CellManifest {
        &self.manifest
    }
    /// `cell.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }
    /// `workspace/`: the agents' shared working directory.
    pub fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }
    /// `logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// `logs/events.jsonl`.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("logs/events.jsonl")
    }
    /// `logs/<agent>.log`: the agent's stdout and stderr.
    pub fn agent_log(&self, agent: &AgentName) -> PathBuf {
        self.dir.join("logs").join(format!("{agent}.log"))
    }
    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    /// `bus/inbox/<agent>/`.
    pub fn inbox(&self, agent: &AgentName) -> PathBuf {
        self.dir.join("bus/inbox").join(agent.as_str())
    }
    /// `.lazarus/heartbeats/`.
    pub fn heartbeats_dir(&self) -> PathBuf {
        self.dir.join(".lazarus/heartbeats")
    }
    /// `.lazarus/heartbeats/<agent>.json`.
    pub fn heartbeat_path(&self, agent: &AgentName) -> PathBuf {
        self.heartbeats_dir().join(format!("{agent}.json"))
    }
    /// `.lazarus/state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(".lazarus/state.json")
    }

    /// A heartbeat writer for `agent`, with `agent` and `cell_uuid` set.
    pub fn heartbeat_writer(&self, agent: &AgentName) -> HeartbeatWriter {
        HeartbeatWriter::new(self.heartbeat_path(agent))
            .cell(Some(agent.to_string()), Some(self.id().to_string()))
    }

    /// Classifies every member's heartbeat (one result per agent, in
    /// manifest order). A heartbeat that is a symlink is not read: it is
    /// `Unreadable`, so an agent cannot make the daemon read (and quote)
    /// a file outside the cell.
    pub fn heartbeats(&self, now: f64, rule: &Rule) -> Vec<(AgentName, Classification)> {
        self.read_heartbeats(now, rule)
    }

    /// Reads and classifies every member's heartbeat: the heartbeats
    /// directory is opened once, `.lazarus` then `heartbeats`, each
    /// `O_DIRECTORY | O_NOFOLLOW` (a linked `.lazarus` makes every agent
    /// `Unreadable`, never read through), and each file
    /// relative to it with `O_NOFOLLOW | O_NONBLOCK`, so a symlink (to a
    /// file outside the cell) or a FIFO is never read; parsing and the
    /// verdict are `nexus-heartbeat`'s ([`Observation::parse`](nexus_heartbeat::Observation::parse), [`Classification::of`]).
    fn read_heartbeats(&self, now: f64, rule: &Rule) -> Vec<(AgentName, Classification)> {
        self.read_heartbeats_in(self.open_heartbeats_dir(), now, rule)
    }

    fn read_heartbeats_in(
        &self,
        dirfd: Result<OwnedFd, Problem>,
        now: f64,
        rule: &Rule,
    ) -> Vec<(AgentName, Classification)> {
        self.each_heartbeat(dirfd, |agent, opened| {
            let observed = opened.and_then(|mut f| nexus_heartbeat::Observation::of_file(&mut f));
            let path = self.heartbeat_path(&agent.name);
            (
                agent.name.clone(),
                Classification::of(&path, observed, now, rule),
            )
        })
    }

    fn glance_heartbeats_in(
        &self,
        dirfd: Result<OwnedFd, Problem>,
        now: f64,
        rule: &Rule,
    ) -> Vec<Glance> {
        self.each_heartbeat(dirfd, |_, opened| match opened {
            Ok(mut f) => nexus_heartbeat::Glance::of_file(&mut f, now, rule),
            Err(p) => Glance::problem(p),
        })
    }

    /// Opens each agent's heartbeat (in manifest order) relative to the
    /// heartbeats directory `dirfd`, never following a symlink, and hands
    /// it to `f`.
    fn each_heartbeat<T>(
        &self,
        dirfd: Result<OwnedFd, Problem>,
        mut f: impl FnMut(&AgentEntry, Result<File, Problem>) -> T,
    ) -> Vec<T> {
        let mut name = String::new();
        self.manifest
            .agents
            .iter()
            .map(|a| {
                let opened = match &dirfd {
                    Ok(fd) => {
                        name.clear();
                        name.push_str(a.name.as_str());
                        name.push_str(".json");
                        open_at(fd, &name)
                    }
                    Err(p) => Err(p.clone()),
                };
                f(a, opened)
            })
            .collect()
    }

    /// The heartbeats directory of a cell found by a survey: one `openat2`
    /// beneath the cells root ([`fsx::open_beneath`]), or, when that fails,
    /// [`Cell::open_heartbeats_dir`]'s walk, which says what is wrong.
    fn heartbeats_dir_beneath(&self, at: &Beneath<'_>) -> Result<OwnedFd, Problem> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        let rel = format!("{}/.lazarus/heartbeats", at.name);
        match fsx::open_beneath(at.root, Path::new(&rel), flags) {
            Some(fd) => Ok(fd),
            None => self.open_heartbeats_dir(),
        }
    }

    /// Opens `.lazarus/heartbeats/` one component at a time, each with
    /// `O_DIRECTORY | O_NOFOLLOW` relative to the one before: a symlink in
    /// place of `.lazarus` is refused exactly like one in place of
    /// `heartbeats`, never read through.
    fn open_heartbeats_dir(&self) -> Result<OwnedFd, Problem> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let lazarus = self.dir.join(".lazarus");
        let refused = |dir: &Path, e: rustix::io::Errno| match e {
            rustix::io::Errno::NOENT => Problem {
                state: State::Missing,
                reason: "no such file (no heartbeats directory)".into(),
            },
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => Problem {
                state: State::Unreadable,
                reason: format!(
                    "{} is not a real directory (a symbolic link?); not followed",
                    dir.display()
                ),
            },
            e => Problem {
                state: State::Unreadable,
                reason: format!("cannot open {}: {e}", dir.display()),
            },
        };
        let parent =
            rustix::fs::open(&lazarus, flags, Mode::empty()).map_err(|e| refused(&lazarus, e))?;
        rustix::fs::openat(&parent, "heartbeats", flags, Mode::empty())
            .map_err(|e| refused(&self.heartbeats_dir(), e))
    }

    /// Appends one event to `logs/events.jsonl`.
    pub fn append(&self, kind: EventKind) -> Result<(), Error> {
        self.append_event(&Event::now(kind))
    }

    /// Appends an event stamped earlier (one whose first write failed and
    /// is retried: it keeps the time it happened).
    pub fn append_event(&self, event: &Event) -> Result<(), Error> {
        fsx::real_dir(&self.logs_dir())?;
        append_event(&self.events_path(), event)
    }

    /// Reads `logs/events.jsonl` (bad lines skipped and listed).
    pub fn events(&self) -> Result<EventLog, Error> {
        fsx::real_dir(&self.logs_dir())?;
        EventLog::read(&self.events_path())
    }

    /// Reads `.lazarus/state.json`; `None` when the daemon never wrote it.
    /// Neither `.lazarus` nor the file is followed if it is a symlink.
    pub fn read_state(&self) -> Result<Option<DaemonState>, Error> {
        let path = self.state_path();
        let read = fsx::open_dir(&self.dir.join(".lazarus")).and_then(|dir| {
            fsx::read_bounded_at(&dir, Path::new("state.json"), &path, MAX_MANIFEST_BYTES)
        });
        match read {
            Ok(bytes) => fsx::parse_json(&path, &bytes).map(Some),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces `.lazarus/state.json` atomically. **Only the daemon calls
    /// this**; the CLI and agents read it.
    pub fn write_daemon_state(&self, state: &DaemonState) -> Result<(), Error> {
        let path = self.state_path();
        fsx::real_dir(&self.dir.join(".lazarus"))?;
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::corrupt(&path, ".", format!("cannot serialise: {e}")))?;
        write_atomic(&path, &bytes, true)?;
        Ok(())
    }

    /// The command that revives `agent`, ready to spawn: its `revive_cmd`
    /// (no shell) with working directory `workspace/`,
    /// `LAZARUS_CELL_UUID` and `LAZARUS_AGENT` set, stdin from /dev/null,
    /// stdout and stderr appended to `logs/<agent>.log`, in a new process
    /// group. `None` when the agent has no revive command. The caller
    /// spawns and reaps it.
    pub fn revive_command(&self, agent: &AgentName) -> Result<Option<Command>, Error> {
        let entry = self
            .manifest
            .agent(agent)
            .ok_or_else(|| Error::AgentNotFound {
                cell: self.id().to_string(),
                agent: agent.to_string(),
            })?;
        let Some((program, args)) = entry.revive_cmd.as_deref().and_then(|a| a.split_first())
        else {
            return Ok(None);
        };
        let ws = self.workspace();
        fsx::real_dir(&ws)?;
        fsx::real_dir(&self.logs_dir())?;
        let log_path = self.agent_log(agent);
        let out = fsx::open_append(&log_path, 0o640)?;
        let err = out.try_clone().map_err(Error::io(&log_path, "dup"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(ws)
            .env(CELL_UUID_ENV, self.id().to_string())
            .env(AGENT_ENV, agent.as_str())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Ok(Some(cmd))
    }
}

/// What [`CellStore::provision`] needs; everything but `mission` and
/// `created_by` is optional.
#[derive(Debug, Clone, Default)]
pub struct NewCell {
    /// One-sentence mission.
    pub mission: String,
    /// Who creates it.
    pub created_by: String,
    /// Optional display label, free text of at most [`MAX_SHORT`](crate::MAX_SHORT) bytes.
    pub name: Option<String>,
    /// Number of the Gitea issue holding the mission proposal.
    pub gitea_issue: Option<u64>,
    /// Repository the mission works on, free text of at most [`MAX_SHORT`](crate::MAX_SHORT) bytes.
    pub repo: Option<String>,
    /// Default for agents that set none; `None`: the daemon's default applies.
    pub revive_policy: Option<RevivePolicy>,
    /// What "done" looks like.
    pub objective: Option<String>,
    /// Agents invited by the proposal.
    pub invited: Vec<Invitee>,
    /// Settings from the proposal.
    pub config: CellConfig,
    /// Isolation requirements from the proposal.
    pub isolation: Option<Isolation>,
    /// The proposal text, kept as `proposal.md` in the cell.
    pub proposal: Option<String>,
}

/// What [`CellStore::join`] needs.
#[derive(Debug, Clone)]
pub struct Join {
    /// Name the agent joins under; must not already be a member.
    pub agent: AgentName,
    /// Role recorded in the manifest and the `agent_joined` event.
    pub role: Role,
    /// Its home outside the cell (absolute).
    pub home: Option<PathBuf>,
    /// How to revive it (program and arguments).
    pub revive_cmd: Option<Vec<String>>,
    /// Overrides the cell's policy for this agent; `None` inherits it.
    pub revive_policy: Option<RevivePolicy>,
}

/// A directory under the root that is not a usable cell.
#[derive(Debug)]
pub struct Skipped {
    /// The directory (or symlink).
    pub path: PathBuf,
    /// Why (names the file and field).
    pub error: Error,
}

/// The result of [`CellStore::discover`].
#[derive(Debug, Default)]
pub struct Discovery {
    /// Valid cells, sorted by directory name.
    pub cells: Vec<Cell>,
    /// Entries skipped with a reason (corrupt manifest, symlink, bad name).
    pub skipped: Vec<Skipped>,
}

/// One cell and the state of every agent heartbeat in it.
#[derive(Debug, Clone)]
pub struct CellHealth {
    /// Cell as opened for this scan.
    pub cell: Cell,
    /// One classification per agent, in manifest order.
    pub agents: Vec<(AgentName, Classification)>,
}

/// A per-cell result for every cell found, and what was skipped.
type Found<R> = (Vec<R>, Vec<Skipped>);

/// The mission cells under one root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellStore {
    root: PathBuf,
}

impl CellStore {
    /// A store at `root` (created on the first provision).
    pub fn new(root: impl Into<PathBuf>) -> CellStore {
        CellStore { root: root.into() }
    }

    /// `explicit`, else `from_env` (the value of `$MISSION_CELLS_ROOT`, read
    /// by the binary), else `/var/missions`. An empty value counts as unset.
    pub fn resolve(explicit: Option<&Path>, from_env: Option<&std::ffi::OsStr>) -> CellStore {
        let env = from_env.filter(|v| !v.is_empty());
        match (explicit, env) {
            (Some(p), _) => CellStore::new(p),
            (None, Some(e)) => CellStore::new(PathBuf::from(e)),
            (None, None) => CellStore::new(DEFAULT_ROOT),
        }
    }

    /// Root as given (not canonicalised); cells are `<root>/<uuid>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>`.
    pub fn cell_dir(&self, id: &CellId) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// `<root>/<id>/.lazarus/heartbeats/` without opening the cell (what
    /// [`Cell::heartbeats_dir`] names once it is open).
    pub fn heartbeats_dir(&self, id: &CellId) -> PathBuf {
        self.cell_dir(id).join(".lazarus/heartbeats")
    }

    /// Creates a cell with the full layout (docs/SPEC.md §5.1), status
    /// `provision`, and logs `cell_created`.
    pub fn provision(&self, new: NewCell) -> Result<Cell, Error> {
        check_text(&new.mission, crate::schema::MAX_TEXT, false).map_err(|e| Error::Invalid {
            field: "mission",
            reason: e.to_string(),
        })?;
        if new.mission.trim().is_empty() {
            return Err(Error::Invalid {
                field: "mission",
                reason: "empty".into(),
            });
        }
        let id = CellId::new_v4();
        let manifest = CellManifest {
            uuid: id,
            name: new.name,
            mission: new.mission,
            created_at: now_utc(),
            created_by: new.created_by.clone(),
            status: Status::Provision,
            agents: Vec::new(),
            gitea_issue: new.gitea_issue,
            repo: new.repo,
            revive_policy: new.revive_policy,
            objective: new.objective,
            invited: new.invited,
            config: new.config,
            isolation: new.isolation,
            extra: Default::default(),
        };
        manifest
            .validate(Path::new(MANIFEST_FILE))
            .map_err(|e| match e {
                Error::Corrupt { field, reason, .. } => Error::Invalid {
                    field: "new cell",
                    reason: format!("{field}: {reason}"),
                },
                other => other,
            })?;
        std::fs::create_dir_all(&self.root).map_err(Error::io(&self.root, "create directory"))?;
        let dir = self.cell_dir(&id);
        std::fs::create_dir(&dir).map_err(Error::io(&dir, "create directory"))?;
        for sub in [
            "workspace",
            "logs",
            "checkpoints",
            "bus",
            "bus/inbox",
            "bus/outbox",
            ".lazarus",
            ".lazarus/heartbeats",
        ] {
            fsx::make_dir(&dir.join(sub))?;
        }
        if let Some(text) = &new.proposal {
            write_atomic(&dir.join("proposal.md"), text.as_bytes(), true)?;
        }
        let cell = Cell { dir, manifest };
        write_manifest(&cell)?;
        fsx::sync_dir(&self.root)?;
        cell.append(EventKind::CellCreated {
            by: new.created_by,
            uuid: id.uuid(),
        })?;
        Ok(cell)
    }

    /// Opens the cell `id`: a real directory directly under the root (a
    /// symlink is refused) holding a valid manifest for that id.
    pub fn open(&self, id: &CellId) -> Result<Cell, Error> {
        let dir = self.cell_dir(id);
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(if self.root.is_dir() {
                    Error::NotFound {
                        root: self.root.clone(),
                        id: id.to_string(),
                    }
                } else {
                    Error::RootMissing {
                        root: self.root.clone(),
                    }
                });
            }
            Err(e) => return Err(Error::io(&dir, "stat")(e)),
            Ok(m) if m.file_type().is_symlink() => return Err(self.symlink_error(&dir)),
            Ok(_) => {}
        }
        fsx::real_dir(&dir)?;
        load(dir, Some(id))
    }

    /// [`CellStore::open`] from text (validated first: no `..`, `/`, ...).
    pub fn open_str(&self, id: &str) -> Result<Cell, Error> {
        self.open(&CellId::parse(id)?)
    }

    fn symlink_error(&self, path: &Path) -> Error {
        let why = match (path.canonicalize(), self.root.canonicalize()) {
            (Ok(t), Ok(r)) if !t.starts_with(&r) => {
                format!("points to {}, outside the cells root", t.display())
            }
            (Ok(t), _) => format!("points to {}; cells must be real directories", t.display()),
            (Err(_), _) => fsx::link_target(path),
        };
        Error::Symlink {
            path: path.to_path_buf(),
            why,
        }
    }

    /// Runs `f` on the manifest under the cell lock, validates and writes
    /// the result, then appends the events `f` returned.
    fn update<F>(&self, id: &CellId, f: F) -> Result<Cell, Error>
    where
        F: FnOnce(&mut CellManifest) -> Result<Vec<EventKind>, Error>,
    {
        let cell = self.open(id)?;
        let _lock = lock(&cell)?;
        let mut cell = load(cell.dir, Some(id))?;
        let events = f(&mut cell.manifest)?;
        cell.manifest.validate(&cell.manifest_path())?;
        write_manifest(&cell)?;
        for e in events {
            cell.append(e)?;
        }
        Ok(cell)
    }

    /// Adds an agent (`provision -> active` on the first join) and creates
    /// its inbox.
    pub fn join(&self, id: &CellId, join: Join) -> Result<Cell, Error> {
        if let Some(Err(e)) = join.home.as_deref().map(check_home) {
            return Err(Error::Invalid {
                field: "home",
                reason: e.to_string(),
            });
        }
        if let Some(Err(e)) = join.revive_cmd.as_deref().map(check_revive_cmd) {
            return Err(Error::Invalid {
                field: "revive command",
                reason: e.to_string(),
            });
        }
        let cell = self.update(id, |m| {
            let cell = m.uuid.to_string();
            if !m.status.accepts_agents() {
                return Err(Error::NotAllowed {
                    cell,
                    status: m.status,
                    op: "join",
                });
            }
            if m.agent(&join.agent).is_some() {
                return Err(Error::AgentExists {
                    cell,
                    agent: join.agent.to_string(),
                });
            }
            m.invited.retain(|i| i.name != join.agent);
            m.agents.push(AgentEntry {
                name: join.agent.clone(),
                role: join.role,
                joined_at: now_utc(),
                home: join.home.clone(),
                revive_cmd: join.revive_cmd.clone(),
                revive_policy: join.revive_policy,
                extra: Default::default(),
            });
            let mut events = vec![EventKind::AgentJoined {
                agent: join.agent.clone(),
                role: join.role,
            }];
            if m.status == Status::Provision {
                m.status = Status::Active;
                events.push(EventKind::CellActivated);
            }
            Ok(events)
        })?;
        for dir in [
            cell.dir.join("bus"),
            cell.dir.join("bus/inbox"),
            cell.inbox(&join.agent),
        ] {
            fsx::make_dir(&dir)?;
        }
        Ok(cell)
    }

    /// Removes an agent. Its heartbeat, log and inbox stay for the record.
    pub fn leave(&self, id: &CellId, agent: &AgentName) -> Result<Cell, Error> {
        self.update(id, |m| {
            if !m.status.is_writable() {
                return Err(Error::NotAllowed {
                    cell: m.uuid.to_string(),
                    status: m.status,
                    op: "leave",
                });
            }
            let before = m.agents.len();
            m.agents.retain(|a| &a.name != agent);
            if m.agents.len() == before {
                return Err(Error::AgentNotFound {
                    cell: m.uuid.to_string(),
                    agent: agent.to_string(),
                });
            }
            Ok(vec![EventKind::AgentLeft {
                agent: agent.clone(),
            }])
        })
    }

    /// Moves the cell to `to` (`frozen`, `active` to resume, `archived`)
    /// if the state machine allows it. Use [`CellStore::destroy`] for
    /// `destroyed`.
    pub fn set_status(&self, id: &CellId, to: Status) -> Result<Cell, Error> {
        if to == Status::Destroyed {
            return Err(Error::Invalid {
                field: "status",
                reason: "use destroy to tear a cell down".into(),
            });
        }
        self.update(id, |m| {
            let cell = m.uuid.to_string();
            let next = m
                .status
                .transition(to)
                .map_err(|source| Error::Transition {
                    cell: cell.clone(),
                    source,
                })?;
            if next == Status::Active && m.agents.is_empty() {
                return Err(Error::NotAllowed {
                    cell,
                    status: m.status,
                    op: "activate a cell without agents",
                });
            }
            m.status = next;
            Ok(vec![match to {
                Status::Frozen => EventKind::CellFrozen,
                Status::Archived => EventKind::CellArchived,
                _ => EventKind::CellActivated,
            }])
        })
    }

    /// Tears a cell down (`archived -> destroyed`, or an unused
    /// `provision` cell): marks it destroyed, renames it out of sight and
    /// deletes it. Refuses when the cell directory is a symlink, holds a
    /// mount point, or an agent's home lies inside it. Nothing outside the
    /// cell directory is touched: symlinks inside it are removed, never
    /// followed.
    pub fn destroy(&self, id: &CellId) -> Result<(), Error> {
        let cell = self.open(id)?;
        let lock_guard = lock(&cell)?;
        let mut cell = load(cell.dir, Some(id))?;
        cell.manifest.status =
            cell.manifest
                .status
                .transition(Status::Destroyed)
                .map_err(|source| Error::Transition {
                    cell: id.to_string(),
                    source,
                })?;
        let real = cell
            .dir
            .canonicalize()
            .map_err(Error::io(&cell.dir, "resolve"))?;
        let unsafe_err = |why: String| Error::Unsafe {
            path: cell.dir.clone(),
            why,
        };
        for a in &cell.manifest.agents {
            if let Some(home) = &a.home {
                let h = home.canonicalize().unwrap_or_else(|_| home.clone());
                if h.starts_with(&real) || home.starts_with(&cell.dir) {
                    return Err(unsafe_err(format!(
                        "the home of agent {} ({}) is inside the cell",
                        a.name,
                        home.display()
                    )));
                }
            }
        }
        if let Some(m) = mount_points_under(&real).first() {
            return Err(unsafe_err(format!(
                "{} is a mount point; unmount it first",
                m.display()
            )));
        }
        write_manifest(&cell)?;
        cell.append(EventKind::CellDestroyed)?;
        drop(lock_guard);
        let grave = self
            .root
            .join(format!(".destroyed-{id}-{}", std::process::id()));
        std::fs::rename(&cell.dir, &grave).map_err(Error::io(&cell.dir, "rename"))?;
        // remove_dir_all never follows symlinks (it unlinks them).
        std::fs::remove_dir_all(&grave).map_err(Error::io(&grave, "remove"))?;
        fsx::sync_dir(&self.root)
    }

    /// Every cell under the root, sorted by directory name. Directories
    /// without `cell.json` and dot-entries are ignored; corrupt manifests,
    /// symlinks and bad names are listed in `skipped`, never fatal.
    pub fn discover(&self) -> Result<Discovery, Error> {
        let (cells, skipped) = self.discover_with(|c, _| c)?;
        Ok(Discovery { cells, skipped })
    }

    /// Discovers every cell and classifies every agent heartbeat in one
    /// parallel pass (what the daemon's tick and `--status` need).
    pub fn survey(&self, now: f64, rule: &Rule) -> Result<(Vec<CellHealth>, Vec<Skipped>), Error> {
        self.survey_with(now, rule, |cell, agents| CellHealth { cell, agents })
    }

    /// [`CellStore::survey`] that hands each cell and its classifications to
    /// `f` inside the parallel pass and keeps only what `f` returns: a caller
    /// that needs a few fields per agent (the pool, at 10,000 agents) never
    /// holds every manifest and heartbeat document at once.
    pub fn survey_with<R: Send>(
        &self,
        now: f64,
        rule: &Rule,
        f: impl Fn(Cell, Vec<(AgentName, Classification)>) -> R + Sync,
    ) -> Result<(Vec<R>, Vec<Skipped>), Error> {
        self.discover_with(|cell, at| {
            let agents = cell.read_heartbeats_in(cell.heartbeats_dir_beneath(at), now, rule);
            f(cell, agents)
        })
    }

    /// [`CellStore::survey_with`] at a glance: each agent's heartbeat as a
    /// [`Glance`] (state, age, PID; a reason only when not fresh), in
    /// manifest order. What the pool sweeps 10,000 agents with.
    pub fn glance_with<R: Send>(
        &self,
        now: f64,
        rule: &Rule,
        f: impl Fn(Cell, Vec<Glance>) -> R + Sync,
    ) -> Result<(Vec<R>, Vec<Skipped>), Error> {
        self.discover_with(|cell, at| {
            let agents = cell.glance_heartbeats_in(cell.heartbeats_dir_beneath(at), now, rule);
            f(cell, agents)
        })
    }

    /// Discovery, handing each cell to `f` in the same parallel pass, with
    /// where it was found (the root, open once, and its name) so that its
    /// files are opened beneath the root's descriptor, not by path.
    fn discover_with<R: Send>(
        &self,
        f: impl Fn(Cell, &Beneath<'_>) -> R + Sync,
    ) -> Result<Found<R>, Error> {
        let root = match rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                return Err(Error::RootMissing {
                    root: self.root.clone(),
                });
            }
            Err(e) => return Err(Error::io(&self.root, "open directory")(e.into())),
        };
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::RootMissing {
                    root: self.root.clone(),
                });
            }
            Err(e) => return Err(Error::io(&self.root, "list directory")(e)),
        };
        let mut entries: Vec<(String, bool)> = Vec::new();
        let mut skipped = Vec::new();
        for entry in rd {
            let entry = entry.map_err(Error::io(&self.root, "list directory"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => entries.push((name, false)),
                Ok(t) if t.is_symlink() => entries.push((name, true)),
                Ok(_) => {}
                Err(e) => skipped.push(Skipped {
                    path: entry.path(),
                    error: Error::io(entry.path(), "stat")(e),
                }),
            }
        }
        entries.sort();
        // 64 entries per thread before a thread is worth it; a panic in the
        // closure is resumed here (nexus-stdx's one policy).
        let results = nexus_stdx::par_map(&entries, 64, |(name, is_link)| {
            let dir = self.root.join(name);
            if *is_link {
                return Some(Err(self.symlink_error(&dir)));
            }
            let at = Beneath {
                root: root.as_fd(),
                name,
            };
            let loaded = match CellId::parse(name) {
                Ok(id) => match load_beneath(&at, dir, &id) {
                    // A directory without a manifest is not a cell.
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return None;
                    }
                    other => other,
                },
                Err(e) if dir.join(MANIFEST_FILE).exists() => Err(e.into()),
                Err(_) => return None,
            };
            Some(loaded.map(|cell| f(cell, &at)))
        });
        let mut cells = Vec::with_capacity(entries.len());
        for ((name, _), r) in entries.iter().zip(results) {
            match r {
                None => {}
                Some(Ok(r)) => cells.push(r),
                Some(Err(error)) => skipped.push(Skipped {
                    path: self.root.join(name),
                    error,
                }),
            }
        }
        Ok((cells, skipped))
    }

    pub(crate) fn locked(&self, id: &CellId) -> Result<(Cell, File), Error> {
        let cell = self.open(id)?;
        let guard = lock(&cell)?;
        Ok((load(cell.dir, Some(id))?, guard))
    }
}

/// Opens one heartbeat of an open directory: never follows a symlink, and
/// `O_NONBLOCK` so a FIFO cannot block the read; the read, its limits and
/// the parse are nexus-heartbeat's.
fn open_at(dir: &OwnedFd, name: &str) -> Result<File, Problem> {
    let problem = |state, reason: String| Problem { state, reason };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    // A checker's read must not dirty the agent's inode (an atime update
    // per file per sweep); only the owner (or root) may ask for that.
    let opened = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        other => other,
    };
    match opened {
        Ok(fd) => Ok(File::from(fd)),
        Err(rustix::io::Errno::NOENT) => Err(problem(State::Missing, "no such file".into())),
        Err(rustix::io::Errno::LOOP) => Err(problem(
            State::Unreadable,
            "refusing to follow a symbolic link".into(),
        )),
        Err(e) => Err(problem(State::Unreadable, format!("cannot open: {e}"))),
    }
}

/// Where a surveyed cell sits: the cells root, open once per survey, and
/// the cell's directory name in it, what its files are opened beneath.
pub(crate) struct Beneath<'a> {
    root: BorrowedFd<'a>,
    name: &'a str,
}

/// [`load`] of a cell found by a survey: `cell.json` opened with one
/// `openat2` beneath the root, or by [`load`] when that fails.
fn load_beneath(at: &Beneath<'_>, dir: PathBuf, expect: &CellId) -> Result<Cell, Error> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let rel = format!("{}/{MANIFEST_FILE}", at.name);
    match fsx::open_beneath(at.root, Path::new(&rel), flags) {
        Some(fd) => {
            let path = dir.join(MANIFEST_FILE);
            let bytes = fsx::read_bounded_file(File::from(fd), &path, MAX_MANIFEST_BYTES)?;
            check_loaded(dir, &path, &bytes, Some(expect))
        }
        None => load(dir, Some(expect)),
    }
}

/// Reads and validates `<dir>/cell.json`; its `uuid` must equal `expect`.
fn load(dir: PathBuf, expect: Option<&CellId>) -> Result<Cell, Error> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fsx::read_bounded(&path, MAX_MANIFEST_BYTES)?;
    check_loaded(dir, &path, &bytes, expect)
}

/// Parses and validates the bytes of `<dir>/cell.json` (`path`).
fn check_loaded(
    dir: PathBuf,
    path: &Path,
    bytes: &[u8],
    expect: Option<&CellId>,
) -> Result<Cell, Error> {
    let manifest: CellManifest = fsx::parse_json(path, bytes)?;
    manifest.validate(path)?;
    if let Some(id) = expect
        && manifest.uuid != *id
    {
        return Err(Error::corrupt(
            path,
            "uuid",
            format!("{} does not match the directory name {id}", manifest.uuid),
        ));
    }
    Ok(Cell { dir, manifest })
}

fn write_manifest(cell: &Cell) -> Result<(), Error> {
    let path = cell.manifest_path();
    let mut bytes = serde_json::to_vec_pretty(&cell.manifest)
        .map_err(|e| Error::corrupt(&path, ".", format!("cannot serialise: {e}")))?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes, true)?;
    Ok(())
}

/// Takes the cell's exclusive lock (released when the file is dropped).
fn lock(cell: &Cell) -> Result<File, Error> {
    let path = cell.dir.join(LOCK_FILE);
    let f = fsx::open_append(&path, 0o644)?;
    f.lock().map_err(Error::io(&path, "lock"))?;
    Ok(f)
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo`.
pub(crate) fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
