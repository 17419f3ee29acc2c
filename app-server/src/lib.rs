//! The Tandem app-server, the daemon: it takes the data directory's lock,
//! opens the engine, listens (unix socket, stdio, http with its viewer and
//! WebSocket door), follows shared agent sessions (`mirror`), and shuts all of
//! it down cleanly. Connections are served by `tandem-rpc`; what they do is
//! the engine's.

pub mod mirror;
pub mod server;
pub mod transport;
pub mod web;
