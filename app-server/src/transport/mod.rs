//! Byte streams in and out: NDJSON framing over any reader/writer pair, and the
//! listeners that produce such pairs (unix socket, stdio). Nothing past this
//! module sees bytes.
//!
//! Every connection is held to budgets (DESIGN §9), so that one client can pin
//! only what it is owed: the bytes queued for it ([`Limits::outbound_bytes`]),
//! its share of the memory for unfinished lines ([`Limits::line_bytes`]) and
//! how long such a line may stall ([`Limits::line_timeout`]); the listener
//! caps how many connections are served at once ([`Limits::max_connections`]).

pub mod lines;
pub mod stdio;
pub mod unix;

use std::sync::Arc;
use std::time::Duration;

use tandem_protocol::framing::Frame;
use tandem_protocol::message::{Id, error_line};
use tandem_protocol::{ErrorCode, MAX_FRAME_BYTES, RpcError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::access::{Gate, Grant};
use crate::engine::Engine;
use crate::rpc::Session;
use lines::{LineBudget, LineQueue, Refusal};

/// The budgets connections are held to. The defaults suit one machine's
/// worth of clients; `tandem app-server --help` lists the flags that change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once; the next one gets an error line and
    /// is closed.
    pub max_connections: usize,
    /// Most WebSockets one peer address may have open at once (http listener).
    pub max_connections_per_ip: usize,
    /// Bytes queued for one client before the server stops reading its
    /// requests (and its subscriptions wait, then catch up from the log).
    pub outbound_bytes: usize,
    /// Bytes of unfinished lines held across all connections; a connection
    /// that would pass it gets an error line and is closed.
    pub line_bytes: usize,
    /// How long an unfinished line may go without a byte before its
    /// connection gets an error line and is closed.
    pub line_timeout: Duration,
}

/// Default [`Limits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;
/// Default [`Limits::max_connections_per_ip`].
pub const MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default [`Limits::outbound_bytes`]: a few of the largest pages (4 MiB).
pub const OUTBOUND_BYTES: usize = 16 * 1024 * 1024;
/// Default [`Limits::line_bytes`]: sixteen clients sending the largest line
/// (8 MiB) at the same moment.
pub const LINE_BYTES: usize = 128 * 1024 * 1024;
/// Default [`Limits::line_timeout`].
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            outbound_bytes: OUTBOUND_BYTES,
            line_bytes: LINE_BYTES,
            line_timeout: LINE_TIMEOUT,
        }
    }
}

/// What every connection of one server shares.
#[derive(Clone)]
pub struct Shared {
    pub engine: Engine,
    pub limits: Limits,
    pub line_budget: LineBudget,
    /// The hub links, when this server syncs threads to hubs.
    pub hub: Option<crate::hub_sync::HubSync>,
    /// The owner token and links; `None` for an in-process engine (no links).
    pub gate: Option<Gate>,
    /// Every transport the server listens on, as `initialize` reports them.
    pub listeners: Arc<Vec<String>>,
    /// The http listener's base URL (`http://HOST:PORT`), which links point at.
    pub http_url: Option<String>,
}

impl Shared {
    pub fn new(engine: Engine, limits: Limits) -> Shared {
        let line_budget = LineBudget::new(limits.line_bytes, limits.line_timeout);
        Shared { engine, limits, line_budget, gate: None, listeners: Arc::default(), http_url: None, hub: None }
    }

    /// With the door to links and what the server listens on.
    pub fn with_access(mut self, gate: Gate, listeners: Vec<String>, http_url: Option<String>) -> Shared {
        self.gate = Some(gate);
        self.listeners = Arc::new(listeners);
        self.http_url = http_url;
        self
    }

    /// The same, with hub links served.
    pub fn with_hub(self, hub: crate::hub_sync::HubSync) -> Shared {
        Shared { hub: Some(hub), ..self }
    }
}

/// What a queued line costs besides its bytes (so tiny lines are bounded too).
const LINE_OVERHEAD: usize = 64;

/// Bytes of one subscription's events queued ahead of the connection's writer
/// ([`Outbound::send_within`]).
pub const SUBSCRIPTION_AHEAD: usize = 256 * 1024;

/// A connection's outbound queue, bounded by bytes: [`Outbound::send`] waits
/// while the client has [`Limits::outbound_bytes`] unread.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<OutLine>,
    budget: Arc<Semaphore>,
    /// The budget in permits (one per byte, capped to fit a `u32`).
    max: usize,
}

/// A queued line; its share of the budget is returned once it is written.
pub struct OutLine {
    line: String,
    _permit: OwnedSemaphorePermit,
    /// Its share of its subscription's own allowance ([`Outbound::send_within`]).
    _ahead: Option<OwnedSemaphorePermit>,
}

