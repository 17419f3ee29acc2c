//! The durable event log: one SQLite file in WAL mode. All writes go through one
//! writer thread that commits in groups, so a stream of thousands of deltas costs
//! a handful of commits; reads use a small pool of separate connections.
//!
//! The writer publishes each event to its thread's live broadcast only after the
//! commit that holds it, in commit order: nobody can see an event that a crash
//! could still take away (invariant 2), and live readers see seqs in order.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{broadcast, oneshot};

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
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
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
    Create {
        title: Option<String>,
        shared: bool,
        created_at: String,
    },
    Update {
        title: Option<String>,
        shared: bool,
    },
    TurnStarted(String),
    TurnEnded,
}

/// One event on its way to the log.
pub struct PendingEvent {
    pub thread_id: Arc<str>,
    pub seq: u64,
    pub ts: String,
    pub json: Box<str>,
    pub row: RowChange,
    /// Receives the event once committed.
    pub live: broadcast::Sender<Arc<LogEntry>>,
    /// Told once the event is committed (or dropped if the commit failed).
    pub ack: Option<oneshot::Sender<()>>,
}

enum WriteOp {
    Event(PendingEvent),
    Flush(oneshot::Sender<()>),
}

/// The event log. Cheap to share behind an `Arc`.
pub struct Store {
    path: PathBuf,
    tx: Mutex<Option<std_mpsc::Sender<WriteOp>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS threads (
    id          TEXT PRIMARY KEY,
    title       TEXT,
    shared      INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    active_turn TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    thread_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts        TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (thread_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_ts ON events (thread_id, ts);
";

/// Most events committed in one transaction.
const MAX_GROUP: usize = 8192;

impl Store {
    /// Opens (creating if needed) the log at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        let (tx, rx) = std_mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("tandem-store-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Store {
            path: path.to_owned(),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Queues an event for the next group commit. Callers hold their thread's
    /// lock while calling this, so the queue order is the seq order.
    pub fn append(&self, event: PendingEvent) -> Result<(), StoreError> {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_ref().ok_or(StoreError::WriterGone)?;
        tx.send(WriteOp::Event(event))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        {
            let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.as_ref().ok_or(StoreError::WriterGone)?;
            tx.send(WriteOp::Flush(ack))
                .map_err(|_| StoreError::WriterGone)?;
        }
        done.await.map_err(|_| StoreError::WriterGone)
    }

    /// Commits what is queued and stops the writer. Later appends fail.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
    }

    /// Runs `f` with a read connection from the pool, on a blocking thread.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let conn = store
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &store.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.busy_timeout(std::time::Duration::from_secs(5))?;
                    c
                }
            };
            let out = f(&conn);
            let mut pool = store.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await;
        match joined {
            Ok(r) => r.map_err(StoreError::from),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Up to `limit` events of a thread from `from` (inclusive), in seq order.
    pub async fn read_page(
        self: &Arc<Self>,
        thread_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let thread_id = thread_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, body FROM events WHERE thread_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![thread_id, from as i64, limit as i64], |r| {
                Ok(LogEntry { seq: r.get::<_, i64>(0)? as u64, json: r.get::<_, String>(1)?.into_boxed_str() })
            })?;
            rows.collect()
        })
        .await
    }

    /// The seq of the first event at or after `ts` (same format as stored).
    pub async fn first_seq_at(
        self: &Arc<Self>,
        thread_id: &str,
        ts: String,
    ) -> Result<Option<u64>, StoreError> {
        let thread_id = thread_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT seq FROM events WHERE thread_id = ?1 AND ts >= ?2 ORDER BY ts, seq LIMIT 1",
            )?
            .query_row(params![thread_id, ts], |r| r.get::<_, i64>(0))
            .optional()
            .map(|s| s.map(|s| s as u64))
        })
        .await
    }

    /// Every thread with its last seq and time, oldest first (ids are UUID v7).
    pub async fn load_threads(self: &Arc<Self>) -> Result<Vec<ThreadRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT t.id, t.title, t.shared, t.created_at, t.active_turn,
                        e.seq, e.ts
                   FROM threads t
                   LEFT JOIN events e ON e.thread_id = t.id
                    AND e.seq = (SELECT MAX(seq) FROM events WHERE thread_id = t.id)
                  ORDER BY t.id",
            )?;
            let rows = stmt.query_map([], |r| {
                let created_at: String = r.get(3)?;
                Ok(ThreadRow {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    shared: r.get::<_, i64>(2)? != 0,
                    active_turn: r.get(4)?,
                    last_seq: r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64,
                    last_ts: r
                        .get::<_, Option<String>>(6)?
                        .unwrap_or_else(|| created_at.clone()),
                    created_at,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(mut conn: Connection, rx: std_mpsc::Receiver<WriteOp>) {
    let mut batch: Vec<WriteOp> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        match commit(&mut conn, &batch) {
            Ok(()) => {
                for op in batch.drain(..) {
                    match op {
                        WriteOp::Event(ev) => {
                            // No receivers is normal (nobody follows the thread).
                            let _ = ev.live.send(Arc::new(LogEntry {
                                seq: ev.seq,
                                json: ev.json,
                            }));
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
            Err(e) => {
                // Dropping the acks tells each waiter its write failed.
                tracing::error!(error = %e, events = batch.len(), "commit failed; events dropped");
                batch.clear();
            }
        }
    }
}

fn commit(conn: &mut Connection, batch: &[WriteOp]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (thread_id, seq, ts, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for op in batch {
            let WriteOp::Event(ev) = op else { continue };
            match &ev.row {
                RowChange::None => {}
                RowChange::Create {
                    title,
                    shared,
                    created_at,
                } => {
                    tx.execute(
                        "INSERT INTO threads (id, title, shared, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![&*ev.thread_id, title, *shared as i64, created_at],
                    )?;
                }
                RowChange::Update { title, shared } => {
                    tx.execute(
                        "UPDATE threads SET title = ?2, shared = ?3 WHERE id = ?1",
                        params![&*ev.thread_id, title, *shared as i64],
                    )?;
                }
                RowChange::TurnStarted(turn) => {
                    tx.execute(
                        "UPDATE threads SET active_turn = ?2 WHERE id = ?1",
                        params![&*ev.thread_id, turn],
                    )?;
                }
                RowChange::TurnEnded => {
                    tx.execute(
                        "UPDATE threads SET active_turn = NULL WHERE id = ?1",
                        params![&*ev.thread_id],
                    )?;
                }
            }
            insert.execute(params![&*ev.thread_id, ev.seq as i64, ev.ts, &*ev.json])?;
        }
    }
    tx.commit()
}
