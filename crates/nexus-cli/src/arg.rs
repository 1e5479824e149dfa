//! Parsers for clap's `value_parser`, one copy for every binary.

use std::time::Duration;

pub use nexus_stdx::DurationError;

/// A duration flag (`--timeout 5s`, `--interval 1m`, `--stale-threshold
/// 300`): `90s`, `5m`, `1h`, `2d`, `250ms`, `1.5h` or plain seconds, as
/// `nexus_stdx::parse_duration` reads them. Negative, non-finite and absurd
/// (over 100 years) values are refused with a message naming the input;
/// zero is accepted here, and refused by the binaries where a period must
/// be positive. Use as `#[arg(long, value_parser = nexus_cli::duration_arg)]`.
pub fn duration_arg(s: &str) -> Result<Duration, DurationError> {
    nexus_stdx::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_typed_and_clear_refusals() {
        assert_eq!(duration_arg("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration_arg("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration_arg("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration_arg("0"), Ok(Duration::ZERO));
        for bad in ["-5s", "5x", "", "inf", "1e400"] {
            let e = duration_arg(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("90s, 5m"), "{e}");
        }
    }
}
