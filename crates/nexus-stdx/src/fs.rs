//! Files: the atomic write protocol (docs/SPEC.md §1.3: temp file in the
//! same directory, write, fsync, rename, fsync the directory), capped reads
//! and a no-follow, non-blocking open.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of threads and writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Bounded retries when a temp name is taken (a leftover of a killed writer
/// whose PID was reused, or another process's temp).
const TEMP_ATTEMPTS: u32 = 64;

/// An atomic write that did not happen; the old file (if any) is intact.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteError {
    /// The parent directory could not be created.
    CreateDir {
        /// Parent directory of the target that could not be created.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The target path has no file name (e.g. `/` or `..`).
    NotAFile {
        /// Target path as given.
        path: PathBuf,
    },
    /// Writing, syncing or renaming the temp file failed.
    Write {
        /// The file that was being replaced.
        path: PathBuf,
        /// The step that failed (`create temp file`, `write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The I/O error.
        source: io::Error,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::CreateDir { path, source } => {
                write!(f, "cannot create directory {}: {source}", path.display())
            }
            WriteError::NotAFile { path } => write!(f, "{}: not a file path", path.display()),
            WriteError::Write { path, op, source } => {
                write!(f, "cannot write {}: {op}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::CreateDir { source, .. } | WriteError::Write { source, .. } => Some(source),
            WriteError::NotAFile { .. } => None,
        }
    }
}

/// Replaces `path` with `bytes` so that a reader sees either the old or the
/// new content, never a mix.
///
/// Parent directories are created. With `durable`, the temp file is fsynced
/// before the rename and the directory after it, so the new content survives
/// a power cut; without it the write costs no disk flush (a crash may then
/// lose the newest write, never corrupt the file). On error the temp file is
/// removed and the previous file is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), WriteError> {
    write_with_mode(path, &mut |f| f.write_all(bytes), durable, false)
}

/// [`write_atomic`] for state that only its owner may read (pool and
/// watchdog state, approvals, the Gitea outbox, cron history): the file is
/// created `0600` (never readable by others, not even for a moment) and
/// missing parent directories `0700`. Heartbeats stay [`write_atomic`]
/// (`0644`): other users' checkers read them, and they hold no secret.
pub fn write_private(path: &Path, bytes: &[u8], durable: bool) -> Result<(), WriteError> {
    write_with_mode(path, &mut |f| f.write_all(bytes), durable, true)
}

