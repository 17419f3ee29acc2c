//! The sync queue against a scripted hub that keeps seqs as a real one does
//! (skips what it has, refuses a gap with the seq it expects): only linked
//! threads go, failures are retried, a gap answer resends, a restart resumes
//! from `ackedSeq`, a deleted share stops its link, and a thread that is not
//! shared sends nothing but that; and nothing in a batch the hub will not
//! take stops the rest (an event too big is cut, a batch too big is halved,
//! an event refused alone goes as a placeholder). Assertions are on content and order; waits
//! are generous and never part of what is checked.
//!
//! The `clock_` tests run the queue on a paused clock that only `advance`
//! moves ([`hold_clock`]), and wait on events (the hub's requests, the
//! queue's [`Phase`]), never on real time: the debounce window, last write
//! wins, deltas coalesced, the backoff's delays, a restart, and a key
//! streamed across two batches.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use std::collections::BTreeMap;

use tandem_protocol::hub::{
    CreateShare, CreatedShare, HubLinkParams, HubLinksParams, MAX_REQUEST_BYTES, SyncItem, SyncRequest, WITHHELD_EVENT,
};
use tandem_protocol::methods::{ThreadEventsParams, ThreadStartParams, ThreadUpdateParams, TurnStartParams};
use tandem_protocol::{AgentInfo, ClientInfo, Position, Thread};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, advance};

use super::{DEBOUNCE, HubApi, HubSync, LinkRecord, LinkStore, Phase, Refusal, Reply};
use tandem_engine::Engine;
use tandem_engine::agent::{Agent, BoxFuture, Cancel, DeltaSink, EchoAgent, Outcome, TurnInput};
use tandem_home::Home;

/// One sync request, as the hub got it.
struct Request {
    /// On the (paused) clock.
    at: Instant,
    /// The thread items of the request.
    threads: Vec<(Option<String>, bool)>,
    events: Vec<(u64, Value)>,
}

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
    /// Every sync request, in order.
    requests: Vec<Request>,
    /// Stored events, by seq.
    kept: BTreeMap<u64, Value>,
    /// The most bytes of a request body taken, as a real hub's (413 past it).
    body_limit: usize,
    /// An event refused (422) wherever it comes, unless as a placeholder.
    refuse_seq: Option<u64>,
    /// Refuse every request as if the share were full.
    share_full: bool,
}

struct FakeHub {
    state: Mutex<FakeState>,
    /// How many sync requests came.
    calls: watch::Sender<usize>,
}