impl OutLine {
    /// The line, with its newline.
    pub fn text(&self) -> &str {
        &self.line
    }
}

impl AsRef<[u8]> for OutLine {
    fn as_ref(&self) -> &[u8] {
        self.line.as_bytes()
    }
}

/// The connection is gone.
#[derive(Debug)]
pub struct Closed;

impl Outbound {
    /// A queue of at most `bytes` unwritten bytes, and the receiving end for
    /// [`lines::write_lines`].
    pub fn new(bytes: usize) -> (Outbound, OutQueue) {
        let max = bytes.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(max));
        (Outbound { tx, budget: Arc::clone(&budget), max }, OutQueue { rx, budget })
    }

    /// Queues a line (or a run of newline-terminated lines, sent as one piece),
    /// first waiting for room in the budget (a piece larger than the whole
    /// budget waits for all of it).
    pub async fn send(&self, line: String) -> Result<(), Closed> {
        self.queue(line, None).await
    }

    /// [`Outbound::send`], first waiting until fewer than `allowance`'s
    /// permits of bytes sent this way are unwritten: a subscription keeps only
    /// that much queued ahead of the writer (the rest waits in the feed's ring
    /// or the log), so many subscriptions of a fast thread do not each fill
    /// the connection's whole budget.
    pub async fn send_within(&self, piece: String, allowance: &Arc<Semaphore>) -> Result<(), Closed> {
        let want = (piece.len() + LINE_OVERHEAD).min(SUBSCRIPTION_AHEAD) as u32;
        let ahead = Arc::clone(allowance).acquire_many_owned(want).await.map_err(|_| Closed)?;
        self.queue(piece, Some(ahead)).await
    }

    async fn queue(&self, line: String, ahead: Option<OwnedSemaphorePermit>) -> Result<(), Closed> {
        let cost = (line.len() + LINE_OVERHEAD).min(self.max) as u32;
        let permit = Arc::clone(&self.budget).acquire_many_owned(cost).await.map_err(|_| Closed)?;
        self.tx.send(OutLine { line, _permit: permit, _ahead: ahead }).map_err(|_| Closed)
    }
}

/// The writer's end of an [`Outbound`]; dropping it fails every waiting send.
pub struct OutQueue {
    rx: mpsc::UnboundedReceiver<OutLine>,
    budget: Arc<Semaphore>,
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        self.budget.close();
    }
}

impl LineQueue for OutQueue {
    type Line = OutLine;
    fn recv(&mut self) -> impl Future<Output = Option<OutLine>> + Send {
        self.rx.recv()
    }
    fn try_recv(&mut self) -> Option<OutLine> {
        self.rx.try_recv().ok()
    }
}

/// How long a refused connection is read (and its bytes dropped) so that its
/// client gets the error line before the close.
const REFUSAL_DRAIN: Duration = Duration::from_secs(5);

/// Serves one connection until the client hangs up (or breaks a budget).
pub async fn serve_connection<R, W>(shared: Shared, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, queue) = Outbound::new(shared.limits.outbound_bytes);
    let writer = tokio::spawn(lines::write_lines(writer, queue));
    let mut session = Session::new(&shared, Grant::Owner, out);
    let mut frames = lines::LineReader::new(reader);
    while let Some(frame) = frames.next_within(&shared.line_budget).await {
        match frame {
            Ok(Frame::Line(line)) => session.handle_line(&line).await,
            Ok(Frame::TooLarge) => {
                session.send(error_line(&Id::null(), &RpcError::frame_too_large(MAX_FRAME_BYTES))).await
            }
            Err(refusal) => {
                let error = match refusal {
                    Refusal::Stalled => RpcError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "line timeout: no byte for {}s in the middle of a line; send each message as one whole line. Closing the connection",
                            shared.limits.line_timeout.as_secs_f32()
                        ),
                    )
                    .with_reason("lineTimeout"),
                    Refusal::Overloaded => RpcError::new(
                        ErrorCode::Internal,
                        format!(
                            "overloaded: unfinished lines from all clients hold the server's {} MiB line budget; closing the connection, retry shortly",
                            shared.limits.line_bytes / (1024 * 1024)
                        ),
                    )
                    .with_reason("overloaded"),
                };
                tracing::warn!(%error, "closing a connection");
                session.send(error_line(&Id::null(), &error)).await;
                drop(session);
                let (_, ()) = tokio::join!(writer, frames.discard_rest(REFUSAL_DRAIN));
                return;
            }
        }
    }
    drop(session);
    let _ = writer.await;
}
