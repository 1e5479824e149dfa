//! Process probe: one `/proc` scan per sweep ([`ProcTable`]), matched by argv
//! word, by substring (like `pgrep -f`), by PID file or by PID.
//!
//! The prober never matches itself, its ancestors (the shell or cron that
//! started it) or, by default, its own children (e.g. the syntax-check
//! interpreter whose argv names the agent's script). A zombie is dead. A
//! stopped (`SIGSTOP`) process is alive but not running: Warning. When the scan
//! cannot see everything (unreadable entries), "no match" is Unknown, never a
//! confident Critical and never Ok.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nexus_stdx::{proc, read_capped};
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::error::SpecError;

/// How a pattern is matched against a command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// The pattern is a word of the program name, or of the script/module an
    /// interpreter runs (`python3 /x/nexus_think.py`, `python -m nexus.nexus_think`).
    /// `vim nexus_think.py` and `tail -f nexus_think.log` do not match.
    #[default]
    Argv,
    /// The pattern is a substring of the whole command line (`pgrep -f`).
    Substring,
}

/// `process = { pattern = "nexus_think" }`, or `{ pidfile = "..." }`, or `{ pid = 123 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Word (or substring, per `match`) to find in a command line, e.g. `nexus_think`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// How `pattern` is matched (default `argv`).
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// File holding one decimal PID (`~` expanded).
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
    /// PID to check directly (not 0).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Ignore the prober's own descendants (default true). A supervisor that
    /// launches the agents itself (the resurrection pool) sets this to false.
    #[serde(default = "yes")]
    pub exclude_children: bool,
}

fn yes() -> bool {
    true
}

impl ProcessSpec {
    /// Match `pattern` as an argv word.
    pub fn pattern(pattern: impl Into<String>) -> ProcessSpec {
        ProcessSpec {
            pattern: Some(pattern.into()),
            match_mode: MatchMode::Argv,
            pidfile: None,
            pid: None,
            exclude_children: true,
        }
    }

    /// Check one PID.
    pub fn pid(pid: u32) -> ProcessSpec {
        ProcessSpec {
            pattern: None,
            pid: Some(pid),
            ..ProcessSpec::pattern("")
        }
    }

    /// Sets the match mode.
    pub fn mode(mut self, mode: MatchMode) -> ProcessSpec {
        self.match_mode = mode;
        self
    }

    /// Sets whether the prober's descendants are ignored.
    pub fn exclude_children(mut self, yes: bool) -> ProcessSpec {
        self.exclude_children = yes;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        let n = [
            self.pattern.is_some(),
            self.pidfile.is_some(),
            self.pid.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(SpecError::ExactlyOne {
                fields: &["pattern", "pidfile", "pid"],
            });
        }
        if self.pattern.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(SpecError::field("pattern", "is empty"));
        }
        if self.pid == Some(0) {
            return Err(SpecError::field("pid", "0 is not a process"));
        }
        Ok(())
    }
}

/// An error scanning `/proc` as a whole.
#[derive(Debug, thiserror::Error)]
#[error("cannot scan processes in {}: {source}", path.display())]
pub struct ProcError {
    /// Proc root as configured (`/proc` unless a test overrides it).
    pub path: PathBuf,
    /// The I/O error.
    pub source: io::Error,
}

/// One process from `/proc/<pid>/{stat,cmdline}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcEntry {
    /// PID.
    pub pid: u32,
    /// Parent PID.
    pub ppid: u32,
    /// The state letter (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, ...).
    pub state: char,
    /// The kernel's short name (15 bytes).
    pub comm: String,
    /// The command line (empty for kernel threads and zombies).
    #[serde(skip)]
    pub argv: Vec<String>,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
}

impl ProcEntry {
    /// Zombie or dead: not alive.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Stopped by a signal or a tracer.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }
}

