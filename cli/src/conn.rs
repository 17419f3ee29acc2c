//! Reaching the app-server from a command: the `--server`/`--token-env`
//! flags, connecting (autostarting the default server), and turning a typed
//! `--thread` into one thread id. It imports nothing else of the crate but
//! its exit codes.

use clap::Args;
use tandem_client::{Client, Endpoint, ResolveError, connect_or_start, resolve_thread};
use tandem_home::Home;
use tandem_protocol::ClientInfo;
use tandem_protocol::ids::IdQuery;

use crate::exit::{self, Fail};

#[derive(Args, Clone, Debug)]
pub struct ConnArgs {
    /// App-server endpoint: unix:PATH, a socket path, stdio:COMMAND, or
    /// ws://HOST:PORT/rpc (with --token-env). Default: the local server of
    /// $TANDEM_HOME, started if it is not running.
    #[arg(long, value_name = "ENDPOINT", env = "TANDEM_SERVER")]
    pub server: Option<Endpoint>,
    /// For a ws:// server: the environment variable holding the token (the
    /// owner token, or a link's). The token itself never goes on the command line.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

impl ConnArgs {
    /// The endpoint asked for, carrying its token (checked before connecting).
    pub fn endpoint(&self) -> Result<Option<Endpoint>, Fail> {
        match (&self.server, &self.token_env) {
            (Some(ws @ Endpoint::Ws { .. }), Some(var)) => {
                let token = std::env::var(var).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
                let token = token.ok_or_else(|| {
                    Fail::usage(format!(
                        "--token-env {var}: the variable {var} is not set (or empty); export the token in it"
                    ))
                })?;
                Ok(Some(ws.clone().with_token(token)))
            }
            (Some(Endpoint::Ws { url, .. }), None) => Err(Fail::usage(format!(
                "--server {url} needs a token: put it in a variable and pass --token-env VAR (`tandem app-server status` says where the owner token is)"
            ))),
            (_, Some(_)) => Err(Fail::usage("--token-env is for a ws:// --server")),
            (server, None) => Ok(server.clone()),
        }
    }
}

/// Who `tandem share` says it is.
pub fn client_info() -> ClientInfo {
    ClientInfo::new("tandem-share", env!("CARGO_PKG_VERSION"))
}

/// Connects as the user asked: an explicit endpoint must answer; the default
/// one is started when nobody answers.
pub async fn connect(conn: &ConnArgs) -> Result<Client, Fail> {
    let client = match &conn.endpoint()? {
        Some(endpoint) => Client::connect(endpoint, client_info()).await,
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| Fail::new(exit::FAILURE, format!("cannot find the tandem binary: {e}")))?;
            connect_or_start(&Home::from_env(), &exe, client_info()).await
        }
    };
    client.map_err(Fail::from)
}

/// `--thread` as typed: a whole id or a prefix (checked before connecting).
pub fn thread_query(raw: &str) -> Result<IdQuery, Fail> {
    IdQuery::parse("--thread", raw).map_err(|e| Fail::usage(format!("{e} (`tandem share list` shows them)")))
}

/// The one thread `query` names: unknown is "not found" (4), a prefix of
/// several is a usage error (2) listing them.
pub async fn resolve(client: &Client, query: &IdQuery) -> Result<String, Fail> {
    resolve_thread(client, query).await.map_err(resolve_fail)
}

/// The exit code and message for an id that names no thread, or several.
pub fn resolve_fail(e: ResolveError) -> Fail {
    match e {
        ResolveError::NotFound { .. } => {
            Fail::new(exit::NOT_FOUND, format!("{e} (`tandem share list` shows the threads)"))
        }
        ResolveError::Ambiguous { .. } => Fail::usage(e.to_string()),
        ResolveError::Client(c) => Fail::from(c),
    }
}
