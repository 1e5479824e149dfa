//! Typed errors. Every variant names the file, cell, agent or field involved.

use std::path::PathBuf;

use crate::Status;

/// An error of the cell store or one of its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent name, cell id or checkpoint name that cannot be used.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A system call on a file or directory failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The cells root or a path under it, as the store built it (not canonicalised).
        path: PathBuf,
        /// What was being done (`read`, `create directory`, `append`, ...).
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file exists but its content is wrong; `field` is a JSON path such
    /// as `agents[2].joined_at` (`.` for the whole document).
    #[error("{}: field `{field}`: {reason}", path.display())]
    Corrupt {
        /// File or directory at fault, e.g. a cell's `cell.json` or a directory that is a file.
        path: PathBuf,
        /// JSON path such as `agents[2].joined_at`; `.` for the whole document.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cells root does not exist.
    #[error("cells root {} does not exist", root.display())]
    RootMissing {
        /// Root as passed to [`CellStore::new`](crate::CellStore::new), not canonicalised.
        root: PathBuf,
    },
    /// No cell with this id under the root.
    #[error("no cell {id} in {}", root.display())]
    NotFound {
        /// Root as passed to [`CellStore::new`](crate::CellStore::new), not canonicalised.
        root: PathBuf,
        /// Cell UUID asked for, hyphenated lowercase.
        id: String,
    },
    /// A path is a symbolic link (or leads through one) where the store
    /// only accepts real files and directories inside the cells root.
    #[error("{}: refusing to follow a symbolic link ({why})", path.display())]
    Symlink {
        /// Path that is or leads through the link, under the cells root.
        path: PathBuf,
        /// Where it points, or why it is refused.
        why: String,
    },
    /// A lifecycle transition the state machine does not allow.
    #[error("cell {cell}: {source}")]
    Transition {
        /// Cell UUID, hyphenated lowercase.
        cell: String,
        /// Both states.
        source: TransitionError,
    },
    /// An operation that the cell's current status does not allow.
    #[error("cell {cell} is {status}: cannot {op}")]
    NotAllowed {
        /// Cell UUID, hyphenated lowercase.
        cell: String,
        /// Status at the time of the refused operation.
        status: Status,
        /// The operation (`join`, `restore`, ...).
        op: &'static str,
    },
    /// The agent is already a member of the cell.
    #[error("cell {cell}: agent {agent} has already joined")]
    AgentExists {
        /// Cell UUID, hyphenated lowercase.
        cell: String,
        /// Agent name as given to the join.
        agent: String,
    },
    /// The agent is not a member of the cell.
    #[error("cell {cell}: no agent {agent}")]
    AgentNotFound {
        /// Cell UUID, hyphenated lowercase.
        cell: String,
        /// Agent name as given, not found in the manifest's `agents`.
        agent: String,
    },
    /// A value given to the store is out of bounds (too long, empty argv, ...).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was given (`mission`, `revive command`, `home`, ...).
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Destroy refused because something under the cell is not the cell's
    /// to delete (a mount point, an agent home).
    #[error("refusing to destroy {}: {why}", path.display())]
    Unsafe {
        /// The cell directory, or its `workspace/` when restoring a checkpoint.
        path: PathBuf,
        /// What lives inside it.
        why: String,
    },
    /// A checkpoint archive is malformed or does not belong to this cell.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// Archive being read, or the workspace entry that could not be archived.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An atomic write (manifest, state) failed; the old file is intact.
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
}

impl Error {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        op: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, op, source }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: path.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether the caller gave bad input (exit code 2 in the CLI) rather
    /// than the operation failing.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Name(_) | Error::Invalid { .. })
    }
}

/// Bad input ([`Error::is_usage`]) is a usage error (exit code 2); the
/// rest is a failure (1).
impl nexus_stdx::HasExitKind for Error {
    fn exit_kind(&self) -> nexus_stdx::ExitKind {
        if self.is_usage() {
            nexus_stdx::ExitKind::Usage
        } else {
            nexus_stdx::ExitKind::Failure
        }
    }
}

/// A name given on the command line or in a proposal: a usage error.
impl nexus_stdx::HasExitKind for NameError {
    fn exit_kind(&self) -> nexus_stdx::ExitKind {
        nexus_stdx::ExitKind::Usage
    }
}

/// A word given on the command line or in a proposal: a usage error.
impl nexus_stdx::HasExitKind for UnknownValue {
    fn exit_kind(&self) -> nexus_stdx::ExitKind {
        nexus_stdx::ExitKind::Usage
    }
}

/// A name that cannot be used as a path component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {name:?}: {why}")]
pub struct NameError {
    /// `agent name`, `cell id`, `checkpoint name`, ...
    pub kind: &'static str,
    /// The rejected text (clipped to 200 characters).
    pub name: String,
    /// Why it was rejected.
    pub why: &'static str,
}

/// A transition the lifecycle does not allow; names both states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition {from} -> {to}{}", allowed_hint(*.from))]
pub struct TransitionError {
    /// Status the cell is in now.
    pub from: Status,
    /// Status that was requested and refused.
    pub to: Status,
}

fn allowed_hint(from: Status) -> String {
    let next = from.allowed_next();
    if next.is_empty() {
        format!(" ({from} is final)")
    } else {
        let names: Vec<&str> = next.iter().map(|s| s.as_str()).collect();
        format!(" (from {from} only: {})", names.join(", "))
    }
}

/// A word that names none of a type's values: a role, a revive policy or a
/// status (`FromStr`, what the CLI's flags and the proposal parse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} ({expected})")]
pub struct UnknownValue {
    /// `role`, `revive policy`, `status`.
    pub kind: &'static str,
    /// Word as given, untrimmed (roles match case-insensitively, statuses exactly).
    pub value: String,
    /// Accepted words, for the message (e.g. `developer, reviewer, observer or coordinator`).
    pub expected: &'static str,
}

/// Why a line of `events.jsonl` is not an event ([`crate::Event::parse`]);
/// names the field where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The line is not a JSON object.
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// `ts` or `event` is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// `ts` is not an RFC 3339 time.
    #[error("field `ts`: {0}")]
    Time(#[source] serde_json::Error),
    /// `event` is not a string.
    #[error("field `event` is not a string")]
    NotAString,
    /// A known event whose fields do not fit it; `field` is a JSON path
    /// (`None`: the object as a whole).
    #[error("event {event}: {}{source}", field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Fields {
        /// Value of the line's `event` (one of [`EVENT_KINDS`](crate::EVENT_KINDS)).
        event: String,
        /// Path inside the event's fields from serde (e.g. `age`); `None` for the object as a whole.
        field: Option<String>,
        /// What serde found.
        source: serde_json::Error,
    },
}

/// Why a value the store checks itself (bounded text, an agent's home, a
/// revive command) is refused; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("longer than {0} bytes")]
    TooLong(usize),
    #[error("contains NUL")]
    Nul,
    #[error("contains a control character")]
    Control,
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    #[error("{0:?} contains '.' or '..'")]
    DotComponent(String),
    #[error("empty command")]
    EmptyCommand,
    #[error("empty program name")]
    EmptyProgram,
    #[error("more than {0} arguments")]
    TooManyArgs(usize),
    #[error("argument {index} is longer than {max} bytes")]
    ArgTooLong { index: usize, max: usize },
    #[error("argument {0} contains NUL")]
    ArgNul(usize),
}
