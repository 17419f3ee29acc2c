//! The transcript: what a thread's events add up to — turns (who asked what,
//! the answer as it streams, how it ended) and notes from Tandem itself. Each
//! entry renders itself at a given width.

use std::cell::RefCell;
use std::collections::HashMap;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use tandem_protocol::items;
use tandem_protocol::{AgentInfo, ClientInfo, Event, EventBody, ImportedTurn, TurnStatus};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnCell {
    pub id: String,
    pub input: String,
    pub client: ClientInfo,
    pub agent: AgentInfo,
    pub imported: bool,
    /// What the agent did besides talking: commands, file changes, tool calls.
    pub actions: Vec<String>,
    pub started_at: String,
    pub response: String,
    pub status: TurnStatus,
    pub error: Option<String>,
}

/// The error a turn still running when this session stopped sharing is
/// imported with: the private copy ends there, with what it had so far.
pub const CUT_SHORT_BY_STOP: &str =
    "still running on the shared thread when this session stopped sharing; the rest is there";

/// The same when sharing started (the TUI waits for a LOCAL turn to end, so
/// this is only a safety net).
pub const CUT_SHORT_BY_SHARE: &str = "still running when sharing started";

/// How a note looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    Info,
    Success,
    Error,
}

/// An entry of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Turn(Box<TurnCell>),
    Note(String, NoteKind),
}

/// The conversation as shown.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    entries: Vec<Entry>,
    turn_index: HashMap<String, usize>,
    /// Each entry's rendered height at a width, until the entry changes: lets a
    /// frame skip the entries above the screen without wrapping them.
    heights: RefCell<Vec<Option<(u16, usize)>>>,
    /// The last seq applied (events at or below it are repeats and ignored).
    pub last_seq: u64,
    pub title: Option<String>,
}

impl Transcript {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn clear(&mut self) {
        *self = Transcript::default();
    }

    /// The turns, in order.
    pub fn turns(&self) -> impl Iterator<Item = &TurnCell> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Turn(t) => Some(&**t),
            Entry::Note(..) => None,
        })
    }

    /// The turns as imports, each with its own status, error and agent. One
    /// still running ends `interrupted` with `unfinished` as its error and the
    /// answer so far: nothing is dropped.
    pub fn imports(&self, unfinished: &str) -> Vec<ImportedTurn> {
        self.turns()
            .map(|t| {
                let (status, error) = match t.status {
                    TurnStatus::Running => (TurnStatus::Interrupted, Some(unfinished.to_owned())),
                    s => (s, t.error.clone()),
                };
                ImportedTurn {
                    input: t.input.clone(),
                    client: Some(t.client.clone()),
                    response: t.response.clone(),
                    started_at: Some(t.started_at.clone()),
                    status: Some(status),
                    error,
                    agent: Some(t.agent.clone()),
                }
            })
            .collect()
    }

    pub fn turn(&self, id: &str) -> Option<&TurnCell> {
        match self.entries.get(*self.turn_index.get(id)?)? {
            Entry::Turn(t) => Some(t),
            Entry::Note(..) => None,
        }
    }

    pub fn push_note(&mut self, text: impl Into<String>, kind: NoteKind) {
        self.entries.push(Entry::Note(text.into(), kind));
        self.heights.get_mut().push(None);
    }

    /// The lines entry `i` takes at `width` (cached until it changes).
    pub fn height(&self, i: usize, width: u16, is_me: &dyn Fn(&ClientInfo) -> bool) -> usize {
        if let Some(Some((w, h))) = self.heights.borrow().get(i)
            && *w == width
        {
            return *h;
        }
        let h = self.entries[i].render(width, is_me).len();
        if let Some(slot) = self.heights.borrow_mut().get_mut(i) {
            *slot = Some((width, h));
        }
        h
    }

    fn turn_mut(&mut self, id: &str) -> Option<&mut TurnCell> {
        let i = *self.turn_index.get(id)?;
        if let Some(slot) = self.heights.get_mut().get_mut(i) {
            *slot = None;
        }
        match self.entries.get_mut(i)? {
            Entry::Turn(t) => Some(t),
            Entry::Note(..) => None,
        }
    }

    /// Applies one event; repeats (seq already seen) are ignored.
    pub fn apply(&mut self, ev: &Event) {
        if ev.seq <= self.last_seq {
            return;
        }
        self.last_seq = ev.seq;
        match &ev.body {
            EventBody::ThreadStarted { title, .. } | EventBody::ThreadUpdated { title, .. } => {
                self.title = title.clone();
            }
            EventBody::TurnStarted { turn_id, input, client, agent } => {
                self.turn_index.insert(turn_id.clone(), self.entries.len());
                self.heights.get_mut().push(None);
                self.entries.push(Entry::Turn(Box::new(TurnCell {
                    id: turn_id.clone(),
                    input: input.clone(),
                    client: client.clone(),
                    agent: agent.clone(),
                    actions: Vec::new(),
                    imported: ev.imported,
                    started_at: ev.original_ts.clone().unwrap_or_else(|| ev.ts.clone()),
                    response: String::new(),
                    status: TurnStatus::Running,
                    error: None,
                })));
            }
            EventBody::AgentMessageDelta { turn_id, delta, .. } => {
                if let Some(t) = self.turn_mut(turn_id) {
                    t.response.push_str(delta);
                }
            }
            EventBody::ItemCompleted { turn_id, item } => {
                if let Some(lines) = item.summary(4) {
                    if let Some(t) = self.turn_mut(turn_id) {
                        t.actions.extend(lines);
                    }
                    return;
                }
                // Imported answers arrive whole; live ones were streamed.
                if let (Some(t), Some(text)) = (self.turn_mut(turn_id), item.text.as_deref())
                    && item.item_type == items::AGENT_MESSAGE
                    && t.response.is_empty()
                {
                    t.response = text.to_owned();
                }
            }
            EventBody::TurnCompleted { turn_id, status, error } => {
                if let Some(t) = self.turn_mut(turn_id) {
                    t.status = *status;
                    t.error = error.clone();
                }
            }
            EventBody::ItemStarted { .. } | EventBody::Unknown => {}
        }
    }
}

