//! The SQLite backend: one file in WAL mode, `(thread_id, seq)` as the key of a
//! `WITHOUT ROWID` table, an index on `(thread_id, ts)`. The writer thread owns
//! one connection; reads come from a small pool of read-only connections on
//! blocking threads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{Durability, LogEntry, RowChange, StoreError, ThreadRow, WriteOp};

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
    type      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (thread_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_ts ON events (thread_id, ts);
";

/// The index behind `read_outline`: only the events turns are rebuilt from.
const OUTLINE_INDEX: &str = "CREATE INDEX IF NOT EXISTS events_outline ON events (thread_id, seq)
    WHERE type IN ('turn/started', 'item/completed');";

/// Flags for every connection: never through a symlink (a link planted in
/// the data directory must not make the server write elsewhere).
fn flags(read_only: bool) -> OpenFlags {
    let mode = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW | OpenFlags::SQLITE_OPEN_URI
}

/// Opens the writer connection, creating the schema.
pub(super) fn open_writer(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_owned(), source };
    let conn = Connection::open_with_flags(path, flags(false)).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
    conn.execute_batch(SCHEMA).map_err(open_err)?;
    // Logs from before `type` was a column get it (empty for old rows, which
    // only costs their turns' history to agents that ask for it).
    let has_type: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'type'", [], |r| r.get(0))
        .map_err(open_err)?;
    if has_type == 0 {
        conn.execute_batch("ALTER TABLE events ADD COLUMN type TEXT NOT NULL DEFAULT ''").map_err(open_err)?;
    }
    conn.execute_batch(OUTLINE_INDEX).map_err(open_err)?;
    // Checkpoints sync the disk; the checkpointer thread runs them so that the
    // writer (and so every event's latency) never waits for one.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(open_err)?;
    Ok(conn)
}

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs passive WAL checkpoints on its own connection until `stop` is dropped.
pub(super) fn spawn_checkpointer(
    path: &Path,
    stop: std::sync::mpsc::Receiver<()>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let conn = Connection::open_with_flags(path, flags(false))
        .map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
    std::thread::Builder::new()
        .name("tandem-log-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        })
        .map_err(StoreError::Thread)
}

/// The pool of read connections.
pub(super) struct Readers {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Readers {
        Readers { path: path.to_owned(), pool: Mutex::new(Vec::new()) }
    }

    /// Runs `f` with a pooled connection (call from a blocking thread).
    pub(super) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>) -> Result<T, StoreError> {
        let conn = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(&self.path, flags(true))?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        Ok(out?)
    }
}

impl Readers {
    /// Closes the pooled connections and empties the WAL into the database
    /// (call once nothing writes any more).
    pub(super) fn close_and_truncate_wal(&self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let done = Connection::open_with_flags(&self.path, flags(false))
            .and_then(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)));
        match done {
            Ok(0) => {}
            Ok(_) => tracing::warn!("the WAL could not be emptied: a reader still had it open"),
            Err(e) => tracing::warn!(error = %e, "the WAL could not be emptied"),
        }
    }
}

pub(super) fn read_page(
    c: &Connection,
    thread_id: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<LogEntry>, rusqlite::Error> {
    let mut stmt =
        c.prepare_cached("SELECT seq, body FROM events WHERE thread_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3")?;
    let rows = stmt.query_map(params![thread_id, from as i64, limit as i64], |r| {
        Ok(LogEntry { seq: r.get::<_, i64>(0)? as u64, json: r.get::<_, String>(1)?.into_boxed_str() })
    })?;
    rows.collect()
}

pub(super) fn read_outline(c: &Connection, thread_id: &str) -> Result<Vec<LogEntry>, rusqlite::Error> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, body FROM events WHERE thread_id = ?1 AND type IN ('turn/started', 'item/completed') ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![thread_id], |r| {
        Ok(LogEntry { seq: r.get::<_, i64>(0)? as u64, json: r.get::<_, String>(1)?.into_boxed_str() })
    })?;
    rows.collect()
}

pub(super) fn first_seq_at(c: &Connection, thread_id: &str, ts: &str) -> Result<Option<u64>, rusqlite::Error> {
    c.prepare_cached("SELECT seq FROM events WHERE thread_id = ?1 AND ts >= ?2 ORDER BY ts, seq LIMIT 1")?
        .query_row(params![thread_id, ts], |r| r.get::<_, i64>(0))
        .optional()
        .map(|s| s.map(|s| s as u64))
}

pub(super) fn load_threads(c: &Connection) -> Result<Vec<ThreadRow>, rusqlite::Error> {
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
            last_ts: r.get::<_, Option<String>>(6)?.unwrap_or_else(|| created_at.clone()),
            created_at,
        })
    })?;
    rows.collect()
}

/// Writes one group in one transaction.
pub(super) fn commit(conn: &mut Connection, batch: &[WriteOp]) -> Result<(), rusqlite::Error> {
    // A failed COMMIT (a full disk) may leave the transaction open; start clean.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let tx = conn.transaction()?;
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO events (thread_id, seq, ts, body, type) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for op in batch {
            let WriteOp::Event(ev) = op else { continue };
            match &ev.row {
                RowChange::None => {}
                RowChange::Create { title, shared, created_at } => {
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
                    tx.execute("UPDATE threads SET active_turn = ?2 WHERE id = ?1", params![&*ev.thread_id, turn])?;
                }
                RowChange::TurnEnded => {
                    tx.execute("UPDATE threads SET active_turn = NULL WHERE id = ?1", params![&*ev.thread_id])?;
                }
            }
            insert.execute(params![&*ev.thread_id, ev.seq as i64, ev.ts, &*ev.json, ev.kind])?;
        }
    }
    tx.commit()
}
