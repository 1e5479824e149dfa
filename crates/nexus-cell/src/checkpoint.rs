//! Checkpoints: `checkpoints/<timestamp>.tar.gz` holding `cell.json` and
//! `workspace/`, and restoring a workspace from one.
//!
//! Archives are written with `tar` + `flate2` (pure Rust, miniz_oxide).
//! The workspace is walked by directory file descriptor: each entry is
//! looked at (`lstat`) relative to its directory and opened with
//! `O_NOFOLLOW`, so a file an agent swaps for a symlink while it is being
//! archived is skipped, never read through (as root, that would copy a file
//! the agent cannot read into its next restore). Symlinks are stored as
//! links; sockets, FIFOs and devices cannot be archived and are listed in
//! [`Checkpoint::skipped`] (an agent's socket must not make checkpoints
//! impossible), and so is a file with several links that is not the cell
//! owner's (another user's file linked in, where `fs.protected_hardlinks`
//! is off). Only permission bits are recorded: never setuid, setgid or
//! sticky. The archive is 0600: it holds every file of the workspace,
//! whatever its own mode.
//!
//! Restore extracts into a fresh directory inside the cell that only the
//! restoring user can enter, refusing absolute or `..` paths and duplicate
//! paths, walking it one component at a time (`O_DIRECTORY | O_NOFOLLOW`,
//! so nothing is ever written through a symlink), creating each file
//! `O_CREAT | O_EXCL | O_NOFOLLOW` and setting its owner and mode through
//! that descriptor (`fchown`, `fchmod`), never by path; then it swaps the
//! directory in for `workspace/`.
//!
//! Every restored entry belongs to **the cell's owner**: the owner (user and
//! group) of the `workspace/` being replaced, as the store made it or root
//! gave it away (an agent cannot give a directory to another user). Never
//! the user running the restore, never the archive's uid, never a uid from
//! `cell.json` (an agent that can write the cell could edit it). Only the
//! permission bits of an entry are kept (`& 0o777`): setuid, setgid and
//! sticky bits are dropped. The workspace directory itself keeps its owner
//! and mode.
//!
//! An archive holding a device, a FIFO or a hard link (wherever it points:
//! our checkpoints never contain one) is refused **whole**, naming every
//! such entry, and the workspace is left as it was: a partial restore would
//! be a workspace nobody checkpointed.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use serde::Serialize;
use time::macros::format_description;

use crate::events::EventKind;
use crate::store::{MANIFEST_FILE, MAX_MANIFEST_BYTES, mount_points_under};
use crate::{CellId, CellManifest, CellStore, Error, Status, fsx, validate_checkpoint_name};

/// Most entries restored from one archive.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The mode bits a checkpoint records and a restore sets: permissions only,
/// never setuid (0o4000), setgid (0o2000) or sticky (0o1000).
const PERMISSIONS: u32 = 0o777;

/// Most refused entries named in one error (the rest are counted).
const MAX_NAMED: usize = 20;

/// `workspace/`, in the cell and in the archive.
const WORKSPACE: &str = "workspace";
/// `checkpoints/` in the cell.
const CHECKPOINTS: &str = "checkpoints";

/// Flags that open a directory without following a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A checkpoint that was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// File name in `checkpoints/`.
    pub name: String,
    /// `<cell dir>/checkpoints/<name>`.
    pub path: PathBuf,
    /// Size of the archive.
    pub bytes: u64,
    /// Workspace entries not archived, as `workspace/...` paths: sockets,
    /// FIFOs and devices, entries that changed type while being archived,
    /// and files with several links that are not the cell owner's.
    pub skipped: Vec<String>,
}

