//! The item types a turn's output is made of, spelled once. An item is
//! `{id, type, …fields}` (see [`crate::Item`]); these are its `type`s, and
//! [`fields`] turns a JSON object into an item's fields.

use serde_json::{Map, Value};

/// What the agent says (`text`).
pub const AGENT_MESSAGE: &str = "agentMessage";
/// A command the agent ran: `command`, `output`, `exitCode`, `status`.
pub const COMMAND_EXECUTION: &str = "commandExecution";
/// Files the agent changed: `changes` (`[{path, kind}]`), `status`.
pub const FILE_CHANGE: &str = "fileChange";
/// Any other tool: `name`, `input`, `output`, `status`.
pub const TOOL_CALL: &str = "toolCall";
/// The agent's own session behind the thread: `agent`, `sessionId`, `ended`.
pub const AGENT_SESSION: &str = "agentSession";
/// A note about the agent itself (retrying, a new session): `message`.
pub const STATUS: &str = "status";

/// The fields of an item from a JSON object (anything else has none).
pub fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
