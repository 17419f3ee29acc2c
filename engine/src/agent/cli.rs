//! `codex` and `claude`: run the coding agents' own CLIs once per turn and map
//! their JSON-lines streams to Tandem items, live: text as it streams, a
//! command as soon as it starts (`inProgress`) and again when it ends, retries
//! as `status` items. Each run's session id is recorded in the thread as an
//! `agentSession` item, so later turns — also after a restart of the
//! app-server — resume the same session; a session the CLI no longer knows is
//! marked `ended` and the turn starts a new one.
//!
//! The prompt goes to the CLI's stdin, never its arguments (one argument may
//! be at most 128 kB on Linux).
//!
//! Formats (see `tests/fixtures/agents/FORMATS.md` for sources):
//! - `codex exec --json [resume ID] -`: `thread.started{thread_id}`,
//!   `item.started` / `item.completed{item}` with `agent_message{text}`,
//!   `command_execution{command, aggregated_output, exit_code, status}`,
//!   `file_change{changes[{path, kind}], status}`; `turn.failed{error{message}}`,
//!   `error{message}` (also "Reconnecting... n/5 (…)" while it retries). A
//!   resume of an unknown id prints nothing and exits 1 with "no rollout found"
//!   on stderr.
//! - `claude -p --output-format stream-json --verbose --include-partial-messages
//!   [--resume ID]`: `system{subtype:init, session_id, apiKeySource}`,
//!   `system{subtype:api_retry, attempt, max_retries, error_status, error}`,
//!   `stream_event{event}` (Messages API stream events: `text_delta`s),
//!   `assistant{message{id, content[text | tool_use{id, name, input}]}}`,
//!   `user{message{content[tool_result{tool_use_id, content, is_error}]}}`,
//!   `result{is_error, result, errors[], session_id}`.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tandem_protocol::AgentInfo;
use tandem_protocol::items::{self, fields};
use tokio::io::AsyncWriteExt;

use super::exec::{Ended, supervise, turn_command};
use super::{Agent, BoxFuture, Cancel, DeltaSink, Outcome, TurnInput};

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
}

/// A CLI agent's settings (codex, claude).
#[derive(Debug, Clone, PartialEq)]
pub struct CliSettings {
    pub program: String,
    pub model: Option<String>,
    pub args: Vec<String>,
}

/// Runs `codex` or `claude` per turn.
pub struct CliAgent {
    kind: CliKind,
    settings: CliSettings,
    grace: Duration,
    cwd: Option<std::path::PathBuf>,
}

/// How one run of the CLI ended.
enum Run {
    Done(Outcome),
    /// The session to resume is gone; why, as the CLI said it.
    SessionGone(String),
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

    /// The arguments for a turn, resuming `session` when there is one. The
    /// prompt is not among them: it goes to stdin.
    pub fn args(&self, session: Option<&str>) -> Vec<String> {
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
                // `-`: read the prompt from stdin.
                args.push("-".into());
            }
            CliKind::Claude => {
                args.extend([
                    "-p".into(),
                    "--output-format".into(),
                    "stream-json".into(),
                    "--verbose".into(),
                    "--include-partial-messages".into(),
                ]);
                if let Some(m) = &self.settings.model {
                    args.extend(["--model".into(), m.clone()]);
                }
                if let Some(id) = session {
                    args.extend(["--resume".into(), id.to_owned()]);
                }
                // No prompt argument: `claude -p` reads it from stdin.
                args.extend(self.settings.args.iter().cloned());
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
        let session = latest_session(&input);
        let Some(old) = session else {
            return match self.run_once(&input, None, out, &mut cancel).await {
                Run::Done(outcome) => outcome,
                Run::SessionGone(why) => Outcome::Failed(why),
            };
        };
        match self.run_once(&input, Some(&old), out, &mut cancel).await {
            Run::Done(outcome) => outcome,
            Run::SessionGone(why) => {
                let name = self.kind.name();
                out.item(items::AGENT_SESSION, fields(json!({"agent": name, "sessionId": old, "ended": true})));
                out.item(
                    "status",
                    fields(json!({
                        "kind": "newSession",
                        "message": format!(
                            "{name} could not resume session {old} ({why}); starting a new {name} session, \
                             which does not know the earlier turns"
                        ),
                    })),
                );
                match self.run_once(&input, None, out, &mut cancel).await {
                    Run::Done(outcome) => outcome,
                    Run::SessionGone(why) => Outcome::Failed(why),
                }
            }
        }
    }

