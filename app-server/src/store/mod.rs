//! The event log. All writes go through one writer thread that commits in
//! groups, so a stream of thousands of deltas costs a handful of commits. Two
//! backends share that writer: SQLite (the app-server's durable log) and memory
//! (a private LOCAL session: nothing on disk).
//!
//! The writer publishes each event to its thread's live broadcast only after the
//! commit that holds it, in commit order: nobody can see an event that a crash
//! could still take away (invariant 2), and live readers see seqs in order.

mod memory;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

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
}

/// An event as it sits in the log: its seq and its JSON text.
#[derive(Debug)]
pub struct LogEntry {
    pub seq: u64,
    pub json: Box<str>,
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
    pub live: Arc<crate::subscribe::LiveFeed>,
    /// Told once the event is committed (or dropped if the commit failed).
    pub ack: Option<oneshot::Sender<()>>,
}

enum WriteOp {
    Event(PendingEvent),
    Flush(oneshot::Sender<()>),
}

enum Backend {
    Sqlite(sqlite::Readers),
    Memory(Arc<memory::MemLog>),
}

/// The event log. Share it behind an `Arc`.
pub struct Store {
    tx: Mutex<Option<std_mpsc::Sender<WriteOp>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The SQLite checkpointer: dropping the sender stops it.
    checkpointer: Mutex<Option<(std_mpsc::Sender<()>, JoinHandle<()>)>>,
    backend: Backend,
}

/// How long the writer keeps retrying a failed commit before giving up.
const COMMIT_PATIENCE: Duration = Duration::from_secs(30);

/// Most events committed in one transaction.
const MAX_GROUP: usize = 8192;

impl Store {
    /// Opens (creating if needed) the SQLite log at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let mut conn = sqlite::open_writer(path, durability)?;
        let store = Store::start(Backend::Sqlite(sqlite::Readers::new(path)), move |batch| {
            sqlite::commit(&mut conn, batch).map_err(|e| e.to_string())
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
        commit: impl FnMut(&[WriteOp]) -> Result<(), String> + Send + 'static,
    ) -> Result<Store, StoreError> {
        let (tx, rx) = std_mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("tandem-log-writer".into())
            .spawn(move || write_loop(rx, commit))
            .map_err(StoreError::Thread)?;
        Ok(Store {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(None),
            backend,
        })
    }

    /// Queues an event for the next group commit. Callers hold their thread's
    /// lock while calling this, so the queue order is the seq order.
    pub fn append(&self, event: PendingEvent) -> Result<(), StoreError> {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_ref().ok_or(StoreError::WriterGone)?;
        tx.send(WriteOp::Event(event)).map_err(|_| StoreError::WriterGone)
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        {
            let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.as_ref().ok_or(StoreError::WriterGone)?;
            tx.send(WriteOp::Flush(ack)).map_err(|_| StoreError::WriterGone)?;
        }
        done.await.map_err(|_| StoreError::WriterGone)
    }

    /// Commits what is queued and stops the writer (and the checkpointer).
    /// Later appends fail.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
        if let Some((stop, thread)) = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(stop);
            let _ = thread.join();
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

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(rx: std_mpsc::Receiver<WriteOp>, mut commit: impl FnMut(&[WriteOp]) -> Result<(), String>) {
    let mut batch: Vec<WriteOp> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // Seqs are already handed out: dropping a group would leave a hole in
        // the log. Retry (a lock held by another process, a full disk being
        // cleared); if the log stays unwritable, stop the process so that a
        // restart recovers from what is on disk rather than run on diverged.
        let mut delay = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while let Err(e) = commit(&batch) {
            if waited >= COMMIT_PATIENCE {
                tracing::error!(error = %e, events = batch.len(), "the event log cannot be written; stopping");
                eprintln!("tandem app-server: the event log cannot be written ({e}); stopping");
                std::process::exit(70);
            }
            tracing::warn!(error = %e, retry_in = ?delay, "commit failed; retrying");
            std::thread::sleep(delay);
            waited += delay;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        for op in batch.drain(..) {
            match op {
                WriteOp::Event(ev) => {
                    ev.live.publish(LogEntry { seq: ev.seq, json: ev.json });
                    if let Some(ack) = ev.ack {
                        let _ = ack.send(());
                    }
                }
                WriteOp::Flush(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }
}
