//! Session records → Tandem events. A Claude Code or Codex session file is a
//! log of JSON lines in the agent's own format; this turns each complete line
//! into the events a mirrored thread gets (user prompts → turns, assistant
//! text → `agentMessage`, tool calls → `commandExecution` / `fileChange` /
//! `toolCall`). It never does I/O and never fails.
//!
//! Nothing a session says is dropped: a record of a type it does not know
//! becomes a `toolCall` item named after it (`⚙ <type> record`), and what
//! the agent writes after the turn it belonged to has ended (more after a
//! Stop hook, a compaction, a resumed session) goes into a continuation
//! turn whose input is `(continued) <the prompt it continues>` — a new turn
//! because the ended one has its `turn/completed` already, and that input
//! because a reader of the transcript sees at once where it belongs. Left
//! out are only lines that are not JSON objects (counted in `skipped`) and
//! records that are pure bookkeeping, listed where they are matched with
//! why.
//!
//! Conversion is deterministic: the same lines from the same state give the
//! same events with the same ids (derived from the session id and the line's
//! offset), which is what lets the follower replay a batch after a crash and
//! drop exactly the events the log already has.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tandem_protocol::items::{self, fields};
use tandem_protocol::{ActiveTurn, AgentInfo, ClientInfo, EventBody, Item, TurnStatus};
use uuid::Uuid;

use tandem_engine::agent::{claude_item, claude_item_type};

/// Which agent wrote a session file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    Claude,
    Codex,
}

impl AgentKind {
    /// How people call it.
    pub fn display(self) -> &'static str {
        match self {
            AgentKind::Claude => "Claude Code",
            AgentKind::Codex => "Codex",
        }
    }
}

/// The namespace of the ids Tandem derives for mirrored sessions (UUID v5).
const NAMESPACE: Uuid = Uuid::from_u128(0x5d1f_3a2e_8c47_4b0e_9a61_7e2d_c4b8_a903);

/// The mirrored thread of a session: the same id every time it is shared.
pub fn thread_id_for(session: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("session:{}", session.to_ascii_lowercase()).as_bytes()).to_string()
}

/// One event for the mirrored thread, with the record's own time.
pub type Mirrored = (EventBody, Option<String>);

/// A tool call the agent started and has not finished yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct PendingTool {
    item_id: String,
    name: String,
    input: Value,
}

/// What the converter remembers between lines (persisted with the offset).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Converter {
    kind: AgentKind,
    session: String,
    /// The turn that is open in the mirrored thread.
    open_turn: Option<String>,
    /// Who started it (what `activeTurn` says while it is open).
    #[serde(default)]
    open_client: Option<ClientInfo>,
    /// The open turn is a continuation opened for one record that is not
    /// the agent at work (a late item, an unknown record): it ends with it.
    #[serde(default)]
    open_late: bool,
    /// The prompt of the last turn, named by a continuation of it.
    #[serde(default)]
    last_input: Option<String>,
    /// How the last turn ended, which a late continuation repeats.
    #[serde(default)]
    last_end: Option<(TurnStatus, Option<String>)>,
    /// Claude tool calls by `tool_use` id, waiting for their result.
    #[serde(default)]
    pending: BTreeMap<String, PendingTool>,
    /// Items that came before the turn's prompt (a compaction), shown in it.
    #[serde(default)]
    early: Vec<Item>,
    /// A Codex task has started and its prompt has not come yet.
    #[serde(default)]
    task_pending: bool,
    /// Lines left out because they were not JSON objects (or too long).
    pub skipped: u64,
}

impl Converter {
    pub fn new(kind: AgentKind, session: &str) -> Converter {
        Converter {
            kind,
            session: session.to_ascii_lowercase(),
            open_turn: None,
            open_client: None,
            open_late: false,
            last_input: None,
            last_end: None,
            pending: BTreeMap::new(),
            early: Vec::new(),
            task_pending: false,
            skipped: 0,
        }
    }

