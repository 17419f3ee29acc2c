//! The sync queue against a scripted hub that keeps seqs as a real one does
//! (skips what it has, refuses a gap with the seq it expects): only linked
//! threads go, failures are retried, a gap answer resends, a restart resumes
//! from `ackedSeq`, a deleted share stops its link, and a thread that is not
//! shared sends nothing but that. Assertions are on content and order; waits
//! are generous and never part of what is checked.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_protocol::hub::{CreateShare, CreatedShare, HubLinkParams, HubLinksParams, SyncItem};
use tandem_protocol::methods::{ThreadStartParams, ThreadUpdateParams};
use tandem_protocol::{ClientInfo, Thread};

use super::{HubApi, HubSync, LinkRecord, LinkStore, Refusal, Reply};
use crate::agent::EchoAgent;
use crate::engine::Engine;
use crate::paths::Home;

#[derive(Default)]
struct FakeState {
    /// Refusals answered first, one per sync.
    script: VecDeque<Refusal>,
    next_seq: u64,
    /// Stored events' seqs, in the order stored.
    stored: Vec<u64>,
    /// Every event seq received (refused or not).
    received: Vec<u64>,
    thread: Option<(Option<String>, bool)>,
    /// The threads shares were created for.
    created: Vec<String>,
}

#[derive(Default)]
struct FakeHub(Mutex<FakeState>);

impl FakeHub {
    fn new() -> Arc<FakeHub> {
        let hub = FakeHub::default();
        hub.lock().next_seq = 1;
        Arc::new(hub)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn apply(&self, data: Vec<SyncItem>) -> Result<(), Refusal> {
        let mut st = self.lock();
        let seqs: Vec<u64> = data
            .iter()
            .filter_map(|i| match i {
                SyncItem::Event { seq, event } => {
                    assert_eq!(event["seq"].as_u64(), Some(*seq), "the outer seq is the event's");
                    Some(*seq)
                }
                SyncItem::Thread { .. } => None,
            })
            .collect();
        st.received.extend(&seqs);
        if let Some(refusal) = st.script.pop_front() {
            return Err(refusal);
        }
        let mut next = st.next_seq;
        let mut new = Vec::new();
        for seq in seqs {
            if seq < next && new.is_empty() {
                continue;
            }
            if seq != next {
                return Err(Refusal::Gap(next));
            }
            new.push(seq);
            next += 1;
        }
        for item in data {
            if let SyncItem::Thread { title, shared } = item {
                st.thread = Some((title, shared));
            }
        }
        st.stored.extend(new);
        st.next_seq = next;
        Ok(())
    }
}

impl HubApi for FakeHub {
    fn create<'a>(&'a self, _hub: &'a str, req: &'a CreateShare) -> Reply<'a, CreatedShare> {
        self.lock().created.push(req.thread_id.clone());
        let created = CreatedShare {
            id: "fakeshare".into(),
            url: "http://hub.test/s/fakeshare".into(),
            secret: "s".into(),
            expires_at: None,
        };
        Box::pin(std::future::ready(Ok(created)))
    }

    fn sync<'a>(&'a self, _link: &'a LinkRecord, data: Vec<SyncItem>) -> Reply<'a, ()> {
        Box::pin(std::future::ready(self.apply(data)))
    }

    fn delete<'a>(&'a self, _link: &'a LinkRecord) -> Reply<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

struct Setup {
    _dir: tempfile::TempDir,
    home: Home,
    engine: Engine,
    hub: Arc<FakeHub>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let engine = Engine::in_memory(Arc::new(EchoAgent { delay: Duration::ZERO })).await.unwrap();
    Setup { _dir: dir, home, engine, hub: FakeHub::new() }
}

impl Setup {
    fn sync(&self) -> HubSync {
        HubSync::start_with(self.engine.clone(), self.home.clone(), self.hub.clone()).unwrap()
    }

    async fn thread(&self) -> Thread {
        self.engine.thread_start(ThreadStartParams::default(), &ClientInfo::anonymous()).await.unwrap()
    }

    /// Adds one event (a title change) to `thread`; its seq.
    async fn event(&self, thread: &str, title: &str) -> u64 {
        let p = ThreadUpdateParams { thread_id: thread.into(), title: Some(title.into()), shared: None };
        self.engine.thread_update(p).await.unwrap().last_seq
    }

    async fn share(&self, thread: &str, shared: bool) -> u64 {
        let p = ThreadUpdateParams { thread_id: thread.into(), title: None, shared: Some(shared) };
        self.engine.thread_update(p).await.unwrap().last_seq
    }

    fn stored(&self) -> Vec<u64> {
        self.hub.lock().stored.clone()
    }
}

