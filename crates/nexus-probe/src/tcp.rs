//! TCP connect probe (docs/SPEC.md §2.3.1, §6.2.1): every resolved address, IPv4 and
//! IPv6; reachable when any address accepts. Sockets are closed on every path.

use std::io;
use std::net::{IpAddr, SocketAddr};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;

use crate::Outcome;

/// `tcp = { host = "localhost", port = 8765 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// Host name or IP literal.
    pub host: String,
    /// Port, 1-65535 (a wider type so an out-of-range port is a verdict, not a crash).
    pub port: i64,
}

impl TcpSpec {
    /// A spec for `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> TcpSpec {
        TcpSpec {
            host: host.into(),
            port: i64::from(port),
        }
    }
}

/// A host the probe cannot connect to before trying: a bad name, or one
/// that does not resolve.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    #[error("invalid host name {0:?}: empty or longer than 253 bytes")]
    Length(String),
    #[error("invalid host name {host:?}: bad label {label:?}")]
    Label { host: String, label: String },
    #[error("cannot resolve host {0:?}: .invalid names never resolve (RFC 6761)")]
    Invalid(String),
    #[error("cannot resolve host {host:?}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot resolve host {0:?}: no addresses")]
    NoAddresses(String),
}

/// Checks that a host name is a plausible DNS name or IP literal, so hostile
/// or mistyped names are refused before any lookup.
pub(crate) fn validate_host(host: &str) -> Result<(), HostError> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if h.is_empty() || h.len() > 253 {
        return Err(HostError::Length(host.to_string()));
    }
    for label in h.trim_end_matches('.').split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-');
        if !ok {
            return Err(HostError::Label {
                host: host.to_string(),
                label: label.to_string(),
            });
        }
    }
    Ok(())
}

/// Resolves `host:port` to every address. `.invalid` names never resolve
/// (RFC 6761) and are refused without asking DNS.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, HostError> {
    validate_host(host)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if bare
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .ends_with(".invalid")
    {
        return Err(HostError::Invalid(host.to_string()));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|source| HostError::Lookup {
            host: host.to_string(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(HostError::NoAddresses(host.to_string()));
    }
    Ok(addrs)
}

pub(crate) async fn check(spec: &TcpSpec) -> Outcome {
    let target = format!("TCP:{}:{}", spec.host, spec.port);
    let Ok(port) = u16::try_from(spec.port)
        .map_err(drop)
        .and_then(|p| if p == 0 { Err(()) } else { Ok(p) })
    else {
        return Outcome::unknown(format!("{target}: port {} out of range 1-65535", spec.port));
    };
    let addrs = match resolve(&spec.host, port).await {
        Ok(a) => a,
        Err(e) => return Outcome::critical(format!("TCP probe failed: {e}")),
    };
    // Race every address; the first that connects wins (the others are dropped,
    // which closes their sockets).
    let mut pending: FuturesUnordered<_> = addrs
        .iter()
        .map(|&addr| async move { (addr, TcpStream::connect(addr).await.map(drop)) })
        .collect();
    let mut tried = Vec::new();
    let mut errors: Vec<(SocketAddr, io::Error)> = Vec::new();
    while let Some((addr, result)) = pending.next().await {
        match result {
            Ok(()) => {
                tried.push(json!({ "address": addr.to_string(), "result": "connected" }));
                return Outcome::ok(format!("{target} reachable"))
                    .with("address", addr.to_string())
                    .with(
                        "addresses",
                        addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    )
                    .with("tried", tried);
            }
            Err(e) => {
                tried.push(json!({ "address": addr.to_string(), "result": e.to_string() }));
                errors.push((addr, e));
            }
        }
    }
    let summary = if errors
        .iter()
        .all(|(_, e)| e.kind() == io::ErrorKind::ConnectionRefused)
    {
        let errno = errors
            .first()
            .and_then(|(_, e)| e.raw_os_error())
            .unwrap_or(111);
        format!("{target} refused (errno={errno})")
    } else {
        let (addr, e) = errors
            .iter()
            .find(|(_, e)| e.kind() != io::ErrorKind::ConnectionRefused)
            .or(errors.first())
            .map(|(a, e)| (a.to_string(), e.to_string()))
            .unwrap_or_default();
        format!("TCP probe failed: {addr}: {e}")
    };
    Outcome::critical(summary).with("tried", tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_validation() {
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "a-b.example.org.",
            "x_y",
        ] {
            assert!(validate_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "bad host", "-x", "a..b", "evil;rm -rf", &"a".repeat(64)] {
            assert!(validate_host(bad).is_err(), "{bad}");
        }
    }
}
