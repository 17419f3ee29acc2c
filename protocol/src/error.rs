//! JSON-RPC error objects with Tandem's typed reasons (DESIGN §2, Errors).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The error codes Tandem sends, with the reason each one carries in `data.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// -32700: the line was not JSON.
    ParseError,
    /// -32600: not a JSON-RPC 2.0 request, or a frame too large.
    InvalidRequest,
    /// -32601: no such method.
    MethodNotFound,
    /// -32602: a param is wrong; the message says which and what is accepted.
    InvalidParams,
    /// -32603: the server failed; detail is in its log.
    Internal,
    /// -32001: another turn is running on the thread.
    Busy,
    /// -32002: no such thread.
    ThreadNotFound,
    /// -32003: no such turn.
    TurnNotFound,
    /// -32005: the thread mirrors a Claude Code or Codex session; post in the agent.
    Mirrored,
    /// -32004: the connection's token does not allow this (a link to another
    /// thread, a read link asked to write, a thread no longer shared, a
    /// revoked or expired link).
    Forbidden,
}

impl ErrorCode {
    /// The numeric JSON-RPC code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal => -32603,
            ErrorCode::Busy => -32001,
            ErrorCode::ThreadNotFound => -32002,
            ErrorCode::TurnNotFound => -32003,
            ErrorCode::Mirrored => -32005,
            ErrorCode::Forbidden => -32004,
        }
    }

    /// The `data.reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parseError",
            ErrorCode::InvalidRequest => "invalidRequest",
            ErrorCode::MethodNotFound => "methodNotFound",
            ErrorCode::InvalidParams => "invalidParams",
            ErrorCode::Internal => "internal",
            ErrorCode::Busy => "busy",
            ErrorCode::ThreadNotFound => "threadNotFound",
            ErrorCode::TurnNotFound => "turnNotFound",
            ErrorCode::Mirrored => "mirrored",
            ErrorCode::Forbidden => "forbidden",
        }
    }
}

/// A JSON-RPC error object as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error of `kind` whose `data` is `{reason}` merged with `extra` (an object).
    pub fn new(kind: ErrorCode, message: impl Into<String>) -> Self {
        RpcError { code: kind.code(), message: message.into(), data: Some(json!({ "reason": kind.reason() })) }
    }

    /// Adds a field to `data`.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        if let Some(Value::Object(map)) = self.data.as_mut() {
            map.insert(key.to_owned(), value);
        }
        self
    }

    /// Replaces `data.reason` with a more specific one (the code stays).
    pub fn with_reason(self, reason: &str) -> Self {
        self.with("reason", reason)
    }

    /// -32603 `storageUnavailable`: the log cannot be written; nothing changed.
    pub fn storage_unavailable(detail: impl std::fmt::Display) -> Self {
        RpcError::new(
            ErrorCode::Internal,
            format!(
                "storage unavailable: the event log cannot be written ({detail}); nothing was changed, reads still work. Free disk space and retry"
            ),
        )
        .with_reason("storageUnavailable")
    }

    /// -32603 `tooManyConnections`: the server is at its connection limit.
    pub fn too_many_connections(limit: usize) -> Self {
        RpcError::new(
            ErrorCode::Internal,
            format!(
                "too many connections: the app-server serves at most {limit} at once; close idle clients, or restart it with a higher --max-connections"
            ),
        )
        .with_reason("tooManyConnections")
        .with("limit", limit)
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(ErrorCode::InvalidParams, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        RpcError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn frame_too_large(limit: usize) -> Self {
        RpcError {
            code: ErrorCode::InvalidRequest.code(),
            message: format!("frame too large: a message must fit on one line of at most {limit} bytes"),
            data: Some(json!({ "reason": "frameTooLarge", "limit": limit })),
        }
    }

    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        RpcError::new(ErrorCode::ParseError, format!("parse error: {detail}; send one JSON-RPC 2.0 object per line"))
    }

    /// An unknown method, with the ones that are `known`.
    pub fn method_not_found(method: &str, known: &[&str]) -> Self {
        RpcError::new(
            ErrorCode::MethodNotFound,
            format!("method not found: {method}; known methods: {}", known.join(", ")),
        )
    }

    pub fn thread_not_found(id: &str) -> Self {
        RpcError::new(ErrorCode::ThreadNotFound, format!("thread not found: {id}"))
    }

    pub fn turn_not_found(id: &str) -> Self {
        RpcError::new(ErrorCode::TurnNotFound, format!("turn not found: {id}"))
    }

    /// -32005 `mirrored`: the thread follows an agent's session file; only the
    /// agent adds turns to it.
    pub fn mirrored(thread_id: &str, agent: &str) -> Self {
        RpcError::new(
            ErrorCode::Mirrored,
            format!(
                "thread {thread_id} mirrors a {agent} session: it follows the session file, so post in {agent} itself"
            ),
        )
        .with("agent", agent)
    }

    /// -32004 `forbidden`: `message` says what the token may not do and why.
    pub fn forbidden(message: impl Into<String>) -> Self {
        RpcError::new(ErrorCode::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        RpcError::new(ErrorCode::Internal, message)
    }

    /// `data.reason`, when the error carries one.
    pub fn reason(&self) -> Option<&str> {
        self.data.as_ref()?.get("reason")?.as_str()
    }

    /// Whether this is the given kind (by code and, where codes collide, reason).
    pub fn is(&self, kind: ErrorCode) -> bool {
        self.code == kind.code() && self.reason().is_none_or(|r| r == kind.reason())
    }
}
