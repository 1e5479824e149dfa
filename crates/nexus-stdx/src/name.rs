//! The one rule for names that become a path component: job, host, agent
//! and record names, cell ids, checkpoint file names.

use std::fmt;

/// A name refused by [`validate_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// What was being named (`"job name"`, `"agent name"`, ...).
    pub kind: &'static str,
    /// The rejected name, clipped to 200 characters.
    pub name: String,
    /// Why it was refused.
    pub why: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.kind, self.name, self.why)
    }
}

impl std::error::Error for NameError {}

/// Accepts a name that is safe as one path component and as a file stem:
/// `[A-Za-z0-9._-]{1,max}`, not starting with `.` (hidden files, our temp
/// files, `.` and `..`) or `-` (an option to a command), without `..`
/// anywhere, so never a `/`, a NUL, a control character or a traversal.
/// `kind` names what is being named in the error.
pub fn validate_name(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    // The common case in one pass (the pool checks 10,000 names per sweep);
    // `explain` only words a refusal.
    if plain(name.as_bytes(), max) {
        return Ok(());
    }
    Err(NameError {
        kind,
        name: name.chars().take(200).collect(),
        why: explain(name, max),
    })
}

/// What [`explain`] accepts, in one pass (a property test holds them equal).
fn plain(b: &[u8], max: usize) -> bool {
    !b.is_empty()
        && b.len() <= max
        && b[0] != b'.'
        && b[0] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && !b.windows(2).any(|w| w == b"..")
}

/// The rule, check by check: the first refusal's reason.
fn explain(name: &str, max: usize) -> &'static str {
    if name.is_empty() {
        return "empty";
    }
    if name.len() > max {
        return match max {
            36 => "longer than 36 bytes",
            64 => "longer than 64 bytes",
            128 => "longer than 128 bytes",
            _ => "too long",
        };
    }
    if name.contains('\0') {
        return "contains NUL";
    }
    if name.chars().any(char::is_control) {
        return "contains a control character";
    }
    if name.contains('/') || name.contains('\\') {
        return "contains a path separator";
    }
    if name.contains("..") || name == "." {
        return "contains '..'";
    }
    if name.starts_with('.') {
        return "starts with '.'";
    }
    if name.starts_with('-') {
        return "starts with '-'";
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return "only A-Z a-z 0-9 . _ - are allowed";
    }
    "accepted" // unreachable while `plain` and `explain` agree (tested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in [
            "nightly_watch",
            "db-backup.v2",
            "A9",
            "a.b_c",
            &"x".repeat(64),
        ] {
            validate_name("job name", ok, 64).unwrap();
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let cases = [
            ("", "empty"),
            (".", "contains '..'"),
            ("..", "contains '..'"),
            ("a..b", "contains '..'"),
            ("...", "contains '..'"),
            (".hidden", "starts with '.'"),
            ("-rf", "starts with '-'"),
            ("--help", "starts with '-'"),
            ("a/b", "contains a path separator"),
            ("/etc/passwd", "contains a path separator"),
            ("../../etc/passwd", "contains a path separator"),
            ("a\\b", "contains a path separator"),
            ("x\0y", "contains NUL"),
            ("x\ny", "contains a control character"),
            ("x\r", "contains a control character"),
            ("\u{1b}[31m", "contains a control character"),
            ("x\u{7f}", "contains a control character"),
            ("a b", "only A-Z a-z 0-9 . _ - are allowed"),
            ("é", "only A-Z a-z 0-9 . _ - are allowed"),
            ("a\u{2215}b", "only A-Z a-z 0-9 . _ - are allowed"),
            ("job@host", "only A-Z a-z 0-9 . _ - are allowed"),
            (&"x".repeat(65), "longer than 64 bytes"),
        ];
        for (bad, why) in cases {
            let e = validate_name("job name", bad, 64).unwrap_err();
            assert_eq!(e.why, why, "{bad:?}");
            assert!(e.to_string().starts_with("invalid job name"), "{e}");
        }
        let long = "y".repeat(10_000);
        let e = validate_name("host name", &long, 64).unwrap_err();
        assert_eq!(e.name.len(), 200, "the error clips the name");
    }

    proptest::proptest! {
        #[test]
        fn the_one_pass_check_accepts_what_the_rule_accepts(
            s in proptest::prop_oneof!["[a-z0-9._/\\\\-]{0,70}", "\\PC{0,70}", "[.a\\x00\\x1f\\u{85}-]{0,4}"],
            max in proptest::prop_oneof![proptest::strategy::Just(36usize), proptest::strategy::Just(64usize), 0usize..8],
        ) {
            proptest::prop_assert_eq!(
                plain(s.as_bytes(), max),
                explain(&s, max) == "accepted",
                "{:?} (max {})", s, max
            );
        }
    }

    #[test]
    fn the_fast_path_and_the_explanation_agree() {
        // Every string of up to 3 bytes over an alphabet of the interesting ones.
        let alphabet = ['a', 'Z', '0', '.', '-', '_', '/', '\0', '\n', ' ', '@', 'é'];
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let more: Vec<String> = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(more);
        }
        for n in &names {
            let fast = plain(n.as_bytes(), 3);
            assert_eq!(fast, explain(n, 3) == "accepted", "{n:?}");
        }
    }
}
