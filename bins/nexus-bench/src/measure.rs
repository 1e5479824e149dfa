//! Runs one child process and measures it: wall time by `Instant` around
//! the child, user+sys CPU and peak RSS by `/usr/bin/time` wrapping it (the
//! kernel's rusage of the whole reaped tree, so the `pgrep` processes the
//! seed pool spawns count too). Every child runs in its own process group
//! and is killed with it (SIGKILL) at the hard timeout.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

/// `/usr/bin/time` output format: user s, sys s, peak RSS KiB, exit status.
const TIME_FORMAT: &str = "%U %S %M %x";

/// How to run children: environment, hard timeout, measuring wrapper.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    /// `/usr/bin/time`, when present.
    pub(crate) time_bin: Option<PathBuf>,
    /// Hard limit per child.
    pub(crate) timeout: Duration,
    /// HOME of every child (keeps `~/.nexus` lookups in the temp dir).
    pub(crate) home: PathBuf,
}

/// Variables removed from every child's environment: no token, no config
/// from the caller's shell can reach a measured daemon.
const REMOVED_ENV: &[&str] = &[
    "GITEA_TOKEN",
    "GITEA_URL",
    "NEXUS_REPO",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "RESURRECTION_CONFIG",
    "PYTHONSTARTUP",
    "MISSION_CELLS_ROOT",
    "NEXUS_LOG",
    "NEXUS_PING_TOKEN",
];

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    pub(crate) wall_s: f64,
    pub(crate) user_s: Option<f64>,
    pub(crate) sys_s: Option<f64>,
    pub(crate) maxrss_kb: Option<u64>,
    /// Exit code (None when killed by a signal).
    pub(crate) rc: Option<i32>,
    pub(crate) timed_out: bool,
    /// CPU used by everything else on the machine during the run, in cores
    /// (2.0 = both cores busy elsewhere): a run above ~0.25 was disturbed.
    pub(crate) other_cores: Option<f64>,
    #[serde(skip)]
    pub(crate) stdout: PathBuf,
    #[serde(skip)]
    pub(crate) stderr: PathBuf,
}

impl Sample {
    pub(crate) fn cpu_s(&self) -> Option<f64> {
        Some(self.user_s? + self.sys_s?)
    }
}

/// `user sys maxrss exit` from the last line `/usr/bin/time -f` wrote
/// (a killed child gets a "Command terminated by signal" line before it).
pub(crate) fn parse_time_output(text: &str) -> Option<(f64, f64, u64, i32)> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut f = line.split_whitespace();
    let user = f.next()?.parse().ok()?;
    let sys = f.next()?.parse().ok()?;
    let rss = f.next()?.parse().ok()?;
    let rc = f.next()?.parse().ok()?;
    f.next().is_none().then_some((user, sys, rss, rc))
}

