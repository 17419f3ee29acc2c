//! `tandem hub`: run the share server in the foreground (DESIGN §7). Logs go
//! to stderr (a hub is a service, not something a TUI draws over); the one
//! line on stdout says where it listens, so scripts and tests can read the
//! port when `--listen` asked for port 0.

use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;
use tandem_hub::{Cidr, Database, HubError, HubOptions, Limits, TrustedProxies};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::exit::Fail;

#[derive(Args, Debug)]
pub struct HubArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The URL readers reach this hub at (behind a reverse proxy: its https URL)
    /// [default: http:// and the address listened on].
    #[arg(long, value_name = "URL", env = "TANDEM_HUB_PUBLIC_URL")]
    public_url: Option<String>,
    /// Where shares are kept: sqlite:PATH, postgres://USER@HOST:PORT/DB (several
    /// replicas may share one; no TLS yet) or memory [default: sqlite:$TANDEM_HOME/hub.db].
    #[arg(long, value_name = "URL", env = "TANDEM_HUB_DATABASE")]
    database: Option<String>,
    /// Listen on an address other hosts can reach. Serve it behind a reverse
    /// proxy that terminates TLS: the hub itself speaks plain HTTP.
    #[arg(long)]
    allow_remote: bool,
    /// Shares one client address may create per minute; more get 429.
    #[arg(long, value_name = "N", default_value_t = 30)]
    create_limit: u32,
    /// KiB of events one share may hold; a sync past it gets 413.
    #[arg(long, value_name = "KIB", default_value_t = 64 * 1024)]
    max_share_kib: u64,
    /// A reverse proxy in front of the hub (an address or a network, e.g.
    /// 127.0.0.1 or 10.0.0.0/8; repeatable): for requests from it, the client
    /// counted by --create-limit is the right-most X-Forwarded-For address
    /// that is not itself a trusted proxy. From any other peer the header is
    /// ignored.
    #[arg(long = "trusted-proxy", value_name = "IP|CIDR", env = "TANDEM_HUB_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
}

pub async fn run(args: HubArgs) -> anyhow::Result<u8> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| Targets::from_str(&v).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(std::io::stderr))
        .try_init();

    if !args.listen.ip().is_loopback() {
        if !args.allow_remote {
            return Err(Fail::usage(format!(
                "{} can be reached from other hosts; pass --allow-remote to mean it (and put a reverse proxy with TLS in front: the hub speaks plain HTTP)",
                args.listen
            ))
            .into());
        }
        eprintln!(
            "tandem hub: WARNING: listening on {} without TLS. Secrets and shared threads cross the network in clear \
             unless a reverse proxy (caddy, nginx) terminates TLS in front of this hub; set --public-url to its https URL.",
            args.listen
        );
    }
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(Fail::usage(format!("--public-url {url:?} must start with http:// or https://")).into());
    }
    let database = match &args.database {
        Some(url) => Database::parse(url).map_err(|e| Fail::usage(format!("--database: {e}")))?,
        None => {
            let home = tandem_home::Home::from_env();
            home.ensure()
                .map_err(|e| Fail::new(crate::exit::FAILURE, format!("cannot use {}: {e}", home.dir().display())))?;
            Database::Sqlite(home.dir().join("hub.db"))
        }
    };
    if let Database::Sqlite(path) = &database {
        // Created 0600, never through a link, before SQLite opens it.
        tandem_home::open_private(path, tandem_home::Access::ReadWrite)
            .map_err(|e| Fail::new(crate::exit::FAILURE, format!("cannot use {}: {e}", path.display())))?;
    }
    let mut proxies = Vec::new();
    for text in args.trusted_proxies.iter().filter(|t| !t.trim().is_empty()) {
        proxies.push(text.parse::<Cidr>().map_err(|e| Fail::usage(format!("--trusted-proxy: {e}")))?);
    }
    let trusted_proxies = TrustedProxies::new(proxies);
    if !trusted_proxies.is_empty() {
        tracing::info!(proxies = %trusted_proxies, "X-Forwarded-For believed from these peers");
    }
    let opts = HubOptions {
        listen: args.listen,
        public_url: args.public_url,
        database,
        limits: Limits {
            creates_per_minute: args.create_limit.max(1),
            share_bytes: args.max_share_kib.saturating_mul(1024),
            body_bytes: tandem_protocol::hub::MAX_REQUEST_BYTES,
            trusted_proxies,
        },
    };
    let said = |addr, url: &str| say!("tandem hub listening on http://{addr} (shares at {url}/s/…)");
    match tandem_hub::run(opts, said).await {
        Ok(()) => Ok(0),
        // A database out of reach at start: exit 5, like any unreachable server.
        Err(HubError::Store(e)) if e.is_unavailable() => Err(Fail::new(crate::exit::UNREACHABLE, e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}
