//! `tandem app-server`: take the data directory's lock, open the log, listen on
//! the requested transports, and on SIGTERM/SIGINT (or, for a stdio-only
//! server, when stdin closes) shut down cleanly: running turns end
//! `interrupted`, the log is flushed, the socket file is removed.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::agent::Agent;
use crate::engine::Engine;
use crate::lock::{DataLock, LockError};
use crate::paths::Home;
use crate::store::{Durability, StoreError};
use crate::transport::{self, unix::BindError};

/// A transport to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket; `None` is the data directory's default socket.
    Unix(Option<PathBuf>),
    /// This process's stdin/stdout.
    Stdio,
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unix" => Ok(Listen::Unix(None)),
            "stdio" => Ok(Listen::Stdio),
            _ => match s.strip_prefix("unix:") {
                Some(p) if !p.is_empty() => Ok(Listen::Unix(Some(PathBuf::from(p)))),
                _ => Err(format!("unknown transport {s:?}; accepted: unix, unix:PATH, stdio")),
            },
        }
    }
}

/// How to run a server.
pub struct ServeOptions {
    pub home: Home,
    pub listen: Vec<Listen>,
    pub agent: Arc<dyn Agent>,
    pub durability: Durability,
}

/// Why a server could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data directory {path}: {source}")]
    Home { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// Runs the server until it is told to stop.
pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    let home = &opts.home;
    home.ensure().map_err(|source| ServeError::Home { path: home.dir().to_owned(), source })?;
    let _lock = DataLock::acquire(&home.lock_path())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let engine = Engine::open(&home.db_path(), opts.durability, opts.agent).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sockets = Vec::new();
    let mut stdio = None;
    for listen in &opts.listen {
        match listen {
            Listen::Unix(path) => {
                let path = match path {
                    Some(p) => p.clone(),
                    None => {
                        let p = home.socket_path();
                        if !p.starts_with(home.dir()) {
                            let dir = home.short_socket_dir();
                            std::fs::DirBuilder::new()
                                .recursive(true)
                                .mode(0o700)
                                .create(&dir)
                                .map_err(|source| ServeError::Home { path: dir, source })?;
                        }
                        p
                    }
                };
                let listener = transport::unix::bind(&path)?;
                tracing::info!(socket = %path.display(), "listening");
                sockets.push(path);
                tokio::spawn(transport::unix::accept_loop(listener, engine.clone(), stop_rx.clone()));
            }
            Listen::Stdio => {
                tracing::info!("serving stdio");
                stdio = Some(tokio::spawn(transport::stdio::serve(engine.clone())));
            }
        }
    }
    let stdio_only = sockets.is_empty();
    let stdio_done = async {
        match stdio {
            Some(task) if stdio_only => {
                let _ = task.await;
            }
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        _ = stdio_done => tracing::info!("stdin closed: shutting down"),
    }
    let _ = stop_tx.send(true);
    for path in &sockets {
        let _ = std::fs::remove_file(path);
    }
    engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