impl CellStore {
    /// Archives `cell.json` and `workspace/` into
    /// `checkpoints/<UTC timestamp>.tar.gz` (written to a temp file,
    /// fsynced, renamed) and logs `checkpoint_created`. Freeze the cell
    /// first for a consistent snapshot of a busy workspace.
    pub fn checkpoint(&self, id: &CellId) -> Result<Checkpoint, Error> {
        let (cell, _lock) = self.locked(id)?;
        if cell.manifest().status == Status::Destroyed {
            return Err(Error::NotAllowed {
                cell: id.to_string(),
                status: Status::Destroyed,
                op: "checkpoint",
            });
        }
        let ws = cell.workspace();
        let dir = cell.checkpoints_dir();
        let ws_dir = fsx::open_dir(&ws)?;
        fsx::real_dir(&dir)?;
        let stamp = crate::now_utc()
            .format(format_description!(
                "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
            ))
            .map_err(|e| Error::Invalid {
                field: "checkpoint time",
                reason: e.to_string(),
            })?;
        let mut name = format!("{stamp}.tar.gz");
        for n in 1..100 {
            if !dir.join(&name).exists() {
                break;
            }
            name = format!("{stamp}-{n}.tar.gz");
        }
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let result = write_archive(&tmp, &cell.manifest_path(), ws_dir, &ws).and_then(|bytes| {
            std::fs::rename(&tmp, &path).map_err(Error::io(&path, "rename"))?;
            fsx::sync_dir(&dir)?;
            Ok(bytes)
        });
        let (bytes, skipped) = match result {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        cell.append(EventKind::CheckpointCreated {
            checkpoint: name.clone(),
        })?;
        Ok(Checkpoint {
            name,
            path,
            bytes,
            skipped,
        })
    }

    /// The checkpoint file names of a cell, oldest first.
    pub fn checkpoints(&self, id: &CellId) -> Result<Vec<String>, Error> {
        let cell = self.open(id)?;
        let dir = cell.checkpoints_dir();
        fsx::real_dir(&dir)?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(Error::io(&dir, "list directory"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| validate_checkpoint_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Replaces `workspace/` with the one in `checkpoints/<name>` and logs
    /// `cell_restored`. The archive must belong to this cell (its
    /// `cell.json` has the same uuid); the manifest itself is not changed.
    /// Every restored entry is given to the cell's owner (the owner of the
    /// `workspace/` it replaces) with its permission bits only; an archive
    /// with a device, a FIFO or a hard link is refused whole (module docs).
    pub fn restore(&self, id: &CellId, name: &str) -> Result<(), Error> {
        validate_checkpoint_name(name)?;
        let (cell, _lock) = self.locked(id)?;
        let status = cell.manifest().status;
        if !status.is_writable() {
            return Err(Error::NotAllowed {
                cell: id.to_string(),
                status,
                op: "restore",
            });
        }
        let ws = cell.workspace();
        let cell_dir = fsx::open_dir(cell.dir())?;
        let checkpoints = cell.checkpoints_dir();
        let archive = checkpoints.join(name);
        let file = fsx::open_read_at(
            fsx::open_dir_at(&cell_dir, Path::new(CHECKPOINTS), &checkpoints)?,
            Path::new(name),
            &archive,
        )?;
        let owner = Owner::of(
            &fsx::open_dir_at(&cell_dir, Path::new(WORKSPACE), &ws)?,
            &ws,
        )?;
        let real_ws = ws.canonicalize().map_err(Error::io(&ws, "resolve"))?;
        if let Some(m) = mount_points_under(&real_ws).first() {
            return Err(Error::Unsafe {
                path: ws,
                why: format!("{} is a mount point; unmount it first", m.display()),
            });
        }
        let tmp_name = format!(".restore.{}.tmp", std::process::id());
        let tmp = cell.dir().join(&tmp_name);
        if std::fs::symlink_metadata(&tmp).is_ok() {
            // Left by a restore that died; never followed if a link.
            std::fs::remove_dir_all(&tmp).map_err(Error::io(&tmp, "remove"))?;
        }
        // Only the restoring user can enter it until it is complete.
        rustix::fs::mkdirat(&cell_dir, &tmp_name, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::io(&tmp, "create directory")(e.into()))?;
        let extracted = fsx::open_dir_at(&cell_dir, Path::new(&tmp_name), &tmp).and_then(|dir| {
            extract(file, &archive, &dir, &tmp, id, owner)?;
            // Last: the workspace itself keeps its owner and mode.
            owner
                .give(&dir, owner.mode)
                .map_err(Error::io(&tmp, "set owner and mode"))
        });
        if let Err(e) = extracted {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let old_name = format!(".workspace.old.{}", std::process::id());
        let old = cell.dir().join(&old_name);
        rustix::fs::renameat(&cell_dir, WORKSPACE, &cell_dir, &old_name)
            .map_err(|e| Error::io(&ws, "rename")(e.into()))?;
        if let Err(e) = rustix::fs::renameat(&cell_dir, &tmp_name, &cell_dir, WORKSPACE) {
            // Put the old workspace back.
            let _ = rustix::fs::renameat(&cell_dir, &old_name, &cell_dir, WORKSPACE);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::io(&ws, "rename")(e.into()));
        }
        fsx::sync_dir(cell.dir())?;
        cell.append(EventKind::CellRestored {
            checkpoint: name.to_string(),
        })?;
        // The restore is done; a failure here only leaves the old copy.
        std::fs::remove_dir_all(&old).map_err(Error::io(&old, "remove the replaced workspace"))
    }
}

fn write_archive(
    tmp: &Path,
    manifest: &Path,
    ws_dir: OwnedFd,
    ws: &Path,
) -> Result<(u64, Vec<String>), Error> {
    let manifest_bytes = fsx::read_bounded(manifest, MAX_MANIFEST_BYTES)?;
    // Owner-only: it holds every file of the workspace, whatever its mode.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(Error::io(tmp, "create"))?;
    let tar_err = |e: std::io::Error| Error::io(tmp, "write archive")(e);
    let gz = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    header.set_cksum();
    builder
        .append_data(&mut header, MANIFEST_FILE, manifest_bytes.as_slice())
        .map_err(tar_err)?;
    let owner = Owner::of(&ws_dir, ws)?.uid.as_raw();
    let mut skipped = Vec::new();
    append_tree(
        &mut builder,
        ws_dir,
        ws,
        Path::new(WORKSPACE),
        owner,
        &mut skipped,
    )?;
    let gz = builder.into_inner().map_err(tar_err)?;
    let buf = gz.finish().map_err(tar_err)?;
    let file = buf.into_inner().map_err(|e| tar_err(e.into_error()))?;
    file.sync_all().map_err(Error::io(tmp, "fsync"))?;
    let bytes = file.metadata().map_err(Error::io(tmp, "stat"))?.len();
    Ok((bytes, skipped))
}

/// What a workspace entry turned out to be once looked at (and opened)
/// without following a link.
enum Found {
    /// A directory, open.
    Dir(OwnedFd),
    /// A regular file, open, and its status as opened.
    File(File, Stat),
    /// A symlink: its target and status.
    Link(std::ffi::CString, Stat),
    /// Something that cannot be archived (socket, FIFO, device), an entry
    /// that changed type between the look and the open, or a hard link to
    /// a file that is not the cell owner's.
    Skip,
    /// Gone since the directory was listed.
    Gone,
}

/// Looks at `name` in `dir` (`lstat`) and opens a directory or a regular
/// file with `O_NOFOLLOW` (a FIFO, device or socket is never opened); an
/// entry swapped meanwhile for a symlink or another type is skipped. So is
/// a file with several links that is not `owner`'s: it may be another
/// user's file an agent linked into its workspace (where
/// `fs.protected_hardlinks` is off), which the archive must not copy.
fn look_at(dir: &OwnedFd, name: &OsStr, shown: &Path, owner: u32) -> Result<Found, Error> {
    let io_err = |op: &'static str, e: Errno| Error::io(shown, op)(e.into());
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Found::Gone),
        Err(e) => return Err(io_err("stat", e)),
    };
    let kind = FileType::from_raw_mode(st.st_mode);
    let flags = match kind {
        FileType::Symlink => {
            return match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(target) => Ok(Found::Link(target, st)),
                Err(Errno::NOENT) => Ok(Found::Gone),
                // No longer a link.
                Err(Errno::INVAL) => Ok(Found::Skip),
                Err(e) => Err(io_err("read link", e)),
            };
        }
        FileType::Directory => DIR_FLAGS,
        FileType::RegularFile => {
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
        }
        _ => return Ok(Found::Skip),
    };
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Found::Gone),
        // Swapped for a symlink (or a file for a directory) since the look.
        Err(Errno::LOOP | Errno::NOTDIR) => return Ok(Found::Skip),
        Err(e) => return Err(io_err("open", e)),
    };
    let now = rustix::fs::fstat(&fd).map_err(|e| io_err("stat", e))?;
    Ok(match FileType::from_raw_mode(now.st_mode) {
        t if t != kind => Found::Skip,
        FileType::Directory => Found::Dir(fd),
        _ if now.st_nlink > 1 && now.st_uid != owner => Found::Skip,
        _ => Found::File(File::from(fd), now),
    })
}

