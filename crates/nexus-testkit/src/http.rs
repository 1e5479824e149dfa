//! A minimal real HTTP/1.1 server on loopback (one request per connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub enum Body {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` copies of `byte`, streamed in 64 KiB chunks (for huge bodies).
    Repeat { byte: u8, len: u64 },
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Body,
    /// Omit `Content-Length` (the body ends when the connection closes).
    pub no_length: bool,
}

impl HttpResponse {
    pub fn json(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "application/json".into(),
            body: Body::Bytes(body.as_bytes().to_vec()),
            no_length: false,
        }
    }

    pub fn text(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            content_type: "text/plain".into(),
            ..HttpResponse::json(status, body)
        }
    }

    pub fn huge(len: u64, no_length: bool) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type: "application/octet-stream".into(),
            body: Body::Repeat { byte: b'x', len },
            no_length,
        }
    }
}

/// `handler(method, path, head)`: `head` is the request line and the
/// headers as they came, up to the blank line.
type Handler = dyn Fn(&str, &str, &str) -> HttpResponse + Send + Sync;

/// The server; stopped on drop.
#[derive(Debug)]
pub struct HttpServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    sent: Arc<AtomicU64>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    /// Serves `handler(method, path)` on 127.0.0.1 (a free port).
    pub async fn start(
        handler: impl Fn(&str, &str) -> HttpResponse + Send + Sync + 'static,
    ) -> HttpServer {
        HttpServer::start_with_head(move |method, path, _| handler(method, path)).await
    }

    /// Serves `handler(method, path, head)`, `head` being the request line
    /// and headers as they came (e.g. to reflect them, [`crate::reflect`]).
    pub async fn start_with_head(
        handler: impl Fn(&str, &str, &str) -> HttpResponse + Send + Sync + 'static,
    ) -> HttpServer {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let handler: Arc<Handler> = Arc::new(handler);
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let handler = handler.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let text = text.split("\r\n\r\n").next().unwrap_or("");
                    let mut first = text.lines().next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let path = first.next().unwrap_or("").to_string();
                    let r = handler(&method, &path, text);
                    let len = match &r.body {
                        Body::Bytes(b) => b.len() as u64,
                        Body::Repeat { len, .. } => *len,
                    };
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nConnection: close\r\n",
                        r.status, r.content_type
                    );
                    if !r.no_length {
                        out.push_str(&format!("Content-Length: {len}\r\n"));
                    }
                    out.push_str("\r\n");
                    if s.write_all(out.as_bytes()).await.is_err() || method == "HEAD" {
                        return;
                    }
                    match r.body {
                        Body::Bytes(b) => {
                            let _ = s.write_all(&b).await;
                        }
                        Body::Repeat { byte, len } => {
                            let chunk = vec![byte; 64 * 1024];
                            let mut left = len;
                            while left > 0 {
                                let n = left.min(chunk.len() as u64) as usize;
                                if s.write_all(&chunk[..n]).await.is_err() {
                                    return; // the client stopped reading
                                }
                                left -= n as u64;
                                counter.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        HttpServer { addr, task, sent }
    }

    /// Bytes of streamed bodies ([`Body::Repeat`]) the clients accepted so
    /// far (a client that stops reading stops the count, give or take the
    /// socket buffers).
    pub fn streamed(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Streams a 100 MB reply to `call(url)`, once with `Content-Length` and
/// once without (the body then ends when the connection closes), and
/// checks that the client read it up to about `cap` and no further: the
/// server got less than `cap` + 16 MiB out, and this process's peak RSS
/// grew by less than twice `cap` + 16 MiB (reading it whole takes over
/// 100 MiB). Returns what `call` returned each time, for the caller's checks.
pub async fn assert_reads_capped<T, F, Fut>(cap: usize, mut call: F) -> Vec<T>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    const HUGE: u64 = 100 << 20;
    let mut results = Vec::new();
    for no_length in [true, false] {
        let server = HttpServer::start(move |_, _| HttpResponse::huge(HUGE, no_length)).await;
        crate::reset_peak_rss();
        let before = crate::peak_rss();
        let started = std::time::Instant::now();
        results.push(call(server.url("")).await);
        let grew = crate::peak_rss().saturating_sub(before);
        let streamed = server.streamed();
        let cap = cap as u64;
        assert!(
            grew < 2 * cap + (16 << 20),
            "peak RSS grew by {} MiB (cap {} MiB, Content-Length sent: {})",
            grew >> 20,
            cap >> 20,
            !no_length
        );
        assert!(
            streamed < cap + (16 << 20),
            "the client read on: {streamed} bytes (cap {cap})"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
    results
}

/// An answer read by [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Status code from the status line.
    pub status: u16,
    /// The head after the status line, header names lower-cased.
    pub head: String,
    /// Everything after the head.
    pub body: String,
}

impl Fetched {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n == name).then(|| v.trim())
        })
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One `method target` request with `connection: close` to `addr`, blocking,
/// each step within 5 s; `None` if nothing answers (refused, cut, silent).
pub fn fetch(addr: SocketAddr, method: &str, target: &str) -> Option<Fetched> {
    use std::io::{Read, Write};
    let limit = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    // Capped: a health answer is small.
    let _ = s.take(1 << 20).read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let (status_line, rest) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let head = rest
        .lines()
        .map(|l| match l.split_once(':') {
            Some((n, v)) => format!("{}:{v}", n.to_ascii_lowercase()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Some(Fetched {
        status,
        head,
        body: body.to_string(),
    })
}
