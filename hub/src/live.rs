//! Who is watching which share: one `watch` channel per share with pollers,
//! bumped after every stored sync or a delete. It carries no data — a poller
//! woken reads what is new from the store — so a missed bump loses nothing
//! and a slow poller costs only itself. With several replicas on one
//! PostgreSQL database, [`crate::replicas`] also feeds these bumps from
//! LISTEN/NOTIFY, and bumps every share after its listener (re)connects.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The shares that have pollers, and how to wake them.
#[derive(Default)]
pub struct Live {
    shares: Mutex<HashMap<String, watch::Sender<()>>>,
}

impl Live {
    /// A receiver that is told whenever share `id` changes.
    pub fn watch(&self, id: &str) -> watch::Receiver<()> {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        shares.retain(|_, tx| tx.receiver_count() > 0);
        shares.entry(id.to_owned()).or_insert_with(|| watch::channel(()).0).subscribe()
    }

    /// Wakes share `id`'s pollers.
    pub fn changed(&self, id: &str) {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = shares.get(id) {
            if tx.receiver_count() == 0 {
                shares.remove(id);
            } else {
                tx.send_replace(());
            }
        }
    }

    /// Wakes every poller (their next read catches up on whatever was missed).
    pub fn changed_all(&self) {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        shares.retain(|_, tx| tx.receiver_count() > 0);
        for tx in shares.values() {
            tx.send_replace(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_all_wakes_every_watched_share() {
        let live = Live::default();
        let mut a = live.watch("a");
        let b = live.watch("b");
        assert!(!a.has_changed().unwrap());
        live.changed("a");
        assert!(a.has_changed().unwrap() && !b.has_changed().unwrap());
        a.borrow_and_update();
        live.changed_all();
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
    }
}
