//! Serving the routes over HTTP/1.1, one task per connection, with the
//! timeouts `axum::serve` does not offer (issue 18.4). A client that opens a
//! connection and then sends nothing, or half a request line, would
//! otherwise hold a socket, a task and a file descriptor for ever; a few
//! thousand of them exhaust the open-file limit and the hub serves no one.
//!
//! - **Header timeout**: a connection must finish a request's head within
//!   [`ConnLimits::header_timeout`] of the hub starting to wait for it —
//!   from the accept for the first request (so it is also the idle timeout
//!   before the first request), from the previous answer for the next one
//!   (so it is also the keep-alive idle timeout). hyper's own
//!   `header_read_timeout`, which needs a timer to take effect.
//! - **Request timeout**: from the head to the answer (the body read
//!   included: a body trickled a byte at a time is no cheaper to hold than
//!   a head) at most [`ConnLimits::request_timeout`], else `408`. A WebSocket
//!   upgrade answers at once; what flows over it after is not a request.
//! - **Unfinished connections**: at most [`ConnLimits::max_pending`]
//!   connections may be waiting for their first request head at once. Past
//!   that, the longest-waiting one is closed to make room: a client that
//!   means to send a request does so within milliseconds of connecting, so
//!   under a flood it is the flood's own sockets that go, and a new client
//!   is never turned away for the flood's sake.
//!
//! On shutdown the listener stops accepting, idle connections close, and
//! requests in flight get [`GRACE`] to finish. Upgraded WebSockets are not
//! waited for (they end with the process, and readers reconnect).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service as HyperService;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// How long requests in flight may take to finish after a shutdown begins.
pub const GRACE: Duration = Duration::from_secs(5);

/// Bounds on what one connection may hold before it has asked for something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// From waiting for a request to having its whole head.
    pub header_timeout: Duration,
    /// From a request's head to its answer, the body read included.
    pub request_timeout: Duration,
    /// Connections waiting for their first request head at once.
    pub max_pending: usize,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_pending: 512,
        }
    }
}

impl ConnLimits {
    /// The defaults, changed by `TANDEM_HUB_HEADER_TIMEOUT`,
    /// `TANDEM_HUB_REQUEST_TIMEOUT` (a duration: `10s`, `2m`, `1h`; a bare
    /// number is seconds) and `TANDEM_HUB_MAX_PENDING` (a count, at least 1).
    pub fn from_env() -> Result<ConnLimits, String> {
        ConnLimits::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ConnLimits, String> {
        let mut limits = ConnLimits::default();
        let duration = |name: &str, text: String| {
            let t = text.trim();
            let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let unit = match &t[digits..] {
                "" | "s" => Some(1),
                "m" => Some(60),
                "h" => Some(3600),
                _ => None,
            };
            let secs = t[..digits].parse::<u64>().ok().zip(unit).and_then(|(n, u)| n.checked_mul(u));
            match secs {
                Some(s) if s > 0 => Ok(Duration::from_secs(s)),
                _ => Err(format!("{name}={t:?}: expected a duration of at least 1 s, e.g. 10s, 2m or 1h")),
            }
        };
        if let Some(t) = var("TANDEM_HUB_HEADER_TIMEOUT") {
            limits.header_timeout = duration("TANDEM_HUB_HEADER_TIMEOUT", t)?;
        }
        if let Some(t) = var("TANDEM_HUB_REQUEST_TIMEOUT") {
            limits.request_timeout = duration("TANDEM_HUB_REQUEST_TIMEOUT", t)?;
        }
        if let Some(t) = var("TANDEM_HUB_MAX_PENDING") {
            limits.max_pending = t
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("TANDEM_HUB_MAX_PENDING={t:?}: a count of connections, at least 1"))?;
        }
        Ok(limits)
    }
}

