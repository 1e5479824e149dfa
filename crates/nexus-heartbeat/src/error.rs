//! Typed errors. Every variant names the file (and field) it is about.

use std::path::PathBuf;

/// An error while writing a heartbeat.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The atomic write failed (the old file is intact).
    #[error(transparent)]
    Write(#[from] nexus_stdx::WriteError),
    /// The document could not be serialised (never expected for our types).
    #[error("cannot serialise heartbeat for {}: {source}", path.display())]
    Serialise {
        /// Heartbeat file that was to be written.
        path: PathBuf,
        /// Cause from `serde_json`.
        source: serde_json::Error,
    },
    /// A cron job name the safe-name rule refuses (`nexus_stdx::validate_name`).
    #[error(transparent)]
    JobName(#[from] JobNameError),
    /// No candidate directory accepted the cron heartbeat.
    #[error("cannot write heartbeat for job {job:?} in any directory: {}", tried.join("; "))]
    NoDirectory {
        /// Job name as given to the writer.
        job: String,
        /// One line per directory tried: `<dir>: <error>`.
        tried: Vec<String>,
    },
}

/// A job (or pushed record) name that cannot be used as a file name stem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job name {name:?}: {why}")]
pub struct JobNameError {
    /// The rejected name (clipped to 200 characters).
    pub name: String,
    /// Why it was rejected.
    pub why: &'static str,
}

impl From<nexus_stdx::NameError> for JobNameError {
    fn from(e: nexus_stdx::NameError) -> JobNameError {
        JobNameError {
            name: e.name,
            why: e.why,
        }
    }
}

/// Why bytes are not a heartbeat ([`crate::Observation::parse`]). It names
/// the field, never quotes the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not UTF-8.
    #[error("binary content (not UTF-8 at byte {valid_up_to})")]
    Binary {
        /// Bytes of valid UTF-8 before the first invalid one.
        valid_up_to: usize,
    },
    /// An empty file whose modification time is unknown.
    #[error("empty file and no modification time")]
    EmptyWithoutTime,
    /// The file is a JSON array; a heartbeat is an object or a bare time.
    #[error("JSON is an array, not an object")]
    Array,
    /// A quoted string that is not valid JSON (serde's line and column).
    #[error("invalid JSON string: {0}")]
    JsonString(String),
    /// A string that is not an ISO-8601 time.
    #[error("a string that is not an ISO-8601 time")]
    NotIso,
    /// A bare epoch that is NaN or infinite.
    #[error("an epoch that is not finite")]
    NotFinite,
    /// None of the known forms.
    #[error("not JSON, an epoch number or an ISO-8601 time")]
    UnknownForm,
    /// An object that is not valid JSON (serde's line and column).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A known field with a value of the wrong kind.
    #[error("field `{field}`: {problem}")]
    Field {
        /// `timestamp`, `interval_seconds` or `interval`.
        field: &'static str,
        /// What is wrong with it.
        problem: FieldProblem,
    },
}

/// What is wrong with a field of a heartbeat object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldProblem {
    /// A number that is NaN or infinite.
    #[error("not a finite number")]
    NotFinite,
    /// A string that is neither epoch seconds nor ISO-8601.
    #[error("a string that is neither epoch seconds nor ISO-8601")]
    NotATime,
    /// A field holds a JSON value of the wrong type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field holds.
        expected: &'static str,
        /// The JSON type found (`a boolean`, `an array`, ...).
        found: &'static str,
    },
    /// An interval that is zero, negative or not a duration.
    #[error("not a positive interval (seconds, or a duration such as 5m)")]
    NotPositive,
}
