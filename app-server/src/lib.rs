//! The Tandem app-server: the engine that owns threads and runs turns, its
//! durable event log, the fan-out to subscribers, the agent backends and the
//! transports — plus the client side of the connection, which the CLI and the
//! TUI share.

pub mod access;
pub mod agent;
pub mod client;
pub mod config;
pub mod connection;
pub mod context;
pub mod engine;
mod feed;
pub mod hub_sync;
pub mod lock;
pub mod logging;
pub mod mirror;
pub mod outbound;
pub mod paths;
mod pump;
pub mod redact;
pub mod server;
pub mod session;
pub mod store;
mod tail;
mod thread;
pub mod transport;
mod turn;
pub mod web;

pub use engine::Engine;
pub use paths::Home;
pub use store::Durability;
pub use tail::{Run, Tail};
