//! Opt-in recovery actions (docs/SPEC.md §4.5): a restart command with an attempt
//! cap that holds across one-shot runs, and a disk clean-up that reports the
//! exact bytes freed and never leaves its roots (it walks by directory
//! descriptor, see [`cleanup`]).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use crate::error::CleanupError;
use nexus_probe::{Status, Verdict};
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags, Stat, statat, unlinkat};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::config::{CleanupRule, RecoverySpec};

/// Directories a clean-up never descends into.
const NEVER_DESCEND: &[&str] = &[".git", ".venv", "node_modules"];
/// A clean-up never walks deeper than this.
const MAX_DEPTH: usize = 32;

/// What one recovery action did (or, in dry-run, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryResult {
    /// Check name from the `[[recovery]]` entry, e.g. `ws_gateway`.
    pub check: String,
    /// `restart`, `cleanup` or `none` (cap reached).
    pub action: &'static str,
    /// Whether the action succeeded.
    pub ok: bool,
    /// One line for people.
    pub message: String,
    /// Attempts in the current window, this one included.
    pub attempts: u32,
    /// Bytes freed by a clean-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freed_bytes: Option<u64>,
}

/// Attempt times per check, persisted in `<state_dir>/recovery.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryState {
    /// Epoch seconds of each attempt, per check.
    pub attempts: BTreeMap<String, Vec<f64>>,
}

impl RecoveryState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("recovery.json")
    }

    /// Loads the state; a missing or corrupt file is an empty state (a
    /// corrupt file is reported in the second value, never fatal).
    pub fn load(dir: &Path) -> (RecoveryState, Option<String>) {
        let path = RecoveryState::path(dir);
        match std::fs::read(&path) {
            Err(_) => (RecoveryState::default(), None),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => (s, None),
                Err(e) => (
                    RecoveryState::default(),
                    Some(format!(
                        "{}: {e} (starting with no attempts)",
                        path.display()
                    )),
                ),
            },
        }
    }

    /// Saves the state atomically.
    pub fn save(&self, dir: &Path) -> Result<(), nexus_heartbeat::Error> {
        let path = RecoveryState::path(dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| {
            nexus_heartbeat::Error::Serialise {
                path: path.clone(),
                source,
            }
        })?;
        Ok(nexus_stdx::write_private(&path, &bytes, true)?)
    }
}

/// Runs the recovery actions for one evaluation. Counters live in
/// `state_dir` (loaded and saved here); a healthy check resets its own.
pub async fn recover(
    specs: &[RecoverySpec],
    verdicts: &[Verdict],
    state_dir: &Path,
    now: f64,
    dry_run: bool,
) -> (Vec<RecoveryResult>, Vec<String>) {
    let mut warnings = Vec::new();
    let (mut state, problem) = RecoveryState::load(state_dir);
    warnings.extend(problem);
    let before = state.clone();
    let mut results = Vec::new();
    for spec in specs {
        let Some(v) = verdicts.iter().find(|v| v.name == spec.check) else {
            continue;
        };
        let window = spec.window.as_secs_f64();
        let attempts = state.attempts.entry(spec.check.clone()).or_default();
        if v.status == Status::Ok {
            attempts.clear();
            continue;
        }
        // A wall clock set back would keep attempts "in the future", so in
        // the window, for as long as the jump: they count from now instead.
        for t in attempts.iter_mut() {
            *t = t.min(now);
        }
        attempts.retain(|t| now - t < window);
        if !spec.on.contains(&v.status) {
            continue;
        }
        let used = attempts.len() as u32;
        if used >= spec.max_attempts {
            results.push(RecoveryResult {
                check: spec.check.clone(),
                action: "none",
                ok: false,
                message: format!(
                    "recovery cap reached: {used} attempt(s) in the last {}; manual intervention required",
                    nexus_stdx::format_duration(window)
                ),
                attempts: used,
                freed_bytes: None,
            });
            continue;
        }
        if dry_run {
            let what = if spec.restart.is_empty() {
                format!("would clean up {} rule(s)", spec.cleanup.len())
            } else {
                format!("would run {:?}", spec.restart)
            };
            results.push(RecoveryResult {
                check: spec.check.clone(),
                action: if spec.restart.is_empty() {
                    "cleanup"
                } else {
                    "restart"
                },
                ok: true,
                message: format!("dry-run: {what}"),
                attempts: used,
                freed_bytes: None,
            });
            continue;
        }
        let mut result = if spec.restart.is_empty() {
            run_cleanup(spec).await
        } else {
            run_restart(spec).await
        };
        // An attempt counts once the action ran, whatever its outcome.
        attempts.push(now);
        result.attempts = attempts.len() as u32;
        results.push(result);
    }
    state.attempts.retain(|_, v| !v.is_empty());
    if state != before
        && let Err(e) = state.save(state_dir)
    {
        warnings.push(format!("recovery counters not saved: {e}"));
    }
    (results, warnings)
}

