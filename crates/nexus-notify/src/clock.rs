//! Wall-clock stamps that outlive a process (state files) against a clock
//! that can be set back.
//!
//! A stamp from the future means the clock went back. Waiting for the clock
//! to catch up would silence reminders, cooldowns and flood holds for as
//! long as the jump: a day's jump, a day without alerts. Instead such a
//! stamp counts as long past (at most one early repeat per jump), and a
//! flood hold further ahead than any Telegram `retry_after` is void.

pub(crate) use nexus_stdx::elapsed_since as elapsed;

/// The longest flood-control hold believed: Telegram asks for seconds or
/// minutes; a hold ending further ahead was set before the clock went back.
pub(crate) const MAX_HOLD_SECS: i64 = 24 * 3600;

/// Whether a flood-control hold until `until` still holds at `now`.
pub(crate) fn holds(now: i64, until: i64) -> bool {
    now < until && until - now <= MAX_HOLD_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_beyond_a_day_is_void() {
        assert!(holds(100, 130));
        assert!(!holds(130, 130));
        assert!(holds(0, MAX_HOLD_SECS));
        assert!(
            !holds(0, MAX_HOLD_SECS + 1),
            "set before the clock went back"
        );
    }
}
