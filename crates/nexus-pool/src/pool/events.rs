//! The event engine's side of the pool: between its safety sweeps, the
//! daemon waits in [`Pool::idle`] for what changes (a beat landed, a
//! child exited, a deadline came, the fleet changed, Gitea or Telegram
//! answered) and steps only the agents concerned ([`Pool::step_keys`]).
//! A beat of a healthy agent only pushes its deadline: no file is read,
//! nothing is stepped, so the cost follows what changes, not the fleet.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nexus_heartbeat::{Glance, Rule};
use nexus_revive::State;

use super::outside::next_event;
use super::{Pool, STALE_SLACK, SweepReport, Wake};
use crate::engine::{Change, Wanted, Watcher};
use crate::fleet::{ProbePlan, Probed, Target};

/// Records changed by steps between sweeps are saved at most this often
/// (launches are journaled before their spawn whatever this says).
pub(super) const SAVE_EVERY: Duration = Duration::from_secs(1);

/// What a beat asks for.
enum Beat {
    /// Nothing known of the agent (it left the fleet).
    Ignore,
    /// A healthy agent beat: its deadline moved, its view is refreshed.
    Fresh(usize),
    /// Anything else: step it.
    Step,
}

async fn watch_changes(w: &mut Option<Watcher>, out: &mut Vec<Change>) -> std::io::Result<()> {
    match w {
        Some(w) => w.changes(out).await,
        None => std::future::pending().await,
    }
}

impl Pool {
    /// Starts watching the cells root, the cells and the heartbeat
    /// directories (the daemon; a one-shot sweep does not). Without
    /// inotify the safety sweep and the deadlines still find everything,
    /// later; the reason is logged.
    pub fn watch(&mut self) {
        self.evented = true;
        match Watcher::new() {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::warn!(
                "inotify unavailable ({e}): changes are found by the deadlines and the safety sweep"
            ),
        }
    }

    /// Watches what the last full sweep saw.
    pub(super) fn sync_watches(&mut self) {
        let Some(w) = &mut self.watcher else { return };
        let mut wanted = Wanted {
            root: self.cfg.cells.as_ref().map(|c| c.root.clone()),
            ..Wanted::default()
        };
        // One path per cell, not per agent: a name is all an agent adds.
        let mut cells: std::collections::HashMap<nexus_cell::CellId, PathBuf> = Default::default();
        for t in self.targets.iter().filter(|t| !t.frozen) {
            let key = &t.key;
            match (&t.gateway, t.cell, &self.store) {
                (Some(g), ..) => wanted.beat(&g.heartbeat, key),
                (None, Some(cell), Some(store)) => {
                    let beats = cells.entry(cell).or_insert_with(|| {
                        let dir = store.cell_dir(&cell);
                        let beats = store.heartbeats_dir(&cell);
                        wanted.cells.push(dir);
                        beats
                    });
                    let name = format!("{}.json", t.name);
                    wanted
                        .beats
                        .entry(beats.clone())
                        .or_default()
                        .push((std::ffi::OsStr::new(&name).into(), key.clone()));
                }
                _ => {}
            }
        }
        w.sync(wanted);
        let unwatched = w.unwatched.clone();
        if unwatched != self.unwatched_logged {
            if let Some(why) = &unwatched {
                tracing::warn!("inotify: {why}");
            }
            self.unwatched_logged = unwatched;
        }
    }

    /// Waits until `until` (the next safety sweep), or until something
    /// needs the pool: agents to step, a full sweep, approval answers.
    /// Meanwhile takes in the channels' events (the state file is saved
    /// when one changes a message or an answer: a restart then neither
    /// sends a message twice nor loses an answer) and saves records that
    /// steps changed, at most once a second.
    pub async fn idle(&mut self, until: tokio::time::Instant) -> Wake {
        let mut changes = Vec::new();
        loop {
            let timer = self.timers.next().map(tokio::time::Instant::from_std);
            let save = (self.unsaved && !self.dry_run)
                .then(|| tokio::time::Instant::from_std(self.saved_at + SAVE_EVERY));
            let wake = [timer, save]
                .into_iter()
                .flatten()
                .fold(until, |a, b| a.min(b));
            let event = tokio::select! {
                () = tokio::time::sleep_until(wake) => {
                    if self.unsaved && !self.dry_run && self.saved_at.elapsed() >= SAVE_EVERY {
                        self.save_state();
                    }
                    let due = self.timers.pop_due(std::time::Instant::now());
                    if !due.is_empty() {
                        return Wake::Steps(due);
                    }
                    if tokio::time::Instant::now() >= until {
                        return Wake::Timer;
                    }
                    continue;
                }
                exit = self.exits_rx.recv() => match exit {
                    Some((key, pid)) => {
                        self.child_exited(&key, pid);
                        return Wake::Steps(vec![Arc::from(key)]);
                    }
                    // The pool holds a sender: never closed.
                    None => return Wake::Timer,
                },
                r = watch_changes(&mut self.watcher, &mut changes) => {
                    if let Err(e) = r {
                        tracing::warn!("inotify failed ({e}): back to deadlines and sweeps");
                        self.watcher = None;
                        return Wake::Sweep("the inotify watch failed");
                    }
                    match self.take_changes(&mut changes) {
                        Some(w) => return w,
                        None => continue,
                    }
                }
                e = next_event(&mut self.incidents, &mut self.telegram, &mut self.nostr) => e,
                Some(n) = super::alerts::next_notification(&mut self.alert_inbox) => {
                    self.take_notification(&n);
                    continue;
                }
                Some(a) = super::human::next_action(&mut self.inbox) => {
                    match self.take_action(a) {
                        Some(w) => return w,
                        None => continue,
                    }
                }
            };
            let answers = self.on_event(event);
            self.take_events();
            self.dispatch(false);
            self.publish_channels();
            // A message sent or an answer read is saved at once; the rest
            // (observations taken, a request asked) is sent again harmlessly
            // after a crash, and saved by the next sweep.
            if std::mem::take(&mut self.urgent) {
                self.dirty = false;
                self.save_state();
            }
            if answers {
                return Wake::Answers;
            }
        }
    }

