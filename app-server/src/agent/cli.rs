//! `codex` and `claude`: run the coding agents' own CLIs once per turn and map
//! their JSON-lines streams to Tandem items. Each run's session id is recorded
//! in the thread as an `agentSession` item, so later turns — also after a
//! restart of the app-server — resume the same session.
//!
//! Formats (see `tests/fixtures/agents/FORMATS.md` for sources):
//! - `codex exec --json [resume ID] PROMPT`: `thread.started{thread_id}`,
//!   `item.completed{item}` with `agent_message{text}`,
//!   `command_execution{command, aggregated_output, exit_code, status}`,
//!   `file_change{changes[{path, kind}], status}`; `turn.failed{error{message}}`,
//!   `error{message}`.
//! - `claude -p PROMPT --output-format stream-json --verbose [--resume ID]`:
//!   `system{subtype:init, session_id}`, `assistant{message{content[text |
//!   tool_use{id, name, input}]}}`, `user{message{content[tool_result{tool_use_id,
//!   content, is_error}]}}`, `result{is_error, result, session_id}`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tandem_protocol::AgentInfo;

use super::exec::{Ended, supervise, turn_command};
use super::{Agent, BoxFuture, Cancel, DeltaSink, Outcome, TurnInput};
use crate::config::CliSettings;

/// Which CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliKind {
    Codex,
    Claude,
}

impl CliKind {
    fn name(self) -> &'static str {
        match self {
            CliKind::Codex => "codex",
            CliKind::Claude => "claude",
        }
    }

    fn login_hint(self) -> &'static str {
        match self {
            CliKind::Codex => "run `codex login` as the user running the app-server",
            CliKind::Claude => "run `claude` once and /login as the user running the app-server",
        }
    }
}

/// Runs `codex` or `claude` per turn.
pub struct CliAgent {
    kind: CliKind,
    settings: CliSettings,
    grace: Duration,
    cwd: Option<std::path::PathBuf>,
}

impl CliAgent {
    pub fn new(kind: CliKind, settings: CliSettings) -> CliAgent {
        CliAgent { kind, settings, grace: Duration::from_secs(3), cwd: None }
    }

    /// Runs the CLI in `dir` (the project it works on).
    pub fn in_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.cwd = dir;
        self
    }

    /// The arguments for a turn, resuming `session` when there is one.
    pub fn args(&self, prompt: &str, session: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        match self.kind {
            CliKind::Codex => {
                args.extend(["exec".into(), "--json".into(), "--skip-git-repo-check".into()]);
                if let Some(m) = &self.settings.model {
                    args.extend(["--model".into(), m.clone()]);
                }
                args.extend(self.settings.args.iter().cloned());
                if let Some(id) = session {
                    args.extend(["resume".into(), id.to_owned()]);
                }
                args.extend(["--".into(), prompt.to_owned()]);
            }
            CliKind::Claude => {
                args.extend(["-p".into(), "--output-format".into(), "stream-json".into(), "--verbose".into()]);
                if let Some(m) = &self.settings.model {
                    args.extend(["--model".into(), m.clone()]);
                }
                if let Some(id) = session {
                    args.extend(["--resume".into(), id.to_owned()]);
                }
                args.extend(self.settings.args.iter().cloned());
                args.extend(["--".into(), prompt.to_owned()]);
            }
        }
        args
    }

    fn command_line(&self, args: &[String]) -> String {
        let shown: Vec<String> =
            args.iter()
                .map(|a| {
                    if a.len() > 40 || a.contains(char::is_whitespace) {
                        format!("{:?}", clip(a, 40))
                    } else {
                        a.clone()
                    }
                })
                .collect();
        format!("{} {}", self.settings.program, shown.join(" "))
    }

    async fn run_turn(&self, input: TurnInput, out: &mut dyn DeltaSink, mut cancel: Cancel) -> Outcome {
        let session = input.history.iter().rev().find_map(|t| t.session.clone());
        let args = self.args(&input.input, session.as_deref());
        let shown = self.command_line(&args);
        let mut child = match turn_command(&self.settings.program, &args, &input, self.cwd.as_deref()).spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Outcome::Failed(format!(
                    "could not start `{shown}`: {} is not installed or not on the app-server's PATH",
                    self.settings.program
                ));
            }
            Err(e) => return Outcome::Failed(format!("could not start `{shown}`: {e}")),
        };
        let mut mapper = Mapper::new(self.kind);
        let mut partial = Vec::new();
        let ended = supervise(&mut child, self.grace, &mut cancel, |bytes| {
            partial.extend_from_slice(bytes);
            while let Some(i) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=i).collect();
                mapper.line(&String::from_utf8_lossy(&line), out);
            }
        })
        .await;
        let (status, tail) = match ended {
            Ended::Interrupted(reason) => return Outcome::Interrupted(reason),
            Ended::Exited { status, stderr_tail } => (status, stderr_tail),
        };
        if !partial.is_empty() {
            mapper.line(&String::from_utf8_lossy(&partial), out);
        }
        if let Some(error) = mapper.error {
            return Outcome::Failed(self.explain(&shown, &error));
        }
        match status {
            Ok(s) if s.success() => {
                if mapper.session.is_none() {
                    return Outcome::Failed(format!(
                        "`{shown}` printed no {} JSON stream{}; is this a supported version of {}?",
                        self.kind.name(),
                        if tail.is_empty() { String::new() } else { format!(" (stderr: {tail})") },
                        self.kind.name()
                    ));
                }
                Outcome::Completed
            }
            Ok(s) => {
                let detail = if tail.is_empty() { mapper.last_message.unwrap_or_default() } else { tail };
                let code = s.code().map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
                Outcome::Failed(self.explain(&shown, &format!("exited with {code}: {detail}")))
            }
            Err(e) => Outcome::Failed(format!("could not wait for `{shown}`: {e}")),
        }
    }

    /// The failure, with the command tried and a hint when it is about login.
    fn explain(&self, shown: &str, error: &str) -> String {
        let lower = error.to_ascii_lowercase();
        let auth = ["401", "unauthorized", "not logged in", "authentication", "/login", "api key"]
            .iter()
            .any(|w| lower.contains(w));
        if auth {
            format!("`{shown}` failed to authenticate: {error} — {}", self.kind.login_hint())
        } else {
            format!("`{shown}` failed: {error}")
        }
    }
}