impl FakeHub {
    fn new() -> Arc<FakeHub> {
        let hub = FakeHub { state: Mutex::new(FakeState::default()), calls: watch::Sender::new(0) };
        hub.lock().next_seq = 1;
        hub.lock().body_limit = MAX_REQUEST_BYTES;
        Arc::new(hub)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Waits for the `n`th sync request (refused or not).
    async fn requests(&self, n: usize) {
        self.calls.subscribe().wait_for(|&c| c >= n).await.unwrap();
    }

    fn calls(&self) -> usize {
        *self.calls.borrow()
    }

    fn apply(&self, data: Vec<SyncItem>) -> Result<(), Refusal> {
        let result = self.store(data);
        self.calls.send_modify(|c| *c += 1);
        result
    }

    fn store(&self, data: Vec<SyncItem>) -> Result<(), Refusal> {
        let mut st = self.lock();
        let mut request = Request { at: Instant::now(), threads: Vec::new(), events: Vec::new() };
        for item in &data {
            match item {
                SyncItem::Thread { title, shared } => request.threads.push((title.clone(), *shared)),
                SyncItem::Event { seq, event } => request.events.push((*seq, event.clone())),
            }
        }
        st.requests.push(request);
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
        let body = serde_json::to_vec(&SyncRequest { secret: "s".into(), data: data.clone() }).unwrap().len();
        if body > st.body_limit {
            return Err(Refusal::Full("HTTP 413: the request is too large".into()));
        }
        if st.share_full {
            return Err(Refusal::Full("a share may hold at most 10 bytes of events".into()));
        }
        if let Some(bad) = st.refuse_seq
            && data
                .iter()
                .any(|i| matches!(i, SyncItem::Event { seq, event } if *seq == bad && event["type"] != WITHHELD_EVENT))
        {
            return Err(Refusal::Rejected(format!("event {bad} is not to my taste")));
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
            match item {
                SyncItem::Thread { title, shared } => st.thread = Some((title, shared)),
                SyncItem::Event { seq, event } if new.contains(&seq) => {
                    st.kept.insert(seq, event);
                }
                SyncItem::Event { .. } => {}
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
    setup_with(Arc::new(EchoAgent { delay: Duration::ZERO })).await
}

async fn setup_with(agent: Arc<dyn Agent>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let engine = Engine::in_memory(agent).await.unwrap();
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

/// Keeps a paused clock where it is until dropped. Tokio moves a paused clock
/// on by itself whenever the runtime has nothing to do, and waiting for the
/// log's writer thread (every commit) is such a time: a debounce could end
/// early. It does not while a blocking task runs, so one waits here, and time
/// moves only by `advance`.
struct ClockHold {
    _release: std::sync::mpsc::Sender<()>,
}

fn hold_clock() -> ClockHold {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    ClockHold { _release: tx }
}

/// Lets every task that is ready run (on the test's one thread).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

const MS: Duration = Duration::from_millis(1);

impl Setup {
    /// Waits until the queue of `thread` is in `phase`.
    async fn phase(&self, sync: &HubSync, thread: &str, phase: Phase) {
        let mut rx = sync.phase(thread).expect("a link");
        rx.wait_for(|p| *p == phase).await.unwrap();
    }

    /// Waits until the thread's log has everything up to `seq`.
    async fn committed(&self, thread: &str, seq: u64) {
        while self.engine.committed_seq(thread).unwrap() < seq {
            self.engine.wait_committed_past(thread, self.engine.committed_seq(thread).unwrap()).await.unwrap();
        }
    }

    /// Starts a turn of the step agent and waits until its message has
    /// begun (`item/started`): each step then adds one event. The last seq.
    async fn turn(&self, thread: &str) -> u64 {
        let p = TurnStartParams { thread_id: thread.into(), input: "go".into(), client: None };
        self.engine.turn_start(p, &ClientInfo::anonymous()).await.unwrap();
        self.logged(thread, |e| e["type"] == "item/started").await
    }

    /// Waits until the thread's last event satisfies `done`; its seq.
    async fn logged(&self, thread: &str, done: impl Fn(&Value) -> bool) -> u64 {
        loop {
            let seen = self.engine.committed_seq(thread).unwrap();
            if let Some(last) = self.log(thread).await.last().filter(|e| done(e)) {
                return last["seq"].as_u64().unwrap();
            }
            self.engine.wait_committed_past(thread, seen).await.unwrap();
        }
    }

    /// Every event of `thread`.
    async fn log(&self, thread: &str) -> Vec<Value> {
        let p = ThreadEventsParams { thread_id: thread.into(), from: None, limit: Some(1000) };
        let page = self.engine.thread_events(p).await.unwrap();
        page.events.iter().map(|e| serde_json::from_str(e.get()).unwrap()).collect()
    }
}

fn seqs(events: &[(u64, Value)]) -> Vec<u64> {
    events.iter().map(|e| e.0).collect()
}

/// An agent that streams what the test sends it, one delta per message, and
/// ends the turn when the test sends `None`.
struct StepAgent(tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<String>>>);

impl Agent for StepAgent {
    fn info(&self) -> AgentInfo {
        AgentInfo { kind: "steps".into(), model: None }
    }

    fn run<'a>(&'a self, _input: TurnInput, out: &'a mut dyn DeltaSink, _cancel: Cancel) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut steps = self.0.lock().await;
            while let Some(Some(text)) = steps.recv().await {
                out.delta(&text);
            }
            Outcome::Completed
        })
    }
}

/// A setup whose agent streams the steps sent on the returned channel.
async fn stepped() -> (Setup, mpsc::UnboundedSender<Option<String>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (setup_with(Arc::new(StepAgent(tokio::sync::Mutex::new(rx)))).await, tx)
}

/// Links `thread` and waits until its first sync is done and the queue idle.
async fn linked_and_idle(s: &Setup, sync: &HubSync, thread: &str) {
    link(sync, thread).await;
    s.hub.requests(1).await;
    s.phase(sync, thread, Phase::Idle).await;
}

/// The clock held still, the sync started, and a new thread linked with its
/// first sync done: where most clock tests begin.
async fn linked_on_held_clock(s: &Setup) -> (ClockHold, HubSync, Thread) {
    let hold = hold_clock();
    let sync = s.sync();
    let t = s.thread().await;
    linked_and_idle(s, &sync, &t.id).await;
    (hold, sync, t)
}

#[tokio::test(start_paused = true)]
async fn clock_events_in_the_window_go_as_one_batch_and_none_before() {
    let s = setup().await;
    let (_hold, sync, t) = linked_on_held_clock(&s).await;
    let t0 = Instant::now();
    assert_eq!(s.hub.lock().requests[0].at, t0, "the first sync goes at once");

    let first = s.event(&t.id, "one").await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    advance(400 * MS).await;
    s.event(&t.id, "two").await;
    advance(599 * MS).await;
    let last = s.event(&t.id, "three").await;
    settle().await;
    assert_eq!(s.hub.calls(), 1, "nothing leaves before the window closes");
    advance(MS).await;
    s.hub.requests(2).await;
    {
        let hub = s.hub.lock();
        let batch = &hub.requests[1];
        assert_eq!(batch.at, t0 + DEBOUNCE);
        assert_eq!(seqs(&batch.events), (first..=last).collect::<Vec<_>>(), "one batch, every event");
    }

    // The next event opens a new window, from when it came.
    s.phase(&sync, &t.id, Phase::Idle).await;
    advance(5000 * MS).await;
    let next = s.event(&t.id, "four").await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    advance(DEBOUNCE - MS).await;
    settle().await;
    assert_eq!(s.hub.calls(), 2);
    advance(MS).await;
    s.hub.requests(3).await;
    let hub = s.hub.lock();
    assert_eq!(hub.requests[2].at, t0 + DEBOUNCE + 5000 * MS + DEBOUNCE);
    assert_eq!(seqs(&hub.requests[2].events), [next]);
    assert_eq!(hub.stored, (1..=next).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn clock_the_last_write_of_a_window_wins() {
    let s = setup().await;
    let (_hold, sync, t) = linked_on_held_clock(&s).await;
    let first = s.event(&t.id, "draft").await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    s.share(&t.id, false).await;
    s.event(&t.id, "better").await;
    s.share(&t.id, true).await;
    let last = s.event(&t.id, "final").await;
    advance(DEBOUNCE).await;
    s.hub.requests(2).await;
    {
        let hub = s.hub.lock();
        let batch = &hub.requests[1];
        assert_eq!(batch.threads, [(Some("final".to_owned()), true)], "one thread item: the last title and flag");
        assert_eq!(seqs(&batch.events), (first..=last).collect::<Vec<_>>(), "every change is still an event");
        assert_eq!(hub.thread, Some((Some("final".into()), true)));
    }

    // Ending the window unshared: the hub hears that, and no events.
    s.phase(&sync, &t.id, Phase::Idle).await;
    s.event(&t.id, "secret plans").await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    s.share(&t.id, false).await;
    advance(DEBOUNCE).await;
    s.hub.requests(3).await;
    let hub = s.hub.lock();
    assert_eq!(hub.requests[2].threads, [(Some("secret plans".to_owned()), false)]);
    assert!(hub.requests[2].events.is_empty());
    assert_eq!(hub.thread, Some((Some("secret plans".into()), false)));
}

#[tokio::test(start_paused = true)]
async fn clock_only_linked_threads_sync() {
    let s = setup().await;
    let _hold = hold_clock();
    let sync = s.sync();
    let linked = s.thread().await;
    let other = s.thread().await;
    linked_and_idle(&s, &sync, &linked.id).await;
    for i in 0..3 {
        s.event(&other.id, &format!("other {i}")).await;
    }
    settle().await;
    advance(10 * DEBOUNCE).await;
    settle().await;
    assert_eq!(s.hub.calls(), 1, "events of a thread not linked wake nothing");
    let last = s.event(&linked.id, "mine").await;
    s.phase(&sync, &linked.id, Phase::Gathering).await;
    advance(DEBOUNCE).await;
    s.hub.requests(2).await;
    let hub = s.hub.lock();
    assert_eq!(hub.created, std::slice::from_ref(&linked.id));
    let sent: Vec<&Value> = hub.requests.iter().flat_map(|r| r.events.iter().map(|e| &e.1)).collect();
    assert!(sent.iter().all(|e| e["threadId"] == linked.id.as_str()), "{sent:?}");
    assert_eq!(hub.stored, (1..=last).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn clock_deltas_of_a_batch_are_coalesced_and_every_seq_goes_once() {
    let (s, steps) = stepped().await;
    let (_hold, sync, t) = linked_on_held_clock(&s).await;
    let mut seen = s.turn(&t.id).await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    for piece in ["Hel", "lo ", "wor", "ld, ", "all "] {
        steps.send(Some(piece.into())).unwrap();
        seen += 1;
        s.committed(&t.id, seen).await;
    }
    advance(DEBOUNCE).await;
    s.hub.requests(2).await;
    s.phase(&sync, &t.id, Phase::Idle).await;
    steps.send(Some("of you".into())).unwrap();
    steps.send(None).unwrap();
    seen = s.logged(&t.id, |e| e["type"] == "turn/completed").await;
    let log = s.log(&t.id).await;
    // The window opened when the queue woke (which may come after the log
    // shows the commit): only then does the clock move.
    s.phase(&sync, &t.id, Phase::Gathering).await;
    advance(DEBOUNCE).await;
    s.hub.requests(3).await;
    let hub = s.hub.lock();
    let texts = |r: &Request| -> Vec<String> {
        r.events.iter().filter_map(|e| e.1["delta"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(texts(&hub.requests[1]), ["Hello world, all ", "", "", "", ""], "one delta carries the batch's text");
    assert_eq!(texts(&hub.requests[2]), ["of you"]);
    let all: Vec<u64> = hub.requests.iter().flat_map(|r| seqs(&r.events)).collect();
    assert_eq!(all, (1..=seen).collect::<Vec<_>>(), "every seq once, in order");
    assert_eq!(log.len() as u64, seen);
    let completed = log.iter().find(|e| e["type"] == "item/completed").unwrap();
    assert_eq!(completed["item"]["text"], "Hello world, all of you");
}

#[tokio::test(start_paused = true)]
async fn clock_retries_back_off_doubling_to_a_cap() {
    let s = setup().await;
    let _hold = hold_clock();
    let sync = s.sync();
    let t = s.thread().await;
    const FAILURES: usize = 9;
    for _ in 0..FAILURES {
        s.hub.lock().script.push_back(Refusal::Unavailable("hub down".into()));
    }
    link(&sync, &t.id).await;
    let t0 = Instant::now();
    for n in 1..=FAILURES {
        s.hub.requests(n).await;
        let mut phase = sync.phase(&t.id).unwrap();
        let wait = match *phase
            .wait_for(|p| matches!(p, Phase::Retrying { failures, .. } if *failures as usize == n))
            .await
            .unwrap()
        {
            Phase::Retrying { wait, .. } => wait,
            other => panic!("{other:?}"),
        };
        advance(wait - MS).await;
        settle().await;
        assert_eq!(s.hub.calls(), n, "no attempt before the backoff is over");
        advance(MS).await;
    }
    s.hub.requests(FAILURES + 1).await;
    s.phase(&sync, &t.id, Phase::Idle).await;
    let hub = s.hub.lock();
    let gaps: Vec<u64> = hub.requests.windows(2).map(|w| (w[1].at - w[0].at).as_millis() as u64).collect();
    assert_eq!(gaps, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert_eq!(hub.requests[0].at, t0);
    assert_eq!(hub.stored, [1], "then it went, once");
}

#[tokio::test(start_paused = true)]
async fn clock_a_restart_resumes_after_the_saved_acked_seq() {
    let s = setup().await;
    let (_hold, sync, t) = linked_on_held_clock(&s).await;
    let acked = s.event(&t.id, "before").await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    advance(DEBOUNCE).await;
    s.hub.requests(2).await;
    s.phase(&sync, &t.id, Phase::Idle).await;
    assert_eq!(LinkStore::new(&s.home).load().unwrap()[&t.id].acked_seq, acked, "saved before idle");
    sync.stop_all();
    drop(sync);

    let mut last = acked;
    for i in 0..3 {
        last = s.event(&t.id, &format!("while stopped {i}")).await;
    }
    let sync = s.sync();
    s.hub.requests(3).await;
    s.phase(&sync, &t.id, Phase::Idle).await;
    let hub = s.hub.lock();
    assert_eq!(
        seqs(&hub.requests[2].events),
        ((acked + 1)..=last).collect::<Vec<_>>(),
        "from the acked seq on, at once"
    );
    assert_eq!(hub.stored, (1..=last).collect::<Vec<_>>());
    assert_eq!(LinkStore::new(&s.home).load().unwrap()[&t.id].acked_seq, last);
}

#[tokio::test(start_paused = true)]
async fn clock_a_key_streamed_across_two_batches_is_never_sent() {
    let (s, steps) = stepped().await;
    let (_hold, sync, t) = linked_on_held_clock(&s).await;
    let started = s.turn(&t.id).await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    steps.send(Some("before the key. ".into())).unwrap();
    let safe = started + 1;
    s.committed(&t.id, safe).await;
    steps.send(Some("deploy with AKIAIOSF".into())).unwrap();
    s.committed(&t.id, safe + 1).await;
    advance(DEBOUNCE).await;
    s.hub.requests(2).await;
    s.phase(&sync, &t.id, Phase::Idle).await;
    {
        let hub = s.hub.lock();
        let batch = &hub.requests[1];
        assert_eq!(batch.events.last().map(|e| e.0), Some(safe), "the half key waits");
        assert_eq!(batch.events.last().unwrap().1["delta"], "before the key. ");
        assert_eq!(sync.record(&t.id).unwrap().acked_seq, safe);
    }
    // Nothing new: the queue waits for more instead of sending again.
    advance(10 * DEBOUNCE).await;
    settle().await;
    assert_eq!(s.hub.calls(), 2);

    steps.send(Some("ODNN7EXAMPLE now".into())).unwrap();
    steps.send(None).unwrap();
    let last = s.logged(&t.id, |e| e["type"] == "turn/completed").await;
    s.phase(&sync, &t.id, Phase::Gathering).await;
    advance(DEBOUNCE).await;
    s.hub.requests(3).await;
    let hub = s.hub.lock();
    let sent = serde_json::to_string(&hub.requests.iter().map(|r| &r.events).collect::<Vec<_>>()).unwrap();
    assert!(!sent.contains("AKIAIOSF") && !sent.contains("ODNN7EXAMPLE"), "{sent}");
    let text: String =
        hub.requests.iter().flat_map(|r| r.events.iter().filter_map(|e| e.1["delta"].as_str())).collect();
    assert_eq!(text, "before the key. deploy with [redacted:aws] now");
    assert_eq!(hub.stored, (1..=last).collect::<Vec<_>>(), "no gap, no duplicate");
}

/// Every request the hub got fitted its limit.
fn all_fit(hub: &FakeState) {
    for r in &hub.requests {
        let bytes: usize = r.events.iter().map(|e| super::fit::json_len(&e.1)).sum();
        assert!(bytes <= hub.body_limit, "a request of {bytes} bytes of events");
    }
}

#[tokio::test]
async fn an_event_too_big_for_the_hub_goes_truncated_and_the_rest_follows() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    link(&sync, &t.id).await;
    // One word a little over a request: the prompt, its echo (one delta)
    // and the answer are each too big for the hub. The key in it is
    // redacted before anything is cut.
    let prompt = format!("AKIAIOSFODNN7EXAMPLE,{}", "x".repeat(MAX_REQUEST_BYTES));
    let p = TurnStartParams { thread_id: t.id.clone(), input: prompt.clone(), client: None };
    s.engine.turn_start(p, &ClientInfo::anonymous()).await.unwrap();
    // Not `logged`: a page of the log stops at its first big event.
    let done = loop {
        let seen = s.engine.committed_seq(&t.id).unwrap();
        let p = ThreadEventsParams { thread_id: t.id.clone(), from: Some(Position::Seq(seen)), limit: Some(1) };
        let page = s.engine.thread_events(p).await.unwrap();
        if page.events.first().is_some_and(|e| e.get().contains(r#""type":"turn/completed""#)) {
            break seen;
        }
        s.engine.wait_committed_past(&t.id, seen).await.unwrap();
    };
    let last = s.event(&t.id, "after the big one").await;
    until("everything on the hub", || s.stored().last() == Some(&last)).await;
    {
        let hub = s.hub.lock();
        assert_eq!(hub.stored, (1..=last).collect::<Vec<_>>(), "no gap, no duplicate");
        all_fit(&hub);
        let big: Vec<&Value> = hub.kept.values().filter(|e| e.get("truncated").is_some()).collect();
        let kinds: Vec<&str> = big.iter().map(|e| e["type"].as_str().unwrap()).collect();
        // The delta goes alone (it fills a batch) with its message unfinished and
        // ending in what could be a key: it goes blank, and the message's
        // `item/completed` carries the text, redacted whole, then cut.
        assert_eq!(kinds, ["turn/started", "item/completed"]);
        let delta = hub.kept.values().find(|e| e["type"] == "item/agentMessage/delta").unwrap();
        assert_eq!(delta["delta"], "");
        let answer = big[1]["item"]["text"].as_str().unwrap();
        assert!(answer.starts_with("[redacted:aws],xxx") && answer.ends_with("-byte limit]"));
        let started = big[0];
        let input = started["input"].as_str().unwrap();
        assert!(input.starts_with("[redacted:aws],xxx"), "{}", &input[..40]);
        assert!(input.contains("… [truncated by tandem: "), "{}", &input[input.len() - 100..]);
        assert!(input.ends_with("-byte limit]"));
        assert!(started["truncated"]["originalBytes"].as_u64().unwrap() > MAX_REQUEST_BYTES as u64);
        assert_eq!(started["turnId"], big[1]["turnId"], "the ids stay");
        assert_eq!(hub.kept[&last]["title"], "after the big one");
    }
    until("synced", || sync.links(HubLinksParams::default()).unwrap().data[0].state == "synced").await;
    let cuts = sync.links(HubLinksParams::default()).unwrap().data[0].cuts.clone();
    assert_eq!((cuts.truncated, cuts.withheld), (2, 0), "{cuts:?}");
    assert_eq!(cuts.last_seq, done - 1, "the last was the answer's item/completed");
    until("the count saved", || LinkStore::new(&s.home).load().unwrap()[&t.id].cuts == cuts).await;
}

#[tokio::test]
async fn a_batch_the_hub_finds_too_big_is_sent_in_halves() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    // A hub (or the proxy in front of it) that takes far less than ours.
    s.hub.lock().body_limit = 3000;
    let mut last = 0;
    for i in 0..40 {
        last = s.event(&t.id, &format!("title number {i} of forty")).await;
    }
    link(&sync, &t.id).await;
    until("everything on the hub", || s.stored().last() == Some(&last)).await;
    {
        let hub = s.hub.lock();
        assert_eq!(hub.stored, (1..=last).collect::<Vec<_>>());
        let sizes: Vec<usize> = hub.requests.iter().map(|r| r.events.len()).collect();
        assert_eq!(sizes[..2], [last as usize, last as usize / 2], "refused whole, then halved: {sizes:?}");
        assert!(hub.kept.values().all(|e| e.get("truncated").is_none() && e["type"] != WITHHELD_EVENT));
    }
    until("synced", || sync.links(HubLinksParams::default()).unwrap().data[0].state == "synced").await;
    assert!(sync.links(HubLinksParams::default()).unwrap().data[0].cuts.is_empty(), "no event was altered");
}

#[tokio::test]
async fn an_event_the_hub_refuses_alone_goes_as_a_placeholder_and_the_rest_flows() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    let mut last = 0;
    for i in 0..6 {
        last = s.event(&t.id, &format!("title {i}")).await;
    }
    let bad = last - 2;
    s.hub.lock().refuse_seq = Some(bad);
    link(&sync, &t.id).await;
    until("everything on the hub", || s.stored().last() == Some(&last)).await;
    {
        let hub = s.hub.lock();
        assert_eq!(hub.stored, (1..=last).collect::<Vec<_>>());
        let placeholder = &hub.kept[&bad];
        assert_eq!(placeholder["type"], WITHHELD_EVENT);
        assert_eq!(placeholder["seq"], bad);
        assert_eq!(placeholder["threadId"], t.id.as_str());
        assert_eq!(placeholder["withheld"]["type"], "thread/updated");
        assert!(placeholder["withheld"]["reason"].as_str().unwrap().contains("not to my taste"), "{placeholder}");
        assert!(!placeholder.to_string().contains("title 3"), "none of its text: {placeholder}");
        assert_eq!(hub.kept[&(bad + 1)]["title"], "title 4", "the events after it are whole");
    }
    until("synced", || sync.links(HubLinksParams::default()).unwrap().data[0].state == "synced").await;
    let cuts = sync.links(HubLinksParams::default()).unwrap().data[0].cuts.clone();
    assert_eq!((cuts.truncated, cuts.withheld, cuts.last_seq), (0, 1, bad), "{cuts:?}");
    assert!(cuts.last.contains("withheld") && cuts.last.contains("not to my taste"), "{}", cuts.last);
}

#[tokio::test]
async fn a_share_that_refuses_even_a_placeholder_stops_its_link_as_full() {
    let s = setup().await;
    let sync = s.sync();
    let t = s.thread().await;
    let mut last = 0;
    for i in 0..20 {
        last = s.event(&t.id, &format!("title {i}")).await;
    }
    s.hub.lock().share_full = true;
    link(&sync, &t.id).await;
    until("the link to stop", || sync.links(HubLinksParams::default()).unwrap().data[0].state == "full").await;
    let hub = s.hub.lock();
    assert!(hub.stored.is_empty());
    let sizes: Vec<usize> = hub.requests.iter().map(|r| r.events.len()).collect();
    // Halved down to one event, then its placeholder: a few requests, not one per event.
    assert_eq!(sizes, [last as usize, 10, 5, 2, 1, 1], "{sizes:?}");
    assert_eq!(hub.requests.last().unwrap().events[0].1["type"], WITHHELD_EVENT);
}
