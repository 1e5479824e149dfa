//! Checkpoints: `checkpoints/<timestamp>.tar.gz` holding `cell.json` and
//! `workspace/`, and restoring a workspace from one.
//!
//! Archives are written with `tar` + `flate2` (pure Rust, miniz_oxide).
//! Symlinks are stored as links, never followed; sockets, FIFOs and
//! devices cannot be archived and are listed in [`Checkpoint::skipped`]
//! (an agent's socket must not make checkpoints impossible). Restore extracts into a
//! fresh directory inside the cell, refusing absolute or `..` paths,
//! duplicate paths, hard links and device files, and never writing through
//! a symlink; then it swaps the directory in for `workspace/`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use time::macros::format_description;

use crate::events::EventKind;
use crate::store::{MANIFEST_FILE, MAX_MANIFEST_BYTES, mount_points_under};
use crate::{CellId, CellManifest, CellStore, Error, Status, fsx, validate_checkpoint_name};

/// Most entries restored from one archive.
pub const MAX_ENTRIES: usize = 1_000_000;

/// A checkpoint that was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// File name in `checkpoints/`.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size of the archive.
    pub bytes: u64,
    /// Workspace entries that cannot be archived (sockets, FIFOs, devices),
    /// as `workspace/...` paths.
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
        fsx::real_dir(&ws)?;
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
        let result = write_archive(&tmp, &cell.manifest_path(), &ws).and_then(|bytes| {
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
        fsx::real_dir(&cell.checkpoints_dir())?;
        let ws = cell.workspace();
        fsx::real_dir(&ws)?;
        let real_ws = ws.canonicalize().map_err(Error::io(&ws, "resolve"))?;
        if let Some(m) = mount_points_under(&real_ws).first() {
            return Err(Error::Unsafe {
                path: ws,
                why: format!("{} is a mount point; unmount it first", m.display()),
            });
        }
        let archive = cell.checkpoints_dir().join(name);
        let file = fsx::open_read(&archive)?;
        let tmp = cell
            .dir()
            .join(format!(".restore.{}.tmp", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(Error::io(&tmp, "remove"))?;
        }
        std::fs::create_dir(&tmp).map_err(Error::io(&tmp, "create directory"))?;
        let extracted = extract(file, &archive, &tmp, id);
        if let Err(e) = extracted {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let old = cell
            .dir()
            .join(format!(".workspace.old.{}", std::process::id()));
        std::fs::rename(&ws, &old).map_err(Error::io(&ws, "rename"))?;
        if let Err(e) = std::fs::rename(&tmp, &ws) {
            // Put the old workspace back.
            let _ = std::fs::rename(&old, &ws);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::io(&ws, "rename")(e));
        }
        fsx::sync_dir(cell.dir())?;
        cell.append(EventKind::CellRestored {
            checkpoint: name.to_string(),
        })?;
        // The restore is done; a failure here only leaves the old copy.
        std::fs::remove_dir_all(&old).map_err(Error::io(&old, "remove the replaced workspace"))
    }
}

fn write_archive(tmp: &Path, manifest: &Path, ws: &Path) -> Result<(u64, Vec<String>), Error> {
    let manifest_bytes = fsx::read_bounded(manifest, MAX_MANIFEST_BYTES)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(Error::io(tmp, "create"))?;
    let tar_err = |e: std::io::Error| Error::io(tmp, "write archive")(e);
    let gz = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
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
    let mut skipped = Vec::new();
    append_tree(&mut builder, ws, Path::new("workspace"), &mut skipped)?;
    let gz = builder.into_inner().map_err(tar_err)?;
    let buf = gz.finish().map_err(tar_err)?;
    let file = buf.into_inner().map_err(|e| tar_err(e.into_error()))?;
    file.sync_all().map_err(Error::io(tmp, "fsync"))?;
    let bytes = file.metadata().map_err(Error::io(tmp, "stat"))?.len();
    Ok((bytes, skipped))
}

/// Appends `dir` (as `name`) and everything below it, in name order:
/// directories, regular files and symlinks (as links). Sockets, FIFOs and
/// devices cannot be archived; they are listed in `skipped` instead.
fn append_tree<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    skipped: &mut Vec<String>,
) -> Result<(), Error> {
    let archive_err = |path: &Path, e: std::io::Error| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("cannot archive: {e}"),
    };
    b.append_path_with_name(dir, name)
        .map_err(|e| archive_err(dir, e))?;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(Error::io(dir, "list directory"))?
        .collect::<Result<_, _>>()
        .map_err(Error::io(dir, "list directory"))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let inner = name.join(e.file_name());
        let t = e.file_type().map_err(Error::io(&path, "stat"))?;
        if t.is_dir() {
            append_tree(b, &path, &inner, skipped)?;
        } else if t.is_file() || t.is_symlink() {
            b.append_path_with_name(&path, &inner)
                .map_err(|e| archive_err(&path, e))?;
        } else {
            skipped.push(inner.display().to_string());
        }
    }
    Ok(())
}

/// Extracts the `workspace/` entries of `archive` into `dest`, checking
/// every entry (see the module docs) and the manifest's uuid.
fn extract(file: File, archive: &Path, dest: &Path, id: &CellId) -> Result<(), Error> {
    let bad = |reason: String| Error::Checkpoint {
        path: archive.to_path_buf(),
        reason,
    };
    let mut ar = tar::Archive::new(GzDecoder::new(file));
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
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
        let Ok(rel) = raw.strip_prefix("workspace") else {
            return Err(bad(format!("unexpected entry {shown:?}")));
        };
        if !seen.insert(rel.to_path_buf()) {
            return Err(bad(format!("entry {shown:?} appears twice")));
        }
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // The `workspace/` entry itself: only its mode matters.
            if kind != tar::EntryType::Directory {
                return Err(bad(format!("entry {shown:?} is not a directory")));
            }
            dirs.push((dest.to_path_buf(), entry.header().mode().unwrap_or(0o755)));
            continue;
        }
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            ensure_parents(dest, parent).map_err(|e| bad(format!("entry {shown:?}: {e}")))?;
        }
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir(&target).map_err(Error::io(&target, "create directory"))?;
                dirs.push((target, entry.header().mode().unwrap_or(0o755)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Symlink => {
                entry.set_preserve_permissions(true);
                entry.set_preserve_mtime(true);
                entry
                    .unpack(&target)
                    .map_err(|e| bad(format!("entry {shown:?}: {e}")))?;
            }
            other => {
                return Err(bad(format!(
                    "entry {shown:?}: {other:?} entries are not restored"
                )));
            }
        }
    }
    if !manifest_ok {
        return Err(bad(format!("no {MANIFEST_FILE} in the archive")));
    }
    // Directory modes last, deepest first, so read-only directories can
    // still be filled.
    for (d, mode) in dirs.into_iter().rev() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(Error::io(&d, "chmod"))?;
    }
    Ok(())
}

/// Creates the directories from `base` down to `dir`, refusing to pass
/// through a symlink (so nothing is ever written outside `base`).
fn ensure_parents(base: &Path, dir: &Path) -> std::io::Result<()> {
    let rel = dir.strip_prefix(base).map_err(std::io::Error::other)?;
    let mut cur = base.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(std::io::Error::other("path leads through a symbolic link"));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(std::io::Error::other("parent is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&cur)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
