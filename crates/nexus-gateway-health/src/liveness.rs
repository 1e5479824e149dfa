//! What the health answer is made of: when the gateway's loop last ran and
//! how many clients it holds, kept in atomics so the accept loop's tick is a
//! single store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A handle on the gateway's liveness; clones share it.
///
/// Times are monotonic (nanoseconds since the handle was made): a wall
/// clock set back or forward never makes a wedged gateway look live.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    ws_port: u16,
    /// Nanoseconds since `base` of the start of the uptime.
    started: AtomicU64,
    /// Nanoseconds since `base` of the last tick, plus one; 0: never.
    last_tick: AtomicU64,
    /// Connected clients; `None`: not counted (the sidecar cannot see them).
    clients: Option<AtomicU64>,
}

/// What [`Liveness::snapshot`] saw, the input of [`crate::respond`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// The gateway's WebSocket port (`ws_port` in the body).
    pub ws_port: u16,
    /// Since the uptime's start.
    pub uptime: Duration,
    /// Since the last tick; `None`: the loop never ticked.
    pub since_tick: Option<Duration>,
    /// Connected clients; `None` when they are not counted.
    pub connected_clients: Option<u64>,
}

/// Held by each connection the gateway serves; the count drops with it.
#[derive(Debug)]
#[must_use = "the client is counted while the guard lives"]
pub struct ClientGuard {
    live: Option<Liveness>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        if let Some(c) = self.live.as_ref().and_then(|l| l.inner.clients.as_ref()) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Liveness {
    /// A liveness for a gateway on `ws_port` that counts its clients
    /// ([`Liveness::client`]); the uptime starts now, no tick yet.
    pub fn new(ws_port: u16) -> Liveness {
        Liveness::make(ws_port, Some(AtomicU64::new(0)))
    }

    /// A liveness that does not count clients: the body says
    /// `"connected_clients": null` (the sidecar: it cannot see the
    /// clients of a gateway in another process).
    pub fn uncounted(ws_port: u16) -> Liveness {
        Liveness::make(ws_port, None)
    }

    fn make(ws_port: u16, clients: Option<AtomicU64>) -> Liveness {
        Liveness {
            inner: Arc::new(Inner {
                base: Instant::now(),
                ws_port,
                started: AtomicU64::new(0),
                last_tick: AtomicU64::new(0),
                clients,
            }),
        }
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.inner.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The loop ran: called by the gateway's accept loop on every turn (a
    /// relaxed store; cheap enough for every accept).
    pub fn tick(&self) {
        self.inner
            .last_tick
            .store(self.nanos().saturating_add(1), Ordering::Relaxed);
    }

    /// Starts the uptime again now (the sidecar: the gateway came back after
    /// it was found not live, so what it knows of its uptime starts here).
    pub fn restart_uptime(&self) {
        self.inner.started.store(self.nanos(), Ordering::Relaxed);
    }

    /// Counts one connected client until the guard is dropped (a no-op on
    /// an [`Liveness::uncounted`] liveness).
    pub fn client(&self) -> ClientGuard {
        match &self.inner.clients {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
                ClientGuard {
                    live: Some(self.clone()),
                }
            }
            None => ClientGuard { live: None },
        }
    }

    /// Port given at construction; `ws_port` in the health body.
    pub fn ws_port(&self) -> u16 {
        self.inner.ws_port
    }

    /// What the health answer is made of, now.
    pub fn snapshot(&self) -> Snapshot {
        let now = self.nanos();
        let ago = |t: u64| Duration::from_nanos(now.saturating_sub(t));
        let tick = self.inner.last_tick.load(Ordering::Relaxed);
        Snapshot {
            ws_port: self.inner.ws_port,
            uptime: ago(self.inner.started.load(Ordering::Relaxed)),
            since_tick: (tick > 0).then(|| ago(tick - 1)),
            connected_clients: self
                .inner
                .clients
                .as_ref()
                .map(|c| c.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_ticked_until_it_ticks() {
        let l = Liveness::new(8765);
        assert_eq!(l.snapshot().since_tick, None);
        l.tick();
        let s = l.snapshot();
        assert!(
            s.since_tick.is_some_and(|d| d < Duration::from_secs(5)),
            "{s:?}"
        );
        assert_eq!(s.ws_port, 8765);
    }

    #[test]
    fn guards_count_clients_while_they_live() {
        let l = Liveness::new(1);
        assert_eq!(l.snapshot().connected_clients, Some(0));
        let a = l.client();
        let b = l.clone().client();
        assert_eq!(l.snapshot().connected_clients, Some(2));
        drop(a);
        assert_eq!(l.snapshot().connected_clients, Some(1));
        drop(b);
        assert_eq!(l.snapshot().connected_clients, Some(0));
    }

    #[test]
    fn an_uncounted_liveness_knows_no_number() {
        let l = Liveness::uncounted(1);
        let g = l.client();
        assert_eq!(l.snapshot().connected_clients, None);
        drop(g);
        assert_eq!(l.snapshot().connected_clients, None);
    }

    #[test]
    fn the_uptime_restarts() {
        let l = Liveness::new(1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while l.snapshot().uptime < Duration::from_millis(20) {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        let before = l.snapshot().uptime;
        l.restart_uptime();
        assert!(l.snapshot().uptime < before);
    }
}