/// A snapshot of the process table, taken once per sweep.
#[derive(Debug, Clone)]
pub struct ProcTable {
    root: PathBuf,
    entries: Vec<ProcEntry>,
    /// Entries that exist but could not be read (`<path>: <error>`).
    unreadable: Vec<String>,
    self_pid: u32,
    /// Why the root is not a readable procfs mount, when it is not: then
    /// no absence is proven (an empty directory lists no process).
    not_procfs: Option<String>,
    uptime: Option<f64>,
    ticks_per_second: u64,
    /// Per entry, the strings the argv rule matches a pattern against
    /// (see [`argv_targets`]), worked out once per table: a pool probes
    /// 1,000 patterns against the same table.
    targets: std::sync::OnceLock<Vec<Vec<String>>>,
    /// Per entry, whether a match is excluded: the prober and its
    /// ancestors (`.0`), and also its descendants (`.1`). Worked out once per
    /// table, not once per pattern.
    excluded: (
        std::sync::OnceLock<Vec<bool>>,
        std::sync::OnceLock<Vec<bool>>,
    ),
}

/// Why `root` is not a procfs mount (`statfs` type `PROC_SUPER_MAGIC`),
/// or `None` when it is. Only procfs can prove that no process matches:
/// an empty directory, a tmpfs or a bind mount of one lists none, and an
/// empty directory cannot fake a filesystem type (docs/SPEC.md §2.3 item 2).
pub fn not_procfs(root: &Path) -> Option<String> {
    match rustix::fs::statfs(root) {
        Ok(st) if st.f_type == rustix::fs::PROC_SUPER_MAGIC => None,
        Ok(st) => Some(format!(
            "{} is not a procfs mount (filesystem type {:#x})",
            root.display(),
            st.f_type
        )),
        Err(e) => Some(format!("{}: statfs: {e}", root.display())),
    }
}

/// Reads one process; `Ok(None)` when it has exited meanwhile.
fn read_entry(root: &Path, pid: u32) -> Result<Option<ProcEntry>, String> {
    let path = |file: &str| root.join(pid.to_string()).join(file).display().to_string();
    let stat = match proc::read_stat_text(root, pid) {
        Ok(b) => b,
        Err(e) if proc::vanished(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path("stat"))),
    };
    let stat = proc::parse_stat(&String::from_utf8_lossy(&stat))
        .map_err(|why| format!("cannot parse {}: {why}", path("stat")))?;
    let argv = match proc::read_cmdline(root, pid) {
        Ok(argv) => argv,
        Err(e) if proc::vanished(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path("cmdline"))),
    };
    Ok(Some(ProcEntry {
        pid,
        ppid: stat.ppid,
        state: stat.state,
        comm: stat.comm,
        argv,
        start_ticks: stat.start_ticks,
    }))
}

impl ProcTable {
    /// Scans the real `/proc`.
    pub fn scan() -> Result<ProcTable, ProcError> {
        ProcTable::scan_at(Path::new("/proc"), std::process::id())
    }

