//! The atomic write protocol (docs/SPEC.md §1.3): temp file in the same directory,
//! write, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Distinguishes temp files of threads and writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Bounded retries when a temp name is taken (a leftover of a killed writer
/// whose PID was reused, or another process's temp).
const TEMP_ATTEMPTS: u32 = 64;

/// Replaces `path` with `bytes` so that a reader sees either the old or the
/// new content, never a mix.
///
/// Parent directories are created. With `durable`, the temp file is fsynced
/// before the rename and the directory after it, so the new content survives
/// a power cut; without it the write costs no disk flush (a crash may then
/// lose the newest beat, never corrupt the file). On error the temp file is
/// removed and the previous file is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), Error> {
    write_with_mode(path, &mut |f| f.write_all(bytes), durable, false)
}

/// [`write_atomic`] for state that only its owner may read (pool and
/// watchdog state, approvals, the Gitea outbox, cron history): the file is
/// created `0600` (never readable by others, not even for a moment) and
/// missing parent directories `0700`. Heartbeats stay [`write_atomic`]
/// (`0644`): other users' checkers read them, and they hold no secret.
pub fn write_private(path: &Path, bytes: &[u8], durable: bool) -> Result<(), Error> {
    write_with_mode(path, &mut |f| f.write_all(bytes), durable, true)
}

/// [`write_private`] for a document written as it is made (`fill` writes
/// it into a buffered writer over the temp file), so a large one is never
/// held in memory whole; an error of `fill` leaves the old file in place.
pub fn write_private_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    durable: bool,
) -> Result<(), Error> {
    write_with_mode(
        path,
        &mut |f| {
            let mut w = io::BufWriter::with_capacity(64 * 1024, f);
            fill(&mut w)?;
            w.flush()
        },
        durable,
        true,
    )
}

fn write_with_mode(
    path: &Path,
    fill: &mut dyn FnMut(&mut File) -> io::Result<()>,
    durable: bool,
    private: bool,
) -> Result<(), Error> {
    let file_name = path.file_name().ok_or_else(|| Error::NotAFile {
        path: path.to_path_buf(),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        if private {
            builder.mode(0o700);
        }
        builder.create(dir).map_err(|source| Error::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let werr = |op: &'static str| {
        move |source: io::Error| Error::Write {
            path: path.to_path_buf(),
            op,
            source,
        }
    };

    let mode = if private { 0o600 } else { 0o666 };
    let (tmp_path, mut file) =
        create_temp(dir, file_name, mode).map_err(werr("create temp file"))?;
    let result = (|| {
        fill(&mut file).map_err(werr("write"))?;
        if durable {
            file.sync_all().map_err(werr("fsync"))?;
        }
        drop(file);
        fs::rename(&tmp_path, path).map_err(werr("rename"))?;
        if durable {
            sync_dir(dir).map_err(werr("fsync directory"))?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Best effort: the temp file is ours and useless now.
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

/// Creates `.<name>.tmp.<pid>.<n>` exclusively (`O_EXCL`) in `dir`.
fn create_temp(dir: &Path, file_name: &std::ffi::OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last_err = None;
    for _ in 0..TEMP_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".tmp.{pid}.{n}"));
        let tmp = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free temp file name")))
}

/// Makes a rename in `dir` durable. Some filesystems refuse fsync on a
/// directory (EINVAL); the rename has still happened, so that is not an error.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    match d.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_in_0700_directories() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/deeper/state.json");
        write_private(&p, b"{}", true).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&dir.path().join("state/deeper")), 0o700);
        // A rewrite stays private; a heartbeat is world-readable (umask allowing).
        write_private(&p, b"{\"a\":1}", false).unwrap();
        assert_eq!(mode(&p), 0o600);
        let hb = dir.path().join("hb.json");
        write_atomic(&hb, b"{}", false).unwrap();
        assert_eq!(mode(&hb) & 0o600, 0o600);
    }

    #[test]
    fn creates_parents_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c/hb.json");
        write_atomic(&p, b"one", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // No temp files are left behind.
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("hb.json")]);
    }

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hb.json");
        write_atomic(&p, b"old", true).unwrap();
        // Renaming a file over a non-empty directory fails: use one as target.
        let target = dir.path().join("adir");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        let err = write_atomic(&target, b"new", true).unwrap_err();
        assert!(matches!(err, Error::Write { op: "rename", .. }), "{err}");
        assert!(err.to_string().contains("adir"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn parent_is_a_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        let err = write_atomic(&blocker.join("hb.json"), b"x", false).unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err}");
    }

    #[test]
    fn root_is_not_a_file() {
        let err = write_atomic(Path::new("/"), b"x", false).unwrap_err();
        assert!(matches!(err, Error::NotAFile { .. }), "{err}");
    }

    #[test]
    fn skips_taken_temp_names() {
        let dir = tempfile::tempdir().unwrap();
        let pid = std::process::id();
        let next = COUNTER.load(Ordering::Relaxed);
        // Squat a few of the names the writer will try next.
        for n in next..next + 3 {
            fs::write(dir.path().join(format!(".hb.tmp.{pid}.{n}")), b"junk").unwrap();
        }
        write_atomic(&dir.path().join("hb"), b"ok", false).unwrap();
        assert_eq!(fs::read(dir.path().join("hb")).unwrap(), b"ok");
    }
}
