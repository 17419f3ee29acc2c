//! Byte streams: NDJSON framing over any reader/writer pair, and the
//! listeners that produce such pairs (unix socket, stdio). They move bytes
//! only; a connection's lines go to `connection`.

pub mod stdio;
pub mod unix;
