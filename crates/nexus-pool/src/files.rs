//! The pool's own files: its private state directory, reads that follow no
//! link and never block, bad files set aside, and the lock files that keep
//! a second pool off the same state or cells root.
//!
//! The pool runs as root beside agents that may misbehave, so each of its
//! files is opened relative to its directory's descriptor, without
//! following a link at the last component and with `O_NONBLOCK` (a FIFO in
//! its place cannot hang the pool), and read up to a cap.
//!
//! - State directories are created `0700`, their files `0600`
//!   ([`nexus_stdx::write_private`], the PID file, the launch journal).
//! - A bad state file (a link, a FIFO, truncated or invalid JSON, a `NaN`)
//!   is renamed to `<name>.corrupt-<UTC time>` in the same directory
//!   ([`set_aside`]; the rename moves a link itself, never its target).
//! - A lock file ([`lock`]) must be a regular file of the pool's user with
//!   one link, in a directory that only its owner (root or that user) can
//!   change, unless it is sticky: anyone else could replace it and so take
//!   a second lock. It holds the holder's PID, for the message a second
//!   pool gets.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// The largest state file read: 64 MiB (10,000 agents are a few MB).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// The name of the lock file in a cells root.
pub const CELLS_LOCK: &str = ".resurrection-pool.lock";

/// What reading one of the pool's own files found.
#[derive(Debug)]
pub enum Found {
    /// No such file (or no such directory).
    Missing,
    /// Entire content (at most `max` bytes), read without following a final link.
    Bytes(Vec<u8>),
    /// Something that is not the pool's file: why (a link, not a regular
    /// file, over the cap). Its content is never read.
    Bad(String),
}

/// `path`'s directory (`.` for a bare name) and last component.
fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Reads the file at `path` whole, at most `max` bytes, without following
/// a link at its last component or blocking on a FIFO.
pub fn read_own(path: &Path, max: u64) -> io::Result<Found> {
    let (dir, name) = split(path)?;
    let dirfd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(e),
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let mut file = match rustix::fs::openat(&dirfd, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(Found::Missing),
        Err(Errno::LOOP) => return Ok(Found::Bad("a symbolic link, not followed".into())),
        // A socket cannot be opened at all.
        Err(Errno::NXIO) => return Ok(Found::Bad("not a regular file".into())),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Found::Bad(format!(
            "not a regular file ({})",
            kind(meta.file_type())
        )));
    }
    let mut buf = Vec::new();
    let len = nexus_stdx::read_limited(&mut file, &mut buf, 64 << 10, max)?;
    if len as u64 > max {
        return Ok(Found::Bad(format!(
            "larger than the {} MiB limit",
            max >> 20
        )));
    }
    buf.truncate(len);
    Ok(Found::Bytes(buf))
}

fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// Renames the file at `path` (a link itself, never its target) to
/// `<name>.corrupt-<UTC time>` in the same directory, and returns the new
/// path. Never replaces an existing file.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let (dir, name) = split(path)?;
    let dirfd = open_dir(dir)?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .map_err(io::Error::other)?;
    for n in 0..100u32 {
        let mut new = OsString::from(name);
        new.push(".corrupt-");
        new.push(&stamp);
        if n > 0 {
            new.push(format!("-{n}"));
        }
        match rustix::fs::renameat_with(&dirfd, name, &dirfd, &new, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(dir.join(new)),
            Err(Errno::EXIST) => {}
            // A filesystem without RENAME_NOREPLACE: look, then rename.
            Err(Errno::INVAL) => {
                match rustix::fs::statat(&dirfd, &new, AtFlags::SYMLINK_NOFOLLOW) {
                    Err(Errno::NOENT) => {
                        rustix::fs::renameat(&dirfd, name, &dirfd, &new)?;
                        return Ok(dir.join(new));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free name to set the file aside",
    ))
}

/// Creates `dir` (and missing parents) `0700`. An existing directory is
/// left as it is, with a warning if others may change it.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.mode() & 0o022 != 0 {
        tracing::warn!(
            "{} can be changed by others (mode {:o}): the pool's state should be alone in a 0700 directory",
            dir.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it (its PID, when the file says).
    Busy(Option<u32>),
    /// The file or its directory cannot be trusted to exclude anyone.
    Unsafe(String),
    /// An I/O error.
    Io(io::Error),
}

impl From<io::Error> for LockError {
    fn from(e: io::Error) -> LockError {
        LockError::Io(e)
    }
}

impl From<Errno> for LockError {
    fn from(e: Errno) -> LockError {
        LockError::Io(e.into())
    }
}

/// An exclusive lock (`flock`) on a file holding the holder's PID; released
/// when dropped (and the file removed, for a PID file).
#[derive(Debug)]
pub struct Lock {
    dir: OwnedFd,
    name: OsString,
    file: File,
    remove: bool,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still locked and only if it is still this file: a
        // pool that opened it meanwhile sees it replaced and tries again.
        if self.remove && same_file(&self.dir, &self.name, &self.file) {
            let _ = rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty());
        }
    }
}