    /// Converts the complete line that starts at byte `offset` of the file.
    pub fn line(&mut self, offset: u64, line: &str) -> Vec<Mirrored> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let record: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.skipped += 1;
                return Vec::new();
            }
        };
        let mut out = Out { ids: IdGen { session: self.session.clone(), offset, n: 0 }, events: Vec::new(), ts: None };
        out.ts = record.get("timestamp").and_then(Value::as_str).map(str::to_owned);
        let known = match self.kind {
            AgentKind::Claude => self.claude(&record, &mut out),
            AgentKind::Codex => self.codex(&record, &mut out),
        };
        if !known {
            let kind = match self.kind {
                AgentKind::Claude => record["type"].as_str().unwrap_or("untyped").to_owned(),
                AgentKind::Codex => match (record["type"].as_str(), record["payload"]["type"].as_str()) {
                    (Some("event_msg"), Some(sub)) => format!("{sub} event"),
                    (t, _) => t.unwrap_or("untyped").to_owned(),
                },
            };
            let new = item(out.ids.next(), items::TOOL_CALL, unknown_fields(&format!("{kind} record"), &record));
            self.late_item(new, &mut out);
        }
        if self.open_late {
            let (status, error) = self.last_end.clone().unwrap_or((TurnStatus::Completed, None));
            self.close_turn(status, error, &mut out);
        }
        out.events
    }

    /// The turn the agent is working on now, if any (prompt seen, end not).
    pub fn active(&self) -> Option<ActiveTurn> {
        let id = self.open_turn.clone()?;
        let client = self.open_client.clone().unwrap_or_else(|| self.client(""));
        Some(ActiveTurn { id, client })
    }

    fn client(&self, version: &str) -> ClientInfo {
        match self.kind {
            AgentKind::Claude => ClientInfo::new("claude-code", version),
            AgentKind::Codex => ClientInfo::new("codex", version),
        }
    }

    fn start_turn(&mut self, input: String, client: ClientInfo, out: &mut Out) {
        self.last_input = Some(input.clone());
        self.open(input, client, out);
    }

    fn open(&mut self, input: String, client: ClientInfo, out: &mut Out) {
        self.close_turn(TurnStatus::Completed, None, out);
        let turn_id = out.ids.next();
        out.push(EventBody::TurnStarted {
            turn_id: turn_id.clone(),
            input,
            client: client.clone(),
            agent: AgentInfo { kind: format!("{:?}", self.kind).to_ascii_lowercase(), model: None },
        });
        for early in std::mem::take(&mut self.early) {
            out.push(EventBody::ItemCompleted { turn_id: turn_id.clone(), item: early });
        }
        self.open_turn = Some(turn_id);
        self.open_client = Some(client);
        self.open_late = false;
    }

    /// The open turn, or else a continuation of the last one for what the
    /// agent wrote after it ended. `late`: the record is not the agent at
    /// work (a leftover, an unknown record), so the continuation ends with
    /// it rather than showing the thread running.
    fn turn_for(&mut self, client: ClientInfo, late: bool, out: &mut Out) -> String {
        if let Some(turn_id) = &self.open_turn {
            return turn_id.clone();
        }
        let input = match self.last_input.as_deref() {
            Some(prompt) => {
                let first = prompt.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                format!("(continued) {}", clip(first, 60)).trim_end().to_owned()
            }
            // Nothing to continue: what came before the first prompt.
            None => "(before the first prompt)".to_owned(),
        };
        self.open(input, client, out);
        self.open_late = late;
        self.open_turn.clone().unwrap_or_default()
    }

    /// An item that is not the agent at work: in the open turn, else kept
    /// for the prompt a started Codex task is about to get, else in a
    /// continuation that ends with it.
    fn late_item(&mut self, new: Item, out: &mut Out) {
        if self.open_turn.is_none() && self.task_pending {
            self.early.push(new);
            return;
        }
        let turn_id = self.turn_for(self.client(""), true, out);
        out.push(EventBody::ItemCompleted { turn_id, item: new });
    }

    fn close_turn(&mut self, status: TurnStatus, error: Option<String>, out: &mut Out) {
        self.open_client = None;
        self.open_late = false;
        if let Some(turn_id) = self.open_turn.take() {
            self.last_end = Some((status, error.clone()));
            // Tool calls that never got a result end with the turn.
            for (_, tool) in std::mem::take(&mut self.pending) {
                let fields = claude_item(&tool.name, &tool.input, String::new(), "interrupted");
                out.push(EventBody::ItemCompleted {
                    turn_id: turn_id.clone(),
                    item: item(tool.item_id, &claude_item_type(&tool.name), fields),
                });
            }
            out.push(EventBody::TurnCompleted { turn_id, status, error });
        }
    }

    /// What the agent says, in its turn (a continuation if it has ended:
    /// the agent is at work again, so that one stays open).
    fn message(&mut self, text: String, client: ClientInfo, out: &mut Out) {
        if !text.trim().is_empty() {
            let turn_id = self.turn_for(client, false, out);
            let id = out.ids.next();
            out.push(EventBody::ItemCompleted { turn_id, item: Item::agent_message(id, text) });
        }
    }

    // ----- Claude Code -----

    fn claude(&mut self, r: &Value, out: &mut Out) -> bool {
        // A subagent's conversation (older versions kept it in the same file)
        // is not the user's; its result shows as the tool call that ran it.
        if r["isSidechain"].as_bool() == Some(true) {
            return true;
        }
        let client = self.client(r["version"].as_str().unwrap_or(""));
        match r["type"].as_str().unwrap_or("") {
            "user" => {
                // Left out: what Claude Code tells the model rather than what
                // the user typed (`isMeta`: caveats, "Continue from where you
                // left off.", a command's expansion), and the summary a
                // compaction hands the model (what it sums up is in the
                // thread already; the compaction shows as a status item).
                if r["isMeta"].as_bool() == Some(true) || r["isCompactSummary"].as_bool() == Some(true) {
                    return true;
                }
                match &r["message"]["content"] {
                    Value::String(s) => self.claude_text(s, client, out),
                    Value::Array(blocks) => {
                        let mut text = Vec::new();
                        for b in blocks {
                            match b["type"].as_str() {
                                Some("tool_result") => self.claude_result(b, r, out),
                                Some("text") => text.push(b["text"].as_str().unwrap_or("").to_owned()),
                                // An image or a document given with the prompt: named in it.
                                Some(other) => text.push(format!("[{other}]")),
                                None => {}
                            }
                        }
                        if !text.is_empty() {
                            self.claude_text(&text.join("\n"), client, out);
                        }
                    }
                    _ => return false,
                }
                true
            }
            "assistant" => {
                let msg = &r["message"];
                // Claude Code's own placeholder ("No response requested."),
                // not something the model said.
                if msg["model"].as_str() == Some("<synthetic>") {
                    return true;
                }
                for b in msg["content"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    match b["type"].as_str() {
                        Some("text") => self.message(b["text"].as_str().unwrap_or("").to_owned(), client.clone(), out),
                        Some("tool_use") => {
                            let tool_id = b["id"].as_str().unwrap_or("");
                            let name = b["name"].as_str().unwrap_or("tool").to_owned();
                            let item_id = derived(&self.session, &format!("tool:{tool_id}"));
                            let turn_id = self.turn_for(client.clone(), false, out);
                            let fields = claude_item(&name, &b["input"], String::new(), "inProgress");
                            out.push(EventBody::ItemStarted {
                                turn_id,
                                item: item(item_id.clone(), &claude_item_type(&name), fields),
                            });
                            self.pending
                                .insert(tool_id.to_owned(), PendingTool { item_id, name, input: b["input"].clone() });
                        }
                        // The model's reasoning, not its answer (often only a signature).
                        Some("thinking" | "redacted_thinking") => {}
                        other => {
                            let turn_id = self.turn_for(client.clone(), false, out);
                            let name = format!("{} block", other.unwrap_or("untyped"));
                            let new = item(out.ids.next(), items::TOOL_CALL, unknown_fields(&name, b));
                            out.push(EventBody::ItemCompleted { turn_id, item: new });
                        }
                    }
                }
                if matches!(msg["stop_reason"].as_str(), Some("end_turn" | "stop_sequence")) {
                    self.close_turn(TurnStatus::Completed, None, out);
                }
                true
            }
            "system" => {
                self.claude_system(r, out);
                true
            }
            // Bookkeeping with nothing the thread lacks: the prompt queue
            // (its prompts come as `user` records), context handed to the
            // model (`attachment`: listings of agents, skills, permissions),
            // copies of the last prompt, the UI's mode, the session picker's
            // titles, and file backups.
            "queue-operation"
            | "attachment"
            | "last-prompt"
            | "mode"
            | "permission-mode"
            | "summary"
            | "custom-title"
            | "file-history-snapshot" => true,
            _ => false,
        }
    }

    fn claude_system(&mut self, r: &Value, out: &mut Out) {
        let status = |out: &mut Out, kind: &str, message: String| {
            item(out.ids.next(), items::STATUS, fields(json!({"kind": kind, "message": message})))
        };
        match r["subtype"].as_str().unwrap_or("") {
            // The turn is over: Claude Code ran its Stop hooks (or timed
            // the turn). What the agent writes after it is a continuation.
            sub @ ("stop_hook_summary" | "turn_duration") => {
                let errors = r["hookErrors"].as_array().map(Vec::as_slice).unwrap_or_default();
                if !errors.is_empty() {
                    let text: Vec<String> =
                        errors.iter().map(|e| e.as_str().map(str::to_owned).unwrap_or_else(|| e.to_string())).collect();
                    let new = status(out, sub, format!("Stop hook failed: {}", text.join("; ")));
                    self.late_item(new, out);
                }
                self.close_turn(TurnStatus::Completed, None, out);
            }
            "compact_boundary" => {
                let new = status(out, "compacted", "Claude Code compacted the conversation".to_owned());
                match self.open_turn.clone() {
                    Some(turn_id) => out.push(EventBody::ItemCompleted { turn_id, item: new }),
                    // Between turns (`/compact`): it belongs to the next one.
                    None => self.early.push(new),
                }
            }
            sub => {
                let message = match r["content"].as_str().filter(|c| !c.trim().is_empty()) {
                    Some(c) => c.to_owned(),
                    None => format!("Claude Code: {}", if sub.is_empty() { "system record" } else { sub }),
                };
                let new = status(out, if sub.is_empty() { "system" } else { sub }, message);
                self.late_item(new, out);
            }
        }
    }

    fn claude_text(&mut self, s: &str, client: ClientInfo, out: &mut Out) {
        let output = between(s, "<local-command-stdout>", "</local-command-stdout>")
            .or_else(|| between(s, "<local-command-stderr>", "</local-command-stderr>"));
        if let Some(output) = output {
            // A local command (`/compact`) has printed its result: it is
            // done, and no model runs after it.
            self.message(output.trim().to_owned(), client, out);
            self.close_turn(TurnStatus::Completed, None, out);
        } else if let Some(name) = between(s, "<command-name>", "</command-name>") {
            let args = between(s, "<command-args>", "</command-args>").unwrap_or("").trim();
            let input = if args.is_empty() { name.trim().to_owned() } else { format!("{} {args}", name.trim()) };
            self.start_turn(input, client, out);
        } else if s.starts_with("[Request interrupted by user") {
            self.close_turn(TurnStatus::Interrupted, Some("interrupted in Claude Code".into()), out);
        } else if !s.trim().is_empty() {
            self.start_turn(s.trim_end_matches('\n').to_owned(), client, out);
        }
    }

    fn claude_result(&mut self, block: &Value, record: &Value, out: &mut Out) {
        let output = match &block["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        };
        let Some(tool) = block["tool_use_id"].as_str().and_then(|id| self.pending.remove(id)) else {
            // The result of a call whose turn has ended (it was shown as
            // interrupted then) or that this file never showed: still shown.
            let mut fields =
                claude_item("tool result", &json!({"tool_use_id": block["tool_use_id"]}), output, "completed");
            if block["is_error"].as_bool() == Some(true) {
                fields.insert("status".into(), "failed".into());
            }
            let new = item(out.ids.next(), items::TOOL_CALL, fields);
            return self.late_item(new, out);
        };
        let turn_id = self.turn_for(self.client(""), true, out);
        let failed = block["is_error"].as_bool() == Some(true);
        // Claude Code's words when the user stops a tool call (Esc, Ctrl-C).
        let interrupted = record["toolUseResult"]["interrupted"].as_bool() == Some(true)
            || (failed && output.starts_with("The user doesn't want to proceed"));
        let status = if interrupted {
            "interrupted"
        } else if failed {
            "failed"
        } else {
            "completed"
        };
        // Its output is the note to the model, not what the tool printed.
        let output = if interrupted && failed { String::new() } else { output };
        let fields = claude_item(&tool.name, &tool.input, output, status);
        out.push(EventBody::ItemCompleted { turn_id, item: item(tool.item_id, &claude_item_type(&tool.name), fields) });
    }

    // ----- Codex -----

    fn codex(&mut self, r: &Value, out: &mut Out) -> bool {
        let p = &r["payload"];
        match r["type"].as_str().unwrap_or("") {
            "event_msg" => match p["type"].as_str().unwrap_or("") {
                "task_started" => {
                    self.close_turn(TurnStatus::Completed, None, out);
                    self.task_pending = true;
                    true
                }
                "task_complete" => {
                    self.close_turn(TurnStatus::Completed, None, out);
                    true
                }
                "turn_aborted" => {
                    let why = p["reason"].as_str().unwrap_or("aborted");
                    self.close_turn(TurnStatus::Interrupted, Some(format!("{why} in Codex")), out);
                    true
                }
                "item_completed" => {
                    self.codex_item(&p["item"], out);
                    true
                }
                // Token counts and the settings a turn runs with: nothing
                // said, nothing done.
                "token_count" | "thread_settings_applied" => true,
                _ => false,
            },
            // The session's ids and directory (the title uses it), the
            // model's own copies of the items `item_completed` shows
            // (`response_item`), the context of each turn, token usage, and
            // the summary a compaction hands the model (the `ContextCompaction`
            // item shows the compaction; what it sums up is in the thread).
            "session_meta" | "response_item" | "turn_context" | "world_state" | "token_usage_record" | "compacted" => {
                true
            }
            _ => false,
        }
    }

    fn codex_item(&mut self, it: &Value, out: &mut Out) {
        let texts = |it: &Value| {
            it["content"]
                .as_array()
                .map(|c| c.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""))
                .unwrap_or_default()
        };
        let kind = it["type"].as_str().unwrap_or("");
        let (item_type, fields) = match kind {
            "UserMessage" => {
                self.task_pending = false;
                let input = texts(it).trim_end_matches('\n').to_owned();
                self.start_turn(input, self.client(""), out);
                return;
            }
            "AgentMessage" => return self.message(texts(it), self.client(""), out),
            // The model's reasoning, not its answer (mostly encrypted).
            "Reasoning" => return,
            "CommandExecution" => {
                let argv: Vec<&str> =
                    it["command"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                let command = match argv.as_slice() {
                    [_, flag, script] if matches!(*flag, "-lc" | "-c") => (*script).to_owned(),
                    _ => argv.join(" "),
                };
                let status = it["status"].as_str().unwrap_or("completed");
                (
                    items::COMMAND_EXECUTION,
                    fields(json!({
                        "command": command,
                        "output": it["aggregated_output"],
                        "exitCode": it["exit_code"],
                        "status": status,
                    })),
                )
            }
            "FileChange" => {
                let changes: Vec<Value> = it["changes"]
                    .as_object()
                    .map(|m| m.iter().map(|(path, c)| json!({"path": path, "kind": c["type"]})).collect())
                    .unwrap_or_default();
                (
                    items::FILE_CHANGE,
                    fields(json!({"changes": changes, "status": it["status"].as_str().unwrap_or("completed")})),
                )
            }
            "ContextCompaction" => {
                ("status", fields(json!({"kind": "compacted", "message": "Codex compacted the conversation"})))
            }
            other => (
                items::TOOL_CALL,
                fields(json!({"name": other, "status": it["status"].as_str().unwrap_or("completed")})),
            ),
        };
        let new = item(out.ids.next(), item_type, fields);
        // Outside a turn: a compaction before a task's prompt, or the end of
        // a turn that has ended (codex writes the killed command after
        // `turn_aborted`), shown in a continuation that ends with it.
        self.late_item(new, out);
    }
}