/// A tar header for `st`: permission bits only (never setuid, setgid or
/// sticky), its owner and mtime.
fn header_of(st: &Stat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(st.st_mode & PERMISSIONS);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h
}

/// Appends the open directory `dir` (as `name`) and everything below it, in
/// name order, each entry looked at through [`look_at`]: directories,
/// regular files and symlinks (as links). Sockets, FIFOs, devices, entries
/// that change type while being archived and hard links to files that are
/// not the cell `owner`'s are listed in `skipped`.
fn append_tree<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    dir: OwnedFd,
    shown: &Path,
    name: &Path,
    owner: u32,
    skipped: &mut Vec<String>,
) -> Result<(), Error> {
    let archive_err = |path: &Path, e: std::io::Error| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("cannot archive: {e}"),
    };
    let st = rustix::fs::fstat(&dir).map_err(|e| Error::io(shown, "stat")(e.into()))?;
    let mut h = header_of(&st, tar::EntryType::Directory, 0);
    b.append_data(&mut h, name, io::empty())
        .map_err(|e| archive_err(shown, e))?;
    let list_err = |e: Errno| Error::io(shown, "list directory")(e.into());
    let mut names: Vec<OsString> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    for n in names {
        let path = shown.join(&n);
        let inner = name.join(&n);
        match look_at(&dir, &n, &path, owner)? {
            Found::Dir(fd) => append_tree(b, fd, &path, &inner, owner, skipped)?,
            Found::File(file, st) => {
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mut h = header_of(&st, tar::EntryType::Regular, size);
                // Exactly `size` bytes, even if the file shrinks or grows
                // meanwhile (the header is written first).
                let data = (&file).take(size).chain(io::repeat(0)).take(size);
                b.append_data(&mut h, &inner, data)
                    .map_err(|e| archive_err(&path, e))?;
            }
            Found::Link(target, st) => {
                let mut h = header_of(&st, tar::EntryType::Symlink, 0);
                let target = Path::new(OsStr::from_bytes(target.to_bytes()));
                b.append_link(&mut h, &inner, target)
                    .map_err(|e| archive_err(&path, e))?;
            }
            Found::Skip => skipped.push(inner.display().to_string()),
            Found::Gone => {}
        }
    }
    Ok(())
}