    async fn run_once(
        &self,
        input: &TurnInput,
        session: Option<&str>,
        out: &mut dyn DeltaSink,
        cancel: &mut Cancel,
    ) -> Run {
        let args = self.args(session);
        let shown = self.command_line(&args);
        let mut cmd = turn_command(&self.settings.program, &args, input, self.cwd.as_deref());
        cmd.stdin(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Run::Done(Outcome::Failed(format!(
                    "could not start `{shown}`: {} is not installed or not on the app-server's PATH",
                    self.settings.program
                )));
            }
            Err(e) => return Run::Done(Outcome::Failed(format!("could not start `{shown}`: {e}"))),
        };
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let prompt = input.input.clone().into_bytes();
        // A CLI that exits without reading all of its stdin must not stall the turn.
        let feeder = tokio::spawn(async move {
            let _ = stdin.write_all(&prompt).await;
            let _ = stdin.shutdown().await;
        });
        let mut mapper = Mapper::new(self.kind, session);
        let mut partial = Vec::new();
        let watching = cancel.clone();
        let ended = supervise(&mut child, self.grace, cancel, |bytes| {
            partial.extend_from_slice(bytes);
            while let Some(i) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=i).collect();
                mapper.interrupted = watching.is_cancelled();
                mapper.line(&String::from_utf8_lossy(&line), out);
            }
        })
        .await;
        feeder.abort();
        if !partial.is_empty() {
            mapper.line(&String::from_utf8_lossy(&partial), out);
        }
        let (status, tail) = match ended {
            Ended::Interrupted(reason) => {
                mapper.close_open_items("interrupted", out);
                return Run::Done(Outcome::Interrupted(reason));
            }
            Ended::Exited { status, stderr_tail } => (status, stderr_summary(&stderr_tail)),
        };
        mapper.close_open_items("failed", out);
        if let Some(why) = mapper.gone.take() {
            return Run::SessionGone(with_stderr(why, &tail));
        }
        if let Some(error) = mapper.error.take() {
            return Run::Done(Outcome::Failed(self.explain(&shown, &with_stderr(error, &tail), &mapper)));
        }
        match status {
            Ok(s) if s.success() => {
                if mapper.session.is_none() {
                    return Run::Done(Outcome::Failed(format!(
                        "`{shown}` printed no {} JSON stream{}; is this a supported version of {}?",
                        self.kind.name(),
                        if tail.is_empty() { String::new() } else { format!(" (stderr: {tail})") },
                        self.kind.name()
                    )));
                }
                Run::Done(Outcome::Completed)
            }
            Ok(s) => {
                // codex answers a resume of a session it does not have with
                // nothing on stdout and "no rollout found" on stderr.
                if session.is_some()
                    && mapper.session.is_none()
                    && self.kind == CliKind::Codex
                    && let Some(line) = tail.lines().find(|l| l.contains("no rollout found"))
                {
                    return Run::SessionGone(line.trim_start_matches("Error: ").to_owned());
                }
                let detail = if tail.is_empty() { mapper.last_message.clone().unwrap_or_default() } else { tail };
                let code = s.code().map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
                Run::Done(Outcome::Failed(self.explain(&shown, &format!("exited with {code}: {detail}"), &mapper)))
            }
            Err(e) => Run::Done(Outcome::Failed(format!("could not wait for `{shown}`: {e}"))),
        }
    }

    /// The failure, with the command tried and, when it is about the key, a
    /// hint that fits where the key comes from.
    fn explain(&self, shown: &str, error: &str, mapper: &Mapper) -> String {
        let lower = error.to_ascii_lowercase();
        let auth = ["401", "unauthorized", "not logged in", "authentication", "/login", "api key", "x-api-key"]
            .iter()
            .any(|w| lower.contains(w));
        if auth {
            format!("`{shown}` failed to authenticate: {error} — {}", self.key_hint(mapper))
        } else {
            format!("`{shown}` failed: {error}")
        }
    }

    /// What to do about a refused key: log in again only when the key comes
    /// from the CLI's login.
    fn key_hint(&self, mapper: &Mapper) -> String {
        match self.kind {
            CliKind::Claude => {
                let source = mapper.key_source.clone().or_else(|| {
                    ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]
                        .into_iter()
                        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
                        .map(str::to_owned)
                });
                match source.as_deref() {
                    None | Some("none") => "run `claude auth login` as the user running the app-server".to_owned(),
                    Some(var) if var.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                        format!("claude used the key in ${var}, which the app-server passed on; check or unset it")
                    }
                    Some(other) => format!("claude's key comes from {other}; check it"),
                }
            }
            CliKind::Codex => match codex_key_source(&self.settings.args) {
                CodexKey::Login => "run `codex login` as the user running the app-server".to_owned(),
                CodexKey::Env(var) => {
                    format!("codex used the key in ${var}, which the app-server passed on; check or unset it")
                }
                CodexKey::Provider { name, env_key: Some(var) } => format!(
                    "codex's model provider `{name}` takes its key from ${var}; check that variable in the \
                     app-server's environment"
                ),
                CodexKey::Provider { name, env_key: None } => {
                    format!("check the credentials of codex's model provider `{name}` (model_providers.{name})")
                }
            },
        }
    }
}