/// Styles with fixed meanings: dim = secondary, cyan = hints and status,
/// green/red = success/failure.
pub mod style {
    use super::*;
    pub fn dim() -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }
    pub fn hint() -> Style {
        Style::default().fg(Color::Cyan)
    }
    pub fn ok() -> Style {
        Style::default().fg(Color::Green)
    }
    pub fn bad() -> Style {
        Style::default().fg(Color::Red)
    }
    pub fn warn() -> Style {
        Style::default().fg(Color::Yellow)
    }
}

impl Entry {
    /// The entry's lines at `width`; `is_me` says which client is this TUI.
    pub fn render(&self, width: u16, is_me: &dyn Fn(&ClientInfo) -> bool) -> Vec<Line<'static>> {
        let width = width.max(8) as usize;
        let mut lines = Vec::new();
        match self {
            Entry::Note(text, kind) => {
                let st = match kind {
                    NoteKind::Info => style::hint(),
                    NoteKind::Success => style::ok(),
                    NoteKind::Error => style::bad(),
                };
                for l in wrap(text, width - 2) {
                    lines.push(Line::from(vec![Span::styled("• ", st), Span::styled(l, st)]));
                }
            }
            Entry::Turn(t) => {
                let mine = is_me(&t.client);
                let who = if mine { "you".to_owned() } else { t.client.name.clone() };
                let who_style = if mine {
                    style::hint().add_modifier(Modifier::BOLD)
                } else {
                    Style::default().fg(Color::Magenta).add_modifier(Modifier::BOLD)
                };
                let head = format!("{who}{}: ", if t.imported { " (imported)" } else { "" });
                let head_width = head.width() + 2;
                let bold = Style::default().add_modifier(Modifier::BOLD);
                let mut first = vec![Span::styled("› ", style::hint()), Span::styled(head, who_style)];
                // The prompt follows the name when there is room, else goes below it.
                let fits = head_width + 12 <= width && t.input.starts_with(&wrap(&t.input, width - head_width)[0]);
                let rest = if fits {
                    let line = wrap(&t.input, width - head_width).swap_remove(0);
                    let rest = t.input.get(line.len()..).unwrap_or("");
                    let rest = rest.strip_prefix([' ', '\n']).unwrap_or(rest).to_owned();
                    first.push(Span::styled(line, bold));
                    lines.push(Line::from(first));
                    rest
                } else {
                    lines.push(Line::from(first));
                    t.input.clone()
                };
                if !rest.is_empty() {
                    for l in wrap(&rest, width - 2) {
                        lines.push(Line::from(vec![Span::raw("  "), Span::styled(l, bold)]));
                    }
                }
                for action in &t.actions {
                    for l in wrap(action, width - 2) {
                        lines.push(Line::from(vec![Span::raw("  "), Span::styled(l, style::dim())]));
                    }
                }
                if !t.response.is_empty() {
                    for l in wrap(&t.response, width - 2) {
                        lines.push(Line::from(vec![Span::raw("  "), Span::raw(l)]));
                    }
                }
                let (mark, text, st) = match t.status {
                    TurnStatus::Running => ("…", format!("running · {}", t.agent), style::hint()),
                    TurnStatus::Completed => {
                        ("✓", format!("completed · {}", t.agent), style::ok().add_modifier(Modifier::DIM))
                    }
                    TurnStatus::Interrupted => (
                        "■",
                        match t.error.as_deref().map(|e| (e, interrupter(e))) {
                            // The engine says "interrupted by <client>": this TUI is "you".
                            Some((_, Some(by))) if is_me(&by) => "interrupted by you".to_owned(),
                            Some((e, Some(_))) => e.to_owned(),
                            Some((e, None)) => format!("interrupted · {e}"),
                            None => "interrupted".to_owned(),
                        },
                        style::warn(),
                    ),
                    TurnStatus::Failed => {
                        ("✗", format!("failed: {}", t.error.as_deref().unwrap_or("unknown error")), style::bad())
                    }
                };
                for (i, l) in wrap(&text, width - 4).into_iter().enumerate() {
                    let prefix = if i == 0 { format!("  {mark} ") } else { "    ".to_owned() };
                    lines.push(Line::from(vec![Span::styled(prefix, st), Span::styled(l, st)]));
                }
            }
        }
        lines.push(Line::default());
        lines
    }
}

