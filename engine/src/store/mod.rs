//! The event log. All writes go through one writer thread that commits in
//! groups, so a stream of thousands of deltas costs a handful of commits. Two
//! backends share that writer: SQLite (the app-server's durable log) and memory
//! (a private LOCAL session: nothing on disk).
//!
//! The writer publishes each event to its thread's live feed only after the
//! commit that holds it, in commit order: nobody can see an event that a crash
//! could still take away (invariant 2), and live readers see seqs in order.
//!
//! When the log cannot be written (a full disk, a failing device) the writer
//! does not stall the server: after a short retry it gives the queued events
//! up, tells whoever waits for them ("storage unavailable"), refuses new
//! writes for a moment, and bumps the store's epoch so that every thread
//! numbers its next event after its last *committed* one — no gap, no seq
//! handed out twice. Reads go on throughout.

mod memory;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use crate::feed::LiveFeed;
pub use crate::feed::LogEntry;

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: survives a crash of the process.
    #[default]
    Normal,
    /// `synchronous=FULL`: an fsync per commit, survives power loss too.
    Full,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot start the log writer: {0}")]
    Thread(std::io::Error),
    #[error("the store's writer has stopped")]
    WriterGone,
    /// Writes fail (disk full, I/O errors); the detail is SQLite's.
    #[error("the event log cannot be written: {0}")]
    Unavailable(String),
}

/// A thread's row, as loaded at start-up.
#[derive(Debug, Clone)]
pub struct ThreadRow {
    pub id: String,
    pub title: Option<String>,
    pub shared: bool,
    pub created_at: String,
    pub last_seq: u64,
    pub last_ts: String,
    /// A turn that started and never completed (the server died during it).
    pub active_turn: Option<String>,
}

/// What an event does to its thread's row, besides being logged.
#[derive(Debug, Clone)]
pub enum RowChange {
    None,
    Create { title: Option<String>, shared: bool, created_at: String },
    Update { title: Option<String>, shared: bool },
    TurnStarted(String),
    TurnEnded,
}

/// One event on its way to the log.
pub struct PendingEvent {
    pub thread_id: Arc<str>,
    pub seq: u64,
    pub ts: String,
    /// The event's `type`.
    pub kind: &'static str,
    pub json: Box<str>,
    pub row: RowChange,
    /// Receives the event once committed.
    pub live: Arc<LiveFeed>,
    /// Told once the event is committed, or why it never will be.
    pub ack: Option<Ack>,
}

/// The answer to one who waits for a commit: done, or the reason it failed.
pub type Ack = oneshot::Sender<Result<(), String>>;

enum WriteOp {
    Event(PendingEvent),
    Flush(Ack),
}

/// Why a group could not be committed.
pub(crate) struct CommitError {
    message: String,
    /// Another process holds the database's lock: worth waiting for.
    busy: bool,
}

impl From<rusqlite::Error> for CommitError {
    fn from(e: rusqlite::Error) -> CommitError {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        CommitError { message: e.to_string(), busy }
    }
}

/// The way into the writer's queue, and whether it takes writes now.
struct Inlet {
    tx: Option<std_mpsc::Sender<WriteOp>>,
    /// Set when the writer gave a group up: why, and since when.
    down: Option<(String, Instant)>,
}

enum Backend {
    Sqlite(sqlite::Readers),
    Memory(Arc<memory::MemLog>),
}

/// The event log. Share it behind an `Arc`.
pub struct Store {
    inlet: Arc<Mutex<Inlet>>,
    /// Bumped each time queued events are given up (see the module header).
    epoch: Arc<AtomicU64>,
    /// What is queued for the writer and not yet committed, in bytes.
    backlog: Arc<Backlog>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The SQLite checkpointer: dropping the sender stops it.
    checkpointer: Mutex<Option<(std_mpsc::Sender<()>, JoinHandle<()>)>>,
    backend: Backend,
}

/// How long the writer retries a commit that fails for lack of space or an
/// I/O error before giving its group up.
const FAILURE_PATIENCE: Duration = Duration::from_secs(1);

/// How long it waits for a lock that another process holds on the database.
const BUSY_PATIENCE: Duration = Duration::from_secs(30);

/// After giving a group up, writes are refused at once for this long; the
/// next one after it tries the disk again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Most events committed in one transaction.
const MAX_GROUP: usize = 8192;

/// What an event costs in the writer's queue besides its JSON.
const EVENT_OVERHEAD: usize = 256;

/// Turns wait (see [`Store::wait_for_room`]) while more than this is queued
/// for the writer; a fast agent then runs at the disk's pace instead of
/// growing memory.
pub const BACKLOG_HIGH: usize = 16 * 1024 * 1024;

/// Waiting turns go on once the queue is down to this.
const BACKLOG_LOW: usize = BACKLOG_HIGH / 2;

/// The writer's queue size, and a wake-up for turns waiting for it to shrink.
#[derive(Default)]
struct Backlog {
    bytes: AtomicUsize,
    drained: Notify,
}

