//! What a config check found beyond what the parser refuses: the values
//! that cannot work (errors: the file must not be used) and those that may
//! (warnings: a path a probe needs that may appear later). One shape for
//! every binary's `check-config` and for the daemons, which run the same
//! check at load.

/// A config check's errors and warnings, each a line naming the file's
/// table or probe, the key and the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Values that cannot work.
    pub errors: Vec<String>,
    /// Values that may work later, or only partly.
    pub warnings: Vec<String>,
}

impl Findings {
    /// Records an error.
    pub fn error(&mut self, line: impl Into<String>) {
        self.errors.push(line.into());
    }

    /// Records a warning.
    pub fn warn(&mut self, line: impl Into<String>) {
        self.warnings.push(line.into());
    }

    /// Adds `other`'s lines after this one's.
    pub fn extend(&mut self, other: Findings) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    /// No errors (warnings allowed).
    pub fn usable(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Why `value` is not an absolute URL with one of `schemes` and a host
/// (`http://127.0.0.1:8080/health`), in a user's words; `None` when it
/// is one. A check of the shape a client needs, not a full parse: the
/// scheme, a host, no spaces or control characters.
pub fn url_problem(value: &str, schemes: &[&str]) -> Option<String> {
    let example = format!(
        "{}://127.0.0.1:8080/",
        schemes.first().copied().unwrap_or("http")
    );
    let Some((scheme, rest)) = value.split_once("://") else {
        return Some(format!(
            "{value:?} is not an absolute URL (expected e.g. {example})"
        ));
    };
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Some(format!(
            "{value:?}: the scheme must be {} (e.g. {example})",
            schemes.join(" or ")
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Some(format!("{value:?} has no host (expected e.g. {example})"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("{value:?} contains spaces or control characters"));
    }
    None
}

/// Why `value` is not a percentage (a number from 0 to 100); `None` when
/// it is one.
pub fn percent_problem(value: f64) -> Option<String> {
    (!(0.0..=100.0).contains(&value)).then(|| format!("{value} is not a percentage (0 to 100)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_a_client_can_use_and_those_it_cannot() {
        let http = ["http", "https"];
        for ok in [
            "http://127.0.0.1:8080/health",
            "https://git.example/api?x=1",
            "http://user:pw@host",
            "HTTP://[::1]:80",
        ] {
            assert_eq!(url_problem(ok, &http), None, "{ok}");
        }
        for (bad, says) in [
            (
                "not a url",
                "is not an absolute URL (expected e.g. http://127.0.0.1:8080/)",
            ),
            ("ftp://host/x", "the scheme must be http or https"),
            ("http://", "has no host"),
            ("http://:80/x", "has no host"),
            ("http://host/a b", "contains spaces"),
        ] {
            let got = url_problem(bad, &http).unwrap();
            assert!(got.contains(says), "{bad}: {got}");
        }
        assert!(
            url_problem("http://h", &["ws", "wss"])
                .unwrap()
                .contains("ws or wss")
        );
    }

    #[test]
    fn percentages() {
        assert_eq!(percent_problem(0.0), None);
        assert_eq!(percent_problem(100.0), None);
        assert_eq!(
            percent_problem(185.0).as_deref(),
            Some("185 is not a percentage (0 to 100)")
        );
        assert!(percent_problem(-1.0).is_some());
        assert!(percent_problem(f64::NAN).is_some());
    }

    #[test]
    fn findings_keep_errors_and_warnings_apart() {
        let mut f = Findings::default();
        f.warn("w");
        assert!(f.usable());
        let mut g = Findings::default();
        g.error("e");
        f.extend(g);
        assert!(!f.usable());
        assert_eq!(
            (f.errors, f.warnings),
            (vec!["e".to_string()], vec!["w".to_string()])
        );
    }
}