impl Agent for CliAgent {
    fn info(&self) -> AgentInfo {
        AgentInfo { kind: self.kind.name().into(), model: self.settings.model.clone() }
    }

    fn wants_history(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, input: TurnInput, out: &'a mut dyn DeltaSink, cancel: Cancel) -> BoxFuture<'a, Outcome> {
        Box::pin(self.run_turn(input, out, cancel))
    }
}

/// Turns one CLI's JSON lines into deltas and items.
struct Mapper {
    kind: CliKind,
    session: Option<String>,
    /// The fatal error the stream reported, if any.
    error: Option<String>,
    /// The last non-fatal message (used if the process fails without saying why).
    last_message: Option<String>,
    wrote_text: bool,
    /// Claude's tool calls, by id, until their results come.
    tools: HashMap<String, (String, Value)>,
}

impl Mapper {
    fn new(kind: CliKind) -> Mapper {
        Mapper { kind, session: None, error: None, last_message: None, wrote_text: false, tools: HashMap::new() }
    }

    fn line(&mut self, line: &str, out: &mut dyn DeltaSink) {
        let Ok(v) = serde_json::from_str::<Value>(line) else { return };
        match self.kind {
            CliKind::Codex => self.codex(&v, out),
            CliKind::Claude => self.claude(&v, out),
        }
    }

    fn session_started(&mut self, agent: &str, id: &str, out: &mut dyn DeltaSink) {
        if self.session.as_deref() == Some(id) {
            return;
        }
        self.session = Some(id.to_owned());
        out.item("agentSession", obj(json!({"agent": agent, "sessionId": id})));
    }

    fn text(&mut self, text: &str, out: &mut dyn DeltaSink) {
        if text.is_empty() {
            return;
        }
        if self.wrote_text {
            out.delta("\n\n");
        }
        out.delta(text);
        self.wrote_text = true;
    }

    fn codex(&mut self, v: &Value, out: &mut dyn DeltaSink) {
        match v["type"].as_str().unwrap_or("") {
            "thread.started" => {
                if let Some(id) = v["thread_id"].as_str() {
                    self.session_started("codex", id, out);
                }
            }
            "item.completed" => {
                let item = &v["item"];
                match item["type"].as_str().unwrap_or("") {
                    "agent_message" => self.text(item["text"].as_str().unwrap_or(""), out),
                    "command_execution" => out.item(
                        "commandExecution",
                        obj(json!({
                            "command": item["command"],
                            "output": item["aggregated_output"],
                            "exitCode": item["exit_code"],
                            "status": item["status"],
                        })),
                    ),
                    "file_change" => out.item(
                        "fileChange",
                        obj(json!({"changes": item["changes"], "status": item["status"]})),
                    ),
                    "mcp_tool_call" => out.item(
                        "toolCall",
                        obj(json!({
                            "name": format!("{}/{}", item["server"].as_str().unwrap_or("?"), item["tool"].as_str().unwrap_or("?")),
                            "input": item["arguments"],
                            "status": item["status"],
                        })),
                    ),
                    "error" => self.last_message = item["message"].as_str().map(str::to_owned),
                    _ => {}
                }
            }
            "turn.failed" => {
                self.error = Some(v["error"]["message"].as_str().unwrap_or("the turn failed").to_owned());
            }
            "error" => self.last_message = v["message"].as_str().map(str::to_owned),
            _ => {}
        }
    }

