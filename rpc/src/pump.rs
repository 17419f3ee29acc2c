//! A subscription's pump: the events of a followed thread, from the engine's
//! [`Tail`], queued as `thread/event` notifications on the connection's
//! outbound queue until the connection closes.

use std::sync::Arc;

use tandem_engine::LogEntry;
use tandem_engine::{Run, Tail};
use tandem_protocol::message::push_event_notification;
use tokio::sync::Semaphore;

use crate::outbound::{Closed, Outbound, SUBSCRIPTION_AHEAD};

/// Sends `thread/event` notifications for subscription `sub` to `out`, from
/// the tail's position on, until `out` closes.
pub async fn pump(mut tail: Tail, sub: u64, out: Outbound) {
    let ahead = Arc::new(Semaphore::new(SUBSCRIPTION_AHEAD));
    loop {
        let sent = match tail.next().await {
            Ok(Run::Live(run)) => Ok(send_events(&out, &ahead, sub, run).await),
            Ok(Run::Logged(page)) => Ok(send_events(&out, &ahead, sub, page.iter()).await),
            Err(e) => Err(e),
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(Closed)) => return,
            Err(e) => {
                tracing::error!(error = %e, thread = %tail.thread_id(), "subscription could not read the log");
                return;
            }
        }
    }
}

/// How many bytes of notifications are queued as one piece: one budget
/// acquire, one queue entry and one write for a run of events, instead of
/// one of each per event (the fan-out's per-subscriber cost).
const SEND_CHUNK: usize = 64 * 1024;

/// Queues the `thread/event` lines of `entries` for subscription `sub`, in
/// pieces of about [`SEND_CHUNK`] bytes.
async fn send_events<E: std::ops::Deref<Target = LogEntry>>(
    out: &Outbound,
    ahead: &Arc<Semaphore>,
    sub: u64,
    entries: impl Iterator<Item = E>,
) -> Result<(), Closed> {
    let mut chunk = String::new();
    for entry in entries {
        push_event_notification(&mut chunk, sub, &entry.json);
        if chunk.len() >= SEND_CHUNK {
            out.send_within(std::mem::take(&mut chunk), ahead).await?;
        }
    }
    if !chunk.is_empty() {
        out.send_within(chunk, ahead).await?;
    }
    Ok(())
}