/// Whether `name` in `dir` is still the file `file` is open on.
fn same_file(dir: &OwnedFd, name: &OsStr, file: &File) -> bool {
    match (
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
        file.metadata(),
    ) {
        (Ok(st), Ok(meta)) => st.st_dev == meta.dev() && st.st_ino == meta.ino(),
        _ => false,
    }
}

/// Takes the lock on the file at `path` (created `0600`), waiting up to
/// `wait` for its holder to let go, and writes this process's PID in it.
/// `remove`: the file goes when the lock is dropped (a PID file).
pub fn lock(path: &Path, wait: Duration, remove: bool) -> Result<Lock, LockError> {
    let (dir, name) = split(path)?;
    let dirfd = open_dir(dir)?;
    trusted_dir(&dirfd)?;
    let deadline = Instant::now() + wait;
    // A holder that removes its PID file as it exits leaves us an unlinked
    // file: open it again (a bounded number of times).
    for _ in 0..8 {
        let file = open_lock_file(&dirfd, name)?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LockError::Busy(holder(&file)));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
        }
        if !same_file(&dirfd, name, &file) {
            continue;
        }
        file.set_len(0)?;
        file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
        return Ok(Lock {
            dir: dirfd,
            name: name.to_os_string(),
            file,
            remove,
        });
    }
    Err(LockError::Unsafe(
        "it keeps being replaced while it is locked".into(),
    ))
}

/// The PID written in a lock file, if it holds one.
fn holder(file: &File) -> Option<u32> {
    let mut buf = [0u8; 24];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Refuses a directory whose entries someone other than its owner (root or
/// this process's user) may replace: a sticky directory is fine, since only
/// a file's owner may remove or rename it there.
fn trusted_dir(dirfd: &OwnedFd) -> Result<(), LockError> {
    let st = rustix::fs::fstat(dirfd)?;
    let euid = rustix::process::geteuid().as_raw();
    let mode = st.st_mode & 0o7777;
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(LockError::Unsafe(format!(
            "its directory belongs to user {}, who could replace it",
            st.st_uid
        )));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(LockError::Unsafe(format!(
            "its directory can be changed by others (mode {mode:o}): chmod go-w"
        )));
    }
    Ok(())
}

/// Opens (creating `0600`) a lock file without following a link or
/// blocking; it must be a regular file of this user with one link.
fn open_lock_file(dirfd: &OwnedFd, name: &OsStr) -> Result<File, LockError> {
    let flags =
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(dirfd, name, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => File::from(fd),
        Err(Errno::LOOP) => {
            return Err(LockError::Unsafe("it is a symbolic link".into()));
        }
        Err(Errno::NXIO) => return Err(LockError::Unsafe("it is not a regular file".into())),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    let euid = rustix::process::geteuid().as_raw();
    if !meta.is_file() {
        return Err(LockError::Unsafe(format!(
            "it is not a regular file ({})",
            kind(meta.file_type())
        )));
    }
    if meta.uid() != euid {
        return Err(LockError::Unsafe(format!(
            "it belongs to user {}, not to this pool's user {euid}",
            meta.uid()
        )));
    }
    if meta.nlink() != 1 {
        return Err(LockError::Unsafe(format!(
            "it has {} hard links",
            meta.nlink()
        )));
    }
    // One of ours from before files were private: private now.
    if meta.mode() & 0o7777 != 0o600 {
        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o600))?;
    }
    Ok(file)
}

/// Appends `line` to the file at `path` (created `0600`) in one `write`,
/// never through a link or into anything but a regular file; a write cut
/// short (a full disk) is cut back off.
pub fn append_own(path: &Path, line: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let dirfd = open_dir(dir)?;
    let flags = OFlags::WRONLY
        | OFlags::APPEND
        | OFlags::CREATE
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::CLOEXEC;
    let mut file = match rustix::fs::openat(&dirfd, name, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => File::from(fd),
        Err(Errno::LOOP) => {
            return Err(io::Error::other("a symbolic link, not followed"));
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "not a regular file ({})",
            kind(meta.file_type())
        )));
    }
    if let Err(e) = file.write_all(line) {
        let _ = file.set_len(meta.len());
        return Err(e);
    }
    Ok(())
}