/// Who restored entries belong to: the owner of the `workspace/` being
/// replaced, and that directory's permission bits.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: Uid,
    gid: Gid,
    mode: u32,
}

impl Owner {
    /// The owner of the open directory `dir`.
    fn of(dir: &OwnedFd, shown: &Path) -> Result<Owner, Error> {
        let st = rustix::fs::fstat(dir).map_err(|e| Error::io(shown, "stat")(e.into()))?;
        Ok(Owner {
            uid: Uid::from_raw(st.st_uid),
            gid: Gid::from_raw(st.st_gid),
            mode: st.st_mode & PERMISSIONS,
        })
    }

    /// Gives the open file or directory `fd` to the owner, then sets its
    /// permission bits (`chown` first: it would clear a setuid bit anyway).
    fn give(&self, fd: impl AsFd, mode: u32) -> io::Result<()> {
        rustix::fs::fchown(&fd, Some(self.uid), Some(self.gid)).map_err(|e| self.refused(e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & PERMISSIONS))?;
        Ok(())
    }

    /// A `chown` to the owner that failed (a restore run by another user
    /// than root or the owner).
    fn refused(&self, e: Errno) -> io::Error {
        io::Error::other(format!(
            "cannot give it to the cell's owner (uid {}, gid {}): {}",
            self.uid.as_raw(),
            self.gid.as_raw(),
            io::Error::from(e)
        ))
    }
}

