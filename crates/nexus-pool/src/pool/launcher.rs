//! The launcher, the pool's one executor of processes: the pre-flight
//! check, stopping what is left of a hung agent (through the pidfd of the
//! pool's own child, so the signal can only reach that process), the
//! launch intent journaled before each spawn, the spawn itself (argv, no
//! shell, its own process group), and the children's exits, reaped and
//! reported to the engine at once.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nexus_cell::EventKind;
use nexus_probe::{ProbeKind, ProbeSpec, Status};
use nexus_revive::{AgentRecord, LaunchOutcome, launched};

use super::Pool;
use crate::Error;
use crate::fleet::{ReviveHow, Seen, Target};
use crate::intent::{LAUNCH_ENV, LaunchIntent, pause};

/// How long a hung agent gets between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);

/// What [`Pool::launch`] is asked to do (from `Action::Launch`).
#[derive(Debug, Clone, Copy)]
pub(super) struct How {
    pub attempt: u32,
    pub slow_lane: bool,
    pub first_start: bool,
}

/// A process with this PID runs (it exists and is not a zombie): one
/// `kill(pid, 0)`, and `/proc` read only for a PID that exists.
pub(super) fn alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        // EPERM: it exists, someone else's.
        Ok(()) | Err(rustix::io::Errno::PERM) => !is_zombie(pid as i32),
        Err(_) => false,
    }
}

/// A heartbeat written after the exit of the pool's child `exited` and
/// naming `pid` shows another process of the agent running: one that
/// lives, is not the child that exited, and is neither the pool nor one
/// of its ancestors. A writer that outlived the child (a heartbeat CLI the
/// killed agent had just started) names the dead child, or, once
/// reparented, init or a subreaper: that beat is a straggler, not a
/// restart.
pub(super) fn another_run(pid: u32, exited: u32) -> bool {
    pid != exited && may_be_an_agent(pid)
}

/// A heartbeat naming `pid` may name a running agent: the process lives
/// and is neither the pool nor one of its ancestors (init, a subreaper),
/// which is what an orphaned heartbeat writer takes for its parent.
pub(super) fn may_be_an_agent(pid: u32) -> bool {
    alive(pid) && !nexus_stdx::proc::is_self_or_ancestor(std::path::Path::new("/proc"), pid)
}

/// A pidfd for `pid`: signals through it reach that process only, and it
/// turns readable when the process exits.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Reports the exit of `pid` (through its pidfd) as the exit of `key`'s
/// child: for a process re-adopted after a restart, which is no longer
/// the pool's child to reap.
fn watch_exit(
    fd: &OwnedFd,
    key: String,
    pid: u32,
    tx: tokio::sync::mpsc::UnboundedSender<(String, u32)>,
) {
    let Ok(fd) = fd.try_clone() else { return };
    let Ok(fd) = crate::engine::owned_async_fd(fd, tokio::io::Interest::READABLE) else {
        return;
    };
    tokio::spawn(async move {
        let _ = fd.readable().await;
        let _ = tx.send((key, pid));
    });
}

impl Pool {
    /// After a restart (a crash included): finds the processes of persisted
    /// launch intents and tracks them again as the pool's own, so a launch
    /// in flight is neither repeated nor lost from sight.
    pub(super) fn readopt_launches(&mut self) {
        let alive = crate::intent::find_all_launched(self.state.launched.values());
        let mut gone = Vec::new();
        for (key, intent) in &mut self.state.launched {
            match alive.get(&intent.id).copied() {
                Some(pid) => {
                    intent.pid = Some(pid);
                    self.children.insert(key.clone(), pid);
                    if let Some(fd) = pidfd(pid) {
                        if tokio::runtime::Handle::try_current().is_ok() {
                            watch_exit(&fd, key.clone(), pid, self.exits_tx.clone());
                        }
                        self.pidfds.insert(key.clone(), fd);
                    }
                    tracing::info!("[{key}] re-adopted launched process {pid} after a restart");
                }
                None => gone.push((key.clone(), intent.pid.unwrap_or(0))),
            }
        }
        for (key, pid) in gone {
            self.state.launched.remove(&key);
            // What the pool launched no longer runs: a seen exit, not a
            // death to infer (a one-shot run sees its last launch's
            // crash at once).
            self.exited.insert(key, (pid, self.clock.now()));
        }
    }

