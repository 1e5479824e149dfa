//! The open-file budget: how the pool's descriptors are shared between
//! probes, HTTP connections and its own work.
//!
//! The pool raises its soft `RLIMIT_NOFILE` to the hard one (as systemd
//! recommends for daemons that need many sockets), then splits it:
//! - a **reserve** of [`RESERVE`] descriptors (at most half the limit) that
//!   neither probes nor HTTP clients can take: cell manifests and
//!   heartbeats, the state file, the pool's own heartbeat, launched agents'
//!   log files, the runtime;
//! - at most [`MAX_HTTP_CONNECTIONS`] (and a quarter of the rest) live HTTP
//!   connections: a client beyond them is answered 503 and closed at once;
//! - the probes, up to `max_parallel_probes`, get what is left.
//!
//! So a flood of idle connections or a thousand hung gateways can never
//! take the descriptors the pool needs to read a cell, save its state or
//! write its heartbeat.

use rustix::process::{Resource, getrlimit, setrlimit};

/// Descriptors kept for the pool's own files and runtime.
pub const RESERVE: usize = 64;

/// Live HTTP connections at most (loopback: a browser, a scraper and the
/// `/ping`s of the fleet's cron jobs, each a short request).
pub const MAX_HTTP_CONNECTIONS: usize = 256;

/// How the open-file limit is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Soft `RLIMIT_NOFILE`, after raising it to the hard limit where possible.
    pub limit: u64,
    /// Kept for the pool's own work.
    pub reserve: usize,
    /// Live HTTP connections at most.
    pub http: usize,
    /// Probes running at once at most.
    pub probes: usize,
}

impl FdBudget {
    /// The budget under `limit` descriptors for up to `wanted` probes.
    pub fn split(limit: u64, wanted: usize) -> FdBudget {
        let total = usize::try_from(limit).unwrap_or(usize::MAX);
        let reserve = RESERVE.min(total / 2);
        let avail = total - reserve;
        let http = (avail / 4).clamp(1, MAX_HTTP_CONNECTIONS);
        let probes = wanted.min(avail.saturating_sub(http)).max(1);
        FdBudget {
            limit,
            reserve,
            http,
            probes,
        }
    }

    /// The budget of this process, its soft limit first raised to the hard
    /// one where it is lower.
    pub fn current(wanted: usize) -> FdBudget {
        FdBudget::split(raise_limit(), wanted)
    }
}

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// in force.
pub fn raise_limit() -> u64 {
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::debug!("cannot raise the open-file limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_never_shared() {
        for limit in [8u64, 64, 128, 1024, 20_000, 1 << 20, u64::MAX] {
            for wanted in [1usize, 16, 1024, usize::MAX] {
                let b = FdBudget::split(limit, wanted);
                let total = usize::try_from(limit).unwrap_or(usize::MAX);
                assert!(b.http >= 1 && b.probes >= 1, "{b:?}");
                assert!(
                    b.http <= MAX_HTTP_CONNECTIONS && b.probes <= wanted,
                    "{b:?}"
                );
                if total >= 2 * RESERVE {
                    assert_eq!(b.reserve, RESERVE, "{b:?}");
                    assert!(b.reserve + b.http + b.probes <= total, "{b:?}");
                }
            }
        }
        let b = FdBudget::split(128, 1024);
        assert_eq!((b.reserve, b.http, b.probes), (64, 16, 48));
        let b = FdBudget::split(1 << 20, 1024);
        assert_eq!((b.reserve, b.http, b.probes), (64, 256, 1024));
    }
}
