//! The PostgreSQL backend (`--database postgres://…`): for teams that run
//! several hub replicas behind a load balancer on one database. Everything a
//! replica must agree on lives in the database: a sync locks its share's row
//! (`SELECT … FOR UPDATE`), so two replicas never interleave two syncs into a
//! gap or a duplicate, and each stored change is announced with `NOTIFY` on
//! [`CHANNEL`] inside the same transaction — sent if and only if it commits —
//! for the other replicas' pollers ([`crate::replicas`]).
//!
//! Connections come from a small pool that reconnects on demand: while the
//! database is down or restarting every call fails fast with
//! [`StoreError::Unavailable`] (the API answers 503), and the first call after
//! it is back opens a fresh connection (a pooled connection whose end the
//! pool has not noticed yet fails its one request with 503, and is dropped).
//! No TLS yet: connections are plain
//! (`NoTls`), so the database must be on a trusted network or reached through
//! a local socket or tunnel; `sslmode=require` is refused at start.
//!
//! The schema is versioned ([`MIGRATIONS`], the `tandem_hub_migrations`
//! table) and migrated by the hub at start under a session advisory lock, so
//! replicas started together apply each migration exactly once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::{Check, HubStore, NewShare, Share, StoreError, StoredEvent, SyncBatch, SyncOutcome, check_sync};

/// The `NOTIFY` channel; the payload is the id of the share that changed.
pub const CHANNEL: &str = "tandem_hub_share";

/// Connections one replica keeps at most: more requests than this wait for one.
const POOL_SIZE: usize = 16;

/// How long opening a connection may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock migrations run under (any constant all replicas share:
/// the bytes of "tandemhb").
const MIGRATION_LOCK: i64 = 0x7461_6e64_656d_6862;

/// The schema, one step per version, applied in order and never edited once
/// released: a change is a new step.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "shares and events",
    "CREATE TABLE shares (
        id TEXT PRIMARY KEY,
        secret_hash BYTEA NOT NULL,
        thread_id TEXT NOT NULL,
        title TEXT,
        shared BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        next_seq BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        expired BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX shares_expiry ON shares (expires_at) WHERE NOT expired AND expires_at IS NOT NULL;
    CREATE TABLE events (
        share_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        json TEXT NOT NULL,
        PRIMARY KEY (share_id, seq)
    );",
)];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Parses and checks a `postgres://` URL (or a `key=value` string): it needs
/// a host, and TLS is not supported yet.
pub fn parse_url(url: &str) -> Result<Config, String> {
    let mut config = Config::from_str(url).map_err(|e| format!("not a PostgreSQL URL ({e})"))?;
    if config.get_hosts().is_empty() {
        return Err("a PostgreSQL URL needs a host, e.g. postgres://tandem@db.internal:5432/tandem_hub".into());
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err("sslmode=require: this hub does not speak TLS to PostgreSQL yet; reach the database on a \
                    trusted network, a unix socket or a tunnel, with sslmode=disable or prefer"
            .into());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A database host that vanishes without closing its connections (a
    // crashed VM, a failover to another address) is noticed in about a
    // minute, not after the kernel's default two hours: the connection then
    // fails and requests get 503 rather than hang.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(60));
    Ok(config)
}

/// Where `config` points, for messages: host, port and database, never the password.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("PostgreSQL at {host}:{port}/{}", config.get_dbname().unwrap_or("(default database)"))
}

/// A tokio-postgres error, sorted: the database being down, restarting or
/// out of connections is [`StoreError::Unavailable`] (a wait), the rest a fault.
fn sorted(e: tokio_postgres::Error) -> StoreError {
    let unavailable = match e.code() {
        // 08: connection exception; 57P0x: shutting down, starting up;
        // 53: out of resources (too many connections, disk full).
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P0") || c.starts_with("53")
        }
        // No SQLSTATE: the socket failed or closed, or a timeout.
        None => e.as_db_error().is_none(),
    };
    if unavailable { StoreError::Unavailable(with_causes(&e)) } else { StoreError::Postgres(e) }
}

/// An error and what caused it ("error connecting to server: Connection refused").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut said = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        said = format!("{said}: {c}");
        cause = c.source();
    }
    said
}