    fn claude(&mut self, v: &Value, out: &mut dyn DeltaSink) {
        if let Some(id) = v["session_id"].as_str() {
            self.session_started("claude", id, out);
        }
        match v["type"].as_str().unwrap_or("") {
            "assistant" => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str().unwrap_or("") {
                        "text" => {
                            let text = block["text"].as_str().unwrap_or("");
                            if v.get("error").is_some_and(|e| !e.is_null()) {
                                self.last_message = Some(text.to_owned());
                            } else {
                                self.text(text, out);
                            }
                        }
                        "tool_use" => {
                            let id = block["id"].as_str().unwrap_or("").to_owned();
                            let name = block["name"].as_str().unwrap_or("tool").to_owned();
                            self.tools.insert(id, (name, block["input"].clone()));
                        }
                        _ => {}
                    }
                }
            }
            "user" => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    if block["type"] != "tool_result" {
                        continue;
                    }
                    let id = block["tool_use_id"].as_str().unwrap_or("");
                    let (name, input) = self.tools.remove(id).unwrap_or_else(|| ("tool".into(), Value::Null));
                    let failed = block["is_error"].as_bool().unwrap_or(false);
                    let status = if failed { "failed" } else { "completed" };
                    let output = match &block["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => {
                            parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
                        }
                        other => other.to_string(),
                    };
                    out.item(&claude_item_type(&name), claude_item(&name, &input, output, status));
                }
            }
            "result" => {
                if v["is_error"].as_bool().unwrap_or(false) {
                    let msg = v["result"].as_str().or(v["subtype"].as_str()).unwrap_or("the run failed");
                    self.error = Some(msg.to_owned());
                } else if !self.wrote_text {
                    self.text(v["result"].as_str().unwrap_or(""), out);
                }
            }
            _ => {}
        }
    }
}

fn claude_item_type(tool: &str) -> String {
    match tool {
        "Bash" => "commandExecution",
        "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => "fileChange",
        _ => "toolCall",
    }
    .to_owned()
}

fn claude_item(tool: &str, input: &Value, output: String, status: &str) -> Map<String, Value> {
    match tool {
        "Bash" => obj(json!({"command": input["command"], "output": output, "status": status})),
        "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => {
            let kind = if tool == "Write" { "add" } else { "update" };
            let path = input.get("file_path").or_else(|| input.get("notebook_path")).cloned().unwrap_or(Value::Null);
            obj(json!({"changes": [{"path": path, "kind": kind}], "status": status, "output": output}))
        }
        _ => obj(json!({"name": tool, "input": input, "output": output, "status": status})),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        text: String,
        items: Vec<(String, Map<String, Value>)>,
    }
    impl DeltaSink for Collect {
        fn delta(&mut self, text: &str) {
            self.text.push_str(text);
        }
        fn item(&mut self, item_type: &str, fields: Map<String, Value>) {
            self.items.push((item_type.to_owned(), fields));
        }
    }

    fn feed(kind: CliKind, fixture: &str) -> (Mapper, Collect) {
        let path = format!("{}/../tests/fixtures/agents/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut m = Mapper::new(kind);
        let mut out = Collect::default();
        for line in text.lines() {
            m.line(line, &mut out);
        }
        (m, out)
    }

    #[test]
    fn codex_stream_maps_to_items() {
        let (m, out) = feed(CliKind::Codex, "codex-ok.jsonl");
        assert_eq!(m.session.as_deref(), Some("0199a213-81c0-7800-8aa1-bbab2a035a53"));
        assert!(m.error.is_none());
        assert!(out.text.starts_with("Fixed the typo"), "{}", out.text);
        let types: Vec<&str> = out.items.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["agentSession", "commandExecution", "fileChange", "commandExecution"]);
        assert_eq!(out.items[1].1["exitCode"], 0);
        assert_eq!(out.items[2].1["changes"][1]["kind"], "add");
        let (m, _) = feed(CliKind::Codex, "codex-fail.jsonl");
        assert!(m.error.unwrap().contains("401 Unauthorized"));
    }

    #[test]
    fn claude_stream_maps_to_items() {
        let (m, out) = feed(CliKind::Claude, "claude-ok.jsonl");
        assert_eq!(m.session.as_deref(), Some("8f0c2b7e-5d1a-4c3e-9a6b-2e7f4d1c0a93"));
        assert!(out.text.starts_with("I'll look at the greeting helper first.\n\nFixed the typo"), "{}", out.text);
        let types: Vec<&str> = out.items.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["agentSession", "commandExecution", "fileChange"]);
        assert_eq!(out.items[1].1["command"], "cat src/greet.rs");
        assert_eq!(out.items[2].1["changes"][0]["path"], "/repo/src/greet.rs");
        let (m, _) = feed(CliKind::Claude, "claude-fail.jsonl");
        assert!(m.error.unwrap().contains("401"));
    }

    #[test]
    fn resumes_with_the_recorded_session() {
        let codex = CliAgent::new(
            CliKind::Codex,
            CliSettings { program: "codex".into(), model: Some("o4".into()), args: vec![] },
        );
        assert_eq!(
            codex.args("hi", Some("S")),
            ["exec", "--json", "--skip-git-repo-check", "--model", "o4", "resume", "S", "--", "hi"]
        );
        let claude =
            CliAgent::new(CliKind::Claude, CliSettings { program: "claude".into(), model: None, args: vec![] });
        assert_eq!(claude.args("hi", None), ["-p", "--output-format", "stream-json", "--verbose", "--", "hi"]);
        assert!(claude.args("hi", Some("S")).windows(2).any(|w| w == ["--resume", "S"]));
    }
}
