//! Events: everything that happens in a thread, in the order of its log.
//! Clients ignore types and fields they do not know, so adding either is a
//! compatible change; renaming, removing or changing one is not.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::types::{AgentInfo, ClientInfo, TurnStatus};

/// An event exactly as the server wrote it (its JSON text, unparsed), so that
/// `--json` output and fan-out never re-serialize it.
pub type RawEvent = Box<RawValue>;

/// One entry of a thread's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: u64,
    pub ts: String,
    pub thread_id: String,
    #[serde(flatten)]
    pub body: EventBody,
    /// Set on events of turns imported with `thread/start {turns}` or `thread/append`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    /// The imported turn's own time, when it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ts: Option<String>,
}

/// What happened; serialized as the event's `type` and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    #[serde(rename = "thread/started")]
    ThreadStarted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        shared: bool,
    },
    #[serde(rename = "thread/updated")]
    ThreadUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        shared: bool,
    },
    #[serde(rename = "turn/started", rename_all = "camelCase")]
    TurnStarted { turn_id: String, input: String, client: ClientInfo, agent: AgentInfo },
    #[serde(rename = "item/started", rename_all = "camelCase")]
    ItemStarted { turn_id: String, item: Item },
    #[serde(rename = "item/agentMessage/delta", rename_all = "camelCase")]
    AgentMessageDelta { turn_id: String, item_id: String, delta: String },
    #[serde(rename = "item/completed", rename_all = "camelCase")]
    ItemCompleted { turn_id: String, item: Item },
    #[serde(rename = "turn/completed", rename_all = "camelCase")]
    TurnCompleted {
        turn_id: String,
        status: TurnStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A type this build does not know (a newer server's); ignore it.
    #[serde(other)]
    Unknown,
}

impl EventBody {
    /// The turn this event belongs to, if any.
    pub fn turn_id(&self) -> Option<&str> {
        match self {
            EventBody::TurnStarted { turn_id, .. }
            | EventBody::ItemStarted { turn_id, .. }
            | EventBody::AgentMessageDelta { turn_id, .. }
            | EventBody::ItemCompleted { turn_id, .. }
            | EventBody::TurnCompleted { turn_id, .. } => Some(turn_id),
            _ => None,
        }
    }

    /// The wire `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::ThreadStarted { .. } => "thread/started",
            EventBody::ThreadUpdated { .. } => "thread/updated",
            EventBody::TurnStarted { .. } => "turn/started",
            EventBody::ItemStarted { .. } => "item/started",
            EventBody::AgentMessageDelta { .. } => "item/agentMessage/delta",
            EventBody::ItemCompleted { .. } => "item/completed",
            EventBody::TurnCompleted { .. } => "turn/completed",
            EventBody::Unknown => "unknown",
        }
    }
}

/// A unit of a turn's output. An agent message is `{id, type:"agentMessage", text}`;
/// other item types keep their fields in `extra`: `commandExecution`
/// (`command, output, exitCode?, status`: `inProgress` in `item/started`, then
/// `completed` | `failed` | `interrupted`), `fileChange`, `toolCall`,
/// `agentSession` (`agent, sessionId, ended?`) and `status` (`kind`: `retry` |
/// `newSession`, `message`: what the agent is doing besides answering).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    #[serde(rename = "type")]
    pub item_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Item {
    /// The agent message item with the given text.
    pub fn agent_message(id: impl Into<String>, text: impl Into<String>) -> Item {
        Item {
            id: id.into(),
            item_type: crate::items::AGENT_MESSAGE.into(),
            text: Some(text.into()),
            extra: Default::default(),
        }
    }
}

