//! `--listen unix[:PATH]`: the local socket. Binding never steals a live
//! server's socket: a leftover file is removed only if nobody answers on it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};

use crate::engine::Engine;

/// Most connections served at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 4096;

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

/// Accepts connections until `stop` turns true; each is served on its own task.
pub async fn accept_loop(listener: UnixListener, engine: Engine, mut stop: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stopped(&mut stop) => return,
            p = Arc::clone(&limit).acquire_owned() => p.expect("semaphore is never closed"),
        };
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
        let engine = engine.clone();
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            super::serve_connection(engine, r, w).await;
            drop(permit);
        });
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
