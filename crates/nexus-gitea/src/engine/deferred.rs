//! The deferred queue: subjects the rate limit held back, one entry each
//! with its latest observation, acted on oldest first and kept in
//! `deferred.json` across restarts.

use std::path::PathBuf;

use crate::check::Check;
use crate::error::Error;

use super::Engine;

impl Engine {
    fn deferred_path(&self) -> PathBuf {
        self.cfg.state_dir.join("deferred.json")
    }

    /// Once per process: the subjects a previous run deferred.
    pub(super) fn load_deferred(&mut self) {
        if self.deferred_loaded {
            return;
        }
        self.deferred_loaded = true;
        let path = self.deferred_path();
        let checks: Vec<Check> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "corrupt deferred incidents ignored");
                    return;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "deferred incidents unreadable");
                return;
            }
        };
        for c in checks {
            if !self.deferred.contains_key(&c.subject) && !c.subject.trim().is_empty() {
                self.defer(&c);
            }
        }
    }

    pub(super) fn save_deferred(&mut self) -> Result<(), Error> {
        if !self.deferred_dirty {
            return Ok(());
        }
        let path = self.deferred_path();
        if self.deferred.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        path,
                        op: "remove",
                        source,
                    });
                }
            }
        } else {
            let list: Vec<&Check> = self
                .deferred_order
                .iter()
                .filter_map(|s| self.deferred.get(s))
                .collect();
            let bytes = serde_json::to_vec(&list).map_err(|e| Error::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            nexus_stdx::write_private(&path, &bytes, false)?;
        }
        self.deferred_dirty = false;
        Ok(())
    }

    /// Acts on deferred subjects, oldest first, while the limit allows.
    pub(super) async fn drain_deferred(&mut self, now: i64) {
        while !self.deferred_order.is_empty() && self.limiter.allows(now) {
            let Some(subject) = self.deferred_order.pop_front() else {
                break;
            };
            self.deferred_dirty = true;
            let Some(check) = self.deferred.remove(&subject) else {
                continue;
            };
            match self.act(&check, now, false).await {
                Ok(outcome) => {
                    tracing::info!(%subject, %outcome, "deferred incident acted on");
                }
                Err(e) => tracing::warn!(%subject, error = %e, "deferred incident failed"),
            }
            if !self.outbox.is_empty().unwrap_or(false) {
                break; // Gitea failed meanwhile: the rest waits behind the outbox
            }
        }
    }

    pub(super) fn defer(&mut self, check: &Check) {
        self.deferred_dirty = true;
        if self
            .deferred
            .insert(check.subject.clone(), check.clone())
            .is_none()
        {
            self.deferred_order.push_back(check.subject.clone());
        }
    }
}