    /// Scans a directory laid out like `/proc`, as process `self_pid`.
    pub fn scan_at(root: &Path, self_pid: u32) -> Result<ProcTable, ProcError> {
        let err = |source| ProcError {
            path: root.to_path_buf(),
            source,
        };
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for dent in fs::read_dir(root).map_err(err)? {
            let dent = dent.map_err(err)?;
            let Some(pid) = dent
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            match read_entry(root, pid) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => {}
                Err(why) => unreadable.push(why),
            }
        }
        entries.sort_by_key(|e| e.pid);
        let uptime = read_capped(&root.join("uptime"), 256).ok().and_then(|b| {
            String::from_utf8_lossy(&b)
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<f64>().ok())
        });
        Ok(ProcTable {
            root: root.to_path_buf(),
            entries,
            unreadable,
            self_pid,
            not_procfs: not_procfs(root),
            uptime,
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            targets: std::sync::OnceLock::new(),
            excluded: Default::default(),
        })
    }

    /// Why the scanned directory cannot prove that a process is absent
    /// (it is not a procfs mount), or `None` when it can.
    pub fn not_procfs(&self) -> Option<&str> {
        self.not_procfs.as_deref()
    }

    /// The directory that was scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All processes read, by PID.
    pub fn entries(&self) -> &[ProcEntry] {
        &self.entries
    }

    /// Entries that could not be read (`<path>: <error>`).
    pub fn unreadable(&self) -> &[String] {
        &self.unreadable
    }

    /// One process.
    pub fn get(&self, pid: u32) -> Option<&ProcEntry> {
        self.entries
            .binary_search_by_key(&pid, |e| e.pid)
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Seconds since the process started, when `/proc/uptime` was readable.
    pub fn age_seconds(&self, e: &ProcEntry) -> Option<f64> {
        let up = self.uptime?;
        Some((up - e.start_ticks as f64 / self.ticks_per_second as f64).max(0.0))
    }

    /// The prober itself and its ancestors (always excluded from matches).
    fn self_and_ancestors(&self) -> HashSet<u32> {
        let mut out = HashSet::from([self.self_pid]);
        let mut pid = self.self_pid;
        while let Some(e) = self.get(pid) {
            if e.ppid == 0 || !out.insert(e.ppid) {
                break;
            }
            pid = e.ppid;
        }
        out
    }

    fn descendants(&self) -> HashSet<u32> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for e in &self.entries {
            children.entry(e.ppid).or_default().push(e.pid);
        }
        let mut out = HashSet::new();
        let mut stack = vec![self.self_pid];
        while let Some(p) = stack.pop() {
            for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
                if out.insert(c) {
                    stack.push(c);
                }
            }
        }
        out
    }

    /// Processes matching `pattern`, minus self, ancestors and (optionally)
    /// descendants. Zombies are included (callers treat them as dead).
    pub fn find(&self, pattern: &str, mode: MatchMode, exclude_children: bool) -> Vec<&ProcEntry> {
        let excluded = if exclude_children {
            self.excluded.1.get_or_init(|| {
                let mut out = self.self_and_ancestors();
                out.extend(self.descendants());
                self.entries.iter().map(|e| out.contains(&e.pid)).collect()
            })
        } else {
            self.excluded.0.get_or_init(|| {
                let out = self.self_and_ancestors();
                self.entries.iter().map(|e| out.contains(&e.pid)).collect()
            })
        };
        let targets = self.targets.get_or_init(|| {
            self.entries
                .iter()
                .map(|e| {
                    argv_targets(argv_or_comm(e))
                        .into_iter()
                        .map(str::to_owned)
                        .collect()
                })
                .collect()
        });
        self.entries
            .iter()
            .zip(targets)
            .zip(excluded)
            .filter(|(_, excluded)| !**excluded)
            .map(|(both, _)| both)
            .filter(|(e, targets)| match mode {
                MatchMode::Substring => argv_or_comm(e).join(" ").contains(pattern),
                MatchMode::Argv => targets.iter().any(|t| contains_word(t, pattern)),
            })
            .map(|(e, _)| e)
            .collect()
    }
}

/// The command line, or the kernel's name for a process without one.
fn argv_or_comm(e: &ProcEntry) -> &[String] {
    if e.argv.is_empty() {
        std::slice::from_ref(&e.comm)
    } else {
        &e.argv
    }
}

/// Shells, interpreters and runners whose *argument* is the real program.
fn is_interpreter(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(
        stem,
        "python"
            | "pypy"
            | "node"
            | "nodejs"
            | "deno"
            | "bun"
            | "ruby"
            | "perl"
            | "php"
            | "java"
            | "sh"
            | "bash"
            | "dash"
            | "zsh"
            | "uv"
            | "env"
            | "nohup"
            | "setsid"
            | "exec"
    ) || stem.starts_with("python")
}

