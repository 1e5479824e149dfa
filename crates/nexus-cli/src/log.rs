//! The one log subscriber every binary installs ([`init_logging`]): the
//! libraries' `tracing` events (a Gitea that refused the assignees, a
//! Telegram 5xx, a pool's sweep) go to stderr, never to stdout where a
//! binary prints its report or JSON, filtered by `NEXUS_LOG` with the same
//! rules in every binary.

use tracing_subscriber::EnvFilter;

/// The variable every binary reads its log filter from (`warn`, `debug`,
/// `nexus_gitea=debug,info`: `tracing_subscriber`'s `EnvFilter` syntax).
pub const LOG_ENV: &str = "NEXUS_LOG";

/// The level a one-shot run logs at when `NEXUS_LOG` is unset: warnings
/// and errors only, so a cron job's mail stays quiet when all is well.
pub const ONE_SHOT: &str = "warn";

/// The level a daemon logs at when `NEXUS_LOG` is unset: what it does too.
pub const DAEMON: &str = "info";

/// The filter for a `NEXUS_LOG` value: `default` when it is unset, empty
/// or blank; `default` too when it does not parse, with the reason to say
/// so (a typo never silences the warnings nor fails the run).
fn filter(value: Option<&str>, default: &str) -> (EnvFilter, Option<String>) {
    let fallback = || EnvFilter::try_new(default).unwrap_or_else(|_| EnvFilter::new(ONE_SHOT));
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => (fallback(), None),
        Some(v) => match EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(e) => (
                fallback(),
                Some(format!(
                    "{LOG_ENV}: not a log filter ({e}); logging at `{default}` instead"
                )),
            ),
        },
    }
}

/// Installs the process's log subscriber once: every `tracing` event at or
/// above `NEXUS_LOG`'s filter (else `default`, e.g. [`ONE_SHOT`] or
/// [`DAEMON`]) as one line on stderr, through [`crate::stderr`] (so a
/// closed or full stderr never panics), coloured only on a terminal. A
/// second call does nothing. Call it first thing in `main`.
pub fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let value = std::env::var(LOG_ENV).ok();
    let (filter, problem) = filter(value.as_deref(), default);
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(crate::stderr)
        .with_target(false)
        .try_init()
        .is_ok();
    if let (true, Some(p)) = (installed, problem) {
        crate::errln!("{p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(f: &EnvFilter) -> String {
        f.to_string()
    }

    #[test]
    fn nexus_log_wins_and_blank_or_bad_falls_back_to_the_default() {
        let (f, p) = filter(None, ONE_SHOT);
        assert_eq!((shown(&f), p), ("warn".to_string(), None));
        let (f, p) = filter(Some("  "), DAEMON);
        assert_eq!((shown(&f), p), ("info".to_string(), None));
        let (f, p) = filter(Some("nexus_gitea=debug,error"), ONE_SHOT);
        assert!(shown(&f).contains("nexus_gitea=debug"), "{f}");
        assert_eq!(p, None);
        let (f, p) = filter(Some("warn,=[bad"), ONE_SHOT);
        assert_eq!(shown(&f), "warn");
        let p = p.unwrap();
        assert!(p.starts_with("NEXUS_LOG: not a log filter"), "{p}");
    }
}
