//! The client side of the wire, shared by the CLI and the TUI: endpoints,
//! connecting (with autostart of the default server), typed calls and
//! subscriptions over one NDJSON connection.

mod autostart;
mod endpoint;
mod threads;
mod websocket;

pub use autostart::{AUTOSTART_TIMEOUT, connect_or_start, start_background};
pub use endpoint::Endpoint;
pub use threads::{ResolveError, all_threads, by_activity, resolve_thread};

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::value::RawValue;
use tandem_protocol::framing::Frame;
use tandem_protocol::message::{Incoming, parse_line, request_line};
use tandem_protocol::methods::*;
use tandem_protocol::{ClientInfo, EVENT_NOTIFICATION, PROTOCOL_VERSION, RawEvent, RpcError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use tandem_lines::{LineReader, write_lines};

/// The longest line accepted from a server.
const SERVER_FRAME_LIMIT: usize = 1 << 30;

/// Events a subscription buffers before the connection waits for its reader.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// What can go wrong talking to an app-server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the app-server at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("lost the connection to the app-server at {endpoint}")]
    Disconnected { endpoint: String },
    /// The server answered the connection with an error and closed it (at its
    /// connection limit, say).
    #[error("the app-server at {endpoint} refused the connection: {error}")]
    Refused { endpoint: String, error: RpcError },
    #[error(
        "the app-server at {endpoint} speaks protocol version {server}, this tandem speaks {client}; run `tandem app-server restart` to start a matching server"
    )]
    ProtocolMismatch { endpoint: String, server: u32, client: u32 },
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("unexpected answer from the app-server: {0}")]
    Decode(String),
    #[error("could not start the app-server: {0}")]
    Autostart(String),
}

impl ClientError {
    /// Whether the server could not be reached (or was lost): a transport failure.
    pub fn is_transport(&self) -> bool {
        !matches!(self, ClientError::Rpc(_) | ClientError::Decode(_))
    }
}

enum Pending {
    Call(oneshot::Sender<Result<Box<RawValue>, ClientError>>),
    Subscribe(oneshot::Sender<Result<Subscription, ClientError>>),
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, Pending>,
    subs: HashMap<u64, mpsc::Sender<RawEvent>>,
    /// Why the server ended a subscription (`subscription/closed`), for its reader.
    ended: HashMap<u64, Arc<OnceLock<RpcError>>>,
    closed: bool,
    /// An error the server sent about the connection itself (id null).
    refused: Option<RpcError>,
}

/// How long a client waits for a server to take its connection and answer
/// `initialize`.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

struct Inner {
    endpoint: String,
    out: mpsc::UnboundedSender<String>,
    routes: Mutex<Routes>,
    next_id: AtomicU64,
    server: OnceLock<InitializeResult>,
    _child: Option<tokio::process::Child>,
}

/// A connection to an app-server. Cheap to clone; all clones share it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A live subscription: its events, in order, as the server wrote them.
pub struct Subscription {
    pub id: u64,
    rx: mpsc::Receiver<RawEvent>,
    ended: Arc<OnceLock<RpcError>>,
}

impl Subscription {
    /// The next event; `None` when the connection is gone or the server ended
    /// the subscription (then [`Subscription::ended`] says why).
    pub async fn next(&mut self) -> Option<RawEvent> {
        self.rx.recv().await
    }

    /// Why the server ended this subscription (a link that lost its access),
    /// if it did.
    pub fn ended(&self) -> Option<&RpcError> {
        self.ended.get()
    }
}