    /// PIDs of the live processes the pool launched.
    pub fn launched_pids(&self) -> Vec<u32> {
        self.children.values().copied().collect()
    }

    /// Waits until a child the pool launched exits; returns its key.
    pub async fn next_exit(&mut self) -> Option<String> {
        let (key, pid) = self.exits_rx.recv().await?;
        self.child_exited(&key, pid);
        Some(key)
    }

    pub(super) fn child_exited(&mut self, key: &str, pid: u32) {
        let key = key.to_string();
        // A hung process the pool is stopping: its exit is the end of
        // that (logged) event, not a death of its own.
        let stopped = self.terminating.get(&key).is_some_and(|(p, _)| *p == pid);
        if self.children.get(&key) == Some(&pid) {
            self.children.remove(&key);
            self.pidfds.remove(&key);
            self.terminating.remove(&key);
            self.exited.insert(key.clone(), (pid, self.clock.now()));
            // Nothing left to re-adopt after a restart.
            if self
                .state
                .launched
                .get(&key)
                .is_some_and(|i| i.pid == Some(pid))
            {
                self.state.launched.remove(&key);
            }
        }
        // A death the pool saw, unless it is the hung process it stopped.
        let level = if stopped {
            tracing::Level::INFO
        } else {
            tracing::Level::WARN
        };
        self.note_at(level, &key, format!("launched process {pid} exited"));
    }