async fn run_restart(spec: &RecoverySpec) -> RecoveryResult {
    let mut result = RecoveryResult {
        check: spec.check.clone(),
        action: "restart",
        ok: false,
        message: String::new(),
        attempts: 0,
        freed_bytes: None,
    };
    let Some((program, args)) = spec.restart.split_first() else {
        result.message = "no restart command".to_string();
        return result;
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            result.message = format!("restart failed: cannot run {program:?}: {e}");
            return result;
        }
    };
    match tokio::time::timeout(spec.timeout, child.wait_with_output()).await {
        Err(_) => {
            result.message = format!(
                "restart failed: {:?} did not finish within {}",
                spec.restart,
                nexus_stdx::format_duration(spec.timeout.as_secs_f64())
            );
        }
        Ok(Err(e)) => result.message = format!("restart failed: waiting for {program:?}: {e}"),
        Ok(Ok(out)) if out.status.success() => {
            result.ok = true;
            result.message = format!("restarted with {:?}", spec.restart);
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            result.message = format!(
                "restart failed: {:?} exited with {}: {first}",
                spec.restart, out.status
            );
        }
    }
    result
}

async fn run_cleanup(spec: &RecoverySpec) -> RecoveryResult {
    let rules = spec.cleanup.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let mut total = CleanupStats::default();
        let mut errors = Vec::new();
        for rule in &rules {
            match cleanup(rule, now) {
                Ok(s) => total.add(&s),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (total, errors)
    })
    .await;
    let (stats, errors) = match outcome {
        Ok(x) => x,
        Err(e) => (
            CleanupStats::default(),
            vec![format!("clean-up did not finish: {e}")],
        ),
    };
    RecoveryResult {
        check: spec.check.clone(),
        action: "cleanup",
        ok: errors.is_empty(),
        message: format!(
            "cleaned {} file(s) and {} dir(s), {} bytes ({:.1} MB) freed{}",
            stats.files,
            stats.dirs,
            stats.bytes,
            stats.bytes as f64 / 1_048_576.0,
            if errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {}", errors.join("; "))
            }
        ),
        attempts: 0,
        freed_bytes: Some(stats.bytes),
    }
}

/// What a clean-up removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Files removed.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
    /// Bytes of the removed files (exact: the sum of their sizes).
    pub bytes: u64,
}

impl CleanupStats {
    fn add(&mut self, o: &CleanupStats) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.bytes += o.bytes;
    }
}

/// Applies one rule: removes what matches under `rule.root`, never following
/// a symlink, never entering `.git`, `.venv` or `node_modules`.
///
/// The tree is walked by directory descriptor: each directory is opened
/// relative to its parent's descriptor with `O_DIRECTORY | O_NOFOLLOW`, and
/// each file is examined (`fstatat` without following) and removed
/// (`unlinkat`) relative to the descriptor of the directory that holds it.
/// A directory swapped for a symlink while the walk runs (`renameat2`
/// `RENAME_EXCHANGE`) is refused at the open, and a name resolved again
/// later can only ever be an entry of a directory that was inside the root
/// when the walk entered it: nothing outside the root is removed.
pub fn cleanup(rule: &CleanupRule, now: SystemTime) -> Result<CleanupStats, CleanupError> {
    let root = open_dir(CWD, &rule.root).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => CleanupError::NotADirectory {
            root: rule.root.clone(),
        },
        e => CleanupError::Open {
            root: rule.root.clone(),
            source: e.into(),
        },
    })?;
    let cutoff = now
        .checked_sub(rule.older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut stats = CleanupStats::default();
    walk(root.as_fd(), rule, cutoff, 0, &mut stats);
    Ok(stats)
}

/// Opens the directory `name` of `dir` for a walk, refusing a symlink.
fn open_dir<P: rustix::path::Arg>(dir: impl AsFd, name: P) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// Whether an entry was last modified before `cutoff`.
fn older(st: &Stat, cutoff: SystemTime) -> bool {
    let Ok(secs) = u64::try_from(st.st_mtime) else {
        return true; // before 1970
    };
    let nanos = u32::try_from(st.st_mtime_nsec)
        .unwrap_or(0)
        .min(999_999_999);
    SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos) < cutoff
}

