//! Agents run turns. Every backend implements [`Agent`]: it gets the prompt, a
//! sink for the text it produces, and a cancellation signal, and says how the
//! turn ended. The engine turns that into events; agents never touch the log.

mod cli;
mod echo;
mod exec;
mod openai;
mod proctree;

use std::future::Future;
use std::pin::Pin;

use tandem_protocol::AgentInfo;
use tokio::sync::watch;

pub use cli::{CliAgent, CliKind, CliSettings, claude_item, claude_item_type};
pub use echo::EchoAgent;
pub use exec::ExecAgent;
pub use openai::{OpenAiAgent, OpenAiSettings};

/// What an agent is asked to do.
#[derive(Debug, Clone, Default)]
pub struct TurnInput {
    pub thread_id: String,
    pub turn_id: String,
    pub input: String,
    /// The thread's earlier turns, oldest first (filled only for agents that
    /// ask for it with [`Agent::wants_history`]).
    pub history: Vec<PastTurn>,
}

/// An earlier turn: what was asked and what the agent answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PastTurn {
    pub input: String,
    pub response: String,
    /// The agent CLI's session the turn ran in (an `agentSession` item).
    pub session: Option<String>,
    /// Whether the turn found the session it resumed gone (an `agentSession`
    /// item with `ended: true`); a later `session` is a new one.
    pub session_ended: bool,
}

/// How a turn ended, from the agent's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Stopped by an interrupt; the reason given with it, if any.
    Interrupted(Option<String>),
    /// Failed, with a message a person can act on.
    Failed(String),
}

/// Where an agent streams its output.
pub trait DeltaSink: Send {
    /// One more piece of the agent's message.
    fn delta(&mut self, text: &str);

    /// A whole item other than the message text (a command run, a file
    /// change…), as `item/started` + `item/completed`. `item` is the item's
    /// JSON object without `id`; the sink assigns one.
    fn item(&mut self, item_type: &str, fields: serde_json::Map<String, serde_json::Value>) {
        let id = self.item_started(item_type, fields.clone());
        self.item_completed(&id, item_type, fields);
    }

    /// An item that has begun and is still going (a command now running), as
    /// `item/started`; returns the id [`DeltaSink::item_completed`] takes.
    fn item_started(&mut self, item_type: &str, fields: serde_json::Map<String, serde_json::Value>) -> String {
        let _ = (item_type, fields);
        String::new()
    }

    /// The end of an item begun with [`DeltaSink::item_started`], as
    /// `item/completed` with the whole item.
    fn item_completed(&mut self, id: &str, item_type: &str, fields: serde_json::Map<String, serde_json::Value>) {
        let _ = (id, item_type, fields);
    }
}

/// Tells an agent to stop. Fires once, with the reason (or `None` for a plain
/// user interrupt). A clone watches the same signal.
#[derive(Clone)]
pub struct Cancel(watch::Receiver<Option<String>>);

impl Cancel {
    pub fn new(rx: watch::Receiver<Option<String>>) -> Self {
        Cancel(rx)
    }

    /// A signal that never fires.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        Cancel(rx)
    }

    /// Whether the turn has been interrupted.
    pub fn is_cancelled(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Waits until the turn is interrupted; returns the reason.
    pub async fn cancelled(&mut self) -> Option<String> {
        let fired = self.0.wait_for(Option::is_some).await.map(|reason| reason.clone());
        match fired {
            Ok(reason) => reason,
            // The engine dropped the sender: nobody can interrupt any more.
            Err(_) => std::future::pending().await,
        }
    }

    /// The interrupt reason, once interrupted.
    pub fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }
}

/// A boxed future, as agents return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend that runs turns.
pub trait Agent: Send + Sync + 'static {
    /// Which agent this is, for `turn/started` and `status`.
    fn info(&self) -> AgentInfo;

    /// Whether [`TurnInput::history`] should carry the thread's earlier turns.
    fn wants_history(&self) -> bool {
        false
    }

    /// Runs one turn to its end.
    fn run<'a>(&'a self, input: TurnInput, out: &'a mut dyn DeltaSink, cancel: Cancel) -> BoxFuture<'a, Outcome>;
}
