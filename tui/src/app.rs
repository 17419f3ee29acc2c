//! The TUI's state machine: `update(msg) -> effects`, with no I/O, so every
//! mode, menu and key can be tested without a terminal. The runtime turns
//! effects into calls and feeds the results back as messages.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tandem_protocol::{ClientInfo, Event, EventBody, Thread};

use tandem_protocol::ids::{IdQuery, unique_prefix};

use crate::composer::Composer;
use crate::slash::{SlashCommand, typed_command};
use crate::transcript::{NoteKind, Transcript};

/// Private or attached to a thread on the app-server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Local,
    Shared,
}

/// The `/share` menu's actions, in order (digits 1–4 pick them).
pub const SHARE_ACTIONS: [&str; 4] = [
    "Start sharing this session",
    "Join shared session",
    "Stop sharing (link viewers lose access)",
    "Help / About sharing",
];

/// The web viewer's read link made when sharing started.
#[derive(Debug, Clone, PartialEq)]
pub enum WebLink {
    /// The server has no http listener, so no link (the box says how to get one).
    NoListener,
    /// `link/create` is under way.
    Creating,
    /// The link's URL.
    Ready(String),
    /// `link/create` failed.
    Failed(String),
}

/// The join picker: the server's threads, or an id typed in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinPicker {
    /// `None` while loading.
    pub threads: Option<Vec<Thread>>,
    pub selected: usize,
    pub input: String,
    pub error: Option<String>,
}

/// What is drawn over the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    ShareMenu {
        selected: usize,
    },
    Status,
    Help,
    Join(JoinPicker),
    /// Shown once sharing starts: the id and the line to post from elsewhere.
    Shared {
        thread_id: String,
    },
}

/// The thread's turn, as far as this TUI knows.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnState {
    Idle,
    Running { turn_id: String, client: ClientInfo },
}

/// The connection to the thread's server.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    Up,
    Lost { reason: String },
}

/// A first Ctrl-C that waits for a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Armed {
    Quit,
    Interrupt,
}

/// A one-line message above the composer.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub kind: NoteKind,
    /// The change that makes it untrue: when it happens, the notice goes.
    pub until: Until,
}

/// What a notice describes, so the state change that ends it also clears it.
#[derive(Debug, Clone, PartialEq)]
pub enum Until {
    /// Stays until another notice replaces it or Esc dismisses it.
    Replaced,
    /// This turn ends (busy, interrupting…).
    TurnEnds(String),
    /// This TUI attaches to a thread: a share, join or stop finished.
    Attached,
    /// The connection is lost or restored.
    ConnChanges,
    /// A first Ctrl-C is disarmed (another key, or the turn ended).
    Disarmed,
}

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitError {
    /// Another turn runs: the server's busy message and who started it.
    Busy {
        turn_id: String,
        started_by: Option<ClientInfo>,
    },
    Other(String),
}

/// Inputs: keys from the terminal, results from the runtime.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    ScrollUp(u16),
    ScrollDown(u16),
    /// Now showing `thread_id` in `mode`; the transcript starts over.
    Attached {
        mode: Mode,
        thread_id: String,
        server: String,
        agent: String,
    },
    Event(Event),
    /// Sharing began on `thread_id` (after its `Attached`); `http`: the
    /// server has an http listener, so a web link can be made.
    SharingStarted {
        thread_id: String,
        http: bool,
    },
    /// The answer to [`Effect::CreateLink`]: the link's URL.
    LinkCreated(Result<String, String>),
    /// Stop sharing detached (after its `Attached`); `unshare_error`: turning
    /// the thread's `shared` flag off failed, so link viewers may keep access.
    SharingStopped {
        unshare_error: Option<String>,
    },
    SubmitFailed {
        text: String,
        error: SubmitError,
    },
    Threads(Result<Vec<Thread>, String>),
    /// The ids of the server's threads (for short ids that are unique).
    KnownThreads(Vec<String>),
    /// A share/join/stop action failed; nothing changed.
    ActionFailed(String),
    Note(String, NoteKind),
    ConnLost {
        reason: String,
    },
    /// Connected again; the server's agent (it may have been restarted with another).
    ConnRestored {
        agent: String,
    },
    Quit,
}

