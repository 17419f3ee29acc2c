//! `openai`: any OpenAI-compatible Chat Completions endpoint with streaming
//! (OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio). The thread's earlier
//! turns go along as the conversation; each streamed content delta becomes an
//! `item/agentMessage/delta`; an interrupt drops the HTTP stream. Every
//! failure ends the turn `failed` with what a person needs to act on.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tandem_protocol::AgentInfo;

use super::{Agent, BoxFuture, Cancel, DeltaSink, Outcome, TurnInput};

/// The OpenAI-compatible backend's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiSettings {
    pub base_url: String,
    pub model: String,
    /// The name of the environment variable holding the API key (the key
    /// itself is never stored or logged).
    pub api_key_env: String,
    pub timeout: std::time::Duration,
    pub system_prompt: Option<String>,
}

/// Streams chat completions from an OpenAI-compatible server.
pub struct OpenAiAgent {
    settings: OpenAiSettings,
    http: reqwest::Client,
}

impl OpenAiAgent {
    pub fn new(settings: OpenAiSettings) -> Result<OpenAiAgent, String> {
        // reqwest is built without a bundled crypto provider; use ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .read_timeout(settings.timeout)
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(OpenAiAgent { settings, http })
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.settings.base_url.trim_end_matches('/'))
    }

    fn body(&self, input: &TurnInput) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = &self.settings.system_prompt {
            messages.push(json!({"role": "system", "content": system}));
        }
        for past in &input.history {
            messages.push(json!({"role": "user", "content": past.input}));
            messages.push(json!({"role": "assistant", "content": past.response}));
        }
        messages.push(json!({"role": "user", "content": input.input}));
        json!({"model": self.settings.model, "messages": messages, "stream": true})
    }

    async fn stream(&self, input: &TurnInput, out: &mut dyn DeltaSink) -> Outcome {
        let url = self.url();
        let mut req =
            self.http.post(&url).header("content-type", "application/json").body(self.body(input).to_string());
        match std::env::var(&self.settings.api_key_env) {
            Ok(key) if !key.is_empty() => req = req.bearer_auth(key),
            _ => {}
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("POST {url}: {}", describe(&e, self.settings.timeout))),
        };
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let mut msg = format!("POST {url} answered {status}: {}", server_message(&text));
            if status.as_u16() == 401 || status.as_u16() == 403 {
                msg.push_str(&format!(" (check the API key in ${})", self.settings.api_key_env));
            }
            return Outcome::Failed(msg);
        }
        let mut events = resp.bytes_stream().eventsource();
        let mut finished = false;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => return Outcome::Failed(format!("the stream from {url} broke off: {e}")),
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                return Outcome::Completed;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = match serde_json::from_str(data) {
                Ok(v) => v,
                Err(e) => return Outcome::Failed(format!("malformed stream from {url}: {e} in {:?}", clip(data, 200))),
            };
            if let Some(err) = chunk.get("error") {
                return Outcome::Failed(format!(
                    "{url} reported an error mid-stream: {}",
                    server_message(&err.to_string())
                ));
            }
            let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else { continue };
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                out.delta(text);
            }
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                finished = true;
            }
        }
        if finished {
            Outcome::Completed
        } else {
            Outcome::Failed(format!("the stream from {url} ended before the answer was complete"))
        }
    }
}

impl Agent for OpenAiAgent {
    fn info(&self) -> AgentInfo {
        AgentInfo { kind: "openai".into(), model: Some(self.settings.model.clone()) }
    }

    fn wants_history(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, input: TurnInput, out: &'a mut dyn DeltaSink, mut cancel: Cancel) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            tokio::select! {
                // Dropping the request future closes the HTTP stream.
                reason = cancel.cancelled() => Outcome::Interrupted(reason),
                outcome = self.stream(&input, out) => outcome,
            }
        })
    }
}

/// A reqwest error in words a person can act on.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}s (the request timeout)", timeout.as_secs())
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        let mut detail = String::new();
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        format!("cannot connect: {detail}")
    } else {
        e.to_string()
    }
}

/// The server's own error text: `error.message` of a JSON body, else the body.
fn server_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")).or_else(|| v.get("error")))
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    if msg.is_empty() { "(empty body)".to_owned() } else { clip(&msg, 500) }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}