async fn link(sync: &HubSync, thread: &str) {
    let p =
        HubLinkParams { thread_id: thread.into(), hub: Some("http://hub.test".into()), expire: None, no_redact: false };
    sync.link(p).await.unwrap();
}

#[tokio::test]
async fn only_linked_threads_sync_every_event_once_in_order() {
    let s = setup().await;
    let sync = s.sync();
    let linked = s.thread().await;
    let other = s.thread().await;
    link(&sync, &linked.id).await;
    let mut last = 1;
    for i in 0..5 {
        last = s.event(&linked.id, &format!("title {i}")).await;
        s.event(&other.id, "not linked").await;
    }
    until("every event on the hub", || s.stored().last() == Some(&last)).await;
    assert_eq!(s.stored(), (1..=last).collect::<Vec<_>>());
    assert_eq!(s.hub.lock().created, vec![linked.id.clone()], "one share, for the linked thread");
    assert_eq!(s.hub.lock().thread, Some((Some("title 4".into()), true)));
    until("acked saved", || {
        LinkStore::new(&s.home).load().unwrap().get(&linked.id).is_some_and(|r| r.acked_seq == last)
    })
    .await;
}

#[tokio::test]
async fn a_hub_that_is_down_is_retried_and_then_gets_everything_once() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    for _ in 0..3 {
        s.hub.lock().script.push_back(Refusal::Unavailable("hub down".into()));
    }
    link(&sync, &t.id).await;
    let last = s.event(&t.id, "while down").await;
    until("everything on the hub", || {
        let view = &sync.links(HubLinksParams::default()).unwrap().data[0];
        if view.state == "retrying" {
            assert_eq!(view.error.as_deref(), Some("hub down"));
            assert!(view.pending > 0, "{view:?}");
        }
        s.stored().last() == Some(&last)
    })
    .await;
    assert!(s.hub.lock().script.is_empty(), "all three failures were met");
    assert_eq!(s.stored(), (1..=last).collect::<Vec<_>>());
    until("synced", || sync.links(HubLinksParams::default()).unwrap().data[0].state == "synced").await;
}

#[tokio::test]
async fn a_gap_answer_resends_from_the_seq_the_hub_expects() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    link(&sync, &t.id).await;
    let first = s.event(&t.id, "one").await;
    until("first events", || s.stored().last() == Some(&first)).await;
    // The hub lost everything (restored from an old backup).
    {
        let mut st = s.hub.lock();
        st.next_seq = 1;
        st.stored.clear();
    }
    let last = s.event(&t.id, "two").await;
    until("everything again", || s.stored().last() == Some(&last)).await;
    assert_eq!(s.stored(), (1..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_restart_resumes_after_the_acked_seq() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    link(&sync, &t.id).await;
    let first = s.event(&t.id, "one").await;
    until("first events", || s.stored().last() == Some(&first)).await;
    until("acked saved", || LinkStore::new(&s.home).load().unwrap().get(&t.id).is_some_and(|r| r.acked_seq == first))
        .await;
    sync.stop_all();
    drop(sync);
    let last = s.event(&t.id, "while stopped").await;
    s.hub.lock().received.clear();
    let sync = s.sync();
    until("the rest", || s.stored().last() == Some(&last)).await;
    assert_eq!(s.stored(), (1..=last).collect::<Vec<_>>());
    assert_eq!(s.hub.lock().received, ((first + 1)..=last).collect::<Vec<_>>(), "nothing acked is sent again");
    drop(sync);
}

#[tokio::test]
async fn a_deleted_share_stops_its_link() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    s.hub.lock().script.push_back(Refusal::Deleted);
    link(&sync, &t.id).await;
    until("the link to stop", || sync.links(HubLinksParams::default()).unwrap().data[0].state == "deleted").await;
    until("the stop saved", || {
        LinkStore::new(&s.home).load().unwrap().get(&t.id).is_some_and(|r| r.stopped.as_deref() == Some("deleted"))
    })
    .await;
    assert!(s.stored().is_empty());
    // Linking again makes a new share.
    link(&sync, &t.id).await;
    assert_eq!(s.hub.lock().created.len(), 2);
    until("synced", || !s.stored().is_empty()).await;
}

#[tokio::test]
async fn a_thread_not_shared_sends_only_that() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    link(&sync, &t.id).await;
    until("the start", || s.stored() == [1]).await;
    let off = s.share(&t.id, false).await;
    let hidden = s.event(&t.id, "private").await;
    until("the hub told", || s.hub.lock().thread.as_ref().is_some_and(|(_, shared)| !shared)).await;
    assert_eq!(s.stored(), [1], "nothing while not shared");
    assert!(off < hidden);
    let on = s.share(&t.id, true).await;
    until("the rest", || s.stored().last() == Some(&on)).await;
    assert_eq!(s.stored(), (1..=on).collect::<Vec<_>>());
}
