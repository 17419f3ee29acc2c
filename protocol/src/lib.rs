//! Tandem's wire protocol: every method, param, result, event and error code of
//! DESIGN §2, declared once, plus the NDJSON framing. This crate does no I/O and
//! never depends on an async runtime: the server and the clients bring their own.

pub mod error;
pub mod event;
pub mod framing;
pub mod hub;
pub mod ids;
pub mod items;
pub mod message;
pub mod methods;
pub mod position;
pub mod time;
pub mod types;

pub use error::{ErrorCode, RpcError};
pub use event::{Event, EventBody, Item, RawEvent};
pub use methods::*;
pub use position::Position;
pub use types::*;

/// The protocol version spoken by this build; `initialize` reports it and a client
/// that sees another one asks the user to restart the app-server.
pub const PROTOCOL_VERSION: u32 = 2;

/// The WebSocket subprotocol of the JSON-RPC protocol (one message per text
/// frame). A browser, which cannot set `Authorization` on a WebSocket, offers
/// its token as a second subprotocol `bearer.TOKEN`.
pub const WS_SUBPROTOCOL: &str = "tandem.v1";

/// The prefix of the WebSocket subprotocol that carries a browser's token.
pub const WS_BEARER_PREFIX: &str = "bearer.";

/// The longest line (one JSON-RPC message) accepted on any byte stream.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// The most events `thread/events` returns in one page, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;

/// The notification that carries one event of a subscription.
pub const EVENT_NOTIFICATION: &str = "thread/event";
