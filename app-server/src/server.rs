//! `tandem app-server`: take the data directory's lock, open the log, listen on
//! the requested transports, and on SIGTERM/SIGINT (or, for a stdio-only
//! server, when stdin closes) shut down cleanly: running turns end
//! `interrupted`, the log is flushed, the socket file is removed.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::transport::{self, unix::BindError};
use tandem_engine::Engine;
use tandem_engine::agent::Agent;
use tandem_engine::{Durability, StoreError};
use tandem_home::Home;
use tandem_home::lock::{DataLock, LockError};
use tandem_rpc::context::{Context, Limits};

/// A transport to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket; `None` is the data directory's default socket.
    Unix(Option<PathBuf>),
    /// This process's stdin/stdout.
    Stdio,
    /// HTTP on this address: the viewer and the `/rpc` WebSocket (port 0:
    /// any free port; `initialize` reports the one chosen).
    Http(std::net::SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unix" => Ok(Listen::Unix(None)),
            "stdio" => Ok(Listen::Stdio),
            _ => {
                if let Some(rest) = s.strip_prefix("http://") {
                    return parse_http(rest.trim_end_matches('/')).map(Listen::Http).map_err(|why| {
                        format!(
                            "{why} in {s:?}; accepted: http://127.0.0.1:PORT, http://[::1]:PORT, http://localhost:PORT"
                        )
                    });
                }
                match s.strip_prefix("unix:") {
                    Some(p) if !p.is_empty() => Ok(Listen::Unix(Some(PathBuf::from(p)))),
                    _ => {
                        Err(format!("unknown transport {s:?}; accepted: unix, unix:PATH, stdio, http://127.0.0.1:PORT"))
                    }
                }
            }
        }
    }
}

/// `HOST:PORT` of an http listener: an IP address or `localhost`, and a port.
fn parse_http(rest: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = rest.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    match rest.rsplit_once(':') {
        Some(("localhost", port)) => port
            .parse::<u16>()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("bad port {port:?}")),
        Some((_, port)) if port.parse::<u16>().is_err() => Err(format!("bad port {port:?}")),
        Some((host, _)) => Err(format!("{host:?} is not an IP address (or localhost)")),
        None => Err("no port".into()),
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(None) => f.write_str("unix"),
            Listen::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Listen::Stdio => f.write_str("stdio"),
            Listen::Http(addr) => write!(f, "http://{addr}"),
        }
    }
}

/// How to run a server.
pub struct ServeOptions {
    pub home: Home,
    pub listen: Vec<Listen>,
    pub agent: Arc<dyn Agent>,
    pub durability: Durability,
    pub limits: Limits,
    /// Let an http listener bind a non-loopback address.
    pub allow_remote: bool,
    /// Where users reach the http listener, if not at its own address.
    pub public_url: Option<crate::web::PublicUrl>,
    /// The flags the server was started with, as the owner's `initialize`
    /// shows them (no credentials: see `redact::urls`).
    pub launch_args: Vec<String>,
}

