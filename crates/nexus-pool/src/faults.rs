//! Write faults the pool keeps running through (a full or read-only disk):
//! each kind of file it writes (`state`, `launch-journal`, `events`,
//! `cell-state`, `heartbeat`) is either fine or has a current fault, the last error,
//! naming the file. Faults are logged when they appear and clear, shown by
//! `/health` (`status: degraded`, `faults`) and `/metrics`
//! (`nexus_pool_write_fault`).

use std::collections::BTreeMap;

/// The current write faults by kind.
#[derive(Debug, Clone, Default)]
pub struct Faults(BTreeMap<&'static str, String>);

impl Faults {
    /// Records how a write of `kind` went; logs a fault when it appears and
    /// when it clears. Returns whether the set changed (a fault is the same
    /// while its text is).
    pub fn record<E: std::fmt::Display>(
        &mut self,
        kind: &'static str,
        result: Result<(), E>,
    ) -> bool {
        match result.map_err(|e| e.to_string()) {
            Ok(()) => {
                let cleared = self.0.remove(kind).is_some();
                if cleared {
                    tracing::warn!("write fault cleared: {kind} files are written again");
                }
                cleared
            }
            Err(e) => {
                let new = self.0.get(kind) != Some(&e);
                if new {
                    tracing::error!("write fault ({kind}): {e}");
                    self.0.insert(kind, e);
                }
                new
            }
        }
    }

    /// `kind: error` lines, by kind.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(|(k, e)| format!("{k}: {e}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_appears_once_and_clears() {
        let mut f = Faults::default();
        assert!(!f.record("state", Ok::<(), String>(())));
        assert!(f.record("state", Err("cannot write /x: No space left")));
        assert!(!f.record("state", Err("cannot write /x: No space left")));
        assert_eq!(f.lines(), vec!["state: cannot write /x: No space left"]);
        assert!(f.record("state", Ok::<(), &str>(())));
        assert!(f.lines().is_empty());
    }
}
