//! The `/ping` URL grammar: how a cron job on another host reports a run to
//! the resurrection pool. One type, [`Ping`], for both sides: the heartbeat
//! CLI formats it (`nexus-heartbeat touch|run --url`), the pool's server
//! parses it.
//!
//! ```text
//! POST /ping/<job>[/start|/fail|/<exit code 0-255>]?host=<host>[&interval=<duration>]
//! ```
//!
//! `<job>` and `<host>` follow the safe-name rule, whose characters need no
//! percent-encoding: a `%` (or anything else outside it) is refused, never
//! decoded. The pool stores the ping as the record `<job>@<host>.last`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::{CronDirs, JobNameError};

/// What a ping says about the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingKind {
    /// The job succeeded (`/ping/<job>` or `/ping/<job>/0`).
    Success,
    /// A run started (`/start`).
    Start,
    /// The run failed with this exit code, never 0 (`/fail` is 1).
    Exit(u8),
}

impl PingKind {
    /// The kind for a finished run's exit code (0: success; a code outside
    /// 0..=255 is a failure, 1).
    pub fn exit(code: i32) -> PingKind {
        match u8::try_from(code) {
            Ok(0) => PingKind::Success,
            Ok(c) => PingKind::Exit(c),
            Err(_) => PingKind::Exit(1),
        }
    }
}

/// One ping: a run of `job` on `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// The job (a safe name, no `@`).
    pub job: String,
    /// The sending host (a safe name, at most 64 bytes).
    pub host: String,
    /// What happened.
    pub kind: PingKind,
    /// The job's interval, when the ping names one (the pool has a default).
    pub interval: Option<Duration>,
}

