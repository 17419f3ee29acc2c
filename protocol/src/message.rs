//! One JSON-RPC 2.0 message per line: telling requests, notifications and
//! responses apart, and writing them back out. Batches are not supported.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::RpcError;

/// What one line held.
#[derive(Debug)]
pub enum Incoming {
    /// A call that wants an answer.
    Request { id: Value, method: String, params: Option<Value> },
    /// A call without an id: no answer is sent.
    Notification { method: String, params: Option<Value> },
    /// An answer to one of our requests.
    Response { id: Value, result: Result<Box<RawValue>, RpcError> },
    /// Not a valid message: answer with this error (`id` is null when unknown).
    Invalid { id: Value, error: RpcError },
}

/// Classifies one line (without its newline). Blank lines give `None`.
pub fn parse_line(line: &[u8]) -> Option<Incoming> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        jsonrpc: Option<&'a RawValue>,
        #[serde(default, deserialize_with = "some_value")]
        id: Option<Value>,
        method: Option<Value>,
        params: Option<Value>,
        result: Option<Box<RawValue>>,
        error: Option<Value>,
    }
    fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        serde::Deserialize::deserialize(d).map(Some)
    }
    let invalid = |id: Value, msg: &str| Incoming::Invalid { id, error: RpcError::invalid_request(msg) };
    let value: &RawValue = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(Incoming::Invalid { id: Value::Null, error: RpcError::parse_error(e) });
        }
    };
    let text = value.get().trim_start();
    if text.starts_with('[') {
        return Some(invalid(Value::Null, "invalid request: batches are not supported; send one message per line"));
    }
    if !text.starts_with('{') {
        return Some(invalid(Value::Null, "invalid request: a message must be a JSON object"));
    }
    let env: Envelope = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => return Some(invalid(Value::Null, &format!("invalid request: {e}"))),
    };
    let id = env.id.clone().unwrap_or(Value::Null);
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Some(invalid(id, "invalid request: \"jsonrpc\":\"2.0\" is required"));
    }
    if let Some(id) = &env.id
        && !(id.is_string() || id.is_number() || id.is_null())
    {
        return Some(invalid(Value::Null, "invalid request: id must be a string or a number"));
    }
    match (env.method, env.id) {
        (Some(Value::String(method)), Some(id)) => Some(Incoming::Request { id, method, params: env.params }),
        (Some(Value::String(method)), None) => Some(Incoming::Notification { method, params: env.params }),
        (Some(_), _) => Some(invalid(id, "invalid request: method must be a string")),
        (None, Some(id)) => {
            let result = match (env.result, env.error) {
                (Some(r), None) => Ok(r),
                (None, Some(e)) => Err(serde_json::from_value(e)
                    .unwrap_or_else(|e| RpcError::internal(format!("malformed error object: {e}")))),
                _ => {
                    return Some(invalid(id, "invalid request: a response has exactly one of result and error"));
                }
            };
            Some(Incoming::Response { id, result })
        }
        (None, None) => Some(invalid(Value::Null, "invalid request: no method")),
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` as one line with its newline.
pub fn response_line<R: Serialize + ?Sized>(id: &Value, result: &R) -> String {
    match serde_json::to_string(result) {
        Ok(r) => format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{r}}}\n"),
        Err(e) => error_line(id, &RpcError::internal(format!("could not encode the result: {e}"))),
    }
}

/// `{"jsonrpc":"2.0","id":…,"error":…}` as one line with its newline.
pub fn error_line(id: &Value, error: &RpcError) -> String {
    let e = serde_json::to_string(error).unwrap_or_else(|_| r#"{"code":-32603,"message":"internal error"}"#.into());
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{e}}}\n")
}

/// A request line with its newline.
pub fn request_line<P: Serialize + ?Sized>(id: u64, method: &str, params: &P) -> Result<String, serde_json::Error> {
    let p = serde_json::to_string(params)?;
    let m = serde_json::to_string(method)?;
    Ok(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":{m},\"params\":{p}}}\n"))
}

/// A `thread/event` notification line for an event already encoded as JSON.
/// Built by appending (not `format!`): fan-out makes one per subscriber.
pub fn event_notification_line(subscription: u64, event_json: &str) -> String {
    const HEAD: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"thread/event\",\"params\":{\"subscription\":";
    let mut line = String::with_capacity(HEAD.len() + 20 + 11 + event_json.len() + 3);
    line.push_str(HEAD);
    line.push_str(itoa(subscription, &mut [0u8; 20]));
    line.push_str(",\"result\":");
    line.push_str(event_json);
    line.push_str("}}\n");
    line
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_code(line: &str) -> i64 {
        match parse_line(line.as_bytes()) {
            Some(Incoming::Invalid { error, .. }) => error.code,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn classifies() {
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","id":1,"method":"thread/list"}"#),
            Some(Incoming::Request { .. })
        ));
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","method":"x","params":{}}"#),
            Some(Incoming::Notification { .. })
        ));
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","id":"a","result":{"x":1}}"#),
            Some(Incoming::Response { result: Ok(_), .. })
        ));
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","id":"a","error":{"code":-32001,"message":"busy"}}"#),
            Some(Incoming::Response { result: Err(_), .. })
        ));
        assert!(parse_line(b"   ").is_none());
        assert_eq!(invalid_code("{not json"), -32700);
        assert_eq!(invalid_code("[]"), -32600);
        assert_eq!(invalid_code(r#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#), -32600);
        assert_eq!(invalid_code(r#"{"id":1,"method":"x"}"#), -32600);
        assert_eq!(invalid_code(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#), -32600);
        assert_eq!(invalid_code(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#), -32600);
        assert_eq!(invalid_code("42"), -32600);
    }

    #[test]
    fn notification_lines_carry_the_event_verbatim() {
        for sub in [0, 7, 1234567890123] {
            let line = event_notification_line(sub, r#"{"seq":1,"x":"é"}"#);
            let v: Value = serde_json::from_str(line.trim_end()).unwrap();
            assert_eq!(v["method"], crate::EVENT_NOTIFICATION);
            assert_eq!(v["params"]["subscription"], sub);
            assert_eq!(v["params"]["result"]["x"], "é");
            assert!(line.ends_with("}}\n"));
        }
    }

    #[test]
    fn lines_round_trip() {
        let line = response_line(&Value::from(3), &serde_json::json!({"ok":true}));
        assert!(line.ends_with('\n'));
        match parse_line(line.trim_end().as_bytes()) {
            Some(Incoming::Response { id, result: Ok(r) }) => {
                assert_eq!(id, Value::from(3));
                assert_eq!(r.get(), r#"{"ok":true}"#);
            }
            other => panic!("{other:?}"),
        }
    }
}