impl Backlog {
    fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::AcqRel);
    }

    fn remove(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::AcqRel);
        if before - n <= BACKLOG_LOW && before > BACKLOG_LOW {
            self.drained.notify_waiters();
        }
    }
}

fn event_cost(ev: &PendingEvent) -> usize {
    ev.json.len() + EVENT_OVERHEAD
}

impl Store {
    /// Opens (creating if needed) the SQLite log at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let mut conn = sqlite::open_writer(path, durability)?;
        let store = Store::start(Backend::Sqlite(sqlite::Readers::new(path)), move |batch| {
            sqlite::commit(&mut conn, batch).map_err(CommitError::from)
        })?;
        let (stop, stopped) = std_mpsc::channel();
        let thread = sqlite::spawn_checkpointer(path, stopped)?;
        *store.checkpointer.lock().unwrap_or_else(|p| p.into_inner()) = Some((stop, thread));
        Ok(store)
    }

    /// A log that lives in memory only.
    pub fn memory() -> Result<Store, StoreError> {
        let log = Arc::new(memory::MemLog::default());
        let writer_log = Arc::clone(&log);
        Store::start(Backend::Memory(log), move |batch| {
            writer_log.commit(batch);
            Ok(())
        })
    }

    fn start(
        backend: Backend,
        commit: impl FnMut(&[WriteOp]) -> Result<(), CommitError> + Send + 'static,
    ) -> Result<Store, StoreError> {
        let (tx, rx) = std_mpsc::channel();
        let inlet = Arc::new(Mutex::new(Inlet { tx: Some(tx), down: None }));
        let epoch = Arc::new(AtomicU64::new(0));
        let backlog = Arc::new(Backlog::default());
        let writer = {
            let shared =
                WriterShared { inlet: Arc::clone(&inlet), epoch: Arc::clone(&epoch), backlog: Arc::clone(&backlog) };
            std::thread::Builder::new()
                .name("tandem-log-writer".into())
                .spawn(move || write_loop(rx, commit, &shared))
                .map_err(StoreError::Thread)?
        };
        Ok(Store { inlet, epoch, backlog, writer: Mutex::new(Some(writer)), checkpointer: Mutex::new(None), backend })
    }

    /// Queues an event for the next group commit. Callers hold their thread's
    /// lock while calling this, so the queue order is the seq order.
    pub fn append(&self, event: PendingEvent) -> Result<(), StoreError> {
        let mut inlet = self.inlet.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((why, since)) = &inlet.down {
            if since.elapsed() < RETRY_AFTER {
                return Err(StoreError::Unavailable(why.clone()));
            }
            inlet.down = None;
        }
        let tx = inlet.tx.as_ref().ok_or(StoreError::WriterGone)?;
        let cost = event_cost(&event);
        self.backlog.add(cost);
        tx.send(WriteOp::Event(event)).map_err(|_| {
            self.backlog.remove(cost);
            StoreError::WriterGone
        })
    }

    /// Changes each time queued events were given up: a thread that last
    /// appended in another epoch numbers its next event after its last
    /// committed one.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether the writer's queue is past [`BACKLOG_HIGH`].
    pub fn is_backlogged(&self) -> bool {
        self.backlog.bytes.load(Ordering::Acquire) > BACKLOG_HIGH
    }

    /// Waits until the writer's queue is back under [`BACKLOG_HIGH`] (at once
    /// if it is).
    pub async fn wait_for_room(&self) {
        loop {
            let drained = self.backlog.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if !self.is_backlogged() {
                return;
            }
            drained.await;
        }
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        {
            let inlet = self.inlet.lock().unwrap_or_else(|p| p.into_inner());
            let tx = inlet.tx.as_ref().ok_or(StoreError::WriterGone)?;
            tx.send(WriteOp::Flush(ack)).map_err(|_| StoreError::WriterGone)?;
        }
        done.await.map_err(|_| StoreError::WriterGone)?.map_err(StoreError::Unavailable)
    }

    /// Commits what is queued and stops the writer (and the checkpointer).
    /// Later appends fail.
    pub fn close(&self) {
        drop(self.inlet.lock().unwrap_or_else(|p| p.into_inner()).tx.take());
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
        if let Some((stop, thread)) = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(stop);
            let _ = thread.join();
        }
        // Fold the WAL back into the database and empty it, so that a stopped
        // server leaves one file of its size, not a WAL as big beside it.
        if let Backend::Sqlite(readers) = &self.backend {
            readers.close_and_truncate_wal();
        }
    }

    /// Runs a SQLite read on a blocking thread, or a memory read in place.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        sql: impl FnOnce(&rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
        mem: impl FnOnce(&memory::MemLog) -> T,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Memory(log) => Ok(mem(log)),
            Backend::Sqlite(_) => {
                let store = Arc::clone(self);
                let joined = tokio::task::spawn_blocking(move || match &store.backend {
                    Backend::Sqlite(readers) => readers.with(sql),
                    Backend::Memory(_) => unreachable!("checked above"),
                })
                .await;
                match joined {
                    Ok(r) => r,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
        }
    }

    /// Up to `limit` events of a thread from `from` (inclusive), in seq order.
    pub async fn read_page(
        self: &Arc<Self>,
        thread_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let id = thread_id.to_owned();
        self.read(move |c| sqlite::read_page(c, &id, from, limit), |m| m.read_page(thread_id, from, limit)).await
    }

    /// The seq of the first event at or after `ts` (same format as stored).
    pub async fn first_seq_at(self: &Arc<Self>, thread_id: &str, ts: String) -> Result<Option<u64>, StoreError> {
        let id = thread_id.to_owned();
        let ts2 = ts.clone();
        self.read(move |c| sqlite::first_seq_at(c, &id, &ts2), |m| m.first_seq_at(thread_id, &ts)).await
    }

    /// The events a thread's turns can be rebuilt from — `turn/started` and
    /// `item/completed` — without reading its deltas.
    pub async fn read_outline(self: &Arc<Self>, thread_id: &str) -> Result<Vec<LogEntry>, StoreError> {
        let id = thread_id.to_owned();
        self.read(move |c| sqlite::read_outline(c, &id), |m| m.read_outline(thread_id)).await
    }

    /// Every thread with its last seq and time, in id order (a new memory log
    /// has none).
    pub async fn load_threads(self: &Arc<Self>) -> Result<Vec<ThreadRow>, StoreError> {
        self.read(sqlite::load_threads, |_| Vec::new()).await
    }
}

