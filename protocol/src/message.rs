//! One JSON-RPC 2.0 message per line: telling requests, notifications and
//! responses apart, and writing them back out. Batches are not supported.
//!
//! Ids and notification params are kept as the sender's raw text: an id comes
//! back exactly as it was written (`123456789012345678901234567890` stays that,
//! `-0` stays `-0`), and an event is passed on byte for byte.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::RpcError;

/// A request id exactly as the client wrote it: a JSON string, number or null.
#[derive(Debug, Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    /// The `null` id, for answers to lines whose id could not be read.
    pub fn null() -> Id {
        Id(RawValue::from_string("null".into()).expect("null is JSON"))
    }

    /// A numeric id, as clients number their requests.
    pub fn number(n: u64) -> Id {
        Id(RawValue::from_string(n.to_string()).expect("a number is JSON"))
    }

    /// The id as an unsigned integer, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.get().parse().ok()
    }

    /// The id's JSON text.
    pub fn raw(&self) -> &str {
        self.0.get()
    }

    fn is_valid(&self) -> bool {
        matches!(self.0.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9' | b'n'))
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.raw() == other.raw()
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.raw())
    }
}

/// What one line held.
#[derive(Debug)]
pub enum Incoming {
    /// A call that wants an answer.
    Request { id: Id, method: String, params: Option<Value> },
    /// A call without an id: no answer is sent. `params` is the sender's text.
    Notification { method: String, params: Option<Box<RawValue>> },
    /// An answer to one of our requests.
    Response { id: Id, result: Result<Box<RawValue>, RpcError> },
    /// Not a valid message: answer with this error (`id` is null when unknown).
    Invalid { id: Id, error: RpcError },
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
        #[serde(default, deserialize_with = "some_raw")]
        id: Option<Box<RawValue>>,
        method: Option<Value>,
        params: Option<Box<RawValue>>,
        result: Option<Box<RawValue>>,
        error: Option<Value>,
    }
    // `null` is an id too: keep it apart from a missing one.
    fn some_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
        serde::Deserialize::deserialize(d).map(Some)
    }
    let invalid = |id: Id, msg: &str| Incoming::Invalid { id, error: RpcError::invalid_request(msg) };
    let value: &RawValue = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(Incoming::Invalid { id: Id::null(), error: RpcError::parse_error(e) });
        }
    };
    let text = value.get().trim_start();
    if text.starts_with('[') {
        return Some(invalid(Id::null(), "invalid request: batches are not supported; send one message per line"));
    }
    if !text.starts_with('{') {
        return Some(invalid(Id::null(), "invalid request: a message must be a JSON object"));
    }
    let env: Envelope = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => return Some(invalid(Id::null(), &format!("invalid request: {e}"))),
    };
    let env_id = env.id.map(Id);
    if let Some(id) = &env_id
        && !id.is_valid()
    {
        return Some(invalid(Id::null(), "invalid request: id must be a string or a number"));
    }
    let id = env_id.clone().unwrap_or_else(Id::null);
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Some(invalid(id, "invalid request: \"jsonrpc\":\"2.0\" is required"));
    }
    match (env.method, env_id) {
        (Some(Value::String(method)), Some(id)) => {
            let params = match env.params.map(|p| serde_json::from_str::<Value>(p.get())).transpose() {
                Ok(p) => p,
                Err(e) => return Some(invalid(id, &format!("invalid request: params: {e}"))),
            };
            Some(Incoming::Request { id, method, params })
        }
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
        (None, None) => Some(invalid(Id::null(), "invalid request: no method")),
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` as one line with its newline.
pub fn response_line<R: Serialize + ?Sized>(id: &Id, result: &R) -> String {
    match serde_json::to_string(result) {
        Ok(r) => format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{r}}}\n"),
        Err(e) => error_line(id, &RpcError::internal(format!("could not encode the result: {e}"))),
    }
}

/// `{"jsonrpc":"2.0","id":…,"error":…}` as one line with its newline.
pub fn error_line(id: &Id, error: &RpcError) -> String {
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
    let mut line = String::with_capacity(EVENT_HEAD.len() + 20 + 11 + event_json.len() + 3);
    push_event_notification(&mut line, subscription, event_json);
    line
}

const EVENT_HEAD: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"thread/event\",\"params\":{\"subscription\":";

/// Appends the `thread/event` notification line (with its newline) for an
/// event already encoded as JSON to `buf`, so that several go out as one write.
pub fn push_event_notification(buf: &mut String, subscription: u64, event_json: &str) {
    buf.reserve(EVENT_HEAD.len() + 20 + 11 + event_json.len() + 3);
    buf.push_str(EVENT_HEAD);
    buf.push_str(itoa(subscription, &mut [0u8; 20]));
    buf.push_str(",\"result\":");
    buf.push_str(event_json);
    buf.push_str("}}\n");
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

    /// Ids come back as written, whatever a float would make of them.
    #[test]
    fn ids_are_echoed_verbatim() {
        for raw in ["123456789012345678901234567890", "-0", "1e400", "\"a\\u00e9\"", "null", "1.50"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"x"}}"#);
            let Some(Incoming::Request { id, .. }) = parse_line(line.as_bytes()) else { panic!("{line}") };
            assert_eq!(id.raw(), raw);
            let answer = error_line(&id, &RpcError::invalid_request("x"));
            assert!(answer.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{raw},"#)), "{answer}");
        }
        // Readable even when the rest is wrong.
        let line = br#"{"jsonrpc":"1.0","id":123456789012345678901234567890,"method":"x"}"#;
        let Some(Incoming::Invalid { id, .. }) = parse_line(line) else { panic!() };
        assert_eq!(id.raw(), "123456789012345678901234567890");
    }

    #[test]
    fn lines_round_trip() {
        let line = response_line(&Id::number(3), &serde_json::json!({"ok":true}));
        assert!(line.ends_with('\n'));
        match parse_line(line.trim_end().as_bytes()) {
            Some(Incoming::Response { id, result: Ok(r) }) => {
                assert_eq!(id.as_u64(), Some(3));
                assert_eq!(r.get(), r#"{"ok":true}"#);
            }
            other => panic!("{other:?}"),
        }
    }
}
