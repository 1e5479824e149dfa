//! File helpers shared by the store: opens that refuse symbolic links,
//! bounded reads, JSON parsing that names the failing field.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use serde::de::DeserializeOwned;

use crate::Error;

/// `O_NOFOLLOW | O_CLOEXEC` for [`OpenOptionsExt::custom_flags`].
fn nofollow() -> i32 {
    (OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32
}

/// Maps ELOOP (the last component is a symlink under `O_NOFOLLOW`) to a
/// typed refusal, anything else to an I/O error.
fn open_error(path: &Path, op: &'static str, e: io::Error) -> Error {
    if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::LOOP) {
        Error::Symlink {
            path: path.to_path_buf(),
            why: link_target(path),
        }
    } else {
        Error::io(path, op)(e)
    }
}

/// `points to <target>` for messages.
pub(crate) fn link_target(path: &Path) -> String {
    match std::fs::read_link(path) {
        Ok(t) => format!("points to {}", t.display()),
        Err(_) => "a symbolic link".to_string(),
    }
}

/// Opens a regular file for reading without following a final symlink and
/// without blocking on a FIFO.
pub(crate) fn open_read(path: &Path) -> Result<File, Error> {
    open_read_at(rustix::fs::CWD, path, path)
}

/// [`open_read`] of `name` in the open directory `dir`; `shown` names the
/// file in errors.
pub(crate) fn open_read_at(dir: impl AsFd, name: &Path, shown: &Path) -> Result<File, Error> {
    let f = open_unchecked_at(dir, name, shown)?;
    let meta = f.metadata().map_err(Error::io(shown, "stat"))?;
    if !meta.is_file() {
        return Err(Error::corrupt(shown, ".", "not a regular file"));
    }
    Ok(f)
}

/// [`open_read_at`] without the check that it is a regular file: opens
/// `name` in the directory `dir` for reading, without following a final
/// symlink and without blocking on a FIFO; `shown` names it in errors.
fn open_unchecked_at(dir: impl AsFd, name: &Path, shown: &Path) -> Result<File, Error> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| open_error(shown, "open", e.into()))
}

/// Opens the directory `path` (`O_DIRECTORY | O_NOFOLLOW`): a symlink in
/// its place is refused by name, never followed.
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    open_dir_at(rustix::fs::CWD, path, path)
}

/// Opens the directory `name` of the open directory `dir` without
/// following a symlink; `shown` names it in errors. Walking a tree one
/// [`open_dir_at`] per component never leaves it through a link, whatever
/// is swapped in meanwhile.
pub(crate) fn open_dir_at(dir: impl AsFd, name: &Path, shown: &Path) -> Result<OwnedFd, Error> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = dir.as_fd();
    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| {
        let is_link = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink());
        match e {
            rustix::io::Errno::LOOP => open_error(shown, "open directory", e.into()),
            rustix::io::Errno::NOTDIR if is_link => Error::Symlink {
                path: shown.to_path_buf(),
                why: link_target(shown),
            },
            rustix::io::Errno::NOTDIR => Error::corrupt(shown, ".", "not a directory"),
            e => Error::io(shown, "open directory")(e.into()),
        }
    })
}

/// Opens `rel` (one or more components) beneath the open directory `dir`
/// in one `openat2` that follows no symbolic link in any component and
/// never leaves `dir` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): the
/// survey's fast path, two opens per cell where a walk takes four.
///
/// `None` when it fails for any reason (a link, a missing file, a kernel
/// before 5.6): the caller then walks component by component, which says
/// precisely what is wrong, so this never decides an error message.
pub(crate) fn open_beneath(dir: impl AsFd, rel: &Path, flags: OFlags) -> Option<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(dir, rel, flags | OFlags::CLOEXEC, Mode::empty(), resolve).ok()
}

/// Opens (creating with `mode`) a file for appending, refusing a symlink.
/// Read access is kept so the appender can look at the last byte.
pub(crate) fn open_append(path: &Path, mode: u32) -> Result<File, Error> {
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)
        .map_err(|e| open_error(path, "open for append", e))?;
    let meta = f.metadata().map_err(Error::io(path, "stat"))?;
    if !meta.is_file() {
        return Err(Error::corrupt(path, ".", "not a regular file"));
    }
    Ok(f)
}

