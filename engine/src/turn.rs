//! Runs one turn: the agent's message as `item/started`, deltas and
//! `item/completed`, then `turn/completed`. The thread is marked idle under the
//! same lock that appends `turn/completed`, so whoever sees that event can post
//! at once (invariant 1).

use std::sync::Arc;

use tandem_protocol::items;
use tandem_protocol::{Event, EventBody, Item, TurnStatus};
use tokio::sync::watch;

use crate::agent::{Agent, Cancel, DeltaSink, Outcome, PastTurn, TurnInput};
use crate::redact;
use crate::store::{RowChange, Store, StoreError};
use crate::thread::{AppendOptions, ThreadHandle};

/// Appends the agent's text as deltas of one message item.
struct MessageSink {
    thread: Arc<ThreadHandle>,
    store: Arc<Store>,
    turn_id: String,
    item_id: String,
    text: String,
}

impl DeltaSink for MessageSink {
    fn item_started(&mut self, item_type: &str, fields: serde_json::Map<String, serde_json::Value>) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let item = Item { id: id.clone(), item_type: item_type.to_owned(), text: None, extra: fields };
        append(
            &self.thread,
            &self.store,
            EventBody::ItemStarted { turn_id: self.turn_id.clone(), item },
            RowChange::None,
        );
        id
    }

    fn item_completed(&mut self, id: &str, item_type: &str, fields: serde_json::Map<String, serde_json::Value>) {
        let item = Item { id: id.to_owned(), item_type: item_type.to_owned(), text: None, extra: fields };
        append(
            &self.thread,
            &self.store,
            EventBody::ItemCompleted { turn_id: self.turn_id.clone(), item },
            RowChange::None,
        );
    }

    fn delta(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.text.push_str(text);
        let body = EventBody::AgentMessageDelta {
            turn_id: self.turn_id.clone(),
            item_id: self.item_id.clone(),
            delta: text.to_owned(),
        };
        let mut state = self.thread.lock();
        if let Err(e) = self.thread.append(&mut state, &self.store, body, RowChange::None, AppendOptions::default()) {
            // What the agent says can no longer be kept: stop the turn rather
            // than run on unrecorded.
            if let Some(active) = state.active.as_ref().filter(|a| a.id == self.turn_id) {
                let stopped = active.cancel.send_if_modified(|reason| {
                    reason.is_none() && {
                        *reason = Some(format!("stopped: {e}"));
                        true
                    }
                });
                if stopped {
                    tracing::error!(error = %e, turn = %self.turn_id, "could not log a delta; stopping the turn");
                }
            }
        }
    }
}

/// Starts the turn's task.
pub(crate) fn spawn(
    store: Arc<Store>,
    agent: Arc<dyn Agent>,
    thread: Arc<ThreadHandle>,
    turn_id: String,
    input: String,
    cancel: watch::Receiver<Option<String>>,
) {
    tokio::spawn(run(store, agent, thread, turn_id, input, cancel));
}

