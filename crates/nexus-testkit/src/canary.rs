//! Canary tokens: the secrets the tests hand to the code under test. None
//! of them may ever come back in a log line, an error, a report or an issue
//! title/body/comment. The fake Gitea checks every request it receives
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

/// The canaries found in `text`.
pub fn leaks(text: &[u8]) -> Vec<&'static str> {
    CANARIES
        .iter()
        .copied()
        .filter(|c| text.windows(c.len()).any(|w| w == c.as_bytes()))
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
        assert!(std::panic::catch_unwind(|| assert_no_canary("x", PING_TOKEN.as_bytes())).is_err());
    }
}
