//! Serving the routes over HTTP/1.1, one task per connection, with the bounds
//! `axum::serve` does not offer (issue 18.4). Without them a client that
//! connects and sends nothing, or half a request, holds a socket, a task and a
//! file descriptor for ever; about a thousand of them used up the open-file
//! limit and nobody got in, the owner's CLI on the unix socket included.
//!
//! - **Slots**: every connection, from its accept until it closes (a
//!   WebSocket's whole life included), holds one of the http listener's
//!   connection slots (`transport::slots`: all but the unix socket's
//!   reserve). Past them a new connection is answered 503 at once and closed.
//! - **Header timeout**: a whole request head within
//!   `Limits::header_timeout` of the server starting to wait for it — from
//!   the accept for the first request (so it is also the idle timeout before
//!   the first request), from the previous answer for the next (the
//!   keep-alive idle timeout). hyper's `header_read_timeout`, which needs a
//!   timer to take effect.
//! - **Request timeout**: from the head to the answer at most
//!   [`REQUEST_TIMEOUT`], else 408 (a WebSocket upgrade answers at once).
//! - **Unfinished connections**: at most [`max_pending`] connections may be
//!   waiting for their first request head at once; past that the one waiting
//!   longest is closed to make room. A client that means to ask something
//!   does so within milliseconds, so under a flood it is the flood's own
//!   sockets that go, and the slots left stay for clients that ask.
//!
//! The same design as the hub's `hub/src/http.rs`; this one adds the slots
//! and the 503 at the accept.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service as HyperService;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};

use crate::transport::slots::{Slot, Slots};

/// From a request's head to its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Refusals (503 at the accept) being written at once; past it a refused
/// connection is closed without a word, so a flood cannot make the refusals
/// themselves hold descriptors.
const MAX_REFUSING: usize = 32;

/// How long a refused connection is read (and its bytes dropped) so that the
/// client gets the 503 before the close: closing a socket with unread data
/// resets the peer, which would lose the answer.
const REFUSAL_DRAIN: Duration = Duration::from_secs(1);

/// Connections that may wait for their first request head at once: half the
/// http share (so a flood of them leaves the other half to clients that
/// ask), at most 512.
pub fn max_pending(http_share: usize) -> usize {
    (http_share / 2).clamp(1, 512)
}

/// The connections still waiting for their first request head, oldest first
/// (ids grow), each with the means to close it.
#[derive(Default)]
struct Pending {
    next_id: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

type SharedPending = Arc<Mutex<Pending>>;

fn lock(p: &SharedPending) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `app` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    slots: Slots,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let pending = SharedPending::default();
    let max_pending = max_pending(slots.http_max());
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let builder = Arc::new(builder);
    let (stopping_tx, stopping) = watch::channel(false);
    // A flood past the limit is logged once in a while, not once a connection.
    let mut logged_refusal: Option<std::time::Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let Some(slot) = slots.http() else {
            let now = std::time::Instant::now();
            if logged_refusal.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(10)) {
                logged_refusal = Some(now);
                tracing::warn!(limit = slots.http_max(), "refusing http connections: at the connection limit");
            }
            refuse(stream, slots.http_max(), &refusing);
            continue;
        };
        let (evict, evicted) = oneshot::channel();
        let id = {
            let mut p = lock(&pending);
            if p.waiting.len() >= max_pending
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
        };
        let io = Counted { io: stream, _slot: slot };
        let conn =
            Connection { builder: Arc::clone(&builder), pending: Arc::clone(&pending), id, stopping: stopping.clone() };
        tokio::spawn(conn.run(io, svc, evicted));
    }
    // Idle connections close; requests in flight finish (WebSockets end with
    // their sessions, at the server's stop).
    drop(listener);
    let _ = stopping_tx.send(true);
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What an accept error costs: nothing for one connection's failure; a pause
/// for anything else (out of file descriptors: wait for some to close rather
/// than spin).
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Past the http share: a 503 with the JSON-RPC error, then the close.
fn refuse(stream: TcpStream, max: usize, refusing: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusing).try_acquire_owned() else {
        return;
    };
    let body = serde_json::json!({ "error": tandem_protocol::RpcError::too_many_connections(max) }).to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ncontent-security-policy: {}\r\nx-content-type-options: nosniff\r\n\r\n",
        body.len(),
        super::CSP
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
            let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(permit);
    });
}

/// A connection's stream with its slot: the slot goes back only when the
/// stream is dropped — after an upgrade that is when the WebSocket ends, since
/// hyper hands this very stream over to it.
struct Counted {
    io: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// One connection's task.
struct Connection {
    builder: Arc<hyper::server::conn::http1::Builder>,
    pending: SharedPending,
    id: u64,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, io: Counted, svc: PerConn, evicted: oneshot::Receiver<()>) {
        let conn = self.builder.serve_connection(TokioIo::new(io), svc).with_upgrades();
        tokio::pin!(conn);
        // Resolves only when evicted: the sender is also dropped, unsent, when
        // the first request arrives, and that must not end the connection.
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
                        tracing::debug!(error = %e, "http connection ended");
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
/// request, and bounds each request by [`REQUEST_TIMEOUT`].
#[derive(Clone)]
struct PerConn {
    inner: TowerToHyperService<Router>,
    peer: SocketAddr,
    started: Arc<AtomicBool>,
    pending: SharedPending,
    id: u64,
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
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(r) => r,
                Err(_) => Ok(super::refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    &tandem_protocol::RpcError::invalid_request("the request took too long to arrive"),
                )
                .into_response()),
            }
        })
    }
}
