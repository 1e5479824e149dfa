//! `resurrection-pool demo` as a person meets it: the story is its only
//! output, the story and the pool's log (when asked for) say the same
//! numbers, and Ctrl-C or SIGTERM, mid-show or during `--linger`, leaves
//! no agent running and no directory behind. The signal tests drive the
//! demo through a pseudo-terminal (util-linux `script`), as a terminal
//! would: Ctrl-C is the byte 0x03 typed into it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use nexus_e2e::{Run, bin};

/// How long any awaited line or exit may take (an act is at most 45 s).
const PATIENCE: Duration = Duration::from_secs(90);
/// No test reads more lines than this.
const MAX_LINES: usize = 10_000;

/// A whole demo run to its end (`NEXUS_LOG` as given, else unset): its
/// stdout and stderr, once it exited 0 and left its TMPDIR empty.
fn run_demo(log: Option<&str>) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("resurrection-pool"));
    cmd.args(["demo", "--listen", "127.0.0.1:0"])
        .env_remove("NEXUS_LOG")
        .env("TMPDIR", tmp.path());
    if let Some(l) = log {
        cmd.env("NEXUS_LOG", l);
    }
    let o = cmd.run().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "the demo's directory is left"
    );
    (out, err)
}

#[test]
fn the_demo_detects_revives_and_escalates() {
    let (out, err) = run_demo(None);
    for needle in [
        "All three agents healthy",
        "allegro is back: revived and healthy (attempt ",
        "bezalel was stopped and is back: revived and healthy (attempt ",
        "ezra: escalated: pre-flight check failed",
    ] {
        assert!(
            out.contains(needle),
            "{needle:?} missing from the demo:\n{out}"
        );
    }
    // The story is the whole output: no log line repeats it.
    for level in [" INFO ", " WARN ", " ERROR ", " DEBUG "] {
        assert!(
            !err.contains(level),
            "a log line ({level}) without NEXUS_LOG:\n{err}"
        );
    }
}

/// With `NEXUS_LOG=info` the pool's log is there, and where the story gives
/// a number the log gives the same one, in the same words.
#[test]
fn the_story_and_the_log_agree() {
    let (out, err) = run_demo(Some("info"));
    assert!(
        err.contains(" INFO "),
        "NEXUS_LOG=info is respected:\n{err}"
    );
    let log = |agent: &str| -> Vec<&str> {
        err.lines()
            .filter(|l| l.contains(&format!("/{agent}] ")))
            .collect()
    };
    for agent in ["allegro", "bezalel"] {
        // "allegro is back: revived and healthy (attempt 1) after 0.8s down."
        let said = out
            .lines()
            .filter(|l| l.contains(&format!("{agent} ")))
            .find_map(|l| l.split_once("back: "))
            .map(|(_, r)| r.trim_end_matches('.'))
            .unwrap_or_else(|| panic!("no recovery of {agent} in the story:\n{out}"));
        assert!(
            said.starts_with("revived and healthy (attempt ") && said.ends_with("s down"),
            "{said:?}"
        );
        assert!(
            log(agent).iter().any(|l| l.ends_with(said)),
            "the story says {said:?} of {agent}, the log does not:\n{err}"
        );
        // The final table's revive attempts are the log's launches.
        let launches = log(agent)
            .iter()
            .filter(|l| l.contains("] revive attempt ") && l.contains(": started PID"))
            .count();
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(agent) && l.contains("revive attempts "))
            .unwrap_or_else(|| panic!("no final row for {agent}:\n{out}"));
        assert!(
            row.contains(&format!("revive attempts {launches} of ")),
            "{row:?} against {launches} launch(es) in the log:\n{err}"
        );
    }
    // ezra's revive is refused: no line says it is revived or reviving
    // after it died, and none blames a budget it did not spend.
    let ezra = log("ezra");
    let died = ezra
        .iter()
        .position(|l| l.contains("→ dead"))
        .unwrap_or_else(|| panic!("ezra never died in the log:\n{err}"));
    for l in &ezra[died..] {
        let revive =
            (l.contains("reviving") && !l.contains("not reviving")) || l.contains("revive attempt");
        assert!(!revive, "a revive logged that policy refused: {l}");
        assert!(!l.contains("budget spent"), "no budget was spent: {l}");
    }
    assert!(
        ezra[died..]
            .iter()
            .any(|l| l.contains(" ERROR ") && l.contains("pre-flight check failed")),
        "{err}"
    );
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("ezra") && l.contains("revive attempts "))
        .unwrap_or_else(|| panic!("no final row for ezra:\n{out}"));
    assert!(row.contains("revive attempts 0 of "), "{row}");
}

