//! The tolerant reader and the freshness classifier (docs/SPEC.md §1.1, §3.1).
//!
//! Reading never panics and never blocks on special files: anything that is
//! not a small regular file holding one of the known forms is classified
//! `Unreadable` or `Corrupt` with a reason naming the field.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

use nexus_stdx::{format_duration, parse_duration};

pub use crate::error::{FieldProblem, ParseError};

/// The state of one heartbeat file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Age within the allowed maximum (exactly at the maximum is fresh).
    Fresh,
    /// Older than allowed, or no timestamp at all (treated as epoch 0).
    Stale,
    /// No file at the path (`ENOENT`).
    Missing,
    /// The file exists but cannot be read (permissions, a directory, a FIFO).
    Unreadable,
    /// The content is not a heartbeat (bad JSON, wrong types, too large).
    Corrupt,
    /// The timestamp is further in the future than the skew tolerance.
    FromTheFuture,
}

impl State {
    /// Only `Fresh` is healthy.
    pub fn is_fresh(self) -> bool {
        self == State::Fresh
    }

    /// The lower-case name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale => "stale",
            State::Missing => "missing",
            State::Unreadable => "unreadable",
            State::Corrupt => "corrupt",
            State::FromTheFuture => "from_the_future",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which on-disk form a heartbeat was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// A JSON object (canonical agent heartbeat or `.last` record).
    Json,
    /// A bare epoch number (legacy).
    BareNumber,
    /// A bare ISO-8601 time, quoted or not (legacy).
    IsoString,
    /// An empty `touch`-style file: the time is its mtime (legacy).
    Empty,
}

/// What a heartbeat file says, parsed leniently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// How the beat was written: JSON object, bare number, ISO string or empty file.
    pub form: Form,
    /// Epoch seconds of the beat; `None` when a JSON object has no `timestamp`.
    pub timestamp: Option<f64>,
    /// `interval_seconds` (or the legacy `interval`), when present.
    pub interval_seconds: Option<f64>,
    /// The file's modification time (epoch seconds); only read for an empty
    /// file, where it is the beat.
    pub mtime: Option<f64>,
    /// All fields of a JSON object (empty for legacy forms).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

impl Observation {
    /// Files larger than this are not heartbeats; they are reported `Corrupt`
    /// without being read.
    pub const MAX_FILE_BYTES: u64 = 1 << 20;

    /// At most this many bytes of an invalid heartbeat are quoted in its
    /// reason: the printable ASCII it starts with (see [`Observation::read`]).
    pub const SAMPLE_BYTES: usize = 32;

    /// Parses file content; `mtime` stands in for the time of an empty file.
    /// The error names the offending field; it never quotes the content
    /// (only a file reader that knows whose file it is may add a sample of
    /// it, see [`Observation::read`]).
    pub fn parse(bytes: &[u8], mtime: Option<f64>) -> Result<Observation, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ParseError::Binary {
            valid_up_to: e.valid_up_to(),
        })?;
        let text = text.trim();
        let legacy = |form, timestamp| Observation {
            form,
            timestamp: Some(timestamp),
            interval_seconds: None,
            mtime,
            fields: Map::new(),
        };
        if text.is_empty() {
            return match mtime {
                Some(t) => Ok(legacy(Form::Empty, t)),
                None => Err(ParseError::EmptyWithoutTime),
            };
        }
        match text.as_bytes()[0] {
            b'{' => Observation::parse_object(text, mtime),
            b'[' => Err(ParseError::Array),
            b'"' => {
                let s: String = serde_json::from_str(text)
                    .map_err(|e| ParseError::JsonString(json_error(&e)))?;
                parse_iso(&s)
                    .map(|t| legacy(Form::IsoString, t))
                    .ok_or(ParseError::NotIso)
            }
            _ => {
                if let Ok(t) = text.parse::<f64>() {
                    return if t.is_finite() {
                        Ok(legacy(Form::BareNumber, t))
                    } else {
                        Err(ParseError::NotFinite)
                    };
                }
                parse_iso(text)
                    .map(|t| legacy(Form::IsoString, t))
                    .ok_or(ParseError::UnknownForm)
            }
        }
    }

    fn parse_object(text: &str, mtime: Option<f64>) -> Result<Observation, ParseError> {
        let fields: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| ParseError::Json(json_error(&e)))?;
        let field = |field| move |problem| ParseError::Field { field, problem };
        let timestamp = match fields.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(v) => Some(time_value(v).map_err(field("timestamp"))?),
        };
        let interval_seconds = match ["interval_seconds", "interval"]
            .iter()
            .find_map(|k| fields.get(*k).map(|v| (*k, v)))
        {
            None | Some((_, Value::Null)) => None,
            Some((key, v)) => Some(interval_value(v).map_err(field(key))?),
        };
        Ok(Observation {
            form: Form::Json,
            timestamp,
            interval_seconds,
            mtime,
            fields,
        })
    }

    /// A string field of a JSON heartbeat.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key)?.as_str()
    }

    /// An unsigned integer field of a JSON heartbeat.
    pub fn u64_field(&self, key: &str) -> Option<u64> {
        self.fields.get(key)?.as_u64()
    }

    /// The writer's `seq`.
    pub fn seq(&self) -> Option<u64> {
        self.u64_field("seq")
    }

    /// The writer's `boot_id`.
    pub fn boot_id(&self) -> Option<&str> {
        self.str_field("boot_id")
    }
}

