//! The hub's storage, behind one trait ([`HubStore`]) with the backends beside
//! it (atuin's shape): SQLite, the embedded default, PostgreSQL (several hub
//! replicas on one database) and memory (tests, and a hub that keeps
//! nothing). Every backend passes the same contract suite ([`contract`]).
//!
//! The store decides what must be atomic — a sync's gap check and its writes,
//! a share's size budget — so that several hub replicas on one database
//! never interleave two syncs into a gap or a duplicate. Secrets reach it only
//! hashed; it never sees one.

pub mod contract;
mod memory;
pub mod postgres;
mod sqlite;

use std::future::Future;

pub use memory::MemoryStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Errors of a backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("a share with id {0} exists already")]
    Exists(String),
    #[error("the database task failed: {0}")]
    Task(String),
    #[error("database: {0}")]
    Postgres(tokio_postgres::Error),
    /// Down, restarting or out of connections: worth retrying (the API answers 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("--database: {0}")]
    BadUrl(String),
    #[error("the database's hub schema is version {found}, newer than this hub's ({known}); run the newer tandem hub")]
    SchemaTooNew { found: i32, known: i32 },
}

impl StoreError {
    /// Whether the database is out of reach for now (a retry may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A new share, as the server made it.
#[derive(Debug, Clone)]
pub struct NewShare {
    pub id: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    pub thread_id: String,
    pub title: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A share as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub thread_id: String,
    pub title: Option<String>,
    pub shared: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// The seq the next synced event must have (1 + the last one stored).
    pub next_seq: u64,
    /// Bytes of event JSON stored.
    pub bytes: u64,
    /// Expired and purged: only this row is left, so the id answers 410.
    pub expired: bool,
}

/// One event of a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub json: String,
}

/// What a sync brings, already checked against the secret.
#[derive(Debug, Clone, Default)]
pub struct SyncBatch {
    /// The last `thread` item of the batch (title, shared): it replaces the stored one.
    pub thread: Option<(Option<String>, bool)>,
    /// Events in the order sent.
    pub events: Vec<StoredEvent>,
}

/// What became of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Stored; events at or below `next_seq - 1` already there were skipped.
    Stored { next_seq: u64, added: usize },
    /// The first new event is not the one expected: nothing was stored.
    Gap { expected_seq: u64 },
    /// Storing it would pass the share's byte budget: nothing was stored.
    TooBig { limit: u64 },
    /// No such share (never made, deleted, or purged past its tombstone).
    Missing,
    /// The share expired.
    Expired,
}

/// The hub's storage. Every method is atomic on its own.
pub trait HubStore: Send + Sync + 'static {
    /// Stores a new share; [`StoreError::Exists`] if the id is taken.
    fn create(&self, share: NewShare) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The share with this id, expired tombstones included.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Share>, StoreError>> + Send;

    /// Applies a sync at `now` (ms): events below the share's `next_seq` are
    /// skipped (a resend), the rest must start at `next_seq` and follow one
    /// another, and the share's events may total at most `max_bytes`. All of
    /// it is stored, or (on any refusal) none of it.
    fn sync(
        &self,
        id: &str,
        batch: SyncBatch,
        now: i64,
        max_bytes: u64,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Up to `limit` events from `from_seq` on, in order.
    fn events(
        &self,
        id: &str,
        from_seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Removes the share and everything of it; whether it was there.
    fn delete(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Purges every share expired at `now` (ms): its events, title and secret
    /// go; a tombstone row stays so its id answers 410 rather than 404. Returns
    /// how many were purged.
    fn purge_expired(&self, now: i64) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Whether `share` has expired at `now`.
pub fn is_expired(share: &Share, now: i64) -> bool {
    share.expired || share.expires_at.is_some_and(|at| at <= now)
}

/// The checks every backend applies to a sync, on the share as it is inside
/// the backend's transaction; `None` means "store it".
pub(crate) fn check_sync(share: Option<&Share>, batch: &SyncBatch, now: i64, max_bytes: u64) -> Check {
    let Some(share) = share else { return Check::Refuse(SyncOutcome::Missing) };
    if is_expired(share, now) {
        return Check::Refuse(SyncOutcome::Expired);
    }
    let mut expected = share.next_seq;
    let mut new = Vec::new();
    let mut bytes = share.bytes;
    for (i, e) in batch.events.iter().enumerate() {
        if e.seq < expected && new.is_empty() {
            continue; // already stored: a resend after a lost answer
        }
        if e.seq != expected {
            return Check::Refuse(SyncOutcome::Gap { expected_seq: expected });
        }
        bytes += e.json.len() as u64;
        new.push(i);
        expected += 1;
    }
    if bytes > max_bytes {
        return Check::Refuse(SyncOutcome::TooBig { limit: max_bytes });
    }
    Check::Store { new, next_seq: expected, bytes }
}

pub(crate) enum Check {
    Refuse(SyncOutcome),
    /// Store the events at these indexes; the share then goes on at `next_seq`.
    Store {
        new: Vec<usize>,
        next_seq: u64,
        bytes: u64,
    },
}
