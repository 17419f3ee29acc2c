//! Byte streams: NDJSON framing over any reader/writer pair, and the
//! listeners that produce such pairs (unix socket, stdio). They move bytes
//! only; a connection's lines go to `connection`. `slots` counts the
//! connections of every listener, the http one's included.

pub mod slots;
pub mod stdio;
pub mod unix;