/// Opens one connection, its driver running on its own task.
pub async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to {}: {}", describe(config), with_causes(&e))))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Shares in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
}

struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    slots: Arc<Semaphore>,
}

/// A connection and the hot statements it has prepared: each is parsed once
/// per connection, which saves a round trip on every later use.
struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Conn {
    async fn prepare(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(sorted)?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }
}

/// A pooled connection; back to the pool on drop unless it closed.
struct Pooled {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _slot: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("held until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(|c| !c.client.is_closed()) {
            self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let config = parse_url(url).map_err(StoreError::BadUrl)?;
        let mut client = connect(&config).await?;
        migrate(&mut client).await?;
        let conn = Conn { client, prepared: HashMap::new() };
        let pool = Pool { config, idle: Mutex::new(vec![conn]), slots: Arc::new(Semaphore::new(POOL_SIZE)) };
        Ok(PgStore { pool: Arc::new(pool) })
    }

    /// The connection settings (the replica feed opens its own connection).
    pub fn config(&self) -> &Config {
        &self.pool.config
    }

    async fn client(&self) -> Result<Pooled, StoreError> {
        let slot = Arc::clone(&self.pool.slots).acquire_owned().await.map_err(|e| StoreError::Task(e.to_string()))?;
        let idle = {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let conn = match idle {
            Some(c) => c,
            None => Conn { client: connect(&self.pool.config).await?, prepared: HashMap::new() },
        };
        Ok(Pooled { conn: Some(conn), pool: Arc::clone(&self.pool), _slot: slot })
    }
}

/// Applies the migrations this database lacks, under [`MIGRATION_LOCK`] so
/// that replicas starting together wait for one another instead of racing.
async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(sorted)?;
    let result = migrate_locked(client).await;
    // The lock is the session's: it goes with the connection if this fails.
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(sorted)?;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS tandem_hub_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(sorted)?;
    let row =
        client.query_one("SELECT coalesce(max(version), 0) FROM tandem_hub_migrations", &[]).await.map_err(sorted)?;
    let current: i32 = row.get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: current, known: SCHEMA_VERSION });
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let tx = client.transaction().await.map_err(sorted)?;
        tx.batch_execute(sql).await.map_err(sorted)?;
        tx.execute("INSERT INTO tandem_hub_migrations (version, name) VALUES ($1, $2)", &[&version, &name])
            .await
            .map_err(sorted)?;
        tx.commit().await.map_err(sorted)?;
        tracing::info!(version, name, "hub schema migrated");
    }
    Ok(())
}

macro_rules! share_columns {
    () => {
        "SELECT id, secret_hash, thread_id, title, shared, created_at, expires_at, next_seq, bytes, expired FROM shares"
    };
}
const GET_SHARE: &str = concat!(share_columns!(), " WHERE id = $1");
const LOCK_SHARE: &str = concat!(share_columns!(), " WHERE id = $1 FOR UPDATE");
const INSERT_EVENTS: &str =
    "INSERT INTO events (share_id, seq, json) SELECT $1, s, j FROM unnest($2::BIGINT[], $3::TEXT[]) AS t(s, j)";
const UPDATE_SHARE: &str = "UPDATE shares SET next_seq = $2, bytes = $3,
        title = CASE WHEN $4 THEN $5 ELSE title END,
        shared = CASE WHEN $4 THEN $6 ELSE shared END
    WHERE id = $1";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
const EVENTS: &str = "SELECT seq, json FROM events WHERE share_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3";

fn share_row(r: &Row) -> Share {
    Share {
        id: r.get(0),
        secret_hash: r.get(1),
        thread_id: r.get(2),
        title: r.get(3),
        shared: r.get(4),
        created_at: r.get(5),
        expires_at: r.get(6),
        next_seq: r.get::<_, i64>(7) as u64,
        bytes: r.get::<_, i64>(8) as u64,
        expired: r.get(9),
    }
}

