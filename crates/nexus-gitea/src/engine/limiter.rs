//! The sliding-window rate limiter of delivered actions (`max_actions` per
//! `action_window`, across all subjects), kept in `limiter.json`.

use std::path::{Path, PathBuf};

use nexus_stdx::SlidingWindow;

use super::Engine;

/// The sliding window of delivered actions (`nexus_stdx::SlidingWindow`).
/// Kept in `limiter.json` too (read and written under the engine lock), so
/// the limit holds across restarts and across processes sharing the state
/// directory: a crash-looping daemon does not start counting again.
#[derive(Debug)]
pub(super) struct Limiter {
    window: SlidingWindow,
    /// Changed since `limiter.json` was written.
    dirty: bool,
    /// Size and mtime of `limiter.json` when last read or written: an
    /// unchanged file is not read again.
    seen: Option<(u64, Option<std::time::SystemTime>)>,
}

impl Limiter {
    pub(super) fn allows(&mut self, now: i64) -> bool {
        self.window.allows(now)
    }

    pub(super) fn record(&mut self, now: i64) {
        if self.window.record(now) {
            self.dirty = true;
        }
    }

    /// A limiter of `max` actions (0: no limit) per `window` seconds.
    pub(super) fn new(max: usize, window: i64) -> Limiter {
        Limiter {
            window: SlidingWindow::new(max, window),
            dirty: false,
            seen: None,
        }
    }

    /// Actions counted in the window.
    pub(super) fn len(&self) -> usize {
        self.window.len()
    }

    /// Under the engine lock: the window as `limiter.json` has it (another
    /// process, or this daemon before a restart, may have delivered
    /// actions), unless the file did not change since this engine last
    /// read or wrote it. A corrupt file is ignored (this run's count goes on).
    pub(super) fn load(&mut self, path: &Path, now: i64) {
        if self.window.max() == 0 {
            return;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "rate-limit window unreadable");
                return;
            }
        };
        let stamp = (meta.len(), meta.modified().ok());
        if self.seen == Some(stamp) {
            return;
        }
        let times = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Vec<i64>>(&b).map_err(|e| e.to_string()));
        match times {
            Ok(times) => {
                self.window.replace(times, now);
                self.seen = Some(stamp);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "corrupt rate-limit window ignored");
            }
        }
    }

    /// Under the engine lock: writes the window if it changed. A failure is
    /// logged, not returned: the action it counts was already delivered.
    pub(super) fn save(&mut self, path: &Path) {
        if !self.dirty {
            return;
        }
        let times = self.window.times();
        let written = serde_json::to_vec(&times)
            .map_err(|e| e.to_string())
            .and_then(|b| nexus_stdx::write_private(path, &b, false).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                self.dirty = false;
                self.seen = std::fs::metadata(path)
                    .ok()
                    .map(|m| (m.len(), m.modified().ok()));
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "rate-limit window not saved");
            }
        }
    }
}

impl Engine {
    fn limiter_path(&self) -> PathBuf {
        self.cfg.state_dir.join("limiter.json")
    }

    pub(super) fn load_limiter(&mut self, now: i64) {
        let path = self.limiter_path();
        self.limiter.load(&path, now);
    }

    pub(super) fn save_limiter(&mut self) {
        let path = self.limiter_path();
        self.limiter.save(&path);
    }
}