/// The session to resume: the latest one recorded, unless a later turn found
/// it gone.
fn latest_session(input: &TurnInput) -> Option<String> {
    for t in input.history.iter().rev() {
        if t.session.is_some() {
            return t.session.clone();
        }
        if t.session_ended {
            return None;
        }
    }
    None
}

/// Where codex gets the key for its requests.
#[derive(Debug, PartialEq, Eq)]
enum CodexKey {
    /// Its own login (`codex login`).
    Login,
    /// An environment variable it reads instead of the login.
    Env(String),
    /// A custom `[model_providers.NAME]`, with the variable its key is in.
    Provider { name: String, env_key: Option<String> },
}

/// Reads which provider codex will use: `-c model_provider=…` in the
/// configured arguments, else `model_provider` in `$CODEX_HOME/config.toml`
/// (default `~/.codex`); a provider other than `openai` does not use the login.
fn codex_key_source(args: &[String]) -> CodexKey {
    let home = std::env::var_os("CODEX_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".codex")));
    let config: toml::Table = home
        .and_then(|h| std::fs::read_to_string(h.join("config.toml")).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let env_key = std::env::var_os("CODEX_API_KEY").is_some_and(|v| !v.is_empty());
    codex_key_source_in(args, &config, env_key)
}

/// [`codex_key_source`] given codex's parsed config and whether
/// `CODEX_API_KEY` is set.
fn codex_key_source_in(args: &[String], config: &toml::Table, codex_api_key: bool) -> CodexKey {
    if args.iter().any(|a| a == "--oss") {
        return CodexKey::Provider { name: "oss".into(), env_key: None };
    }
    let from_args = args.iter().zip(args.iter().skip(1)).find_map(|(flag, value)| {
        let set = matches!(flag.as_str(), "-c" | "--config").then_some(value.as_str())?;
        let v = set.strip_prefix("model_provider=")?;
        Some(v.trim_matches(|c| c == '"' || c == '\'').to_owned())
    });
    let provider = from_args.or_else(|| config.get("model_provider").and_then(|p| p.as_str()).map(str::to_owned));
    if let Some(name) = provider.filter(|p| p != "openai") {
        let env_key = config
            .get("model_providers")
            .and_then(|p| p.get(&name))
            .and_then(|p| p.get("env_key"))
            .and_then(|k| k.as_str())
            .map(str::to_owned);
        return CodexKey::Provider { name, env_key };
    }
    if codex_api_key { CodexKey::Env("CODEX_API_KEY".into()) } else { CodexKey::Login }
}

/// The CLI's stderr without Rust backtrace frames (codex prints
/// `Stack backtrace:` and numbered `<unknown>` frames after its error line).
fn stderr_summary(tail: &str) -> String {
    let mut lines = Vec::new();
    let mut in_backtrace = false;
    for l in tail.lines() {
        let t = l.trim();
        if t == "Stack backtrace:" {
            in_backtrace = true;
            continue;
        }
        let frame =
            t.split_once(": ").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit())) || t.starts_with("at ");
        if in_backtrace && (frame || t.is_empty()) {
            continue;
        }
        in_backtrace = false;
        if !t.is_empty() {
            lines.push(t);
        }
    }
    lines.join("\n")
}

