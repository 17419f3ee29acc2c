//! The runtime: one loop over terminal input, messages from the connection
//! tasks and SIGTERM. It feeds [`App::update`], draws, and carries out the
//! effects. A "follow" task per attached thread streams its events in; when a
//! shared connection drops, that task says so and keeps reconnecting, then
//! resubscribes from the last seq it delivered (no gap, no repeat).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, MouseEventKind};
use futures_util::StreamExt;
use tandem_client::{Client, ClientError, ResolveError, all_threads, connect_or_start, resolve_thread};
use tandem_engine::Engine;
use tandem_engine::agent::Agent;
use tandem_engine::config::{AgentSettings, Overrides};
use tandem_home::Home;
use tandem_protocol::ids::IdQuery;
use tandem_protocol::methods::*;
use tandem_protocol::{ClientInfo, ErrorCode, Event, ImportedTurn, Position};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::{App, Effect, Mode, Msg, SubmitError};
use crate::transcript::{CUT_SHORT_BY_SHARE, CUT_SHORT_BY_STOP, NoteKind};
use crate::{Options, TuiError, terminal, ui};

/// Who this TUI says it is: unique per running TUI (user and a short tag), so
/// its own turns are told apart from a peer's on the same thread.
pub fn client_info() -> ClientInfo {
    static ME: std::sync::OnceLock<ClientInfo> = std::sync::OnceLock::new();
    ME.get_or_init(|| {
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "user".into());
        let tag = &uuid::Uuid::now_v7().simple().to_string()[28..];
        ClientInfo::new(format!("tandem-tui ({user}, {tag})"), env!("CARGO_PKG_VERSION"))
    })
    .clone()
}

/// What reaches the runtime loop.
enum Inbound {
    /// A message for the app, tagged with the attachment it belongs to (0: any).
    App(u64, Msg),
    /// A share or join finished its calls: attach to this thread.
    AttachShared { client: Client, thread_id: String, sharing: bool },
    /// Stop sharing built the new private session: attach to it (the error:
    /// the thread's `shared` flag could not be turned off).
    LocalReady(Local, Option<String>),
}

/// The connection currently used for a thread; replaced on reconnect.
type Slot = Arc<Mutex<Option<Client>>>;

/// The agent a server says answers its turns (as the header shows it).
fn agent_of(client: &Client) -> String {
    client.server().and_then(|s| s.server_info.agent.as_ref()).map(|a| a.to_string()).unwrap_or_default()
}

/// Whether a server has an http listener (that web links point at).
fn has_http_listener(client: &Client) -> bool {
    client.server().is_some_and(|s| s.server_info.listeners.iter().any(|l| l.starts_with("http://")))
}

fn slot_client(slot: &Slot) -> Option<Client> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// How to (re)connect to the app-server.
#[derive(Clone)]
struct Connector {
    opts: Options,
    /// This TUI started the default app-server (said on quit: it keeps running).
    autostarted: Arc<std::sync::atomic::AtomicBool>,
}

impl Connector {
    async fn connect(&self) -> Result<Client, ClientError> {
        match &self.opts.server {
            Some(ep) => Client::connect(ep, client_info()).await,
            None => {
                if let Ok(client) = self.reconnect().await {
                    return Ok(client);
                }
                let client = connect_or_start(&self.opts.home, &self.opts.exe, client_info()).await?;
                self.autostarted.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(client)
            }
        }
    }

    /// Connects without starting a server: after a lost connection the TUI
    /// waits for the server to come back rather than undo a `stop`.
    async fn reconnect(&self) -> Result<Client, ClientError> {
        let endpoint = match &self.opts.server {
            Some(ep) => ep.clone(),
            None => tandem_client::Endpoint::Unix(self.opts.home.socket_path()),
        };
        Client::connect(&endpoint, client_info()).await
    }

    fn endpoint(&self) -> String {
        match &self.opts.server {
            Some(ep) => ep.to_string(),
            None => format!("unix:{}", self.opts.home.socket_path().display()),
        }
    }
}