async fn run(
    store: Arc<Store>,
    agent: Arc<dyn Agent>,
    thread: Arc<ThreadHandle>,
    turn_id: String,
    input: String,
    cancel: watch::Receiver<Option<String>>,
) {
    let item_id = uuid::Uuid::now_v7().to_string();
    append(
        &thread,
        &store,
        EventBody::ItemStarted { turn_id: turn_id.clone(), item: Item::agent_message(&item_id, "") },
        RowChange::None,
    );

    let history = if agent.wants_history() { history(&store, &thread.id, &turn_id).await } else { Vec::new() };
    let turn_input = TurnInput { thread_id: thread.id.to_string(), turn_id: turn_id.clone(), input, history };
    let mut sink = MessageSink {
        thread: Arc::clone(&thread),
        store: Arc::clone(&store),
        turn_id: turn_id.clone(),
        item_id: item_id.clone(),
        text: String::new(),
    };
    // The agent runs in its own task so that a panic in it still ends the turn.
    let pace = Arc::clone(&store);
    let ran = tokio::spawn(async move {
        let outcome = paced(&pace, agent.run(turn_input, &mut sink, Cancel::new(cancel))).await;
        (outcome, sink.text)
    })
    .await;
    let (outcome, text) = match ran {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, turn = %turn_id, "agent task failed");
            (Outcome::Failed("the agent crashed (see the app-server log)".into()), String::new())
        }
    };
    append(
        &thread,
        &store,
        EventBody::ItemCompleted { turn_id: turn_id.clone(), item: Item::agent_message(&item_id, text) },
        RowChange::None,
    );

    // The error goes into the shared log: no credentials from URLs in it.
    let (status, error) = match outcome {
        Outcome::Completed => (TurnStatus::Completed, None),
        Outcome::Interrupted(reason) => (TurnStatus::Interrupted, reason.map(|r| redact::urls(&r).into_owned())),
        Outcome::Failed(msg) => (TurnStatus::Failed, Some(redact::urls(&msg).into_owned())),
    };
    tracing::info!(thread = %thread.id, turn = %turn_id, status = status.as_str(), "turn completed");
    // The turn's end must be in the log before the thread is free: while the
    // log cannot be written, the turn stays visibly running (its start is in
    // the log) and its end is written as soon as the log takes writes again.
    let body = EventBody::TurnCompleted { turn_id, status, error };
    loop {
        let why = {
            let mut state = thread.lock();
            match thread.append(&mut state, &store, body.clone(), RowChange::TurnEnded, AppendOptions::default()) {
                Ok(_) => {
                    state.active = None;
                    return;
                }
                Err(StoreError::Unavailable(why)) => why,
                Err(e) => {
                    // The server is stopping: a restart closes the turn.
                    tracing::error!(error = %e, "could not log turn/completed");
                    state.active = None;
                    return;
                }
            }
        };
        tracing::warn!(error = %why, thread = %thread.id, "turn/completed waits for the log");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Polls an agent only while the log writer keeps up: between two polls the
/// agent's output is appended at once, so waiting here (not in the sink, which
/// cannot wait) is what bounds the writer's queue when an agent streams faster
/// than the disk commits.
async fn paced<F: Future>(store: &Store, agent: F) -> F::Output {
    let mut agent = std::pin::pin!(agent);
    let mut room: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    std::future::poll_fn(|cx| {
        loop {
            if let Some(wait) = room.as_mut() {
                std::task::ready!(wait.as_mut().poll(cx));
                room = None;
            }
            if store.is_backlogged() {
                room = Some(Box::pin(store.wait_for_room()));
                continue;
            }
            return agent.as_mut().poll(cx);
        }
    })
    .await
}

fn append(thread: &ThreadHandle, store: &Store, body: EventBody, row: RowChange) {
    let mut state = thread.lock();
    if let Err(e) = thread.append(&mut state, store, body, row, AppendOptions::default()) {
        tracing::error!(error = %e, thread = %thread.id, "could not log an event");
    }
}

/// The thread's turns other than `current`, with the agent's message text.
pub(crate) async fn history(store: &Arc<Store>, thread_id: &str, current: &str) -> Vec<PastTurn> {
    let outline = match store.read_outline(thread_id).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "could not read the thread's history");
            return Vec::new();
        }
    };
    let mut turns: Vec<(String, PastTurn)> = Vec::new();
    for entry in &outline {
        let Ok(ev) = serde_json::from_str::<Event>(&entry.json) else { continue };
        match ev.body {
            EventBody::TurnStarted { turn_id, input, .. } if turn_id != current => {
                turns.push((turn_id, PastTurn { input, ..Default::default() }));
            }
            EventBody::ItemCompleted { turn_id, item } => {
                let Some((_, t)) = turns.iter_mut().rev().find(|(id, _)| *id == turn_id) else { continue };
                match item.item_type.as_str() {
                    items::AGENT_MESSAGE => t.response.push_str(item.text.as_deref().unwrap_or("")),
                    items::AGENT_SESSION if item.extra.get("ended").and_then(|e| e.as_bool()) == Some(true) => {
                        t.session = None;
                        t.session_ended = true;
                    }
                    items::AGENT_SESSION => {
                        t.session = item.extra.get("sessionId").and_then(|s| s.as_str()).map(str::to_owned)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    turns.into_iter().map(|(_, t)| t).collect()
}