/// Why a server could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot use {path}: {source}")]
    Home { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    HttpBind(#[from] crate::web::HttpBindError),
    #[error(transparent)]
    Access(#[from] tandem_rpc::access::LinksError),
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// Runs the server until it is told to stop.
pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    let home = &opts.home;
    // SAFETY: umask and signal have no preconditions. Whatever the caller's
    // umask, what the server creates is for this user only; a file size limit
    // (ulimit -f) makes writes fail like a full disk instead of killing us.
    unsafe {
        libc::umask(0o077);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    home.ensure().map_err(|source| ServeError::Home { path: home.dir().to_owned(), source })?;
    let _lock = DataLock::acquire(&home.lock_path())?;
    check_db_files(&home.db_path())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let engine = Engine::open(&home.db_path(), opts.durability, opts.agent).await?;
    let limits = fit_to_file_limit(opts.limits.clone());
    let hub = tandem_rpc::hub_sync::HubSync::start(engine.clone(), home.clone())
        .map_err(|source| ServeError::Home { path: home.dir().to_owned(), source })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = tandem_rpc::shutdown::Stopper::new();
    let mirrors = crate::mirror::follow::spawn(
        engine.clone(),
        home.clone(),
        crate::mirror::locate::SessionRoots::from_env(),
        Some(hub.clone()),
        stop_rx.clone(),
    );
    let gate = tandem_rpc::access::Gate::open(home)?;

    // Bind everything first: each connection is told every listener (and links
    // need the http one's address, port 0 resolved).
    let mut unix_listeners = Vec::new();
    let mut http_listeners = Vec::new();
    let mut names = Vec::new();
    let mut serve_stdio = false;
    for listen in &opts.listen {
        match listen {
            Listen::Unix(path) => {
                let path = match path {
                    Some(p) => p.clone(),
                    None => {
                        let p = home.socket_path();
                        if !p.starts_with(home.dir()) {
                            let dir = home.short_socket_dir();
                            tandem_home::private_dir(&dir, false)
                                .map_err(|source| ServeError::Home { path: dir, source })?;
                        }
                        p
                    }
                };
                let listener = transport::unix::bind(&path)?;
                tracing::info!(socket = %path.display(), "listening");
                names.push(format!("unix:{}", path.display()));
                unix_listeners.push((path, listener));
            }
            Listen::Stdio => {
                names.push("stdio".into());
                serve_stdio = true;
            }
            Listen::Http(addr) => {
                let listener = crate::web::bind(*addr, opts.allow_remote, opts.public_url.clone()).await?;
                tracing::info!(url = %listener.url, "listening");
                names.push(listener.url.clone());
                http_listeners.push(listener);
            }
        }
    }
    let http_url = http_listeners.first().map(|l| l.link_base.clone());
    let ctx = Context::new(engine.clone(), limits)
        .with_access(gate.clone(), names, http_url)
        .with_hub(hub.clone())
        .with_launch_args(opts.launch_args.clone())
        .with_shutdown(stopper.shutdown());
    // One count of connections for every listener, so that the http one can
    // never take the socket's reserve (see `transport::slots`).
    let slots = transport::slots::Slots::new(ctx.limits.max_connections);
    let mut sockets = Vec::new();
    for (path, listener) in unix_listeners {
        sockets.push(path);
        tokio::spawn(transport::unix::accept_loop(listener, ctx.clone(), slots.clone(), stop_rx.clone()));
    }
    let network = !http_listeners.is_empty();
    for listener in http_listeners {
        tokio::spawn(crate::web::serve(listener, ctx.clone(), gate.clone(), slots.clone(), stop_rx.clone()));
    }
    let stdio = serve_stdio.then(|| {
        tracing::info!("serving stdio");
        tokio::spawn(transport::stdio::serve(ctx.clone()))
    });
    let stdio_only = sockets.is_empty() && !network;
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
    stopper.begin();
    for path in &sockets {
        let _ = std::fs::remove_file(path);
    }
    // The follower finishes the batch it is on before the log closes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), mirrors).await;
    // Nothing more is synced to hubs (what is left goes at the next start,
    // from each link's acked seq); running turns end and are logged; then
    // every connection ends (what it has queued goes out first) and is waited
    // for before the log closes.
    hub.stop_all();
    engine.shutdown_turns().await;
    drop(ctx);
    if !stopper.wait(std::time::Duration::from_secs(5)).await {
        tracing::warn!("some connections had not ended after 5 s; stopping anyway");
    }
    engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// File descriptors kept for the log, the database and agents' pipes.
const RESERVED_FDS: usize = 64;

/// Raises the soft limit on open files to the hard one, and lowers the
/// connection limit to what it allows: a server out of descriptors could not
/// even accept a client to tell it "too many connections".
fn fit_to_file_limit(mut limits: Limits) -> Limits {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return limits;
        }
        if rl.rlim_cur < rl.rlim_max {
            let raised = libc::rlimit { rlim_cur: rl.rlim_max, rlim_max: rl.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
    }
    // Each connection may also need a descriptor to be refused with. Every
    // listener counts against this one number (`transport::slots`), and a
    // connection holds its slot from the accept, an http one before it has
    // sent anything included: so the http listener can never use the
    // descriptors the unix socket's reserve needs.
    let room = (rl.rlim_cur as usize).saturating_sub(RESERVED_FDS) / 2;
    if limits.max_connections > room {
        tracing::warn!(
            asked = limits.max_connections,
            allowed = room,
            "the open-file limit allows fewer connections than asked; using fewer"
        );
        limits.max_connections = room.max(1);
    }
    limits
}

/// The database and its WAL files: never links, always ours and 0600 (the
/// database is created here, so that SQLite's own files inherit its mode).
fn check_db_files(db: &std::path::Path) -> Result<(), ServeError> {
    let home_err = |path: &std::path::Path, source| ServeError::Home { path: path.to_owned(), source };
    tandem_home::open_private(db, tandem_home::Access::ReadWrite).map_err(|e| home_err(db, e))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            tandem_home::open_private(&path, tandem_home::Access::ReadWrite).map_err(|e| home_err(&path, e))?;
        }
    }
    Ok(())
}
