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
