//! What the pool shows about itself: a snapshot taken after every sweep,
//! served as JSON, Prometheus metrics and the status page.

use std::sync::Arc;

use serde::Serialize;

use nexus_revive::{Policy, State};

/// One agent as the pool last saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    /// Agent name: the gateway's `name`, or the name inside its cell.
    pub name: Arc<str>,
    /// The mission cell (uuid), when the agent lives in one (shared by the
    /// cell's agents).
    pub cell: Option<Arc<str>>,
    /// The mission's label (shared likewise).
    pub mission: Option<Arc<str>>,
    /// Effective policy: the agent's own, else its cell's or mission's, else the default.
    pub policy: Policy,
    /// State-machine state after the last sweep.
    pub state: State,
    /// The gateway answered (`None`: not applicable / unknown).
    pub gateway_alive: Option<bool>,
    /// The process runs (`None`: not applicable / unknown).
    pub process_alive: Option<bool>,
    /// Seconds since the last heartbeat (`None`: no heartbeat).
    pub heartbeat_age: Option<f64>,
    /// Launches inside the restart window.
    pub revive_attempts: u32,
    /// When it was last probed (epoch seconds).
    pub last_checked: f64,
    /// When the current death episode began (epoch seconds).
    pub first_dead_at: Option<f64>,
    /// An approval request is waiting for an answer.
    pub revive_pending: bool,
    /// Who acknowledged the current episode from the status page (left
    /// out of the JSON when nobody did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<Box<str>>,
    /// What it waits for and until when, when it is not healthy ("backoff
    /// 8 s until 18:03:12 (attempt 3 of 5 in 1 h)"); boxed: most agents
    /// wait for nothing.
    pub waiting: Option<Box<str>>,
    /// Why it is not healthy, as its last check saw it ("no heartbeat",
    /// "corrupt heartbeat: `<file>`: field `timestamp`: …"); `None` when
    /// healthy. One pointer (most agents have none).
    #[allow(clippy::box_collection)]
    pub reason: Option<Box<String>>,
    /// The newest events about this agent, newest first (for the status
    /// page; a boxed slice, a word smaller than a vector).
    pub last_events: Box<[Note]>,
}

/// One event the pool noted about an agent: when, and what. Shown (and
/// serialised) as `HH:MM:SS <text>` in UTC; the page shows the time in the
/// viewer's zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Epoch seconds.
    pub at: f64,
    /// What happened.
    pub text: String,
}

impl Note {
    /// `text`, stamped now.
    pub fn now(text: impl Into<String>) -> Note {
        Note {
            at: nexus_stdx::now_epoch(),
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", crate::http::clock(self.at), self.text)
    }
}

impl Serialize for Note {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The pool's state after its last sweep.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolSnapshot {
    /// When the pool started (epoch seconds).
    pub started_at: f64,
    /// Sweeps done since start.
    pub sweeps: u64,
    /// When the last sweep finished (epoch seconds; 0 before the first).
    pub last_sweep_at: f64,
    /// How long the last sweep took.
    pub last_sweep_seconds: f64,
    /// The poll interval (a sweep older than three of these means the pool is stuck).
    pub poll_interval_seconds: f64,
    /// Every agent, by cell then name.
    pub agents: Vec<AgentView>,
    /// Current write faults (`kind: error naming the file`), e.g. a full disk.
    pub faults: Vec<String>,
    /// The outside services the pool reports to (Gitea, Telegram).
    pub channels: Vec<ChannelView>,
    /// The cells that could not be read at the last sweep (their agents
    /// keep their records and are shown `unknown`).
    pub unreadable_cells: Vec<UnreadableCell>,
    /// The history recorder's counts (`[history]`), when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryCounts>,
}

/// What the history recorder did since the pool started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HistoryCounts {
    /// Rows written (changes and actions).
    pub written: u64,
    /// Observations that repeated a state (no row).
    pub unchanged: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events lost because a commit failed.
    pub failed: u64,
    /// Rows pruned for age.
    pub pruned: u64,
}

/// A cell (or the cells root) the last sweep could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableCell {
    /// The cell's directory name (its uuid, for a real cell), or the cells
    /// root's path when the root itself could not be read.
    pub cell: String,
    /// Why, naming the file and field.
    pub reason: String,
}

impl std::fmt::Display for UnreadableCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cell, self.reason)
    }
}

/// A channel to an outside service (see [`crate::channels`]): its trouble
/// is shown, not the pool's own (`/health` stays ok), since the pool goes on
/// detecting and reviving while what it has to say waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelView {
    /// `gitea` or `telegram`.
    pub name: &'static str,
    /// What went wrong with its last call, while it lasts.
    pub trouble: Option<String>,
    /// Observations, messages or requests waiting for it.
    pub waiting: usize,
}

impl AgentView {
    /// The pool's key for it: `<cell>/<name>`, or a gateway's name (what
    /// the page's actions name).
    pub fn key(&self) -> String {
        match &self.cell {
            Some(c) => format!("{c}/{}", self.name),
            None => self.name.to_string(),
        }
    }
}

impl PoolSnapshot {
    /// Agents whose state is not healthy.
    pub fn unhealthy(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| a.state != State::Healthy)
            .count()
    }
}
