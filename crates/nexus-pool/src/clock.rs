//! Time inside the pool: its timers run on the monotonic clock, and a
//! heartbeat stamped in the future is judged by progress, not by its stamp.
//!
//! - [`Clock`]: epoch seconds for the state machine, read from the wall
//!   clock once at start and advanced by [`Instant`] after that, so a wall
//!   clock set back (or forward) during the pool's life moves no timer,
//!   hysteresis or backoff. (Records from an earlier run with later times
//!   are clamped by `nexus-revive`.)
//! - [`FutureBeats`]: a heartbeat whose stamp is ahead of the wall clock
//!   (a writer with a skewed clock, or this host's clock set back) says
//!   nothing by its age. It is fresh while the file keeps changing, and
//!   stale once it has not changed for the stale threshold, measured on the
//!   monotonic clock; unknown on first sight. So a dead agent's future
//!   stamp hides nothing for longer than the threshold, and a live agent
//!   with a fast clock raises no alarm.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nexus_revive::Heartbeat;

/// A stamp this far ahead of the wall clock (seconds) is from the future
/// (files on one host share its clock: anything beyond rounding is skew).
pub const FUTURE_SLACK: f64 = 2.0;

/// The pool's clock: wall time at start, monotonic after.
#[derive(Debug, Clone)]
pub struct Clock {
    wall0: f64,
    t0: Instant,
}

impl Clock {
    /// Anchored at the system wall clock now.
    pub fn system() -> Clock {
        Clock::starting_at(nexus_stdx::now_epoch())
    }

    /// Anchored at `wall` (epoch seconds) now.
    pub fn starting_at(wall: f64) -> Clock {
        Clock {
            wall0: wall,
            t0: Instant::now(),
        }
    }

    /// Epoch seconds: never goes back, whatever the wall clock does.
    pub fn now(&self) -> f64 {
        self.wall0 + self.t0.elapsed().as_secs_f64()
    }
}

/// What identifies one version of a heartbeat file: atomic writes replace
/// the inode, in-place writes change the mtime or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

impl Version {
    /// The current version of `path` (`None`: cannot stat it).
    pub fn of(path: &Path) -> Option<Version> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Version {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            len: m.len(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Track {
    version: Version,
    since: Instant,
    changed: bool,
}

/// Progress of the heartbeats that are stamped in the future, by agent.
#[derive(Debug, Default)]
pub struct FutureBeats(HashMap<String, Track>);

impl FutureBeats {
    /// Judges `key`'s future-stamped heartbeat, now at `version`, at
    /// monotonic time `at`.
    pub fn judge(
        &mut self,
        key: &str,
        version: Option<Version>,
        threshold: Duration,
        at: Instant,
    ) -> Heartbeat {
        let Some(version) = version else {
            self.0.remove(key);
            return Heartbeat::Stale;
        };
        let Some(t) = self.0.get_mut(key) else {
            self.0.insert(
                key.to_string(),
                Track {
                    version,
                    since: at,
                    changed: false,
                },
            );
            return Heartbeat::Unknown;
        };
        if t.version != version {
            *t = Track {
                version,
                since: at,
                changed: true,
            };
            return Heartbeat::Fresh;
        }
        if at.saturating_duration_since(t.since) > threshold {
            Heartbeat::Stale
        } else if t.changed {
            Heartbeat::Fresh
        } else {
            Heartbeat::Unknown
        }
    }

    /// `key`'s heartbeat is no longer from the future (or it left).
    pub fn forget(&mut self, key: &str) {
        if !self.0.is_empty() {
            self.0.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_clock_never_goes_back() {
        let c = Clock::starting_at(1_000.0);
        let a = c.now();
        let b = c.now();
        assert!(a >= 1_000.0 && b >= a);
    }

    #[test]
    fn a_future_beat_is_judged_by_progress_on_the_monotonic_clock() {
        let dir = tempfile::tempdir().unwrap();
        let hb = dir.path().join("hb.json");
        let write = |n: u32| {
            nexus_stdx::write_atomic(&hb, format!("{{\"n\":{n}}}").as_bytes(), false).unwrap();
        };
        let th = Duration::from_secs(60);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut f = FutureBeats::default();
        write(1);
        assert_eq!(
            f.judge("a", Version::of(&hb), th, at(0)),
            Heartbeat::Unknown
        );
        // Unchanged: unknown until the threshold, then stale (a dead agent).
        assert_eq!(
            f.judge("a", Version::of(&hb), th, at(30)),
            Heartbeat::Unknown
        );
        assert_eq!(f.judge("a", Version::of(&hb), th, at(61)), Heartbeat::Stale);
        // It beats again: fresh, and fresh for the threshold after each beat.
        write(2);
        assert_eq!(f.judge("a", Version::of(&hb), th, at(62)), Heartbeat::Fresh);
        assert_eq!(
            f.judge("a", Version::of(&hb), th, at(100)),
            Heartbeat::Fresh
        );
        write(3);
        assert_eq!(
            f.judge("a", Version::of(&hb), th, at(110)),
            Heartbeat::Fresh
        );
        assert_eq!(
            f.judge("a", Version::of(&hb), th, at(171)),
            Heartbeat::Stale
        );
        // Gone: stale; forgotten: unknown again on first sight.
        assert_eq!(f.judge("a", None, th, at(172)), Heartbeat::Stale);
        f.forget("a");
        assert_eq!(
            f.judge("a", Version::of(&hb), th, at(173)),
            Heartbeat::Unknown
        );
    }
}