impl Runner {
    /// Runs `argv` in `cwd`; stdout and stderr go to `<base>.out` / `<base>.err`.
    pub(crate) fn run(&self, argv: &[OsString], cwd: &Path, base: &Path) -> anyhow::Result<Sample> {
        let (prog, args) = argv.split_first().context("empty command")?;
        let out_p = base.with_extension("out");
        let err_p = base.with_extension("err");
        let time_p = base.with_extension("time");
        let mut cmd = match &self.time_bin {
            Some(t) => {
                let mut c = Command::new(t);
                c.arg("-f")
                    .arg(TIME_FORMAT)
                    .arg("-o")
                    .arg(&time_p)
                    .arg(prog);
                c
            }
            None => Command::new(prog),
        };
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(File::create(&out_p).with_context(|| format!("{}", out_p.display()))?)
            .stderr(File::create(&err_p).with_context(|| format!("{}", err_p.display()))?);
        for k in REMOVED_ENV {
            cmd.env_remove(k);
        }
        cmd.env("HOME", &self.home)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("LC_ALL", "C.UTF-8");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

        let busy0 = host_busy_s();
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", Path::new(prog).display()))?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel::<(std::io::Result<ExitStatus>, Instant)>();
        let waiter = std::thread::spawn(move || {
            let st = child.wait();
            let _ = tx.send((st, Instant::now()));
        });
        let (status, end, timed_out) = match rx.recv_timeout(self.timeout) {
            Ok((st, end)) => (st, end, false),
            Err(_) => {
                // The group of the child we started (its PID is the PGID).
                if let Some(p) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                }
                let (st, end) = rx.recv().context("the waiter thread vanished")?;
                (st, end, true)
            }
        };
        let _ = waiter.join();
        let status = status.context("wait for the child")?;
        let mut s = Sample {
            wall_s: end.duration_since(t0).as_secs_f64(),
            user_s: None,
            sys_s: None,
            maxrss_kb: None,
            rc: status.code(),
            timed_out,
            other_cores: None,
            stdout: out_p,
            stderr: err_p,
        };
        if self.time_bin.is_some() && !timed_out {
            let text = std::fs::read_to_string(&time_p).unwrap_or_default();
            if let Some((u, sy, rss, rc)) = parse_time_output(&text) {
                s.user_s = Some(u);
                s.sys_s = Some(sy);
                s.maxrss_kb = Some(rss);
                s.rc = Some(rc);
            }
        }
        if let (Some(b0), Some(b1), Some(cpu)) = (busy0, host_busy_s(), s.cpu_s()) {
            // Both counters tick in 10 ms steps: allow two steps of slack.
            s.other_cores = Some(((b1 - b0 - cpu - 0.02) / s.wall_s).max(0.0));
        }
        Ok(s)
    }
}

/// Busy CPU seconds of the whole machine so far (all cores), from /proc/stat
/// (user nice system irq softirq steal, at USER_HZ = 100).
pub(crate) fn host_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum::<u64>();
    Some(busy as f64 / 100.0)
}

/// Waits, at most `max`, until other processes have used less than
/// `threshold` cores for three 1 s windows in a row. Returns whether the
/// machine became quiet.
pub(crate) fn wait_quiet(max: Duration, threshold: f64) -> bool {
    let t0 = Instant::now();
    let mut quiet = 0;
    while quiet < 3 && t0.elapsed() < max {
        let Some(b0) = host_busy_s() else {
            return false;
        };
        std::thread::sleep(Duration::from_secs(1));
        let Some(b1) = host_busy_s() else {
            return false;
        };
        quiet = if b1 - b0 < threshold { quiet + 1 } else { 0 };
    }
    quiet >= 3
}

/// Medians over the runs that finished.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Summary {
    /// Runs that finished (not timed out).
    pub(crate) n: usize,
    pub(crate) timed_out: usize,
    pub(crate) wall_s: f64,
    pub(crate) wall_min_s: f64,
    pub(crate) wall_max_s: f64,
    pub(crate) cpu_s: Option<f64>,
    pub(crate) maxrss_kb: Option<u64>,
    /// The most other processes used during a run, in cores.
    pub(crate) other_cores_max: Option<f64>,
}

