//! Agents run turns. Every backend implements [`Agent`]: it gets the prompt, a
//! sink for the text it produces, and a cancellation signal, and says how the
//! turn ended. The engine turns that into events; agents never touch the log.

mod echo;
mod exec;

use std::future::Future;
use std::pin::Pin;

use tandem_protocol::AgentInfo;
use tokio::sync::watch;

pub use echo::EchoAgent;
pub use exec::ExecAgent;

/// What an agent is asked to do.
#[derive(Debug, Clone)]
pub struct TurnInput {
    pub thread_id: String,
    pub turn_id: String,
    pub input: String,
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

/// Where an agent streams its message text.
pub trait DeltaSink: Send {
    /// One more piece of the agent's message.
    fn delta(&mut self, text: &str);
}

/// Tells an agent to stop. Fires once, with the reason (or `None` for a plain
/// user interrupt).
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
        let fired = self
            .0
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.clone());
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

    /// Runs one turn to its end.
    fn run<'a>(
        &'a self,
        input: TurnInput,
        out: &'a mut dyn DeltaSink,
        cancel: Cancel,
    ) -> BoxFuture<'a, Outcome>;
}
