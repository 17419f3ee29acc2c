//! Tandem's connections, above the engine and below any listener: one
//! connection's session (who the client is, what its token grants, its
//! subscriptions) and the dispatch of each request to the engine; the
//! connection loop over a byte stream and the budgets it holds every client
//! to; the owner token and links (`access`); threads synced to hubs
//! (`hub_sync`); and the in-process pipe a LOCAL session talks through.
//!
//! It never listens: the app-server's transports hand it byte streams.

pub mod access;
pub mod connection;
pub mod context;
pub mod hub_sync;
mod in_process;
pub mod outbound;
mod pump;
pub mod session;
pub mod shutdown;

pub use context::{Context, Limits};
pub use in_process::in_process;
