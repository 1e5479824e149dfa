//! The listener and the HTTP/1 server: one task per connection, a request
//! head within a deadline, a connection lifetime and a connection cap, so a
//! slow or greedy client never stalls a probe or holds the gateway's
//! descriptors.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

use crate::{Liveness, respond};

/// The default freshness window: `ok` only if the loop ticked within it.
pub const DEFAULT_FRESH_WITHIN: Duration = Duration::from_secs(30);

/// How long a connection past its lifetime (or at shutdown) may finish the
/// request in hand.
const GRACE: Duration = Duration::from_secs(1);

/// What the server allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's head, and how long a
    /// kept-alive connection may sit idle before its next one.
    pub header_timeout: Duration,
    /// How long a connection is served at most, whatever it does.
    pub lifetime: Duration,
    /// Connections served at once; one more is answered 503 and closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 5 s for a head, 30 s per connection, 64 connections.
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(5),
            lifetime: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// How the health server judges and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `ok` only if the gateway's loop ticked within this.
    pub fresh_within: Duration,
    /// Per-connection timeouts and the connection cap.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fresh_within: DEFAULT_FRESH_WITHIN,
            limits: Limits::default(),
        }
    }
}

/// How often an accept loop should tick to stay fresh within
/// `fresh_within` with room to spare: a third of it (at least 10 ms).
pub fn tick_period(fresh_within: Duration) -> Duration {
    (fresh_within / 3).max(Duration::from_millis(10))
}

/// The health listener could not be opened: the gateway logs it and runs on
/// without `/health` (docs/SPEC.md G1).
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process listens there already.
    #[error("health endpoint: cannot listen on {addr}: the address is already in use")]
    InUse {
        /// `host:port` as configured.
        addr: String,
    },
    /// The host is not an address and does not resolve.
    #[error("health endpoint: cannot listen on {addr}: the host does not resolve: {source}")]
    Resolve {
        /// `host:port` as configured.
        addr: String,
        /// Resolver error for the host part.
        source: std::io::Error,
    },
    /// Any other failure (permission, no such address here).
    #[error("health endpoint: cannot listen on {addr}: {source}")]
    Other {
        /// `host:port` as configured.
        addr: String,
        /// Error from `bind`/`listen` (other than address in use).
        source: std::io::Error,
    },
}

/// Opens the listener on `host:port` (each resolved address tried in turn);
/// the error names `host:port`.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, BindError> {
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(source) => {
            return Err(BindError::Resolve {
                addr: shown,
                source,
            });
        }
    };
    let mut first = None;
    for a in addrs {
        match TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    let source = first.unwrap_or_else(|| std::io::Error::other("no address"));
    Err(if source.kind() == std::io::ErrorKind::AddrInUse {
        BindError::InUse { addr: shown }
    } else {
        BindError::Other {
            addr: shown,
            source,
        }
    })
}

/// A health server running as a task; stopped by [`HealthServer::stop`] or
/// when dropped.
#[derive(Debug)]
pub struct HealthServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; lets the live connections finish their request in
    /// hand (at most a second) and returns when all are gone.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Binds `host:port` and serves `/health` from `live` on a task of the
/// current runtime. A bind failure is returned (nothing is spawned), for
/// the gateway to log and run on without the endpoint.
pub async fn spawn(
    host: &str,
    port: u16,
    live: Liveness,
    options: Options,
) -> Result<HealthServer, BindError> {
    let listener = bind(host, port).await?;
    let addr = listener.local_addr().map_err(|source| BindError::Other {
        addr: format!("{host}:{port}"),
        source,
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = rx.await;
        };
        if let Err(e) = serve(listener, live, options, stopped).await {
            tracing::warn!("health endpoint on {addr} stopped: {e}");
        }
    });
    Ok(HealthServer {
        addr,
        stop: Some(tx),
        task,
    })
}

/// Serves `/health` from `live` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    live: Liveness,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let fresh = options.fresh_within;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let live = live.clone();
        async move { Ok::<_, Infallible>(answer(&req, &live, fresh)) }
    });
    serve_with(listener, service, options.limits, shutdown).await
}

fn answer(req: &Request<Incoming>, live: &Liveness, fresh: Duration) -> Response<Full<Bytes>> {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |p| p.as_str());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let reply = respond(req.method().as_str(), target, &live.snapshot(), fresh, now);
    if reply.status >= 300 {
        // No access log; non-2xx at debug (docs/SPEC.md §7).
        tracing::debug!(
            "health endpoint: {} {} -> {}",
            req.method(),
            req.uri().path(),
            reply.status
        );
    }
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// Serves `service` on `listener` until `shutdown` resolves: HTTP/1.1, one
/// task per connection, each under `limits` (a request head within the
/// header timeout, closed at the end of its lifetime), at most
/// `max_connections` at once (one more is answered 503 and closed at once).
/// At shutdown no connection is accepted any more and the live ones finish
/// their request in hand (for at most a second).
pub async fn serve_with<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut conns = tokio::task::JoinSet::new();
    let mut starved = false;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                starved = false;
                stream
            }
            Err(e) if out_of_descriptors(&e) => {
                // The kernel keeps the client in the backlog; retrying at
                // once would spin on a listener that stays readable.
                if !starved {
                    tracing::warn!("HTTP: cannot accept a connection: {e}");
                    starved = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => {
                tracing::debug!("HTTP: accept: {e}");
                continue;
            }
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = connection(stream, service.clone(), limits, stop_rx.clone());
                conns.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(_) => refuse(&stream),
        }
    }
    drop(listener);
    drop(stop_tx);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Accept failures that mean "no descriptor or memory for one more".
fn out_of_descriptors(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

/// A client beyond the connection cap: a 503 if the socket takes it at
/// once (it never waits), then closed.
fn refuse(stream: &tokio::net::TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
content-type: text/plain; charset=utf-8\r\nretry-after: 1\r\ncontent-length: 21\r\n\r\n\
too many connections\n";
    let _ = stream.try_write(BUSY);
}

/// Serves one connection within `limits` until it ends, its lifetime
/// passes or the server stops.
async fn connection<S, B>(
    stream: tokio::net::TcpStream,
    service: S,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<()>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection: {e}");
            }
            return;
        }
        () = tokio::time::sleep(limits.lifetime) => {}
        _ = stop.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(GRACE, conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_period_leaves_room() {
        assert_eq!(
            tick_period(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(tick_period(Duration::ZERO), Duration::from_millis(10));
    }

    #[tokio::test]
    async fn a_taken_port_is_in_use_and_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = bind("127.0.0.1", port).await.unwrap_err();
        assert!(matches!(e, BindError::InUse { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.to_string().contains("already in use"), "{e}");
    }

    #[tokio::test]
    async fn an_address_not_of_this_host_is_named() {
        // TEST-NET-1 (RFC 5737): no interface here has it; nothing is sent.
        let e = bind("192.0.2.1", 8766).await.unwrap_err();
        assert!(matches!(e, BindError::Other { .. }), "{e:?}");
        assert!(e.to_string().contains("192.0.2.1:8766"), "{e}");
    }
}
