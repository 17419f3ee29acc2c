//! Shared fixtures: an app with a fixed identity and events to feed it.
#![allow(dead_code)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tandem_protocol::{AgentInfo, ClientInfo, Event, EventBody, Item, Thread, ThreadStatus, TurnStatus};
use tandem_tui::app::{App, Effect, Mode, Msg};

pub const THREAD: &str = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f";

pub fn me() -> ClientInfo {
    ClientInfo::new("tandem-tui (ada, 3f2a)", "0.1.0")
}

pub fn peer() -> ClientInfo {
    ClientInfo::new("tandem-tui (bob, 77c1)", "0.1.0")
}

pub fn script() -> ClientInfo {
    ClientInfo::new("tandem-share", "0.1.0")
}

pub fn local_app() -> App {
    let mut app = App::new(Mode::Local, THREAD.into(), "in-process".into(), me());
    app.update(Msg::Attached {
        mode: Mode::Local,
        thread_id: THREAD.into(),
        server: "in-process".into(),
        agent: "echo".into(),
    });
    app
}

pub fn shared_app() -> App {
    let mut app = App::new(Mode::Local, THREAD.into(), "in-process".into(), me());
    app.update(Msg::Attached {
        mode: Mode::Shared,
        thread_id: THREAD.into(),
        server: "unix:/home/ada/.local/share/tandem/app-server.sock".into(),
        agent: "echo".into(),
    });
    app
}

/// Feeds events, numbering them from the app's last seq.
pub struct Feed<'a> {
    pub app: &'a mut App,
}

impl Feed<'_> {
    pub fn push(&mut self, body: EventBody) -> Vec<Effect> {
        self.push_as(body, false)
    }

    fn push_as(&mut self, body: EventBody, imported: bool) -> Vec<Effect> {
        let seq = self.app.transcript.last_seq + 1;
        let ev = Event {
            seq,
            ts: format!("2026-11-22T11:03:{:02}.000Z", seq % 60),
            thread_id: THREAD.into(),
            body,
            imported,
            original_ts: imported.then(|| "2026-11-21T09:00:00.000Z".to_owned()),
        };
        self.app.update(Msg::Event(ev))
    }

    /// An imported turn, as the engine writes it: started, the whole answer, its end.
    pub fn imported(
        &mut self,
        turn: &str,
        input: &str,
        client: ClientInfo,
        agent: AgentInfo,
        answer: &str,
        (status, error): (TurnStatus, Option<&str>),
    ) {
        self.push_as(EventBody::TurnStarted { turn_id: turn.into(), input: input.into(), client, agent }, true);
        let item = Item::agent_message(format!("{turn}-i"), answer);
        self.push_as(EventBody::ItemCompleted { turn_id: turn.into(), item }, true);
        let error = error.map(str::to_owned);
        self.push_as(EventBody::TurnCompleted { turn_id: turn.into(), status, error }, true);
    }

    /// A plain `turn/completed`; the effects it caused.
    pub fn completed_effects(&mut self, turn: &str) -> Vec<Effect> {
        self.push(EventBody::TurnCompleted { turn_id: turn.into(), status: TurnStatus::Completed, error: None })
    }

    pub fn started(&mut self, turn: &str, input: &str, client: ClientInfo) {
        self.push(EventBody::TurnStarted {
            turn_id: turn.into(),
            input: input.into(),
            client,
            agent: AgentInfo { kind: "echo".into(), model: None },
        });
    }

    pub fn delta(&mut self, turn: &str, text: &str) {
        self.push(EventBody::AgentMessageDelta {
            turn_id: turn.into(),
            item_id: format!("{turn}-i"),
            delta: text.into(),
        });
    }

    pub fn completed(&mut self, turn: &str, status: TurnStatus, error: Option<&str>) {
        let text = self.app.transcript.turn(turn).map(|t| t.response.clone()).unwrap_or_default();
        self.push(EventBody::ItemCompleted {
            turn_id: turn.into(),
            item: Item::agent_message(format!("{turn}-i"), text),
        });
        self.push(EventBody::TurnCompleted { turn_id: turn.into(), status, error: error.map(str::to_owned) });
    }

    pub fn item(&mut self, turn: &str, item_json: serde_json::Value) {
        let item: Item = serde_json::from_value(item_json).unwrap();
        self.push(EventBody::ItemCompleted { turn_id: turn.into(), item });
    }

    pub fn turn(&mut self, turn: &str, input: &str, client: ClientInfo, answer: &str) {
        self.started(turn, input, client);
        for (i, w) in answer.split(' ').enumerate() {
            self.delta(turn, &if i == 0 { w.to_owned() } else { format!(" {w}") });
        }
        self.completed(turn, TurnStatus::Completed, None);
    }
}

pub fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub fn ctrl(app: &mut App, c: char) -> Vec<Effect> {
    app.update(Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)))
}

pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

pub fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| tandem_tui::ui::draw(f, app)).unwrap();
    terminal
}

pub fn thread(id: &str, title: &str, last_seq: u64, running: bool) -> Thread {
    Thread {
        id: id.into(),
        title: Some(title.into()),
        shared: true,
        status: if running { ThreadStatus::Running } else { ThreadStatus::Idle },
        active_turn: running.then(|| tandem_protocol::ActiveTurn { id: "t".into(), client: script() }),
        last_seq,
        created_at: "2026-11-22T11:00:00.000Z".into(),
        updated_at: "2026-11-22T11:00:00.000Z".into(),
    }
}
