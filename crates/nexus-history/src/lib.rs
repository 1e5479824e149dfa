//! State-change history of agents, cron jobs and watchdog checks, in one
//! embedded SQLite file (issue 22).
//!
//! Main types:
//! - [`Recorder`]: a `Clone + Send` handle; [`Recorder::record`] is a
//!   non-blocking send into a bounded queue drained by one writer thread that
//!   commits in batches (one transaction per batch) and prunes rows older than
//!   the retention in bounded steps. A full queue drops the event and counts it
//!   ([`Recorder::dropped`]).
//! - [`Reader`]: a read-only connection for the dashboard: [`Reader::subjects`]
//!   (each subject with its group and last state), [`Reader::last_events`],
//!   [`Reader::uptime`] (K buckets plus the uptime % from the state intervals;
//!   the state before the window counts).
//! - [`Timeline`]: the last 7 days in memory for the dashboard, brought up
//!   to date by [`Reader::refresh`] reading only the rows added since; each
//!   subject's 24-hour and 7-day bars ([`is_up`] says which states are up).
//! - [`Settings`]: the `[history]` table the pool, the cron checker and
//!   the watchdog embed alike.
//! - [`Event`], [`Kind`], [`HistoryError`].
//!
//! An event without an actor that repeats its subject's state is an
//! observation, not a row: one-shot checkers record every subject on every
//! run and only the changes are kept (the subject's `seen_ms` advances).
//!
//! One schema serves the pool, the cron checker and the watchdog; the file is
//! in WAL mode and versioned with `PRAGMA user_version`.
//!
//! Must never: follow a symbolic link in the file's place
//! (`SQLITE_OPEN_NOFOLLOW`), block its caller on a write (only [`Recorder::flush`] waits,
//! for tests and shutdown), format a name or reason into SQL (all are bound
//! parameters, capped in length), panic on a corrupt, foreign or unreachable
//! file (a typed error naming the file), or pull in an async runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

mod settings;
mod timeline;

pub use settings::{Settings, WithHistory};

pub use timeline::{
    DAY_BUCKETS, DAY_MS, Refreshed, Timeline, Tracked, WEEK_BUCKETS, WEEK_MS, is_up,
};

/// The schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;
/// Longest group or subject name kept, in bytes (longer ones are cut).
pub const MAX_NAME: usize = 256;
/// Longest state kept, in bytes.
pub const MAX_STATE: usize = 64;
/// Longest reason or actor kept, in bytes.
pub const MAX_REASON: usize = 1024;
/// Rows deleted per pruning step: one short transaction each.
pub const PRUNE_BATCH: i64 = 5_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subjects (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    grp TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, subject)
);
CREATE TABLE IF NOT EXISTS reasons (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    subject_id INTEGER NOT NULL,
    old_state TEXT NOT NULL,
    new_state TEXT NOT NULL,
    reason_id INTEGER NOT NULL,
    actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_subject ON events(subject_id, at_ms);
";

/// What a history row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A resurrection-pool agent.
    Agent,
    /// A cron job (`.last` file or ping).
    Cron,
    /// A watchdog check.
    Check,
}

impl Kind {
    /// The stored text: `agent`, `cron` or `check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Cron => "cron",
            Kind::Check => "check",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "agent" => Some(Kind::Agent),
            "cron" => Some(Kind::Cron),
            "check" => Some(Kind::Check),
            _ => None,
        }
    }
}

/// One state change (or an action such as an approval, with `actor` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the Unix epoch, UTC.
    pub at_ms: i64,
    /// Agent, cron job or check.
    pub kind: Kind,
    /// Mission or cell name (not a UUID where a name exists).
    pub group: String,
    /// The agent, job or check name.
    pub subject: String,
    /// State before the change (empty if unknown).
    pub old_state: String,
    /// State after the change.
    pub new_state: String,
    /// Why, in words.
    pub reason: String,
    /// Who caused it: empty for the suite itself, else e.g. `dashboard:alice`.
    pub actor: String,
}