/// Writes entries into the fresh directory `root`, walking it by
/// descriptor. The directories it made get their owner and mode last
/// ([`Unpacker::finish`]), deepest first.
struct Unpacker<'a> {
    root: &'a OwnedFd,
    owner: Owner,
    /// The directories open below `root`, from the top: names and fds.
    open: Vec<(OsString, OwnedFd)>,
    /// Every directory made and the permission bits it gets.
    dirs: BTreeMap<PathBuf, u32>,
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a OwnedFd, owner: Owner) -> Unpacker<'a> {
        Unpacker {
            root,
            owner,
            open: Vec::new(),
            dirs: BTreeMap::new(),
        }
    }

    /// The directory `rel` below the root, opened one component at a time
    /// with `O_DIRECTORY | O_NOFOLLOW` (the open chain is kept for the next
    /// entry); missing directories are made when `create`.
    fn dir(&mut self, rel: &Path, create: bool) -> io::Result<BorrowedFd<'_>> {
        let parts: Vec<&OsStr> = rel.iter().collect();
        let keep = self
            .open
            .iter()
            .zip(&parts)
            .take_while(|((open, _), part)| open.as_os_str() == **part)
            .count();
        self.open.truncate(keep);
        for (i, part) in parts.iter().enumerate().skip(keep) {
            let parent = self
                .open
                .last()
                .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = match rustix::fs::openat(parent, *part, DIR_FLAGS, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(parent, *part, Mode::from_raw_mode(0o700))?;
                    let made: PathBuf = parts[..=i].iter().collect();
                    self.dirs.entry(made).or_insert(0o755);
                    rustix::fs::openat(parent, *part, DIR_FLAGS, Mode::empty())?
                }
                Err(Errno::LOOP | Errno::NOTDIR) => return Err(not_a_dir(parent, part)),
                other => other?,
            };
            self.open.push((part.to_os_string(), fd));
        }
        Ok(self
            .open
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()))
    }

    /// A directory entry: made (or found, if an earlier entry implied it);
    /// its owner and mode are set by [`Unpacker::finish`].
    fn directory(&mut self, rel: &Path, mode: u32) -> io::Result<()> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent, true)?;
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Err(Errno::EXIST) => {
                rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
                    .map_err(|_| io::Error::other("exists and is not a directory"))?;
            }
            other => other?,
        }
        self.dirs.insert(rel.to_path_buf(), mode & PERMISSIONS);
        Ok(())
    }

    /// A regular file: created `O_EXCL | O_NOFOLLOW`, filled, given to the
    /// owner and its mode and mtime set, all through its descriptor.
    fn file(&mut self, rel: &Path, data: &mut impl Read, mode: u32, mtime: u64) -> io::Result<()> {
        let owner = self.owner;
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent, true)?;
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let mut f = File::from(rustix::fs::openat(
            parent,
            name,
            flags,
            Mode::from_raw_mode(0o600),
        )?);
        io::copy(data, &mut f)?;
        owner.give(&f, mode)?;
        rustix::fs::futimens(&f, &times(mtime))?;
        Ok(())
    }

    /// A symlink: made, then given to the owner and its mtime set without
    /// following it (`AT_SYMLINK_NOFOLLOW`).
    fn symlink(&mut self, rel: &Path, target: &Path, mtime: u64) -> io::Result<()> {
        let owner = self.owner;
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent, true)?;
        rustix::fs::symlinkat(target, parent, name)?;
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        rustix::fs::chownat(parent, name, Some(owner.uid), Some(owner.gid), nofollow)
            .map_err(|e| owner.refused(e))?;
        rustix::fs::utimensat(parent, name, &times(mtime), nofollow)?;
        Ok(())
    }

    /// Gives every directory made to the owner with its mode, deepest
    /// first (so a read-only directory can still be entered), each opened
    /// again from the root without following a link.
    fn finish(mut self, shown: &Path) -> Result<(), Error> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, mode) in dirs.iter().rev() {
            let owner = self.owner;
            let path = shown.join(rel);
            let fd = self
                .dir(rel, false)
                .map_err(Error::io(&path, "open directory"))?;
            owner
                .give(fd, *mode)
                .map_err(Error::io(&path, "set owner and mode"))?;
        }
        Ok(())
    }
}

/// Why `name` in `parent` cannot be walked through.
fn not_a_dir(parent: BorrowedFd<'_>, name: &OsStr) -> io::Error {
    let link = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_symlink());
    io::Error::other(if link {
        "path leads through a symbolic link"
    } else {
        "parent is not a directory"
    })
}

