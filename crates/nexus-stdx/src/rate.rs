//! One sliding-window rate limiter over wall-clock epoch seconds.

use std::collections::VecDeque;

use crate::clock::elapsed_since;

/// At most `max` actions in any `window` seconds (`max == 0`: no limit).
///
/// Times are wall-clock epoch seconds, so a window can be saved to a state
/// file and taken up again by another process ([`SlidingWindow::with_times`]).
/// A clock set back cannot unlock a burst: a saved time in the future
/// counts as now, so it expires one window from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    max: usize,
    window: i64,
    sent: VecDeque<i64>,
}

impl SlidingWindow {
    /// An empty window of `max` actions (0: no limit) per `window` seconds.
    pub fn new(max: usize, window: i64) -> SlidingWindow {
        SlidingWindow {
            max,
            window,
            sent: VecDeque::new(),
        }
    }

    /// A window holding `times` (as saved by another run), judged at `now`.
    pub fn with_times(
        max: usize,
        window: i64,
        times: impl IntoIterator<Item = i64>,
        now: i64,
    ) -> SlidingWindow {
        let mut w = SlidingWindow::new(max, window);
        w.replace(times, now);
        w
    }

    /// Takes the times another run saved: times in the future (the clock
    /// was set back) count as now; only the newest `max` are kept.
    pub fn replace(&mut self, times: impl IntoIterator<Item = i64>, now: i64) {
        let mut times: Vec<i64> = times.into_iter().map(|t| t.min(now)).collect();
        times.sort_unstable();
        let keep = times.len().saturating_sub(self.max);
        self.sent = times.into_iter().skip(keep).collect();
    }

    /// Forgets the actions that left the window and says whether one more
    /// is allowed at `now`.
    pub fn allows(&mut self, now: i64) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| elapsed_since(now, *t) >= self.window)
        {
            self.sent.pop_front();
        }
        self.max == 0 || self.sent.len() < self.max
    }

    /// Counts an action at `now`; returns whether the window changed (it
    /// keeps nothing without a limit).
    pub fn record(&mut self, now: i64) -> bool {
        if self.max == 0 {
            return false;
        }
        self.sent.push_back(now);
        true
    }

    /// The most actions per window (0: no limit).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Actions counted in the window.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// No action counted.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// The counted times, oldest first (what a state file saves).
    pub fn times(&self) -> Vec<i64> {
        self.sent.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_per_window_then_slides() {
        let mut w = SlidingWindow::new(2, 60);
        assert!(w.allows(0));
        w.record(0);
        assert!(w.allows(10));
        w.record(10);
        assert!(!w.allows(59), "two in the last minute");
        assert!(w.allows(60), "the first left the window");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn zero_is_no_limit_and_keeps_nothing() {
        let mut w = SlidingWindow::new(0, 60);
        for t in 0..100 {
            assert!(w.allows(t));
            assert!(!w.record(t));
        }
        assert!(w.is_empty());
    }

    #[test]
    fn a_clock_set_back_does_not_unlock_a_burst() {
        // Saved at t = 1000, read after the clock went back to t = 100.
        let mut w = SlidingWindow::with_times(2, 60, [1000, 990, 5], 100);
        assert_eq!(w.times(), vec![100, 100], "the newest two, clamped to now");
        assert!(!w.allows(100));
        assert!(!w.allows(159));
        assert!(w.allows(160), "one window after now");
    }
}
