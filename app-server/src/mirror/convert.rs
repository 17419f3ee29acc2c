//! Session records → Tandem events. A Claude Code or Codex session file is a
//! log of JSON lines in the agent's own format; this turns each complete line
//! into the events a mirrored thread gets (user prompts → turns, assistant
//! text → `agentMessage`, tool calls → `commandExecution` / `fileChange` /
//! `toolCall`). It never does I/O and never fails: a line it cannot read or a
//! record type it does not know is counted in `skipped` and left out.
//!
//! Conversion is deterministic: the same lines from the same state give the
//! same events with the same ids (derived from the session id and the line's
//! offset), which is what lets the follower replay a batch after a crash and
//! drop exactly the events the log already has.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tandem_protocol::items::{self, fields};
use tandem_protocol::{AgentInfo, ClientInfo, EventBody, Item, TurnStatus};
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
    /// Claude tool calls by `tool_use` id, waiting for their result.
    #[serde(default)]
    pending: BTreeMap<String, PendingTool>,
    /// Codex items that came before the turn's prompt (e.g. a compaction).
    #[serde(default)]
    early: Vec<Item>,
    /// A Codex task has started and its prompt has not come yet.
    #[serde(default)]
    task_pending: bool,
    /// Lines left out because they were not JSON or of an unknown type.
    pub skipped: u64,
}

impl Converter {
    pub fn new(kind: AgentKind, session: &str) -> Converter {
        Converter {
            kind,
            session: session.to_ascii_lowercase(),
            open_turn: None,
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
            self.skipped += 1;
        }
        out.events
    }

    fn start_turn(&mut self, input: String, client: ClientInfo, out: &mut Out) {
        self.close_turn(TurnStatus::Completed, None, out);
        let turn_id = out.ids.next();
        out.push(EventBody::TurnStarted {
            turn_id: turn_id.clone(),
            input,
            client,
            agent: AgentInfo { kind: format!("{:?}", self.kind).to_ascii_lowercase(), model: None },
        });
        self.open_turn = Some(turn_id);
    }

    fn close_turn(&mut self, status: TurnStatus, error: Option<String>, out: &mut Out) {
        if let Some(turn_id) = self.open_turn.take() {
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

    fn message(&mut self, text: String, out: &mut Out) {
        if let (Some(turn_id), false) = (&self.open_turn, text.trim().is_empty()) {
            let id = out.ids.next();
            out.push(EventBody::ItemCompleted { turn_id: turn_id.clone(), item: Item::agent_message(id, text) });
        }
    }

    // ----- Claude Code -----

    fn claude(&mut self, r: &Value, out: &mut Out) -> bool {
        // A subagent's conversation (older versions kept it in the same file)
        // is not the user's; its result shows as the tool call that ran it.
        if r["isSidechain"].as_bool() == Some(true) {
            return true;
        }
        match r["type"].as_str().unwrap_or("") {
            "user" => {
                if r["isMeta"].as_bool() == Some(true) || r["isCompactSummary"].as_bool() == Some(true) {
                    return true;
                }
                let client = ClientInfo::new("claude-code", r["version"].as_str().unwrap_or(""));
                match &r["message"]["content"] {
                    Value::String(s) => self.claude_text(s, client, out),
                    Value::Array(blocks) => {
                        let mut text = Vec::new();
                        for b in blocks {
                            match b["type"].as_str() {
                                Some("tool_result") => self.claude_result(b, r, out),
                                Some("text") => text.push(b["text"].as_str().unwrap_or("")),
                                _ => {}
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
                if msg["model"].as_str() == Some("<synthetic>") || self.open_turn.is_none() {
                    return true;
                }
                for b in msg["content"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    match b["type"].as_str() {
                        Some("text") => self.message(b["text"].as_str().unwrap_or("").to_owned(), out),
                        Some("tool_use") => {
                            let tool_id = b["id"].as_str().unwrap_or("");
                            let name = b["name"].as_str().unwrap_or("tool").to_owned();
                            let item_id = derived(&self.session, &format!("tool:{tool_id}"));
                            let turn_id = self.open_turn.clone().unwrap_or_default();
                            let fields = claude_item(&name, &b["input"], String::new(), "inProgress");
                            out.push(EventBody::ItemStarted {
                                turn_id,
                                item: item(item_id.clone(), &claude_item_type(&name), fields),
                            });
                            self.pending
                                .insert(tool_id.to_owned(), PendingTool { item_id, name, input: b["input"].clone() });
                        }
                        _ => {}
                    }
                }
                if matches!(msg["stop_reason"].as_str(), Some("end_turn" | "stop_sequence")) {
                    self.close_turn(TurnStatus::Completed, None, out);
                }
                true
            }
            "queue-operation"
            | "attachment"
            | "last-prompt"
            | "mode"
            | "system"
            | "summary"
            | "file-history-snapshot"
            | "custom-title"
            | "permission-mode" => true,
            _ => false,
        }
    }

    fn claude_text(&mut self, s: &str, client: ClientInfo, out: &mut Out) {
        let output = between(s, "<local-command-stdout>", "</local-command-stdout>")
            .or_else(|| between(s, "<local-command-stderr>", "</local-command-stderr>"));
        if let Some(output) = output {
            self.message(output.trim().to_owned(), out);
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
        let Some(tool) = block["tool_use_id"].as_str().and_then(|id| self.pending.remove(id)) else {
            return;
        };
        let Some(turn_id) = self.open_turn.clone() else { return };
        let output = match &block["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        };
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
                _ => true,
            },
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
                self.start_turn(input, ClientInfo::new("codex", ""), out);
                let turn_id = self.open_turn.clone().unwrap_or_default();
                for early in std::mem::take(&mut self.early) {
                    out.push(EventBody::ItemCompleted { turn_id: turn_id.clone(), item: early });
                }
                return;
            }
            "AgentMessage" => return self.message(texts(it), out),
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
        match &self.open_turn {
            Some(turn_id) => out.push(EventBody::ItemCompleted { turn_id: turn_id.clone(), item: new }),
            None if self.task_pending => self.early.push(new),
            // The end of a turn that has ended (codex writes an interrupted
            // command after `turn_aborted`): its turn is closed, leave it out.
            None => {}
        }
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
        assert_eq!(outline(&events), ["turn sleep please", "end interrupted"]);
        assert_eq!(conv.skipped, 0);
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

    /// Odd records are counted and left out; the rest still converts.
    #[test]
    fn odd_records_are_skipped_and_counted() {
        let text = format!(
            "not json\n[1,2]\n{{\"type\":\"brand-new-record\"}}\n{}\n{}\n{{\"type\":\"user\",\"message\":7}}\n{}\n",
            r#"{"type":"user","message":{"role":"user","content":"hi"}}"#,
            r#"{"type":"user","isSidechain":true,"message":{"role":"user","content":"a subagent's task"}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"yo"}],"stop_reason":"end_turn"}}"#,
        );
        let (events, conv) = convert(AgentKind::Claude, CLAUDE, &text, usize::MAX);
        assert_eq!(outline(&events), ["turn hi", "text yo", "end completed"]);
        assert_eq!(conv.skipped, 4);
        let (events, conv) = convert(AgentKind::Codex, CODEX, "{\"type\":\"x\"}\n\u{0}\n", usize::MAX);
        assert!(events.is_empty());
        assert_eq!(conv.skipped, 2);
    }
}
