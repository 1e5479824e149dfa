//! Crash safety of launches: a launch is persisted as an *intent* before the
//! process is spawned, and the process carries the intent's id in its
//! environment, so a pool killed at any point (`kill -9` between the spawn
//! and the state save included) finds its launches again on restart instead
//! of launching the agent a second time.
//!
//! The order in [`crate::Pool`]'s launch is: event `revive_attempt` appended,
//! the record (attempt already counted, state `reviving`) and the intent
//! appended to the launch journal (`<state file>.launches.jsonl`, one small
//! `write(2)`: a launch never rewrites the whole state file, which holds
//! the fleet), the process spawned with [`LAUNCH_ENV`] set. The journal is
//! replayed over the state file when it is loaded, and removed once a
//! state save has taken it in. A crash before the journal line re-runs the
//! attempt (one duplicate event line, one launch); a crash after it never
//! launches again within `revive_deadline`, and [`find_launched`] re-adopts
//! the process so its death and hang are seen. The journal is not fsynced:
//! the fault it covers is the pool's own death; a power cut also ends every
//! launched process, so there is nothing to launch twice.
//!
//! Also here: the test-only pause points ([`pause`]), so a fault test can
//! `kill -9` the pool at a named point instead of by timing luck.

use std::path::{Path, PathBuf};

use nexus_revive::AgentRecord;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The environment variable every launched agent carries: the id of the
/// launch intent that started it.
pub const LAUNCH_ENV: &str = "NEXUS_POOL_LAUNCH";

/// Test hook: `NEXUS_POOL_PAUSE=<point>[:<n>]` makes the pool stop for good
/// the `n`-th time (default 1st) it reaches `<point>` (`sweep-probed`,
/// `launch-saved`, `launch-spawned`), after appending the point's name to
/// the file named by [`PAUSE_FILE_ENV`]. Never set in production.
pub const PAUSE_ENV: &str = "NEXUS_POOL_PAUSE";
/// Where a pause point announces itself (one line per pause).
pub const PAUSE_FILE_ENV: &str = "NEXUS_POOL_PAUSE_FILE";

/// A launch the pool decided on, persisted before the spawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchIntent {
    /// Unique id, also in the launched process's environment.
    pub id: String,
    /// When it was decided (epoch seconds, the pool's clock).
    pub at: f64,
    /// Attempt number within the death episode.
    pub attempt: u32,
    /// The PID, once known (saved with the next state save).
    #[serde(default)]
    pub pid: Option<u32>,
}

impl LaunchIntent {
    /// A new intent; the id is unique per pool process and launch.
    pub fn new(key: &str, at: f64, attempt: u32) -> LaunchIntent {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        LaunchIntent {
            id: format!(
                "{}-{}-{}-{n}",
                nexus_alert::gitea::fingerprint("launch", key),
                std::process::id(),
                (at * 1000.0) as u64
            ),
            at,
            attempt,
            pid: None,
        }
    }
}

/// One launch journal line: the agent's record with the attempt counted,
/// and the intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Agent key: the gateway name or `<cell>/<agent>`.
    pub key: String,
    /// Intent as persisted before the spawn (id, time, attempt, PID once known).
    pub intent: LaunchIntent,
    /// The record as it stands once the launch is counted.
    pub record: AgentRecord,
}

/// The launch journal beside `state_file`.
pub fn journal_path(state_file: &Path) -> PathBuf {
    let mut name = state_file
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".launches.jsonl");
    state_file.with_file_name(name)
}

/// Appends `entry` to the journal (one `write(2)`, mode 0600, never
/// through a link).
pub fn journal_append(path: &Path, entry: &JournalEntry) -> Result<(), Error> {
    let io = |op: &'static str| {
        move |source: std::io::Error| Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut line =
        serde_json::to_vec(entry).map_err(|e| io("serialise")(std::io::Error::other(e)))?;
    line.push(b'\n');
    crate::files::append_own(path, &line).map_err(io("append to launch journal"))
}

/// The journal's entries in order; a missing file is empty, a bad line
/// (a torn last line after a power cut) is skipped with a warning.
pub fn journal_read(path: &Path) -> Vec<JournalEntry> {
    let text = match crate::files::read_own(path, crate::files::MAX_STATE_BYTES) {
        Ok(crate::files::Found::Bytes(b)) => b,
        Ok(crate::files::Found::Missing) => return Vec::new(),
        Ok(crate::files::Found::Bad(why)) => {
            tracing::error!("{}: ignored: {why}", path.display());
            return Vec::new();
        }
        Err(e) => {
            tracing::error!("{}: cannot read: {e}", path.display());
            return Vec::new();
        }
    };
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .filter_map(|(i, l)| match serde_json::from_slice(l) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("{} line {}: skipped: {e}", path.display(), i + 1);
                None
            }
        })
        .collect()
}

/// Whether process `pid` carries `LAUNCH_ENV=id` (so it is ours, not a
/// reused PID).
pub fn carries(pid: u32, id: &str) -> bool {
    environ_has(
        &Path::new("/proc").join(pid.to_string()).join("environ"),
        id,
    )
}