/// A demo running on a pseudo-terminal (`script`), its output read line by
/// line as it comes.
struct PtyDemo {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
}

impl PtyDemo {
    fn start(extra: &[&str]) -> PtyDemo {
        let tmp = tempfile::tempdir().unwrap();
        let pool = bin("resurrection-pool");
        let mut cmd = format!("exec '{}' demo --listen 127.0.0.1:0", pool.display());
        for a in extra {
            cmd.push(' ');
            cmd.push_str(a);
        }
        let mut child = Command::new("script")
            .args([
                "--quiet",
                "--return",
                "--flush",
                "--command",
                &cmd,
                "/dev/null",
            ])
            .env_remove("NEXUS_LOG")
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("util-linux `script` (scripts/setup.d/00-base.sh installs it)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            // Ends at EOF (the demo and `script` gone) or a read error.
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\n' {
                        let text = String::from_utf8_lossy(&line).trim_end().to_string();
                        line.clear();
                        if tx.send(text).is_err() {
                            return;
                        }
                    } else {
                        line.push(b);
                    }
                }
            }
            if !line.is_empty() {
                let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_string());
            }
        });
        PtyDemo {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            tmp: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    /// Reads lines until one contains `marker`; returns it.
    fn until(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while self.seen.len() < MAX_LINES {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(marker) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("{marker:?} never came:\n{}", self.seen.join("\n"));
    }

    /// The demo's directory and its PID (the directory is named after it).
    fn dir_and_pid(&mut self) -> (PathBuf, i32) {
        let line = self.until("Demo directory: ");
        let dir = line
            .split_once("Demo directory: ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .map(PathBuf::from)
            .unwrap();
        assert!(dir.starts_with(&self.tmp), "{dir:?} not in TMPDIR");
        let pid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("nexus-demo-"))
            .and_then(|p| p.parse().ok())
            .unwrap();
        (dir, pid)
    }

    /// `script`'s exit code (the demo's) and the rest of the output.
    fn exit(mut self) -> (Option<i32>, String) {
        // Output to its end (EOF: the channel closes), then the exit.
        let deadline = Instant::now() + PATIENCE;
        while self.seen.len() < MAX_LINES {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("the demo did not end:\n{}", self.seen.join("\n"));
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        drop(self.stdin);
        let status = self.child.wait().unwrap();
        (status.code(), self.seen.join("\n"))
    }
}

/// Live (not zombie) processes whose working directory or command line is
/// under `dir`, with their process groups.
fn processes_under(dir: &Path) -> Vec<(i32, i32)> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let ours = cwd.to_string_lossy().starts_with(&needle)
            || String::from_utf8_lossy(&cmdline).contains(&needle);
        if let (true, Some((state, pgid))) = (ours, stat(pid))
            && state != "Z"
        {
            found.push((pid, pgid));
        }
    }
    found
}

/// A process's state letter and process group, if it exists.
fn stat(pid: i32) -> Option<(String, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s.rsplit_once(')')?.1.split_whitespace();
    let state = f.next()?.to_string();
    let _ppid = f.next()?;
    let pgid = f.next()?.parse().ok()?;
    Some((state, pgid))
}

