//! Byte streams in and out: NDJSON framing over any reader/writer pair, and the
//! listeners that produce such pairs (unix socket, stdio). Nothing past this
//! module sees bytes.

pub mod lines;
pub mod stdio;
pub mod unix;

use tandem_protocol::MAX_FRAME_BYTES;
use tandem_protocol::RpcError;
use tandem_protocol::framing::Frame;
use tandem_protocol::message::error_line;
use tokio::io::{AsyncRead, AsyncWrite};
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
    let writer = tokio::spawn(lines::write_lines(writer, out_rx));
    let mut session = Session::new(engine, out_tx);
    let mut frames = lines::LineReader::new(reader);
    while let Some(frame) = frames.next().await {
        match frame {
            Frame::Line(line) => session.handle_line(&line).await,
            Frame::TooLarge => {
                session.send(error_line(&tandem_protocol::message::Id::null(), &RpcError::frame_too_large(MAX_FRAME_BYTES))).await
            }
        }
    }
    drop(session);
    let _ = writer.await;
}