fn environ_has(path: &Path, id: &str) -> bool {
    let Ok(env) = nexus_stdx::read_capped(path, nexus_stdx::proc::MAX_ARGS_BYTES) else {
        return false;
    };
    let want = format!("{LAUNCH_ENV}={id}");
    env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
}

/// The live process started by `intent` (see [`find_all_launched`]).
pub fn find_launched(intent: &LaunchIntent) -> Option<u32> {
    find_all_launched([intent]).remove(&intent.id)
}

/// The live process of each intent, by intent id: its recorded PID if it
/// still carries the id, else the process in `/proc` that does (a crash
/// between spawn and save leaves no PID); one `/proc` scan for all of
/// them. Zombies carry no environment, so they are never found.
pub fn find_all_launched<'a>(
    intents: impl IntoIterator<Item = &'a LaunchIntent>,
) -> std::collections::HashMap<String, u32> {
    let mut found = std::collections::HashMap::new();
    let mut wanted = std::collections::HashSet::new();
    for i in intents {
        match i.pid {
            Some(pid) if carries(pid, &i.id) => {
                found.insert(i.id.clone(), pid);
            }
            _ => {
                wanted.insert(i.id.as_str().to_owned());
            }
        }
    }
    if wanted.is_empty() {
        return found;
    }
    // The launched process is the oldest (lowest PID, barring wrap-around)
    // of those that inherited the variable; its process group holds the rest.
    let proc_root = Path::new("/proc");
    let Ok(pids) = nexus_stdx::proc::pids(proc_root) else {
        return found;
    };
    let prefix = format!("{LAUNCH_ENV}=");
    for pid in pids {
        let Ok(env) = nexus_stdx::proc::read_environ(proc_root, pid) else {
            continue;
        };
        let id = env
            .iter()
            .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
            .and_then(|v| std::str::from_utf8(v).ok());
        if let Some(id) = id
            && wanted.remove(id)
        {
            found.insert(id.to_owned(), pid);
            if wanted.is_empty() {
                break;
            }
        }
    }
    found
}

/// The test-only pause point `point` (see [`PAUSE_ENV`]): returns at once
/// unless the variable names it; else announces it and never returns.
pub async fn pause(point: &str) {
    let Ok(spec) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let (name, nth) = match spec.split_once(':') {
        Some((n, k)) => (n, k.parse::<u64>().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if name != point {
        return;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    if SEEN.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    if let Some(file) = std::env::var_os(PAUSE_FILE_ENV) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
        {
            let _ = writeln!(f, "{point}");
        }
    }
    tracing::warn!("test pause point {point} reached: the pool stops here ({PAUSE_ENV})");
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn ids_are_unique_and_carried_by_children() {
        let a = LaunchIntent::new("cell/agent", 1000.5, 1);
        let b = LaunchIntent::new("cell/agent", 1000.5, 1);
        assert_ne!(a.id, b.id);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(LAUNCH_ENV, &a.id)
            .spawn()
            .unwrap();
        let pid = child.id();
        // The exec may still be setting up the new image: bounded wait.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !carries(pid, &a.id) {
            assert!(std::time::Instant::now() < deadline, "never saw the id");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!carries(pid, &b.id), "another intent's id");
        // Found by its PID, and by a /proc scan when the PID was never saved.
        let mut with_pid = a.clone();
        with_pid.pid = Some(pid);
        assert_eq!(find_launched(&with_pid), Some(pid));
        assert_eq!(find_launched(&a), Some(pid));
        // A PID that was reused by someone else is not ours.
        let mut wrong = b.clone();
        wrong.pid = Some(std::process::id());
        assert_eq!(find_launched(&wrong), None);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(find_launched(&with_pid), None, "gone once reaped");
    }

    #[test]
    fn the_journal_is_replayed_over_the_state_and_cleared_by_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("pool-state.json");
        let journal = journal_path(&state_file);
        assert_eq!(journal, dir.path().join("pool-state.json.launches.jsonl"));
        let mut old = crate::PoolState::default();
        old.records.insert("a", AgentRecord::default());
        std::fs::write(&state_file, serde_json::to_vec(&old).unwrap()).unwrap();
        let record = AgentRecord {
            state: nexus_revive::State::Reviving,
            attempts: vec![5.0],
            ..AgentRecord::default()
        };
        let intent = LaunchIntent::new("a", 5.0, 1);
        let entry = JournalEntry {
            key: "a".into(),
            intent: intent.clone(),
            record: record.clone(),
        };
        journal_append(&journal, &entry).unwrap();
        // A torn line (a power cut mid-append) is skipped, not fatal.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        f.write_all(b"{\"key\": \"b\", \"int").unwrap();
        drop(f);
        let st = crate::PoolState::load(&state_file).unwrap();
        assert_eq!(st.records["a"], record);
        assert_eq!(st.launched["a"], intent);
        assert!(!st.records.contains_key("b"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        st.save_for_tests(&state_file);
        assert!(!journal.exists(), "a save takes the journal in");
        let again = crate::PoolState::load(&state_file).unwrap();
        assert_eq!(again.records["a"], record);
    }

    #[test]
    fn an_unset_pause_point_returns() {
        // PAUSE_ENV is not set in unit tests.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(pause("sweep-probed"));
    }
}
