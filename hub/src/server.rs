//! Running a hub: pick the store, bind the address (loopback unless told
//! otherwise), serve the routes (with connection timeouts: `http`), tidy
//! expired shares in the background, on PostgreSQL follow the other
//! replicas' changes, and stop on SIGTERM/SIGINT, letting requests in
//! flight finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::http::{self, ConnLimits};
use crate::replicas::{self, Change};
use crate::routes;
use crate::state::{Hub, Limits};
use crate::store::{HubStore, MemoryStore, PgStore, SqliteStore, StoreError};

/// How often expired shares are purged (they answer 410 at once regardless:
/// the first request that finds one purges it).
const TIDY_EVERY: Duration = Duration::from_secs(60);

/// Where the hub keeps its shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` URL (checked by [`Database::parse`]).
    Postgres(String),
    Memory,
}

impl Database {
    /// Parses `sqlite:PATH`, `postgres://…` or `memory`.
    pub fn parse(url: &str) -> Result<Database, String> {
        if url == "memory" {
            return Ok(Database::Memory);
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("sqlite: needs a path, e.g. sqlite:/var/lib/tandem/hub.db".into());
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            crate::store::postgres::parse_url(url)?;
            return Ok(Database::Postgres(url.to_owned()));
        }
        Err(format!(
            "unknown database {:?}; accepted: sqlite:PATH, postgres://USER@HOST:PORT/DB, memory",
            url.split('@').next_back().unwrap_or(url)
        ))
    }
}

/// How to run a hub.
pub struct HubOptions {
    pub listen: SocketAddr,
    /// The URL readers reach the hub at; default `http://` + the bound address.
    pub public_url: Option<String>,
    pub database: Database,
    pub limits: Limits,
}

/// Why a hub could not run.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A setting from the environment that does not parse.
    #[error("{0}")]
    Config(String),
}

/// Runs the hub until SIGTERM or SIGINT; `ready` gets the bound address and
/// the public URL once it accepts connections. Its connection limits come
/// from the environment ([`ConnLimits::from_env`]).
pub async fn run(opts: HubOptions, ready: impl FnOnce(SocketAddr, &str)) -> Result<(), HubError> {
    let conns = ConnLimits::from_env().map_err(HubError::Config)?;
    run_with(opts, conns, ready).await
}

/// [`run`] with the connection limits given (by flags, say).
pub async fn run_with(
    opts: HubOptions,
    conns: ConnLimits,
    ready: impl FnOnce(SocketAddr, &str),
) -> Result<(), HubError> {
    match opts.database.clone() {
        Database::Sqlite(path) => serve(SqliteStore::open(&path)?, None, opts, conns, ready).await,
        Database::Postgres(url) => {
            let store = PgStore::connect(&url).await?;
            let feed = store.config().clone();
            serve(store, Some(feed), opts, conns, ready).await
        }
        Database::Memory => serve(MemoryStore::new(), None, opts, conns, ready).await,
    }
}

/// Serves `store`; with `feed`, pollers also hear of changes other replicas
/// store in that PostgreSQL database.
async fn serve<S: HubStore>(
    store: S,
    feed: Option<tokio_postgres::Config>,
    opts: HubOptions,
    conn_limits: ConnLimits,
    ready: impl FnOnce(SocketAddr, &str),
) -> Result<(), HubError> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| HubError::Bind { addr: opts.listen, source })?;
    let addr = listener.local_addr()?;
    let public_url = opts.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let hub = Hub::new(store, public_url, opts.limits);
    hub.tidy().await;
    let tidy = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TIDY_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                hub.tidy().await;
            }
        })
    };
    let feed = feed.map(|config| {
        let hub = hub.clone();
        tokio::spawn(replicas::follow(config, move |change| match change {
            Change::Share(id) => hub.live.changed(&id),
            Change::All => hub.live.changed_all(),
        }))
    });
    let app = routes::router(hub.clone());
    tracing::info!(%addr, public_url = %hub.public_url, ?conn_limits, "hub listening");
    ready(addr, &hub.public_url);
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: stopping"),
            _ = sigint.recv() => tracing::info!("SIGINT: stopping"),
        }
    };
    http::serve(listener, app, conn_limits, stop).await;
    tidy.abort();
    if let Some(feed) = feed {
        feed.abort();
    }
    Ok(())
}
