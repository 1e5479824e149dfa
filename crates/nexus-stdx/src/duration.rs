//! Durations as people type them on a cron line: `90s`, `5m`, `1h`, `2d`,
//! `250ms`, `1.5h`, or plain seconds; and how the panels print them.

use std::fmt;
use std::time::Duration;

/// A duration string that is not `90s`, `5m`, `1h`, `2d`, `250ms` or plain seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// Text as given, untrimmed.
    pub input: String,
    /// Why it was rejected.
    pub why: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {} (use e.g. 90s, 5m, 1h, 2d or plain seconds)",
            self.input, self.why
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses `90s`, `5m`, `1h`, `2d`, `250ms`, `1.5h` or plain seconds (`300`).
///
/// Negative, non-finite and absurd (over 100 years) values are rejected.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("durations cannot be negative"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err("no number"));
    }
    let value: f64 = num.parse().map_err(|_| err("not a number"))?;
    let factor = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        _ => return Err(err("unknown unit")),
    };
    let secs = value * factor;
    if !secs.is_finite() || secs > 100.0 * 365.0 * 86_400.0 {
        return Err(err("out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(feature = "serde")]
/// Serde helper: a duration field written as `"90s"`, `"5m"` or seconds.
///
/// Use as `#[serde(deserialize_with = "nexus_stdx::deserialize_duration")]`.
pub fn deserialize_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    match <Raw as serde::Deserialize>::deserialize(d)? {
        Raw::Secs(s) if s.is_finite() && (0.0..1e10).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Raw::Secs(s) => Err(serde::de::Error::custom(format!(
            "duration {s} is not a number of seconds"
        ))),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// [`deserialize_duration`] for an `Option<Duration>` field that is present
/// (pair it with `#[serde(default)]` for an absent one).
#[cfg(feature = "serde")]
pub fn deserialize_opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(d).map(Some)
}

/// Formats seconds the way the Night Watch panel prints them:
/// `<60s` → `"Ns"`, `<1h` → `"Nm Ss"`, `<1d` → `"Nh Mm"`, else `"Nd Hh"`.
/// Negative ages (clock skew) get a leading `-`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".to_string();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    // Truncation toward zero is the intent; the cast saturates on huge values.
    let s = seconds.abs() as u64;
    let body = if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            ("90s", 90.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("2d", 172_800.0),
            ("300", 300.0),
            ("250ms", 0.25),
            ("1.5h", 5400.0),
            (" 10 s ", 10.0),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_duration(input).unwrap().as_secs_f64(),
                secs,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_garbage_with_the_input_in_the_message() {
        for input in ["", "s", "-5s", "5x", "1e400", "..s", "9999999999d"] {
            let e = parse_duration(input).unwrap_err();
            assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
        }
    }

    #[test]
    fn formats_like_the_panel() {
        assert_eq!(format_duration(59.9), "59s");
        assert_eq!(format_duration(61.0), "1m 1s");
        assert_eq!(format_duration(3600.0 + 120.0), "1h 2m");
        assert_eq!(format_duration(90_000.0), "1d 1h");
        assert_eq!(format_duration(-5.0), "-5s");
        assert_eq!(format_duration(f64::NAN), "?");
    }
}

#[cfg(all(test, feature = "serde"))]
mod serde_tests {
    use std::time::Duration;

    #[derive(serde::Deserialize)]
    struct Cfg {
        #[serde(deserialize_with = "super::deserialize_duration")]
        every: Duration,
        #[serde(default, deserialize_with = "super::deserialize_opt_duration")]
        within: Option<Duration>,
    }

    #[test]
    fn reads_text_and_seconds_and_rejects_negative_seconds() {
        let c: Cfg = serde_json::from_str(r#"{"every": "5m", "within": 2.5}"#).unwrap();
        assert_eq!(c.every, Duration::from_secs(300));
        assert_eq!(c.within, Some(Duration::from_secs_f64(2.5)));
        let c: Cfg = serde_json::from_str(r#"{"every": 90}"#).unwrap();
        assert_eq!((c.every, c.within), (Duration::from_secs(90), None));
        let e = serde_json::from_str::<Cfg>(r#"{"every": -1}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a number of seconds"), "{e}");
        let e = serde_json::from_str::<Cfg>(r#"{"every": "5x"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}