/// A JSON error without the content: serde_json's syntax messages name the
/// line and column only, but a data error may quote a value.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => e.to_string(),
        Category::Data | Category::Io => {
            format!(
                "unexpected value at line {} column {}",
                e.line(),
                e.column()
            )
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn time_value(v: &Value) -> Result<f64, FieldProblem> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|t| t.is_finite())
            .ok_or(FieldProblem::NotFinite),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .or_else(|| parse_iso(s))
            .ok_or(FieldProblem::NotATime),
        other => Err(FieldProblem::WrongType {
            expected: "epoch seconds or an ISO-8601 string",
            found: type_name(other),
        }),
    }
}

fn interval_value(v: &Value) -> Result<f64, FieldProblem> {
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_duration(s).ok().map(|d| d.as_secs_f64()),
        other => {
            return Err(FieldProblem::WrongType {
                expected: "seconds or a duration",
                found: type_name(other),
            });
        }
    };
    match secs {
        Some(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(FieldProblem::NotPositive),
    }
}

/// Parses RFC 3339 / ISO-8601 times; a time without an offset is UTC.
fn parse_iso(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() < 10 || s.len() > 64 {
        return None;
    }
    let owned;
    let s = if s.as_bytes().get(10) == Some(&b' ') {
        owned = format!("{}T{}", &s[..10], &s[11..]);
        owned.as_str()
    } else {
        s
    };
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

/// Why a file could not be observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `Missing`, `Unreadable` or `Corrupt`.
    pub state: State,
    /// What went wrong, naming the field where there is one.
    pub reason: String,
}

impl Problem {
    fn unreadable(reason: impl Into<String>) -> Problem {
        Problem {
            state: State::Unreadable,
            reason: reason.into(),
        }
    }

    fn corrupt(reason: impl Into<String>) -> Problem {
        Problem {
            state: State::Corrupt,
            reason: reason.into(),
        }
    }
}

impl Observation {
    /// Reads and parses one heartbeat file. Never follows a symbolic link
    /// (`O_NOFOLLOW`: a link is `Unreadable`, "a symbolic link, not followed"),
    /// never blocks on FIFOs or devices, never reads more than
    /// [`Observation::MAX_FILE_BYTES`]; every checker reads heartbeats through this family
    /// ([`Observation::read_many`], [`Classification::read`], [`Glance::read`]).
    ///
    /// The reason for an invalid file never quotes its content, except for a
    /// sample of at most [`Observation::SAMPLE_BYTES`] printable ASCII bytes from its start,
    /// and only when the file is *owned as expected*: a regular file with one
    /// name (no hard link to a file elsewhere), readable by everyone (as
    /// heartbeats are written: 0644) and owned by the owner of the directory
    /// that holds it. Anything else (a FIFO, a device, a directory, a private
    /// file, a file a stranger put in a shared directory) is reported without
    /// a byte of it.
    pub fn read(path: &Path) -> Result<Observation, Problem> {
        observe_into(path, &mut Vec::new())
    }

    /// Reads and parses a heartbeat file the caller opened itself (e.g.
    /// relative to a directory descriptor with `O_NOFOLLOW`, as `nexus-cell`
    /// does). Open it with `O_NONBLOCK` so a FIFO cannot block the read. Its
    /// directory is unknown here, so an invalid file's content is never quoted.
    pub fn of_file(file: &mut File) -> Result<Observation, Problem> {
        observe_opened(file, &mut Vec::new(), None)
    }