/// Reads a whole small file (at most `max` bytes), refusing symlinks and
/// anything but a regular file.
///
/// One `read` for a file under 4 KB: no `fstat` first (a manifest read per
/// cell per sweep), only when the read looks wrong (it failed, found
/// nothing, or went past the limit), to say why.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    read_bounded_at(rustix::fs::CWD, path, path, max)
}

/// [`read_bounded`] of `name` in the open directory `dir`; `shown` names
/// the file in errors.
pub(crate) fn read_bounded_at(
    dir: impl AsFd,
    name: &Path,
    path: &Path,
    max: u64,
) -> Result<Vec<u8>, Error> {
    read_bounded_file(open_unchecked_at(dir, name, path)?, path, max)
}

/// The read of [`read_bounded_at`] on a file already opened (`O_NOFOLLOW |
/// O_NONBLOCK`); `path` names it in errors.
pub(crate) fn read_bounded_file(mut f: File, path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    const FIRST_READ: usize = 4096;
    let mut buf = Vec::new();
    let read = nexus_stdx::read_limited(&mut f, &mut buf, FIRST_READ, max);
    match read {
        Ok(len) if len > 0 && len as u64 <= max => {
            buf.truncate(len);
            return Ok(buf);
        }
        _ => {}
    }
    let meta = f.metadata().map_err(Error::io(path, "stat"))?;
    if !meta.is_file() {
        return Err(Error::corrupt(path, ".", "not a regular file"));
    }
    match read {
        Err(e) => Err(Error::io(path, "read")(e)),
        Ok(len) if len as u64 > max => Err(Error::corrupt(
            path,
            ".",
            format!("file is larger than the {max}-byte limit"),
        )),
        Ok(_) => Ok(Vec::new()),
    }
}

/// Parses JSON; a failure names the file, the JSON path of the field and
/// the line/column.
pub(crate) fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Error> {
    // Fast path; the path-tracking parse only runs to explain a failure.
    // UTF-8 is checked once for the whole file, not string by string (a
    // manifest has ~100 strings; `from_slice` checks each on its own).
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(v) = serde_json::from_str(text)
    {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let reason = if inner.is_eof() {
            format!("truncated JSON ({inner})")
        } else {
            inner.to_string()
        };
        Error::corrupt(path, field, reason)
    })
}

/// Checks that `path` is a real directory (not a symlink to one).
pub(crate) fn real_dir(path: &Path) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io(path, "stat"))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Symlink {
            path: path.to_path_buf(),
            why: link_target(path),
        });
    }
    if !meta.is_dir() {
        return Err(Error::corrupt(path, ".", "not a directory"));
    }
    Ok(())
}

/// Creates `path` (one level) unless it exists as a real directory.
pub(crate) fn make_dir(path: &Path) -> Result<(), Error> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => real_dir(path),
        Err(e) => Err(Error::io(path, "create directory")(e)),
    }
}

/// fsync a directory so a rename or create in it is durable; filesystems
/// that refuse (EINVAL) are fine.
pub(crate) fn sync_dir(path: &Path) -> Result<(), Error> {
    let d = File::open(path).map_err(Error::io(path, "open directory"))?;
    match d.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other.map_err(Error::io(path, "fsync directory")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"{}").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_bounded(&link, 100).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("points to"), "{e}");
        let e = open_append(&link, 0o644).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
        let e = real_dir(&link).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
    }

    #[test]
    fn bounded_reads_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b' '; 101]).unwrap();
        let e = read_bounded(&big, 100).unwrap_err();
        assert!(e.to_string().contains("100-byte limit"), "{e}");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = read_bounded(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Inner>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
        }
        let p = Path::new("/c/x.json");
        let e = parse_json::<Outer>(p, br#"{"items":[{"n":1},{"n":"two"}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/x.json: field `items[1].n`: invalid type"),
            "{e}"
        );
        let e = parse_json::<Outer>(p, br#"{"items":[{"n":1}"#).unwrap_err();
        assert!(e.to_string().contains("truncated JSON"), "{e}");
    }
}
