//! The client side of the wire, shared by the CLI and the TUI: endpoints,
//! connecting (with autostart of the default server), typed calls and
//! subscriptions over one NDJSON connection.

mod autostart;
mod endpoint;
mod threads;
mod websocket;

pub use autostart::{AUTOSTART_TIMEOUT, Started, connect_or_start, start_background};
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
use tandem_protocol::{
    ClientInfo, EVENT_NOTIFICATION, ErrorCode, MAX_FRAME_BYTES, PROTOCOL_VERSION, RawEvent, RpcError,
};
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
    /// The server this client started exited before answering (a bad
    /// `config.toml`, say): `said` is what it wrote to its stderr this time.
    #[error(
        "the app-server exited as it started ({status}){}; see {log}",
        if said.is_empty() { String::new() } else { format!(": {said}") }
    )]
    ServerExited {
        /// Its exit code (2: bad configuration or flags), if it exited rather
        /// than being killed by a signal.
        code: Option<i32>,
        status: String,
        said: String,
        log: String,
    },
    /// A request line longer than the server takes; nothing was sent.
    #[error(
        "the {method} request is {bytes} bytes as one JSON line; the app-server takes at most {limit} bytes ({} MiB) per line, so it was not sent",
        limit >> 20
    )]
    TooLarge { method: String, bytes: usize, limit: usize },
    /// The server refused one of several requests in flight with an error
    /// that names none (`id: null`), so each of them gets it.
    #[error(
        "the app-server refused one of the {in_flight} requests in flight on this connection without saying which, so this one ends too (retry it): {error}"
    )]
    Unattributed { in_flight: usize, error: RpcError },
}

impl ClientError {
    /// Whether the server could not be reached (or was lost): a transport failure.
    pub fn is_transport(&self) -> bool {
        !matches!(
            self,
            ClientError::Rpc(_)
                | ClientError::Decode(_)
                | ClientError::TooLarge { .. }
                | ClientError::Unattributed { .. }
        )
    }
}

/// A request waiting for its answer.
struct Pending {
    reply: Reply,
    /// Its line's length (without the newline), to tell which request a
    /// `frameTooLarge` answers.
    bytes: usize,
}

enum Reply {
    Call(oneshot::Sender<Result<Box<RawValue>, ClientError>>),
    Subscribe(oneshot::Sender<Result<Subscription, ClientError>>),
}

impl Reply {
    fn fail(self, error: ClientError) {
        match self {
            Reply::Call(tx) => drop(tx.send(Err(error))),
            Reply::Subscribe(tx) => drop(tx.send(Err(error))),
        }
    }
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

    fn send_request<P: serde::Serialize>(&self, method: &str, params: &P, reply: Reply) -> Result<(), ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = request_line(id, method, params).map_err(|e| ClientError::Decode(e.to_string()))?;
        // The server would skip it and answer `frameTooLarge` (id null):
        // refuse it here, where the caller can be told which request it was.
        let bytes = line.len() - 1;
        if bytes > MAX_FRAME_BYTES {
            return Err(ClientError::TooLarge { method: method.to_owned(), bytes, limit: MAX_FRAME_BYTES });
        }
        let pending = Pending { reply, bytes };
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
        self.send_request(M::NAME, params, Reply::Call(tx))?;
        let raw = rx.await.map_err(|_| ClientError::Disconnected { endpoint: self.inner.endpoint.clone() })??;
        serde_json::from_str(raw.get()).map_err(|e| ClientError::Decode(format!("{}: {e}", M::NAME)))
    }

    /// Subscribes to a thread; events follow in order.
    pub async fn subscribe(&self, params: &ThreadSubscribeParams) -> Result<Subscription, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send_request(ThreadSubscribe::NAME, params, Reply::Subscribe(tx))?;
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
            p.reply.fail(err());
        }
    }
}