/// Outputs: what the runtime should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Submit(String),
    Interrupt(String),
    StartSharing,
    /// Make a read link to this thread for the web viewer.
    CreateLink(String),
    LoadThreads,
    Join(String),
    StopSharing,
    Quit,
}

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct App {
    pub mode: Mode,
    pub thread_id: String,
    pub server: String,
    pub agent: String,
    pub transcript: Transcript,
    pub composer: Composer,
    pub popup: Option<Popup>,
    pub slash_selected: usize,
    pub turn: TurnState,
    /// Who this TUI is: turns posted as this client are "you".
    pub me: ClientInfo,
    pub notice: Option<Notice>,
    pub conn: Conn,
    /// Lines scrolled up from the bottom (0 = follow the end).
    pub scroll: u16,
    /// Events arrived while scrolled up (cleared at the bottom).
    pub unseen: bool,
    /// The transcript's width when last drawn (0: not yet): what scrolling
    /// measures new lines at.
    pub view_width: std::cell::Cell<u16>,
    pub armed: Option<Armed>,
    /// A share/join/stop is under way; another waits.
    pub pending_action: bool,
    /// The server's thread ids, as last listed: short ids are unique among them.
    pub known_threads: Vec<String>,
    /// Sharing was asked for while this LOCAL turn ran: it starts once the
    /// turn ends, so the turn is carried over whole.
    pub share_after: Option<String>,
    /// The web link of the sharing this TUI started (`None`: none asked for).
    pub web_link: Option<WebLink>,
    pub quit: bool,
}

impl App {
    pub fn new(mode: Mode, thread_id: String, server: String, me: ClientInfo) -> App {
        App {
            mode,
            thread_id,
            server,
            agent: String::new(),
            transcript: Transcript::default(),
            composer: Composer::default(),
            popup: None,
            slash_selected: 0,
            turn: TurnState::Idle,
            me,
            notice: None,
            conn: Conn::Up,
            scroll: 0,
            unseen: false,
            view_width: Default::default(),
            armed: None,
            pending_action: false,
            share_after: None,
            web_link: None,
            known_threads: Vec::new(),
            quit: false,
        }
    }

    fn notice(&mut self, text: impl Into<String>, kind: NoteKind) {
        self.notice_until(text, kind, Until::Replaced);
    }

    fn notice_until(&mut self, text: impl Into<String>, kind: NoteKind, until: Until) {
        self.notice = Some(Notice { text: text.into(), kind, until });
    }

    /// Clears the notice if `happened` ends it.
    fn clear_notice(&mut self, happened: impl Fn(&Until) -> bool) {
        if self.notice.as_ref().is_some_and(|n| happened(&n.until)) {
            self.notice = None;
        }
    }

    /// The slash commands the popup offers now (empty when it is closed).
    pub fn slash_matches(&self) -> Vec<SlashCommand> {
        if self.popup.is_some() {
            return Vec::new();
        }
        typed_command(self.composer.text()).map(SlashCommand::matching).unwrap_or_default()
    }

    /// The thread id as the header shows it: its shortest start (at least 8
    /// characters) that no other thread on the server shares.
    pub fn short_thread(&self) -> &str {
        unique_prefix(&self.thread_id, self.known_threads.iter().map(String::as_str))
    }

    /// A turn id as notices show it: unique among this thread's turns.
    pub fn short_turn<'a>(&'a self, id: &'a str) -> &'a str {
        unique_prefix(id, self.transcript.turns().map(|t| t.id.as_str()))
    }

    /// The transcript's rendered height at `width` (entry heights are cached).
    fn transcript_height(&self, width: u16) -> usize {
        let is_me = |c: &ClientInfo| self.is_me(c);
        (0..self.transcript.entries().len()).map(|i| self.transcript.height(i, width, &is_me)).sum()
    }

    /// Whether `client` is this TUI.
    pub fn is_me(&self, client: &ClientInfo) -> bool {
        *client == self.me
    }