/// `pattern` occurs in `hay` delimited by non-word characters (word characters
/// are ASCII alphanumerics, `_` and `-`).
pub(crate) fn contains_word(hay: &str, pattern: &str) -> bool {
    // Most candidates are short names: rejected before building a searcher.
    if pattern.is_empty() || hay.len() < pattern.len() {
        return false;
    }
    // Byte by byte: the haystacks are file names and module paths, too short
    // to pay for building a substring searcher per pattern (a pool matches
    // 1,000 patterns against every process). Word characters are ASCII, and
    // a match of valid UTF-8 starts and ends on character boundaries, so a
    // neighbouring byte that is not ASCII is not a word character.
    let (h, p) = (hay.as_bytes(), pattern.as_bytes());
    let word =
        |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    (0..=h.len() - p.len()).any(|i| {
        h[i] == p[0]
            && &h[i..i + p.len()] == p
            && !word(i.checked_sub(1).and_then(|j| h.get(j)))
            && !word(h.get(i + p.len()))
    })
}

/// The argv rule: the pattern is a word of the program's file name, or, when
/// the program is an interpreter, of the script or `-m` module it runs.
#[cfg(test)]
pub(crate) fn argv_matches(argv: &[String], pattern: &str) -> bool {
    argv_targets(argv).iter().any(|t| contains_word(t, pattern))
}

/// What the argv rule matches a pattern against: the program's file name,
/// then, through interpreter chains (`env python3 -u x.py`,
/// `nohup python -m pkg.mod`), each script or `-m` module run. Inline code
/// (`-c`, `-e`) ends the chain: its arguments are data, not the program.
pub(crate) fn argv_targets(argv: &[String]) -> Vec<&str> {
    let Some(program) = argv.first() else {
        return Vec::new();
    };
    let mut out = vec![program.rsplit('/').next().unwrap_or(program)];
    let mut i = 0;
    while i < argv.len() && is_interpreter(&argv[i]) {
        let mut j = i + 1;
        while j < argv.len() {
            let a = argv[j].as_str();
            if a == "-m" {
                out.extend(argv.get(j + 1).map(String::as_str));
                return out;
            }
            if a == "-c" || a == "-e" {
                return out;
            }
            if a.starts_with('-') || (argv[i].ends_with("env") && a.contains('=')) {
                j += 1;
                continue;
            }
            break;
        }
        let Some(target) = argv.get(j) else {
            return out;
        };
        out.push(target);
        i = j;
    }
    out
}

/// What `/proc/<pid>` says about one PID (PID file and PID modes).
/// `prefix` names the PID file the PID came from (empty for a configured PID).
fn check_pid(root: &Path, pid: u32, table: Option<&ProcTable>, prefix: &str) -> Outcome {
    let entry = match read_entry(root, pid) {
        Ok(Some(e)) => e,
        Ok(None) => {
            let why = match table {
                Some(t) => t.not_procfs().map(str::to_string),
                None => not_procfs(root),
            };
            return match why {
                Some(why) => {
                    Outcome::unknown(format!("{prefix}cannot tell whether PID {pid} runs: {why}"))
                }
                None => Outcome::critical(format!("{prefix}PID {pid} is not running")),
            }
            .with("pid", pid);
        }
        Err(why) => {
            return Outcome::unknown(format!("{prefix}cannot inspect PID {pid}: {why}"))
                .with("pid", pid);
        }
    };
    let age = table.and_then(|t| t.age_seconds(&entry));
    let o = if entry.is_dead() {
        Outcome::critical(format!(
            "{prefix}PID {pid} is a zombie (dead, state {})",
            entry.state
        ))
    } else if entry.is_stopped() {
        Outcome::warning(format!(
            "{prefix}PID {pid} is stopped (state {})",
            entry.state
        ))
    } else {
        Outcome::ok(format!("Running (PID: {pid})"))
    };
    o.with("pid", pid)
        .with("pids", [pid])
        .with("state", entry.state.to_string())
        .with("comm", &entry.comm)
        .with("age_seconds", age.map(|a| crate::verdict::round(a, 1)))
}