/// The median (mean of the middle two for an even count); None when empty.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub(crate) fn summarize(samples: &[Sample]) -> Summary {
    let ok: Vec<&Sample> = samples.iter().filter(|s| !s.timed_out).collect();
    let walls: Vec<f64> = ok.iter().map(|s| s.wall_s).collect();
    let cpus: Vec<f64> = ok.iter().filter_map(|s| s.cpu_s()).collect();
    let rss: Vec<f64> = ok
        .iter()
        .filter_map(|s| s.maxrss_kb)
        .map(|k| k as f64)
        .collect();
    Summary {
        n: ok.len(),
        timed_out: samples.len() - ok.len(),
        wall_s: median(walls.clone()).unwrap_or(f64::NAN),
        wall_min_s: walls.iter().copied().fold(f64::NAN, f64::min),
        wall_max_s: walls.iter().copied().fold(f64::NAN, f64::max),
        cpu_s: (cpus.len() == ok.len()).then(|| median(cpus)).flatten(),
        maxrss_kb: (rss.len() == ok.len())
            .then(|| median(rss))
            .flatten()
            .map(|k| k.round() as u64),
        other_cores_max: ok
            .iter()
            .filter_map(|s| s.other_cores)
            .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(timeout: Duration) -> (tempfile::TempDir, Runner) {
        let tmp = tempfile::tempdir().unwrap();
        let time_bin = Path::new("/usr/bin/time");
        let r = Runner {
            time_bin: time_bin.is_file().then(|| time_bin.to_path_buf()),
            timeout,
            home: tmp.path().to_path_buf(),
        };
        (tmp, r)
    }

    #[test]
    fn time_output_parses_last_line() {
        assert_eq!(
            parse_time_output("0.01 0.02 3456 0\n"),
            Some((0.01, 0.02, 3456, 0))
        );
        assert_eq!(
            parse_time_output("Command exited with non-zero status 1\n0.50 0.00 10 1\n"),
            Some((0.5, 0.0, 10, 1))
        );
        assert_eq!(parse_time_output("garbage"), None);
        assert_eq!(parse_time_output(""), None);
    }

    #[test]
    fn a_child_is_measured_and_its_env_cleaned() {
        let (tmp, r) = runner(Duration::from_secs(10));
        let argv: Vec<OsString> = ["sh", "-c", "echo \"$HOME ${GITEA_TOKEN:-none}\"; exit 3"]
            .iter()
            .map(OsString::from)
            .collect();
        let s = r.run(&argv, tmp.path(), &tmp.path().join("a")).unwrap();
        assert!(!s.timed_out);
        assert_eq!(s.rc, Some(3));
        let out = std::fs::read_to_string(&s.stdout).unwrap();
        assert_eq!(out.trim(), format!("{} none", tmp.path().display()));
        if r.time_bin.is_some() {
            assert!(s.maxrss_kb.unwrap() > 0);
            assert!(s.cpu_s().is_some());
        }
    }

    #[test]
    fn a_hung_child_and_its_group_are_killed_at_the_timeout() {
        let (tmp, r) = runner(Duration::from_millis(300));
        // The grandchild would outlive its parent if only the parent were killed.
        let pidfile = tmp.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > '{}'; wait", pidfile.display());
        let argv: Vec<OsString> = ["sh", "-c", &script].iter().map(OsString::from).collect();
        let t0 = Instant::now();
        let s = r.run(&argv, tmp.path(), &tmp.path().join("h")).unwrap();
        assert!(s.timed_out);
        assert!(t0.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        // SIGKILL is delivered asynchronously: give the grandchild (bounded)
        // time to die; a zombie awaiting its reaper counts as dead.
        let dead = || match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => true,
            Ok(stat) => matches!(
                stat.rsplit(')').next().unwrap().split_whitespace().next(),
                Some("Z" | "X")
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dead(), "the grandchild survived its group's kill");
    }

    #[test]
    fn summary_takes_medians_of_finished_runs() {
        let mk = |w: f64, to: bool| Sample {
            wall_s: w,
            user_s: Some(w / 2.0),
            sys_s: Some(0.0),
            maxrss_kb: Some(1000),
            rc: Some(0),
            timed_out: to,
            other_cores: Some(w / 10.0),
            stdout: PathBuf::new(),
            stderr: PathBuf::new(),
        };
        let s = summarize(&[
            mk(3.0, false),
            mk(1.0, false),
            mk(2.0, false),
            mk(99.0, true),
        ]);
        assert_eq!(s.n, 3);
        assert_eq!(s.timed_out, 1);
        assert_eq!(s.wall_s, 2.0);
        assert_eq!(s.wall_min_s, 1.0);
        assert_eq!(s.wall_max_s, 3.0);
        assert_eq!(s.cpu_s, Some(1.0));
        assert_eq!(s.maxrss_kb, Some(1000));
        assert_eq!(s.other_cores_max, Some(0.3));
        assert_eq!(median(vec![1.0, 2.0, 3.0, 4.0]), Some(2.5));
    }
}
