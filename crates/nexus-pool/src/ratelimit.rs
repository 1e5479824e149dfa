//! A token bucket for an HTTP endpoint: `burst` requests at once, refilled
//! at `per_minute`. Monotonic time ([`Instant`]), so a wall clock set back
//! neither opens nor closes the gate. One bucket per endpoint (not per
//! client): it bounds the work and the disk writes a flood can cause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Token-bucket limit for the `/ping` endpoint (`burst` and `per_minute`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests accepted at once after a quiet period.
    pub burst: u32,
    /// Steady rate, requests per minute.
    pub per_minute: u32,
}

impl Default for RateLimit {
    /// 60 at once, 600 a minute: ten pings a second from a fleet is plenty.
    fn default() -> RateLimit {
        RateLimit {
            burst: 60,
            per_minute: 600,
        }
    }
}

/// Token bucket shared by all senders; thread-safe.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// Starts full: `burst` tokens available at once.
    pub fn new(limit: RateLimit) -> TokenBucket {
        TokenBucket {
            limit,
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Takes one token now, or says how long until one is there.
    pub fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    /// [`TokenBucket::take`] at a given instant (tests drive time).
    pub fn take_at(&self, now: Instant) -> Result<(), Duration> {
        let per_sec = f64::from(self.limit.per_minute) / 60.0;
        let cap = f64::from(self.limit.burst.max(1));
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let (tokens, last) = *s;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * per_sec).min(cap);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now.max(last));
            Ok(())
        } else {
            *s = (tokens, now.max(last));
            let wait = if per_sec > 0.0 {
                (1.0 - tokens) / per_sec
            } else {
                3600.0
            };
            Err(Duration::from_secs_f64(wait.clamp(0.001, 3600.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let b = TokenBucket::new(RateLimit {
            burst: 3,
            per_minute: 60,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take_at(t0).is_ok());
        }
        let wait = b.take_at(t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // One token a second comes back, never more than the burst.
        assert!(b.take_at(t0 + Duration::from_secs(1)).is_ok());
        assert!(b.take_at(t0 + Duration::from_secs(1)).is_err());
        let later = t0 + Duration::from_secs(3600);
        let taken = (0..10).filter(|_| b.take_at(later).is_ok()).count();
        assert_eq!(taken, 3);
        // An instant before the last one (not possible with Instant, but
        // harmless): no tokens are minted.
        assert!(b.take_at(t0).is_err());
    }

    #[test]
    fn zero_rate_is_closed_after_the_burst() {
        let b = TokenBucket::new(RateLimit {
            burst: 1,
            per_minute: 0,
        });
        let t0 = Instant::now();
        assert!(b.take_at(t0).is_ok());
        assert_eq!(
            b.take_at(t0 + Duration::from_secs(10)).unwrap_err(),
            Duration::from_secs(3600)
        );
    }
}
