//! Reading `/proc/<pid>`: the `stat` line, the command line, the
//! environment and the list of PIDs, every read capped. `root` is `/proc`,
//! or a directory laid out like it (tests).

use std::fmt;
use std::io;
use std::path::Path;

use crate::fs::read_capped;

/// Longest `/proc/<pid>/stat` read (a line of about 300 bytes).
pub const MAX_STAT_BYTES: u64 = 4096;
/// Longest command line or environment read.
pub const MAX_ARGS_BYTES: u64 = 128 * 1024;

/// The fields of `/proc/<pid>/stat` a supervisor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// PID.
    pub pid: u32,
    /// The kernel's short name (at most 15 bytes; may hold spaces and `)`).
    pub comm: String,
    /// The state letter (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, ...).
    pub state: char,
    /// Parent PID.
    pub ppid: u32,
    /// Start time after boot, in clock ticks (with the PID, a process's identity).
    pub start_ticks: u64,
}

impl Stat {
    /// Zombie or dead: not alive.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// A `stat` line that does not parse; `why` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatError {
    /// The first field that was missing or malformed.
    pub why: &'static str,
}

impl fmt::Display for StatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why)
    }
}

impl std::error::Error for StatError {}

/// Parses `/proc/<pid>/stat`: `pid (comm) S ppid ... starttime(22) ...`.
/// `comm` may hold spaces and parentheses, so it ends at the last `)`.
pub fn parse_stat(text: &str) -> Result<Stat, StatError> {
    let err = |why| StatError { why };
    let open = text.find('(').ok_or(err("no `(` before comm"))?;
    let close = text.rfind(')').ok_or(err("no `)` after comm"))?;
    if close < open {
        return Err(err("malformed comm"));
    }
    let pid = text[..open]
        .trim()
        .parse::<u32>()
        .map_err(|_| err("bad pid field"))?;
    let comm = text[open + 1..close].to_string();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest
        .next()
        .and_then(|s| s.chars().next())
        .ok_or(err("no state field"))?;
    let ppid = rest
        .next()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or(err("bad ppid field"))?;
    let start_ticks = rest
        .nth(17)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(err("bad starttime field"))?;
    Ok(Stat {
        pid,
        comm,
        state,
        ppid,
        start_ticks,
    })
}

/// Whether a read error means the process went away between listing and
/// reading (`ENOENT`, `ESRCH`): not an error.
pub fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3)
}

/// The raw `stat` line of `pid` under `root`.
pub fn read_stat_text(root: &Path, pid: u32) -> io::Result<Vec<u8>> {
    read_capped(&root.join(pid.to_string()).join("stat"), MAX_STAT_BYTES)
}

/// `pid`'s command line, one string per argument (empty for kernel
/// threads and zombies).
pub fn read_cmdline(root: &Path, pid: u32) -> io::Result<Vec<String>> {
    let raw = read_capped(&root.join(pid.to_string()).join("cmdline"), MAX_ARGS_BYTES)?;
    Ok(raw
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect())
}

/// `pid`'s environment as `KEY=value` byte strings (readable only for our
/// own processes; empty for zombies).
pub fn read_environ(root: &Path, pid: u32) -> io::Result<Vec<Vec<u8>>> {
    let raw = read_capped(&root.join(pid.to_string()).join("environ"), MAX_ARGS_BYTES)?;
    Ok(raw
        .split(|&c| c == 0)
        .filter(|kv| !kv.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The PIDs listed under `root`, ascending.
pub fn pids(root: &Path) -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = std::fs::read_dir(root)?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// `pid` is this process or one of its ancestors (init included), read
/// from the `ppid` chain under `root` (at most 256 steps; a link that
/// cannot be read ends the walk). A child that outlives its parent is
/// reparented to one of these (the nearest subreaper, else init), so a
/// PID a writer took for "my parent" and that names one of them names no
/// agent.
pub fn is_self_or_ancestor(root: &Path, pid: u32) -> bool {
    let mut at = std::process::id();
    for _ in 0..256 {
        if at == pid {
            return true;
        }
        if at <= 1 {
            return false;
        }
        let Some(stat) = read_stat_text(root, at)
            .ok()
            .and_then(|t| parse_stat(&String::from_utf8_lossy(&t)).ok())
        else {
            return false;
        };
        at = stat.ppid;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_hostile_comm() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid, s.start_ticks),
            (42, "a) b (c)", 'S', 7, 98765)
        );
        assert!(!s.is_dead());
        for (bad, why) in [
            ("", "no `(` before comm"),
            ("1 (x", "no `)` after comm"),
            ("x (y) S 1", "bad pid field"),
            ("1 (y)", "no state field"),
            ("1 (y) S x", "bad ppid field"),
            ("1 (y) S 1 2 3", "bad starttime field"),
        ] {
            assert_eq!(parse_stat(bad).unwrap_err().why, why, "{bad:?}");
        }
    }

    #[test]
    fn stat_with_hostile_comm() {
        let line =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid, s.start_ticks),
            (4242, "a) b (c)", 'S', 1, 987654)
        );
        assert!(parse_stat("garbage").is_err());
        assert!(parse_stat("1 (x) S").is_err());
    }

    #[test]
    fn reads_this_process() {
        let root = Path::new("/proc");
        if !root.join("self").exists() {
            return;
        }
        let me = std::process::id();
        let stat = read_stat_text(root, me).unwrap();
        let s = parse_stat(&String::from_utf8_lossy(&stat)).unwrap();
        assert_eq!(s.pid, me);
        assert!(!read_cmdline(root, me).unwrap().is_empty());
        assert!(read_environ(root, me).is_ok());
        assert!(pids(root).unwrap().contains(&me));
        let gone = read_stat_text(root, u32::MAX).unwrap_err();
        assert!(vanished(&gone), "{gone}");
    }

    #[test]
    fn this_process_its_parent_and_init_are_ancestors_a_child_is_not() {
        let proc = Path::new("/proc");
        assert!(is_self_or_ancestor(proc, std::process::id()));
        assert!(is_self_or_ancestor(
            proc,
            std::os::unix::process::parent_id()
        ));
        assert!(is_self_or_ancestor(proc, 1));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let ancestor = is_self_or_ancestor(proc, child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!ancestor);
        assert!(!is_self_or_ancestor(Path::new("/nonexistent-proc"), 1));
    }
}
