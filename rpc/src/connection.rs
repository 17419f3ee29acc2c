//! One connection's life over a byte stream: NDJSON lines in, each handed to
//! the connection's [`Session`], queued lines out, until the client hangs up
//! or breaks a budget. The unix socket, stdio and the in-process pipe all
//! come here.

use std::time::Duration;

use tandem_protocol::framing::Frame;
use tandem_protocol::message::{Id, error_line};
use tandem_protocol::{ErrorCode, MAX_FRAME_BYTES, RpcError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access::Grant;
use crate::context::Context;
use crate::outbound::Outbound;
use crate::session::Session;
use tandem_lines::{LineReader, LineRefusal, write_lines};

/// How long a stopping server lets a connection's queued lines go out.
pub const STOP_FLUSH: Duration = Duration::from_secs(2);

/// How long a refused connection is read (and its bytes dropped) so that its
/// client gets the error line before the close.
const REFUSAL_DRAIN: Duration = Duration::from_secs(5);

/// Serves one connection until the client hangs up (or breaks a budget).
pub async fn serve_connection<R, W>(ctx: Context, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, queue) = Outbound::with_clients(ctx.limits.outbound_bytes, &ctx.clients_budget, true);
    let writer = tokio::spawn(write_lines(writer, queue));
    let mut session = Session::new(&ctx, Grant::Owner, out);
    let mut frames = LineReader::new(reader);
    loop {
        let frame = tokio::select! {
            frame = frames.next_within(&ctx.line_budget) => frame,
            () = ctx.stopping() => {
                // The server is stopping: what is queued still goes out, for
                // a while; a client that does not read is not waited for.
                drop(session);
                let _ = tokio::time::timeout(STOP_FLUSH, writer).await;
                return;
            }
        };
        let Some(frame) = frame else { break };
        match frame {
            Ok(Frame::Line(line)) => session.handle_line(&line).await,
            Ok(Frame::TooLarge) => {
                session.send(error_line(&Id::null(), &RpcError::frame_too_large(MAX_FRAME_BYTES))).await
            }
            Err(refusal) => {
                let error = match refusal {
                    LineRefusal::Stalled => RpcError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "line timeout: no byte for {}s in the middle of a line; send each message as one whole line. Closing the connection",
                            ctx.limits.line_timeout.as_secs_f32()
                        ),
                    )
                    .with_reason("lineTimeout"),
                    LineRefusal::Overloaded => RpcError::new(
                        ErrorCode::Internal,
                        format!(
                            "overloaded: unfinished lines from all clients hold the server's {} MiB line budget; closing the connection, retry shortly",
                            ctx.limits.line_bytes / (1024 * 1024)
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