/// Gives up `batch` and everything queued behind it: refuses new writes for
/// [`RETRY_AFTER`], bumps the epoch, and tells every waiter why.
fn give_up(rx: &std_mpsc::Receiver<WriteOp>, batch: &mut Vec<WriteOp>, shared: &WriterShared, why: String) {
    {
        let mut inlet = shared.inlet.lock().unwrap_or_else(|p| p.into_inner());
        inlet.down = Some((why.clone(), Instant::now()));
        shared.epoch.fetch_add(1, Ordering::AcqRel);
    }
    // Nothing can be queued from here until RETRY_AFTER: this takes all.
    batch.extend(rx.try_iter());
    let mut freed = 0;
    let mut events = 0;
    for op in batch.drain(..) {
        let ack = match op {
            WriteOp::Event(ev) => {
                freed += event_cost(&ev);
                events += 1;
                ev.ack
            }
            WriteOp::Flush(ack) => Some(ack),
        };
        if let Some(ack) = ack {
            let _ = ack.send(Err(why.clone()));
        }
    }
    shared.backlog.remove(freed);
    tracing::error!(error = %why, events, "the event log cannot be written; gave up the queued events");
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// What the writer thread shares with the store.
struct WriterShared {
    inlet: Arc<Mutex<Inlet>>,
    epoch: Arc<AtomicU64>,
    backlog: Arc<Backlog>,
}

fn write_loop(
    rx: std_mpsc::Receiver<WriteOp>,
    mut commit: impl FnMut(&[WriteOp]) -> Result<(), CommitError>,
    shared: &WriterShared,
) {
    let backlog = &shared.backlog;
    let mut batch: Vec<WriteOp> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // Retry a while: another process's lock goes away, space may be freed.
        // If the log stays unwritable, give the queue up (see the module
        // header) rather than stall every client or stop the server.
        let mut delay = Duration::from_millis(20);
        let started = Instant::now();
        let mut failed = None;
        while let Err(e) = commit(&batch) {
            let patience = if e.busy { BUSY_PATIENCE } else { FAILURE_PATIENCE };
            if started.elapsed() >= patience {
                failed = Some(e.message);
                break;
            }
            tracing::warn!(error = %e.message, retry_in = ?delay, "commit failed; retrying");
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(500));
        }
        if let Some(why) = failed {
            give_up(&rx, &mut batch, shared, why);
            continue;
        }
        // Publish in commit order; wake each feed once after its last event
        // of the group rather than once per event.
        let mut freed = 0;
        let mut to_wake: Option<Arc<LiveFeed>> = None;
        for op in batch.drain(..) {
            match op {
                WriteOp::Event(ev) => {
                    freed += event_cost(&ev);
                    if let Some(prev) = &to_wake
                        && !Arc::ptr_eq(prev, &ev.live)
                    {
                        prev.wake();
                    }
                    ev.live.publish(LogEntry { seq: ev.seq, json: ev.json });
                    to_wake = Some(ev.live);
                    if let Some(ack) = ev.ack {
                        let _ = ack.send(Ok(()));
                    }
                }
                WriteOp::Flush(ack) => {
                    let _ = ack.send(Ok(()));
                }
            }
        }
        if let Some(feed) = to_wake {
            feed.wake();
        }
        backlog.remove(freed);
    }
}