/// The events of one line and how their ids are made.
struct Out {
    ids: IdGen,
    events: Vec<Mirrored>,
    ts: Option<String>,
}

impl Out {
    fn push(&mut self, body: EventBody) {
        self.events.push((body, self.ts.clone()));
    }
}

struct IdGen {
    session: String,
    offset: u64,
    n: u32,
}

impl IdGen {
    fn next(&mut self) -> String {
        self.n += 1;
        derived(&self.session, &format!("{}:{}", self.offset, self.n))
    }
}

fn derived(session: &str, what: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{session}/{what}").as_bytes()).to_string()
}

fn item(id: String, item_type: &str, extra: Map<String, Value>) -> Item {
    Item { id, item_type: item_type.to_owned(), text: None, extra }
}

/// The fields of an item showing a record (or block) it does not know: its
/// type as the name, the record itself as the input (clipped when large).
fn unknown_fields(name: &str, record: &Value) -> Map<String, Value> {
    const MAX: usize = 4096;
    let text = record.to_string();
    let input = if text.len() <= MAX { record.clone() } else { Value::String(clip(&text, MAX)) };
    fields(json!({"name": name, "input": input, "output": "", "status": "completed"}))
}

/// At most `max` characters of `s`, `…` marking a cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/sessions");

    fn fixture(rel: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{rel}")).unwrap()
    }

    /// Feeds every line with its offset, restarting from the persisted state
    /// after line `split` (as a server restart would).
    fn convert(kind: AgentKind, session: &str, text: &str, split: usize) -> (Vec<Mirrored>, Converter) {
        let mut conv = Converter::new(kind, session);
        let mut events = Vec::new();
        let mut offset = 0u64;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if i == split {
                conv = serde_json::from_str(&serde_json::to_string(&conv).unwrap()).unwrap();
            }
            events.extend(conv.line(offset, line));
            offset += line.len() as u64;
        }
        (events, conv)
    }

    /// One readable line per event.
    fn outline(events: &[Mirrored]) -> Vec<String> {
        events
            .iter()
            .map(|(body, _)| match body {
                EventBody::TurnStarted { input, .. } => format!("turn {input}"),
                EventBody::TurnCompleted { status, .. } => format!("end {}", status.as_str()),
                EventBody::ItemStarted { item, .. } => format!("start {}", item.summary(3).unwrap().join("|")),
                EventBody::ItemCompleted { item, .. } => match item.summary(3) {
                    Some(lines) => format!("item {}", lines.join("|")),
                    None => format!("text {}", item.text.as_deref().unwrap_or("")),
                },
                other => format!("{other:?}"),
            })
            .collect()
    }

    const CLAUDE: &str = "c82a5d42-829f-4ee0-99c7-a5a4cd0fd679";
    const CODEX: &str = "01a208ed-6c51-7b12-90ed-4822e021b6a5";

    #[test]
    fn claude_code_session_becomes_turns_messages_and_tool_items() {
        let (events, conv) =
            convert(AgentKind::Claude, CLAUDE, &fixture(&format!("claude/{CLAUDE}.jsonl")), usize::MAX);
        assert_eq!(
            outline(&events),
            [
                "turn say hello",
                "text Hello from the mock.",
                "end completed",
                "turn please run cmd",
                "start $ echo hi (running)",
                "item $ echo hi|  hi",
                "text Ran it.",
                "end completed",
                "turn edit the notes file",
                "start ~ added /tmp/notes.txt",
                "item ~ added /tmp/notes.txt",
                "text Ran it.",
                "end completed",
                "turn /compact",
                "item ↻ Claude Code compacted the conversation",
                "text Compacted",
                "end completed",
                "turn after compaction hello",
                "text Hello from the mock.",
                "end completed",
            ][..]
        );
        assert_eq!(conv.skipped, 0);
    }

    #[test]
    fn codex_rollout_becomes_turns_messages_and_tool_items() {
        let file = format!("codex/rollout-2026-11-23T15-01-47-{CODEX}.jsonl");
        let (events, conv) = convert(AgentKind::Codex, CODEX, &fixture(&file), usize::MAX);
        assert_eq!(
            outline(&events),
            [
                "turn say hello",
                "text Hello from the mock.",
                "end completed",
                "turn please run cmd",
                "item $ echo hi (exit 0)|  hi",
                "text Ran it.",
                "end completed",
                "turn edit the notes file",
                "item ~ added /tmp/sessrec/work/proj/notes.txt",
                "text Ran it.",
                "end completed",
                "turn bigctx talk",
                "text Hello from the mock.",
                "end completed",
                "turn after compaction hello",
                "item ↻ Codex compacted the conversation",
                "text Hello from the mock.",
                "end completed",
            ][..]
        );
        assert_eq!(conv.skipped, 0);
    }

    /// `/share` run by Claude Code 2.1.197 (the installed plugin): first in a
    /// new session (its file did not exist yet, so the command failed), then
    /// after a prompt (shared). Command output is the answer of its turn.
    #[test]
    fn claude_code_slash_command_output_is_its_answer() {
        let id = "19d9132d-77b8-499b-8e39-094c5298b786";
        let (events, conv) = convert(AgentKind::Claude, id, &fixture(&format!("claude/{id}.jsonl")), usize::MAX);
        let outline = outline(&events);
        assert_eq!(outline[0], "turn /share");
        assert!(outline[1].starts_with("text Error: Shell command failed") && outline[1].contains("session not found"));
        assert_eq!(
            outline[2..],
            [
                "end completed",
                "turn say hello",
                "text Hello from the mock.",
                "end completed",
                "turn /share",
                "text Hello from the mock.",
                "end completed",
            ]
        );
        assert_eq!(conv.skipped, 0);
    }

    /// Interrupted while a command ran (SIGINT to the CLI, as Ctrl-C).
    #[test]
    fn interrupted_turns_end_interrupted() {
        let id = "ad7c017a-cc65-4124-ad51-f8ac1e664334";
        let (events, conv) = convert(AgentKind::Claude, id, &fixture(&format!("claude/{id}.jsonl")), usize::MAX);
        assert_eq!(
            outline(&events),
            ["turn sleep please", "start $ sleep 1000 (running)", "item $ sleep 1000 (interrupted)", "end interrupted"]
        );
        assert_eq!(conv.skipped, 0);
        let id = "01a20912-7e57-7fc0-8221-71bf655000c7";
        let file = format!("codex/rollout-2026-11-23T15-42-16-{id}.jsonl");
        let (events, conv) = convert(AgentKind::Codex, id, &fixture(&file), usize::MAX);
        // The killed command comes after `turn_aborted`: shown all the same,
        // in a continuation that ends as the turn did.
        assert_eq!(
            outline(&events),
            [
                "turn sleep please",
                "end interrupted",
                "turn (continued) sleep please",
                "item $ sleep 1000 (exit -1)",
                "end interrupted"
            ]
        );
        assert_eq!(conv.skipped, 0);
        assert_eq!(conv.active(), None);
    }

    /// A restart anywhere gives the same events with the same ids.
    #[test]
    fn conversion_is_deterministic_across_a_persisted_state() {
        let text = fixture(&format!("claude/{CLAUDE}.jsonl"));
        let (whole, _) = convert(AgentKind::Claude, CLAUDE, &text, usize::MAX);
        for split in [3, 11, 12, 20, 27] {
            let (parts, _) = convert(AgentKind::Claude, CLAUDE, &text, split);
            assert_eq!(parts, whole, "split at line {split}");
        }
        assert_eq!(thread_id_for(CLAUDE), thread_id_for(&CLAUDE.to_uppercase()));
        assert_ne!(thread_id_for(CLAUDE), thread_id_for(CODEX));
    }

    /// Lines that are not JSON objects are counted and left out; records of
    /// types it does not know are shown (as `⚙ <type> record`), in order.
    #[test]
    fn unknown_records_are_shown_and_only_non_json_lines_skipped() {
        let text = format!(
            "not json\n[1,2]\n{}\n{}\n{}\n{}\n{}\n{}\n",
            r#"{"type":"brand-new-record","note":"before any prompt"}"#,
            r#"{"type":"user","message":{"role":"user","content":"hi"}}"#,
            r#"{"type":"user","isSidechain":true,"message":{"role":"user","content":"a subagent's task"}}"#,
            r#"{"type":"pr-link","url":"https://example/pr/1"}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"yo"},{"type":"server_tool_use","name":"web_search"}],"stop_reason":"end_turn"}}"#,
            r#"{"type":"user","message":7}"#,
        );
        let (events, conv) = convert(AgentKind::Claude, CLAUDE, &text, usize::MAX);
        assert_eq!(
            outline(&events),
            [
                "turn (before the first prompt)",
                "item ⚙ brand-new-record record",
                "end completed",
                "turn hi",
                "item ⚙ pr-link record",
                "text yo",
                "item ⚙ server_tool_use block",
                "end completed",
                "turn (continued) hi",
                "item ⚙ user record",
                "end completed",
            ]
        );
        let EventBody::ItemCompleted { item, .. } = &events[4].0 else { panic!() };
        assert_eq!(item.extra["input"]["url"], "https://example/pr/1", "the record is in the item");
        assert_eq!(conv.skipped, 2);
        assert_eq!(conv.active(), None, "a record that is not the agent at work shows no running turn");

        let text = concat!(
            r#"{"type":"event_msg","payload":{"type":"task_started"}}"#,
            "\n",
            r#"{"type":"event_msg","payload":{"type":"brand_new_event","x":1}}"#,
            "\n",
            r#"{"type":"event_msg","payload":{"type":"item_completed","item":{"type":"UserMessage","content":[{"text":"go"}]}}}"#,
            "\n",
            r#"{"type":"new_top_level","payload":{}}"#,
            "\n",
            r#"{"type":"event_msg","payload":{"type":"task_complete"}}"#,
            "\n\u{0}\n",
        );
        let (events, conv) = convert(AgentKind::Codex, CODEX, text, usize::MAX);
        assert_eq!(
            outline(&events),
            ["turn go", "item ⚙ brand_new_event event record", "item ⚙ new_top_level record", "end completed"]
        );
        assert_eq!(conv.skipped, 1);
    }

    /// What Claude Code writes after a turn has ended (a Stop hook that
    /// makes it go on, a compaction, a resumed session) is kept, in order:
    /// a continuation turn, open while the agent works, ended by its end.
    #[test]
    fn records_after_the_end_of_a_turn_are_kept_in_order() {
        let lines = [
            r#"{"type":"user","message":{"role":"user","content":"fix the tests\nall of them"}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Done."}],"stop_reason":"end_turn"}}"#,
            r#"{"type":"system","subtype":"stop_hook_summary","hookCount":1,"hookErrors":[]}"#,
            // The Stop hook said "not yet": the agent goes on.
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"One more."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cargo test"}}],"stop_reason":"tool_use"}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"All green."}],"stop_reason":null}}"#,
            r#"{"type":"system","subtype":"stop_hook_summary","hookCount":1,"hookErrors":["exit 2: lint"]}"#,
            // A late result of a call this file never showed.
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t9","content":"late"}]}}"#,
            r#"{"type":"system","subtype":"compact_boundary","content":"Conversation compacted"}"#,
            r#"{"type":"user","message":{"role":"user","content":"next"}}"#,
        ];
        let mut conv = Converter::new(AgentKind::Claude, CLAUDE);
        let mut events = Vec::new();
        let mut active = Vec::new();
        let mut offset = 0;
        for l in lines {
            events.extend(conv.line(offset, l));
            offset += l.len() as u64 + 1;
            active.push(conv.active().is_some());
        }
        assert_eq!(
            outline(&events),
            [
                "turn fix the tests\nall of them",
                "text Done.",
                "end completed",
                "turn (continued) fix the tests",
                "text One more.",
                "start $ cargo test (running)",
                "item $ cargo test|  ok",
                "text All green.",
                "item ↻ Stop hook failed: exit 2: lint",
                "end completed",
                "turn (continued) fix the tests",
                "item ⚙ tool result",
                "end completed",
                "turn next",
                "item ↻ Claude Code compacted the conversation",
            ]
        );
        // Running from the prompt to its end, and again while it goes on.
        assert_eq!(active, [true, false, false, true, true, true, false, false, false, true]);
        let Some(ActiveTurn { client, .. }) = conv.active() else { panic!() };
        assert_eq!(client.name, "claude-code");
        assert_eq!(conv.skipped, 0);
    }
}