impl Event {
    /// A change stamped now, with no actor.
    pub fn now(
        kind: Kind,
        group: &str,
        subject: &str,
        old_state: &str,
        new_state: &str,
        reason: &str,
    ) -> Event {
        Event {
            at_ms: now_ms(),
            kind,
            group: group.to_owned(),
            subject: subject.to_owned(),
            old_state: old_state.to_owned(),
            new_state: new_state.to_owned(),
            reason: reason.to_owned(),
            actor: String::new(),
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why the history file could not be opened or read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite refused: not a database, corrupt, unreachable, read-only.
    #[error("history database {}: {source}", path.display())]
    Sqlite {
        /// The history file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer build.
    #[error(
        "history database {}: schema version {found} is newer than this build's {SCHEMA_VERSION}",
        path.display()
    )]
    NewerSchema {
        /// The history file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
    /// The writer thread could not be spawned.
    #[error("history database {}: cannot start the writer thread: {source}", path.display())]
    Thread {
        /// The history file.
        path: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows older than this are pruned (default 30 days).
    pub retention: Duration,
    /// Queue length; a full queue drops (default 65,536).
    pub queue: usize,
    /// Most events committed in one transaction (default 4,096).
    pub batch: usize,
    /// Pause between pruning passes once a step finds fewer than
    /// [`PRUNE_BATCH`] old rows (default 60 s).
    pub prune_every: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            retention: Duration::from_secs(30 * 86_400),
            queue: 65_536,
            batch: 4_096,
            prune_every: Duration::from_secs(60),
        }
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
    move |source| HistoryError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Opens `path` with `flags` (one connection per thread, never through a
/// link in the file's place: the daemons run as root beside agents that may
/// swap a path), waiting up to `busy` for another writer's lock; refuses a
/// schema newer than this build's. Returns the connection and its version.
fn open_versioned(
    path: &Path,
    flags: OpenFlags,
    busy: Duration,
) -> Result<(Connection, i64), HistoryError> {
    let e = sql_err(path);
    let conn = Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(&e)?;
    conn.busy_timeout(busy).map_err(&e)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(&e)?;
    if version > SCHEMA_VERSION {
        return Err(HistoryError::NewerSchema {
            path: path.to_owned(),
            found: version,
        });
    }
    Ok((conn, version))
}

/// Opens (creating if needed) the file read-write, in WAL mode, with the
/// schema at [`SCHEMA_VERSION`].
fn open_rw(path: &Path) -> Result<Connection, HistoryError> {
    let e = sql_err(path);
    let (conn, version) = open_versioned(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Duration::from_secs(5),
    )?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(&e)?;
    conn.execute_batch("PRAGMA synchronous=NORMAL;")
        .map_err(&e)?;
    if version < SCHEMA_VERSION {
        // Version 1 (no `seen_ms`) is upgraded in place.
        if version == 1 {
            conn.execute_batch(
                "ALTER TABLE subjects ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0",
            )
            .map_err(&e)?;
        }
        conn.execute_batch(SCHEMA).map_err(&e)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(&e)?;
    }
    Ok(conn)
}

enum Msg {
    Event(Box<Event>),
    Flush(SyncSender<()>),
}

struct Shared {
    dropped: AtomicU64,
    written: AtomicU64,
    pruned: AtomicU64,
    failed: AtomicU64,
    unchanged: AtomicU64,
}

/// The non-blocking write handle; clones share one queue and writer thread.
/// The writer ends when the last clone is dropped (after committing what is
/// queued).
#[derive(Clone)]
pub struct Recorder {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Recorder {
    /// Opens the file (creating it and its schema) and starts the writer
    /// thread. Errors name the file; nothing panics on a bad file.
    pub fn start(path: &Path, options: Options) -> Result<(Recorder, Writer), HistoryError> {
        let conn = open_rw(path)?;
        let (tx, rx) = sync_channel(options.queue.max(1));
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("nexus-history".into())
            .spawn(move || writer_loop(conn, rx, &options, &thread_shared))
            .map_err(|source| HistoryError::Thread {
                path: path.to_owned(),
                source,
            })?;
        Ok((
            Recorder {
                tx,
                shared,
                path: Arc::new(path.to_owned()),
            },
            Writer {
                handle: Some(handle),
            },
        ))
    }

    /// Queues `event`; never blocks. A full queue (or a stopped writer)
    /// drops it and counts it in [`Recorder::dropped`].
    pub fn record(&self, event: Event) {
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until everything queued before this call is committed. For
    /// tests and shutdown only: it blocks.
    pub fn flush(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Events committed as rows so far (changes and actions).
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Events that repeated their subject's state (observations: no row,
    /// only the subject's `seen` time advanced).
    pub fn unchanged(&self) -> u64 {
        self.shared.unchanged.load(Ordering::Relaxed)
    }

    /// Rows pruned for age so far.
    pub fn pruned(&self) -> u64 {
        self.shared.pruned.load(Ordering::Relaxed)
    }

    /// Events lost because a commit failed (disk full, file removed...).
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// The history file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The writer thread; [`Writer::join`] waits for it after every
/// [`Recorder`] clone is dropped. Dropping it detaches the thread.
#[derive(Debug)]
pub struct Writer {
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Waits for the writer to commit what is queued and stop.
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn writer_loop(mut conn: Connection, rx: Receiver<Msg>, options: &Options, shared: &Shared) {
    let mut batch: Vec<Event> = Vec::with_capacity(options.batch);
    let mut flushes: Vec<SyncSender<()>> = Vec::new();
    let retention_ms = i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX);
    let mut next_prune = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut pending = first;
        while let Some(m) = pending.take() {
            match m {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() >= options.batch {
                break;
            }
            pending = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match write_batch(&mut conn, &batch) {
                Ok(same) => {
                    shared.written.fetch_add(n - same, Ordering::Relaxed);
                    shared.unchanged.fetch_add(same, Ordering::Relaxed);
                }
                Err(_) => {
                    shared.failed.fetch_add(n, Ordering::Relaxed);
                }
            }
            batch.clear();
        }
        if Instant::now() >= next_prune {
            let cutoff = now_ms().saturating_sub(retention_ms);
            match prune_step(&conn, cutoff, PRUNE_BATCH) {
                // A full step: more may be left; go on after the next batch.
                Ok(n) if n >= PRUNE_BATCH as usize => {
                    shared.pruned.fetch_add(n as u64, Ordering::Relaxed);
                }
                Ok(n) => {
                    shared.pruned.fetch_add(n as u64, Ordering::Relaxed);
                    next_prune = Instant::now() + options.prune_every;
                }
                Err(_) => next_prune = Instant::now() + options.prune_every,
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
    if !batch.is_empty()
        && let Ok(same) = write_batch(&mut conn, &batch)
    {
        shared
            .written
            .fetch_add(batch.len() as u64 - same, Ordering::Relaxed);
        shared.unchanged.fetch_add(same, Ordering::Relaxed);
    }
}

/// Commits `batch` in one transaction; returns how many events were
/// unchanged observations (no row, the subject's `seen_ms` advanced).
///
/// An event without an actor whose state is the subject's current one is
/// an observation, not a change: one-shot checkers record every subject
/// every run and only changes become rows. An event whose `old_state` is
/// empty gets the subject's stored state.
fn write_batch(conn: &mut Connection, batch: &[Event]) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let mut unchanged = 0u64;
    {
        let mut current =
            tx.prepare_cached("SELECT id, state FROM subjects WHERE kind = ?1 AND subject = ?2")?;
        let mut seen = tx.prepare_cached(
            "UPDATE subjects SET
               grp = iif(?2 >= seen_ms, ?3, grp),
               reason = iif(?2 >= seen_ms, ?4, reason),
               seen_ms = max(seen_ms, ?2)
             WHERE id = ?1",
        )?;
        // Each subject and reason text is stored once; events point at them.
        let mut subject = tx.prepare_cached(
            "INSERT INTO subjects (kind, subject, grp, state, reason, at_ms, seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (kind, subject) DO UPDATE SET
               grp = iif(excluded.at_ms >= subjects.at_ms, excluded.grp, subjects.grp),
               state = iif(excluded.at_ms >= subjects.at_ms, excluded.state, subjects.state),
               reason = iif(excluded.at_ms >= subjects.at_ms, excluded.reason, subjects.reason),
               at_ms = max(excluded.at_ms, subjects.at_ms),
               seen_ms = max(excluded.at_ms, subjects.seen_ms)
             RETURNING id",
        )?;
        let mut find_reason = tx.prepare_cached("SELECT id FROM reasons WHERE text = ?1")?;
        let mut add_reason = tx.prepare_cached("INSERT INTO reasons (text) VALUES (?1)")?;
        let mut ins = tx.prepare_cached(
            "INSERT INTO events (at_ms, subject_id, old_state, new_state, reason_id, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in batch {
            let name = cut(&e.subject, MAX_NAME);
            let group = cut(&e.group, MAX_NAME);
            let new_state = cut(&e.new_state, MAX_STATE);
            let reason = cut(&e.reason, MAX_REASON);
            let stored: Option<(i64, String)> = current
                .query_row(params![e.kind.as_str(), name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if e.actor.is_empty()
                && let Some((id, state)) = &stored
                && state == new_state
            {
                seen.execute(params![id, e.at_ms, group, reason])?;
                unchanged += 1;
                continue;
            }
            let old_state = match (&stored, e.old_state.is_empty()) {
                (Some((_, state)), true) => state.as_str(),
                _ => cut(&e.old_state, MAX_STATE),
            };
            let subject_id: i64 = subject.query_row(
                params![e.kind.as_str(), name, group, new_state, reason, e.at_ms],
                |r| r.get(0),
            )?;
            let reason_id: i64 = match find_reason
                .query_row(params![reason], |r| r.get(0))
                .optional()?
            {
                Some(id) => id,
                None => {
                    add_reason.execute(params![reason])?;
                    tx.last_insert_rowid()
                }
            };
            ins.execute(params![
                e.at_ms,
                subject_id,
                old_state,
                new_state,
                reason_id,
                cut(&e.actor, MAX_REASON),
            ])?;
        }
    }
    tx.commit()?;
    Ok(unchanged)
}

/// Deletes the rows older than `cutoff_ms` among the `limit` oldest rows
/// (by rowid, which follows time: no index on `at_ms` is needed); returns
/// how many. Fewer than `limit` means the old prefix is gone.
fn prune_step(conn: &Connection, cutoff_ms: i64, limit: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM events WHERE id IN
           (SELECT id FROM (SELECT id, at_ms FROM events ORDER BY id LIMIT ?2) WHERE at_ms < ?1)",
        params![cutoff_ms, limit],
    )
}

/// Prunes everything older than `cutoff_ms` in steps of [`PRUNE_BATCH`]
/// rows, then reclaims the space (`VACUUM`). For maintenance and the
/// benchmark; the writer thread prunes on its own. Returns rows deleted.
pub fn prune_and_vacuum(path: &Path, cutoff_ms: i64) -> Result<u64, HistoryError> {
    let conn = open_rw(path)?;
    let e = sql_err(path);
    let mut total = 0u64;
    loop {
        let n = prune_step(&conn, cutoff_ms, PRUNE_BATCH).map_err(&e)?;
        total += n as u64;
        if n < PRUNE_BATCH as usize {
            break;
        }
    }
    conn.execute_batch("VACUUM").map_err(&e)?;
    Ok(total)
}

/// A subject's last known state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Agent, cron job or check.
    pub kind: Kind,
    /// Mission or cell name.
    pub group: String,
    /// The agent, job or check name.
    pub subject: String,
    /// Its last state.
    pub state: String,
    /// Why it is in that state.
    pub reason: String,
    /// When it entered it, ms since the epoch.
    pub at_ms: i64,
    /// When it was last observed (in that state or entering it), ms since
    /// the epoch: a checker that stopped running leaves this behind.
    pub seen_ms: i64,
}

/// Uptime over a window: `buckets[i]` is the up fraction of the known time in
/// bucket i (None: no known state), `percent` over the whole window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uptime {
    /// Up fraction (0 to 1) per bucket, oldest first.
    pub buckets: Vec<Option<f64>>,
    /// Up % (0 to 100) over the window's known time.
    pub percent: Option<f64>,
}

/// A read-only connection for the dashboard; separate from the writer.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// Opens an existing history file read-only.
    pub fn open(path: &Path) -> Result<Reader, HistoryError> {
        let (conn, _) = open_versioned(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY,
            Duration::from_secs(2),
        )?;
        Ok(Reader {
            conn,
            path: path.to_owned(),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        sql_err(&self.path)
    }

    /// Every subject with its group and last state, by kind, group, name.
    pub fn subjects(&self) -> Result<Vec<Subject>, HistoryError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT kind, grp, subject, state, reason, at_ms, seen_ms FROM subjects
                 ORDER BY kind, grp, subject",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Subject {
                        kind: Kind::Agent,
                        group: r.get(1)?,
                        subject: r.get(2)?,
                        state: r.get(3)?,
                        reason: r.get(4)?,
                        at_ms: r.get(5)?,
                        seen_ms: r.get(6)?,
                    },
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, mut s) = row.map_err(self.err())?;
            // A kind this build does not know (a newer writer) is skipped.
            if let Some(k) = Kind::parse(&kind) {
                s.kind = k;
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The last state recorded for a subject.
    pub fn last_state(&self, kind: Kind, subject: &str) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row(
                "SELECT state FROM subjects WHERE kind = ?1 AND subject = ?2",
                params![kind.as_str(), cut(subject, MAX_NAME)],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// The last `n` events of a subject, newest first.
    pub fn last_events(
        &self,
        kind: Kind,
        subject: &str,
        n: usize,
    ) -> Result<Vec<Event>, HistoryError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT e.at_ms, s.grp, s.subject, e.old_state, e.new_state, r.text, e.actor
                 FROM events e JOIN subjects s ON s.id = e.subject_id
                 JOIN reasons r ON r.id = e.reason_id
                 WHERE s.kind = ?1 AND s.subject = ?2 ORDER BY e.at_ms DESC, e.id DESC LIMIT ?3",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(
                params![
                    kind.as_str(),
                    cut(subject, MAX_NAME),
                    i64::try_from(n).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(Event {
                        at_ms: r.get(0)?,
                        kind,
                        group: r.get(1)?,
                        subject: r.get(2)?,
                        old_state: r.get(3)?,
                        new_state: r.get(4)?,
                        reason: r.get(5)?,
                        actor: r.get(6)?,
                    })
                },
            )
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Uptime of a subject over `[from_ms, to_ms)` in `k` equal buckets, from
    /// the state intervals: the last state before `from_ms` holds until the
    /// first change in the window. `is_up` says which states count as up.
    pub fn uptime(
        &self,
        kind: Kind,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
        k: usize,
        is_up: impl Fn(&str) -> bool,
    ) -> Result<Uptime, HistoryError> {
        let k = k.max(1);
        let subject = cut(subject, MAX_NAME);
        let before: Option<String> = self
            .conn
            .query_row(
                "SELECT e.new_state FROM events e JOIN subjects s ON s.id = e.subject_id
                 WHERE s.kind = ?1 AND s.subject = ?2 AND e.at_ms < ?3
                 ORDER BY e.at_ms DESC, e.id DESC LIMIT 1",
                params![kind.as_str(), subject, from_ms],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT e.at_ms, e.new_state FROM events e JOIN subjects s ON s.id = e.subject_id
                 WHERE s.kind = ?1 AND s.subject = ?2 AND e.at_ms >= ?3 AND e.at_ms < ?4
                 ORDER BY e.at_ms, e.id",
            )
            .map_err(self.err())?;
        let changes = st
            .query_map(params![kind.as_str(), subject, from_ms, to_ms], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(compute_uptime(
            before.map(|s| is_up(&s)),
            changes.iter().map(|(t, s)| (*t, Some(is_up(s)))),
            from_ms,
            to_ms,
            k,
        ))
    }
}

/// Splits `[from, to)` into `k` buckets and sums up/known time over the
/// intervals between changes. `start`: up or not before `from` (None: unknown).
fn compute_uptime(
    start: Option<bool>,
    changes: impl Iterator<Item = (i64, Option<bool>)>,
    from: i64,
    to: i64,
    k: usize,
) -> Uptime {
    let span = (to - from).max(1) as f64;
    let width = span / k as f64;
    let mut up = vec![0f64; k];
    let mut known = vec![0f64; k];
    let mut add = |a: i64, b: i64, state: Option<bool>| {
        let Some(is_up) = state else { return };
        if b <= a {
            return;
        }
        let (a, b) = ((a - from) as f64, (b - from) as f64);
        let first = ((a / width) as usize).min(k - 1);
        let last = ((b / width).ceil() as usize).min(k);
        for i in first..last {
            let lo = a.max(i as f64 * width);
            let hi = b.min((i + 1) as f64 * width);
            if hi > lo {
                known[i] += hi - lo;
                if is_up {
                    up[i] += hi - lo;
                }
            }
        }
    };
    let mut t = from;
    let mut state = start;
    for (at, s) in changes {
        let at = at.clamp(from, to);
        add(t, at, state);
        t = at;
        state = s;
    }
    add(t, to, state);
    let buckets = up
        .iter()
        .zip(&known)
        .map(|(u, kn)| (*kn > 0.0).then(|| u / kn))
        .collect();
    let (u, kn): (f64, f64) = (up.iter().sum(), known.iter().sum());
    Uptime {
        buckets,
        percent: (kn > 0.0).then(|| 100.0 * u / kn),
    }
}

#[cfg(test)]
mod tests;
