//! Live fan-out across hub replicas on one PostgreSQL database: a replica's
//! pollers must see what another replica stored. One connection per replica
//! `LISTEN`s on [`CHANNEL`] (every stored sync, delete and purge `NOTIFY`s
//! the share's id when it commits) and each notification wakes that share's
//! pollers here, who then read what is new from the table.
//!
//! Nothing is lost when a notification is: pollers always read from the
//! table, never from the notification, and when the listening connection
//! drops (a database restart, a network blip) notifications sent meanwhile
//! are gone, so after every (re)connect — once `LISTEN` is in force — every
//! watched share is woken to catch up.

use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config};

use crate::store::postgres::{CHANNEL, describe};

/// The first wait before reconnecting; it doubles up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Idle time before the listening connection's TCP keepalives start.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Share `id`.
    Share(String),
    /// Possibly anything: notifications may have been missed.
    All,
}

/// Listens on `config`'s database until the task is dropped, telling
/// `on_change` of every change another replica (or this one) stored.
pub async fn follow(mut config: Config, on_change: impl Fn(Change) + Send + Sync + 'static) {
    // A connection that only listens sends nothing: TCP keepalives (set by
    // `parse_url`, probing after 30 s idle) are how it learns the database
    // host went away without closing it.
    config.keepalives(true).keepalives_idle(KEEPALIVE_IDLE);
    let on_change = std::sync::Arc::new(on_change);
    let mut retry = MIN_RETRY;
    let mut connected_once = false;
    loop {
        match listen(&config, &on_change).await {
            Ok(()) => {
                retry = MIN_RETRY;
                connected_once = true;
                tracing::warn!(db = %describe(&config), "lost the replica feed's connection; reconnecting");
            }
            Err(e) => {
                if connected_once {
                    tracing::debug!(error = %e, retry_in = ?retry, "replica feed cannot reconnect yet");
                } else {
                    tracing::warn!(error = %e, retry_in = ?retry, "replica feed cannot connect yet");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// One connection's life: LISTEN, wake everything, then relay notifications
/// until the connection ends (`Ok`) or cannot be set up (`Err`).
async fn listen<F: Fn(Change) + Send + Sync + 'static>(
    config: &Config,
    on_change: &std::sync::Arc<F>,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    // The connection is driven by polling its messages; that also carries
    // the LISTEN below to the server.
    let relay = {
        let on_change = std::sync::Arc::clone(on_change);
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => on_change(Change::Share(n.payload().to_owned())),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "replica feed connection failed");
                        return;
                    }
                    None => return,
                }
            }
        })
    };
    let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(e) = listening {
        relay.abort();
        let _ = relay.await;
        return Err(e.to_string());
    }
    tracing::info!(db = %describe(config), "replica feed listening");
    on_change(Change::All);
    let _ = relay.await;
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::store::postgres::cluster::Cluster;
    use crate::store::{HubStore, NewShare, PgStore, StoredEvent, SyncBatch};

    fn share(id: &str) -> NewShare {
        NewShare {
            id: id.into(),
            secret_hash: vec![1; 32],
            thread_id: "t".into(),
            title: None,
            created_at: 1,
            expires_at: None,
        }
    }

    fn one(seq: u64) -> SyncBatch {
        SyncBatch { thread: None, events: vec![StoredEvent { seq, json: "{}".into() }] }
    }

    /// Replica A's feed hears what replica B stores, and after the database
    /// restarts it says `All` before anything else, so a missed notification
    /// costs nothing.
    #[tokio::test]
    async fn another_replicas_syncs_are_heard_and_a_restart_wakes_everything() {
        let pg = std::sync::Arc::new(Cluster::start());
        let url = pg.new_database();
        let a = PgStore::connect(&url).await.unwrap();
        let b = PgStore::connect(&url).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let feed = tokio::spawn(follow(a.config().clone(), move |c| {
            let _ = tx.send(c);
        }));
        assert_eq!(rx.recv().await, Some(Change::All), "connected");
        b.create(share("s1")).await.unwrap();
        b.sync("s1", one(1), 2, 1 << 20).await.unwrap();
        assert_eq!(rx.recv().await, Some(Change::Share("s1".into())));
        // A refused sync stores nothing and says nothing.
        b.sync("s1", one(5), 2, 1 << 20).await.unwrap();
        b.delete("s1").await.unwrap();
        assert_eq!(rx.recv().await, Some(Change::Share("s1".into())), "the delete, not the gap");

        let restart = std::sync::Arc::clone(&pg);
        tokio::task::spawn_blocking(move || {
            restart.stop();
            restart.start_again();
        })
        .await
        .unwrap();
        assert_eq!(rx.recv().await, Some(Change::All), "reconnected");
        b.create(share("s2")).await.unwrap();
        b.sync("s2", one(1), 2, 1 << 20).await.unwrap();
        assert_eq!(rx.recv().await, Some(Change::Share("s2".into())));
        feed.abort();
    }
}
