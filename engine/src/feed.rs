//! A thread's live feed: the events its log writer has just committed, kept
//! for the thread's followers in a ring bounded by bytes, not slots. The ring
//! exists only while the thread has followers: the last one to leave frees
//! it, so a thread that was once followed costs nothing afterwards. What a
//! follower finds missing here it reads from the log (see `tail`).
//!
//! This module imports nothing else of the crate: the log writer publishes
//! into it, and followers take from it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// An event as it sits in the log: its seq and its JSON text.
#[derive(Debug)]
pub struct LogEntry {
    pub seq: u64,
    pub json: Box<str>,
}

/// Bytes of recent events a followed thread keeps in memory: several commit
/// groups of deltas, so a burst does not push followers back to the store. A
/// follower further behind catches up from the store.
pub const LIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What an event costs in the feed besides its JSON (the entry, its `Arc`,
/// the ring's slot), so that a flood of tiny events is bounded too.
const ENTRY_OVERHEAD: usize = 64;

/// Most events handed to a follower per look at the feed.
pub const TAKE_BATCH: usize = 256;

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

/// What [`Follower::take`] found.
pub enum Take {
    /// Events from `next` on were added to the batch.
    Got,
    /// `next` is committed but no longer (or not yet) in the ring: read the store.
    Behind,
    /// `next` is not committed yet.
    Wait,
}

impl Follower {
    /// Adds the feed's events from `next` on (a bounded run) to `batch`.
    pub fn take(&self, next: u64, batch: &mut Vec<Arc<LogEntry>>) -> Take {
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

impl Follower {
    /// Registered before [`Follower::take`], resolves once more is published.
    pub fn published(&self) -> tokio::sync::futures::Notified<'_> {
        self.feed.published.notified()
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