/// [`write_private`] for a document written as it is made (`fill` writes
/// it into a buffered writer over the temp file), so a large one is never
/// held in memory whole; an error of `fill` leaves the old file in place.
pub fn write_private_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    durable: bool,
) -> Result<(), WriteError> {
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
) -> Result<(), WriteError> {
    let file_name = path.file_name().ok_or_else(|| WriteError::NotAFile {
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
        builder
            .create(dir)
            .map_err(|source| WriteError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let werr = |op: &'static str| {
        move |source: io::Error| WriteError::Write {
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

/// Reads a whole small file, at most `max + 1` bytes, into the front of
/// `buf` in as few `read` calls as it takes (one for a file shorter than
/// `first`), and returns how many bytes it read: the file is `&buf[..len]`;
/// `len > max` means it is over the limit.
///
/// A short read is taken as end of file, which holds for a regular file
/// that is replaced by rename, never appended to (heartbeats, manifests):
/// no extra `read` to see the end, no `fstat` for the size. An endless
/// device stops at `max + 1` bytes.
///
/// `buf` keeps its length between calls, so a buffer reused across files is
/// zeroed once, not once per file (a sweep reads 10,000 of them).
pub fn read_limited(
    file: &mut impl Read,
    buf: &mut Vec<u8>,
    first: usize,
    max: u64,
) -> io::Result<usize> {
    let cap = usize::try_from(max).unwrap_or(usize::MAX - 1) + 1;
    let first = first.clamp(1, cap);
    if buf.len() < first {
        buf.resize(first, 0);
    }
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
                if len >= cap {
                    break; // one byte past the limit: the caller reports it
                }
                let grow = buf.len().saturating_mul(2).min(cap);
                buf.resize(grow, 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// Reads at most `cap` bytes of `path` to its real end of file (pipes and
/// `/proc` files included); what lies beyond `cap` is not read.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(cap).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The largest config file read: 16 MiB (10,000 gateways in the seed's JSON
/// are about 3 MB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads a config file as text, at most [`MAX_CONFIG_BYTES`]: a bigger file
/// (or an endless device) is an `InvalidData` error naming the limit, not a
/// daemon that allocates until it is killed. Reads to the real end of file,
/// so a pipe (`--config <(generate)`) is read whole.
pub fn read_config(path: &Path) -> io::Result<String> {
    let bytes = read_capped(path, MAX_CONFIG_BYTES + 1)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "larger than the {} MiB limit for a config file",
                MAX_CONFIG_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `O_NONBLOCK | O_NOFOLLOW` where their values are known (Linux; std has
/// no constants for them and this crate links no libc), so a FIFO put in
/// place of a file cannot hang the reader (regular files ignore it) and a
/// symbolic link is refused by the kernel (`ELOOP`). `None` elsewhere:
/// callers then check with `lstat` before and `fstat` after the open.
pub const NOFOLLOW_NONBLOCK: Option<i32> = if cfg!(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "riscv64"
    )
)) {
    Some(0o4000 | 0o400000)
} else if cfg!(all(
    target_os = "linux",
    any(target_arch = "aarch64", target_arch = "arm")
)) {
    Some(0o4000 | 0o100000)
} else {
    None
};

/// Opens `path` for reading with `flags` (see [`NOFOLLOW_NONBLOCK`]): a
/// final symbolic link fails with `ELOOP`, a FIFO does not block.
pub fn open_nofollow_with(path: &Path, flags: i32) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(flags).open(path)
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
    fn write_private_with_streams_and_keeps_the_old_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        write_private_with(&p, &mut |w| w.write_all(b"one"), false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        let err =
            write_private_with(&p, &mut |_| Err(io::Error::other("boom")), false).unwrap_err();
        assert!(
            matches!(err, WriteError::Write { op: "write", .. }),
            "{err}"
        );
        assert_eq!(fs::read(&p).unwrap(), b"one");
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
        assert!(
            matches!(err, WriteError::Write { op: "rename", .. }),
            "{err}"
        );
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
        assert!(matches!(err, WriteError::CreateDir { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn root_is_not_a_file() {
        let err = write_atomic(Path::new("/"), b"x", false).unwrap_err();
        assert!(matches!(err, WriteError::NotAFile { .. }), "{err}");
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

    #[test]
    fn read_limited_stops_one_byte_past_the_limit() {
        let data = vec![7u8; 10_000];
        let mut buf = Vec::new();
        let n = read_limited(&mut &data[..], &mut buf, 16, 100).unwrap();
        assert_eq!(n, 101);
        let n = read_limited(&mut &data[..50], &mut buf, 16, 100).unwrap();
        assert_eq!((n, &buf[..n]), (50, &data[..50]));
        let n = read_limited(&mut &data[..], &mut buf, 4096, 1 << 20).unwrap();
        assert_eq!(n, 10_000);
    }

    #[test]
    fn config_reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        fs::write(&p, "a = 1\n").unwrap();
        assert_eq!(read_config(&p).unwrap(), "a = 1\n");
        let f = File::create(&p).unwrap();
        f.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let e = read_config(&p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("16 MiB"), "{e}");
        fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_config(&p).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(read_capped(Path::new("/dev/zero"), 10).unwrap().len(), 10);
    }

    #[test]
    fn nofollow_refuses_a_link_and_does_not_block_on_a_fifo() {
        let Some(flags) = NOFOLLOW_NONBLOCK else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        fs::write(&target, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        open_nofollow_with(&target, flags).unwrap();
        let e = open_nofollow_with(&link, flags).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(40), "ELOOP: {e}");
        let fifo = dir.path().join("f");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Returns at once (no writer): O_NONBLOCK.
            open_nofollow_with(&fifo, flags).unwrap();
        }
    }

    #[test]
    fn config_files_are_read_whole_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = {
            let p = dir.path().join("ok.toml");
            fs::write(&p, b"a = 1\n").unwrap();
            p
        };
        assert_eq!(read_config(&p).unwrap(), "a = 1\n");
        // An endless device stops at the limit, with an error that names it.
        let e = read_config(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("16 MiB limit"), "{e}");
        let e = read_config(&{
            let p = dir.path().join("bin.toml");
            fs::write(&p, b"\xff\xfe").unwrap();
            p
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_config_from_a_pipe_is_read_to_its_end() {
        // `--config <(generate)`: a short read is not the end of a pipe.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                f.write_all(b"a = 1\n").unwrap();
                f.flush().unwrap();
                // A second write the reader may see in a second `read`.
                std::thread::sleep(std::time::Duration::from_millis(20));
                f.write_all(b"b = 2\n").unwrap();
            })
        };
        assert_eq!(read_config(&fifo).unwrap(), "a = 1\nb = 2\n");
        writer.join().unwrap();
    }
}