/// Who interrupted a turn, from the engine's "interrupted by NAME VERSION".
fn interrupter(error: &str) -> Option<ClientInfo> {
    let by = error.strip_prefix("interrupted by ")?;
    Some(match by.rsplit_once(' ') {
        Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => ClientInfo::new(name, version),
        _ => ClientInfo::new(by, ""),
    })
}

/// Word-wraps `text` to `width` columns, keeping its newlines and breaking
/// words longer than a line. Widths are measured per grapheme cluster, as the
/// screen draws them, and a cluster (a flag, a ZWJ family) is never split.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut line_w = 0;
        for word in para.split(' ') {
            let ww = word.width();
            let sep = usize::from(!line.is_empty() || line_w > 0);
            if line_w + sep + ww <= width {
                if sep == 1 {
                    line.push(' ');
                }
                line.push_str(word);
                line_w += sep + ww;
                continue;
            }
            if line_w > 0 {
                out.push(std::mem::take(&mut line));
                line_w = 0;
            }
            // The word alone: break it if it is wider than a line.
            for g in word.graphemes(true) {
                let gw = g.width();
                if line_w + gw > width && line_w > 0 {
                    out.push(std::mem::take(&mut line));
                    line_w = 0;
                }
                line.push_str(g);
                line_w += gw;
            }
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_breaks_long_ones() {
        assert_eq!(wrap("hello big world", 9), ["hello big", "world"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\n\nb", 10), ["a", "", "b"]);
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("日本語テキスト", 6), ["日本語", "テキス", "ト"]);
        // Flags and ZWJ sequences are one cluster each, never split.
        assert_eq!(wrap("🇫🇷🇫🇷🇫🇷", 5), ["🇫🇷🇫🇷", "🇫🇷"]);
        let family = "👩\u{200d}👩\u{200d}👧";
        assert_eq!(wrap(&family.repeat(3), 4), [family.repeat(2), family.to_owned()]);
    }

    fn ev(seq: u64, body: EventBody) -> Event {
        Event {
            seq,
            ts: "2026-11-22T11:03:04.123Z".into(),
            thread_id: "t".into(),
            body,
            imported: false,
            original_ts: None,
        }
    }

    #[test]
    fn events_build_turns_and_repeats_are_ignored() {
        let mut t = Transcript::default();
        let started = ev(
            2,
            EventBody::TurnStarted {
                turn_id: "u".into(),
                input: "hi".into(),
                client: ClientInfo::new("tandem-share", "0.1.0"),
                agent: tandem_protocol::AgentInfo { kind: "echo".into(), model: None },
            },
        );
        t.apply(&started);
        t.apply(&ev(3, EventBody::AgentMessageDelta { turn_id: "u".into(), item_id: "i".into(), delta: "hi".into() }));
        t.apply(&ev(3, EventBody::AgentMessageDelta { turn_id: "u".into(), item_id: "i".into(), delta: "hi".into() }));
        t.apply(&ev(
            4,
            EventBody::ItemCompleted { turn_id: "u".into(), item: tandem_protocol::Item::agent_message("i", "hi") },
        ));
        t.apply(&ev(5, EventBody::TurnCompleted { turn_id: "u".into(), status: TurnStatus::Completed, error: None }));
        let turn = t.turn("u").unwrap();
        assert_eq!(turn.response, "hi");
        assert_eq!(turn.status, TurnStatus::Completed);
        assert_eq!(t.last_seq, 5);
    }
}