/// The private session: its own engine, in memory.
struct Local {
    client: Client,
    thread_id: String,
    /// Turns the local thread had when this LOCAL stretch began; later ones are
    /// what "share again" appends to the shared thread.
    base_turns: usize,
}

struct Runtime {
    tx: mpsc::UnboundedSender<Inbound>,
    connector: Connector,
    local: Local,
    /// The attached thread's connection and id.
    slot: Slot,
    thread_id: String,
    generation: u64,
    follow: Option<JoinHandle<()>>,
}

/// The agent of a LOCAL session: the one configured (environment, then
/// config.toml), like the app-server's; echo if nothing is configured.
fn local_agent(home: &Home) -> Result<Arc<dyn Agent>, String> {
    AgentSettings::load(home, &Overrides::from_env())
        .and_then(|s| s.build())
        .map_err(|e| format!("agent configuration: {e}"))
}

/// A fresh in-memory engine holding `turns` in thread `thread_id`.
async fn new_local(home: &Home, thread_id: String, turns: Vec<ImportedTurn>) -> Result<Local, String> {
    let engine = Engine::in_memory(local_agent(home)?).await.map_err(|e| e.to_string())?;
    let (r, w) = tokio::io::split(tandem_rpc::in_process(engine));
    let client = Client::connect_stream("in-process", r, w, client_info()).await.map_err(|e| e.to_string())?;
    let base_turns = turns.len();
    client
        .call::<ThreadStart>(&ThreadStartParams { thread_id: Some(thread_id.clone()), turns, ..Default::default() })
        .await
        .map_err(|e| e.to_string())?;
    Ok(Local { client, thread_id, base_turns })
}

/// Runs the TUI until the user quits.
pub async fn run(opts: Options) -> Result<(), TuiError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let connector = Connector { opts: opts.clone(), autostarted: Default::default() };
    let local = new_local(&opts.home, uuid::Uuid::now_v7().to_string(), Vec::new()).await.map_err(TuiError::Start)?;
    let mut rt = Runtime {
        tx,
        connector: connector.clone(),
        slot: Arc::new(Mutex::new(Some(local.client.clone()))),
        thread_id: local.thread_id.clone(),
        local,
        generation: 0,
        follow: None,
    };
    let mut app = App::new(Mode::Local, rt.thread_id.clone(), "in-process".into(), client_info());
    match &opts.thread {
        None => rt.attach_local(),
        Some(typed) => {
            let query = IdQuery::parse("--thread", typed).map_err(TuiError::Start)?;
            let client = connector.connect().await?;
            let id = resolve_thread(&client, &query).await?;
            client.call::<ThreadRead>(&ThreadReadParams { thread_id: id.clone() }).await?;
            rt.attach_shared(client, id);
        }
    }

    let mut terminal = terminal::enter(opts.home.logs_dir().join("tui-panics.log"))?;
    let mut input = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let result = loop {
        if let Err(e) = terminal.draw(|f| ui::draw(f, &app)) {
            break Err(e);
        }
        let msg = tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(TermEvent::Key(k))) => Some(Msg::Key(k)),
                Some(Ok(TermEvent::Paste(s))) => Some(Msg::Paste(s)),
                Some(Ok(TermEvent::Mouse(m))) => match m.kind {
                    MouseEventKind::ScrollUp => Some(Msg::ScrollUp(3)),
                    MouseEventKind::ScrollDown => Some(Msg::ScrollDown(3)),
                    _ => None,
                },
                Some(Ok(_)) => None,
                Some(Err(e)) => break Err(e),
                None => Some(Msg::Quit),
            },
            Some(inbound) = rx.recv() => rt.accept(inbound),
            _ = sigterm.recv() => Some(Msg::Quit),
        };
        if let Some(msg) = msg {
            rt.handle(&mut app, msg).await;
        }
        // Apply whatever else has arrived before drawing again, so a fast
        // stream costs one frame per batch, not one per delta.
        for _ in 0..4096 {
            let Ok(inbound) = rx.try_recv() else {
                break;
            };
            if let Some(msg) = rt.accept(inbound) {
                rt.handle(&mut app, msg).await;
            }
        }
        if app.quit {
            break Ok(());
        }
    };
    terminal::leave();
    if let Some(f) = rt.follow.take() {
        f.abort();
    }
    if connector.autostarted.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("tandem: the app-server this session started is still running (shared threads stay reachable);");
        eprintln!("        `tandem app-server stop` stops it");
    }
    result.map_err(TuiError::from)
}

