//! A connection's outbound queue, bounded by bytes: whoever answers or
//! notifies a client queues lines here, and the connection's writer takes
//! them off. A client that does not read stops being served past its budget.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use tandem_lines::LineQueue;

/// What a queued line costs besides its bytes (so tiny lines are bounded too).
const LINE_OVERHEAD: usize = 64;

/// Bytes of one subscription's events queued ahead of the connection's writer
/// ([`Outbound::send_within`]).
pub const SUBSCRIPTION_AHEAD: usize = 256 * 1024;

/// A connection's outbound queue, bounded by bytes: [`Outbound::send`] waits
/// while the client has `Limits::outbound_bytes` unread.
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