/// The entries of `dir` other than `.` and `..`: name, and what `fstatat`
/// (not following links) says of it. Entries that vanish are skipped.
fn entries(dir: BorrowedFd<'_>) -> impl Iterator<Item = (CString, Stat)> + '_ {
    let listing = Dir::read_from(dir).ok();
    listing
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(move |e| {
            let name = e.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                return None;
            }
            let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
            Some((name.to_owned(), st))
        })
}

fn walk(
    dir: BorrowedFd<'_>,
    rule: &CleanupRule,
    cutoff: SystemTime,
    depth: usize,
    stats: &mut CleanupStats,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for (name, st) in entries(dir) {
        let shown = name.to_string_lossy();
        let kind = FileType::from_raw_mode(st.st_mode);
        let matches = || glob_match(&rule.pattern, &shown) && older(&st, cutoff);
        if kind == FileType::Directory {
            if NEVER_DESCEND.contains(&shown.as_ref()) {
                continue;
            }
            // Swapped for a symlink since the listing: ELOOP, skipped.
            let Ok(sub) = open_dir(dir, name.as_c_str()) else {
                continue;
            };
            if rule.directories && matches() {
                stats.bytes += remove_tree(sub.as_fd(), 0);
                if unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR).is_ok() {
                    stats.dirs += 1;
                }
            } else {
                walk(sub.as_fd(), rule, cutoff, depth + 1, stats);
            }
        } else if kind == FileType::RegularFile
            && !rule.directories
            && matches()
            // Relative to `dir`: whatever the name is now, it is an entry of
            // this directory (a symlink is removed, never its target).
            && unlinkat(dir, name.as_c_str(), AtFlags::empty()).is_ok()
        {
            stats.files += 1;
            stats.bytes += st.st_size.max(0) as u64;
        }
    }
}

/// Empties the directory `dir` (links removed, never followed) and returns
/// the bytes of the regular files removed.
fn remove_tree(dir: BorrowedFd<'_>, depth: usize) -> u64 {
    if depth > MAX_DEPTH {
        return 0;
    }
    let mut bytes = 0;
    for (name, st) in entries(dir) {
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Directory {
            if let Ok(sub) = open_dir(dir, name.as_c_str()) {
                bytes += remove_tree(sub.as_fd(), depth + 1);
                let _ = unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR);
            }
        } else if unlinkat(dir, name.as_c_str(), AtFlags::empty()).is_ok()
            && kind == FileType::RegularFile
        {
            bytes += st.st_size.max(0) as u64;
        }
    }
    bytes
}