    /// [`Observation::read`]s many files on all available cores; results are in input
    /// order. The read is the expensive part (four syscalls a file), so this is
    /// what checkers of thousands of files call.
    pub fn read_many<P: AsRef<Path> + Sync>(paths: &[P]) -> Vec<Result<Observation, Problem>> {
        // Files per thread before a thread is worth starting; each thread
        // reuses one read buffer.
        const PER_THREAD_MIN: usize = 256;
        nexus_stdx::par_map_with(
            paths,
            PER_THREAD_MIN,
            || Vec::with_capacity(FIRST_READ),
            |buf, p| observe_into(p.as_ref(), buf),
        )
    }
}

/// [`Observation::read`] reading into `buf` (reused across calls by [`Observation::read_many`],
/// which saves an allocation per file).
fn observe_into(path: &Path, buf: &mut Vec<u8>) -> Result<Observation, Problem> {
    let mut file = open_heartbeat(path)?;
    observe_opened(&mut file, buf, Some(path))
}

fn observe_opened(
    file: &mut File,
    buf: &mut Vec<u8>,
    path: Option<&Path>,
) -> Result<Observation, Problem> {
    let len = read_heartbeat(file, buf)?;
    observe_read(file, &buf[..len], path)
}

/// [`read_bounded`] of a heartbeat; a failed read of something that is not
/// a regular file (a directory, a FIFO with a silent writer) says what it is.
fn read_heartbeat(file: &mut File, buf: &mut Vec<u8>) -> Result<usize, Problem> {
    read_bounded(file, buf).map_err(|e| match regular_file(file) {
        Ok(_) => Problem::unreadable(format!("cannot read: {e}")),
        Err(p) => p,
    })
}