    /// Handles one message.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        if matches!(msg, Msg::Event(_)) && self.scroll > 0 {
            self.unseen = true;
        }
        let effects = self.handle(msg);
        if self.scroll == 0 {
            self.unseen = false;
        }
        effects
    }

    fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => self.key(key),
            Msg::Paste(text) => {
                if let Some(Popup::Join(p)) = &mut self.popup {
                    p.input.push_str(text.trim());
                } else {
                    self.composer.insert(&text);
                }
                vec![]
            }
            Msg::ScrollUp(n) => {
                self.scroll = self.scroll.saturating_add(n);
                vec![]
            }
            Msg::ScrollDown(n) => {
                self.scroll = self.scroll.saturating_sub(n);
                vec![]
            }
            Msg::Attached { mode, thread_id, server, agent } => {
                self.mode = mode;
                self.thread_id = thread_id;
                self.server = server;
                self.agent = agent;
                self.transcript.clear();
                self.turn = TurnState::Idle;
                self.scroll = 0;
                self.pending_action = false;
                self.share_after = None;
                self.web_link = None;
                self.conn = Conn::Up;
                self.clear_notice(|u| matches!(u, Until::Attached | Until::TurnEnds(_) | Until::ConnChanges));
                if matches!(self.popup, Some(Popup::Join(_))) {
                    self.popup = None;
                }
                vec![]
            }
            Msg::Event(ev) => {
                let mut effects = vec![];
                match &ev.body {
                    EventBody::TurnStarted { turn_id, client, .. } => {
                        self.turn = TurnState::Running { turn_id: turn_id.clone(), client: client.clone() };
                    }
                    EventBody::TurnCompleted { turn_id, .. } => {
                        if matches!(&self.turn, TurnState::Running { turn_id: t, .. } if t == turn_id) {
                            self.turn = TurnState::Idle;
                            if self.armed == Some(Armed::Interrupt) {
                                self.armed = None;
                                self.clear_notice(|u| *u == Until::Disarmed);
                            }
                        }
                        self.clear_notice(|u| matches!(u, Until::TurnEnds(t) if t == turn_id));
                        if self.share_after.as_ref() == Some(turn_id) {
                            self.share_after = None;
                            self.notice_until("turn finished — starting to share…", NoteKind::Info, Until::Attached);
                            effects.push(Effect::StartSharing);
                        }
                    }
                    _ => {}
                }
                // Scrolled up, the view stays on what is being read: the
                // scroll (counted from the bottom) grows with what arrives.
                let width = self.view_width.get();
                let before = (self.scroll > 0 && width > 0).then(|| self.transcript_height(width));
                self.transcript.apply(&ev);
                if let Some(before) = before {
                    let grown = self.transcript_height(width).saturating_sub(before);
                    self.scroll = self.scroll.saturating_add(u16::try_from(grown).unwrap_or(u16::MAX));
                }
                effects
            }
            Msg::SharingStarted { thread_id, http } => {
                self.notice(format!("sharing thread {thread_id} — /share for options"), NoteKind::Success);
                self.popup = Some(Popup::Shared { thread_id: thread_id.clone() });
                if http {
                    self.web_link = Some(WebLink::Creating);
                    vec![Effect::CreateLink(thread_id)]
                } else {
                    self.web_link = Some(WebLink::NoListener);
                    vec![]
                }
            }
            Msg::LinkCreated(result) => {
                // Only the link this sharing asked for (an attach clears it).
                if self.web_link == Some(WebLink::Creating) {
                    self.web_link = Some(match result {
                        Ok(url) => WebLink::Ready(url),
                        Err(e) => WebLink::Failed(e),
                    });
                }
                vec![]
            }
            Msg::SharingStopped { unshare_error } => {
                match unshare_error {
                    None => self.notice(
                        "stopped sharing — link viewers lost access; this session is private again; \
                         /share resumes the same thread",
                        NoteKind::Info,
                    ),
                    Some(e) => self.notice(
                        format!(
                            "detached, but the thread is still shared ({e}): its link viewers keep access \
                             until `tandem share revoke --thread {}`",
                            self.thread_id
                        ),
                        NoteKind::Error,
                    ),
                }
                vec![]
            }
            Msg::SubmitFailed { text, error } => {
                self.composer.restore(&text);
                match error {
                    SubmitError::Busy { turn_id, started_by } => {
                        let by = started_by.map(|c| format!(" (started by {})", c.name)).unwrap_or_default();
                        let text = format!("busy — turn {} running{by}; your text is kept", self.short_turn(&turn_id));
                        self.notice_until(text, NoteKind::Error, Until::TurnEnds(turn_id));
                    }
                    SubmitError::Other(e) => self.notice(format!("not sent: {e}; your text is kept"), NoteKind::Error),
                }
                vec![]
            }
            Msg::KnownThreads(ids) => {
                self.known_threads = ids;
                vec![]
            }
            Msg::Threads(result) => {
                if let Ok(threads) = &result {
                    self.known_threads = threads.iter().map(|t| t.id.clone()).collect();
                }
                if let Some(Popup::Join(p)) = &mut self.popup {
                    match result {
                        Ok(threads) => {
                            p.threads = Some(threads);
                            p.selected = 0;
                        }
                        Err(e) => {
                            p.threads = Some(Vec::new());
                            p.error = Some(e);
                        }
                    }
                }
                vec![]
            }
            Msg::ActionFailed(e) => {
                self.pending_action = false;
                if let Some(Popup::Join(p)) = &mut self.popup {
                    p.error = Some(e.clone());
                }
                self.notice_until(e, NoteKind::Error, Until::Attached);
                vec![]
            }
            Msg::Note(text, kind) => {
                self.notice(text, kind);
                vec![]
            }
            Msg::ConnLost { reason } => {
                self.conn = Conn::Lost { reason };
                self.clear_notice(|u| *u == Until::ConnChanges);
                vec![]
            }
            Msg::ConnRestored { agent } => {
                self.agent = agent;
                self.conn = Conn::Up;
                let text = format!("reconnected to {}", self.server);
                self.notice_until(text, NoteKind::Success, Until::ConnChanges);
                vec![]
            }
            Msg::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
        }
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return vec![];
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.ctrl_c();
        }
        if self.armed.take().is_some() {
            self.clear_notice(|u| *u == Until::Disarmed);
        }
        // The "Shared" box appears on its own (sharing finishes in the
        // background), so it must not eat what the user is typing: any key
        // but Esc closes it and goes on to the composer.
        if matches!(self.popup, Some(Popup::Shared { .. })) {
            self.popup = None;
            if key.code == KeyCode::Esc {
                return vec![];
            }
        }
        if self.popup.is_some() {
            return self.popup_key(key);
        }
        let matches = self.slash_matches();
        if !matches.is_empty() {
            let n = matches.len();
            match key.code {
                KeyCode::Up => {
                    self.slash_selected = (self.slash_selected + n - 1) % n;
                    return vec![];
                }
                KeyCode::Down => {
                    self.slash_selected = (self.slash_selected + 1) % n;
                    return vec![];
                }
                KeyCode::Tab => {
                    let cmd = matches[self.slash_selected.min(n - 1)];
                    self.composer.set_text(&format!("/{}", cmd.name()));
                    self.slash_selected = 0;
                    return vec![];
                }
                KeyCode::Enter if key.modifiers.is_empty() => {
                    let cmd = matches[self.slash_selected.min(n - 1)];
                    self.composer.clear();
                    self.slash_selected = 0;
                    return self.run_command(cmd);
                }
                KeyCode::Esc => {
                    self.composer.clear();
                    self.slash_selected = 0;
                    return vec![];
                }
                _ => {}
            }
        }
        let alt_or_shift = key.modifiers.intersects(KeyModifiers::ALT | KeyModifiers::SHIFT);
        match key.code {
            KeyCode::Enter if alt_or_shift => self.composer.insert("\n"),
            KeyCode::Char('j') if ctrl => self.composer.insert("\n"),
            KeyCode::Enter => return self.submit(),
            KeyCode::Char('u') if ctrl => self.composer.kill_line_before(),
            KeyCode::Char('a') if ctrl => self.composer.home(),
            KeyCode::Char('e') if ctrl => self.composer.end(),
            KeyCode::Char(c) if !ctrl => {
                self.composer.insert(c.encode_utf8(&mut [0; 4]));
                self.slash_selected = 0;
            }
            KeyCode::Backspace => self.composer.backspace(),
            KeyCode::Delete => self.composer.delete(),
            KeyCode::Left => self.composer.left(),
            KeyCode::Right => self.composer.right(),
            KeyCode::Home => self.composer.home(),
            KeyCode::End => {
                // End of the line, and back to the latest of the conversation.
                self.composer.end();
                self.scroll = 0;
            }
            KeyCode::Up => self.composer.up(),
            KeyCode::Down => self.composer.down(),
            KeyCode::PageUp => self.scroll = self.scroll.saturating_add(10),
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::Esc => self.notice = None,
            _ => {}
        }
        vec![]
    }

    fn ctrl_c(&mut self) -> Vec<Effect> {
        if self.popup.take().is_some() {
            return vec![];
        }
        match self.turn.clone() {
            TurnState::Running { turn_id, client } => {
                if self.is_me(&client) || self.armed == Some(Armed::Interrupt) {
                    self.armed = None;
                    let text = format!("interrupting turn {}…", self.short_turn(&turn_id));
                    self.notice_until(text, NoteKind::Info, Until::TurnEnds(turn_id.clone()));
                    vec![Effect::Interrupt(turn_id)]
                } else {
                    self.armed = Some(Armed::Interrupt);
                    let text = format!(
                        "turn {} was started by {} — press Ctrl-C again to interrupt it",
                        self.short_turn(&turn_id),
                        client.name
                    );
                    self.notice_until(text, NoteKind::Info, Until::Disarmed);
                    vec![]
                }
            }
            TurnState::Idle => {
                if self.armed == Some(Armed::Quit) {
                    self.quit = true;
                    vec![Effect::Quit]
                } else {
                    self.armed = Some(Armed::Quit);
                    let draft = if self.composer.is_empty() { "" } else { " (your draft will be lost)" };
                    self.notice_until(format!("press Ctrl-C again to quit{draft}"), NoteKind::Info, Until::Disarmed);
                    vec![]
                }
            }
        }
    }

    fn submit(&mut self) -> Vec<Effect> {
        let text = self.composer.text().to_owned();
        if text.trim().is_empty() {
            return vec![];
        }
        if let Some(name) = typed_command(text.trim()) {
            return match SlashCommand::parse(name) {
                Some(cmd) => {
                    self.composer.clear();
                    self.run_command(cmd)
                }
                None => {
                    self.notice(format!("unknown command /{name} — try /help"), NoteKind::Error);
                    vec![]
                }
            };
        }
        if self.pending_action {
            self.notice("one moment — switching sessions; your text is kept", NoteKind::Info);
            return vec![];
        }
        if let Conn::Lost { .. } = self.conn {
            let text = format!("not connected to {} — your text is kept; retrying…", self.server);
            self.notice_until(text, NoteKind::Error, Until::ConnChanges);
            return vec![];
        }
        if let TurnState::Running { turn_id, client } = &self.turn {
            let by = if self.is_me(client) { "you".to_owned() } else { client.name.clone() };
            let text = format!("busy — turn {} running (started by {by}); your text is kept", self.short_turn(turn_id));
            let until = Until::TurnEnds(turn_id.clone());
            self.notice_until(text, NoteKind::Error, until);
            return vec![];
        }
        self.scroll = 0;
        self.notice = None;
        vec![Effect::Submit(self.composer.take())]
    }

    fn run_command(&mut self, cmd: SlashCommand) -> Vec<Effect> {
        match cmd {
            SlashCommand::Share => {
                // Highlight what can be done: start in LOCAL, stop in SHARED.
                let selected = if self.mode == Mode::Shared { 2 } else { 0 };
                self.popup = Some(Popup::ShareMenu { selected });
                if self.mode == Mode::Shared && self.conn == Conn::Up {
                    // Threads made since attaching may now share the header's
                    // short id: list them again (never from LOCAL or while the
                    // server is away: opening a menu must not start a server).
                    return vec![Effect::LoadThreads];
                }
            }
            SlashCommand::Status => self.popup = Some(Popup::Status),
            SlashCommand::Help => self.popup = Some(Popup::Help),
            SlashCommand::Quit => {
                self.quit = true;
                return vec![Effect::Quit];
            }
        }
        vec![]
    }

    fn popup_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(popup) = self.popup.as_mut() else {
            return vec![];
        };
        match popup {
            Popup::Status | Popup::Help | Popup::Shared { .. } => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q')) {
                    self.popup = None;
                }
                vec![]
            }
            Popup::ShareMenu { selected } => match key.code {
                KeyCode::Esc => {
                    self.popup = None;
                    vec![]
                }
                KeyCode::Up => {
                    *selected = (*selected + SHARE_ACTIONS.len() - 1) % SHARE_ACTIONS.len();
                    vec![]
                }
                KeyCode::Down => {
                    *selected = (*selected + 1) % SHARE_ACTIONS.len();
                    vec![]
                }
                KeyCode::Enter => {
                    let choice = *selected;
                    self.share_action(choice)
                }
                KeyCode::Char(d @ '1'..='4') => self.share_action(d as usize - '1' as usize),
                _ => vec![],
            },
            Popup::Join(p) => match key.code {
                KeyCode::Esc => {
                    self.popup = None;
                    vec![]
                }
                KeyCode::Up => {
                    p.selected = p.selected.saturating_sub(1);
                    vec![]
                }
                KeyCode::Down => {
                    let n = p.threads.as_ref().map_or(0, Vec::len);
                    if p.selected + 1 < n {
                        p.selected += 1;
                    }
                    vec![]
                }
                KeyCode::Backspace => {
                    p.input.pop();
                    vec![]
                }
                KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    p.input.clear();
                    p.error = None;
                    vec![]
                }
                KeyCode::Char(c)
                    if !c.is_whitespace() && !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                {
                    p.input.push(c);
                    p.error = None;
                    vec![]
                }
                KeyCode::Enter => {
                    let id = if !p.input.trim().is_empty() {
                        p.input.trim().to_owned()
                    } else if let Some(t) = p.threads.as_ref().and_then(|t| t.get(p.selected)) {
                        t.id.clone()
                    } else {
                        return vec![];
                    };
                    // The thread shown now, by its id or a start only it has.
                    let here = IdQuery::parse("id", &id).is_ok_and(|q| {
                        q.matches(&self.thread_id) && self.known_threads.iter().filter(|t| q.matches(t)).count() <= 1
                    });
                    if self.mode == Mode::Shared && here {
                        self.popup = None;
                        let text = format!("already on thread {}", self.short_thread());
                        self.notice(text, NoteKind::Info);
                        return vec![];
                    }
                    if self.pending_action {
                        return vec![];
                    }
                    self.pending_action = true;
                    vec![Effect::Join(id)]
                }
                _ => vec![],
            },
        }
    }

    fn share_action(&mut self, choice: usize) -> Vec<Effect> {
        match choice {
            0 => {
                self.popup = None;
                if self.mode == Mode::Shared {
                    self.notice(format!("already sharing thread {}", self.thread_id), NoteKind::Info);
                    return vec![];
                }
                if self.pending_action {
                    return vec![];
                }
                self.pending_action = true;
                if let TurnState::Running { turn_id, .. } = &self.turn {
                    // Sharing now would leave this turn behind in the private
                    // engine: finish it first, and say so.
                    let text = format!(
                        "sharing starts when turn {} finishes — Ctrl-C interrupts it, /share 3 cancels",
                        self.short_turn(turn_id)
                    );
                    self.share_after = Some(turn_id.clone());
                    self.notice_until(text, NoteKind::Info, Until::Attached);
                    return vec![];
                }
                self.notice_until("starting to share…", NoteKind::Info, Until::Attached);
                vec![Effect::StartSharing]
            }
            1 => {
                self.popup = Some(Popup::Join(JoinPicker::default()));
                vec![Effect::LoadThreads]
            }
            2 => {
                self.popup = None;
                if self.mode == Mode::Local {
                    if self.share_after.take().is_some() {
                        self.pending_action = false;
                        self.notice("sharing cancelled — this session stays private", NoteKind::Info);
                    } else {
                        self.notice("not sharing — this session is private", NoteKind::Info);
                    }
                    return vec![];
                }
                if self.pending_action {
                    return vec![];
                }
                self.pending_action = true;
                vec![Effect::StopSharing]
            }
            _ => {
                self.popup = Some(Popup::Help);
                vec![]
            }
        }
    }
}
