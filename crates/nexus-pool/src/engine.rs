//! The event engine's sources: what wakes the pool between its safety
//! sweeps, so the cost per second follows what changes, not the size of
//! the fleet.
//!
//! - [`Watcher`]: inotify (through `rustix`, already the pool's system
//!   crate) on the cells root (a cell created, removed or renamed), on each
//!   cell's directory (its manifest replaced) and on each heartbeats
//!   directory (a beat landed). A beat is reported by agent key; anything
//!   that changes the fleet, and a queue overflow, asks for a full sweep.
//!   A reader thread waits for the first event, lets a batch gather for
//!   [`BEAT_BATCH`], and hands the runtime the batch: 10,000 agents beating
//!   every 5 s (2,000 events a second) are ten wake-ups a second, not
//!   2,000 (an inotify descriptor in the runtime's epoll wakes it per event).
//! - [`Timers`]: one deadline per agent (its heartbeat going stale, or the
//!   time `nexus_revive::next_due` named), in a heap with lazy updates: a
//!   deadline pushed later (every beat does that) costs a map write, not a
//!   heap operation.
//!
//! Child exits come from the launcher (the pool reaps its children and
//! holds a pidfd per child); the pool's daemon loop selects over all three.
//!
//! # What this module must never do
//! - Read a heartbeat: it only says which agent's file changed (the step
//!   reads it, without following a link).
//! - Lose a change silently: a queue overflow, a watch that cannot be
//!   added or an unreadable event stream asks for a full sweep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::io::unix::AsyncFd;

/// Registers `fd` with the runtime. `AsyncFd::new` is deprecated because
/// it cannot know that the descriptor outlives the registration; an
/// `OwnedFd` moved into it does, by construction (and `unsafe` code is
/// forbidden in this workspace, so `register` is not an option).
pub(crate) fn owned_async_fd(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<AsyncFd<OwnedFd>> {
    #[allow(deprecated)]
    AsyncFd::with_interest(fd, interest)
}

/// How long the reader thread lets events gather after the first one: a
/// launched agent's first beat is seen this much later at most (exits and
/// deadlines do not wait for it).
pub const BEAT_BATCH: Duration = Duration::from_millis(100);

/// At most this much is read per batch (the rest comes with the next).
const BATCH_BYTES: usize = 1 << 20;

/// One deadline per key, earliest first.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    /// The key's deadline (the truth).
    due: HashMap<Arc<str>, Instant>,
    /// The earliest heap entry of the key, if any.
    queued: HashMap<Arc<str>, Instant>,
}

impl Timers {
    /// Sets `key`'s deadline to `at` (replacing the one it had).
    pub fn set(&mut self, key: &Arc<str>, at: Instant) {
        self.due.insert(key.clone(), at);
        if self.queued.get(key).is_none_or(|q| at < *q) {
            self.heap.push(Reverse((at, key.clone())));
            self.queued.insert(key.clone(), at);
            // Entries left behind by earlier deadlines: at most as many as
            // the keys, then the heap is rebuilt from the truth.
            if self.heap.len() > 2 * self.due.len() + 64 {
                self.compact();
            }
        }
    }

    /// Rebuilds the heap from the keys' deadlines (one entry each).
    fn compact(&mut self) {
        self.heap = self
            .due
            .iter()
            .map(|(k, t)| Reverse((*t, k.clone())))
            .collect();
        self.queued = self.due.clone();
    }

    /// `key` has no deadline any more.
    pub fn clear(&mut self, key: &str) {
        self.due.remove(key);
    }

    /// `key`'s deadline.
    pub fn get(&self, key: &str) -> Option<Instant> {
        self.due.get(key).copied()
    }

    /// How many keys have a deadline.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// No key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// When to wake next (possibly early: a deadline pushed later is found
    /// out when its old entry comes up).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// The keys whose deadline is at or before `now`, each once; their
    /// deadlines are cleared.
    pub fn pop_due(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        while let Some(Reverse((t, _))) = self.heap.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, key))) = self.heap.pop() else {
                break;
            };
            if self.queued.get(&key) == Some(&t) {
                self.queued.remove(&key);
            }
            match self.due.get(&key).copied() {
                Some(d) if d <= now => {
                    self.due.remove(&key);
                    out.push(key);
                }
                // Pushed later since: queue it at its real time.
                Some(d) if self.queued.get(&key).is_none_or(|q| d < *q) => {
                    self.heap.push(Reverse((d, key.clone())));
                    self.queued.insert(key, d);
                }
                _ => {}
            }
        }
        out
    }
}

