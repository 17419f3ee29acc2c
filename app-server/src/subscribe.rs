//! Following a thread: history from the store, then live from the thread's
//! feed, with no hole and no repeat at the seam (invariant 3). A follower that
//! falls behind the feed is never dropped: it goes back to the store and reads
//! what it missed (invariant 4). The store is always ahead of the feed, since
//! the writer publishes only what it has committed.
//!
//! The feed is a ring of recent events bounded by bytes, not slots, and it
//! exists only while the thread has followers: the last one to leave frees it,
//! so a thread that was once followed costs nothing afterwards.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tandem_protocol::message::push_event_notification;
use tokio::sync::{Notify, Semaphore};

use crate::store::{LogEntry, Store};
use crate::thread::ThreadHandle;
use crate::transport::{Closed, Outbound, SUBSCRIPTION_AHEAD};

/// Bytes of recent events a followed thread keeps in memory: several commit
/// groups of deltas, so a burst does not push followers back to the store. A
/// follower further behind catches up from the store.
pub const LIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What an event costs in the feed besides its JSON (the entry, its `Arc`,
/// the ring's slot), so that a flood of tiny events is bounded too.
const ENTRY_OVERHEAD: usize = 64;

/// Most events handed to a follower per look at the feed.
const TAKE_BATCH: usize = 256;

/// Events read from the store per round trip while catching up.
const CATCH_UP_PAGE: usize = 1000;

#[derive(Default)]
struct Ring {
    entries: VecDeque<Arc<LogEntry>>,
    bytes: usize,
}

#[derive(Default)]
struct FeedState {
    /// Present while `followers > 0`.
    ring: Option<Ring>,
    followers: usize,
    /// The highest seq committed so far.
    committed: u64,
}

/// A thread's live feed: its recently committed events, for its followers.
#[derive(Default)]
pub struct LiveFeed {
    state: Mutex<FeedState>,
    /// Mirrors `state.committed`, for readers that need no lock.
    committed: AtomicU64,
    published: Notify,
}

impl LiveFeed {
    /// A feed for a thread whose log is committed up to `seq`.
    pub fn committed_up_to(seq: u64) -> LiveFeed {
        LiveFeed {
            state: Mutex::new(FeedState { committed: seq, ..Default::default() }),
            committed: AtomicU64::new(seq),
            published: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The highest seq committed so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Starts following: the feed keeps events from now on until the returned
    /// guard (and every other follower's) is dropped.
    pub fn follow(self: &Arc<Self>) -> Follower {
        let mut st = self.lock();
        st.followers += 1;
        st.ring.get_or_insert_with(Ring::default);
        Follower { feed: Arc::clone(self) }
    }

    /// Records a committed event and keeps it for the followers, if any.
    /// Followers are woken by [`LiveFeed::wake`], once per commit group.
    pub fn publish(&self, entry: LogEntry) {
        let mut st = self.lock();
        st.committed = st.committed.max(entry.seq);
        self.committed.store(st.committed, Ordering::Release);
        if let Some(ring) = st.ring.as_mut() {
            ring.bytes += entry.json.len() + ENTRY_OVERHEAD;
            ring.entries.push_back(Arc::new(entry));
            while ring.bytes > LIVE_BUFFER_BYTES && ring.entries.len() > 1 {
                let old = ring.entries.pop_front().expect("more than one");
                ring.bytes -= old.json.len() + ENTRY_OVERHEAD;
            }
        }
    }

    /// Waits until an event after `seq` is committed. Costs no ring: a reader
    /// that reads the store anyway (the hub sync queue) only needs the wake-up.
    pub async fn wait_past(&self, seq: u64) {
        loop {
            let published = self.published.notified();
            tokio::pin!(published);
            // Register before looking, so a publish in between still wakes us.
            published.as_mut().enable();
            if self.committed() > seq {
                return;
            }
            published.await;
        }
    }

    /// Wakes the followers waiting for what was just published.
    pub fn wake(&self) {
        self.published.notify_waiters();
    }
}

/// One follower of a feed; leaving (dropping it) frees the feed's ring when it
/// was the last.
pub struct Follower {
    feed: Arc<LiveFeed>,
}

enum Take {
    /// Events from `next` on were added to the batch.
    Got,
    /// `next` is committed but no longer (or not yet) in the ring: read the store.
    Behind,
    /// `next` is not committed yet.
    Wait,
}

impl Follower {
    fn take(&self, next: u64, batch: &mut Vec<Arc<LogEntry>>) -> Take {
        let st = self.feed.lock();
        let ring = st.ring.as_ref().expect("a followed feed has a ring");
        if let Some(first) = ring.entries.front()
            && first.seq <= next
        {
            let start = (next - first.seq) as usize;
            if start < ring.entries.len() {
                batch.extend(ring.entries.range(start..ring.entries.len().min(start + TAKE_BATCH)).cloned());
                return Take::Got;
            }
        }
        if st.committed >= next { Take::Behind } else { Take::Wait }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut st = self.feed.lock();
        st.followers -= 1;
        if st.followers == 0 {
            st.ring = None;
        }
    }
}

/// Sends `thread/event` notifications for subscription `sub` to `out`, from seq
/// `from` on, until `out` closes.
pub async fn follow(
    store: Arc<Store>,
    thread: Arc<ThreadHandle>,
    follower: Follower,
    from: u64,
    sub: u64,
    out: Outbound,
) {
    let mut next = from;
    let mut batch = Vec::with_capacity(TAKE_BATCH);
    let ahead = Arc::new(Semaphore::new(SUBSCRIPTION_AHEAD));
    loop {
        let published = follower.feed.published.notified();
        tokio::pin!(published);
        // Register for the wake-up before looking, so none is missed between.
        published.as_mut().enable();
        match follower.take(next, &mut batch) {
            Take::Got => match send_events(&out, &ahead, sub, batch.drain(..)).await {
                Ok(Some(last)) => next = last + 1,
                Ok(None) => {}
                Err(Closed) => return,
            },
            Take::Wait => published.await,
            Take::Behind => loop {
                let page = match store.read_page(&thread.id, next, CATCH_UP_PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, thread = %thread.id, "subscription could not read the log");
                        return;
                    }
                };
                if page.is_empty() {
                    // Committed means readable; should a reader lag anyway,
                    // look again shortly rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    break;
                }
                let full = page.len() == CATCH_UP_PAGE;
                match send_events(&out, &ahead, sub, page.iter()).await {
                    Ok(Some(last)) => next = last + 1,
                    Ok(None) => {}
                    Err(Closed) => return,
                }
                if !full {
                    break;
                }
            },
        }
    }
}

/// How many bytes of notifications are queued as one piece: one budget
/// acquire, one queue entry and one write for a run of events, instead of
/// one of each per event (the fan-out's per-subscriber cost).
const SEND_CHUNK: usize = 64 * 1024;

/// Queues the `thread/event` lines of `entries` for subscription `sub`, in
/// pieces of about [`SEND_CHUNK`] bytes; returns the last seq queued.
async fn send_events<E: std::ops::Deref<Target = LogEntry>>(
    out: &Outbound,
    ahead: &Arc<Semaphore>,
    sub: u64,
    entries: impl Iterator<Item = E>,
) -> Result<Option<u64>, Closed> {
    let mut chunk = String::new();
    let mut last = None;
    for entry in entries {
        push_event_notification(&mut chunk, sub, &entry.json);
        last = Some(entry.seq);
        if chunk.len() >= SEND_CHUNK {
            out.send_within(std::mem::take(&mut chunk), ahead).await?;
        }
    }
    if !chunk.is_empty() {
        out.send_within(chunk, ahead).await?;
    }
    Ok(last)
}
