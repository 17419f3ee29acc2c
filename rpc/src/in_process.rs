//! A connection to an engine in this process (a LOCAL session): the same
//! protocol over an in-memory pipe, served by the same session as a socket
//! line, so the client on the other end cannot tell the difference.

use tandem_engine::Engine;
use tokio::io::DuplexStream;

use crate::connection::serve_connection;
use crate::context::{Context, Limits};

/// Bytes the pipe holds in each direction before a writer waits.
const PIPE_BYTES: usize = 256 * 1024;

/// Serves `engine` as the owner over a new in-memory pipe; returns the
/// client's end. The connection ends when that end is dropped.
pub fn in_process(engine: Engine) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
    let (r, w) = tokio::io::split(theirs);
    tokio::spawn(serve_connection(Context::new(engine, Limits::default()), r, w));
    ours
}