impl Item {
    /// How a person reads this item in a transcript: for a command run, file
    /// change or tool call, a few lines (`max_output` lines of output at most);
    /// for a `status` item (an agent retrying, starting a new session…) its
    /// message; `None` for agent messages (shown as text) and for bookkeeping
    /// items.
    pub fn summary(&self, max_output: usize) -> Option<Vec<String>> {
        let field = |k: &str| self.extra.get(k);
        let status = field("status").and_then(|s| s.as_str());
        let failed = status == Some("failed");
        match self.item_type.as_str() {
            crate::items::STATUS => {
                Some(vec![format!("↻ {}", field("message").and_then(|m| m.as_str()).unwrap_or("…"))])
            }
            crate::items::COMMAND_EXECUTION => {
                let command = field("command").and_then(|c| c.as_str()).unwrap_or("?");
                let exit = match (field("exitCode").and_then(|c| c.as_i64()), status) {
                    (Some(code), _) => format!(" (exit {code})"),
                    (None, Some("failed")) => " (failed)".to_owned(),
                    (None, Some("interrupted")) => " (interrupted)".to_owned(),
                    (None, Some("inProgress")) => " (running)".to_owned(),
                    (None, _) => String::new(),
                };
                let mut lines = vec![format!("$ {command}{exit}")];
                let output = field("output").and_then(|o| o.as_str()).unwrap_or("").trim_end();
                let out_lines: Vec<&str> = output.lines().collect();
                for l in out_lines.iter().take(max_output) {
                    lines.push(format!("  {l}"));
                }
                if out_lines.len() > max_output {
                    lines.push(format!("  … {} more lines", out_lines.len() - max_output));
                }
                Some(lines)
            }
            crate::items::FILE_CHANGE => {
                let changes = field("changes").and_then(|c| c.as_array()).cloned().unwrap_or_default();
                let mut lines: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        let verb = match c.get("kind").and_then(|k| k.as_str()) {
                            Some("add") => "added",
                            Some("delete") => "deleted",
                            _ => "edited",
                        };
                        format!("~ {verb} {}", c.get("path").and_then(|p| p.as_str()).unwrap_or("?"))
                    })
                    .collect();
                if failed {
                    lines.iter_mut().for_each(|l| l.push_str(" (failed)"));
                }
                Some(lines)
            }
            crate::items::TOOL_CALL => {
                let name = field("name").and_then(|n| n.as_str()).unwrap_or("tool");
                Some(vec![format!("⚙ {name}{}", if failed { " (failed)" } else { "" })])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_has_the_documented_shape() {
        let ev = Event {
            seq: 42,
            ts: "2026-11-22T11:03:04.123Z".into(),
            thread_id: "t".into(),
            body: EventBody::AgentMessageDelta { turn_id: "u".into(), item_id: "i".into(), delta: "Hel".into() },
            imported: false,
            original_ts: None,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"seq":42,"ts":"2026-11-22T11:03:04.123Z","threadId":"t","type":"item/agentMessage/delta","turnId":"u","itemId":"i","delta":"Hel"}"#
        );
        let back: Event = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn items_summarize_for_people() {
        let item: Item = serde_json::from_str(
            r#"{"id":"i","type":"commandExecution","command":"cargo test","output":"a\nb\nc","exitCode":0,"status":"completed"}"#,
        )
        .unwrap();
        assert_eq!(item.summary(2).unwrap(), ["$ cargo test (exit 0)", "  a", "  b", "  … 1 more lines"]);
        let item: Item = serde_json::from_str(
            r#"{"id":"i","type":"fileChange","changes":[{"path":"src/a.rs","kind":"update"},{"path":"b","kind":"add"}]}"#,
        )
        .unwrap();
        assert_eq!(item.summary(2).unwrap(), ["~ edited src/a.rs", "~ added b"]);
        assert!(Item::agent_message("i", "x").summary(2).is_none());
        let item: Item =
            serde_json::from_str(r#"{"id":"i","type":"commandExecution","command":"sleep 9","status":"inProgress"}"#)
                .unwrap();
        assert_eq!(item.summary(2).unwrap(), ["$ sleep 9 (running)"]);
        let item: Item = serde_json::from_str(r#"{"id":"i","type":"status","message":"retrying 1/5"}"#).unwrap();
        assert_eq!(item.summary(2).unwrap(), ["↻ retrying 1/5"]);
    }

    #[test]
    fn unknown_types_and_fields_are_tolerated() {
        let ev: Event = serde_json::from_str(
            r#"{"seq":1,"ts":"2026-11-22T11:03:04.123Z","threadId":"t","type":"item/reasoning","x":1}"#,
        )
        .unwrap();
        assert_eq!(ev.body, EventBody::Unknown);
        let ev: Event = serde_json::from_str(
            r#"{"seq":2,"ts":"2026-11-22T11:03:04.123Z","threadId":"t","type":"turn/completed","turnId":"u","status":"completed","newField":[1]}"#,
        )
        .unwrap();
        assert_eq!(ev.body.turn_id(), Some("u"));
    }
}