/// What a watched directory is.
#[derive(Debug)]
enum Watched {
    /// The cells root: a cell created, removed or renamed.
    Root,
    /// A cell's directory: its manifest replaced.
    Cell,
    /// A heartbeats directory: file name → agent key.
    Beats(HashMap<Box<OsStr>, Arc<str>>),
}

/// What the watches saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The heartbeat file of this agent was written.
    Beat(Arc<str>),
    /// The heartbeat file of this agent was removed or renamed away: step it.
    Step(Arc<str>),
    /// The fleet may have changed, or an event was lost: sweep it all.
    Sweep(&'static str),
}

/// A heartbeat file's name in its directory, and its agent's key.
pub type Named = (Box<OsStr>, Arc<str>);

/// The directories to watch, built by a full sweep.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Cells root to watch for cells coming and going; `None` without `[cells]`.
    pub root: Option<PathBuf>,
    /// Every cell directory.
    pub cells: Vec<PathBuf>,
    /// Every heartbeats directory, with its files' agent keys.
    pub beats: HashMap<PathBuf, Vec<Named>>,
}

impl Wanted {
    /// Adds the heartbeat file `path` of `key`.
    pub fn beat(&mut self, path: &Path, key: &Arc<str>) {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            self.beats
                .entry(dir.to_path_buf())
                .or_default()
                .push((name.into(), key.clone()));
        }
    }
}

/// inotify over the cells root, the cells and the heartbeat directories.
#[derive(Debug)]
pub struct Watcher {
    fd: Arc<OwnedFd>,
    batches: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    by_wd: HashMap<i32, Watched>,
    by_dir: HashMap<PathBuf, i32>,
    /// Why some directory is not watched (the watch limit, a directory
    /// that is not there): its changes are found by the safety sweep.
    pub unwatched: Option<String>,
}

const ROOT_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::DONT_FOLLOW);
const CELL_EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::DONT_FOLLOW);
const BEAT_EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::DONT_FOLLOW);

/// The reader thread: waits for events (polling once a second whether the
/// watcher is still there), lets a batch gather, reads it and sends it.
fn read_batches(fd: Arc<OwnedFd>, tx: tokio::sync::mpsc::Sender<io::Result<Vec<u8>>>) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let second = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    while !tx.is_closed() {
        let mut fds = [PollFd::new(&*fd, PollFlags::IN)];
        match poll(&mut fds, Some(&second)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        }
        std::thread::sleep(BEAT_BATCH);
        let mut batch = Vec::new();
        while batch.len() < BATCH_BYTES {
            match rustix::io::read(&*fd, &mut buf[..]) {
                Ok(0) => break,
                Ok(n) => batch.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
        }
        if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
            return;
        }
    }
}

/// The events in a batch of `struct inotify_event`s: (wd, mask, name).
fn events(bytes: &[u8]) -> impl Iterator<Item = (i32, ReadFlags, &[u8])> {
    const HEAD: usize = 16;
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let head = bytes.get(at..at + HEAD)?;
        let word = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
        let wd = i32::from_ne_bytes(word(0));
        let mask = ReadFlags::from_bits_retain(u32::from_ne_bytes(word(4)));
        let len = u32::from_ne_bytes(word(12)) as usize;
        let name = bytes.get(at + HEAD..at + HEAD + len)?;
        at += HEAD + len;
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        Some((wd, mask, &name[..end]))
    })
}

