//! Byte streams in and out: NDJSON framing over any reader/writer pair, and the
//! listeners that produce such pairs (unix socket, stdio). Nothing past this
//! module sees bytes.

pub mod stdio;
pub mod unix;

use tandem_protocol::MAX_FRAME_BYTES;
use tandem_protocol::RpcError;
use tandem_protocol::framing::{Frame, LineDecoder};
use tandem_protocol::message::error_line;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::rpc::Session;

/// Lines queued for a client before the session waits for it to read.
const OUTBOUND_QUEUE: usize = 1024;

/// Serves one connection until the client hangs up.
pub async fn serve_connection<R, W>(engine: Engine, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let writer = tokio::spawn(write_lines(writer, out_rx));
    let mut session = Session::new(engine, out_tx);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut decoder = LineDecoder::new(MAX_FRAME_BYTES);
    loop {
        let (used, frame) = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(buf) => decoder.push(buf),
            Err(e) => {
                tracing::debug!(error = %e, "connection read failed");
                break;
            }
        };
        reader.consume(used);
        match frame {
            Some(Frame::Line(line)) => session.handle_line(&line).await,
            Some(Frame::TooLarge) => {
                session
                    .send(error_line(
                        &serde_json::Value::Null,
                        &RpcError::frame_too_large(MAX_FRAME_BYTES),
                    ))
                    .await
            }
            None => {}
        }
    }
    if let Some(Frame::Line(line)) = decoder.finish() {
        session.handle_line(&line).await;
    }
    drop(session);
    let _ = writer.await;
}

async fn write_lines<W: AsyncWrite + Unpin>(writer: W, mut rx: mpsc::Receiver<String>) {
    let mut w = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(line) = rx.recv().await {
        if w.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        // Batch whatever else is already queued into the same write.
        while let Ok(line) = rx.try_recv() {
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
