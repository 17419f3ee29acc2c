//! Drawing: everything on screen is computed from [`App`] here, nothing else.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use tandem_protocol::ClientInfo;
use tandem_protocol::ids::unique_prefixes;
use unicode_width::UnicodeWidthStr;

use crate::app::{App, Conn, Mode, Popup, SHARE_ACTIONS, TurnState, WebLink};
use crate::transcript::{NoteKind, style};

/// Threads the join picker lists at once.
const JOIN_ROWS: usize = 10;

/// The join picker's width (less on a narrow screen).
const JOIN_WIDTH: u16 = 84;

/// `text` cut to `width` cells, never inside a grapheme cluster.
fn fit(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for g in unicode_segmentation::UnicodeSegmentation::graphemes(text, true) {
        w += g.width();
        if w > width {
            break;
        }
        out.push_str(g);
    }
    out
}

/// Most composer lines shown at once.
const COMPOSER_MAX_LINES: u16 = 6;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    // The composer grows with its wrapped text, up to a few lines, then scrolls.
    let composer_lines =
        (app.composer.layout(area.width.saturating_sub(2) as usize).rows.len() as u16).clamp(1, COMPOSER_MAX_LINES);
    let notice_height = u16::from(app.notice.is_some()) + 2 * u16::from(matches!(app.conn, Conn::Lost { .. }));
    let [header, body, notice, composer, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(notice_height),
        Constraint::Length(composer_lines + 2),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, app, header);
    draw_transcript(frame, app, body);
    draw_notice(frame, app, notice);
    draw_composer(frame, app, composer);
    draw_footer(frame, app, footer);
    let matches = app.slash_matches();
    if !matches.is_empty() {
        draw_slash_popup(frame, app, &matches, composer);
    }
    match &app.popup {
        Some(Popup::ShareMenu { selected }) => draw_share_menu(frame, app, *selected, body),
        Some(Popup::Status) => draw_status(frame, app, body),
        Some(Popup::Help) => draw_help(frame, body),
        Some(Popup::Join(_)) => draw_join(frame, app, body),
        Some(Popup::Shared { thread_id }) => draw_shared(frame, app, thread_id, body),
        None => {}
    }
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let badge = match app.mode {
        Mode::Local => {
            Span::styled(" LOCAL ", Style::default().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD))
        }
        Mode::Shared => Span::styled(
            format!(" SHARED {} ", app.short_thread()),
            Style::default().fg(Color::Black).bg(Color::Green).add_modifier(Modifier::BOLD),
        ),
    };
    let mut spans = vec![Span::styled(" Tandem ", Style::default().add_modifier(Modifier::BOLD)), badge];
    if let Some(title) = &app.transcript.title {
        spans.push(Span::styled(format!("  {title}"), style::dim()));
    }
    if !app.agent.is_empty() {
        spans.push(Span::styled(format!("  agent: {}", app.agent), style::dim()));
    }
    frame.render_widget(Line::from(spans), area);
}

/// The transcript's visible lines. Entries are measured from the bottom up
/// (heights are cached per entry) and only those on screen are rendered, so a
/// frame's cost does not grow with the conversation's length or the scroll.
pub fn visible_lines(app: &App, width: u16, height: u16) -> Vec<Line<'static>> {
    let is_me = |c: &ClientInfo| app.is_me(c);
    let transcript = &app.transcript;
    let height = height as usize;
    let needed = height + app.scroll as usize;
    let mut total = 0;
    let mut first = transcript.entries().len();
    while first > 0 && total < needed {
        first -= 1;
        total += transcript.height(first, width, &is_me);
    }
    // Lines [start, end) of the entries from `first` on are on screen.
    let scroll = (app.scroll as usize).min(total.saturating_sub(height));
    let end = total - scroll;
    let start = end.saturating_sub(height);
    let mut out = Vec::with_capacity(height);
    let mut offset = 0;
    for (i, entry) in transcript.entries().iter().enumerate().skip(first) {
        if offset >= end {
            break;
        }
        let h = transcript.height(i, width, &is_me);
        if offset + h > start {
            let lines = entry.render(width, &is_me);
            let from = start.saturating_sub(offset);
            let to = (end - offset).min(lines.len());
            out.extend(lines.into_iter().take(to).skip(from));
        }
        offset += h;
    }
    out
}