/// The connections still waiting for their first request head, oldest
/// first (ids grow), each with the means to close it.
#[derive(Default)]
struct Pending {
    next_id: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

type SharedPending = Arc<Mutex<Pending>>;

fn lock(p: &SharedPending) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `app` on `listener` until `stop` resolves, then drains (see the
/// module notes).
pub async fn serve(listener: TcpListener, app: Router, limits: ConnLimits, stop: impl Future<Output = ()>) {
    let pending = SharedPending::default();
    let (stopping_tx, stopping) = watch::channel(false);
    // Each connection task holds a sender; when all are gone, all are done.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let (evict, evicted) = oneshot::channel();
        let id = {
            let mut p = lock(&pending);
            if p.waiting.len() >= limits.max_pending
                && let Some((_, oldest)) = p.waiting.pop_first()
            {
                tracing::debug!("too many connections without a request: closing the one waiting longest");
                let _ = oldest.send(());
            }
            let id = p.next_id;
            p.next_id += 1;
            p.waiting.insert(id, evict);
            id
        };
        let svc = PerConn {
            inner: TowerToHyperService::new(app.clone()),
            peer,
            started: Arc::new(AtomicBool::new(false)),
            pending: Arc::clone(&pending),
            id,
            request_timeout: limits.request_timeout,
        };
        let conn = Connection {
            builder: Arc::clone(&builder),
            pending: Arc::clone(&pending),
            id,
            stopping: stopping.clone(),
            _alive: alive.clone(),
        };
        tokio::spawn(conn.run(stream, svc, evicted));
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    drop(alive);
    if tokio::time::timeout(GRACE, all_done.recv()).await.is_err() {
        tracing::info!("requests still in flight after the grace period: dropped");
    }
}

/// What an accept error costs: nothing for one connection's failure; a
/// pause for anything else (out of file descriptors: wait for some to close
/// rather than spin).
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection's task.
struct Connection {
    builder: Arc<hyper::server::conn::http1::Builder>,
    pending: SharedPending,
    id: u64,
    stopping: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn run(mut self, stream: tokio::net::TcpStream, svc: PerConn, evicted: oneshot::Receiver<()>) {
        let conn = self.builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
        tokio::pin!(conn);
        // Resolves only when evicted: the sender is also dropped, unsent,
        // when the first request arrives, and that must not end the connection.
        let evicted = async {
            if evicted.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(evicted);
        let mut draining = false;
        loop {
            tokio::select! {
                // An error here is the client's doing (a timeout, a bad
                // request, a reset): nothing to report above debug.
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    break;
                }
                // Made room for a newer connection: dropping closes it.
                () = &mut evicted => break,
                changed = self.stopping.changed(), if !draining => {
                    draining = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        lock(&self.pending).waiting.remove(&self.id);
    }
}

/// The router for one connection: it gets the peer's address (for
/// `ConnectInfo`), takes the connection off the pending list at its first
/// request, and bounds each request by the request timeout.
#[derive(Clone)]
struct PerConn {
    inner: TowerToHyperService<Router>,
    peer: SocketAddr,
    started: Arc<AtomicBool>,
    pending: SharedPending,
    id: u64,
    request_timeout: Duration,
}

impl HyperService<Request<Incoming>> for PerConn {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if !self.started.swap(true, Ordering::Relaxed) {
            lock(&self.pending).waiting.remove(&self.id);
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let answer = self.inner.call(req);
        let limit = self.request_timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(r) => r,
                Err(_) => Ok((
                    StatusCode::REQUEST_TIMEOUT,
                    axum::Json(serde_json::json!({ "error": "the request took too long to arrive" })),
                )
                    .into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_environment_or_default() {
        let none = ConnLimits::from_vars(|_| None).unwrap();
        assert_eq!(none, ConnLimits::default());
        let set = ConnLimits::from_vars(|name| {
            Some(match name {
                "TANDEM_HUB_HEADER_TIMEOUT" => "3".into(),
                "TANDEM_HUB_REQUEST_TIMEOUT" => "2m".into(),
                _ => "40".into(),
            })
        })
        .unwrap();
        assert_eq!(set.header_timeout, Duration::from_secs(3));
        assert_eq!(set.request_timeout, Duration::from_secs(120));
        assert_eq!(set.max_pending, 40);
        for bad in ["0", "0s", "soon", "-1", "", "5d", "s"] {
            let r = ConnLimits::from_vars(|name| (name == "TANDEM_HUB_HEADER_TIMEOUT").then(|| bad.to_owned()));
            assert!(r.is_err(), "{bad:?}");
        }
        assert!(ConnLimits::from_vars(|name| (name == "TANDEM_HUB_MAX_PENDING").then(|| "0".into())).is_err());
    }
}