/// `rel`'s parent (possibly empty) and last component.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::other("empty path")),
    }
}

/// Access and modification time both `mtime` (what tar restores).
fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// What a refused entry is.
fn refusal(kind: tar::EntryType, link: Option<&Path>) -> String {
    match kind {
        tar::EntryType::Link => match link {
            Some(to) => format!("a hard link to {:?}", to.display().to_string()),
            None => "a hard link".to_string(),
        },
        tar::EntryType::Char => "a character device".to_string(),
        tar::EntryType::Block => "a block device".to_string(),
        tar::EntryType::Fifo => "a FIFO".to_string(),
        other => format!("a {other:?} entry"),
    }
}

/// Extracts the `workspace/` entries of `archive` into the open directory
/// `dest` (shown as `shown`), checking every entry (see the module docs)
/// and the manifest's uuid. Everything restored belongs to `owner`.
fn extract(
    file: File,
    archive: &Path,
    dest: &OwnedFd,
    shown: &Path,
    id: &CellId,
    owner: Owner,
) -> Result<(), Error> {
    let bad = |reason: String| Error::Checkpoint {
        path: archive.to_path_buf(),
        reason,
    };
    let mut ar = tar::Archive::new(GzDecoder::new(file));
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut unpacker = Unpacker::new(dest, owner);
    let mut refused: Vec<String> = Vec::new();
    let mut manifest_ok = false;
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz archive: {e}")))?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| bad(format!("entry {i}: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("entry {i}: bad path: {e}")))?
            .into_owned();
        let shown = raw.display().to_string();
        if !raw.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(format!(
                "entry {shown:?}: absolute or '..' paths are refused"
            )));
        }
        if raw == Path::new(MANIFEST_FILE) {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("{MANIFEST_FILE}: {e}")))?;
            let inner = archive.join(MANIFEST_FILE);
            let m: CellManifest = fsx::parse_json(&inner, &bytes)?;
            if m.uuid != *id {
                return Err(bad(format!("belongs to cell {}, not {id}", m.uuid)));
            }
            manifest_ok = true;
            continue;
        }
        let Ok(rel) = raw.strip_prefix(WORKSPACE) else {
            return Err(bad(format!("unexpected entry {shown:?}")));
        };
        if !seen.insert(rel.to_path_buf()) {
            return Err(bad(format!("entry {shown:?} appears twice")));
        }
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // The `workspace/` entry itself: the workspace keeps its own
            // owner and mode.
            if kind != tar::EntryType::Directory {
                return Err(bad(format!("entry {shown:?} is not a directory")));
            }
            continue;
        }
        let entry_err = |e: io::Error| bad(format!("entry {shown:?}: {e}"));
        let link = entry
            .link_name()
            .map_err(entry_err)?
            .map(|l| l.into_owned());
        let header = entry.header();
        let mode = header.mode().map_err(entry_err)?;
        let mtime = header.mtime().unwrap_or(0);
        let written = match kind {
            tar::EntryType::Directory
            | tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::Symlink
                if !refused.is_empty() =>
            {
                // Nothing will be restored: only look for more refusals.
                Ok(())
            }
            tar::EntryType::Directory => unpacker.directory(rel, mode),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                unpacker.file(rel, &mut entry, mode, mtime)
            }
            tar::EntryType::Symlink => match &link {
                Some(to) if !to.as_os_str().is_empty() => unpacker.symlink(rel, to, mtime),
                _ => Err(io::Error::other("a symbolic link without a target")),
            },
            other => {
                refused.push(format!("{shown:?} ({})", refusal(other, link.as_deref())));
                Ok(())
            }
        };
        written.map_err(entry_err)?;
    }
    if !manifest_ok {
        return Err(bad(format!("no {MANIFEST_FILE} in the archive")));
    }
    if !refused.is_empty() {
        let more = refused.len().saturating_sub(MAX_NAMED);
        refused.truncate(MAX_NAMED);
        let mut list = refused.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        return Err(bad(format!(
            "devices, FIFOs and hard links are refused; nothing was restored: {list}"
        )));
    }
    unpacker.finish(shown)
}
