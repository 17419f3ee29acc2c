//! NDJSON over async byte streams, for both ends of a connection: read whole
//! frames (lines, or "too large") and write queued lines in batches.
//!
//! Nothing here allocates ahead of need: an idle connection holds a small read
//! buffer and no write buffer, so thousands of them stay cheap.

use std::sync::Arc;
use std::time::Duration;

use tandem_protocol::MAX_FRAME_BYTES;
use tandem_protocol::framing::{Frame, LineDecoder};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Read buffer per connection; longer lines are assembled by the decoder.
const READ_BUFFER: usize = 8 * 1024;

/// Queued lines are gathered into writes of about this size.
const WRITE_CHUNK: usize = 64 * 1024;

/// Why the server stopped reading a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRefusal {
    /// A line was left unfinished for longer than the line timeout.
    Stalled,
    /// Unfinished lines across all connections hold the whole line budget.
    Overloaded,
}

/// Memory for unfinished lines, shared by every connection of a server.
#[derive(Clone)]
pub struct LineBudget {
    bytes: Arc<Semaphore>,
    /// How long an unfinished line may go without a byte.
    pub timeout: Duration,
}

/// Permits are taken in steps of this many bytes (the semaphore counts in
/// units of it, so any budget fits its `u32` counts).
const BUDGET_UNIT: usize = 64 * 1024;

impl LineBudget {
    /// `total` bytes of unfinished lines across connections; a line that gets
    /// no byte for `timeout` is refused.
    pub fn new(total: usize, timeout: Duration) -> LineBudget {
        LineBudget { bytes: Arc::new(Semaphore::new(total.div_ceil(BUDGET_UNIT).max(1))), timeout }
    }
}

/// Reads frames of at most [`MAX_FRAME_BYTES`] from a byte stream.
pub struct LineReader<R> {
    reader: BufReader<R>,
    decoder: LineDecoder,
    done: bool,
    /// The share of the line budget this connection's unfinished line holds.
    held: Option<OwnedSemaphorePermit>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R) -> Self {
        LineReader::with_limit(reader, MAX_FRAME_BYTES)
    }

    /// A reader whose lines may be up to `limit` bytes.
    pub fn with_limit(reader: R, limit: usize) -> Self {
        LineReader {
            reader: BufReader::with_capacity(READ_BUFFER, reader),
            decoder: LineDecoder::new(limit),
            done: false,
            held: None,
        }
    }

    /// The next frame; `None` once the stream has ended (or failed). A last
    /// line without a newline still counts.
    pub async fn next(&mut self) -> Option<Frame> {
        while !self.done {
            if let Some(frame) = self.step().await {
                return Some(frame);
            }
        }
        None
    }

    /// Like [`LineReader::next`], for a server: an unfinished line holds part
    /// of `budget` and must keep moving; a refusal ends the connection.
    pub async fn next_within(&mut self, budget: &LineBudget) -> Option<Result<Frame, LineRefusal>> {
        while !self.done {
            let step = if self.decoder.in_line() {
                match tokio::time::timeout(budget.timeout, self.step()).await {
                    Ok(step) => step,
                    Err(_) => return Some(Err(LineRefusal::Stalled)),
                }
            } else {
                self.step().await
            };
            // Hold budget for what the decoder keeps, give it back once the
            // line is done.
            let units = self.decoder.pending().div_ceil(BUDGET_UNIT);
            let held = self.held.as_ref().map_or(0, |p| p.num_permits());
            if units == 0 {
                self.held = None;
            } else if units > held {
                match Arc::clone(&budget.bytes).try_acquire_many_owned((units - held) as u32) {
                    Ok(more) => match self.held.as_mut() {
                        Some(p) => p.merge(more),
                        None => self.held = Some(more),
                    },
                    Err(_) => return Some(Err(LineRefusal::Overloaded)),
                }
            }
            if let Some(frame) = step {
                return Some(Ok(frame));
            }
        }
        None
    }

    /// After a refusal: gives the line budget back and reads what the client
    /// still sends, without keeping it, until it hangs up or `limit` passes.
    /// (Closing a unix socket with unread data resets the peer, which would
    /// lose the error line it was just sent.)
    pub async fn discard_rest(&mut self, limit: Duration) {
        self.held = None;
        self.decoder = LineDecoder::new(0);
        let _ = tokio::time::timeout(limit, async {
            loop {
                match self.reader.fill_buf().await {
                    Ok([]) | Err(_) => return,
                    Ok(buf) => {
                        let n = buf.len();
                        self.reader.consume(n);
                    }
                }
            }
        })
        .await;
    }

    async fn step(&mut self) -> Option<Frame> {
        let (used, frame) = match self.reader.fill_buf().await {
            Ok([]) | Err(_) => {
                self.done = true;
                return self.decoder.finish();
            }
            Ok(buf) => self.decoder.push(buf),
        };
        self.reader.consume(used);
        frame
    }
}

/// A queue of outgoing lines (bounded or not).
pub trait LineQueue: Send {
    type Line: AsRef<[u8]> + Send;
    fn recv(&mut self) -> impl Future<Output = Option<Self::Line>> + Send;
    fn try_recv(&mut self) -> Option<Self::Line>;
}

impl LineQueue for mpsc::UnboundedReceiver<String> {
    type Line = String;
    fn recv(&mut self) -> impl Future<Output = Option<String>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<String> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Writes queued lines until the queue closes or the stream fails; lines that
/// are already waiting go out in the same write.
pub async fn write_lines<W: AsyncWrite + Unpin, Q: LineQueue>(mut writer: W, mut queue: Q) {
    let mut gathered: Vec<u8> = Vec::new();
    while let Some(first) = queue.recv().await {
        let written = match queue.try_recv() {
            // The common case of one line: no copy.
            None => writer.write_all(first.as_ref()).await,
            Some(second) => {
                gathered.extend_from_slice(first.as_ref());
                drop(first);
                gathered.extend_from_slice(second.as_ref());
                drop(second);
                while gathered.len() < WRITE_CHUNK {
                    match queue.try_recv() {
                        Some(line) => gathered.extend_from_slice(line.as_ref()),
                        None => break,
                    }
                }
                let r = writer.write_all(&gathered).await;
                gathered.clear();
                if gathered.capacity() > 4 * WRITE_CHUNK {
                    gathered = Vec::new();
                }
                r
            }
        };
        if written.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