/// A PID file that names no process, naming the file.
#[derive(Debug, thiserror::Error)]
enum PidFileError {
    #[error("PID file {} is missing", .0.display())]
    Missing(PathBuf),
    #[error("cannot read PID file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("PID file {} does not hold a PID: {text:?}", path.display())]
    NotAPid { path: PathBuf, text: String },
}

/// Reads a PID file: one decimal PID, surrounding whitespace allowed.
fn read_pidfile(path: &Path) -> Result<u32, PidFileError> {
    let bytes = match read_capped(path, 64) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PidFileError::Missing(path.to_path_buf()));
        }
        Err(source) => {
            return Err(PidFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| PidFileError::NotAPid {
            path: path.to_path_buf(),
            text: text.trim().to_string(),
        })
}

/// The running matches for a pattern spec, or the reason none can be trusted.
pub(crate) struct Found {
    /// Live (not zombie) matches: `(pid, age_seconds)`.
    pub(crate) live: Vec<(u32, Option<f64>)>,
    pub(crate) outcome: Outcome,
}

/// Evaluates a pattern spec against a table.
pub(crate) fn evaluate_pattern(spec: &ProcessSpec, pattern: &str, table: &ProcTable) -> Found {
    let matches = table.find(pattern, spec.match_mode, spec.exclude_children);
    let (dead, alive): (Vec<&ProcEntry>, Vec<&ProcEntry>) =
        matches.into_iter().partition(|e| e.is_dead());
    let live: Vec<(u32, Option<f64>)> = alive
        .iter()
        .map(|e| (e.pid, table.age_seconds(e)))
        .collect();
    let procs: Vec<serde_json::Value> = alive
        .iter()
        .map(|e| {
            serde_json::json!({
                "pid": e.pid,
                "state": e.state.to_string(),
                "comm": e.comm,
                "age_seconds": table.age_seconds(e).map(|a| crate::verdict::round(a, 1)),
            })
        })
        .collect();
    let pids: Vec<u32> = alive.iter().map(|e| e.pid).collect();
    let zombies: Vec<u32> = dead.iter().map(|e| e.pid).collect();
    let list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let outcome = if alive.is_empty() {
        if !table.unreadable().is_empty() {
            Outcome::unknown(format!(
                "No readable process matching '{pattern}', but {} /proc entries could not be read (first: {})",
                table.unreadable().len(),
                table.unreadable()[0]
            ))
            .with("unreadable", table.unreadable().iter().take(10).collect::<Vec<_>>())
        } else if let Some(why) = table.not_procfs() {
            Outcome::unknown(format!(
                "Cannot tell whether a process matches '{pattern}': {why}"
            ))
        } else {
            let zombie_note = if zombies.is_empty() {
                String::new()
            } else {
                format!(" (zombies only: {zombies:?})")
            };
            Outcome::critical(format!("No process matching '{pattern}'{zombie_note}"))
        }
    } else if alive.iter().all(|e| e.is_stopped()) {
        Outcome::warning(format!(
            "Stopped, not running (PID: {list}): '{pattern}' was sent SIGSTOP or is traced"
        ))
    } else {
        Outcome::ok(format!("Running (PID: {list})"))
    };
    let youngest = live.iter().filter_map(|(_, a)| *a).reduce(f64::min);
    Found {
        outcome: outcome
            .with("pids", &pids)
            .with("processes", procs)
            .with("zombies", &zombies)
            .with(
                "youngest_age_seconds",
                youngest.map(|a| crate::verdict::round(a, 1)),
            ),
        live,
    }
}