fn with_stderr(message: String, stderr: &str) -> String {
    if stderr.is_empty() || message.contains(stderr) { message } else { format!("{message} (stderr: {stderr})") }
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

/// An item that has started and not yet completed.
struct OpenItem {
    id: String,
    item_type: String,
    fields: Map<String, Value>,
}

/// Turns one CLI's JSON lines into deltas and items.
struct Mapper {
    kind: CliKind,
    /// The session this run was asked to resume.
    resuming: Option<String>,
    session: Option<String>,
    /// The fatal error the stream reported, if any.
    error: Option<String>,
    /// Why the session to resume could not be resumed.
    gone: Option<String>,
    /// The last non-fatal message (used if the process fails without saying why).
    last_message: Option<String>,
    /// Where claude says its key comes from (`apiKeySource`).
    key_source: Option<String>,
    wrote_text: bool,
    /// A text block has started: the next delta begins a new paragraph.
    new_block: bool,
    /// Claude messages whose text came as deltas (their whole copy is skipped).
    streamed: HashSet<String>,
    /// The claude message being streamed.
    streaming: Option<String>,
    /// Claude's tool calls, by id, until their results come.
    tools: HashMap<String, (String, Value)>,
    /// Items running now, by the CLI's id for them.
    open: HashMap<String, OpenItem>,
    /// The order items were opened in, to close leftovers in order.
    opened: Vec<String>,
    /// Set while the turn is being interrupted: a tool failing now was stopped.
    interrupted: bool,
}

impl Mapper {
    fn new(kind: CliKind, resuming: Option<&str>) -> Mapper {
        Mapper {
            kind,
            resuming: resuming.map(str::to_owned),
            session: None,
            error: None,
            gone: None,
            last_message: None,
            key_source: None,
            wrote_text: false,
            new_block: false,
            streamed: HashSet::new(),
            streaming: None,
            tools: HashMap::new(),
            open: HashMap::new(),
            opened: Vec::new(),
            interrupted: false,
        }
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
        out.item(items::AGENT_SESSION, fields(json!({"agent": agent, "sessionId": id})));
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

    /// One streamed piece of text; a new block starts a new paragraph.
    fn text_delta(&mut self, text: &str, out: &mut dyn DeltaSink) {
        if text.is_empty() {
            return;
        }
        if self.new_block && self.wrote_text {
            out.delta("\n\n");
        }
        self.new_block = false;
        out.delta(text);
        self.wrote_text = true;
    }

    /// A `retry` status item.
    fn status(&mut self, message: String, out: &mut dyn DeltaSink) {
        out.item("status", fields(json!({ "kind": "retry", "message": message })));
    }

    fn start(&mut self, key: &str, item_type: &str, fields: Map<String, Value>, out: &mut dyn DeltaSink) {
        let id = out.item_started(item_type, fields.clone());
        self.open.insert(key.to_owned(), OpenItem { id, item_type: item_type.to_owned(), fields });
        self.opened.push(key.to_owned());
    }

    /// Completes the item the CLI knows as `key` (or shows it whole if it
    /// never started).
    fn complete(&mut self, key: &str, item_type: &str, fields: Map<String, Value>, out: &mut dyn DeltaSink) {
        match self.open.remove(key) {
            Some(open) => out.item_completed(&open.id, item_type, fields),
            None => out.item(item_type, fields),
        }
    }

    /// Completes whatever is still running with `status` (the run ended
    /// under it: interrupted, or exited without saying).
    fn close_open_items(&mut self, status: &str, out: &mut dyn DeltaSink) {
        for key in std::mem::take(&mut self.opened) {
            if let Some(mut open) = self.open.remove(&key) {
                open.fields.insert("status".into(), Value::String(status.to_owned()));
                out.item_completed(&open.id, &open.item_type, open.fields);
            }
        }
    }

    fn codex(&mut self, v: &Value, out: &mut dyn DeltaSink) {
        match v["type"].as_str().unwrap_or("") {
            "thread.started" => {
                if let Some(id) = v["thread_id"].as_str() {
                    self.session_started("codex", id, out);
                }
            }
            kind @ ("item.started" | "item.completed") => {
                let item = &v["item"];
                let key = item["id"].as_str().unwrap_or("");
                let Some((item_type, fields)) = codex_item(item) else {
                    if kind == "item.completed" {
                        match item["type"].as_str().unwrap_or("") {
                            "agent_message" => self.text(item["text"].as_str().unwrap_or(""), out),
                            "error" => self.last_message = item["message"].as_str().map(str::to_owned),
                            _ => {}
                        }
                    }
                    return;
                };
                if kind == "item.started" {
                    self.start(key, item_type, fields, out);
                } else {
                    self.complete(key, item_type, fields, out);
                }
            }
            "turn.failed" => {
                self.error = Some(v["error"]["message"].as_str().unwrap_or("the turn failed").to_owned());
            }
            "error" => {
                let message = v["message"].as_str().unwrap_or("").to_owned();
                if message.starts_with("Reconnecting") {
                    self.status(format!("codex: {message}"), out);
                }
                self.last_message = Some(message);
            }
            _ => {}
        }
    }

    fn claude(&mut self, v: &Value, out: &mut dyn DeltaSink) {
        let kind = v["type"].as_str().unwrap_or("");
        if kind == "result" && v["is_error"].as_bool() == Some(true) {
            let errors = v["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>();
            let errors = errors.join("; ");
            if self.resuming.is_some() && self.session.is_none() && errors.contains("No conversation found") {
                // The id on this line is the dead session's: not recorded.
                self.gone = Some(errors);
                return;
            }
        }
        if let Some(id) = v["session_id"].as_str() {
            self.session_started("claude", id, out);
        }
        match kind {
            "system" => match v["subtype"].as_str().unwrap_or("") {
                "init" => self.key_source = v["apiKeySource"].as_str().map(str::to_owned),
                "api_retry" => {
                    let status = v["error_status"].as_i64().map(|s| format!(" {s}")).unwrap_or_default();
                    let error = v["error"].as_str().unwrap_or("error");
                    let attempt = v["attempt"].as_i64().unwrap_or(0);
                    let max = v["max_retries"].as_i64().map(|m| format!("/{m}")).unwrap_or_default();
                    self.status(format!("claude: API error{status} ({error}), retrying {attempt}{max}"), out);
                }
                _ => {}
            },
            "stream_event" if v["parent_tool_use_id"].is_null() => {
                let event = &v["event"];
                match event["type"].as_str().unwrap_or("") {
                    "message_start" => self.streaming = event["message"]["id"].as_str().map(str::to_owned),
                    "content_block_start" if event["content_block"]["type"] == "text" => self.new_block = true,
                    "content_block_delta" if event["delta"]["type"] == "text_delta" => {
                        if let Some(id) = &self.streaming {
                            self.streamed.insert(id.clone());
                        }
                        self.text_delta(event["delta"]["text"].as_str().unwrap_or(""), out);
                    }
                    _ => {}
                }
            }
            "assistant" => {
                let streamed = v["message"]["id"].as_str().is_some_and(|id| self.streamed.contains(id));
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str().unwrap_or("") {
                        "text" => {
                            let text = block["text"].as_str().unwrap_or("");
                            if v.get("error").is_some_and(|e| !e.is_null()) {
                                self.last_message = Some(text.to_owned());
                            } else if !streamed {
                                self.text(text, out);
                            }
                        }
                        "tool_use" => {
                            let id = block["id"].as_str().unwrap_or("");
                            let name = block["name"].as_str().unwrap_or("tool");
                            let fields = claude_item(name, &block["input"], String::new(), "inProgress");
                            self.start(id, &claude_item_type(name), fields, out);
                            self.tools.insert(id.to_owned(), (name.to_owned(), block["input"].clone()));
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
                    let status = match (failed, self.interrupted) {
                        (false, _) => "completed",
                        (true, true) => "interrupted",
                        (true, false) => "failed",
                    };
                    let output = match &block["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => {
                            parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
                        }
                        other => other.to_string(),
                    };
                    self.complete(id, &claude_item_type(&name), claude_item(&name, &input, output, status), out);
                }
            }
            "result" => {
                if v["is_error"].as_bool().unwrap_or(false) {
                    let errors =
                        v["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>();
                    let mut msg = v["result"].as_str().unwrap_or("").to_owned();
                    if !errors.is_empty() {
                        if !msg.is_empty() {
                            msg.push_str(": ");
                        }
                        msg.push_str(&errors.join("; "));
                    }
                    if msg.is_empty() {
                        msg = v["subtype"].as_str().unwrap_or("the run failed").to_owned();
                    }
                    self.error = Some(msg);
                } else if !self.wrote_text {
                    self.text(v["result"].as_str().unwrap_or(""), out);
                }
            }
            _ => {}
        }
    }
}

/// A codex item other than text, as a Tandem item type and fields; `None`
/// for agent messages, reasoning and notices.
fn codex_item(item: &Value) -> Option<(&'static str, Map<String, Value>)> {
    let status = match item["status"].as_str() {
        Some("in_progress") => json!("inProgress"),
        _ => item["status"].clone(),
    };
    match item["type"].as_str().unwrap_or("") {
        "command_execution" => Some((
            items::COMMAND_EXECUTION,
            fields(json!({
                "command": item["command"],
                "output": item["aggregated_output"],
                "exitCode": item["exit_code"],
                "status": status,
            })),
        )),
        "file_change" => Some((items::FILE_CHANGE, fields(json!({"changes": item["changes"], "status": status})))),
        "mcp_tool_call" => Some((
            items::TOOL_CALL,
            fields(json!({
                "name": format!("{}/{}", item["server"].as_str().unwrap_or("?"), item["tool"].as_str().unwrap_or("?")),
                "input": item["arguments"],
                "status": status,
            })),
        )),
        _ => None,
    }
}

pub fn claude_item_type(tool: &str) -> String {
    match tool {
        "Bash" => items::COMMAND_EXECUTION,
        "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => items::FILE_CHANGE,
        _ => items::TOOL_CALL,
    }
    .to_owned()
}

pub fn claude_item(tool: &str, input: &Value, output: String, status: &str) -> Map<String, Value> {
    match tool {
        "Bash" => fields(json!({"command": input["command"], "output": output, "status": status})),
        "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => {
            let kind = if tool == "Write" { "add" } else { "update" };
            let path = input.get("file_path").or_else(|| input.get("notebook_path")).cloned().unwrap_or(Value::Null);
            fields(json!({"changes": [{"path": path, "kind": kind}], "status": status, "output": output}))
        }
        _ => fields(json!({"name": tool, "input": input, "output": output, "status": status})),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run produced: the text, and every item event in order.
    #[derive(Default)]
    struct Collect {
        text: String,
        /// ("started" | "completed", id, type, fields)
        events: Vec<(&'static str, String, String, Map<String, Value>)>,
        next: usize,
    }
    impl Collect {
        fn completed(&self) -> Vec<(String, Map<String, Value>)> {
            self.events.iter().filter(|e| e.0 == "completed").map(|e| (e.2.clone(), e.3.clone())).collect()
        }
    }
    impl DeltaSink for Collect {
        fn delta(&mut self, text: &str) {
            self.text.push_str(text);
        }
        fn item_started(&mut self, item_type: &str, fields: Map<String, Value>) -> String {
            self.next += 1;
            let id = format!("i{}", self.next);
            self.events.push(("started", id.clone(), item_type.to_owned(), fields));
            id
        }
        fn item_completed(&mut self, id: &str, item_type: &str, fields: Map<String, Value>) {
            self.events.push(("completed", id.to_owned(), item_type.to_owned(), fields));
        }
    }

    fn feed_with(kind: CliKind, fixture: &str, resuming: Option<&str>) -> (Mapper, Collect) {
        let path = format!("{}/../tests/fixtures/agents/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut m = Mapper::new(kind, resuming);
        let mut out = Collect::default();
        for line in text.lines() {
            m.line(line, &mut out);
        }
        (m, out)
    }

    fn feed(kind: CliKind, fixture: &str) -> (Mapper, Collect) {
        feed_with(kind, fixture, None)
    }

    #[test]
    fn codex_stream_maps_to_items() {
        let (m, out) = feed(CliKind::Codex, "codex-ok.jsonl");
        assert_eq!(m.session.as_deref(), Some("0199a213-81c0-7800-8aa1-bbab2a035a53"));
        assert!(m.error.is_none());
        assert!(out.text.starts_with("Fixed the typo"), "{}", out.text);
        let items = out.completed();
        let types: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["agentSession", "commandExecution", "fileChange", "commandExecution"]);
        assert_eq!(items[1].1["exitCode"], 0);
        assert_eq!(items[2].1["changes"][1]["kind"], "add");
        let (m, out) = feed(CliKind::Codex, "codex-fail.jsonl");
        assert!(m.error.unwrap().contains("401 Unauthorized"));
        // Its "Reconnecting… n/5" lines are retries, shown as they happen.
        let statuses = out.completed().into_iter().filter(|(t, _)| t == "status").count();
        assert_eq!(statuses, 5);
    }

    #[test]
    fn a_running_command_starts_in_progress_and_completes_under_the_same_id() {
        for (kind, fixture) in [(CliKind::Codex, "codex-live.jsonl"), (CliKind::Claude, "claude-live.jsonl")] {
            let (_, out) = feed(kind, fixture);
            let started: Vec<_> = out.events.iter().filter(|e| e.0 == "started" && e.2 == "commandExecution").collect();
            assert_eq!(started.len(), 1, "{fixture}");
            assert_eq!(started[0].3["status"], "inProgress", "{fixture}");
            let at = out.events.iter().position(|e| e.0 == "started" && e.2 == "commandExecution").unwrap();
            let done = out.events.iter().position(|e| e.0 == "completed" && e.1 == started[0].1).unwrap();
            assert!(done > at);
            assert_eq!(out.events[done].3["status"], "completed", "{fixture}");
            assert!(out.events[done].3["output"].as_str().unwrap().contains("hi"), "{fixture}");
        }
    }

    #[test]
    fn claude_streams_text_deltas_once() {
        let (m, out) = feed(CliKind::Claude, "claude-live.jsonl");
        assert_eq!(out.text, "Ran it.");
        assert_eq!(m.key_source.as_deref(), Some("ANTHROPIC_API_KEY"));
        let (_, out) = feed(CliKind::Claude, "claude-retry.jsonl");
        assert_eq!(out.text, "Hello from the mock.");
        let statuses: Vec<String> = out
            .completed()
            .into_iter()
            .filter(|(t, _)| t == "status")
            .map(|(_, f)| f["message"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses.len(), 2);
        assert!(statuses[1].contains("529") && statuses[1].contains("2/10"), "{statuses:?}");
    }

    #[test]
    fn claude_stream_maps_to_items() {
        let (m, out) = feed(CliKind::Claude, "claude-ok.jsonl");
        assert_eq!(m.session.as_deref(), Some("8f0c2b7e-5d1a-4c3e-9a6b-2e7f4d1c0a93"));
        assert!(out.text.starts_with("I'll look at the greeting helper first.\n\nFixed the typo"), "{}", out.text);
        let items = out.completed();
        let types: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["agentSession", "commandExecution", "fileChange"]);
        assert_eq!(items[1].1["command"], "cat src/greet.rs");
        assert_eq!(items[2].1["changes"][0]["path"], "/repo/src/greet.rs");
        let (m, _) = feed(CliKind::Claude, "claude-fail.jsonl");
        assert!(m.error.unwrap().contains("401"));
    }

    #[test]
    fn a_refused_resume_is_gone_and_not_recorded() {
        let (m, out) = feed_with(CliKind::Claude, "claude-gone.jsonl", Some("3bdbc95e-0000-47dd-9acf-e4c350716af7"));
        assert!(m.gone.unwrap().contains("No conversation found with session ID"));
        assert!(m.session.is_none() && out.events.is_empty());
        // Without a resume the same line is an ordinary failure.
        let (m, _) = feed(CliKind::Claude, "claude-gone.jsonl");
        assert!(m.gone.is_none() && m.error.unwrap().contains("No conversation found"));
        let path = format!("{}/../tests/fixtures/agents/codex-gone.stderr", env!("CARGO_MANIFEST_DIR"));
        let stderr = stderr_summary(&std::fs::read_to_string(path).unwrap());
        assert!(stderr.contains("no rollout found for thread id"), "{stderr}");
        assert!(!stderr.contains("<unknown>"), "{stderr}");
    }

    #[test]
    fn codex_key_comes_from_the_login_only_without_a_provider_or_env_key() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = toml::Table::new();
        assert_eq!(codex_key_source_in(&[], &none, false), CodexKey::Login);
        assert_eq!(codex_key_source_in(&[], &none, true), CodexKey::Env("CODEX_API_KEY".into()));
        let config: toml::Table =
            "model_provider = \"mock\"\n[model_providers.mock]\nenv_key = \"MOCK_KEY\"\n".parse().unwrap();
        let mock = CodexKey::Provider { name: "mock".into(), env_key: Some("MOCK_KEY".into()) };
        assert_eq!(codex_key_source_in(&[], &config, true), mock);
        assert_eq!(codex_key_source_in(&args(&["-c", "model_provider=\"openai\""]), &config, false), CodexKey::Login);
        assert_eq!(
            codex_key_source_in(&args(&["-c", "model_provider=mock"]), &none, false),
            CodexKey::Provider { name: "mock".into(), env_key: None }
        );
        assert!(matches!(codex_key_source_in(&args(&["--oss"]), &none, false), CodexKey::Provider { .. }));
    }

    #[test]
    fn interrupted_items_are_closed() {
        let (mut m, mut out) = feed(CliKind::Codex, "codex-sleep.jsonl");
        m.close_open_items("interrupted", &mut out);
        let last = out.events.last().unwrap();
        assert_eq!((last.0, last.2.as_str()), ("completed", "commandExecution"));
        assert_eq!(last.3["status"], "interrupted");
        assert_eq!(last.3["command"], "/bin/bash -lc 'sleep 1000'");
    }

    #[test]
    fn resumes_with_the_recorded_session_and_never_puts_the_prompt_in_argv() {
        let codex = CliAgent::new(
            CliKind::Codex,
            CliSettings { program: "codex".into(), model: Some("o4".into()), args: vec![] },
        );
        assert_eq!(
            codex.args(Some("S")),
            ["exec", "--json", "--skip-git-repo-check", "--model", "o4", "resume", "S", "-"]
        );
        let claude =
            CliAgent::new(CliKind::Claude, CliSettings { program: "claude".into(), model: None, args: vec![] });
        assert_eq!(
            claude.args(None),
            ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
        );
        assert!(claude.args(Some("S")).windows(2).any(|w| w == ["--resume", "S"]));
    }
}