impl Runtime {
    /// Carries out runtime work; returns the app's message, if any. Messages
    /// from an attachment that has been replaced are dropped.
    fn accept(&mut self, inbound: Inbound) -> Option<Msg> {
        match inbound {
            Inbound::App(generation, msg) => (generation == 0 || generation == self.generation).then_some(msg),
            Inbound::AttachShared { client, thread_id, sharing } => {
                let http = has_http_listener(&client);
                self.attach_shared(client, thread_id.clone());
                // Queued after the attach's `Attached`, which starts the view over.
                if sharing {
                    self.send(Msg::SharingStarted { thread_id, http });
                }
                None
            }
            Inbound::LocalReady(local, unshare_error) => {
                self.local = local;
                self.attach_local();
                self.send(Msg::SharingStopped { unshare_error });
                None
            }
        }
    }

    async fn handle(&mut self, app: &mut App, msg: Msg) {
        for effect in app.update(msg) {
            self.exec(app, effect).await;
        }
    }

    fn send(&self, msg: Msg) {
        let _ = self.tx.send(Inbound::App(0, msg));
    }

    /// Starts showing `thread_id` through `slot`, from its first event.
    fn attach(&mut self, mode: Mode, slot: Slot, thread_id: String, server: String, reconnect: Option<Connector>) {
        if let Some(f) = self.follow.take() {
            f.abort();
        }
        self.generation += 1;
        let agent = slot_client(&slot).map(|c| agent_of(&c)).unwrap_or_default();
        self.send(Msg::Attached { mode, thread_id: thread_id.clone(), server, agent });
        self.slot = Arc::clone(&slot);
        self.thread_id = thread_id.clone();
        let tx = self.tx.clone();
        self.follow = Some(tokio::spawn(follow(slot, thread_id, reconnect, self.generation, tx)));
    }

    fn attach_local(&mut self) {
        let slot = Arc::new(Mutex::new(Some(self.local.client.clone())));
        self.attach(Mode::Local, slot, self.local.thread_id.clone(), "in-process".into(), None);
    }

    fn attach_shared(&mut self, client: Client, thread_id: String) {
        // The server's other ids decide how much of this one the header needs.
        let (lister, tx) = (client.clone(), self.tx.clone());
        tokio::spawn(async move {
            if let Ok(threads) = all_threads(&lister).await {
                let _ = tx.send(Inbound::App(0, Msg::KnownThreads(threads.into_iter().map(|t| t.id).collect())));
            }
        });
        let server = self.connector.endpoint();
        let slot = Arc::new(Mutex::new(Some(client)));
        let reconnect = Some(self.connector.clone());
        self.attach(Mode::Shared, slot, thread_id, server, reconnect);
    }