impl HubStore for PgStore {
    async fn create(&self, s: NewShare) -> Result<(), StoreError> {
        let c = self.client().await?;
        let n = c
            .client
            .execute(
                "INSERT INTO shares (id, secret_hash, thread_id, title, shared, created_at, expires_at, next_seq, bytes)
                 VALUES ($1, $2, $3, $4, TRUE, $5, $6, 1, 0) ON CONFLICT (id) DO NOTHING",
                &[&s.id, &s.secret_hash, &s.thread_id, &s.title, &s.created_at, &s.expires_at],
            )
            .await
            .map_err(sorted)?;
        if n == 0 { Err(StoreError::Exists(s.id)) } else { Ok(()) }
    }

    async fn get(&self, id: &str) -> Result<Option<Share>, StoreError> {
        let mut c = self.client().await?;
        let get = c.prepare(GET_SHARE).await?;
        let row = c.client.query_opt(&get, &[&id]).await.map_err(sorted)?;
        Ok(row.as_ref().map(share_row))
    }

    async fn sync(&self, id: &str, batch: SyncBatch, now: i64, max_bytes: u64) -> Result<SyncOutcome, StoreError> {
        let mut c = self.client().await?;
        let (lock, insert) = (c.prepare(LOCK_SHARE).await?, c.prepare(INSERT_EVENTS).await?);
        let (update, notify) = (c.prepare(UPDATE_SHARE).await?, c.prepare(NOTIFY).await?);
        let tx = c.client.transaction().await.map_err(sorted)?;
        // The row lock orders syncs of one share across every replica.
        let row = tx.query_opt(&lock, &[&id]).await.map_err(sorted)?;
        let share = row.as_ref().map(share_row);
        let (new, next_seq, bytes) = match check_sync(share.as_ref(), &batch, now, max_bytes) {
            Check::Refuse(why) => return Ok(why), // the transaction rolls back on drop
            Check::Store { new, next_seq, bytes } => (new, next_seq, bytes),
        };
        if !new.is_empty() {
            let seqs: Vec<i64> = new.iter().map(|&i| batch.events[i].seq as i64).collect();
            let jsons: Vec<&str> = new.iter().map(|&i| batch.events[i].json.as_str()).collect();
            tx.execute(&insert, &[&id, &seqs, &jsons]).await.map_err(sorted)?;
        }
        let (set_thread, title, shared) = match batch.thread {
            Some((title, shared)) => (true, title, shared),
            None => (false, None, true),
        };
        tx.execute(&update, &[&id, &(next_seq as i64), &(bytes as i64), &set_thread, &title, &shared])
            .await
            .map_err(sorted)?;
        tx.execute(&notify, &[&CHANNEL, &id]).await.map_err(sorted)?;
        tx.commit().await.map_err(sorted)?;
        Ok(SyncOutcome::Stored { next_seq, added: new.len() })
    }

    async fn events(&self, id: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut c = self.client().await?;
        let from = from_seq.min(i64::MAX as u64) as i64;
        let limit = limit.min(i64::MAX as usize) as i64;
        let events = c.prepare(EVENTS).await?;
        let rows = c.client.query(&events, &[&id, &from, &limit]).await.map_err(sorted)?;
        Ok(rows.iter().map(|r| StoredEvent { seq: r.get::<_, i64>(0) as u64, json: r.get(1) }).collect())
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.client.transaction().await.map_err(sorted)?;
        // The share's row lock first, as a sync takes it: a sync in flight on
        // another replica then commits before this reads the events, so none
        // of its events can outlive the share.
        tx.execute("SELECT 1 FROM shares WHERE id = $1 FOR UPDATE", &[&id]).await.map_err(sorted)?;
        tx.execute("DELETE FROM events WHERE share_id = $1", &[&id]).await.map_err(sorted)?;
        let n = tx.execute("DELETE FROM shares WHERE id = $1", &[&id]).await.map_err(sorted)?;
        if n > 0 {
            tx.execute(NOTIFY, &[&CHANNEL, &id]).await.map_err(sorted)?;
        }
        tx.commit().await.map_err(sorted)?;
        Ok(n > 0)
    }

