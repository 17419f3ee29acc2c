//! One thread's live state: its next seq, its clock, its active turn and its
//! broadcast. Every event of a thread is appended through [`ThreadHandle::append`]
//! under the thread's lock, which is what makes seqs gapless, timestamps
//! monotonic and "one active turn" atomic.

use std::sync::{Arc, Mutex, MutexGuard};

use tandem_protocol::time::{format_millis, now_millis, parse_rfc3339};
use tandem_protocol::{ActiveTurn, ClientInfo, Event, EventBody, Thread, ThreadStatus};
use tokio::sync::{oneshot, watch};

use crate::feed::{Follower, LiveFeed};
use crate::store::{PendingEvent, RowChange, Store, StoreError};

/// The running turn of a thread.
pub struct RunningTurn {
    pub id: String,
    pub client: ClientInfo,
    /// Set to `Some(reason)` to interrupt the turn.
    pub cancel: watch::Sender<Option<String>>,
}

/// Mutable state, behind the thread's lock.
pub struct ThreadState {
    pub title: Option<String>,
    pub shared: bool,
    pub created_at: String,
    pub last_seq: u64,
    last_ms: i64,
    pub updated_at: String,
    pub active: Option<RunningTurn>,
    /// The store's epoch at this thread's last append (see `Store::epoch`).
    epoch: u64,
}

/// A thread known to the engine.
pub struct ThreadHandle {
    pub id: Arc<str>,
    state: Mutex<ThreadState>,
    live: Arc<LiveFeed>,
}

/// Resolves once an appended event is committed, or with why it never will be.
pub type Durable = oneshot::Receiver<Result<(), String>>;

/// Options of one appended event.
#[derive(Default)]
pub struct AppendOptions {
    pub imported: bool,
    pub original_ts: Option<String>,
    /// Whether the caller wants to wait for the commit.
    pub ack: bool,
}

impl ThreadHandle {
    /// A thread with the given state (new, or loaded from the store).
    pub fn new(
        id: &str,
        title: Option<String>,
        shared: bool,
        created_at: String,
        last_seq: u64,
        last_ts: &str,
    ) -> Self {
        let last_ms = parse_rfc3339(last_ts).unwrap_or(0);
        ThreadHandle {
            id: Arc::from(id),
            state: Mutex::new(ThreadState {
                title,
                shared,
                created_at,
                last_seq,
                last_ms,
                updated_at: last_ts.to_owned(),
                active: None,
                epoch: 0,
            }),
            live: Arc::new(LiveFeed::committed_up_to(last_seq)),
        }
    }

    /// Locks the thread's state. Nothing slow happens under this lock.
    pub fn lock(&self) -> MutexGuard<'_, ThreadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The highest seq that is committed (readers of the store see it).
    pub fn committed_seq(&self) -> u64 {
        self.live.committed()
    }

    /// Starts following the thread's committed events.
    pub fn follow(&self) -> Follower {
        self.live.follow()
    }

    /// Waits until an event after `seq` is committed.
    pub async fn wait_committed_past(&self, seq: u64) {
        self.live.wait_past(seq).await
    }

    /// Appends one event: assigns its seq and time and queues it for commit.
    /// Must be called with this thread's lock held (`state`).
    pub fn append(
        &self,
        state: &mut ThreadState,
        store: &Store,
        body: EventBody,
        row: RowChange,
        opts: AppendOptions,
    ) -> Result<Option<Durable>, StoreError> {
        // Events given up by the store since our last append were never
        // committed: number on from the last one that was.
        let epoch = store.epoch();
        if epoch != state.epoch {
            state.last_seq = self.live.committed();
            state.epoch = epoch;
        }
        let ms = now_millis().max(state.last_ms);
        let ts = format_millis(ms);
        let seq = state.last_seq + 1;
        let kind = body.type_name();
        let event = Event {
            seq,
            ts: ts.clone(),
            thread_id: self.id.to_string(),
            body,
            imported: opts.imported,
            original_ts: opts.original_ts,
        };
        let json = serde_json::to_string(&event).expect("events always serialize").into_boxed_str();
        let (ack, done) = if opts.ack {
            let (a, d) = oneshot::channel();
            (Some(a), Some(d))
        } else {
            (None, None)
        };
        store.append(PendingEvent {
            thread_id: Arc::clone(&self.id),
            seq,
            ts: ts.clone(),
            kind,
            json,
            row,
            live: Arc::clone(&self.live),
            ack,
        })?;
        state.last_seq = seq;
        state.last_ms = ms;
        state.updated_at = ts;
        Ok(done)
    }

    /// The wire view of this thread.
    pub fn snapshot(&self, state: &ThreadState) -> Thread {
        Thread {
            id: self.id.to_string(),
            title: state.title.clone(),
            shared: state.shared,
            status: if state.active.is_some() { ThreadStatus::Running } else { ThreadStatus::Idle },
            active_turn: state.active.as_ref().map(|t| ActiveTurn { id: t.id.clone(), client: t.client.clone() }),
            last_seq: state.last_seq,
            created_at: state.created_at.clone(),
            updated_at: state.updated_at.clone(),
        }
    }
}
