//! systemd's heartbeat: `sd_notify` (`READY=1` once, `WATCHDOG=1` every
//! cycle) for daemons started with `NOTIFY_SOCKET`, over a unix datagram
//! socket. The same few lines as ntpd-rs inlines.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;

/// Sends one notification (e.g. `"READY=1"`, `"WATCHDOG=1"`) to
/// `$NOTIFY_SOCKET`. Outside systemd it does nothing; errors are ignored
/// because a daemon must not die for want of a supervisor.
pub fn sd_notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        let _ = sd_notify_to(&path, state);
    }
}

/// Sends `state` to a notify socket: a path, or `@name` in the abstract
/// namespace.
pub fn sd_notify_to(socket: &OsStr, state: &str) -> std::io::Result<usize> {
    let sock = UnixDatagram::unbound()?;
    match socket.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        }
        None => sock.send_to(state.as_bytes(), socket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifies_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        sd_notify_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("nexus-sd-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        sd_notify_to(OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
