//! The contract every [`HubStore`] keeps, as one suite of cases run against
//! each backend (`store_contract!(make)` in the backend's tests). A backend
//! that passes it can hold the hub's shares; SQLite, memory and a real
//! PostgreSQL (started by the test, `tests/common/pg.rs`) all run it.

use super::{HubStore, NewShare, StoreError, StoredEvent, SyncBatch, SyncOutcome};

/// Generates one `#[tokio::test]` per contract case for the store that `$make`
/// builds: `$make` is an expression giving `(guard, store)`, where `guard`
/// (a temp dir, a database server…) lives as long as the test.
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::store_contract!(@cases $make;
            create_then_get, ids_are_unique, syncs_append_in_order, resends_are_skipped,
            a_gap_stores_nothing, the_last_thread_item_wins, the_byte_budget_stores_nothing,
            unknown_shares_are_missing, delete_removes_everything, expired_shares_are_refused_and_purged,
            concurrent_syncs_neither_gap_nor_repeat);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (_guard, store) = $make;
                $crate::store::contract::$case(&store).await;
            }
        )*
    };
}

fn share(id: &str, expires_at: Option<i64>) -> NewShare {
    NewShare {
        id: id.into(),
        secret_hash: vec![7; 32],
        thread_id: "0190c0de-0000-7000-8000-000000000001".into(),
        title: Some("first".into()),
        created_at: 1_000,
        expires_at,
    }
}

fn events(seqs: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
    seqs.map(|seq| StoredEvent { seq, json: format!(r#"{{"seq":{seq},"type":"item/agentMessage/delta"}}"#) }).collect()
}

fn batch(seqs: std::ops::RangeInclusive<u64>) -> SyncBatch {
    SyncBatch { thread: None, events: events(seqs) }
}

const BIG: u64 = 1 << 30;

async fn seqs<S: HubStore>(store: &S, id: &str) -> Vec<u64> {
    store.events(id, 1, 10_000).await.unwrap().iter().map(|e| e.seq).collect()
}

pub async fn create_then_get<S: HubStore>(store: &S) {
    store.create(share("a1", Some(9_000))).await.unwrap();
    let got = store.get("a1").await.unwrap().expect("stored");
    assert_eq!(got.secret_hash, vec![7; 32]);
    assert_eq!(got.thread_id, "0190c0de-0000-7000-8000-000000000001");
    assert_eq!(got.title.as_deref(), Some("first"));
    assert!(got.shared);
    assert_eq!(
        (got.created_at, got.expires_at, got.next_seq, got.bytes, got.expired),
        (1_000, Some(9_000), 1, 0, false)
    );
    assert_eq!(store.get("a2").await.unwrap(), None);
}

pub async fn ids_are_unique<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    assert!(matches!(store.create(share("a1", None)).await, Err(StoreError::Exists(id)) if id == "a1"));
}

pub async fn syncs_append_in_order<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    store.create(share("b2", None)).await.unwrap();
    assert_eq!(
        store.sync("a1", batch(1..=3), 2_000, BIG).await.unwrap(),
        SyncOutcome::Stored { next_seq: 4, added: 3 }
    );
    assert_eq!(
        store.sync("a1", batch(4..=5), 2_000, BIG).await.unwrap(),
        SyncOutcome::Stored { next_seq: 6, added: 2 }
    );
    assert_eq!(seqs(store, "a1").await, [1, 2, 3, 4, 5]);
    let page = store.events("a1", 2, 2).await.unwrap();
    assert_eq!(page, events(2..=3));
    assert!(store.events("a1", 6, 10).await.unwrap().is_empty());
    assert!(seqs(store, "b2").await.is_empty(), "shares do not mix");
    let got = store.get("a1").await.unwrap().unwrap();
    assert_eq!(got.next_seq, 6);
    assert_eq!(got.bytes, events(1..=5).iter().map(|e| e.json.len() as u64).sum::<u64>());
}

pub async fn resends_are_skipped<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    store.sync("a1", batch(1..=3), 2_000, BIG).await.unwrap();
    assert_eq!(
        store.sync("a1", batch(2..=5), 2_000, BIG).await.unwrap(),
        SyncOutcome::Stored { next_seq: 6, added: 2 }
    );
    assert_eq!(
        store.sync("a1", batch(1..=5), 2_000, BIG).await.unwrap(),
        SyncOutcome::Stored { next_seq: 6, added: 0 }
    );
    assert_eq!(seqs(store, "a1").await, [1, 2, 3, 4, 5]);
}

pub async fn a_gap_stores_nothing<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    store.sync("a1", batch(1..=2), 2_000, BIG).await.unwrap();
    let mut b = batch(4..=5);
    b.thread = Some((Some("changed".into()), false));
    assert_eq!(store.sync("a1", b, 2_000, BIG).await.unwrap(), SyncOutcome::Gap { expected_seq: 3 });
    // A hole inside a batch is a gap too, and its good start is not kept.
    let mut holed = batch(3..=3);
    holed.events.extend(events(5..=5));
    assert_eq!(store.sync("a1", holed, 2_000, BIG).await.unwrap(), SyncOutcome::Gap { expected_seq: 4 });
    assert_eq!(seqs(store, "a1").await, [1, 2]);
    let got = store.get("a1").await.unwrap().unwrap();
    assert_eq!((got.title.as_deref(), got.shared, got.next_seq), (Some("first"), true, 3));
}