    /// Pre-flight, stop the hung process, launch, track the child. `None`
    /// while the pool's own hung child is being stopped (SIGTERM, then
    /// SIGKILL after [`STOP_GRACE`], both through its pidfd): the launch
    /// is asked again once its exit is seen.
    pub(super) async fn launch(
        &mut self,
        t: &Target,
        s: &Seen,
        rec: &AgentRecord,
        how: How,
        now: f64,
    ) -> Option<LaunchOutcome> {
        let How {
            attempt,
            slow_lane,
            first_start,
        } = how;
        let lane = if slow_lane { " (slow lane)" } else { "" };
        let what = if first_start {
            "first start".to_string()
        } else {
            format!("revive attempt {attempt}{lane}")
        };
        if let Some(pre) = &t.preflight {
            let spec = ProbeSpec::new("preflight", ProbeKind::PythonSyntax((**pre).clone()));
            let v = self.runner.run_one(&spec).await;
            if v.status != Status::Ok {
                return Some(LaunchOutcome::PreflightFailed(v.summary));
            }
        }
        if self.dry_run {
            self.note(&t.key, format!("[DRY-RUN] would launch ({what})"));
            return Some(LaunchOutcome::Started);
        }
        // A hung agent still holds its port and files: stop it first. The
        // pool's own child is stopped through its pidfd, off this step.
        if self.stopping_own(t) {
            return None;
        }
        // Processes found by pattern (a gateway agent someone else started):
        // stopped here, within the grace.
        let mut stale: Vec<u32> = s.pids.clone();
        stale.sort_unstable();
        stale.dedup();
        stale.retain(|p| *p != std::process::id());
        if !stale.is_empty() {
            stop_processes(&stale).await;
            self.note_at(
                tracing::Level::WARN,
                &t.key,
                format!("stopped hung process(es) {stale:?}"),
            );
        }
        let cmd = match &t.revive {
            ReviveHow::None => {
                return Some(LaunchOutcome::Failed(
                    "no revive command configured".to_string(),
                ));
            }
            ReviveHow::Argv(how) => match argv_command(&how.0, how.1.as_deref()) {
                Ok(c) => c,
                Err(e) => return Some(LaunchOutcome::Failed(e.to_string())),
            },
            ReviveHow::Cell => {
                let Some((cell, agent)) = t.cell_agent() else {
                    return Some(LaunchOutcome::Failed("no cell".to_string()));
                };
                let Some(store) = &self.store else {
                    return Some(LaunchOutcome::Failed("no cells root".to_string()));
                };
                match store.open(&cell).and_then(|c| c.revive_command(&agent)) {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        return Some(LaunchOutcome::Failed(
                            "no revive command configured".to_string(),
                        ));
                    }
                    Err(e) => return Some(LaunchOutcome::Failed(e.to_string())),
                }
            }
        };
        let intent = self.record_intent(t, rec, attempt, now).await;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.env(LAUNCH_ENV, &intent);
        let spawned = cmd.spawn();
        if spawned.is_ok() {
            pause("launch-spawned").await;
        }
        Some(match spawned {
            Err(e) => LaunchOutcome::Failed(format!("cannot start: {e}")),
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                if let Some(i) = self.state.launched.get_mut(&*t.key) {
                    i.pid = Some(pid);
                }
                self.children.insert(t.key.to_string(), pid);
                // Opened before the reaper runs: it names this process.
                if let Some(fd) = pidfd(pid) {
                    self.pidfds.insert(t.key.to_string(), fd);
                }
                self.exited.remove(&*t.key);
                let tx = self.exits_tx.clone();
                let key = t.key.to_string();
                tokio::spawn(async move {
                    let _ = child.wait().await; // reaps it
                    let _ = tx.send((key, pid));
                });
                // A revive attempt is a WARN; a first start is not news.
                let level = if first_start {
                    tracing::Level::INFO
                } else {
                    tracing::Level::WARN
                };
                self.note_at(level, &t.key, format!("{what}: started PID {pid}"));
                LaunchOutcome::Started
            }
        })
    }

    /// Stops the pool's own hung child of `t`, if it has one: SIGCONT and
    /// SIGTERM at first, SIGKILL once [`STOP_GRACE`] has passed, each
    /// through the child's pidfd (a re-adopted process without one only
    /// if it still carries its launch intent). `true` while it lives.
    fn stopping_own(&mut self, t: &Target) -> bool {
        use rustix::process::{Signal, pidfd_send_signal};
        let key = &*t.key;
        let Some(pid) = self.children.get(key).copied() else {
            return false;
        };
        let ours = self.pidfds.contains_key(key)
            || self
                .state
                .launched
                .get(key)
                .is_none_or(|i| crate::intent::carries(pid, &i.id));
        if !ours || !alive(pid) {
            return false;
        }
        // The process first (through its pidfd: that process and no other),
        // then its process group (it leads one: the launch made it), so
        // what the agent started goes too; the group's id cannot be taken
        // by another process while its leader, just signalled, lives.
        let send = |pool: &Pool, sig: Signal| {
            let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
                return false;
            };
            let sent = match pool.pidfds.get(key) {
                Some(fd) => pidfd_send_signal(fd, sig).is_ok(),
                None => rustix::process::kill_process(p, sig).is_ok(),
            };
            if sent {
                let _ = rustix::process::kill_process_group(p, sig);
            }
            sent
        };
        match self.terminating.get(key).copied() {
            None => {
                let _ = send(self, Signal::CONT);
                if !send(self, Signal::TERM) {
                    return false; // gone meanwhile
                }
                let kill_at = Instant::now() + STOP_GRACE;
                self.terminating.insert(key.to_string(), (pid, kill_at));
                self.note_at(
                    tracing::Level::WARN,
                    key,
                    format!(
                        "hung: SIGTERM sent to PID {pid}; SIGKILL in {} s unless it exits",
                        STOP_GRACE.as_secs()
                    ),
                );
                true
            }
            Some((_, kill_at)) if Instant::now() >= kill_at => {
                if send(self, Signal::KILL) {
                    self.note_at(
                        tracing::Level::WARN,
                        key,
                        format!("hung: PID {pid} ignored SIGTERM: SIGKILL sent"),
                    );
                }
                // Its exit comes through the reaper (or its pidfd).
                self.terminating
                    .insert(key.to_string(), (pid, Instant::now() + STOP_GRACE));
                true
            }
            Some(_) => true,
        }
    }

    /// Before a spawn: the `revive_attempt` event, then the record with the
    /// attempt counted and the launch intent, journaled (see [`crate::intent`]).
    /// A failed save is reported, and the launch goes ahead: a dead agent
    /// is not left dead because the disk is full.
    pub(super) async fn record_intent(
        &mut self,
        t: &Target,
        rec: &AgentRecord,
        attempt: u32,
        now: f64,
    ) -> String {
        if let Some((cell, agent)) = t.cell_agent() {
            let max = self.settings.max_attempts;
            let kind = if attempt == 0 {
                EventKind::AgentStarted { agent }
            } else {
                EventKind::ReviveAttempt {
                    agent,
                    attempt,
                    max,
                }
            };
            self.cell_append(cell, kind);
        }
        let intent = LaunchIntent::new(&t.key, now, attempt);
        let id = intent.id.clone();
        let mut record = rec.clone();
        launched(&mut record, now, LaunchOutcome::Started, &self.settings);
        self.state
            .launched
            .insert(t.key.to_string(), intent.clone());
        let entry = crate::intent::JournalEntry {
            key: t.key.to_string(),
            intent,
            record,
        };
        let journal = crate::intent::journal_path(&self.state_file);
        let saved = crate::intent::journal_append(&journal, &entry);
        if let Err(e) = &saved {
            tracing::error!("[{}] launch intent not saved: {e}", t.key);
        }
        self.fault_result("launch-journal", saved);
        pause("launch-saved").await;
        id
    }
}