/// File-name glob: `*` any run, `?` one character, everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("*.log", "a.log", true),
            ("*.log", "a.log.1", false),
            ("*.log*", "a.log.1", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("__pycache__", "__pycache__", true),
            ("*", "", true),
            ("*x*y", "axbxy", true),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} {n}");
        }
    }

    /// A rule for `pattern` under `root`, older than a week.
    fn week_old(root: &Path, pattern: &str, directories: bool) -> CleanupRule {
        CleanupRule {
            root: root.to_path_buf(),
            pattern: pattern.into(),
            older_than: Duration::from_secs(7 * 86_400),
            directories,
        }
    }

    fn age(path: &Path, days: u64) {
        let t = SystemTime::now() - Duration::from_secs(days * 86_400);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn cleanup_removes_exactly_what_matches_and_counts_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("logs/deep")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let old = root.join("logs/deep/old.log");
        fs::write(&old, vec![b'x'; 1234]).unwrap();
        age(&old, 10);
        let new = root.join("logs/new.log");
        fs::write(&new, b"keep").unwrap();
        let git_log = root.join(".git/old.log");
        fs::write(&git_log, b"keep").unwrap();
        age(&git_log, 10);
        let victim = outside.join("old.log");
        fs::write(&victim, b"never").unwrap();
        age(&victim, 10);
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let rule = week_old(&root, "*.log", false);
        let s = cleanup(&rule, SystemTime::now()).unwrap();
        assert_eq!(
            s,
            CleanupStats {
                files: 1,
                dirs: 0,
                bytes: 1234
            }
        );
        assert!(!old.exists() && new.exists() && git_log.exists() && victim.exists());
    }

    /// A racer keeps exchanging a directory of the root with a symlink to a
    /// directory outside it full of old files (`renameat2 RENAME_EXCHANGE`)
    /// while real clean-ups run: not one outside file may go. The directory
    /// in the root holds old files of the same names (refilled before each
    /// run), so a walk that resolves `root/sub/<name>` again for each
    /// removal has 300 chances a run to land outside. (The walk by path
    /// deleted outside files in most runs of this test.)
    #[test]
    fn a_directory_swapped_for_a_symlink_mid_walk_never_leads_outside() {
        use rustix::fs::{RenameFlags, renameat_with};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Barrier};

        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let sub = root.join("sub");
        let outside = tmp.path().join("outside");
        let link = tmp.path().join("link");
        fs::create_dir_all(&sub).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let names: Vec<String> = (0..300).map(|i| format!("victim-{i}.log")).collect();
        // The directory itself, wherever the racer moves it.
        let inside = open_dir(CWD, &sub).unwrap();
        let refill = || {
            for name in &names {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW;
                let fd =
                    rustix::fs::openat(&inside, name.as_str(), flags, Mode::from(0o644)).unwrap();
                let f = fs::File::from(fd);
                f.set_modified(SystemTime::now() - Duration::from_secs(30 * 86_400))
                    .unwrap();
            }
        };
        let victims: Vec<PathBuf> = names
            .iter()
            .map(|name| {
                let p = outside.join(name);
                fs::write(&p, b"must survive").unwrap();
                age(&p, 30);
                p
            })
            .collect();
        let rule = week_old(&root, "*.log", false);

        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let started = Arc::new(Barrier::new(2));
        let racer = {
            let (stop, swaps, started) = (stop.clone(), swaps.clone(), started.clone());
            let (sub, link) = (sub.clone(), link.clone());
            std::thread::spawn(move || {
                started.wait();
                // Bounded: a million exchanges at most, or until told.
                for _ in 0..1_000_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    renameat_with(CWD, &sub, CWD, &link, RenameFlags::EXCHANGE).unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        started.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut runs = 0;
        // Bounded: 50 clean-ups or 5 s, stopping at the first loss.
        while runs < 50 && std::time::Instant::now() < deadline {
            refill();
            let _ = cleanup(&rule, SystemTime::now());
            runs += 1;
            if victims.iter().any(|v| !v.exists()) {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        racer.join().unwrap();
        let lost = victims.iter().filter(|v| !v.exists()).count();
        assert!(swaps.load(Ordering::Relaxed) > 0, "the racer never ran");
        assert_eq!(
            lost,
            0,
            "{lost} of 300 files outside the root deleted in {runs} clean-up(s) racing {} swaps",
            swaps.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn directories_are_removed_whole_with_their_bytes_and_links_only_unlinked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("a/__pycache__/deep")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let keep = outside.join("keep.pyc");
        fs::write(&keep, b"outside").unwrap();
        fs::write(root.join("a/__pycache__/x.pyc"), vec![b'x'; 100]).unwrap();
        fs::write(root.join("a/__pycache__/deep/y.pyc"), vec![b'y'; 23]).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/__pycache__/out")).unwrap();
        let cache = root.join("a/__pycache__");
        fs::File::open(&cache)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(10 * 86_400))
            .unwrap();
        let rule = week_old(&root, "__pycache__", true);
        let s = cleanup(&rule, SystemTime::now()).unwrap();
        assert_eq!(
            s,
            CleanupStats {
                files: 0,
                dirs: 1,
                bytes: 123
            }
        );
        assert!(!cache.exists() && root.join("a").is_dir() && keep.exists());
    }

    #[test]
    fn symlinked_root_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let rule = CleanupRule {
            root: link,
            pattern: "*".into(),
            older_than: Duration::ZERO,
            directories: false,
        };
        assert!(
            matches!(
                cleanup(&rule, SystemTime::now()),
                Err(CleanupError::NotADirectory { .. })
            ) && cleanup(&rule, SystemTime::now())
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }

    /// Attempts stamped by a clock that was ahead (or before the clock was
    /// set back) hold the budget for one window from now, not for the
    /// whole jump.
    #[tokio::test]
    async fn a_clock_set_back_holds_the_restart_budget_one_window_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000.0;
        let mut st = RecoveryState::default();
        st.attempts.insert("gw".into(), vec![now + 86_400.0]);
        st.save(dir.path()).unwrap();
        let spec = RecoverySpec {
            check: "gw".into(),
            on: vec![Status::Critical],
            restart: vec!["true".into()],
            timeout: std::time::Duration::from_secs(5),
            max_attempts: 1,
            window: std::time::Duration::from_secs(3600),
            cleanup: Vec::new(),
        };
        let failing = [Verdict {
            name: "gw".into(),
            kind: "tcp".into(),
            status: Status::Critical,
            summary: "down".into(),
            details: Default::default(),
            latency: std::time::Duration::from_millis(1),
            checked_at: now,
        }];
        let spec = [spec];
        let (r, _) = recover(&spec, &failing, dir.path(), now, false).await;
        assert!(!r[0].ok, "the budget holds inside the window: {r:?}");
        let (r, _) = recover(&spec, &failing, dir.path(), now + 3601.0, false).await;
        assert!(r[0].ok, "one window later it runs again: {r:?}");
        assert_eq!(r[0].action, "restart");
    }
}