    /// What the watches saw: a full sweep, agents to step, or nothing
    /// (healthy agents beat: their deadlines and views are refreshed).
    fn take_changes(&mut self, changes: &mut Vec<Change>) -> Option<Wake> {
        let mut steps = Vec::new();
        let mut fresh = Vec::new();
        let mut sweep = None;
        for c in changes.drain(..) {
            match c {
                Change::Sweep(why) => sweep = Some(why),
                Change::Step(k) => steps.push(k),
                Change::Beat(k) => match self.beat(&k) {
                    Beat::Ignore => {}
                    Beat::Fresh(pos) => fresh.push(pos),
                    Beat::Step => steps.push(k),
                },
            }
        }
        if !fresh.is_empty() {
            let now = self.clock.now();
            let mut g = crate::http::snapshot_mut(&self.shared);
            for pos in fresh {
                if let Some(v) = g.agents.get_mut(pos) {
                    v.heartbeat_age = Some(0.0);
                    v.last_checked = now;
                }
            }
        }
        if let Some(why) = sweep {
            return Some(Wake::Sweep(why));
        }
        if steps.is_empty() {
            return None;
        }
        steps.sort_unstable();
        steps.dedup();
        Some(Wake::Steps(steps))
    }

    /// A beat of `key` landed.
    fn beat(&mut self, key: &Arc<str>) -> Beat {
        let Some((t, pos)) = self.indexed(key) else {
            return Beat::Ignore;
        };
        let quiet = self
            .state
            .records
            .get(key)
            .is_some_and(|r| r.state == State::Healthy && r.fail_streak == 0)
            && !self.exited.contains_key(&**key)
            && !self.terminating.contains_key(&**key);
        if !quiet {
            return Beat::Step;
        }
        let stale = Duration::from_secs_f64(self.stale_threshold(t) + STALE_SLACK);
        self.timers.set(key, std::time::Instant::now() + stale);
        Beat::Fresh(pos)
    }

    /// Steps the agents `keys` alone (a beat landed, a process exited, a
    /// deadline came): their heartbeats are read again (off the runtime's
    /// threads), gateway agents probed; the rest of the fleet is not
    /// touched. Keys no longer in the fleet are skipped.
    pub async fn step_keys(&mut self, keys: &[Arc<str>]) {
        let now = self.clock.now();
        self.take_events();
        if !self.unwritten.is_empty() {
            self.write_events();
        }
        let targets: Vec<(Target, usize)> = keys
            .iter()
            .filter_map(|k| self.indexed(k).map(|(t, pos)| (t.clone(), pos)))
            .collect();
        if targets.is_empty() {
            return;
        }
        let reads: Vec<(std::path::PathBuf, f64)> =
            targets.iter().map(|(t, _)| self.beat_file(t)).collect();
        let glances = tokio::task::spawn_blocking(move || {
            reads
                .iter()
                .map(|(path, threshold)| Glance::read(path, now, &Rule::fixed(*threshold)))
                .collect::<Vec<Glance>>()
        })
        .await
        .unwrap_or_default();
        let gateways: HashSet<&str> = targets
            .iter()
            .filter(|(t, _)| t.gateway.is_some())
            .map(|(t, _)| &*t.key)
            .collect();
        let mut probed = Probed::default();
        if !gateways.is_empty() {
            let mut plan = ProbePlan::new(&self.cfg, &self.children, self.cfg.pool.probe_timeout);
            plan.retain(|k| gateways.contains(k));
            probed = plan.run(&self.runner).await;
        }
        let mut report = SweepReport::default();
        let mut views = Vec::with_capacity(targets.len());
        for ((mut t, pos), glance) in targets.into_iter().zip(glances) {
            t.beat = glance;
            let seen = probed.take(&t);
            let view = self.step_agent(&t, seen, now, &mut report).await;
            views.push((pos, view));
        }
        self.dispatch(false);
        if self.unsaved && !self.dry_run && self.saved_at.elapsed() >= SAVE_EVERY {
            self.save_state();
        }
        let mut g = crate::http::snapshot_mut(&self.shared);
        for (pos, view) in views {
            if let Some(v) = g.agents.get_mut(pos)
                && v.name == view.name
                && v.cell == view.cell
            {
                *v = view;
            }
        }
    }

    /// `t`'s heartbeat file and its staleness threshold.
    pub(super) fn beat_file(&self, t: &Target) -> (std::path::PathBuf, f64) {
        let threshold = self.stale_threshold(t);
        let path = match (&t.gateway, t.cell, &self.store) {
            (Some(g), ..) => g.heartbeat.clone(),
            (None, Some(cell), Some(store)) => {
                store.heartbeats_dir(&cell).join(format!("{}.json", t.name))
            }
            _ => std::path::PathBuf::new(),
        };
        (path, threshold)
    }
}