/// `procs` gives the sweep's process table (scanned once per sweep, only
/// once a valid spec asks for it); `proc_root` is where it was read.
pub(crate) async fn check<F, E>(
    spec: &ProcessSpec,
    proc_root: &Path,
    procs: impl FnOnce() -> F,
) -> Outcome
where
    F: Future<Output = Arc<Result<ProcTable, E>>>,
    E: std::fmt::Display,
{
    if let Err(why) = spec.validate() {
        return Outcome::unknown(format!("process probe misconfigured: {why}"));
    }
    let table = procs().await;
    match (&spec.pattern, &spec.pidfile, spec.pid) {
        (Some(pattern), _, _) => match table.as_ref() {
            Ok(t) => evaluate_pattern(spec, pattern, t).outcome,
            Err(e) => Outcome::unknown(format!("Process probe failed: {e}")),
        },
        (_, Some(file), _) => {
            let file = nexus_stdx::expand_home(file);
            match read_pidfile(&file) {
                Ok(pid) => check_pid(
                    proc_root,
                    pid,
                    table.as_ref().as_ref().ok(),
                    &format!("PID file {}: ", file.display()),
                ),
                Err(why) => Outcome::critical(why.to_string()),
            }
        }
        (_, _, Some(pid)) => check_pid(proc_root, pid, table.as_ref().as_ref().ok(), ""),
        _ => Outcome::unknown("process probe misconfigured"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn argv_rule_matches_programs_scripts_and_modules_only() {
        let yes = [
            "python3 /srv/nexus/nexus_think.py --model x",
            "python -m nexus.nexus_think --ws ws://localhost:8765",
            "/usr/bin/python3.11 -u nexus_think.py",
            "/opt/bin/nexus_think",
            "env PYTHONPATH=. python3 nexus_think.py",
            "nohup python3 -m nexus.nexus_think",
        ];
        let no = [
            "vim nexus_think.py",
            "tail -f nexus_think.log",
            "python3 -c import_ast /srv/nexus/nexus_think.py",
            "python3 other.py nexus_think",
            "python3 /srv/nexus_thinker.py",
            "grep nexus_think",
        ];
        for c in yes {
            assert!(argv_matches(&argv(c), "nexus_think"), "{c}");
        }
        for c in no {
            assert!(!argv_matches(&argv(c), "nexus_think"), "{c}");
        }
    }

    #[test]
    fn words() {
        assert!(contains_word("nexus.nexus_think", "nexus_think"));
        assert!(!contains_word("nexus_thinker", "nexus_think"));
        assert!(!contains_word("my-nexus_think", "nexus_think"));
        assert!(!contains_word("x", ""));
        assert!(contains_word("é nexus_think", "nexus_think"));
        // A neighbour that is not ASCII is not a word character.
        assert!(contains_word("nexus_thinké", "nexus_think"));
    }

    /// The rule as first written, on `char`s and a substring searcher.
    fn contains_word_by_chars(hay: &str, pattern: &str) -> bool {
        if pattern.is_empty() {
            return false;
        }
        let word =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        // Every occurrence, overlapping ones too (`match_indices` would skip
        // "éé" at byte 3 of "-ééé" after finding it at byte 1).
        (0..hay.len())
            .filter(|&i| hay.is_char_boundary(i) && hay[i..].starts_with(pattern))
            .any(|i| {
                !word(hay[..i].chars().next_back())
                    && !word(hay[i + pattern.len()..].chars().next())
            })
    }

    /// The case proptest found: the second, overlapping occurrence is the
    /// one that stands as a word.
    #[test]
    fn an_overlapping_occurrence_can_be_the_word() {
        assert!(contains_word("-ééé", "éé"));
        assert!(contains_word_by_chars("-ééé", "éé"));
        assert!(!contains_word("-éé", "éé"));
        assert!(contains_word("aa-b aab", "aab"));
    }

    proptest::proptest! {
        #[test]
        fn the_byte_wise_word_match_is_the_char_rule(
            hay in "[ab_.é/-]{0,12}",
            pattern in "[ab_é-]{0,3}",
        ) {
            proptest::prop_assert_eq!(
                contains_word(&hay, &pattern),
                contains_word_by_chars(&hay, &pattern),
                "{:?} in {:?}", pattern, hay
            );
        }
    }
}
