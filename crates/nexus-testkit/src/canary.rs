//! Canary tokens: the secrets the tests hand to the code under test. None
//! of them may ever come back in a log line, an error, a report or an issue
//! title/body/comment, as is or encoded ([`forms`]). The fake Gitea checks every request it receives
//! ([`crate::gitea::Fake`] fails the test on drop), and the e2e helpers
//! check every captured stdout/stderr through [`Run`], in the e2e package
//! and in every binary's own CLI tests (a test in `tests/it/canary.rs`
//! fails when a test captures output any other way).

use std::io;
use std::process::{Child, Command, Output};

/// Every token the tests use. A test that needs a token takes one of these
/// (or adds it here), so the checks cover it.
pub const CANARIES: &[&str] = &[crate::gitea::TOKEN, TELEGRAM_TOKEN, PING_TOKEN];

/// A Telegram bot token (`<bot id>:<secret>`).
pub const TELEGRAM_TOKEN: &str = "123456:test-token";
/// A `/ping` bearer token (at least 16 characters, as the pool requires).
pub const PING_TOKEN: &str = "canary-p1ng-t0ken-0123456789";

/// The forms a canary can be echoed in by a server that reflects a
/// request: as is, percent-encoded (upper- and lower-case hex), and the
/// base64 characters that encode it alone at each of the three byte
/// alignments of a longer text (standard and URL-safe alphabets). Computed
/// with the `base64` crate, independently of the code under test.
pub fn forms(canary: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut out = vec![canary.to_string()];
    for upper in [true, false] {
        let mut p = String::new();
        for b in canary.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    p.push(char::from(b))
                }
                _ if upper => p.push_str(&format!("%{b:02X}")),
                _ => p.push_str(&format!("%{b:02x}")),
            }
        }
        out.push(p);
    }
    for align in 0..3usize {
        let mut data = vec![b'x'; align];
        data.extend_from_slice(canary.as_bytes());
        for engine in [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let enc = engine.encode(&data);
            // Characters touching the prefix or the (missing) next byte
            // depend on what surrounds the canary: keep the rest.
            let first = (8 * align).div_ceil(6);
            let end = 8 * data.len() / 6;
            out.push(enc[first..end].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The canaries found in `text`, in any of their [`forms`].
pub fn leaks(text: &[u8]) -> Vec<&'static str> {
    static FORMS: std::sync::OnceLock<Vec<(&'static str, Vec<String>)>> =
        std::sync::OnceLock::new();
    FORMS
        .get_or_init(|| CANARIES.iter().map(|c| (*c, forms(c))).collect())
        .iter()
        .filter(|(_, forms)| {
            forms
                .iter()
                .any(|f| text.windows(f.len()).any(|w| w == f.as_bytes()))
        })
        .map(|(c, _)| *c)
        .collect()
}

/// Panics, naming `what` and the canary (the canary is a test value, safe
/// to print), when `text` holds one.
pub fn assert_no_canary(what: &str, text: &[u8]) {
    let found = leaks(text);
    assert!(
        found.is_empty(),
        "a secret leaked into {what}: {found:?}\n---\n{}",
        String::from_utf8_lossy(text)
    );
}

/// Runs a command or waits for a child, capturing its output, and panics if
/// a canary token is in its stdout or stderr. Use instead of `output()` and
/// `wait_with_output()` (same results otherwise).
pub trait Run {
    /// The captured output, checked.
    fn run(self) -> io::Result<Output>;
}

impl Run for &mut Command {
    fn run(self) -> io::Result<Output> {
        let what = format!("{:?}", self.get_program());
        let o = self.output()?;
        checked(&what, &o);
        Ok(o)
    }
}

impl Run for Child {
    fn run(self) -> io::Result<Output> {
        let what = format!("child {}", self.id());
        let o = self.wait_with_output()?;
        checked(&what, &o);
        Ok(o)
    }
}

fn checked(what: &str, o: &Output) {
    assert_no_canary(&format!("the stdout of {what}"), &o.stdout);
    assert_no_canary(&format!("the stderr of {what}"), &o.stderr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_canary_and_nothing_else() {
        for c in CANARIES {
            assert_eq!(leaks(format!("log: token={c}\n").as_bytes()), [*c]);
        }
        assert!(leaks(b"token=*** (redacted)").is_empty());
        // Encoded as a reflecting server would: percent- or base64-encoded,
        // anywhere in a longer text.
        use base64::Engine as _;
        for pre in ["", "a", "ab", "authorization: token "] {
            for c in CANARIES {
                let text = format!("{pre}{c} trailing");
                for enc in [
                    base64::engine::general_purpose::STANDARD.encode(&text),
                    base64::engine::general_purpose::URL_SAFE.encode(&text),
                    text.replace(':', "%3A"),
                    text.replace(':', "%3a"),
                ] {
                    assert_eq!(leaks(enc.as_bytes()), [*c], "{enc}");
                }
            }
        }
        assert!(std::panic::catch_unwind(|| assert_no_canary("x", PING_TOKEN.as_bytes())).is_err());
    }
}
