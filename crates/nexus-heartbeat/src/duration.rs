//! Durations as people type them on a cron line: `90s`, `5m`, `1h`, `2d`,
//! `250ms`, `1.5h`, or plain seconds.

use std::time::Duration;

use crate::DurationError;

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

/// Serde helper: a duration field written as `"90s"`, `"5m"` or seconds.
///
/// Use as `#[serde(deserialize_with = "nexus_heartbeat::deserialize_duration")]`.
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
