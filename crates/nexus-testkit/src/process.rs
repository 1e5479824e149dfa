//! Real processes with unique names, for process-probe tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rustix::process::{Pid, Signal, kill_process};

/// A `sleep` running under a unique program name (a symlink to `sleep`).
/// Killed (and reaped, when it is our child) on drop.
#[derive(Debug)]
pub struct Sleeper {
    /// The unique name (the basename of `argv[0]`).
    pub name: String,
    pub pid: u32,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

fn sleep_binary() -> PathBuf {
    for p in ["/bin/sleep", "/usr/bin/sleep"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("no sleep binary in /bin or /usr/bin");
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn link(prefix: &str) -> (tempfile::TempDir, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let name = unique(prefix);
    let path = dir.path().join(&name);
    std::os::unix::fs::symlink(sleep_binary(), &path).unwrap();
    (dir, name, path)
}

impl Sleeper {
    /// A child of the test process.
    pub fn child(prefix: &str) -> Sleeper {
        let (dir, name, path) = link(prefix);
        let child = Command::new(&path)
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Sleeper {
            name,
            pid: child.id(),
            child: Some(child),
            _dir: dir,
        }
    }

    /// A detached process (its parent shell exits, so it is not our descendant).
    pub fn detached(prefix: &str) -> Sleeper {
        let (dir, name, path) = link(prefix);
        let out = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" 300 </dev/null >/dev/null 2>&1 & echo $!"#)
            .arg(&path)
            .output()
            .unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        Sleeper {
            name,
            pid,
            child: None,
            _dir: dir,
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) {
        kill_process(Pid::from_raw(self.pid as i32).unwrap(), sig).unwrap();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = kill_process(pid, Signal::KILL);
        }
        if let Some(c) = &mut self.child {
            let _ = c.wait();
        }
    }
}

/// Resets this process's peak resident set size (`VmHWM`), so that
/// [`peak_rss`] measures from now (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("cannot reset VmHWM");
}

/// This process's peak resident set size in bytes (`VmHWM`) since it
/// started or since [`reset_peak_rss`]. Each nextest test is a process of
/// its own, so this is the test's peak.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmHWM in /proc/self/status");
    kb * 1024
}
