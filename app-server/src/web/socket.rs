//! One WebSocket, carrying the JSON-RPC protocol: each text frame in is one
//! message for the connection's `Session` (exactly as a unix-socket line is),
//! each queued line goes out as one text frame. The outbound byte budget is
//! the same as a socket's: a client that stops reading stops being read.

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tandem_protocol::message::{Id, error_line};
use tandem_protocol::{MAX_FRAME_BYTES, RpcError};

use tandem_lines::LineQueue;
use tandem_rpc::access::Grant;
use tandem_rpc::context::Context;
use tandem_rpc::outbound::Outbound;
use tandem_rpc::session::Session;

/// The largest message read off a WebSocket (twice `MAX_FRAME_BYTES`).
pub const READ_LIMIT: usize = 2 * MAX_FRAME_BYTES;

/// The largest message read off a read-only link's WebSocket: its requests
/// (read, page, subscribe) are small.
pub const READ_ONLY_LIMIT: usize = 64 * 1024;

/// Serves one WebSocket until either side closes it.
pub async fn serve(ws: WebSocket, ctx: Context, grant: Grant) {
    let (mut sink, mut stream) = ws.split();
    let (out, mut queue) =
        Outbound::with_clients(ctx.limits.outbound_bytes, &ctx.clients_budget, matches!(grant, Grant::Owner));
    let writer = tokio::spawn(async move {
        while let Some(piece) = queue.recv().await {
            // A queued piece is one line or a run of them (a subscription's
            // events): one message per line. JSON lines hold no raw newline.
            for line in piece.text().split_terminator('\n') {
                if sink.feed(Message::Text(line.to_owned().into())).await.is_err() {
                    return;
                }
            }
            // The piece's share of the budget comes back once it is sent.
            if sink.flush().await.is_err() {
                return;
            }
            drop(piece);
        }
        let _ = sink.close().await;
    });
    let mut session = Session::new(&ctx, grant, out);
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            () = ctx.stopping() => {
                drop(session);
                let _ = tokio::time::timeout(tandem_rpc::connection::STOP_FLUSH, writer).await;
                return;
            }
        };
        let Some(msg) = msg else { break };
        match msg {
            Ok(Message::Text(text)) if text.len() > MAX_FRAME_BYTES => {
                session.send(error_line(&Id::null(), &RpcError::frame_too_large(MAX_FRAME_BYTES))).await;
            }
            Ok(Message::Text(text)) => session.handle_line(text.as_bytes()).await,
            Ok(Message::Binary(_)) => {
                let e = RpcError::invalid_request("send each JSON-RPC message as one text frame, not binary");
                session.send(error_line(&Id::null(), &e)).await;
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(e) => {
                // Too large a message, a broken frame, a reset: the connection ends.
                tracing::debug!(error = %e, "WebSocket closed");
                break;
            }
        }
    }
    drop(session);
    let _ = writer.await;
}