pub async fn the_last_thread_item_wins<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    let b = SyncBatch { thread: Some((Some("second".into()), false)), events: vec![] };
    assert_eq!(store.sync("a1", b, 2_000, BIG).await.unwrap(), SyncOutcome::Stored { next_seq: 1, added: 0 });
    let got = store.get("a1").await.unwrap().unwrap();
    assert_eq!((got.title.as_deref(), got.shared), (Some("second"), false));
    let b = SyncBatch { thread: Some((None, true)), events: events(1..=1) };
    store.sync("a1", b, 2_000, BIG).await.unwrap();
    let got = store.get("a1").await.unwrap().unwrap();
    assert_eq!((got.title.as_deref(), got.shared), (None, true));
}

pub async fn the_byte_budget_stores_nothing<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    let one = events(1..=1)[0].json.len() as u64;
    store.sync("a1", batch(1..=2), 2_000, 3 * one).await.unwrap();
    assert_eq!(store.sync("a1", batch(3..=4), 2_000, 3 * one).await.unwrap(), SyncOutcome::TooBig { limit: 3 * one });
    assert_eq!(seqs(store, "a1").await, [1, 2]);
    // What fits still goes in.
    assert_eq!(
        store.sync("a1", batch(3..=3), 2_000, 3 * one).await.unwrap(),
        SyncOutcome::Stored { next_seq: 4, added: 1 }
    );
}

pub async fn unknown_shares_are_missing<S: HubStore>(store: &S) {
    assert_eq!(store.sync("zz", batch(1..=1), 2_000, BIG).await.unwrap(), SyncOutcome::Missing);
    assert!(store.events("zz", 1, 10).await.unwrap().is_empty());
    assert!(!store.delete("zz").await.unwrap());
    assert_eq!(store.get("zz").await.unwrap(), None);
}

pub async fn delete_removes_everything<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    store.create(share("b2", None)).await.unwrap();
    store.sync("a1", batch(1..=3), 2_000, BIG).await.unwrap();
    store.sync("b2", batch(1..=1), 2_000, BIG).await.unwrap();
    assert!(store.delete("a1").await.unwrap());
    assert_eq!(store.get("a1").await.unwrap(), None);
    assert!(seqs(store, "a1").await.is_empty());
    assert_eq!(store.sync("a1", batch(4..=4), 2_000, BIG).await.unwrap(), SyncOutcome::Missing);
    assert!(!store.delete("a1").await.unwrap());
    assert_eq!(seqs(store, "b2").await, [1], "other shares stay");
}

pub async fn expired_shares_are_refused_and_purged<S: HubStore>(store: &S) {
    store.create(share("a1", Some(5_000))).await.unwrap();
    store.create(share("b2", None)).await.unwrap();
    store.create(share("c3", Some(9_000))).await.unwrap();
    store.sync("a1", batch(1..=2), 4_999, BIG).await.unwrap();
    store.sync("b2", batch(1..=1), 4_999, BIG).await.unwrap();
    assert_eq!(store.sync("a1", batch(3..=3), 5_000, BIG).await.unwrap(), SyncOutcome::Expired);
    assert_eq!(store.purge_expired(5_000).await.unwrap(), 1);
    let gone = store.get("a1").await.unwrap().expect("a tombstone stays");
    assert!(gone.expired);
    assert_eq!((gone.title, gone.secret_hash, gone.bytes), (None, vec![], 0));
    assert!(seqs(store, "a1").await.is_empty());
    assert_eq!(store.sync("a1", batch(3..=3), 5_001, BIG).await.unwrap(), SyncOutcome::Expired);
    assert_eq!(store.purge_expired(5_000).await.unwrap(), 0, "purged once");
    assert_eq!(seqs(store, "b2").await, [1], "shares without expiry stay");
    assert!(!store.get("c3").await.unwrap().unwrap().expired, "later expiries stay");
}

/// Two senders (a retry racing its original, or two replicas) syncing the
/// same events at once: each is stored once, in order.
pub async fn concurrent_syncs_neither_gap_nor_repeat<S: HubStore>(store: &S) {
    store.create(share("a1", None)).await.unwrap();
    let (a, b) = tokio::join!(store.sync("a1", batch(1..=50), 2_000, BIG), store.sync("a1", batch(1..=60), 2_000, BIG));
    let added = |o: SyncOutcome| match o {
        SyncOutcome::Stored { added, .. } => added,
        other => panic!("{other:?}"),
    };
    assert_eq!(added(a.unwrap()) + added(b.unwrap()), 60);
    let (c, d) =
        tokio::join!(store.sync("a1", batch(61..=70), 2_000, BIG), store.sync("a1", batch(65..=80), 2_000, BIG));
    // One of them may come first and leave the other a gap, never a hole.
    for o in [c.unwrap(), d.unwrap()] {
        assert!(matches!(o, SyncOutcome::Stored { .. } | SyncOutcome::Gap { .. }), "{o:?}");
    }
    let got = seqs(store, "a1").await;
    assert_eq!(got, (1..=*got.last().unwrap()).collect::<Vec<_>>());
    assert!(got.len() >= 70);
}