/// Live processes in any of `groups`.
fn alive_in(groups: &[i32]) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(st, g)| st != "Z" && groups.contains(&g)))
        .collect()
}

enum How {
    CtrlC,
    /// A signal sent to the demo's PID (SIGTERM from a supervisor,
    /// SIGHUP from a closed terminal).
    Signal(rustix::process::Signal),
}

/// Starts the demo on a terminal, with an operator's shell working in its
/// directory, waits for `marker`, stops it `how`, and checks: exit
/// `code`, no agent (no process of theirs, none in their process groups)
/// and no directory left, and the operator's shell untouched.
fn stopped(extra: &[&str], marker: &str, how: How, code: i32) {
    let mut demo = PtyDemo::start(extra);
    let (dir, pid) = demo.dir_and_pid();
    demo.until(marker);
    // A bystander: not the demo's, in a group of its own, `cd`'d into the
    // agents' mission cell as a curious operator's shell would be.
    let cell = std::fs::read_dir(dir.join("cells"))
        .unwrap()
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with('.') && e.path().is_dir())
        .expect("the demo's mission cell")
        .path();
    let mut bystander = Command::new("sh")
        .args(["-c", "exec sleep 600"])
        .current_dir(&cell)
        .process_group(0)
        .spawn()
        .unwrap();
    let bystander_pid = bystander.id() as i32;
    let running: Vec<(i32, i32)> = processes_under(&dir)
        .into_iter()
        .filter(|&(p, _)| p != bystander_pid)
        .collect();
    assert!(
        !running.is_empty(),
        "no agent found running under {}",
        dir.display()
    );
    let mut groups: Vec<i32> = running.iter().map(|&(_, g)| g).collect();
    groups.sort_unstable();
    groups.dedup();
    match how {
        How::CtrlC => {
            demo.stdin.write_all(b"\x03").unwrap();
            demo.stdin.flush().unwrap();
        }
        How::Signal(sig) => {
            let p = rustix::process::Pid::from_raw(pid).unwrap();
            rustix::process::kill_process(p, sig).unwrap();
        }
    }
    let (status, out) = demo.exit();
    let untouched = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        untouched,
        "the demo killed a process it did not start:\n{out}"
    );
    let left: Vec<(i32, i32)> = processes_under(&dir)
        .into_iter()
        .filter(|&(p, _)| p != bystander_pid)
        .collect();
    let in_groups = alive_in(&groups);
    if !in_groups.is_empty() {
        // A failed run leaves nothing running either.
        for &g in &groups {
            if let Some(g) = rustix::process::Pid::from_raw(g) {
                let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
            }
        }
    }
    assert_eq!(left, [], "agents left running:\n{out}");
    assert_eq!(in_groups, Vec::<i32>::new(), "their process groups");
    assert!(!dir.exists(), "{} left behind:\n{out}", dir.display());
    assert_eq!(status, Some(code), "{out}");
    assert!(out.contains("its agents are stopped"), "{out}");
}

/// Mid-show (act 2: bezalel is stopped with SIGSTOP when the signal
/// comes) and while lingering: the demo's flags and the line to await.
const WHEN: [(&[&str], &str); 2] = [
    (&[], "Act 2:"),
    (&["--linger", "120s"], "The fleet stays up"),
];

#[test]
fn ctrl_c_stops_the_agents_and_removes_the_directory() {
    for (extra, marker) in WHEN {
        stopped(extra, marker, How::CtrlC, 130);
    }
}

#[test]
fn sigterm_stops_the_agents_and_removes_the_directory() {
    for (extra, marker) in WHEN {
        stopped(
            extra,
            marker,
            How::Signal(rustix::process::Signal::TERM),
            143,
        );
    }
}

/// A closed terminal (mid-show only: the path is the same while lingering).
#[test]
fn sighup_stops_the_agents_and_removes_the_directory() {
    let (extra, marker) = WHEN[0];
    stopped(
        extra,
        marker,
        How::Signal(rustix::process::Signal::HUP),
        129,
    );
}