    async fn purge_expired(&self, now: i64) -> Result<usize, StoreError> {
        let mut c = self.client().await?;
        let tx = c.client.transaction().await.map_err(sorted)?;
        // Marking first takes the rows' locks, so two replicas purging at
        // once purge each share once.
        let purged = tx
            .query(
                "UPDATE shares SET expired = TRUE, title = NULL, secret_hash = '\\x'::BYTEA, bytes = 0
                 WHERE NOT expired AND expires_at IS NOT NULL AND expires_at <= $1 RETURNING id",
                &[&now],
            )
            .await
            .map_err(sorted)?;
        let ids: Vec<String> = purged.iter().map(|r| r.get(0)).collect();
        if !ids.is_empty() {
            tx.execute("DELETE FROM events WHERE share_id = ANY($1)", &[&ids]).await.map_err(sorted)?;
            tx.execute("SELECT pg_notify($1, id) FROM unnest($2::TEXT[]) AS t(id)", &[&CHANNEL, &ids])
                .await
                .map_err(sorted)?;
        }
        tx.commit().await.map_err(sorted)?;
        Ok(ids.len())
    }
}

#[cfg(test)]
#[path = "../../../tests/common/pg.rs"]
pub(crate) mod cluster;

#[cfg(test)]
mod contract_tests {
    use super::*;

    crate::store_contract!({
        let pg = cluster::Cluster::start();
        let store = PgStore::connect(&pg.new_database()).await.unwrap();
        (pg, store)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;

    #[tokio::test]
    async fn replicas_starting_together_migrate_once() {
        let pg = cluster::Cluster::start();
        let url = pg.new_database();
        let (a, b, c) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url), PgStore::connect(&url));
        let (a, b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
        let db = cluster::database_of(&url);
        assert_eq!(pg.sql(db, "SELECT version, name FROM tandem_hub_migrations"), "1|shares and events");
        // Both see the one database.
        a.create(NewShare {
            id: "a1".into(),
            secret_hash: vec![1; 32],
            thread_id: "t".into(),
            title: None,
            created_at: 1,
            expires_at: None,
        })
        .await
        .unwrap();
        assert!(b.get("a1").await.unwrap().is_some());
        // A second start migrates nothing.
        drop(PgStore::connect(&url).await.unwrap());
        assert_eq!(pg.sql(db, "SELECT count(*) FROM tandem_hub_migrations"), "1");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let pg = cluster::Cluster::start();
        let url = pg.new_database();
        drop(PgStore::connect(&url).await.unwrap());
        pg.sql(cluster::database_of(&url), "INSERT INTO tandem_hub_migrations (version, name) VALUES (99, 'future')");
        let err = PgStore::connect(&url).await.err().expect("refused");
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, known: 1 }), "{err}");
    }

    /// Runs `f` off the runtime's thread, so connections notice what it does.
    async fn blocking(pg: &Arc<cluster::Cluster>, f: fn(&cluster::Cluster)) {
        let pg = Arc::clone(pg);
        tokio::task::spawn_blocking(move || f(&pg)).await.unwrap();
    }

    #[tokio::test]
    async fn a_stopped_database_is_unavailable_then_back() {
        let pg = Arc::new(cluster::Cluster::start());
        let url = pg.new_database();
        let store = PgStore::connect(&url).await.unwrap();
        contract::create_then_get(&store).await;
        blocking(&pg, cluster::Cluster::stop).await;
        let err = store.get("a1").await.expect_err("down");
        assert!(err.is_unavailable(), "{err:?}");
        let err = store.sync("a1", SyncBatch::default(), 2_000, 1 << 20).await.expect_err("down");
        assert!(err.is_unavailable(), "{err:?}");
        blocking(&pg, cluster::Cluster::start_again).await;
        assert!(store.get("a1").await.unwrap().is_some(), "reconnected");
    }

    #[tokio::test]
    async fn bad_urls_and_unreachable_databases_say_so() {
        assert!(parse_url("postgres://").unwrap_err().contains("host"));
        assert!(parse_url("postgres://h/db?sslmode=require").unwrap_err().contains("TLS"));
        assert!(parse_url("postgres://h:notaport/db").unwrap_err().contains("not a PostgreSQL URL"));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = PgStore::connect(&format!("postgres://u:hunter2@127.0.0.1:{port}/hub")).await.err().unwrap();
        assert!(err.is_unavailable(), "{err:?}");
        let said = err.to_string();
        assert!(said.contains(&format!("127.0.0.1:{port}/hub")) && !said.contains("hunter2"), "{said}");
    }
}
