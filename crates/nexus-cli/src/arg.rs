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

/// The address a server listens on (`--listen`): `ADDRESS:PORT`, an IPv6
/// address in brackets (`[::1]:8767`), or a host name and a port
/// (`localhost:8767`, resolved when the server binds). Without a port it is
/// refused with a message that says one is expected.
pub fn listen_arg(s: &str) -> Result<String, ListenError> {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(s.to_string())
        }
        _ => Err(ListenError {
            input: s.to_string(),
        }),
    }
}

/// A listen address without a port, or not an address at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenError {
    /// The rejected text.
    pub input: String,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid listen address {:?}: expected ADDRESS:PORT, e.g. 127.0.0.1:8767",
            self.input
        )
    }
}

impl std::error::Error for ListenError {}

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
        let e = duration_arg("-5s").unwrap_err().to_string();
        assert!(e.contains("durations cannot be negative"), "{e}");
    }

    #[test]
    fn a_listen_address_needs_a_port() {
        for good in ["127.0.0.1:8767", "[::1]:0", "localhost:8767", "0.0.0.0:80"] {
            assert_eq!(listen_arg(good), Ok(good.to_string()));
        }
        for bad in [
            "localhost",
            "127.0.0.1",
            "::1",
            "localhost:http",
            ":8767",
            "",
        ] {
            let e = listen_arg(bad).unwrap_err().to_string();
            assert!(
                e.contains("expected ADDRESS:PORT, e.g. 127.0.0.1:8767"),
                "{e}"
            );
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
