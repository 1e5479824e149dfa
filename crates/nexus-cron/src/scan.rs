//! Finding `<job>.last` files in the heartbeat directories.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nexus_heartbeat::{CronDirs, Observation, Problem};
use serde::Serialize;

/// What was found on disk for one job: the record that wins (the newest
/// readable one across directories), or the problem reading it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The winning record: the newest readable one across the directories.
    pub path: PathBuf,
    /// Its content, or why it could not be used.
    pub observed: Result<Observation, Problem>,
    /// Other files for the same job that lost (older, or unreadable).
    pub shadowed: Vec<PathBuf>,
}

/// A directory that could not be listed (it is reported, not fatal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirProblem {
    /// Directory as configured (not canonicalised).
    pub dir: PathBuf,
    /// Why it could not be read.
    pub reason: String,
}

/// Everything found in the heartbeat directories.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Jobs by name (the file stem is authoritative).
    pub jobs: BTreeMap<String, Found>,
    /// Directories that exist but could not be listed. A directory that
    /// does not exist is not a problem (the fallback usually does not).
    pub dir_problems: Vec<DirProblem>,
    /// Directories that were scanned and exist.
    pub scanned: Vec<PathBuf>,
    /// `*.last` entries that cannot be a job's record (a name that is not
    /// UTF-8 or not a valid job name, or a file that cannot be read or
    /// parsed while another record of its job is used): reported, never
    /// dropped silently.
    pub ignored: Vec<Ignored>,
}

/// A `*.last` entry that cannot be a job's record, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// The file, escaped ([`escaped`]): one line of text whatever its name.
    pub path: String,
    /// Why it is not a job's record.
    pub reason: String,
}