fn draw_transcript(frame: &mut Frame, app: &App, area: Rect) {
    if app.transcript.entries().is_empty() {
        let text = match app.mode {
            Mode::Local => vec![
                Line::from("A private session: only this terminal sees it.".bold()),
                Line::from("Type a prompt and press Enter. /share shares it; /help lists keys.").style(style::dim()),
            ],
            Mode::Shared => vec![
                Line::from(format!("Shared thread {}", app.thread_id).bold()),
                Line::from("Everyone attached sees the same turns, live.").style(style::dim()),
            ],
        };
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: false }),
            area.inner(ratatui::layout::Margin::new(1, 1)),
        );
        return;
    }
    app.view_width.set(area.width);
    let lines = visible_lines(app, area.width, area.height);
    frame.render_widget(Paragraph::new(lines), area);
    if app.scroll > 0 && area.height > 1 {
        // Scrolled up: say so on the last row, and whether more came since.
        let more = if app.unseen { " · new messages below" } else { "" };
        let text = format!(" ↓ scrolled up{more} — End jumps to the latest ");
        let row = Rect { y: area.y + area.height - 1, height: 1, ..area };
        frame.render_widget(Clear, row);
        let st = if app.unseen { style::hint().add_modifier(Modifier::BOLD) } else { style::hint() };
        frame.render_widget(Line::styled(text, st).right_aligned(), row);
    }
}