impl Client {
    /// Connects to `endpoint` and says who we are (`initialize`).
    pub async fn connect(endpoint: &Endpoint, info: ClientInfo) -> Result<Client, ClientError> {
        let name = endpoint.to_string();
        let unreachable = |reason: String| ClientError::Unreachable { endpoint: name.clone(), reason };
        let client = match endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| unreachable(format!("no connection after {}s", CONNECT_TIMEOUT.as_secs())))?
                    .map_err(|e| unreachable(e.to_string()))?;
                let (r, w) = stream.into_split();
                Client::over(name.clone(), r, w, None)
            }
            Endpoint::Stdio(command) => {
                let mut child = tokio::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| unreachable(format!("cannot run {command:?}: {e}")))?;
                let w = child.stdin.take().expect("piped");
                let r = child.stdout.take().expect("piped");
                Client::over(name.clone(), r, w, Some(child))
            }
            Endpoint::Ws { url, token } => {
                let (r, w) = websocket::connect(url, token.as_deref()).await?;
                Client::over(name.clone(), r, w, None)
            }
        };
        let answered = tokio::time::timeout(CONNECT_TIMEOUT, client.initialize(info)).await.map_err(|_| {
            unreachable(format!(
                "it accepted the connection but did not answer within {}s (overloaded or stuck?)",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?;
        answered.map_err(|e| match e {
            ClientError::Disconnected { .. } => unreachable("it closed the connection before answering".into()),
            other => other,
        })?;
        Ok(client)
    }

    /// Connects over an already open byte stream (an in-process pipe, say)
    /// and says who we are (`initialize`); `name` stands for the endpoint.
    pub async fn connect_stream<R, W>(name: &str, reader: R, writer: W, info: ClientInfo) -> Result<Client, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let client = Client::over(name.to_owned(), reader, writer, None);
        client.initialize(info).await?;
        Ok(client)
    }

    async fn initialize(&self, info: ClientInfo) -> Result<(), ClientError> {
        let init = self.call::<Initialize>(&InitializeParams { client_info: info }).await?;
        if init.protocol_version != PROTOCOL_VERSION {
            return Err(ClientError::ProtocolMismatch {
                endpoint: self.inner.endpoint.clone(),
                server: init.protocol_version,
                client: PROTOCOL_VERSION,
            });
        }
        let _ = self.inner.server.set(init);
        Ok(())
    }

    /// A client over an already open byte stream (no `initialize` sent).
    pub fn over<R, W>(endpoint: String, reader: R, writer: W, child: Option<tokio::process::Child>) -> Client
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, out_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            endpoint,
            out,
            routes: Mutex::new(Routes::default()),
            next_id: AtomicU64::new(1),
            server: OnceLock::new(),
            _child: child,
        });
        tokio::spawn(write_lines(writer, out_rx));
        tokio::spawn(read_loop(Arc::downgrade(&inner), reader));
        Client { inner }
    }

    /// What the server said in answer to `initialize`.
    pub fn server(&self) -> Option<&InitializeResult> {
        self.inner.server.get()
    }

    /// The endpoint, as the user would write it.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_request<P: serde::Serialize>(&self, method: &str, params: &P, pending: Pending) -> Result<(), ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = request_line(id, method, params).map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut routes = self.routes();
        if routes.closed || self.inner.out.send(line).is_err() {
            return Err(match &routes.refused {
                Some(error) => ClientError::Refused { endpoint: self.inner.endpoint.clone(), error: error.clone() },
                None => ClientError::Disconnected { endpoint: self.inner.endpoint.clone() },
            });
        }
        routes.pending.insert(id, pending);
        Ok(())
    }

    /// Calls method `M` and waits for its typed result.
    pub async fn call<M: Method>(&self, params: &M::Params) -> Result<M::Result, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send_request(M::NAME, params, Pending::Call(tx))?;
        let raw = rx.await.map_err(|_| ClientError::Disconnected { endpoint: self.inner.endpoint.clone() })??;
        serde_json::from_str(raw.get()).map_err(|e| ClientError::Decode(format!("{}: {e}", M::NAME)))
    }

    /// Subscribes to a thread; events follow in order.
    pub async fn subscribe(&self, params: &ThreadSubscribeParams) -> Result<Subscription, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send_request(ThreadSubscribe::NAME, params, Pending::Subscribe(tx))?;
        rx.await.map_err(|_| ClientError::Disconnected { endpoint: self.inner.endpoint.clone() })?
    }
}

