//! The memory backend: everything in one map behind a mutex, gone when the
//! hub stops. For tests and throwaway hubs (`--database memory`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Check, HubStore, NewShare, Share, StoreError, StoredEvent, SyncBatch, SyncOutcome, check_sync};

/// Shares kept in memory.
#[derive(Default)]
pub struct MemoryStore {
    shares: Mutex<BTreeMap<String, (Share, Vec<StoredEvent>)>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Share, Vec<StoredEvent>)>> {
        self.shares.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HubStore for MemoryStore {
    async fn create(&self, s: NewShare) -> Result<(), StoreError> {
        let mut shares = self.lock();
        if shares.contains_key(&s.id) {
            return Err(StoreError::Exists(s.id));
        }
        let share = Share {
            id: s.id.clone(),
            secret_hash: s.secret_hash,
            thread_id: s.thread_id,
            title: s.title,
            shared: true,
            created_at: s.created_at,
            expires_at: s.expires_at,
            next_seq: 1,
            bytes: 0,
            expired: false,
        };
        shares.insert(s.id, (share, Vec::new()));
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Share>, StoreError> {
        Ok(self.lock().get(id).map(|(s, _)| s.clone()))
    }

    async fn sync(&self, id: &str, batch: SyncBatch, now: i64, max_bytes: u64) -> Result<SyncOutcome, StoreError> {
        let mut shares = self.lock();
        let entry = shares.get_mut(id);
        match check_sync(entry.as_ref().map(|(s, _)| s), &batch, now, max_bytes) {
            Check::Refuse(why) => Ok(why),
            Check::Store { new, next_seq, bytes } => {
                let (share, events) = entry.expect("checked");
                if let Some((title, shared)) = batch.thread {
                    share.title = title;
                    share.shared = shared;
                }
                let added = new.len();
                events.extend(new.into_iter().map(|i| batch.events[i].clone()));
                share.next_seq = next_seq;
                share.bytes = bytes;
                Ok(SyncOutcome::Stored { next_seq, added })
            }
        }
    }

    async fn events(&self, id: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let shares = self.lock();
        let Some((_, events)) = shares.get(id) else { return Ok(Vec::new()) };
        // Seqs start at 1 and have no holes, so the index is seq - 1.
        let start = usize::try_from(from_seq.saturating_sub(1)).unwrap_or(usize::MAX).min(events.len());
        Ok(events[start..].iter().take(limit).cloned().collect())
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().remove(id).is_some())
    }

    async fn purge_expired(&self, now: i64) -> Result<usize, StoreError> {
        let mut purged = 0;
        for (share, events) in self.lock().values_mut() {
            if !share.expired && super::is_expired(share, now) {
                share.expired = true;
                share.title = None;
                share.secret_hash.clear();
                share.bytes = 0;
                events.clear();
                purged += 1;
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;

    crate::store_contract!(((), MemoryStore::new()));
}
