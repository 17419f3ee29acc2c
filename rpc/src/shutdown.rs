//! Shutdown as a server's connections see it: one signal every connection
//! listens to, and a count of the connections still running that the server
//! waits for before it closes the log (mini-redis's `shutdown_complete`).
//! Each connection holds a [`Shutdown`]; when the last one is dropped, the
//! server's [`Stopper::wait`] returns.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// A connection's view of the server's shutdown.
#[derive(Clone)]
pub struct Shutdown {
    stop: watch::Receiver<bool>,
    /// Never sent on: dropping the last clone is what tells the server.
    _running: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once the server has begun to shut down.
    pub async fn requested(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// The server's side: begins the shutdown and waits for the connections.
pub struct Stopper {
    stop: watch::Sender<bool>,
    running: mpsc::Receiver<()>,
    first: Option<mpsc::Sender<()>>,
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper::new()
    }
}

impl Stopper {
    pub fn new() -> Stopper {
        let (tx, running) = mpsc::channel(1);
        Stopper { stop: watch::Sender::new(false), running, first: Some(tx) }
    }

    /// A handle for one more connection (or whatever hands them out).
    pub fn shutdown(&self) -> Shutdown {
        let tx = self.first.clone().expect("handles are made before the wait");
        Shutdown { stop: self.stop.subscribe(), _running: tx }
    }

    /// Tells every connection to finish.
    pub fn begin(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until every handle is dropped, at most `patience`; whether they all were.
    pub async fn wait(mut self, patience: Duration) -> bool {
        drop(self.first.take());
        tokio::time::timeout(patience, self.running.recv()).await.is_ok()
    }
}
