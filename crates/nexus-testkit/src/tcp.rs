//! TCP listeners in every state a probe must tell apart.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// A listener task; aborted on drop.
#[derive(Debug)]
pub struct Listener {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    _hold: Vec<TcpStream>,
    _listener: Option<std::net::TcpListener>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"))
}

/// Accepts every connection and closes it once the client has closed (as a
/// real server would after a probe's connect-and-close).
pub async fn open() -> Listener {
    let l = bind().await;
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 64];
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    Listener {
        addr,
        task: Some(task),
        _hold: Vec::new(),
        _listener: None,
    }
}

/// Like [`open`], on the IPv6 loopback `[::1]`.
pub async fn open_v6() -> Listener {
    let l = TcpListener::bind("[::1]:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind [::1]:0 (IPv6 loopback): {e}"));
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    Listener {
        addr,
        task: Some(task),
        _hold: Vec::new(),
        _listener: None,
    }
}

/// Accepts connections and holds them open without ever writing a byte.
pub async fn silent() -> Listener {
    let l = bind().await;
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    Listener {
        addr,
        task: Some(task),
        _hold: Vec::new(),
        _listener: None,
    }
}

/// A port with nothing listening (connects are refused).
pub fn closed() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A listener that never accepts and whose accept queue is already full:
/// the kernel drops further SYNs, so a connect hangs until its timeout.
pub async fn full_backlog() -> Listener {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    // Fill the queue: connect until one attempt does not complete quickly.
    let mut hold = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => hold.push(s),
            Ok(Err(e)) => panic!("filling the backlog of {addr}: {e}"),
            Err(_) => {
                return Listener {
                    addr,
                    task: None,
                    _hold: hold,
                    _listener: Some(l.into_std().unwrap()),
                };
            }
        }
    }
    panic!("the backlog of {addr} never filled up (16 connects completed)")
}

/// A TCP forwarder on a fixed loopback port in front of another server,
/// which a test can close (the port is then really closed: connects are
/// refused and open connections are cut), hang (connections are accepted
/// and never answered, as [`silent`] does) and open again on the same port.
/// It runs on its own runtime thread, so a test that blocks (waiting for a
/// child process) does not stall it.
pub struct Gate {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Opens a gate on a free port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Gate {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("testkit-gate")
            .enable_all()
            .build()
            .unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let gate = Gate {
            addr,
            upstream,
            rt: Some(rt),
            tasks: Default::default(),
        };
        gate.serve(l);
        gate
    }

    fn serve(&self, l: std::net::TcpListener) {
        l.set_nonblocking(true).unwrap();
        let rt = self.rt.as_ref().unwrap();
        let _enter = rt.enter();
        let l = TcpListener::from_std(l).unwrap();
        let upstream = self.upstream;
        let tasks = self.tasks.clone();
        let accept = rt.spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                let mut t = tasks.lock().unwrap();
                t.retain(|h| !h.is_finished());
                t.push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes the port and cuts every open connection; returns once the
    /// listener is gone (a connect is refused from then on).
    pub fn close(&self) {
        let handles: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for h in &handles {
            h.abort();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while handles.iter().any(|h| !h.is_finished()) {
            assert!(
                std::time::Instant::now() < deadline,
                "gate {} did not close within 5 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Forwards again on the same port (after [`Gate::close`] or
    /// [`Gate::hang`]).
    pub fn open(&self) {
        self.close();
        self.serve(self.rebind());
    }

    /// A server that accepts connections and never answers: the port
    /// accepts, and every connection (those already open are cut) is held
    /// without a byte read or written until [`Gate::open`] or
    /// [`Gate::close`].
    pub fn hang(&self) {
        self.close();
        let l = self.rebind();
        l.set_nonblocking(true).unwrap();
        let rt = self.rt.as_ref().unwrap();
        let _enter = rt.enter();
        let l = TcpListener::from_std(l).unwrap();
        let task = rt.spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        self.tasks.lock().unwrap().push(task.abort_handle());
    }

    fn rebind(&self) -> std::net::TcpListener {
        std::net::TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("cannot re-bind {}: {e}", self.addr))
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Through the gate: "hi", nothing while it hangs, "hi" again.
    #[test]
    fn a_gate_forwards_hangs_and_forwards_again() {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in upstream.incoming().take(8) {
                let _ = s.and_then(|mut s| s.write_all(b"hi"));
            }
        });
        let gate = Gate::start(up);
        let first_bytes = || {
            let mut s = std::net::TcpStream::connect(gate.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 2];
            s.read_exact(&mut buf).map(|()| buf)
        };
        assert_eq!(&first_bytes().unwrap(), b"hi");
        gate.hang();
        let e = first_bytes().unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "accepted, never answered: {e}"
        );
        gate.open();
        assert_eq!(&first_bytes().unwrap(), b"hi");
    }
}
