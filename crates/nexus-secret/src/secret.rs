//! [`Secret`]: the one type every token and connection string is held in.

use std::fmt;

use crate::REDACTED;

/// A token, key or connection string. `Debug` prints `Secret("***")` and
/// `Display` prints `***`, so a settings struct holding one can derive
/// `Debug` and still never show it; [`Secret::expose`] is the one way to
/// the value, for handing it to a client or a driver. The bytes are
/// overwritten when it is dropped (best effort: a `String` that grew may
/// have left copies behind).
///
/// With the `serde` feature it deserialises from a string (a seed file's
/// token, a probe's header); it never serialises.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value as it is.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Wraps `raw` trimmed of surrounding whitespace (tokens read from env
    /// files often carry a newline); `None` if nothing is left.
    pub fn trimmed(raw: &str) -> Option<Secret> {
        let t = raw.trim();
        (!t.is_empty()).then(|| Secret(t.to_owned()))
    }

    /// The value, for handing to a client or a driver: never for a log
    /// line, an error or a file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `candidate` is this value, compared in time independent of where
    /// the two differ (a token or a CSRF value checked on a request).
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Empty or whitespace only.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED:?})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "s3cr3t-canary-0xC0FFEE";

    #[test]
    fn matches_only_the_same_value() {
        let s = Secret::new(CANARY);
        assert!(s.matches(CANARY));
        assert!(!s.matches(&CANARY[1..]));
        assert!(!s.matches(&format!("{CANARY}x")));
        assert!(!s.matches(&CANARY.replace('0', "1")));
        assert!(!s.matches(""));
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new(CANARY);
        assert_eq!(format!("{s:?}"), "Secret(\"***\")");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(\"***\"))");
        assert_eq!(s.expose(), CANARY);
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Settings {
            url: String,
            token: Option<Secret>,
        }
        let shown = format!(
            "{:#?}",
            Settings {
                url: "https://example.org".into(),
                token: Some(s),
            }
        );
        assert!(
            !shown.contains(CANARY) && shown.contains("example.org"),
            "{shown}"
        );
    }

    #[test]
    fn trimmed_drops_whitespace_and_refuses_blank() {
        assert_eq!(
            Secret::trimmed(" a\n").map(|s| s.expose().to_owned()),
            Some("a".into())
        );
        assert!(Secret::trimmed(" \n").is_none());
        assert!(Secret::new(" ").is_blank() && !Secret::new("x").is_blank());
    }
}