fn draw_notice(frame: &mut Frame, app: &App, area: Rect) {
    let mut lines = Vec::new();
    if let Conn::Lost { reason } = &app.conn {
        lines.push(Line::styled(format!("⚠ connection lost — retrying {} ({reason})", app.server), style::bad()));
        lines.push(Line::styled("  if the app-server stopped, `tandem app-server start` brings it back", style::dim()));
    }
    if let Some(n) = &app.notice {
        let st = match n.kind {
            NoteKind::Info => style::hint(),
            NoteKind::Success => style::ok(),
            NoteKind::Error => style::bad(),
        };
        lines.push(Line::styled(n.text.clone(), st));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_composer(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().border_style(style::dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if app.composer.is_empty() {
        let hint = match app.mode {
            Mode::Local => "Ask the agent… (/ for commands)",
            Mode::Shared => "Ask the agent — everyone on this thread sees it (/ for commands)",
        };
        frame.render_widget(Line::styled(hint, style::dim()), inner);
    }
    // Wrapped to the box; scrolled so the cursor's row is in view.
    let layout = app.composer.layout(inner.width as usize);
    let (row, col) = layout.cursor;
    let top = row.saturating_sub((inner.height as usize).saturating_sub(1));
    if !app.composer.is_empty() {
        let lines: Vec<Line> = layout.rows.into_iter().skip(top).take(inner.height as usize).map(Line::from).collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
    if app.popup.is_none() && inner.width > 0 && inner.height > 0 {
        let x = (col as u16).min(inner.width - 1);
        frame.set_cursor_position((inner.x + x, inner.y + (row - top) as u16));
    }
}

fn turn_text(app: &App) -> String {
    match &app.turn {
        TurnState::Idle => "idle".to_owned(),
        TurnState::Running { client, .. } => {
            let by = if app.is_me(client) { "you".to_owned() } else { client.name.clone() };
            format!("running, started by {by}")
        }
    }
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let running = matches!(app.turn, TurnState::Running { .. });
    let turn = format!("turn {} ", turn_text(app));
    let turn_style = if running { style::hint() } else { style::dim() };
    let ctrl_c = if running { "Ctrl-C interrupt" } else { "Ctrl-C quit" };
    // The longest set of hints that fits beside the turn state.
    let room = (area.width as usize).saturating_sub(turn.width() + 2);
    let hints = [
        format!("Enter send · Alt+Enter newline · / commands · {ctrl_c}"),
        format!("Enter send · / commands · {ctrl_c}"),
        "/ commands".to_owned(),
        String::new(),
    ]
    .into_iter()
    .find(|h| h.width() <= room)
    .unwrap_or_default();
    let [left, right] = Layout::horizontal([Constraint::Min(0), Constraint::Length(turn.width() as u16)]).areas(area);
    frame.render_widget(Line::styled(format!(" {hints}"), style::dim()), left);
    frame.render_widget(Line::styled(turn, turn_style), right);
}

/// Mode, Thread, Server and Turn, as `/status` and `/share` show them.
pub fn status_lines(app: &App) -> Vec<Line<'static>> {
    let label = |s: &'static str| Span::styled(format!("{s:<8}"), style::dim());
    let (mode, mode_style) = match app.mode {
        Mode::Local => ("LOCAL (private, in this terminal only)", style::warn()),
        Mode::Shared => ("SHARED", style::ok()),
    };
    let server = match (&app.mode, &app.conn) {
        (Mode::Local, _) => "none (in-process)".to_owned(),
        (Mode::Shared, Conn::Up) => app.server.clone(),
        (Mode::Shared, Conn::Lost { reason }) => format!("{} — unreachable ({reason})", app.server),
    };
    let mut lines = vec![
        Line::from(vec![label("Mode"), Span::styled(mode, mode_style)]),
        Line::from(vec![label("Thread"), Span::raw(app.thread_id.clone())]),
        Line::from(vec![label("Server"), Span::raw(server)]),
        Line::from(vec![label("Turn"), Span::raw(turn_text(app))]),
    ];
    if let Some(WebLink::Ready(url)) = &app.web_link {
        lines.push(Line::from(vec![label("Link"), Span::raw(url.clone())]));
    }
    lines
}

fn popup_area(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn draw_box(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(Line::from(format!(" {title} ").bold())).border_style(style::hint());
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}

/// A menu entry, marked and highlighted when selected.
fn menu_line(text: String, selected: bool) -> Line<'static> {
    if selected {
        Line::from(vec![
            Span::styled("› ", style::hint()),
            Span::styled(text, style::hint().add_modifier(Modifier::BOLD)),
        ])
    } else {
        Line::from(vec![Span::raw("  "), Span::raw(text)])
    }
}

fn draw_share_menu(frame: &mut Frame, app: &App, selected: usize, body: Rect) {
    let width = 64.min(body.width);
    let mut actions = Vec::new();
    for (i, action) in SHARE_ACTIONS.iter().enumerate() {
        let text = format!("{} {action}", i + 1);
        actions.push(menu_line(text, i == selected));
    }
    let hint = Line::styled("↑↓ Enter or 1–4 · Esc close", style::dim());
    let mut lines = status_lines(app);
    lines.push(Line::default());
    lines.extend(actions.iter().cloned());
    lines.push(Line::default());
    lines.push(hint.clone());
    // On a short screen the actions matter more than the status (/status has it).
    if wrapped_height(&lines, width.saturating_sub(2)) + 2 > body.height {
        lines = actions;
        lines.push(hint);
    }
    let area = popup_area(body, width, wrapped_height(&lines, width.saturating_sub(2)) + 2);
    draw_box(frame, area, "Share", lines);
}

/// How many rows `lines` take when wrapped to `width` (at least one each).
fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    lines.iter().map(|l| l.width().div_ceil(width).max(1) as u16).sum()
}

fn draw_status(frame: &mut Frame, app: &App, body: Rect) {
    let mut lines = status_lines(app);
    lines.push(Line::default());
    lines.push(Line::styled("Esc close", style::dim()));
    let area = popup_area(body, 64, wrapped_height(&lines, 62) + 2);
    draw_box(frame, area, "Status", lines);
}

/// The help text: keys, commands, and what sharing does.
pub fn help_lines() -> Vec<Line<'static>> {
    let head = |s: &'static str| Line::from(s.bold());
    let item = |k: &'static str, v: &'static str| {
        Line::from(vec![Span::styled(format!("  {k:<16}"), style::hint()), Span::raw(v)])
    };
    vec![
        head("Keys"),
        item("Enter", "send · Alt+Enter or Ctrl-J: newline"),
        item("Up / Down", "earlier prompts · PgUp/PgDn, wheel: scroll"),
        item("End", "back to the latest · Ctrl-U: delete to line start"),
        item("Ctrl-C", "interrupt the turn (twice if another client started it)"),
        item("", "on an idle composer, twice: quit"),
        head("Commands"),
        item("/share", "share, join, stop sharing"),
        item("/status", "mode, thread, server, turn"),
        item("/help · /quit", ""),
        head("About sharing"),
        Line::from("  Sharing puts this conversation on your local Tandem app-server. Other"),
        Line::from("  terminals and scripts can then follow it and post into it:"),
        Line::styled("    tandem share post --thread ID --prompt \"…\"", style::hint()),
        Line::styled("    tandem share tail --thread ID --from 1", style::hint()),
        Line::styled("    tandem share get  --thread ID --json", style::hint()),
        Line::from("  One turn runs at a time: a prompt sent while another runs is refused"),
        Line::from("  as busy and stays in your composer. Several TUIs on one thread are"),
        Line::from("  peers: all see every turn. Stop sharing keeps the history here."),
        Line::from("  With an http listener, sharing also makes a read-only web link. Stop"),
        Line::from("  sharing turns the thread's sharing off: link viewers lose access."),
        Line::styled("  Esc close · select text with Shift+drag", style::dim()),
    ]
}

fn draw_help(frame: &mut Frame, body: Rect) {
    let lines = help_lines();
    let area = popup_area(body, 78, lines.len() as u16 + 2);
    draw_box(frame, area, "Help", lines);
}

/// The line others run to post into a shared thread.
pub fn post_command(thread_id: &str) -> String {
    format!("tandem share post --thread {thread_id} --prompt \"…\"")
}

/// How to get web links from a server without an http listener.
pub const WEB_LINK_HINT: &str = "tandem app-server restart --listen unix --listen http://127.0.0.1:7878";

fn draw_shared(frame: &mut Frame, app: &App, thread_id: &str, body: Rect) {
    let mut lines = vec![
        Line::from(vec![Span::raw("Sharing thread "), Span::styled(thread_id.to_owned(), Style::default().bold())]),
        Line::default(),
        Line::from("Post into it from any terminal or script:"),
        Line::styled(post_command(thread_id), style::hint()),
    ];
    match &app.web_link {
        Some(WebLink::Ready(url)) => {
            lines.push(Line::from("Watch it in a browser (read-only link):"));
            lines.push(Line::styled(url.clone(), style::hint()));
        }
        Some(WebLink::Creating) => lines.push(Line::styled("making a web link…", style::dim())),
        Some(WebLink::Failed(e)) => lines.push(Line::styled(format!("no web link: {e}"), style::bad())),
        Some(WebLink::NoListener) => {
            lines.push(Line::styled(format!("For a web link: {WEB_LINK_HINT}"), style::dim()));
        }
        None => {}
    }
    lines.extend([
        Line::from("Follow it:"),
        Line::styled(format!("tandem share tail --thread {thread_id} --from 1"), style::hint()),
        Line::default(),
        Line::styled("Esc close · /share 3 stops sharing (link viewers lose access)", style::dim()),
    ]);
    // Wide enough for the link on one line (easier to copy) when the screen is.
    let width = lines.iter().map(|l| l.width() as u16 + 2).max().unwrap_or(0).max(90).min(body.width);
    let area = popup_area(body, width, wrapped_height(&lines, width.saturating_sub(2)) + 2);
    draw_box(frame, area, "Shared", lines);
}

fn draw_join(frame: &mut Frame, app: &App, body: Rect) {
    let Some(Popup::Join(p)) = &app.popup else {
        return;
    };
    let mut lines = Vec::new();
    match &p.threads {
        None => lines.push(Line::styled("loading threads…", style::dim())),
        Some(t) if t.is_empty() => lines.push(Line::styled("no shared threads on the server yet", style::dim())),
        Some(threads) => {
            // Most recently active first (the runtime sorts them), each by the
            // shortest start of its id that is unique: what can be typed here.
            let shorts = unique_prefixes(&threads.iter().map(|t| t.id.as_str()).collect::<Vec<_>>());
            let id_width = shorts.iter().map(|s| s.len()).max().unwrap_or(8);
            // Ten at a time, scrolled so the highlighted one is among them.
            let first = p.selected.saturating_sub(JOIN_ROWS - 1);
            for (i, (t, short)) in threads.iter().zip(&shorts).enumerate().skip(first).take(JOIN_ROWS) {
                let state = if t.active_turn.is_some() { "running" } else { "idle" };
                let active = t.updated_at.get(..16).unwrap_or(&t.updated_at).replace('T', " ");
                let text = format!(
                    "{short:<id_width$}  {active}  {state:<7} {:>5} ev  {}",
                    t.last_seq,
                    t.title.as_deref().unwrap_or("")
                );
                // One row per thread: the title gives way on a narrow screen.
                lines.push(menu_line(
                    fit(&text, JOIN_WIDTH.min(body.width).saturating_sub(4) as usize),
                    i == p.selected && p.input.is_empty(),
                ));
            }
            if threads.len() > JOIN_ROWS {
                let last = (first + JOIN_ROWS).min(threads.len());
                lines.push(Line::styled(
                    format!("  {}–{last} of {} · ↑↓ for more", first + 1, threads.len()),
                    style::dim(),
                ));
            }
        }
    }
    lines.push(Line::default());
    lines.push(Line::from(vec![
        Span::styled("id: ", style::dim()),
        Span::raw(p.input.clone()),
        Span::styled("▏", style::hint()),
    ]));
    if let Some(e) = &p.error {
        lines.extend(e.lines().map(|l| Line::styled(l.to_owned(), style::bad())));
    }
    lines.push(Line::styled("↑↓ pick · or type an id or its start · Enter join · Esc close", style::dim()));
    let area = popup_area(body, JOIN_WIDTH, lines.len() as u16 + 2);
    draw_box(frame, area, "Join shared session", lines);
}

fn draw_slash_popup(frame: &mut Frame, app: &App, matches: &[crate::slash::SlashCommand], composer: Rect) {
    let height = matches.len() as u16 + 2;
    let area = Rect {
        x: composer.x,
        y: composer.y.saturating_sub(height),
        width: composer.width.min(60),
        height: height.min(composer.y),
    };
    let lines = matches
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = format!("/{:<8}", c.name());
            if i == app.slash_selected.min(matches.len() - 1) {
                Line::from(vec![
                    Span::styled(name, style::hint().add_modifier(Modifier::BOLD)),
                    Span::raw(c.description()),
                ])
            } else {
                Line::from(vec![Span::raw(name), Span::styled(c.description(), style::dim())])
            }
        })
        .collect::<Vec<_>>();
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().border_style(style::dim())), area);
}
