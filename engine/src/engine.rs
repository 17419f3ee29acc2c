//! The engine: the thread registry and what every method does to it. Transports
//! and the in-process TUI call it; it knows nothing of bytes or connections.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tandem_protocol::ids::normalize_uuid;
use tandem_protocol::methods::*;
use tandem_protocol::time::{format_millis, now_millis, parse_rfc3339};
use tandem_protocol::{
    ActiveTurn, AgentInfo, ClientInfo, EventBody, ImportedTurn, Item, MAX_PAGE, Position, RpcError, Thread,
    ThreadStatus, Turn, TurnStatus,
};
use tokio::sync::watch;

use crate::agent::Agent;
use crate::store::{Durability, RowChange, Store, StoreError};
use crate::tail::Tail;
use crate::thread::{AppendOptions, Durable, RunningTurn, ThreadHandle, ThreadState};

/// What `thread/list` returns per page when asked for no limit.
const DEFAULT_LIST_LIMIT: usize = 100;

/// A `thread/events` page stops adding events past this many bytes.
const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The error of a turn closed because the server stopped.
pub const STOPPED: &str = "app-server stopped";

/// Shared handle to the engine.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

struct Inner {
    store: Arc<Store>,
    threads: RwLock<BTreeMap<String, Arc<ThreadHandle>>>,
    agent: Arc<dyn Agent>,
    stopping: AtomicBool,
    /// Threads fed from outside (id → the source's name, e.g. a mirrored
    /// agent session): only [`Engine::append_external`] adds to them.
    external: RwLock<HashMap<String, String>>,
    /// The turn an outside agent is working on, per external thread (set by
    /// its source, [`Engine::set_external_activity`]): what `status` and
    /// `activeTurn` say there, since no turn of ours runs on it.
    external_active: RwLock<HashMap<String, ActiveTurn>>,
    /// Bumped whenever a thread's title or `shared` flag changes.
    changes: watch::Sender<u64>,
}

