//! Disk probe (docs/SPEC.md §4.2.7, defect H10): statvfs space and inodes, `≥` thresholds.
//! Percent = used / (used + available to unprivileged users), like `df` Use%.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::SpecError;

use crate::verdict::round;
use crate::{Outcome, Status};

/// `disk = { path = "/", warn_pct = 85, crit_pct = 95 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Any path on the file system (default `/`).
    #[serde(default = "root")]
    pub path: PathBuf,
    /// Space warning at ≥ this percentage (default 85).
    #[serde(default = "p85")]
    pub warn_pct: f64,
    /// Space critical at ≥ this percentage (default 95).
    #[serde(default = "p95")]
    pub crit_pct: f64,
    /// Inode warning at ≥ this percentage (default 85).
    #[serde(default = "p85")]
    pub inode_warn_pct: f64,
    /// Inode critical at ≥ this percentage (default 95).
    #[serde(default = "p95")]
    pub inode_crit_pct: f64,
}

fn root() -> PathBuf {
    PathBuf::from("/")
}
fn p85() -> f64 {
    85.0
}
fn p95() -> f64 {
    95.0
}

impl DiskSpec {
    /// Each threshold a percentage, each warning at or below its critical.
    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        let pcts = [
            ("warn_pct", self.warn_pct),
            ("crit_pct", self.crit_pct),
            ("inode_warn_pct", self.inode_warn_pct),
            ("inode_crit_pct", self.inode_crit_pct),
        ];
        for (field, v) in pcts {
            if let Some(why) = nexus_stdx::percent_problem(v) {
                return Err(SpecError::field(field, why));
            }
        }
        for (warn, crit) in [(pcts[0], pcts[1]), (pcts[2], pcts[3])] {
            if warn.1 > crit.1 {
                return Err(SpecError::field(
                    warn.0,
                    format!(
                        "{} is above `{}` {}: a warning must come first",
                        warn.1, crit.0, crit.1
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Default thresholds for `path`.
    pub fn new(path: impl Into<PathBuf>) -> DiskSpec {
        DiskSpec {
            path: path.into(),
            warn_pct: p85(),
            crit_pct: p95(),
            inode_warn_pct: p85(),
            inode_crit_pct: p95(),
        }
    }
}

/// Usage figures from statvfs numbers (pure, tested without a file system).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub(crate) pct: f64,
    pub(crate) used_bytes: f64,
    pub(crate) total_bytes: f64,
    pub(crate) inode_pct: Option<f64>,
}

pub(crate) fn usage(
    frsize: u64,
    blocks: u64,
    bfree: u64,
    bavail: u64,
    files: u64,
    ffree: u64,
) -> Usage {
    let used = blocks.saturating_sub(bfree) as f64;
    let avail = bavail as f64;
    let pct = if used + avail > 0.0 {
        used / (used + avail) * 100.0
    } else {
        0.0
    };
    // Some file systems (btrfs, some FUSE) report 0 inodes: not applicable.
    let inode_pct = (files > 0).then(|| files.saturating_sub(ffree) as f64 / files as f64 * 100.0);
    Usage {
        pct,
        used_bytes: used * frsize as f64,
        total_bytes: blocks as f64 * frsize as f64,
        inode_pct,
    }
}

pub(crate) async fn check(spec: &DiskSpec) -> Outcome {
    let path = nexus_stdx::expand_home(&spec.path);
    let p = path.clone();
    let st = match tokio::task::spawn_blocking(move || rustix::fs::statvfs(&p)).await {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => {
            return Outcome::critical(format!(
                "Disk check failed: {}: {}",
                path.display(),
                std::io::Error::from(e)
            ));
        }
        Err(e) => return Outcome::unknown(format!("Disk check did not finish: {e}")),
    };
    let u = usage(
        st.f_frsize,
        st.f_blocks,
        st.f_bfree,
        st.f_bavail,
        st.f_files,
        st.f_ffree,
    );
    let space = Status::at_or_above(u.pct, spec.warn_pct, spec.crit_pct);
    let inodes = u.inode_pct.map_or(Status::Ok, |p| {
        Status::at_or_above(p, spec.inode_warn_pct, spec.inode_crit_pct)
    });
    let status = if space == Status::Critical || inodes == Status::Critical {
        Status::Critical
    } else if space == Status::Warning || inodes == Status::Warning {
        Status::Warning
    } else {
        Status::Ok
    };
    let what = match status {
        Status::Critical => "Disk nearly full",
        Status::Warning => "Disk usage high",
        _ => "Disk usage OK",
    };
    let inode_text = u
        .inode_pct
        .map_or(String::new(), |p| format!(", inodes {p:.1} %"));
    let gb = |b: f64| round(b / 1024f64.powi(3), 2);
    Outcome::new(
        status,
        format!("{what}: {} {:.1} % used{inode_text}", path.display(), u.pct),
    )
    .with("path", path.display().to_string())
    .with("usage_pct", round(u.pct, 1))
    .with("used_gb", gb(u.used_bytes))
    .with("total_gb", gb(u.total_bytes))
    .with("inode_usage_pct", u.inode_pct.map(|p| round(p, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_df_use() {
        // 100 blocks, 40 free, 30 available to users: used 60 / (60 + 30).
        let u = usage(4096, 100, 40, 30, 1000, 900);
        assert!((u.pct - 66.666).abs() < 0.01);
        assert_eq!(u.inode_pct, Some(10.0));
        assert_eq!(usage(4096, 0, 0, 0, 0, 0).inode_pct, None);
    }
}
