//! `--listen unix[:PATH]`: the local socket. Binding never steals a live
//! server's socket: a leftover file is removed only if nobody answers on it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::slots::Slots;

use tandem_rpc::context::Context;

/// Errors while binding the socket.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another app-server is already listening on {0}")]
    InUse(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Binds `path` (mode 0600), replacing a stale socket file left by a dead server.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let io_err = |source| BindError::Io { path: path.to_owned(), source };
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_owned()));
            }
            tracing::info!(path = %path.display(), "replacing a stale socket file");
            std::fs::remove_file(path).map_err(io_err)?;
            UnixListener::bind(path).map_err(io_err)?
        }
        Err(e) => return Err(io_err(e)),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(listener)
}

/// Accepts connections until `stop` turns true; each is served on its own
/// task. Past [`tandem_rpc::context::Limits::max_connections`] (all
/// listeners together; the http one cannot take the socket's reserve, see
/// `slots`) a new client is told so in an error line and closed, rather than
/// left waiting in the accept queue.
pub async fn accept_loop(listener: UnixListener, ctx: Context, slots: Slots, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = slots.unix() else {
            let max = slots.max();
            tracing::warn!(limit = max, "refusing a connection: at the connection limit");
            tokio::spawn(async move {
                let mut stream = stream;
                let line = tandem_protocol::message::error_line(
                    &tandem_protocol::message::Id::null(),
                    &tandem_protocol::RpcError::too_many_connections(max),
                );
                // Read what the client sent until it hangs up: closing a unix
                // socket with unread data resets the peer, which would lose
                // the error line. A client that neither reads nor closes must
                // not hold this task.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    let _ = stream.write_all(line.as_bytes()).await;
                    let _ = stream.shutdown().await;
                    let mut sink = [0u8; 4096];
                    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
            });
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            tandem_rpc::connection::serve_connection(ctx, r, w).await;
            drop(permit);
        });
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
