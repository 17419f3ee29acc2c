//! Following a thread: history from the store, then live from the thread's
//! broadcast, with no hole and no repeat at the seam (invariant 3). A follower
//! that falls behind the broadcast is never dropped: it goes back to the store
//! and reads what it missed (invariant 4). The store is always ahead of the
//! broadcast, since the writer publishes only what it has committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tandem_protocol::message::event_notification_line;
use tokio::sync::{broadcast, mpsc};

use crate::store::{LogEntry, Store};
use crate::thread::ThreadHandle;

/// How many committed events a live feed keeps for its followers: several
/// commit groups, so a burst does not push followers back to the store. A
/// follower further behind catches up from the store.
pub const LIVE_BUFFER: usize = 65_536;

/// A thread's live feed: a broadcast of its committed events. The buffer
/// exists only while someone follows the thread, so idle threads cost nothing.
#[derive(Default)]
pub struct LiveFeed {
    tx: Mutex<Option<broadcast::Sender<Arc<LogEntry>>>>,
    /// The highest seq committed so far.
    committed: AtomicU64,
}

impl LiveFeed {
    /// A feed for a thread whose log is committed up to `seq`.
    pub fn committed_up_to(seq: u64) -> LiveFeed {
        LiveFeed { tx: Mutex::new(None), committed: AtomicU64::new(seq) }
    }

    /// The highest seq committed so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// A receiver of events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogEntry>> {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.get_or_insert_with(|| broadcast::channel(LIVE_BUFFER).0).subscribe()
    }

    /// Publishes a committed event to the followers, if any (dropping the
    /// buffer once the last one has gone).
    pub fn publish(&self, entry: LogEntry) {
        self.committed.fetch_max(entry.seq, Ordering::Release);
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = tx.as_ref() {
            if sender.receiver_count() == 0 {
                *tx = None;
            } else {
                let _ = sender.send(Arc::new(entry));
            }
        }
    }
}

/// Events read from the store per round trip while catching up.
const CATCH_UP_PAGE: usize = 1000;

/// Sends `thread/event` notifications for subscription `sub` to `out`, from seq
/// `from` on, until `out` closes. `live` must have been subscribed before `from`
/// was decided, so that nothing committed in between is missed.
pub async fn follow(
    store: Arc<Store>,
    thread: Arc<ThreadHandle>,
    mut live: broadcast::Receiver<Arc<LogEntry>>,
    from: u64,
    sub: u64,
    out: mpsc::Sender<String>,
) {
    let mut next = from;
    let send = |entry: &LogEntry| out.send(event_notification_line(sub, &entry.json));
    'catch_up: loop {
        loop {
            let page = match store.read_page(&thread.id, next, CATCH_UP_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, thread = %thread.id, "subscription could not read the log");
                    return;
                }
            };
            let full = page.len() == CATCH_UP_PAGE;
            for entry in &page {
                if send(entry).await.is_err() {
                    return;
                }
                next = entry.seq + 1;
            }
            if !full {
                break;
            }
        }
        loop {
            match live.recv().await {
                Ok(entry) if entry.seq < next => {}
                Ok(entry) if entry.seq == next => {
                    if send(&entry).await.is_err() {
                        return;
                    }
                    next += 1;
                }
                // A seq we have not read yet but did not get live: it is in the store.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue 'catch_up,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