/// A path as one line of printable text: control characters, quotes and
/// backslashes escaped as Rust writes them (`\n`, `\u{1b}`), bytes that are
/// not UTF-8 as `\xNN`. A name cannot forge a line in a report or a log.
pub fn escaped(path: &OsStr) -> String {
    let mut out = String::new();
    for chunk in path.as_bytes().utf8_chunks() {
        out.extend(chunk.valid().escape_debug());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The moment a record was last written to: the newest of its times.
fn record_time(obs: &Observation) -> f64 {
    let f = |k: &str| obs.fields.get(k).and_then(|v| v.as_f64());
    [obs.timestamp, f("finished_at"), f("started_at"), obs.mtime]
        .into_iter()
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Lists `*.last` in every directory (in order) and reads them all, in
/// parallel. For a job present in several directories, the newest readable
/// record wins (the writer's fallback and the primary may both hold one).
///
/// A `<job>.last` that is a symbolic link is **not followed**: it is the
/// job's record, `Unreadable` (nexus-heartbeat's reader opens with
/// `O_NOFOLLOW`, so a link swapped in after the listing is refused too).
/// The directories are shared by the jobs of many users; following a link
/// would let one of them point the checker, often root, at a file it may
/// not read and have a clip of its content quoted in a report or an issue.
pub fn scan(dirs: &[PathBuf]) -> Scan {
    let mut out = Scan::default();
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.dir_problems.push(DirProblem {
                    dir: dir.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        out.scanned.push(dir.clone());
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.as_bytes().strip_suffix(b".last") else {
                continue;
            };
            if stem.starts_with(b".") {
                continue; // our own temp files and hidden files
            }
            let ignore = |reason: String| Ignored {
                path: escaped(entry.path().as_os_str()),
                reason,
            };
            let Ok(stem) = std::str::from_utf8(stem) else {
                out.ignored.push(ignore(
                    "its name is not UTF-8: not a job's record".to_string(),
                ));
                continue;
            };
            if let Err(e) = CronDirs::validate_record_name(stem) {
                out.ignored.push(ignore(format!(
                    "not a job name ({}): not a job's record",
                    e.why
                )));
                continue;
            }
            candidates.push((stem.to_string(), entry.path()));
        }
    }
    let paths: Vec<&Path> = candidates.iter().map(|(_, p)| p.as_path()).collect();
    let observed = Observation::read_many(&paths);
    for ((job, path), observed) in candidates.into_iter().zip(observed) {
        let (lost, lost_observed) = match out.jobs.get_mut(&job) {
            None => {
                out.jobs.insert(
                    job,
                    Found {
                        path,
                        observed,
                        shadowed: Vec::new(),
                    },
                );
                continue;
            }
            Some(found) => {
                let newer = match (&observed, &found.observed) {
                    (Ok(new), Ok(old)) => record_time(new) > record_time(old),
                    (Ok(_), Err(_)) => true,
                    (Err(_), _) => false,
                };
                if newer {
                    let old = std::mem::replace(
                        found,
                        Found {
                            path,
                            observed,
                            shadowed: Vec::new(),
                        },
                    );
                    found.shadowed = old.shadowed;
                    found.shadowed.push(old.path.clone());
                    (old.path, old.observed)
                } else {
                    found.shadowed.push(path.clone());
                    (path, observed)
                }
            }
        };
        // A record that loses to another because it cannot be read or
        // parsed is reported, never dropped silently: its file and why.
        if let Err(p) = lost_observed {
            out.ignored.push(Ignored {
                path: escaped(lost.as_os_str()),
                reason: format!(
                    "{}: {} (not used: another record of job {job} is)",
                    p.state, p.reason
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_heartbeat::State;
    use std::fs;

    #[test]
    fn newest_record_across_directories_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::write(
            a.path().join("j.last"),
            r#"{"job":"j","timestamp":100,"interval_seconds":60}"#,
        )
        .unwrap();
        fs::write(
            b.path().join("j.last"),
            r#"{"job":"j","timestamp":200,"interval_seconds":60}"#,
        )
        .unwrap();
        fs::write(a.path().join("only_a.last"), "150").unwrap();
        fs::write(b.path().join("broken.last"), "{").unwrap();
        fs::write(a.path().join("broken.last"), "120").unwrap();
        fs::write(a.path().join(".j.last.tmp.1.2"), "junk").unwrap();
        fs::write(a.path().join("notes.txt"), "junk").unwrap();
        fs::write(a.path().join("bad name.last"), "1").unwrap();
        let s = scan(&[
            a.path().to_path_buf(),
            b.path().to_path_buf(),
            PathBuf::from("/nonexistent/dir"),
        ]);
        assert_eq!(s.jobs.keys().collect::<Vec<_>>(), ["broken", "j", "only_a"]);
        assert_eq!(s.jobs["j"].path, b.path().join("j.last"));
        assert_eq!(s.jobs["j"].shadowed, [a.path().join("j.last")]);
        // A readable record beats a corrupt one wherever it is, and the
        // corrupt one is reported with its file and why.
        assert_eq!(s.jobs["broken"].path, a.path().join("broken.last"));
        let mut ignored = s.ignored.clone();
        ignored.sort_by(|x, y| x.path.cmp(&y.path));
        let mut want = [
            Ignored {
                path: a.path().join("bad name.last").display().to_string(),
                reason: "not a job name (only A-Z a-z 0-9 . _ - are allowed): not a job's record"
                    .to_string(),
            },
            Ignored {
                path: b.path().join("broken.last").display().to_string(),
                reason: "corrupt: invalid JSON: EOF while parsing an object at line 1 column 1; starts with \"{\" (not used: another record of job broken is)".to_string(),
            },
        ];
        want.sort_by(|x, y| x.path.cmp(&y.path));
        assert_eq!(ignored, want);
        assert!(s.dir_problems.is_empty());
        assert_eq!(s.scanned.len(), 2);
    }

    /// A run pushed from another host (`<job>@<host>.last`, the pool's
    /// ping directory) and the local record of the same job are two jobs:
    /// the newer never hides the other.
    #[test]
    fn a_pushed_record_and_the_local_one_are_two_jobs() {
        let local = tempfile::tempdir().unwrap();
        let pings = tempfile::tempdir().unwrap();
        fs::write(
            local.path().join("db_backup.last"),
            r#"{"job":"db_backup","timestamp":100,"interval_seconds":60,"status":"failed","exit_code":3}"#,
        )
        .unwrap();
        fs::write(
            pings.path().join("db_backup@hostB.last"),
            r#"{"job":"db_backup@hostB","timestamp":200,"interval_seconds":60,"status":"ok"}"#,
        )
        .unwrap();
        fs::write(pings.path().join("db_backup@.last"), "1").unwrap();
        let s = scan(&[local.path().to_path_buf(), pings.path().to_path_buf()]);
        assert_eq!(
            s.jobs.keys().collect::<Vec<_>>(),
            ["db_backup", "db_backup@hostB"]
        );
        assert!(s.jobs["db_backup"].shadowed.is_empty());
        let ignored: Vec<&str> = s.ignored.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            ignored,
            [pings.path().join("db_backup@.last").display().to_string()]
        );
    }

    #[test]
    fn names_that_cannot_be_jobs_are_reported_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let hb = dir.path();
        let record = r#"{"timestamp": 100, "interval_seconds": 60}"#;
        for name in [
            &b"caf\xe9.last"[..],
            b"a\nb.last",
            b"ok.last",
            b"notes\xff.txt",
        ] {
            fs::write(hb.join(OsStr::from_bytes(name)), record).unwrap();
        }
        let s = scan(&[hb.to_path_buf()]);
        assert_eq!(s.jobs.keys().collect::<Vec<_>>(), ["ok"]);
        let shown: Vec<(&str, &str)> = s
            .ignored
            .iter()
            .map(|i| (i.path.rsplit('/').next().unwrap(), i.reason.as_str()))
            .collect();
        let mut shown = shown;
        shown.sort();
        assert_eq!(
            shown,
            [
                (
                    "a\\nb.last",
                    "not a job name (contains a control character): not a job's record"
                ),
                ("caf\\xe9.last", "its name is not UTF-8: not a job's record"),
            ]
        );
        let report = crate::evaluate(&crate::Registry::default(), &s, 100.0);
        assert_eq!(report.ignored.len(), 2);
        assert!(!report.healthy(), "an ignored record is a problem");
    }

    #[test]
    fn an_unlistable_directory_is_reported() {
        let a = tempfile::tempdir().unwrap();
        let file = a.path().join("file");
        fs::write(&file, "x").unwrap();
        let s = scan(std::slice::from_ref(&file));
        assert_eq!(s.dir_problems.len(), 1);
        assert_eq!(s.dir_problems[0].dir, file);
    }

    #[test]
    fn symlinked_records_are_not_followed_and_leak_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hb = dir.path().join("hb");
        std::fs::create_dir(&hb).unwrap();
        let secret = dir.path().join("shadow");
        std::fs::write(&secret, "root:$6$t0psecrethash:19000").unwrap();
        std::os::unix::fs::symlink(&secret, hb.join("evil.last")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", hb.join("dangling.last")).unwrap();
        std::fs::write(
            hb.join("good.last"),
            r#"{"timestamp": 1, "interval_seconds": 60}"#,
        )
        .unwrap();
        let s = scan(std::slice::from_ref(&hb));
        for job in ["evil", "dangling"] {
            let p = s.jobs[job].observed.as_ref().unwrap_err();
            assert_eq!(p.state, State::Unreadable);
            assert!(p.reason.contains("symbolic link"), "{}", p.reason);
            assert!(!p.reason.contains("t0psecret"));
        }
        assert!(s.jobs["good"].observed.is_ok());
        let report = crate::evaluate(&crate::Registry::default(), &s, 100.0);
        let text = format!("{report:?}");
        assert!(!text.contains("t0psecret"), "{text}");
    }
}