/// Delivers one incoming line; `false` when the connection should be dropped.
async fn route(inner: &Inner, line: &[u8]) -> bool {
    match parse_line(line) {
        Some(Incoming::Response { id, result }) => {
            let Some(id) = id.as_u64() else {
                if let Err(e) = result {
                    unattributed(inner, e);
                }
                return true;
            };
            let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
            match routes.pending.remove(&id).map(|p| p.reply) {
                Some(Reply::Call(tx)) => {
                    let _ = tx.send(result.map_err(ClientError::Rpc));
                }
                Some(Reply::Subscribe(tx)) => {
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

/// An error the server sent with `id: null`, which names no request. The
/// server sends those for two things:
///
/// - a line it could not read as a request (`frameTooLarge`, `parseError`:
///   not JSON, `invalidRequest`: not a request object): it skipped
///   that line and keeps the connection. One of the requests in flight was
///   that line, and no answer will ever come for it. If only one is in
///   flight, it is that one. A `frameTooLarge` names the server's limit, so
///   when exactly one pending line is over it, it is that one. Otherwise
///   the culprit cannot be told apart: every candidate gets the error as
///   [`ClientError::Unattributed`], which says so (a caller may retry), rather
///   than leaving the culprit waiting forever; an answer that still comes
///   for one of the others is dropped. (The server answers lines in order,
///   so the oldest pending request is most likely the culprit, but guessing
///   wrong would hang the real one and fail another with the wrong error.)
/// - a refusal of the connection itself (`tooManyConnections`, `overloaded`,
///   `lineTimeout`, `unauthorized`…), after which the server closes it:
///   it is kept, and the close ends every pending request (and any later
///   one) with [`ClientError::Refused`] naming it.
fn unattributed(inner: &Inner, error: RpcError) {
    // A refusal has a reason of its own; a bad line has the code's (or none).
    let about_a_line = match error.reason() {
        Some("frameTooLarge") => true,
        Some(r) => r == ErrorCode::ParseError.reason() || r == ErrorCode::InvalidRequest.reason(),
        None => error.is(ErrorCode::ParseError) || error.is(ErrorCode::InvalidRequest),
    };
    let mut routes = inner.routes.lock().unwrap_or_else(|p| p.into_inner());
    if !about_a_line {
        tracing::debug!(%error, "the server reported a connection error");
        routes.refused = Some(error);
        return;
    }
    let mut candidates: Vec<u64> = routes.pending.keys().copied().collect();
    let limit = error.data.as_ref().and_then(|d| d.get("limit")).and_then(serde_json::Value::as_u64);
    if let Some(limit) = limit.filter(|_| error.reason() == Some("frameTooLarge")) {
        let over: Vec<u64> = candidates.iter().copied().filter(|id| routes.pending[id].bytes as u64 > limit).collect();
        if !over.is_empty() {
            candidates = over;
        }
    }
    tracing::debug!(%error, candidates = candidates.len(), "the server refused a line without naming it");
    let in_flight = candidates.len();
    for id in candidates {
        let Some(p) = routes.pending.remove(&id) else { continue };
        p.reply.fail(if in_flight == 1 {
            ClientError::Rpc(error.clone())
        } else {
            ClientError::Unattributed { in_flight, error: error.clone() }
        });
    }
}

#[cfg(test)]
mod tests {
    //! A scripted server on the other end of a real unix socket: what it
    //! answers with `id: null` must end the calls in flight, never hang them.

    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;
    use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

    use super::*;

    /// Long enough for a slow machine, short enough to call a hang a hang.
    const NO_HANG: Duration = Duration::from_secs(10);

    struct Script {
        lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
        w: OwnedWriteHalf,
    }

    impl Script {
        /// The next request the client sent, and its length as a line.
        async fn request(&mut self) -> (Value, usize) {
            let line = tokio::time::timeout(NO_HANG, self.lines.next_line()).await.unwrap().unwrap().unwrap();
            (serde_json::from_str(&line).unwrap(), line.len())
        }
        async fn send(&mut self, msg: Value) {
            self.w.write_all(format!("{msg}\n").as_bytes()).await.unwrap();
        }
    }

    fn pair() -> (Client, Script) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (r, w) = ours.into_split();
        let client = Client::over("test".into(), r, w, None);
        let (tr, tw) = theirs.into_split();
        (client, Script { lines: BufReader::new(tr).lines(), w: tw })
    }

    fn read(client: &Client, thread: &str) -> tokio::task::JoinHandle<Result<ThreadResult, ClientError>> {
        let (client, params) = (client.clone(), ThreadReadParams { thread_id: thread.to_owned() });
        tokio::spawn(async move { client.call::<ThreadRead>(&params).await })
    }

    async fn answer<T>(call: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(NO_HANG, call).await.expect("the call hung").unwrap()
    }

    fn null_error(error: RpcError) -> Value {
        json!({"jsonrpc": "2.0", "id": null, "error": error})
    }

    #[tokio::test]
    async fn a_line_too_large_for_the_server_ends_the_one_call_in_flight() {
        let (client, mut server) = pair();
        let call = read(&client, "t1");
        server.request().await;
        server.send(null_error(RpcError::frame_too_large(10))).await;
        match answer(call).await {
            Err(ClientError::Rpc(e)) => assert_eq!(e.reason(), Some("frameTooLarge"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn of_several_in_flight_the_one_over_the_limit_gets_frame_too_large_and_the_others_their_answers() {
        let (client, mut server) = pair();
        let big = read(&client, &"b".repeat(200));
        let (_, big_len) = server.request().await;
        let small = read(&client, "s");
        let (small_req, small_len) = server.request().await;
        server.send(null_error(RpcError::frame_too_large((big_len + small_len) / 2))).await;
        match answer(big).await {
            Err(ClientError::Rpc(e)) => assert_eq!(e.reason(), Some("frameTooLarge"), "{e}"),
            other => panic!("{other:?}"),
        }
        server.send(json!({"jsonrpc": "2.0", "id": small_req["id"], "error": RpcError::thread_not_found("s")})).await;
        match answer(small).await {
            Err(ClientError::Rpc(e)) => assert!(e.is(ErrorCode::ThreadNotFound), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_error_naming_no_request_of_several_ends_each_of_them_saying_so() {
        let (client, mut server) = pair();
        let one = read(&client, "t1");
        server.request().await;
        let two = read(&client, "t2");
        server.request().await;
        server.send(null_error(RpcError::parse_error("expected value at line 1 column 1"))).await;
        for call in [one, two] {
            match answer(call).await {
                Err(e @ ClientError::Unattributed { in_flight: 2, .. }) => {
                    assert!(e.to_string().contains("without saying which"), "{e}")
                }
                other => panic!("{other:?}"),
            }
        }
        // The connection is still good.
        let three = read(&client, "t3");
        let (req, _) = server.request().await;
        server.send(json!({"jsonrpc": "2.0", "id": req["id"], "error": RpcError::thread_not_found("t3")})).await;
        assert!(matches!(answer(three).await, Err(ClientError::Rpc(_))));
    }

    #[tokio::test]
    async fn a_refused_connection_ends_its_calls_as_refused() {
        let (client, mut server) = pair();
        let call = read(&client, "t1");
        server.request().await;
        let refusal = RpcError::new(ErrorCode::Internal, "too many connections").with_reason("tooManyConnections");
        server.send(null_error(refusal)).await;
        drop(server);
        match answer(call).await {
            Err(ClientError::Refused { error, .. }) => assert_eq!(error.reason(), Some("tooManyConnections")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_over_the_frame_limit_is_refused_before_it_is_sent() {
        let (client, _server) = pair();
        let huge = "x".repeat(MAX_FRAME_BYTES);
        match answer(read(&client, &huge)).await {
            Err(e @ ClientError::TooLarge { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("thread/read") && msg.contains(&MAX_FRAME_BYTES.to_string()), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}