    async fn exec(&mut self, app: &App, effect: Effect) {
        match effect {
            Effect::Quit => {}
            Effect::Submit(text) => {
                let Some(client) = slot_client(&self.slot) else {
                    self.send(Msg::SubmitFailed { text, error: SubmitError::Other("not connected".into()) });
                    return;
                };
                let tx = self.tx.clone();
                let thread_id = self.thread_id.clone();
                tokio::spawn(async move {
                    let params = TurnStartParams { thread_id, input: text.clone(), client: None };
                    let msg = match client.call::<TurnStart>(&params).await {
                        Ok(_) => return,
                        Err(ClientError::Rpc(e)) if e.is(ErrorCode::Busy) => {
                            let data = e.data.unwrap_or_default();
                            let turn_id = data.get("activeTurnId").and_then(|v| v.as_str()).unwrap_or("?").to_owned();
                            let started_by = data.get("startedBy").and_then(|v| serde_json::from_value(v.clone()).ok());
                            Msg::SubmitFailed { text, error: SubmitError::Busy { turn_id, started_by } }
                        }
                        Err(e) => Msg::SubmitFailed { text, error: SubmitError::Other(e.to_string()) },
                    };
                    let _ = tx.send(Inbound::App(0, msg));
                });
            }
            Effect::Interrupt(turn_id) => {
                let Some(client) = slot_client(&self.slot) else {
                    return;
                };
                let tx = self.tx.clone();
                let thread_id = self.thread_id.clone();
                tokio::spawn(async move {
                    let params = TurnInterruptParams { thread_id, turn_id: Some(turn_id) };
                    if let Err(e) = client.call::<TurnInterrupt>(&params).await {
                        let _ =
                            tx.send(Inbound::App(0, Msg::Note(format!("could not interrupt: {e}"), NoteKind::Error)));
                    }
                });
            }
            Effect::CreateLink(thread_id) => {
                // Tagged with this attachment: a link for a thread since left is dropped.
                let (slot, tx, generation) = (Arc::clone(&self.slot), self.tx.clone(), self.generation);
                tokio::spawn(async move {
                    let result = match slot_client(&slot) {
                        Some(client) => {
                            let params = LinkCreateParams { thread_id, scope: Some(LinkScope::Read), expires_in: None };
                            client.call::<LinkCreate>(&params).await.map(|r| r.url).map_err(|e| e.to_string())
                        }
                        None => Err("not connected".into()),
                    };
                    let _ = tx.send(Inbound::App(generation, Msg::LinkCreated(result)));
                });
            }
            Effect::LoadThreads => {
                let connector = self.connector.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = match connector.connect().await {
                        Ok(client) => all_threads(&client).await.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("{e}")),
                    };
                    let _ = tx.send(Inbound::App(0, Msg::Threads(result)));
                });
            }
            Effect::Join(id) => {
                let connector = self.connector.clone();
                self.spawn_action(async move {
                    let query = IdQuery::parse("thread id", &id)?;
                    let client = connector.connect().await.map_err(|e| e.to_string())?;
                    let id = match resolve_thread(&client, &query).await {
                        Ok(id) => id,
                        Err(e @ ResolveError::NotFound { .. }) => return Err(format!("{e} — nothing changed")),
                        Err(e @ ResolveError::Ambiguous { .. }) => return Err(e.to_string()),
                        Err(ResolveError::Client(e)) => return Err(e.to_string()),
                    };
                    match client.call::<ThreadRead>(&ThreadReadParams { thread_id: id.clone() }).await {
                        Ok(_) => Ok(Inbound::AttachShared { client, thread_id: id, sharing: false }),
                        Err(ClientError::Rpc(e)) if e.is(ErrorCode::ThreadNotFound) => {
                            Err(format!("thread not found: {id} — nothing changed"))
                        }
                        Err(e) => Err(e.to_string()),
                    }
                });
            }
            Effect::StartSharing => {
                let connector = self.connector.clone();
                let id = self.local.thread_id.clone();
                // The app starts sharing only once a LOCAL turn has ended; should
                // one still run, it is carried over as far as it got.
                let all = app.transcript.imports(CUT_SHORT_BY_SHARE);
                let base = self.local.base_turns;
                self.spawn_action(async move {
                    let client = start_sharing(&connector, &id, all, base).await?;
                    Ok(Inbound::AttachShared { client, thread_id: id, sharing: true })
                });
            }
            Effect::StopSharing => {
                let turns = app.transcript.imports(CUT_SHORT_BY_STOP);
                let id = self.thread_id.clone();
                let home = self.connector.opts.home.clone();
                let client = slot_client(&self.slot);
                self.spawn_action(async move {
                    let local = new_local(&home, id.clone(), turns)
                        .await
                        .map_err(|e| format!("could not stop sharing: {e}"))?;
                    // Link viewers lose access with the flag. Should that fail,
                    // this TUI detaches all the same (the history is kept here).
                    let unshare_error = match client {
                        Some(client) => {
                            let params = ThreadUpdateParams { thread_id: id, title: None, shared: Some(false) };
                            client.call::<ThreadUpdate>(&params).await.err().map(|e| e.to_string())
                        }
                        None => Some("not connected".into()),
                    };
                    Ok(Inbound::LocalReady(local, unshare_error))
                });
            }
        }
    }

    /// Runs a share/join/stop in the background; its result comes back to the
    /// loop (an error as `ActionFailed`, which leaves everything as it was).
    fn spawn_action(&self, action: impl std::future::Future<Output = Result<Inbound, String>> + Send + 'static) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let inbound = action.await.unwrap_or_else(|e| Inbound::App(0, Msg::ActionFailed(e)));
            let _ = tx.send(inbound);
        });
    }
}