/// Locks the daemon's PID file (its directory created `0700`): a second
/// daemon on the same state gets [`crate::Error::AlreadyRunning`]. The file
/// is removed when the lock is dropped.
pub fn lock_pid_file(path: &Path) -> Result<Lock, crate::Error> {
    if let Ok((dir, _)) = split(path) {
        private_dir(dir).map_err(|source| crate::Error::Io {
            op: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    lock(path, Duration::ZERO, true).map_err(|e| match e {
        LockError::Busy(pid) => crate::Error::AlreadyRunning {
            path: path.to_path_buf(),
            pid,
        },
        other => lock_error(path, other),
    })
}

/// Locks the cells root (its [`CELLS_LOCK`] file), waiting up to `wait` for
/// another pool to let go: a second pool on the same root gets
/// [`crate::Error::CellsRootBusy`], naming the root and the holder's PID.
/// The root must exist (a root that appears later would be unguarded).
pub fn lock_cells_root(root: &Path, wait: Duration) -> Result<Lock, crate::Error> {
    let path = root.join(CELLS_LOCK);
    if !root.is_dir() {
        return Err(crate::Error::Lock {
            path,
            why: format!("the cells root {} is not a directory", root.display()),
        });
    }
    lock(&path, wait, false).map_err(|e| match e {
        LockError::Busy(pid) => crate::Error::CellsRootBusy {
            root: root.to_path_buf(),
            lock: path.clone(),
            pid,
        },
        other => lock_error(&path, other),
    })
}

fn lock_error(path: &Path, e: LockError) -> crate::Error {
    let why = match e {
        LockError::Busy(_) => "held by another process".to_string(),
        LockError::Unsafe(why) => format!("{why}; refusing a lock others could replace"),
        LockError::Io(e) => e.to_string(),
    };
    crate::Error::Lock {
        path: path.to_path_buf(),
        why,
    }
}

/// Runs blocking file work `f` without holding up the tasks beside it: on
/// the daemon's multi-thread runtime the worker first hands its other tasks
/// (the HTTP server's among them) to another thread (`block_in_place`);
/// elsewhere (a one-shot's current-thread runtime, a plain thread) it runs
/// as is. The state file, the cells' event logs and `state.json` are
/// written through it.
pub fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_a_pid_file_goes_with_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/pool.pid");
        let held = lock_pid_file(&p).unwrap();
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&p), 0o600);
        let me = std::process::id();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{me}\n"));
        let e = lock_pid_file(&p).unwrap_err();
        assert!(
            matches!(e, crate::Error::AlreadyRunning { pid: Some(pid), .. } if pid == me),
            "{e}"
        );
        drop(held);
        assert!(!p.exists(), "the PID file goes with its lock");
        // The cells root's lock stays (removing it would let two pools
        // lock two files), and a waiting pool gets it once it is free.
        let root = dir.path().join("cells");
        std::fs::create_dir(&root).unwrap();
        let held = lock_cells_root(&root, Duration::ZERO).unwrap();
        let t = Instant::now();
        let e = lock_cells_root(&root, Duration::from_millis(300)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300));
        let msg = e.to_string();
        assert!(
            msg.contains(&*root.to_string_lossy()) && msg.contains(&format!("PID {me}")),
            "{msg}"
        );
        let waiter = std::thread::spawn({
            let root = root.clone();
            move || lock_cells_root(&root, Duration::from_secs(10)).map(|_| ())
        });
        drop(held);
        waiter.join().unwrap().unwrap();
        assert_eq!(mode(&root.join(CELLS_LOCK)), 0o600);
        let e = lock_cells_root(&dir.path().join("missing"), Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }

    #[test]
    fn a_lock_file_others_could_replace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let refused = |p: &Path, why: &str| match lock(p, Duration::ZERO, false) {
            Err(LockError::Unsafe(w)) => assert!(w.contains(why), "{}: {w}", p.display()),
            other => panic!("{}: {other:?}", p.display()),
        };
        // A link, to a file the pool would otherwise truncate.
        let target = d.join("target");
        std::fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, d.join("link.lock")).unwrap();
        refused(&d.join("link.lock"), "symbolic link");
        // A second name of that file.
        std::fs::hard_link(&target, d.join("hard.lock")).unwrap();
        refused(&d.join("hard.lock"), "2 hard links");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        // A FIFO.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("fifo.lock").as_path(),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        refused(&d.join("fifo.lock"), "not a regular file (a FIFO)");
        // Another user's file (the tests run as root in CI).
        if rustix::process::geteuid().is_root() {
            let theirs = d.join("theirs.lock");
            std::fs::write(&theirs, b"").unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            refused(&theirs, "belongs to user 65534");
            let owned = d.join("owned");
            std::fs::create_dir(&owned).unwrap();
            std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).unwrap();
            refused(&owned.join("x.lock"), "belongs to user 65534");
        }
        // A directory others may write, unless it is sticky.
        let open = d.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        refused(&open.join("x.lock"), "chmod go-w");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        lock(&open.join("x.lock"), Duration::ZERO, true).unwrap();
        // One of ours from before the pool's files were private.
        let old = d.join("old.lock");
        std::fs::write(&old, b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _l = lock(&old, Duration::ZERO, false).unwrap();
        assert_eq!(mode(&old), 0o600);
    }

    #[test]
    fn a_new_state_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b");
        private_dir(&state).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&state), 0o700);
    }
}