fn argv_command(argv: &[String], log: Option<&Path>) -> Result<std::process::Command, Error> {
    use std::process::Stdio;
    let (program, args) = argv.split_first().ok_or(Error::EmptyReviveCmd)?;
    let log_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            op: "open log",
            path,
            source,
        }
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    match log {
        Some(path) => {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(log_error(path))?;
            let err = out.try_clone().map_err(log_error(path))?;
            cmd.stdout(out).stderr(err);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Ok(cmd)
}

/// SIGCONT + SIGTERM, up to 2 s for them to go, then SIGKILL.
async fn stop_processes(pids: &[u32]) {
    use rustix::process::{Pid, Signal, kill_process, test_kill_process};
    let pids: Vec<Pid> = pids
        .iter()
        .filter_map(|p| Pid::from_raw(*p as i32))
        .collect();
    for p in &pids {
        let _ = kill_process(*p, Signal::CONT);
        let _ = kill_process(*p, Signal::TERM);
    }
    for _ in 0..20 {
        if pids
            .iter()
            .all(|p| test_kill_process(*p).is_err() || is_zombie(p.as_raw_nonzero().get()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in &pids {
        let _ = kill_process(*p, Signal::KILL);
    }
}

fn is_zombie(pid: i32) -> bool {
    use nexus_stdx::proc;
    let Ok(pid) = u32::try_from(pid) else {
        return true;
    };
    proc::read_stat_text(std::path::Path::new("/proc"), pid)
        .ok()
        .and_then(|s| proc::parse_stat(&String::from_utf8_lossy(&s)).ok())
        .is_none_or(|s| s.state == 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revive_command_that_cannot_start_names_why() {
        let e = argv_command(&[], None).unwrap_err();
        assert_eq!(e.to_string(), "empty revive_cmd");
        let log = Path::new("/nonexistent-nexus-dir/agent.log");
        let e = argv_command(&["true".to_string()], Some(log)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("cannot open log /nonexistent-nexus-dir/agent.log: "),
            "{text}"
        );
        assert!(matches!(e, Error::Io { op: "open log", .. }), "{e:?}");
        assert!(argv_command(&["true".to_string()], None).is_ok());
    }
}
