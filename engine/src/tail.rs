//! Following a thread from a seq: history from the log, then live from the
//! thread's feed, with no hole and no repeat at the seam (invariant 3). A
//! follower that falls behind the feed is never dropped: it goes back to the
//! log and reads what it missed (invariant 4). The log is always ahead of the
//! feed, since the writer publishes only what it has committed.
//!
//! A [`Tail`] only reads; whoever holds it decides where the events go.

use std::sync::Arc;

use crate::feed::{Follower, LogEntry, TAKE_BATCH, Take};
use crate::store::{Store, StoreError};

/// Events read from the log per round trip while catching up.
const CATCH_UP_PAGE: usize = 1000;

/// A position in one thread's events that moves forward as they are read.
pub struct Tail {
    store: Arc<Store>,
    thread_id: Arc<str>,
    follower: Follower,
    next: u64,
    /// The last page read from the log was full: read the log again.
    from_log: bool,
    batch: Vec<Arc<LogEntry>>,
}

/// The next run of a thread's events, in seq order.
pub enum Run<'a> {
    /// From the feed (shared with the thread's other followers).
    Live(std::vec::Drain<'a, Arc<LogEntry>>),
    /// Read back from the log.
    Logged(Vec<LogEntry>),
}

impl Tail {
    pub(crate) fn new(store: Arc<Store>, thread_id: Arc<str>, follower: Follower, from: u64) -> Tail {
        Tail { store, thread_id, follower, next: from, from_log: false, batch: Vec::with_capacity(TAKE_BATCH) }
    }

    /// The thread followed.
    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// The seq of the next event this tail hands over.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Waits for the next committed events from [`Tail::next_seq`] on.
    pub async fn next(&mut self) -> Result<Run<'_>, StoreError> {
        loop {
            if self.from_log {
                let page = self.store.read_page(&self.thread_id, self.next, CATCH_UP_PAGE).await?;
                let Some(last) = page.last() else {
                    // Committed means readable; should a reader lag anyway,
                    // look again shortly rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    self.from_log = false;
                    continue;
                };
                self.next = last.seq + 1;
                self.from_log = page.len() == CATCH_UP_PAGE;
                return Ok(Run::Logged(page));
            }
            let published = self.follower.published();
            tokio::pin!(published);
            // Register for the wake-up before looking, so none is missed between.
            published.as_mut().enable();
            match self.follower.take(self.next, &mut self.batch) {
                Take::Got => {
                    self.next = self.batch.last().map_or(self.next, |e| e.seq + 1);
                    return Ok(Run::Live(self.batch.drain(..)));
                }
                Take::Behind => self.from_log = true,
                Take::Wait => published.await,
            }
        }
    }
}