impl Watcher {
    /// An inotify instance with no watch yet, and its reader thread; must
    /// be called inside the tokio runtime.
    pub fn new() -> io::Result<Watcher> {
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?);
        let (tx, batches) = tokio::sync::mpsc::channel(4);
        let reader = fd.clone();
        std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || read_batches(reader, tx))?;
        Ok(Watcher {
            fd,
            batches,
            by_wd: HashMap::new(),
            by_dir: HashMap::new(),
            unwatched: None,
        })
    }

    /// How many directories are watched.
    pub fn watches(&self) -> usize {
        self.by_wd.len()
    }

    /// Watches exactly what `wanted` names: new directories are added,
    /// gone ones removed, heartbeat names refreshed.
    pub fn sync(&mut self, wanted: Wanted) {
        let mut keep: HashMap<PathBuf, Watched> = HashMap::new();
        if let Some(root) = wanted.root {
            keep.insert(root, Watched::Root);
        }
        for c in wanted.cells {
            keep.insert(c, Watched::Cell);
        }
        for (dir, names) in wanted.beats {
            keep.insert(dir, Watched::Beats(names.into_iter().collect()));
        }
        let gone: Vec<PathBuf> = self
            .by_dir
            .keys()
            .filter(|d| !keep.contains_key(*d))
            .cloned()
            .collect();
        for dir in gone {
            if let Some(wd) = self.by_dir.remove(&dir) {
                self.by_wd.remove(&wd);
                let _ = inotify::remove_watch(&*self.fd, wd);
            }
        }
        let mut failed: Option<String> = None;
        let mut failures = 0usize;
        for (dir, what) in keep {
            let flags = match what {
                Watched::Root => ROOT_EVENTS,
                Watched::Cell => CELL_EVENTS,
                Watched::Beats(_) => BEAT_EVENTS,
            };
            if let Some(wd) = self.by_dir.get(&dir) {
                self.by_wd.insert(*wd, what);
                continue;
            }
            match inotify::add_watch(&*self.fd, &dir, flags) {
                Ok(wd) => {
                    // Two paths to one directory (a link): one watch, the
                    // last meaning wins; the safety sweep covers the other.
                    self.by_wd.insert(wd, what);
                    self.by_dir.insert(dir, wd);
                }
                Err(e) => {
                    failures += 1;
                    failed.get_or_insert_with(|| format!("{}: {e}", dir.display()));
                }
            }
        }
        self.unwatched = failed.map(|f| {
            format!("{failures} director(y/ies) not watched (their changes wait for the safety sweep), first: {f}")
        });
    }

    /// Waits for the next batch of events and appends what they mean to
    /// `out` (possibly nothing: events of no interest).
    pub async fn changes(&mut self, out: &mut Vec<Change>) -> io::Result<()> {
        let batch = match self.batches.recv().await {
            Some(b) => b?,
            None => return Err(io::Error::other("the inotify reader stopped")),
        };
        let mut ignored = Vec::new();
        for (wd, flags, name) in events(&batch) {
            if let Some(c) = meaning(self.by_wd.get(&wd), flags, name) {
                out.push(c);
            }
            if flags.contains(ReadFlags::IGNORED) {
                ignored.push(wd);
            }
        }
        self.forget(&ignored);
        Ok(())
    }

    /// Drops the bookkeeping of watches the kernel removed (their
    /// directory is gone); the next sync adds them back if they return.
    fn forget(&mut self, ignored: &[i32]) {
        for wd in ignored {
            self.by_wd.remove(wd);
        }
        self.by_dir.retain(|_, wd| !ignored.contains(wd));
    }
}

