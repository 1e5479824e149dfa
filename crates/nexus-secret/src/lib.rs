//! Where the suite's tokens come from: an environment variable, or a file
//! (`token_file = "/etc/nexus/gitea.token"`) that only its owner can read.
//!
//! [`Secret`] holds every token, key and connection string: its `Debug` and
//! `Display` print `***`, so settings that hold one derive `Debug` safely.
//!
//! [`token`] is the one rule every binary follows: the variable's value
//! (read by the binary at its edge, never here) when it is set and not
//! blank, else the file, else nothing. [`read_token_file`]
//! **refuses** a file that its group or others can read or write (mode
//! `& 0o077 != 0`, as ssh does for keys): a token that leaked through a
//! loose mode is already lost, and a warning in a log nobody reads does
//! not get it back. The remedy is in the error (`chmod 600`). One trailing
//! newline (and surrounding whitespace) is trimmed; an empty file, a file
//! over [`MAX_TOKEN_FILE`] bytes or one that is not UTF-8 is an error.
//!
//! [`Redactor`] is the other half: what a server answers (an error
//! message, a body that echoes the request) goes through
//! [`Redactor::clean`] before it is logged, kept in an error or stored:
//! the known tokens redacted in every form a server could echo them in
//! (as is, percent-encoded, base64 at any alignment), escape sequences and
//! control characters taken out, the length capped ([`EXCERPT_CHARS`]).
//! The Gitea and Telegram clients and the probes use it.
//! [`redact_url`] is the one way a URL is shown: without its user info,
//! query or fragment.
//!
//! # What this crate must never do
//! - Put a token (or any part of a token file) into an error, `Debug`
//!   output or a log line: errors name the file and the variable only.
//! - Let [`Redactor::clean`] return a known secret (in any of its forms)
//!   or a control character, or more than the characters asked for.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod redact;
mod secret;
mod url;

pub use redact::{EXCERPT_CHARS, REDACTED, Redactor, clean, strip_controls};
pub use secret::Secret;
pub use url::redact_url;

/// The largest token file read (a token is a line, not a document).
pub const MAX_TOKEN_FILE: u64 = 4096;

/// Why a token file cannot be used. Never contains the file's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file cannot be opened or read.
    #[error("token file {}: {source}", path.display())]
    Io {
        /// Token file path as configured (`token_file`), not resolved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Its group or others may read or write it.
    #[error(
        "token file {} has mode {mode:04o}: group or others may access it; refusing it (chmod 600 {})",
        path.display(), path.display()
    )]
    Permissions {
        /// Token file path as configured (`token_file`), not resolved.
        path: PathBuf,
        /// `st_mode & 0o7777` (shown in octal); group or other bits are set.
        mode: u32,
    },
    /// Not a regular file (a directory, FIFO, device).
    #[error("token file {} is not a regular file", path.display())]
    NotAFile {
        /// Token file path as configured (`token_file`), not resolved.
        path: PathBuf,
    },
    /// Blank after trimming.
    #[error("token file {} is empty", path.display())]
    Empty {
        /// Token file path as configured (`token_file`), not resolved.
        path: PathBuf,
    },
    /// Larger than [`MAX_TOKEN_FILE`].
    #[error("token file {} is larger than {MAX_TOKEN_FILE} bytes", path.display())]
    TooLarge {
        /// Token file path as configured (`token_file`), not resolved.
        path: PathBuf,
    },
    /// Not UTF-8.
    #[error("token file {} is not UTF-8 text", path.display())]
    NotText {
        /// Token file path as configured (`token_file`), not resolved.
        path: PathBuf,
    },
}

/// Reads a token file: a regular file, mode `0600` or stricter, at most
/// [`MAX_TOKEN_FILE`] bytes of UTF-8, trimmed.
pub fn read_token_file(path: &Path) -> Result<Secret, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = Secret::new(String::from_utf8(bytes).map_err(|_| Error::NotText {
        path: path.to_path_buf(),
    })?);
    Secret::trimmed(text.expose()).ok_or_else(|| Error::Empty {
        path: path.to_path_buf(),
    })
}

/// The token: `from_env` (the variable's value, read by the binary at its
/// edge) when set and not blank (trimmed), else the file's, else `None`.
/// An unusable file is an error, not a silent `None`.
pub fn token(from_env: Option<&str>, file: Option<&Path>) -> Result<Option<Secret>, Error> {
    if let Some(t) = from_env.and_then(Secret::trimmed) {
        return Ok(Some(t));
    }
    file.map(read_token_file).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const SECRET: &str = "s3cr3t-canary-0xC0FFEE";

    fn file(dir: &Path, content: &[u8], mode: u32) -> PathBuf {
        let p = dir.join("token");
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_file_gives_its_trimmed_token() {
        let d = tempfile::tempdir().unwrap();
        for content in [
            format!("{SECRET}\n"),
            format!("{SECRET}\r\n"),
            format!("  {SECRET}  \n\n"),
        ] {
            let p = file(d.path(), content.as_bytes(), 0o600);
            assert_eq!(read_token_file(&p).unwrap().expose(), SECRET);
        }
        let p = file(d.path(), SECRET.as_bytes(), 0o400);
        assert_eq!(read_token_file(&p).unwrap().expose(), SECRET);
    }

    #[test]
    fn loose_modes_are_refused_without_showing_the_token() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o666] {
            let p = file(d.path(), SECRET.as_bytes(), mode);
            let e = read_token_file(&p).unwrap_err();
            assert!(
                matches!(e, Error::Permissions { mode: m, .. } if m == mode),
                "{e}"
            );
            let msg = format!("{e} {e:?}");
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
            assert!(!msg.contains(SECRET), "{msg}");
        }
    }

    #[test]
    fn bad_files_are_errors_that_name_them() {
        let d = tempfile::tempdir().unwrap();
        type Want = fn(&Error) -> bool;
        let cases: [(&[u8], Want); 3] = [
            (b" \n", |e| matches!(e, Error::Empty { .. })),
            (b"\xff\xfe", |e| matches!(e, Error::NotText { .. })),
            (&[b'a'; 5000], |e| matches!(e, Error::TooLarge { .. })),
        ];
        for (content, want) in cases {
            let p = file(d.path(), content, 0o600);
            let e = read_token_file(&p).unwrap_err();
            assert!(want(&e), "{e:?}");
            assert!(e.to_string().contains(&p.display().to_string()));
        }
        let missing = d.path().join("missing");
        assert!(matches!(read_token_file(&missing), Err(Error::Io { .. })));
        let sub = d.path().join("dir");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(read_token_file(&sub), Err(Error::NotAFile { .. })));
    }

    #[test]
    fn the_variable_wins_then_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = file(d.path(), b"from-file\n", 0o600);
        let shown = |t: Option<Secret>| t.map(|t| t.expose().to_owned());
        assert_eq!(
            shown(token(None, Some(&p)).unwrap()).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            shown(token(Some(" \n"), Some(&p)).unwrap()).as_deref(),
            Some("from-file"),
            "a blank variable does not count"
        );
        assert_eq!(token(None, None).unwrap(), None);
        let loose = d.path().join("loose");
        fs::write(&loose, "x").unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(token(None, Some(&loose)).is_err());
        // A set variable wins over any file, even an unusable one.
        assert_eq!(
            shown(token(Some(" from-env\n"), Some(&loose)).unwrap()).as_deref(),
            Some("from-env")
        );
    }
}
