//! The SQLite backend: the embedded default (`--database sqlite:PATH`). One
//! connection behind a mutex, used from blocking tasks: a hub's load is a few
//! syncs a second per share, far from what one SQLite writer handles.
//!
//! A deleted or purged share leaves its text in no file. `secure_delete`
//! overwrites it in the pages as they are now; but in WAL mode every earlier
//! version of a page (the ones a sync wrote, text and all) stays in
//! `hub.db-wal` until a checkpoint copies the pages back and the log is
//! reset — and even then a reset log is only overwritten from its start, so
//! old frames linger past the new ones. So a delete or purge, once
//! committed, runs `wal_checkpoint(TRUNCATE)` before it returns: the pages
//! (overwritten) go into the main file and the log is cut to zero bytes.
//!
//! Nothing in this process can hold the checkpoint off (one connection, one
//! mutex); another process reading the file (a backup, `sqlite3`) can, by
//! keeping a read transaction open on an older snapshot. The checkpoint then
//! waits for it through the busy timeout; if the reader holds on past that,
//! the delete still stands (it is committed), the log keeps the text for
//! now, a warning says so, and every later purge (the hub's tidy, each
//! minute) tries again until one succeeds; so does the next start, should
//! the hub stop before that.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How long a delete or purge waits for another process's reader to let go
/// of the WAL before it answers with the scrub still owed (see the module
/// notes). One checkpoint already waits out the busy timeout (5 s) for
/// readers; the loop covers a checkpoint that gives up sooner.
const SCRUB_PATIENCE: Duration = Duration::from_secs(5);

/// Shares in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// A delete or purge whose checkpoint a reader held off: deleted text may
    /// still be in the WAL, and the next purge checkpoints again.
    scrub_owed: Arc<AtomicBool>,
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
        // A scrub owed when the last hub on this file stopped (the flag is
        // only in memory), or a delete by a hub from before scrubbing: the
        // WAL may hold deleted text from then, so start from an empty one.
        let scrub_owed = Arc::new(AtomicBool::new(false));
        scrub(&conn, &scrub_owed);
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), scrub_owed })
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

/// Moves every page of the WAL into the main file and cuts the WAL to zero
/// bytes, so text a delete overwrote survives in no earlier page version.
/// False if another process held it off for [`SCRUB_PATIENCE`] (then `owed`
/// stays set for the next purge to try again). Never an error: the delete
/// before it is committed, and a failed scrub must not make it look undone.
fn scrub(conn: &Connection, owed: &AtomicBool) -> bool {
    let started = Instant::now();
    loop {
        // (busy, frames in the log, frames checkpointed); busy = 1 when a
        // reader or writer elsewhere kept it from finishing, after waiting
        // out the busy timeout for them.
        let why = match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
            Ok(0) => {
                owed.store(false, Ordering::SeqCst);
                return true;
            }
            Ok(_) => "another process holds a read of the hub database".to_owned(),
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= SCRUB_PATIENCE {
            owed.store(true, Ordering::SeqCst);
            tracing::warn!(
                why,
                "could not checkpoint: deleted text stays in the WAL until a later purge (each minute) can"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
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
        let owed = Arc::clone(&self.scrub_owed);
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM events WHERE share_id = ?1", [&id])?;
            let n = tx.execute("DELETE FROM shares WHERE id = ?1", [&id])?;
            tx.commit()?;
            if n > 0 || owed.load(Ordering::SeqCst) {
                scrub(conn, &owed);
            }
            Ok(n > 0)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<usize, StoreError> {
        let owed = Arc::clone(&self.scrub_owed);
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
            if n > 0 || owed.load(Ordering::SeqCst) {
                scrub(conn, &owed);
            }
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

#[cfg(test)]
mod scrub_tests {
    use super::*;

    fn holds(path: &Path, text: &str) -> bool {
        std::fs::read(path).is_ok_and(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
    }

    /// A store on a fresh file holding one share whose event carries
    /// `secret`, and the reader (another connection, as another process
    /// would have) holding a read of it, and the WAL's path.
    async fn held_after_delete(dir: &Path, secret: &str) -> (SqliteStore, Connection, std::path::PathBuf) {
        let path = dir.join("hub.db");
        let store = SqliteStore::open(&path).unwrap();
        let share = NewShare {
            id: "a".into(),
            secret_hash: vec![1],
            thread_id: "t".into(),
            title: None,
            created_at: 0,
            expires_at: None,
        };
        store.create(share).await.unwrap();
        let json = format!("{{\"t\":\"{secret}\"}}");
        let batch = SyncBatch { thread: None, events: vec![StoredEvent { seq: 1, json }] };
        store.sync("a", batch, 0, 1 << 20).await.unwrap();
        let wal = dir.join("hub.db-wal");
        assert!(holds(&wal, secret), "the sync's page is in the WAL");

        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM events;").unwrap();
        let started = Instant::now();
        assert!(store.delete("a").await.unwrap());
        assert!(started.elapsed() >= SCRUB_PATIENCE, "it waited for the reader first");
        assert!(store.scrub_owed.load(Ordering::SeqCst), "and owes the scrub");
        assert!(holds(&wal, secret), "the reader still holds the old pages");
        (store, reader, wal)
    }

    /// A reader in another process that outlasts the wait: the delete still
    /// answers (it is committed), and the scrub it owes is paid by the next
    /// purge once the reader has let go.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_scrub_held_off_by_a_reader_is_paid_by_the_next_purge() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "OWED-SCRUB-MARKER-0042";
        let (store, reader, wal) = held_after_delete(dir.path(), secret).await;
        reader.execute_batch("COMMIT").unwrap();
        assert_eq!(store.purge_expired(0).await.unwrap(), 0);
        assert!(!store.scrub_owed.load(Ordering::SeqCst));
        assert!(!holds(&wal, secret) && !holds(&dir.path().join("hub.db"), secret), "paid: in no file");
    }

    /// The hub stops while it owes a scrub (the flag is only in memory): the
    /// next start pays it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_scrub_owed_when_the_hub_stopped_is_paid_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "OWED-AT-STOP-MARKER-0043";
        let (store, reader, wal) = held_after_delete(dir.path(), secret).await;
        // Stopped without a clean close: the connection is leaked, as a
        // kill would leave it (a clean close would checkpoint by itself).
        std::mem::forget(store);
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        assert!(holds(&wal, secret), "nothing paid it yet");
        let _again = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
        assert!(!holds(&wal, secret) && !holds(&dir.path().join("hub.db"), secret), "paid at the start");
    }
}
