//! What every connection of one server shares: the engine, the budgets each
//! connection is held to (DESIGN §9), the door to links, the hub links, and
//! what the server says about itself in `initialize`.
//!
//! The budgets keep one client to what it is owed: the bytes queued for it
//! ([`Limits::outbound_bytes`]), its share of the memory for unfinished lines
//! ([`Limits::line_bytes`]) and how long such a line may stall
//! ([`Limits::line_timeout`]), and what all clients' queues hold together
//! ([`Limits::clients_bytes`]); the listeners cap how many connections are
//! served at once ([`Limits::max_connections`]).

use std::sync::Arc;
use std::time::Duration;

use crate::access::Gate;
use crate::hub_sync::HubSync;
use crate::outbound::ClientsBudget;
use crate::shutdown::Shutdown;
use tandem_engine::Engine;
use tandem_lines::LineBudget;

/// The budgets connections are held to. The defaults suit one machine's
/// worth of clients; `tandem app-server --help` lists the flags that change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once; the next one gets an error line and
    /// is closed.
    pub max_connections: usize,
    /// Most WebSockets one peer address may have open at once (http listener).
    pub max_connections_per_ip: usize,
    /// Bytes queued for one client before the server stops reading its
    /// requests (and its subscriptions wait, then catch up from the log).
    pub outbound_bytes: usize,
    /// Bytes of unfinished lines held across all connections; a connection
    /// that would pass it gets an error line and is closed.
    pub line_bytes: usize,
    /// How long an unfinished line may go without a byte before its
    /// connection gets an error line and is closed.
    pub line_timeout: Duration,
    /// How long an http connection may take to send a whole request head,
    /// from its accept (so also how long it may sit idle before its first
    /// request) or from the previous answer; then it is closed.
    pub header_timeout: Duration,
    /// Bytes queued for all clients together (DESIGN §9): past it a
    /// subscription waits (and later catches up from the log) instead of
    /// queueing more, whoever it is for.
    pub clients_bytes: usize,
}

/// Default [`Limits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;
/// Default [`Limits::max_connections_per_ip`].
pub const MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default [`Limits::outbound_bytes`]: a few of the largest pages (4 MiB).
pub const OUTBOUND_BYTES: usize = 16 * 1024 * 1024;
/// Default [`Limits::line_bytes`]: sixteen clients sending the largest line
/// (8 MiB) at the same moment.
pub const LINE_BYTES: usize = 128 * 1024 * 1024;
/// Default [`Limits::line_timeout`].
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::header_timeout`]: a real client sends its request
/// within milliseconds of connecting.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::clients_bytes`]: 32 clients' full budgets.
pub const CLIENTS_BYTES: usize = 512 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            outbound_bytes: OUTBOUND_BYTES,
            line_bytes: LINE_BYTES,
            line_timeout: LINE_TIMEOUT,
            header_timeout: HEADER_TIMEOUT,
            clients_bytes: CLIENTS_BYTES,
        }
    }
}

/// What every connection of one server shares.
#[derive(Clone)]
pub struct Context {
    pub engine: Engine,
    pub limits: Limits,
    pub line_budget: LineBudget,
    /// What all clients' outbound queues may hold together.
    pub clients_budget: ClientsBudget,
    /// The hub links, when this server syncs threads to hubs.
    pub hub: Option<HubSync>,
    /// The owner token and links; `None` for an in-process engine (no links).
    pub gate: Option<Gate>,
    /// Every transport the server listens on, as `initialize` reports them.
    pub listeners: Arc<Vec<String>>,
    /// The http listener's base URL (`http://HOST:PORT`), which links point at.
    pub http_url: Option<String>,
    /// The flags this server was started with, as `initialize` tells the owner
    /// (empty in a LOCAL session).
    pub launch_args: Arc<Vec<String>>,
    /// The server's shutdown, which every connection ends at (`None`: the
    /// connection ends only when its client goes, as in a LOCAL session).
    pub shutdown: Option<Shutdown>,
}

impl Context {
    pub fn new(engine: Engine, limits: Limits) -> Context {
        let line_budget = LineBudget::new(limits.line_bytes, limits.line_timeout);
        let clients_budget = ClientsBudget::new(limits.clients_bytes);
        Context {
            clients_budget,
            engine,
            limits,
            line_budget,
            gate: None,
            listeners: Arc::default(),
            http_url: None,
            hub: None,
            launch_args: Arc::default(),
            shutdown: None,
        }
    }

    /// With the door to links and what the server listens on.
    pub fn with_access(mut self, gate: Gate, listeners: Vec<String>, http_url: Option<String>) -> Context {
        self.gate = Some(gate);
        self.listeners = Arc::new(listeners);
        self.http_url = http_url;
        self
    }

    /// With the flags the server was started with.
    pub fn with_launch_args(self, launch_args: Vec<String>) -> Context {
        Context { launch_args: Arc::new(launch_args), ..self }
    }

    /// With the server's shutdown, which its connections end at (and which
    /// waits for them).
    pub fn with_shutdown(self, shutdown: Shutdown) -> Context {
        Context { shutdown: Some(shutdown), ..self }
    }

    /// Resolves when the server begins to shut down (never without one).
    pub async fn stopping(&self) {
        match &self.shutdown {
            Some(s) => s.requested().await,
            None => std::future::pending().await,
        }
    }

    /// The same, with hub links served.
    pub fn with_hub(self, hub: HubSync) -> Context {
        Context { hub: Some(hub), ..self }
    }
}
