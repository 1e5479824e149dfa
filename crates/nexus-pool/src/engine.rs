//! The event engine's sources: what wakes the pool between its safety
//! sweeps, so the cost per second follows what changes, not the size of
//! the fleet.
//!
//! - [`Watcher`]: inotify (through `rustix`, already the pool's system
//!   crate) on the cells root (a cell created, removed or renamed), on each
//!   cell's directory (its manifest replaced) and on each heartbeats
//!   directory (a beat landed). A beat is reported by agent key; anything
//!   that changes the fleet, and a queue overflow, asks for a full sweep.
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
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
        }
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
    /// The cells root.
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
    fd: AsyncFd<OwnedFd>,
    by_wd: HashMap<i32, Watched>,
    by_dir: HashMap<PathBuf, i32>,
    buf: Vec<MaybeUninit<u8>>,
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

impl Watcher {
    /// An inotify instance with no watch yet; must be called inside the
    /// tokio runtime.
    pub fn new() -> io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        Ok(Watcher {
            fd: owned_async_fd(fd, tokio::io::Interest::READABLE)?,
            by_wd: HashMap::new(),
            by_dir: HashMap::new(),
            buf: vec![MaybeUninit::uninit(); 64 * 1024],
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
                let _ = inotify::remove_watch(self.fd.get_ref(), wd);
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
            match inotify::add_watch(self.fd.get_ref(), &dir, flags) {
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

    /// Waits for events and appends what they mean to `out` (at least one
    /// change unless the instance failed).
    pub async fn changes(&mut self, out: &mut Vec<Change>) -> io::Result<()> {
        loop {
            let before = out.len();
            let mut ignored = Vec::new();
            {
                let mut guard = self.fd.readable().await?;
                let read = read_all(
                    guard.get_inner(),
                    &mut self.buf,
                    &self.by_wd,
                    out,
                    &mut ignored,
                );
                match read {
                    Ok(()) => guard.clear_ready(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                    Err(e) => return Err(e),
                }
            }
            self.forget(&ignored);
            if out.len() > before {
                return Ok(());
            }
        }
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

/// Reads every queued event; the watches the kernel removed (their
/// directory went away) go to `ignored`.
fn read_all(
    fd: &OwnedFd,
    buf: &mut [MaybeUninit<u8>],
    by_wd: &HashMap<i32, Watched>,
    out: &mut Vec<Change>,
    ignored: &mut Vec<i32>,
) -> io::Result<()> {
    let mut reader = inotify::Reader::new(fd, buf);
    loop {
        let e = match reader.next() {
            Ok(e) => e,
            Err(rustix::io::Errno::AGAIN) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let flags = e.events();
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            out.push(Change::Sweep("the inotify queue overflowed"));
            continue;
        }
        if flags.contains(ReadFlags::IGNORED) {
            ignored.push(e.wd());
            out.push(Change::Sweep("a watched directory went away"));
            continue;
        }
        match by_wd.get(&e.wd()) {
            Some(Watched::Root) => out.push(Change::Sweep("a cell was added or removed")),
            Some(Watched::Cell)
                if flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
                    || e.file_name().is_some_and(|n| {
                        let n = n.to_bytes();
                        !n.starts_with(b".") || n == b".lazarus"
                    }) =>
            {
                out.push(Change::Sweep("a cell's manifest changed"));
            }
            Some(Watched::Cell) => {}
            Some(Watched::Beats(names)) => {
                if flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) {
                    out.push(Change::Sweep("a heartbeats directory went away"));
                    continue;
                }
                let Some(name) = e.file_name() else { continue };
                let name = OsStr::from_bytes(name.to_bytes());
                if let Some(key) = names.get(name) {
                    out.push(
                        if flags.intersects(ReadFlags::CLOSE_WRITE | ReadFlags::MOVED_TO) {
                            Change::Beat(key.clone())
                        } else {
                            Change::Step(key.clone())
                        },
                    );
                }
            }
            // An event of a watch removed since: nothing to say.
            None => {}
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
        assert!(t.heap.len() <= 2 * keys.len(), "{}", t.heap.len());
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
