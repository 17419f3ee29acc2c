//! The Tandem engine: the thread registry and what every method does to it,
//! the turns it runs, each thread's live feed, the durable event log, the
//! agent backends, the configuration and the redaction rules.
//!
//! It knows no transport: no connection, token, link, hub or mirror. Whoever
//! serves it (the app-server's sessions, the TUI's in-process pipe) calls its
//! API; its thread state stays behind that API, so no caller can skip an
//! invariant.

pub mod agent;
pub mod config;
mod engine;
mod feed;
pub mod redact;
mod store;
mod tail;
mod thread;
mod turn;

pub use engine::{Engine, STOPPED};
pub use feed::LogEntry;
pub use store::{Durability, StoreError};
pub use tail::{Run, Tail};