/// [`observe_opened`] once `buf` holds what [`read_bounded`] read of `file`
/// (opened at `path`, when the caller knows it).
fn observe_read(file: &File, buf: &[u8], path: Option<&Path>) -> Result<Observation, Problem> {
    if !buf.is_empty() && buf.len() as u64 <= Observation::MAX_FILE_BYTES {
        // The common case costs open, one read, close: no fstat.
        let reason = match Observation::parse(buf, None) {
            Ok(obs) => return Ok(obs),
            Err(e) => e.to_string(),
        };
        // Before a word of it is quoted: what is it, and whose?
        let meta = regular_file(file)?;
        return Err(Problem::corrupt(match path {
            Some(path) if owned_as_expected(&meta, path) => with_sample(reason, buf),
            _ => reason,
        }));
    }
    // Rare cases are worth an fstat: an empty file's time is its mtime, and
    // an empty or endless read may come from something that is not a file.
    let meta = regular_file(file)?;
    if !buf.is_empty() {
        return Err(Problem::corrupt(format!(
            "file is {} bytes, more than the {}-byte limit for a heartbeat",
            meta.len(),
            Observation::MAX_FILE_BYTES
        )));
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    Observation::parse(buf, mtime).map_err(|e| Problem::corrupt(e.to_string()))
}

/// The metadata of `file` when it is a regular file; anything else is
/// `Unreadable`, saying what it is.
fn regular_file(file: &File) -> Result<std::fs::Metadata, Problem> {
    use std::os::unix::fs::FileTypeExt;
    let meta = file
        .metadata()
        .map_err(|e| Problem::unreadable(format!("cannot stat: {e}")))?;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(meta);
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(Problem::unreadable(format!("not a regular file ({what})")))
}

/// Whether the content of `path` may be quoted (see [`Observation::read`]): one
/// name, readable by everyone, and owned by its directory's owner.
fn owned_as_expected(meta: &std::fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() || meta.nlink() != 1 || meta.mode() & 0o004 == 0 {
        return false;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::metadata(dir).is_ok_and(|d| d.uid() == meta.uid())
}

/// `reason` and the printable ASCII `content` starts with (at most
/// [`Observation::SAMPLE_BYTES`], up to the first byte that is not printable: a control
/// character cannot forge a line or a terminal escape in a report).
fn with_sample(reason: String, content: &[u8]) -> String {
    let sample: String = content
        .iter()
        .take(Observation::SAMPLE_BYTES)
        .take_while(|b| matches!(b, b' '..=b'~'))
        .map(|&b| char::from(b))
        .collect();
    if sample.trim().is_empty() {
        return reason;
    }
    format!("{reason}; starts with {sample:?}")
}

/// A heartbeat is a few hundred bytes: one read of this size is the whole file.
pub(crate) const FIRST_READ: usize = 4096;

/// Reads the whole file, at most `Observation::MAX_FILE_BYTES + 1` bytes, into the front
/// of `buf` (see `nexus_stdx::read_limited`).
fn read_bounded(file: &mut File, buf: &mut Vec<u8>) -> io::Result<usize> {
    nexus_stdx::read_limited(file, buf, FIRST_READ, Observation::MAX_FILE_BYTES)
}

/// Opens a heartbeat for reading without following a final symbolic link
/// and without blocking; the problem says why it cannot be read.
fn open_heartbeat(path: &Path) -> Result<File, Problem> {
    open_heartbeat_with(path, nexus_stdx::NOFOLLOW_NONBLOCK)
}

/// [`open_heartbeat`] with the open flags given (`None`: not known for
/// this target: `lstat` before and `fstat` after the open instead).
fn open_heartbeat_with(path: &Path, flags: Option<i32>) -> Result<File, Problem> {
    use std::os::unix::fs::MetadataExt;
    let Some(flags) = flags else {
        // lstat: no link, nothing that could block an open; then the file
        // opened must be the one looked at. (A FIFO swapped in between the
        // two could still block this open: only targets whose flags are
        // unknown take this path.)
        let before = std::fs::symlink_metadata(path).map_err(|e| open_problem(path, e))?;
        if before.file_type().is_symlink() {
            return Err(Problem::unreadable(LINK_NOT_FOLLOWED));
        }
        if !before.is_file() {
            return Err(Problem::unreadable("not a regular file"));
        }
        let file = File::open(path).map_err(|e| open_problem(path, e))?;
        let after = regular_file(&file)?;
        if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
            return Err(Problem::unreadable("replaced while it was being opened"));
        }
        return Ok(file);
    };
    nexus_stdx::open_nofollow_with(path, flags).map_err(|e| open_problem(path, e))
}

const LINK_NOT_FOLLOWED: &str = "a symbolic link, not followed";

/// Why `path` could not be opened; `O_NOFOLLOW` on a link is `ELOOP`.
fn open_problem(path: &Path, e: io::Error) -> Problem {
    if e.kind() == io::ErrorKind::NotFound {
        return Problem {
            state: State::Missing,
            reason: "no such file".to_string(),
        };
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Problem::unreadable(LINK_NOT_FOLLOWED);
    }
    Problem::unreadable(format!("cannot open: {e}"))
}

/// How old a heartbeat may be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// A fixed maximum age in seconds; when `None`, the document's own
    /// interval times `interval_factor` is used, else `default_max_age`.
    pub max_age: Option<f64>,
    /// Multiplier for a document's interval (the cron rule: stale beyond 2x).
    pub interval_factor: f64,
    /// Maximum age for documents without an interval (agent heartbeats).
    pub default_max_age: f64,
    /// How far in the future a timestamp may be before it is clock skew.
    pub future_tolerance: f64,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule {
            max_age: None,
            interval_factor: 2.0,
            default_max_age: 300.0,
            future_tolerance: 300.0,
        }
    }
}

impl Rule {
    /// A fixed maximum age, default skew tolerance.
    pub fn fixed(max_age_seconds: f64) -> Rule {
        Rule {
            max_age: Some(max_age_seconds),
            ..Rule::default()
        }
    }

    /// The maximum age that applies to `obs`.
    pub fn max_age_for(&self, obs: Option<&Observation>) -> f64 {
        self.max_age_for_interval(obs.and_then(|o| o.interval_seconds))
    }

    /// The maximum age for a beat that declares `interval` seconds.
    pub fn max_age_for_interval(&self, interval: Option<f64>) -> f64 {
        self.max_age
            .or_else(|| interval.map(|i| i * self.interval_factor))
            .unwrap_or(self.default_max_age)
    }
}

