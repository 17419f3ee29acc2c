//! The SQLite backend: the embedded default (`--database sqlite:PATH`). One
//! connection behind a mutex, used from blocking tasks: a hub's load is a few
//! syncs a second per share, far from what one SQLite writer handles.
//! `secure_delete` is on, so a deleted or purged share's text is overwritten
//! in the file, not merely unlinked from the b-tree.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Check, HubStore, NewShare, Share, StoreError, StoredEvent, SyncBatch, SyncOutcome, check_sync};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    thread_id TEXT NOT NULL,
    title TEXT,
    shared INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    next_seq INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS shares_expiry ON shares (expires_at) WHERE expired = 0 AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    share_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (share_id, seq)
) WITHOUT ROWID;
";

/// Shares in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA secure_delete=ON;",
        )
        .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn share_row(conn: &Connection, id: &str) -> rusqlite::Result<Option<Share>> {
    conn.query_row(
        "SELECT id, secret_hash, thread_id, title, shared, created_at, expires_at, next_seq, bytes, expired
         FROM shares WHERE id = ?1",
        [id],
        |r| {
            Ok(Share {
                id: r.get(0)?,
                secret_hash: r.get(1)?,
                thread_id: r.get(2)?,
                title: r.get(3)?,
                shared: r.get(4)?,
                created_at: r.get(5)?,
                expires_at: r.get(6)?,
                next_seq: r.get::<_, i64>(7)? as u64,
                bytes: r.get::<_, i64>(8)? as u64,
                expired: r.get(9)?,
            })
        },
    )
    .optional()
}

impl HubStore for SqliteStore {
    async fn create(&self, s: NewShare) -> Result<(), StoreError> {
        self.with(move |conn| {
            let n = conn.execute(
                "INSERT INTO shares (id, secret_hash, thread_id, title, shared, created_at, expires_at, next_seq, bytes)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, 1, 0) ON CONFLICT (id) DO NOTHING",
                params![s.id, s.secret_hash, s.thread_id, s.title, s.created_at, s.expires_at],
            )?;
            if n == 0 { Err(StoreError::Exists(s.id)) } else { Ok(()) }
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Share>, StoreError> {
        let id = id.to_owned();
        self.with(move |conn| Ok(share_row(conn, &id)?)).await
    }

    async fn sync(&self, id: &str, batch: SyncBatch, now: i64, max_bytes: u64) -> Result<SyncOutcome, StoreError> {
        let id = id.to_owned();
        self.with(move |conn| {
            // IMMEDIATE: the check and the writes see the same share, even
            // with another process on the file.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let share = share_row(&tx, &id)?;
            let (new, next_seq, bytes) = match check_sync(share.as_ref(), &batch, now, max_bytes) {
                Check::Refuse(why) => return Ok(why),
                Check::Store { new, next_seq, bytes } => (new, next_seq, bytes),
            };
            {
                let mut insert = tx.prepare_cached("INSERT INTO events (share_id, seq, json) VALUES (?1, ?2, ?3)")?;
                for &i in &new {
                    let e = &batch.events[i];
                    insert.execute(params![id, e.seq as i64, e.json])?;
                }
            }
            tx.execute(
                "UPDATE shares SET next_seq = ?2, bytes = ?3 WHERE id = ?1",
                params![id, next_seq as i64, bytes as i64],
            )?;
            if let Some((title, shared)) = batch.thread {
                tx.execute("UPDATE shares SET title = ?2, shared = ?3 WHERE id = ?1", params![id, title, shared])?;
            }
            tx.commit()?;
            Ok(SyncOutcome::Stored { next_seq, added: new.len() })
        })
        .await
    }

    async fn events(&self, id: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let id = id.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, json FROM events WHERE share_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id, from_seq.min(i64::MAX as u64) as i64, limit as i64], |r| {
                Ok(StoredEvent { seq: r.get::<_, i64>(0)? as u64, json: r.get(1)? })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM events WHERE share_id = ?1", [&id])?;
            let n = tx.execute("DELETE FROM shares WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<usize, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM events WHERE share_id IN
                 (SELECT id FROM shares WHERE expired = 0 AND expires_at IS NOT NULL AND expires_at <= ?1)",
                [now],
            )?;
            let n = tx.execute(
                "UPDATE shares SET expired = 1, title = NULL, secret_hash = x'', bytes = 0
                 WHERE expired = 0 AND expires_at IS NOT NULL AND expires_at <= ?1",
                [now],
            )?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;

    crate::store_contract!({
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
        (dir, store)
    });
}
