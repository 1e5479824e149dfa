//! The wall clock as epoch seconds, intervals across clock jumps, and epoch
//! seconds as RFC 3339 text.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as a float (the heartbeat time base).
pub fn now_epoch() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Seconds from `then` to `now` (epoch seconds) for intervals kept in state
/// files across processes, where the wall clock is the only clock they share.
/// A `then` in the future means the clock was set back: it counts as long
/// past, so a jump costs at most one early repeat (a reminder, a comment),
/// never a silence as long as the jump.
pub fn elapsed_since(now: i64, then: i64) -> i64 {
    if then > now { i64::MAX } else { now - then }
}

/// Epoch seconds as RFC 3339 UTC to the second (`2027-01-15T08:00:00Z`;
/// fractions are floored). Years 0000 to 9999 only: anything else (or a
/// value that is not finite) is written `@<epoch>`, never a wrong date.
pub fn rfc3339(epoch: f64) -> String {
    // 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
    const MIN: f64 = -62_167_219_200.0;
    const END: f64 = 253_402_300_800.0;
    if !epoch.is_finite() || !(MIN..END).contains(&epoch) {
        return format!("@{epoch}");
    }
    // Civil from days (H. Hinnant), fast enough for 10,000 rows a check.
    let secs = epoch.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_from_the_future_is_long_past() {
        assert_eq!(elapsed_since(100, 40), 60);
        assert_eq!(elapsed_since(100, 100), 0);
        assert_eq!(elapsed_since(100, 101), i64::MAX);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_epoch() > 1_577_836_800.0);
    }

    #[test]
    fn rfc3339_known_dates() {
        for (epoch, want) in [
            (0.0, "1970-01-01T00:00:00Z"),
            (1.5, "1970-01-01T00:00:01Z"),
            (-1.0, "1969-12-31T23:59:59Z"),
            (951_782_400.0, "2000-02-29T00:00:00Z"),
            (1_800_000_000.0, "2027-01-15T08:00:00Z"),
            (4_102_444_799.9, "2099-12-31T23:59:59Z"),
            (221_845_392_000.0, "9000-01-01T00:00:00Z"),
            (253_402_300_799.0, "9999-12-31T23:59:59Z"),
            (-62_167_219_200.0, "0000-01-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(epoch), want, "{epoch}");
        }
        for odd in [f64::NAN, f64::INFINITY, 253_402_300_800.0, -1e300] {
            assert!(rfc3339(odd).starts_with('@'), "{odd}");
        }
    }
}