pub(crate) fn store_error(e: StoreError) -> RpcError {
    match e {
        StoreError::Unavailable(why) => RpcError::storage_unavailable(why),
        StoreError::WriterGone => RpcError::internal("the app-server is shutting down; try again once it is back"),
        e => {
            tracing::error!(error = %e, "event log failed");
            RpcError::internal("could not use the event log (see the app-server log)")
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Engine {
    /// Opens the log at `db`, loads its threads and closes the turns a previous
    /// run left open (invariant 5).
    pub async fn open(db: &Path, durability: Durability, agent: Arc<dyn Agent>) -> Result<Engine, StoreError> {
        Engine::start(Arc::new(Store::open(db, durability)?), agent).await
    }

    /// An engine whose log lives in memory only: a private session, no files.
    pub async fn in_memory(agent: Arc<dyn Agent>) -> Result<Engine, StoreError> {
        Engine::start(Arc::new(Store::memory()?), agent).await
    }

    async fn start(store: Arc<Store>, agent: Arc<dyn Agent>) -> Result<Engine, StoreError> {
        let rows = store.load_threads().await?;
        let mut threads = BTreeMap::new();
        let mut recovered = 0;
        for row in rows {
            let handle =
                Arc::new(ThreadHandle::new(&row.id, row.title, row.shared, row.created_at, row.last_seq, &row.last_ts));
            if let Some(turn_id) = row.active_turn {
                let mut state = handle.lock();
                handle.append(
                    &mut state,
                    &store,
                    EventBody::TurnCompleted { turn_id, status: TurnStatus::Interrupted, error: Some(STOPPED.into()) },
                    RowChange::TurnEnded,
                    AppendOptions::default(),
                )?;
                recovered += 1;
            }
            threads.insert(row.id, handle);
        }
        store.flush().await?;
        tracing::info!(threads = threads.len(), recovered, "event log opened");
        Ok(Engine(Arc::new(Inner {
            store,
            threads: RwLock::new(threads),
            agent,
            stopping: AtomicBool::new(false),
            external: RwLock::new(HashMap::new()),
            external_active: RwLock::new(HashMap::new()),
            changes: watch::Sender::new(0),
        })))
    }

    /// The agent that runs this engine's turns.
    pub fn agent_info(&self) -> AgentInfo {
        self.0.agent.info()
    }

    /// Changes whenever a thread's title or `shared` flag changes (so that
    /// whoever grants access by it looks again).
    pub fn thread_changes(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    #[cfg(test)]
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.0.store
    }

    /// Looks a thread up by id (checked to be a UUID first).
    fn thread(&self, id: &str) -> Result<Arc<ThreadHandle>, RpcError> {
        let id = normalize_uuid("threadId", id).map_err(RpcError::invalid_params)?;
        let threads = self.0.threads.read().unwrap_or_else(|p| p.into_inner());
        threads.get(&id).cloned().ok_or_else(|| RpcError::thread_not_found(&id))
    }

    /// `thread/start`.
    pub async fn thread_start(&self, p: ThreadStartParams, client: &ClientInfo) -> Result<Thread, RpcError> {
        let id = match &p.thread_id {
            Some(id) => normalize_uuid("threadId", id).map_err(RpcError::invalid_params)?,
            None => new_id(),
        };
        self.refuse_external(&id)?;
        let imports = check_imports(&p.turns)?;
        let shared = p.shared.unwrap_or(true);
        let (handle, done, thread) = {
            let mut threads = self.0.threads.write().unwrap_or_else(|pe| pe.into_inner());
            if threads.contains_key(&id) {
                return Err(RpcError::invalid_params(format!(
                    "thread {id} already exists; omit threadId for a new one, or use thread/append to add turns"
                )));
            }
            let now = format_millis(now_millis());
            let handle = Arc::new(ThreadHandle::new(&id, p.title.clone(), shared, now.clone(), 0, &now));
            let mut state = handle.lock();
            let mut done = handle
                .append(
                    &mut state,
                    &self.0.store,
                    EventBody::ThreadStarted { title: p.title.clone(), shared },
                    RowChange::Create { title: p.title.clone(), shared, created_at: now },
                    AppendOptions { ack: true, ..Default::default() },
                )
                .map_err(store_error)?;
            if !imports.is_empty() {
                done = self.import(&handle, &mut state, imports, client)?;
            }
            let thread = self.snapshot(&handle, &state);
            drop(state);
            threads.insert(id, Arc::clone(&handle));
            (handle, done, thread)
        };
        if let Err(e) = wait_durable(done).await {
            // Never written: the thread does not exist.
            self.0.threads.write().unwrap_or_else(|pe| pe.into_inner()).remove(&*handle.id);
            return Err(e);
        }
        tracing::info!(thread = %handle.id, "thread started");
        Ok(thread)
    }

    /// `thread/append`: imports turns into an idle thread.
    pub async fn thread_append(&self, p: ThreadAppendParams, client: &ClientInfo) -> Result<Thread, RpcError> {
        let handle = self.thread(&p.thread_id)?;
        self.refuse_external(&handle.id)?;
        let imports = check_imports(&p.turns)?;
        if imports.is_empty() {
            return Err(RpcError::invalid_params("invalid params for thread/append: turns must not be empty"));
        }
        let (done, thread) = {
            let mut state = handle.lock();
            if let Some(active) = &state.active {
                return Err(busy(&handle.id, active));
            }
            let done = self.import(&handle, &mut state, imports, client)?;
            (done, self.snapshot(&handle, &state))
        };
        wait_durable(done).await?;
        Ok(thread)
    }

    /// Appends imported turns; returns the ack of the last event.
    fn import(
        &self,
        handle: &ThreadHandle,
        state: &mut ThreadState,
        turns: Vec<(ImportedTurn, Option<String>)>,
        client: &ClientInfo,
    ) -> Result<Option<Durable>, RpcError> {
        let mut done = None;
        let count = turns.len();
        for (i, (turn, original_ts)) in turns.into_iter().enumerate() {
            let turn_id = new_id();
            let opts = |ack| AppendOptions { imported: true, original_ts: original_ts.clone(), ack };
            let bodies = [
                EventBody::TurnStarted {
                    turn_id: turn_id.clone(),
                    input: turn.input,
                    client: turn.client.unwrap_or_else(|| client.clone()),
                    agent: turn.agent.unwrap_or_else(|| AgentInfo { kind: "imported".into(), model: None }),
                },
                EventBody::ItemCompleted {
                    turn_id: turn_id.clone(),
                    item: Item::agent_message(new_id(), turn.response),
                },
                EventBody::TurnCompleted {
                    turn_id,
                    status: turn.status.unwrap_or(TurnStatus::Completed),
                    error: turn.error,
                },
            ];
            for (j, body) in bodies.into_iter().enumerate() {
                let last = i + 1 == count && j == 2;
                let ack =
                    handle.append(state, &self.0.store, body, RowChange::None, opts(last)).map_err(store_error)?;
                if last {
                    done = ack;
                }
            }
        }
        Ok(done)
    }

    /// `thread/list`: newest first, `cursor` is the last id of the previous page.
    pub fn thread_list(&self, p: ThreadListParams) -> Result<ThreadListResult, RpcError> {
        let limit = match p.limit {
            Some(0) => {
                return Err(RpcError::invalid_params("invalid params for thread/list: limit must be at least 1"));
            }
            Some(n) => n.min(MAX_PAGE),
            None => DEFAULT_LIST_LIMIT,
        };
        let cursor = match &p.cursor {
            Some(c) => Some(normalize_uuid("cursor", c).map_err(RpcError::invalid_params)?),
            None => None,
        };
        let threads = self.0.threads.read().unwrap_or_else(|pe| pe.into_inner());
        let iter: Box<dyn Iterator<Item = (&String, &Arc<ThreadHandle>)>> = match &cursor {
            Some(c) => Box::new(threads.range::<String, _>(..c.clone()).rev()),
            None => Box::new(threads.iter().rev()),
        };
        let mut data = Vec::new();
        let mut more = false;
        for (_, handle) in iter {
            if data.len() == limit {
                more = true;
                break;
            }
            data.push(self.snapshot(handle, &handle.lock()));
        }
        let next_cursor = if more { data.last().map(|t| t.id.clone()) } else { None };
        Ok(ThreadListResult { data, next_cursor })
    }

    /// `thread/read`.
    pub fn thread_read(&self, p: ThreadReadParams) -> Result<Thread, RpcError> {
        let handle = self.thread(&p.thread_id)?;
        let state = handle.lock();
        Ok(self.snapshot(&handle, &state))
    }

    /// `thread/update`.
    pub async fn thread_update(&self, p: ThreadUpdateParams) -> Result<Thread, RpcError> {
        let handle = self.thread(&p.thread_id)?;
        if p.title.is_none() && p.shared.is_none() {
            return Err(RpcError::invalid_params("invalid params for thread/update: give title, shared, or both"));
        }
        let (done, thread, before) = {
            let mut state = handle.lock();
            let before = (state.title.clone(), state.shared);
            let title = p.title.or_else(|| state.title.clone());
            let shared = p.shared.unwrap_or(state.shared);
            let done = handle
                .append(
                    &mut state,
                    &self.0.store,
                    EventBody::ThreadUpdated { title: title.clone(), shared },
                    RowChange::Update { title: title.clone(), shared },
                    AppendOptions { ack: true, ..Default::default() },
                )
                .map_err(store_error)?;
            state.title = title;
            state.shared = shared;
            (done, self.snapshot(&handle, &state), before)
        };
        if before != (thread.title.clone(), thread.shared) {
            // Links of this thread stop (or may start again) now, not once the
            // update is durable: access is never wider than what was asked.
            self.0.changes.send_modify(|n| *n += 1);
        }
        if let Err(e) = wait_durable(done).await {
            // Not written, so not changed (unless a later update won).
            let mut state = handle.lock();
            if (state.title.as_ref(), state.shared) == (thread.title.as_ref(), thread.shared) {
                (state.title, state.shared) = before;
                self.0.changes.send_modify(|n| *n += 1);
            }
            return Err(e);
        }
        Ok(thread)
    }

    /// Where `from` points in a thread's log: a seq, `default` when absent.
    async fn resolve_from(&self, handle: &ThreadHandle, from: Option<Position>, default: u64) -> Result<u64, RpcError> {
        match from {
            None => Ok(default),
            Some(Position::Seq(n)) => Ok(n),
            Some(Position::Time { millis, .. }) => {
                // Everything up to `committed` is in the store: if none of it
                // is at or after the time, the answer is the next seq after it
                // (not the next one numbered, which may still be on its way).
                let committed = handle.committed_seq();
                let ts = format_millis(millis);
                let found = self.0.store.first_seq_at(&handle.id, ts).await.map_err(store_error)?;
                Ok(found.unwrap_or(committed + 1))
            }
        }
    }

    /// `thread/events`.
    pub async fn thread_events(&self, p: ThreadEventsParams) -> Result<ThreadEventsResult, RpcError> {
        let handle = self.thread(&p.thread_id)?;
        let limit = match p.limit {
            Some(0) => {
                return Err(RpcError::invalid_params("invalid params for thread/events: limit must be at least 1"));
            }
            Some(n) => n.min(MAX_PAGE),
            None => MAX_PAGE,
        };
        let from = self.resolve_from(&handle, p.from, 1).await?;
        let mut page = self.0.store.read_page(&handle.id, from, limit + 1).await.map_err(store_error)?;
        // Keep a page's answer well under what a line may carry: stop at
        // PAGE_BYTES (but always return at least one event).
        let mut bytes = 0;
        let fits = page
            .iter()
            .position(|e| {
                bytes += e.json.len();
                bytes > PAGE_BYTES
            })
            .map_or(page.len(), |i| i.max(1));
        let next = if page.len() > limit || fits < page.len() {
            page.truncate(limit.min(fits));
            page.last().map(|e| e.seq + 1)
        } else {
            None
        };
        let events = page
            .into_iter()
            .map(|e| serde_json::value::RawValue::from_string(e.json.into_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RpcError::internal(format!("corrupt event in the log: {e}")))?;
        Ok(ThreadEventsResult { events, next })
    }

    /// `turn/start`: atomically claims the thread, writes `turn/started`, answers
    /// once that is durable, and runs the agent in the background.
    pub async fn turn_start(&self, p: TurnStartParams, conn_client: &ClientInfo) -> Result<Turn, RpcError> {
        let handle = self.thread(&p.thread_id)?;
        self.refuse_external(&handle.id)?;
        if p.input.trim().is_empty() {
            return Err(RpcError::invalid_params("invalid params for turn/start: input must not be empty"));
        }
        let client = p.client.unwrap_or_else(|| conn_client.clone());
        let turn_id = new_id();
        let (cancel_tx, cancel_rx) = watch::channel(None);
        let (done, started_at) = {
            let mut state = handle.lock();
            if let Some(active) = &state.active {
                return Err(busy(&handle.id, active));
            }
            if self.0.stopping.load(Ordering::SeqCst) {
                return Err(RpcError::internal("the app-server is shutting down; try again once it is back"));
            }
            let done = handle
                .append(
                    &mut state,
                    &self.0.store,
                    EventBody::TurnStarted {
                        turn_id: turn_id.clone(),
                        input: p.input.clone(),
                        client: client.clone(),
                        agent: self.0.agent.info(),
                    },
                    RowChange::TurnStarted(turn_id.clone()),
                    AppendOptions { ack: true, ..Default::default() },
                )
                .map_err(store_error)?;
            let started_at = state.updated_at.clone();
            state.active = Some(RunningTurn { id: turn_id.clone(), client: client.clone(), cancel: cancel_tx });
            (done, started_at)
        };
        if let Err(e) = wait_durable(done).await {
            // Not durable, so not started: free the thread again.
            let mut state = handle.lock();
            if state.active.as_ref().is_some_and(|a| a.id == turn_id) {
                state.active = None;
            }
            return Err(e);
        }
        crate::turn::spawn(
            Arc::clone(&self.0.store),
            Arc::clone(&self.0.agent),
            Arc::clone(&handle),
            turn_id.clone(),
            p.input,
            cancel_rx,
        );
        tracing::info!(thread = %handle.id, turn = %turn_id, client = %client, "turn started");
        Ok(Turn { id: turn_id, thread_id: handle.id.to_string(), status: TurnStatus::Running, client, started_at })
    }

    /// `turn/interrupt`: asks the running turn to stop. `false` when the thread is
    /// idle; turn-not-found when `turn_id` names another turn.
    pub fn turn_interrupt(&self, p: TurnInterruptParams, client: &ClientInfo) -> Result<bool, RpcError> {
        let handle = self.thread(&p.thread_id)?;
        let turn_id = match &p.turn_id {
            Some(t) => Some(normalize_uuid("turnId", t).map_err(RpcError::invalid_params)?),
            None => None,
        };
        let state = handle.lock();
        match (&state.active, turn_id) {
            (Some(active), Some(id)) if active.id != id => Err(RpcError::turn_not_found(&id)),
            (Some(active), _) => {
                tracing::info!(thread = %handle.id, turn = %active.id, by = %client, "turn interrupted");
                active.cancel.send_if_modified(|reason| {
                    if reason.is_none() {
                        *reason = Some(format!("interrupted by {client}"));
                        true
                    } else {
                        false
                    }
                });
                Ok(true)
            }
            (None, Some(id)) => Err(RpcError::turn_not_found(&id)),
            (None, None) => Ok(false),
        }
    }

    /// Marks a thread (existing or not yet) as fed from outside, by `source`
    /// (a mirrored agent session): clients' turns and imports are refused
    /// there, and only [`Engine::append_external`] adds to it.
    pub fn set_external(&self, thread_id: &str, source: &str) {
        self.0.external.write().unwrap_or_else(|p| p.into_inner()).insert(thread_id.to_owned(), source.to_owned());
    }

    /// Says whether the outside agent of an external thread is working on a
    /// turn (`Some`: the thread reads `running` with that `activeTurn`) or
    /// not (`None`: `idle`). Only the source knows; the events it appends
    /// cannot say "still working" on their own.
    pub fn set_external_activity(&self, thread_id: &str, active: Option<ActiveTurn>) {
        let mut map = self.0.external_active.write().unwrap_or_else(|p| p.into_inner());
        match active {
            Some(a) => map.insert(thread_id.to_owned(), a),
            None => map.remove(thread_id),
        };
    }

    /// The wire view of a thread: its own running turn, else what its
    /// outside source said it is doing.
    fn snapshot(&self, handle: &ThreadHandle, state: &ThreadState) -> Thread {
        let mut thread = handle.snapshot(state);
        if thread.active_turn.is_none() {
            let map = self.0.external_active.read().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = map.get(&thread.id) {
                thread.status = ThreadStatus::Running;
                thread.active_turn = Some(a.clone());
            }
        }
        thread
    }

    fn refuse_external(&self, thread_id: &str) -> Result<(), RpcError> {
        match self.0.external.read().unwrap_or_else(|p| p.into_inner()).get(thread_id) {
            Some(source) => Err(RpcError::mirrored(thread_id, source)),
            None => Ok(()),
        }
    }

    /// The last seq of a thread, `None` when it does not exist.
    pub fn last_seq(&self, thread_id: &str) -> Option<u64> {
        let threads = self.0.threads.read().unwrap_or_else(|p| p.into_inner());
        threads.get(thread_id).map(|h| h.lock().last_seq)
    }

    /// Whether a thread exists and is shared (what links of it need).
    pub fn is_shared(&self, thread_id: &str) -> bool {
        self.thread(thread_id).is_ok_and(|h| h.lock().shared)
    }

    /// The highest seq of a thread that is committed (readers of the log see it).
    pub fn committed_seq(&self, thread_id: &str) -> Result<u64, RpcError> {
        Ok(self.thread(thread_id)?.committed_seq())
    }

    /// Waits until an event of a thread after `seq` is committed. Costs no
    /// ring: a reader that reads the log anyway only needs the wake-up.
    pub async fn wait_committed_past(&self, thread_id: &str, seq: u64) -> Result<(), RpcError> {
        let handle = self.thread(thread_id)?;
        handle.wait_committed_past(seq).await;
        Ok(())
    }

    /// Follows a thread from `from` (default: what is committed after now),
    /// first from the log and then live, with no hole and no repeat.
    pub async fn follow(&self, thread_id: &str, from: Option<Position>) -> Result<Tail, RpcError> {
        let handle = self.thread(thread_id)?;
        // Follow before deciding where to start, so that the feed keeps what
        // is committed from here on (anything older is in the log).
        let follower = handle.follow();
        let live_from = handle.lock().last_seq + 1;
        let from = self.resolve_from(&handle, from, live_from).await?;
        Ok(Tail::new(Arc::clone(&self.0.store), Arc::clone(&handle.id), follower, from))
    }

    /// Appends events from outside (a mirrored session) to a thread (created
    /// with `title` when missing), marked imported with their original times,
    /// and waits until they are durable. Returns the thread's last seq.
    pub async fn append_external(
        &self,
        thread_id: &str,
        title: &str,
        events: Vec<(EventBody, Option<String>)>,
    ) -> Result<u64, RpcError> {
        let handle = {
            let mut threads = self.0.threads.write().unwrap_or_else(|p| p.into_inner());
            match threads.get(thread_id) {
                Some(h) => Arc::clone(h),
                None => {
                    let now = format_millis(now_millis());
                    let handle =
                        Arc::new(ThreadHandle::new(thread_id, Some(title.to_owned()), true, now.clone(), 0, &now));
                    let mut state = handle.lock();
                    handle
                        .append(
                            &mut state,
                            &self.0.store,
                            EventBody::ThreadStarted { title: Some(title.to_owned()), shared: true },
                            RowChange::Create { title: Some(title.to_owned()), shared: true, created_at: now },
                            AppendOptions::default(),
                        )
                        .map_err(store_error)?;
                    drop(state);
                    threads.insert(thread_id.to_owned(), Arc::clone(&handle));
                    handle
                }
            }
        };
        let (done, last) = {
            let mut state = handle.lock();
            let count = events.len();
            let mut done = None;
            for (i, (body, original_ts)) in events.into_iter().enumerate() {
                let ack = i + 1 == count;
                let d = handle
                    .append(
                        &mut state,
                        &self.0.store,
                        body,
                        RowChange::None,
                        AppendOptions { imported: true, original_ts, ack },
                    )
                    .map_err(store_error)?;
                if ack {
                    done = d;
                }
            }
            (done, state.last_seq)
        };
        wait_durable(done).await?;
        self.0.store.flush().await.map_err(store_error)?;
        Ok(last)
    }

    /// Stops taking turns, interrupts the running ones (they end `interrupted`
    /// with "app-server stopped"), waits for them, and flushes the log.
    pub async fn shutdown(&self) {
        self.shutdown_turns().await;
        if let Err(e) = self.0.store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        self.0.store.close();
    }

    /// Stops taking turns, interrupts the running ones and waits (10 s at
    /// most) until each has logged its end; the log stays open for reads.
    pub async fn shutdown_turns(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
        let threads: Vec<_> = self.0.threads.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for t in &threads {
            if let Some(active) = &t.lock().active {
                let _ = active.cancel.send(Some(STOPPED.into()));
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while threads.iter().any(|t| t.lock().active.is_some()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn busy(thread_id: &str, active: &RunningTurn) -> RpcError {
    RpcError::new(
        tandem_protocol::ErrorCode::Busy,
        format!("busy: turn {} is running on thread {thread_id}", active.id),
    )
    .with("activeTurnId", &active.id)
    .with("startedBy", &active.client)
}

/// Validates imported turns and normalizes their `startedAt`.
fn check_imports(turns: &[ImportedTurn]) -> Result<Vec<(ImportedTurn, Option<String>)>, RpcError> {
    turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ts = match &t.started_at {
                Some(s) => Some(format_millis(
                    parse_rfc3339(s)
                        .map_err(|e| RpcError::invalid_params(format!("invalid params: turns[{i}].startedAt: {e}")))?,
                )),
                None => None,
            };
            if t.input.trim().is_empty() {
                return Err(RpcError::invalid_params(format!("invalid params: turns[{i}].input must not be empty")));
            }
            if t.status == Some(TurnStatus::Running) {
                return Err(RpcError::invalid_params(format!(
                    "invalid params: turns[{i}].status must be completed, interrupted or failed (an imported turn has ended)"
                )));
            }
            Ok((t.clone(), ts))
        })
        .collect()
}

async fn wait_durable(done: Option<Durable>) -> Result<(), RpcError> {
    match done {
        Some(rx) => match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(store_error(StoreError::Unavailable(why))),
            Err(_) => Err(store_error(StoreError::WriterGone)),
        },
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::EchoAgent;

    /// Both logs give the same outline: each turn's start and completed items.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outline_is_the_same_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let disk =
            Engine::open(&dir.path().join("t.db"), Durability::Normal, Arc::new(EchoAgent::default())).await.unwrap();
        let memory = Engine::in_memory(Arc::new(EchoAgent::default())).await.unwrap();
        let turns = vec![ImportedTurn::new("one", "1"), ImportedTurn::new("two", "2")];
        let me = ClientInfo::new("t", "1");
        let mut outlines = Vec::new();
        for engine in [&disk, &memory] {
            let t = engine
                .thread_start(ThreadStartParams { turns: turns.clone(), ..Default::default() }, &me)
                .await
                .unwrap();
            let outline = engine.store().read_outline(&t.id).await.unwrap();
            outlines.push(outline.iter().map(|e| e.seq).collect::<Vec<_>>());
            let history = crate::turn::history(engine.store(), &t.id, "none").await;
            assert_eq!(
                history.iter().map(|h| (h.input.as_str(), h.response.as_str())).collect::<Vec<_>>(),
                [("one", "1"), ("two", "2")]
            );
        }
        assert_eq!(outlines[0], [2, 3, 5, 6]);
        assert_eq!(outlines[0], outlines[1]);
    }

    /// What an external source says about its thread shows in `thread/read`
    /// and `thread/list` as the thread's own running turn would, and goes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_external_thread_reads_running_while_its_source_says_so() {
        let engine = Engine::in_memory(Arc::new(EchoAgent::default())).await.unwrap();
        let id = new_id();
        engine.set_external(&id, "Claude Code");
        engine.append_external(&id, "mirror", Vec::new()).await.unwrap();
        let read = || engine.thread_read(ThreadReadParams { thread_id: id.clone() }).unwrap();
        assert_eq!((read().status, read().active_turn), (ThreadStatus::Idle, None));
        let active = ActiveTurn { id: new_id(), client: ClientInfo::new("claude-code", "2.1") };
        engine.set_external_activity(&id, Some(active.clone()));
        assert_eq!((read().status, read().active_turn), (ThreadStatus::Running, Some(active.clone())));
        let listed = engine.thread_list(ThreadListParams::default()).unwrap().data;
        assert_eq!(listed[0].active_turn, Some(active));
        engine.set_external_activity(&id, None);
        assert_eq!((read().status, read().active_turn), (ThreadStatus::Idle, None));
    }
}
