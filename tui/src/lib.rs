//! Tandem's TUI: a conversation with the agent in a terminal, private (LOCAL,
//! an in-process engine with nothing on disk) or shared (attached to a thread
//! on the app-server, where scripts and other terminals post and watch).
//!
//! `app` is the state machine, `ui` draws it, and this module is the runtime:
//! the terminal, the connections, and turning effects into calls.

pub mod app;
pub mod composer;
pub mod slash;
pub mod transcript;
pub mod ui;

mod runtime;
mod terminal;

use std::path::PathBuf;

use tandem_client::Endpoint;
use tandem_home::Home;

pub use runtime::run;

/// How the TUI starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Open attached to this shared thread instead of a LOCAL session.
    pub thread: Option<String>,
    /// The app-server to share on; default: the local one (autostarted).
    pub server: Option<Endpoint>,
    /// The data directory of the default server.
    pub home: Home,
    /// The `tandem` binary, to autostart the app-server.
    pub exe: PathBuf,
}

/// Why the TUI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("{0}")]
    Start(String),
    #[error(transparent)]
    Client(#[from] tandem_client::ClientError),
    /// `--thread` names no thread, or several.
    #[error(transparent)]
    Resolve(#[from] tandem_client::ResolveError),
}
