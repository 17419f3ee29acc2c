//! `ws://HOST:PORT/rpc`: a WebSocket to an app-server's http listener, bridged
//! to the NDJSON byte stream the client speaks everywhere else (one text frame
//! per line, both ways), so the rest of the client cannot tell the difference.

use futures_util::{SinkExt, StreamExt};
use tandem_protocol::RpcError;
use tandem_protocol::framing::Frame;
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::{CONNECT_TIMEOUT, ClientError};
use tandem_lines::LineReader;

/// Bytes in flight between the WebSocket and the client, each way.
const BRIDGE_BUFFER: usize = 256 * 1024;

/// Longest line the client sends (the server's own limit).
const CLIENT_FRAME_LIMIT: usize = tandem_protocol::MAX_FRAME_BYTES;

/// Opens the WebSocket at `url` presenting `token`; the byte stream to it.
pub async fn connect(
    url: &str,
    token: Option<&str>,
) -> Result<(ReadHalf<DuplexStream>, WriteHalf<DuplexStream>), ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable { endpoint: url.to_owned(), reason };
    let mut request = url.into_client_request().map_err(|e| unreachable(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", tandem_protocol::WS_SUBPROTOCOL.parse().expect("a valid header"));
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| unreachable("the token has characters a header cannot carry".into()))?;
        headers.insert("Authorization", value);
    }
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| unreachable(format!("no WebSocket after {}s", CONNECT_TIMEOUT.as_secs())))?;
    let ws = match connected {
        Ok((ws, _)) => ws,
        Err(tungstenite::Error::Http(res)) => {
            // The door said no (401/403/503): its body is a JSON-RPC error.
            let status = res.status();
            let error = res
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| serde_json::from_value::<RpcError>(v.get("error")?.clone()).ok())
                .unwrap_or_else(|| RpcError::internal(format!("HTTP {status}")));
            return Err(ClientError::Refused { endpoint: url.to_owned(), error });
        }
        Err(e) => return Err(unreachable(e.to_string())),
    };
    let (ours, theirs) = tokio::io::duplex(BRIDGE_BUFFER);
    let (their_r, mut their_w) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    // Server → client: each text frame becomes a line.
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(text) => {
                    let mut line = text.as_str().to_owned();
                    line.push('\n');
                    if their_w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = their_w.shutdown().await;
    });
    // Client → server: each line becomes a text frame.
    tokio::spawn(async move {
        let mut lines = LineReader::with_limit(their_r, CLIENT_FRAME_LIMIT);
        while let Some(Frame::Line(line)) = lines.next().await {
            let text = String::from_utf8_lossy(&line).into_owned();
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    Ok(tokio::io::split(ours))
}