/// Why a request is not a valid ping; the text is the pool's 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// Not `/ping/<job>` with an optional `/start`, `/fail` or exit code.
    #[error("expected /ping/<job>, /start, /fail or /<exit code 0-255>")]
    Path,
    /// The job or host name is refused by the safe-name rule.
    #[error(transparent)]
    Name(#[from] JobNameError),
    /// No `host` parameter.
    #[error("name the sending host: ?host=<name> (nexus-heartbeat --url sends it)")]
    NoHost,
    /// A query parameter appears twice.
    #[error("query parameter `{0}` given twice")]
    Repeated(&'static str),
    /// `interval` is not a duration.
    #[error("{0}")]
    Interval(#[from] nexus_stdx::DurationError),
    /// `interval` is zero.
    #[error("interval must be positive")]
    ZeroInterval,
}

impl Ping {
    /// A ping of `job` from `host`, both checked by the safe-name rule.
    pub fn new(
        job: &str,
        host: &str,
        kind: PingKind,
        interval: Option<Duration>,
    ) -> Result<Ping, PingError> {
        CronDirs::validate_job_name(job)?;
        crate::dirs::validate_host_name(host)?;
        if interval.is_some_and(|d| d.is_zero()) {
            return Err(PingError::ZeroInterval);
        }
        Ok(Ping {
            job: job.to_string(),
            host: host.to_string(),
            kind,
            interval,
        })
    }

    /// Parses a request's path (`/ping/<job>[/<what>]`) and query string
    /// (without the `?`). Unknown query parameters are ignored.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Ping, PingError> {
        let rest = path.strip_prefix("/ping/").ok_or(PingError::Path)?;
        let (job, kind) = match rest.split_once('/') {
            None => (rest, PingKind::Success),
            Some((job, what)) => (
                job,
                match what {
                    "start" => PingKind::Start,
                    "fail" => PingKind::Exit(1),
                    code if code.bytes().all(|b| b.is_ascii_digit()) => match code.parse::<u8>() {
                        Ok(c) => PingKind::exit(i32::from(c)),
                        Err(_) => return Err(PingError::Path),
                    },
                    _ => return Err(PingError::Path),
                },
            ),
        };
        CronDirs::validate_job_name(job)?;
        let (mut host, mut interval) = (None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "host" => &mut host,
                "interval" => &mut interval,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(PingError::Repeated(if key == "host" {
                    "host"
                } else {
                    "interval"
                }));
            }
        }
        let host = host.ok_or(PingError::NoHost)?;
        let interval = interval.map(nexus_stdx::parse_duration).transpose()?;
        Ping::new(job, host, kind, interval)
    }

    /// The path and query this ping is sent to, to append to the pool's
    /// base URL: `/ping/<job>[/start|/<code>]?host=<host>[&interval=<secs>]`.
    pub fn path_and_query(&self) -> String {
        let mut s = format!("/ping/{}", self.job);
        match self.kind {
            PingKind::Success => {}
            PingKind::Start => s.push_str("/start"),
            PingKind::Exit(c) => {
                let _ = write!(s, "/{c}");
            }
        }
        let _ = write!(s, "?host={}", self.host);
        if let Some(d) = self.interval {
            let _ = write!(s, "&interval={}", d.as_secs().max(1));
        }
        s
    }

    /// The record the pool stores the ping as: `<job>@<host>`.
    pub fn record_name(&self) -> String {
        format!("{}@{}", self.job, self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_same_grammar() {
        for kind in [
            PingKind::Success,
            PingKind::Start,
            PingKind::Exit(1),
            PingKind::Exit(255),
        ] {
            for interval in [None, Some(Duration::from_secs(3600))] {
                let p = Ping::new("db_backup", "web-1.example.org", kind, interval).unwrap();
                let text = p.path_and_query();
                let (path, query) = text.split_once('?').unwrap();
                assert_eq!(Ping::parse(path, Some(query)).unwrap(), p, "{text}");
            }
        }
        let p = Ping::new("j", "h", PingKind::Exit(17), Some(Duration::from_secs(60))).unwrap();
        assert_eq!(p.path_and_query(), "/ping/j/17?host=h&interval=60");
        assert_eq!(p.record_name(), "j@h");
    }

    #[test]
    fn the_server_side_reads_what_senders_write() {
        let p = Ping::parse("/ping/nightly/0", Some("host=h2&interval=1h&x=y")).unwrap();
        assert_eq!(p.kind, PingKind::Success);
        assert_eq!(p.interval, Some(Duration::from_secs(3600)));
        let p = Ping::parse("/ping/nightly/fail", Some("host=h2")).unwrap();
        assert_eq!((p.kind, p.interval), (PingKind::Exit(1), None));
        assert_eq!(PingKind::exit(0), PingKind::Success);
        assert_eq!(PingKind::exit(143), PingKind::Exit(143));
        assert_eq!(PingKind::exit(-1), PingKind::Exit(1));
    }

    #[test]
    fn hostile_pings_are_refused() {
        let bad = |path: &str, query: &str| Ping::parse(path, Some(query)).unwrap_err();
        assert_eq!(bad("/ping/j/999", "host=h"), PingError::Path);
        assert_eq!(bad("/ping/j/-1", "host=h"), PingError::Path);
        assert_eq!(bad("/ping/j/start/x", "host=h"), PingError::Path);
        assert_eq!(bad("/pong/j", "host=h"), PingError::Path);
        assert_eq!(bad("/ping/j", ""), PingError::NoHost);
        assert_eq!(bad("/ping/j", "host=a&host=b"), PingError::Repeated("host"));
        assert_eq!(
            bad("/ping/j", "host=h&interval=0s"),
            PingError::ZeroInterval
        );
        assert!(matches!(
            bad("/ping/j", "host=h&interval=soon"),
            PingError::Interval(_)
        ));
        for (path, query) in [
            ("/ping/..%2Fetc", "host=h"),
            ("/ping/..", "host=h"),
            ("/ping/", "host=h"),
            ("/ping/db_backup@hostB", "host=hostC"),
            ("/ping/j", "host="),
            ("/ping/j", "host=.."),
            ("/ping/j", "host=a%2Fb"),
            ("/ping/j", "host=-h"),
        ] {
            let e = bad(path, query);
            assert!(matches!(e, PingError::Name(_)), "{path}?{query}: {e}");
            assert!(e.to_string().starts_with("invalid job name"), "{e}");
        }
        let long = "h".repeat(65);
        assert!(matches!(
            bad("/ping/j", &format!("host={long}")),
            PingError::Name(_)
        ));
    }
}
