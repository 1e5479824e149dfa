//! sd_notify: `READY=1` once, `WATCHDOG=1` every cycle, when systemd
//! started us with `NOTIFY_SOCKET` (ntpd-rs inlines the same few lines).

use std::os::unix::net::UnixDatagram;

/// Sends one notification; silently does nothing outside systemd.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
}