/// What one event means, given what its watch is.
fn meaning(watched: Option<&Watched>, flags: ReadFlags, name: &[u8]) -> Option<Change> {
    if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
        return Some(Change::Sweep("the inotify queue overflowed"));
    }
    if flags.contains(ReadFlags::IGNORED) {
        return Some(Change::Sweep("a watched directory went away"));
    }
    let gone = flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF);
    match watched? {
        Watched::Root => Some(Change::Sweep("a cell was added or removed")),
        Watched::Cell if gone || !name.starts_with(b".") || name == b".lazarus" => {
            Some(Change::Sweep("a cell's manifest changed"))
        }
        Watched::Cell => None,
        Watched::Beats(_) if gone => Some(Change::Sweep("a heartbeats directory went away")),
        Watched::Beats(names) => {
            let key = names.get(OsStr::from_bytes(name))?;
            Some(
                if flags.intersects(ReadFlags::CLOSE_WRITE | ReadFlags::MOVED_TO) {
                    Change::Beat(key.clone())
                } else {
                    Change::Step(key.clone())
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_once_at_their_latest_deadline() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        t.set(&a, t0 + Duration::from_secs(1));
        t.set(&b, t0 + Duration::from_secs(2));
        // A beat pushes a's deadline later: a map write, no new entry.
        t.set(&a, t0 + Duration::from_secs(3));
        assert_eq!(t.heap.len(), 2);
        assert_eq!(
            t.next(),
            Some(t0 + Duration::from_secs(1)),
            "early wake is fine"
        );
        assert!(t.pop_due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(2)),
            std::slice::from_ref(&b)
        );
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(3)),
            std::slice::from_ref(&a)
        );
        assert!(t.is_empty());
        assert!(
            t.pop_due(t0 + Duration::from_secs(9)).is_empty(),
            "each once"
        );
        // An earlier deadline is queued at once; a cleared one never fires.
        t.set(&a, t0 + Duration::from_secs(10));
        t.set(&a, t0 + Duration::from_secs(5));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(5)),
            std::slice::from_ref(&a)
        );
        t.set(&b, t0 + Duration::from_secs(6));
        t.clear("b");
        assert!(t.pop_due(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn earlier_and_earlier_deadlines_never_grow_the_heap_past_the_keys() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let keys: Vec<Arc<str>> = (0..10).map(|i| Arc::from(format!("k{i}"))).collect();
        for round in (0..1000u64).rev() {
            for k in &keys {
                t.set(k, t0 + Duration::from_millis(round));
            }
        }
        assert!(t.heap.len() <= 2 * keys.len() + 64, "{}", t.heap.len());
        assert_eq!(
            t.pop_due(t0).len(),
            keys.len(),
            "each due once, at its latest"
        );
        assert!(t.pop_due(t0 + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn the_heap_stays_bounded_by_the_keys_whatever_the_beats() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let keys: Vec<Arc<str>> = (0..100).map(|i| Arc::from(format!("k{i}"))).collect();
        for round in 0..50u64 {
            for k in &keys {
                t.set(k, t0 + Duration::from_secs(60 + round));
            }
            t.pop_due(t0 + Duration::from_secs(round));
        }
        assert!(t.heap.len() <= 2 * keys.len() + 64, "{}", t.heap.len());
    }

    #[tokio::test]
    async fn a_beat_is_reported_by_key_and_a_new_cell_asks_for_a_sweep() {
        let root = tempfile::tempdir().unwrap();
        let cell = root.path().join("c1");
        let beats = cell.join(".lazarus/heartbeats");
        std::fs::create_dir_all(&beats).unwrap();
        let mut w = Watcher::new().unwrap();
        let key: Arc<str> = Arc::from("c1/a");
        let mut wanted = Wanted {
            root: Some(root.path().to_path_buf()),
            cells: vec![cell.clone()],
            ..Wanted::default()
        };
        wanted.beat(&beats.join("a.json"), &key);
        w.sync(wanted);
        assert_eq!(w.watches(), 3);
        assert!(w.unwatched.is_none());
        // An atomic write: a temp file renamed into place.
        std::fs::write(beats.join(".a.json.tmp"), b"{}").unwrap();
        std::fs::rename(beats.join(".a.json.tmp"), beats.join("a.json")).unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), w.changes(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert!(out.contains(&Change::Beat(key.clone())), "{out:?}");
        assert!(out.iter().all(|c| matches!(c, Change::Beat(_))), "{out:?}");
        std::fs::create_dir(root.path().join("c2")).unwrap();
        out.clear();
        tokio::time::timeout(Duration::from_secs(5), w.changes(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(out[0], Change::Sweep(_)), "{out:?}");
    }

    #[test]
    fn a_directory_that_cannot_be_watched_is_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut w = Watcher::new().unwrap();
            w.sync(Wanted {
                root: Some(PathBuf::from("/nonexistent/cells")),
                ..Wanted::default()
            });
            let why = w.unwatched.clone().unwrap();
            assert!(why.contains("/nonexistent/cells"), "{why}");
        });
    }
}
