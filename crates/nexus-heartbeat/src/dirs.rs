//! Where cron heartbeats live, and which job names are safe file stems.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::JobNameError;

/// The ordered list of directories a cron heartbeat is written to (the first
/// that works) and read from (all of them; newest record wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronDirs {
    candidates: Vec<PathBuf>,
    explicit: bool,
}

impl CronDirs {
    /// The seed's primary directory. It is on tmpfs on most systems, so it is
    /// empty after a reboot; the checker's registry of expected jobs makes that
    /// visible (MISSING) instead of silent.
    pub const PRIMARY_DIR: &str = "/var/run/bezalel/heartbeats";
    /// The persistent directory of #1096; recommended as `--dir` or
    /// `BEZALEL_HEARTBEAT_DIR` because it survives reboots.
    pub const PERSISTENT_DIR: &str = "/var/lib/bezalel/heartbeats";
    /// Fallback under `$HOME` when the primary cannot be created or written.
    pub const FALLBACK_SUBDIR: &str = ".bezalel/heartbeats";
    /// Environment variable that overrides the directory (no fallback then).
    pub const DIR_ENV: &str = "BEZALEL_HEARTBEAT_DIR";

    /// Resolves from an explicit directory (`--dir`), else the
    /// `BEZALEL_HEARTBEAT_DIR` environment variable, else primary then
    /// `$HOME/.bezalel/heartbeats`.
    pub fn resolve(explicit: Option<&Path>) -> CronDirs {
        CronDirs::resolve_with(
            explicit,
            std::env::var_os(CronDirs::DIR_ENV),
            std::env::var_os("HOME"),
        )
    }

    /// [`CronDirs::resolve`] with the environment passed in (for tests and
    /// for callers that read their environment elsewhere).
    pub fn resolve_with(
        explicit: Option<&Path>,
        env_dir: Option<OsString>,
        home: Option<OsString>,
    ) -> CronDirs {
        if let Some(dir) = explicit {
            return CronDirs::only(dir);
        }
        if let Some(dir) = env_dir.filter(|d| !d.is_empty()) {
            return CronDirs::only(Path::new(&dir));
        }
        let mut candidates = vec![PathBuf::from(CronDirs::PRIMARY_DIR)];
        if let Some(home) = home.filter(|h| !h.is_empty()) {
            candidates.push(Path::new(&home).join(CronDirs::FALLBACK_SUBDIR));
        }
        CronDirs {
            candidates,
            explicit: false,
        }
    }

    /// Exactly one directory, with no fallback: a write that fails there is
    /// an error rather than a file put where nobody looks.
    pub fn only(dir: &Path) -> CronDirs {
        CronDirs {
            candidates: vec![dir.to_path_buf()],
            explicit: true,
        }
    }

    /// A primary and a fallback directory.
    pub fn with_fallback(primary: &Path, fallback: &Path) -> CronDirs {
        CronDirs {
            candidates: vec![primary.to_path_buf(), fallback.to_path_buf()],
            explicit: false,
        }
    }

    /// The directories in the order they are tried.
    pub fn candidates(&self) -> &[PathBuf] {
        &self.candidates
    }

    /// Whether the caller named the directory (flag or environment).
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }

    /// `<dir>/<job>.last` for every candidate directory.
    pub fn record_paths(&self, job: &str) -> Vec<PathBuf> {
        self.candidates
            .iter()
            .map(|d| d.join(format!("{job}.last")))
            .collect()
    }
}

/// The longest job name, in bytes.
const MAX_JOB_NAME: usize = 128;
/// The longest host name of a pushed record, in bytes.
const MAX_HOST_NAME: usize = 64;

/// Accepts a host name that may name pushed records: the same rule, at
/// most 64 bytes.
pub(crate) fn validate_host_name(name: &str) -> Result<(), JobNameError> {
    Ok(nexus_stdx::validate_name("host name", name, MAX_HOST_NAME)?)
}

impl CronDirs {
    /// Accepts a job name that is safe as a file stem: the workspace's one
    /// safe-name rule (`nexus_stdx::validate_name`: `[A-Za-z0-9._-]`, not
    /// starting with `.` or `-`, no `..`) and at most 128 bytes.
    pub fn validate_job_name(name: &str) -> Result<(), JobNameError> {
        Ok(nexus_stdx::validate_name("job name", name, MAX_JOB_NAME)?)
    }

    /// Accepts the name of a `.last` record: a job name, or `<job>@<host>` for
    /// a job another host pushed to the resurrection pool (so it never takes
    /// the place of a local job of the same name).
    pub fn validate_record_name(name: &str) -> Result<(), JobNameError> {
        match name.split_once('@') {
            None => CronDirs::validate_job_name(name),
            Some((job, host)) => {
                CronDirs::validate_job_name(job)?;
                validate_host_name(host).map_err(|e| JobNameError {
                    name: name.chars().take(200).collect(),
                    why: e.why,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_beats_env_beats_default() {
        let d = CronDirs::resolve_with(
            Some(Path::new("/x")),
            Some("/env".into()),
            Some("/home/u".into()),
        );
        assert_eq!(d.candidates(), [PathBuf::from("/x")]);
        assert!(d.is_explicit());

        let d = CronDirs::resolve_with(None, Some("/env".into()), Some("/home/u".into()));
        assert_eq!(d.candidates(), [PathBuf::from("/env")]);

        let d = CronDirs::resolve_with(None, Some("".into()), Some("/home/u".into()));
        assert_eq!(
            d.candidates(),
            [
                PathBuf::from(CronDirs::PRIMARY_DIR),
                PathBuf::from("/home/u/.bezalel/heartbeats")
            ]
        );
        assert!(!d.is_explicit());

        let d = CronDirs::resolve_with(None, None, None);
        assert_eq!(d.candidates(), [PathBuf::from(CronDirs::PRIMARY_DIR)]);
    }

    #[test]
    fn record_paths_use_the_job_stem() {
        let d = CronDirs::with_fallback(Path::new("/a"), Path::new("/b"));
        assert_eq!(
            d.record_paths("db_backup"),
            [
                PathBuf::from("/a/db_backup.last"),
                PathBuf::from("/b/db_backup.last")
            ]
        );
    }

    #[test]
    fn job_names() {
        for ok in ["nightly_watch", "db-backup.v2", "A9"] {
            CronDirs::validate_job_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../etc/passwd",
            "a b",
            "é",
            "x\0",
            "a..b",
            "-rf",
            "x\ny",
            &"x".repeat(129),
        ] {
            let e = CronDirs::validate_job_name(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid job name"), "{e}");
        }
    }

    #[test]
    fn pushed_records_are_named_job_at_host() {
        for ok in [
            "db_backup",
            "db_backup@hostB",
            "j@web-1.example.org",
            "j@a_b",
        ] {
            CronDirs::validate_record_name(ok).unwrap();
        }
        validate_host_name("web-1.example.org").unwrap();
        for bad in [
            "j@", "@h", "j@h@i", "j@.h", "j@-h", "j@h/x", "j@..", "a/b@h", "j@h x",
        ] {
            let e = CronDirs::validate_record_name(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid job name"), "{e}");
        }
        assert!(CronDirs::validate_record_name(&format!("j@{}", "h".repeat(65))).is_err());
        // A job name alone never carries a host.
        assert!(CronDirs::validate_job_name("db_backup@hostB").is_err());
    }
}