/// The verdict on one heartbeat file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// Heartbeat path as given (not canonicalised).
    pub path: PathBuf,
    /// Verdict at the time of the check, against `max_age_seconds`.
    pub state: State,
    /// `now - timestamp` in seconds, when there is a timestamp (epoch 0 when
    /// the field is missing).
    pub age_seconds: Option<f64>,
    /// The maximum age that was applied.
    pub max_age_seconds: f64,
    /// A one-line human reason (without the path; `Display` adds it).
    pub reason: String,
    /// What was read, when the file could be parsed.
    pub observation: Option<Observation>,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.path.display(),
            self.state,
            self.reason
        )
    }
}

impl Classification {
    /// Classifies an observation (or the problem reading it) at time `now`.
    pub fn of(
        path: &Path,
        observed: Result<Observation, Problem>,
        now: f64,
        rule: &Rule,
    ) -> Classification {
        let obs = match observed {
            Ok(obs) => obs,
            Err(p) => {
                return Classification {
                    path: path.to_path_buf(),
                    state: p.state,
                    age_seconds: None,
                    max_age_seconds: rule.max_age_for(None),
                    reason: p.reason,
                    observation: None,
                };
            }
        };
        let max_age = rule.max_age_for(Some(&obs));
        let failed_run = match (obs.str_field("status"), obs.fields.get("exit_code")) {
            (Some("failed"), Some(code)) => format!("; last run failed with exit code {code}"),
            (Some("failed"), None) => "; last run failed".to_string(),
            _ => String::new(),
        };
        let (state, age, reason) = match obs.timestamp {
            None => {
                let why = if obs.str_field("status") == Some("failed") {
                    "never succeeded (no `timestamp`)"
                } else {
                    "field `timestamp` is missing (treated as epoch 0)"
                };
                (State::Stale, now, format!("{why}{failed_run}"))
            }
            Some(ts) => {
                let age = now - ts;
                if age < -rule.future_tolerance {
                    (
                        State::FromTheFuture,
                        age,
                        format!(
                            "timestamp is {} in the future (tolerance {}): clock skew",
                            format_duration(-age),
                            format_duration(rule.future_tolerance)
                        ),
                    )
                } else if age > max_age {
                    (
                        State::Stale,
                        age,
                        format!(
                            "last beat {} ago (max {}){failed_run}",
                            format_duration(age),
                            format_duration(max_age)
                        ),
                    )
                } else {
                    (
                        State::Fresh,
                        age,
                        format!(
                            "last beat {} ago (max {}){failed_run}",
                            format_duration(age.max(0.0)),
                            format_duration(max_age)
                        ),
                    )
                }
            }
        };
        Classification {
            path: path.to_path_buf(),
            state,
            age_seconds: Some(age),
            max_age_seconds: max_age,
            reason,
            observation: Some(obs),
        }
    }

    /// Reads and classifies one file.
    pub fn read(path: &Path, now: f64, rule: &Rule) -> Classification {
        Classification::of(path, Observation::read(path), now, rule)
    }

    /// Classifies many files on all available cores; results are in input order.
    pub fn read_many<P: AsRef<Path> + Sync>(
        paths: &[P],
        now: f64,
        rule: &Rule,
    ) -> Vec<Classification> {
        Observation::read_many(paths)
            .into_iter()
            .zip(paths)
            .map(|(observed, p)| Classification::of(p.as_ref(), observed, now, rule))
            .collect()
    }
}

/// How a writer moved between two observations of the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// `seq` grew by this many writes on the same boot.
    Advanced {
        /// Number of writes in between.
        writes: u64,
    },
    /// Same `seq` and boot: the writer has not written since.
    Unchanged,
    /// The `boot_id` changed: the machine rebooted in between.
    Rebooted,
    /// `seq` went backwards on the same boot: the file was replaced or reset.
    Regressed,
    /// One of the two has no `seq` (legacy writer).
    Unknown,
}

impl Progress {
    /// Compares two observations of one file.
    pub fn between(previous: &Observation, current: &Observation) -> Progress {
        if let (Some(a), Some(b)) = (previous.boot_id(), current.boot_id())
            && a != b
        {
            return Progress::Rebooted;
        }
        match (previous.seq(), current.seq()) {
            (Some(a), Some(b)) if b > a => Progress::Advanced { writes: b - a },
            (Some(a), Some(b)) if b == a => Progress::Unchanged,
            (Some(_), Some(_)) => Progress::Regressed,
            _ => Progress::Unknown,
        }
    }
}

mod glance;
pub use glance::Glance;

#[cfg(test)]
mod tests;