async fn read_loop<R: AsyncRead + Unpin>(inner: std::sync::Weak<Inner>, reader: R) {
    // The 8 MiB limit is for what clients send; a server's answer (a page of
    // big events, one huge event) may be larger, and dropping it would leave a
    // caller waiting forever.
    let mut frames = LineReader::with_limit(reader, SERVER_FRAME_LIMIT);
    while let Some(frame) = frames.next().await {
        let Frame::Line(line) = frame else {
            tracing::error!("the server sent a line over {SERVER_FRAME_LIMIT} bytes; dropping the connection");
            break;
        };
        let Some(inner) = inner.upgrade() else { return };
        if !route(&inner, &line).await {
            break;
        }
    }
    if let Some(inner) = inner.upgrade() {
        let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.closed = true;
        routes.subs.clear();
        routes.ended.clear();
        let refused = routes.refused.clone();
        for (_, p) in routes.pending.drain() {
            let err = || match &refused {
                Some(error) => ClientError::Refused { endpoint: inner.endpoint.clone(), error: error.clone() },
                None => ClientError::Disconnected { endpoint: inner.endpoint.clone() },
            };
            match p {
                Pending::Call(tx) => drop(tx.send(Err(err()))),
                Pending::Subscribe(tx) => drop(tx.send(Err(err()))),
            }
        }
    }
}

/// Delivers one incoming line; `false` when the connection should be dropped.
async fn route(inner: &Inner, line: &[u8]) -> bool {
    match parse_line(line) {
        Some(Incoming::Response { id, result }) => {
            let Some(id) = id.as_u64() else {
                // An error about the connection itself: keep it to tell the
                // callers when the server closes.
                if let Err(e) = result {
                    tracing::debug!(error = %e, "the server reported a connection error");
                    inner.routes.lock().unwrap_or_else(|p| p.into_inner()).refused = Some(e);
                }
                return true;
            };
            let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
            match routes.pending.remove(&id) {
                Some(Pending::Call(tx)) => {
                    let _ = tx.send(result.map_err(ClientError::Rpc));
                }
                Some(Pending::Subscribe(tx)) => {
                    // Register the route before reading on: the first
                    // notification may be the very next line.
                    let answer = result.map_err(ClientError::Rpc).and_then(|raw| {
                        serde_json::from_str::<ThreadSubscribeResult>(raw.get())
                            .map_err(|e| ClientError::Decode(format!("thread/subscribe: {e}")))
                    });
                    let _ = tx.send(answer.map(|r| {
                        let (etx, erx) = mpsc::channel(SUBSCRIPTION_BUFFER);
                        routes.subs.insert(r.subscription, etx);
                        let ended = Arc::new(OnceLock::new());
                        routes.ended.insert(r.subscription, Arc::clone(&ended));
                        Subscription { id: r.subscription, rx: erx, ended }
                    }));
                }
                None => {}
            }
            true
        }
        Some(Incoming::Notification { method, params }) if method == EVENT_NOTIFICATION => {
            // The event stays the server's text, byte for byte (`share tail
            // --json` prints it as `share get --json` does).
            let Some(params) = params else { return true };
            let Ok(note) = serde_json::from_str::<EventNotification>(params.get()) else {
                return true;
            };
            let tx = inner.routes.lock().unwrap_or_else(|p| p.into_inner()).subs.get(&note.subscription).cloned();
            if let Some(tx) = tx {
                // Waiting here is the backpressure: a slow reader slows its own
                // connection, and the server catches it up from its log.
                if tx.send(note.result).await.is_err() {
                    let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
                    routes.subs.remove(&note.subscription);
                    routes.ended.remove(&note.subscription);
                }
            }
            true
        }
        Some(Incoming::Notification { method, params }) if method == SUBSCRIPTION_CLOSED => {
            let Some(note) = params.and_then(|p| serde_json::from_str::<SubscriptionClosed>(p.get()).ok()) else {
                return true;
            };
            // Dropping the sender ends the reader's stream after what it
            // already has; the reason waits for it.
            // The reason first: the reader looks for it once its stream ends.
            let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = routes.ended.remove(&note.subscription) {
                let _ = slot.set(note.error);
            }
            routes.subs.remove(&note.subscription);
            true
        }
        Some(Incoming::Invalid { error, .. }) => {
            tracing::debug!(%error, "server sent an invalid line");
            true
        }
        _ => true,
    }
}
