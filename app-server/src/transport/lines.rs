//! NDJSON over async byte streams, for both ends of a connection: read whole
//! frames (lines, or "too large") and write queued lines in batches.

use tandem_protocol::MAX_FRAME_BYTES;
use tandem_protocol::framing::{Frame, LineDecoder};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

/// Reads frames of at most [`MAX_FRAME_BYTES`] from a byte stream.
pub struct LineReader<R> {
    reader: BufReader<R>,
    decoder: LineDecoder,
    done: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R) -> Self {
        LineReader::with_limit(reader, MAX_FRAME_BYTES)
    }

    /// A reader whose lines may be up to `limit` bytes.
    pub fn with_limit(reader: R, limit: usize) -> Self {
        LineReader {
            reader: BufReader::with_capacity(64 * 1024, reader),
            decoder: LineDecoder::new(limit),
            done: false,
        }
    }

    /// The next frame; `None` once the stream has ended (or failed). A last
    /// line without a newline still counts.
    pub async fn next(&mut self) -> Option<Frame> {
        while !self.done {
            let (used, frame) = match self.reader.fill_buf().await {
                Ok([]) | Err(_) => {
                    self.done = true;
                    return self.decoder.finish();
                }
                Ok(buf) => self.decoder.push(buf),
            };
            self.reader.consume(used);
            if frame.is_some() {
                return frame;
            }
        }
        None
    }
}

/// A queue of outgoing lines (bounded or not).
pub trait LineQueue: Send {
    fn recv(&mut self) -> impl Future<Output = Option<String>> + Send;
    fn try_recv(&mut self) -> Option<String>;
}

impl LineQueue for mpsc::Receiver<String> {
    fn recv(&mut self) -> impl Future<Output = Option<String>> + Send {
        mpsc::Receiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<String> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

impl LineQueue for mpsc::UnboundedReceiver<String> {
    fn recv(&mut self) -> impl Future<Output = Option<String>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<String> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Writes queued lines until the queue closes or the stream fails; lines that
/// are already waiting go out in the same write.
pub async fn write_lines<W: AsyncWrite + Unpin>(writer: W, mut queue: impl LineQueue) {
    let mut w = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(line) = queue.recv().await {
        if w.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        while let Some(line) = queue.try_recv() {
            if w.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}