/// Creates the shared thread from the LOCAL session (same id, its turns), or,
/// if it exists from an earlier share, appends the turns after `base`.
async fn start_sharing(connector: &Connector, id: &str, all: Vec<ImportedTurn>, base: usize) -> Result<Client, String> {
    let client = connector
        .connect()
        .await
        .map_err(|e| format!("cannot share: {e} (can `tandem app-server start` start it?)"))?;
    let existing = match client.call::<ThreadRead>(&ThreadReadParams { thread_id: id.to_owned() }).await {
        Ok(r) => Some(r.thread),
        Err(ClientError::Rpc(e)) if e.is(ErrorCode::ThreadNotFound) => None,
        Err(e) => return Err(format!("cannot share: {e}")),
    };
    if let Some(thread) = existing {
        // Stop sharing turned the flag off: on again, before anything is
        // appended (so a failure here changes nothing), and links work again.
        if !thread.shared {
            client
                .call::<ThreadUpdate>(&ThreadUpdateParams { thread_id: id.to_owned(), title: None, shared: Some(true) })
                .await
                .map_err(|e| format!("cannot resume sharing: {e}"))?;
        }
        let new: Vec<ImportedTurn> = all.into_iter().skip(base).collect();
        if !new.is_empty() {
            client
                .call::<ThreadAppend>(&ThreadAppendParams { thread_id: id.to_owned(), turns: new })
                .await
                .map_err(|e| format!("cannot resume sharing: {e}"))?;
        }
    } else {
        client
            .call::<ThreadStart>(&ThreadStartParams {
                thread_id: Some(id.to_owned()),
                turns: all,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot share: {e}"))?;
    }
    Ok(client)
}

/// Streams `thread_id`'s events from seq 1 into the runtime. On a lost
/// connection (shared only) it reports, reconnects with backoff, and
/// resubscribes from the next seq it has not delivered.
async fn follow(
    slot: Slot,
    thread_id: String,
    reconnect: Option<Connector>,
    generation: u64,
    tx: mpsc::UnboundedSender<Inbound>,
) {
    let send = |msg: Msg| tx.send(Inbound::App(generation, msg)).is_ok();
    let mut next = 1u64;
    loop {
        let mut reason = "connection closed".to_owned();
        if let Some(client) = slot_client(&slot) {
            let params = ThreadSubscribeParams { thread_id: thread_id.clone(), from: Some(Position::Seq(next)) };
            match client.subscribe(&params).await {
                Ok(mut sub) => {
                    while let Some(raw) = sub.next().await {
                        let Ok(event) = serde_json::from_str::<Event>(raw.get()) else {
                            continue;
                        };
                        if event.seq < next {
                            continue;
                        }
                        next = event.seq + 1;
                        if !send(Msg::Event(event)) {
                            return;
                        }
                    }
                }
                Err(ClientError::Rpc(e)) => {
                    send(Msg::Note(format!("cannot follow thread {thread_id}: {e}"), NoteKind::Error));
                    return;
                }
                Err(e) => reason = e.to_string(),
            }
        }
        let Some(connector) = &reconnect else { return };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if !send(Msg::ConnLost { reason }) {
            return;
        }
        let mut delay = Duration::from_millis(200);
        loop {
            tokio::time::sleep(delay).await;
            if let Ok(client) = connector.reconnect().await {
                let agent = agent_of(&client);
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
                if !send(Msg::ConnRestored { agent }) {
                    return;
                }
                break;
            }
            delay = (delay * 2).min(Duration::from_secs(3));
        }
    }
}
