//! Making events fit a hub (DESIGN §7). A hub takes one request of at most
//! [`MAX_REQUEST_BYTES`]; a thread takes events up to a frame each, and a
//! frame is the same size, so one event (a prompt just under a frame, its
//! echo) can be more than a request with its envelope. Sent as it is, the hub
//! answers 413 and, since the queue resends from `ackedSeq`, nothing after it
//! would ever go. So an event too big is cut: its longest texts end early,
//! with a marker saying so; one that cannot be cut (no long text) goes as a
//! small placeholder of the same seq ([`withheld`]). Both keep `seq`, `ts`,
//! `threadId` and the ids, so the share's log has no hole.
//!
//! Everything here runs on events already redacted: cutting only removes
//! text, so it cannot show more than the redacted event did.

use serde_json::{Map, Value, json};
use tandem_protocol::hub::{MAX_FIELD_BYTES, MAX_REQUEST_BYTES, WITHHELD_EVENT};

/// What a request holds besides its events: the secret, the thread item (a
/// title of [`MAX_FIELD_BYTES`], up to 6 bytes each once escaped) and the
/// wrappers of the events. Generous: a few hundred bytes are used.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// The most bytes of events (their JSON) one request carries, so that a
/// request never passes the hub's limit.
pub(super) const MAX_EVENTS_BYTES: usize = MAX_REQUEST_BYTES - ENVELOPE_BYTES;

/// Texts shorter than this are never cut: the ids and types among them (and
/// cutting them would save less than the marker costs).
const MIN_CUT: usize = 256;

/// Fields never cut, whatever their length: what places an event.
const KEEP: &[&str] = &["seq", "ts", "threadId", "type", "turnId", "itemId", "id"];

/// The JSON length of `value`, as the request will carry it.
pub(super) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What [`fit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// The event fits as it is.
    Whole,
    /// Its longest texts were cut; it was `original` bytes.
    Cut { original: usize },
    /// It cannot be cut to fit (too much in short texts, numbers, keys): it
    /// must go as a placeholder ([`withheld`]).
    TooBig { original: usize },
}

/// The marker a cut text ends with.
fn marker(original: usize, limit: usize) -> String {
    format!("… [truncated by tandem: {} bytes over the hub's {limit}-byte limit]", original - limit)
}

/// Cuts `event` to at most `limit` bytes of JSON if it is longer: the
/// longest texts first, each ending in the marker, and `"truncated":
/// {"originalBytes": N}` on the event. On [`Fit::TooBig`] the event is left
/// half cut: the caller sends a placeholder instead.
pub(super) fn fit(event: &mut Value, limit: usize) -> Fit {
    let original = json_len(event);
    if original <= limit {
        return Fit::Whole;
    }
    let Some(fields) = event.as_object_mut() else { return Fit::TooBig { original } };
    fields.insert("truncated".into(), json!({ "originalBytes": original }));
    let marker = marker(original, limit);
    let marker_len = escaped_len(&marker);
    let mut texts = Vec::new();
    long_texts(event, &mut Vec::new(), &mut texts);
    texts.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    let mut over = json_len(event).saturating_sub(limit);
    for (path, len) in texts {
        if over == 0 {
            break;
        }
        let Some(Value::String(text)) = at(event, &path) else { continue };
        // Keep what leaves the event `over` shorter, marker included.
        let keep = len.saturating_sub(over + marker_len);
        cut(text, keep);
        text.push_str(&marker);
        over = over.saturating_sub(len - keep - marker_len);
    }
    // Measured again rather than trusted: the sums above are exact, but a
    // placeholder is cheap and a 413 is not.
    if json_len(event) <= limit { Fit::Cut { original } } else { Fit::TooBig { original } }
}

/// One step of a path into a JSON value.
enum Step {
    Key(String),
    Index(usize),
}

/// The texts of `value` that may be cut, with their escaped lengths.
fn long_texts(value: &Value, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, usize)>) {
    match value {
        Value::String(s) if s.len() >= MIN_CUT => {
            let len = escaped_len(s);
            out.push((path.iter().map(Step::copy).collect(), len));
        }
        Value::Object(map) => {
            for (k, v) in map {
                if (path.is_empty() && KEEP.contains(&k.as_str())) || k == "id" {
                    continue;
                }
                path.push(Step::Key(k.clone()));
                long_texts(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                long_texts(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

impl Step {
    fn copy(&self) -> Step {
        match self {
            Step::Key(k) => Step::Key(k.clone()),
            Step::Index(i) => Step::Index(*i),
        }
    }
}

fn at<'a>(mut value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    for step in path {
        value = match step {
            Step::Key(k) => value.get_mut(k.as_str())?,
            Step::Index(i) => value.get_mut(*i)?,
        };
    }
    Some(value)
}

/// How many bytes `c` takes inside a JSON string (serde_json's escapes).
fn escaped(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The length of `text` inside a JSON string, without the quotes.
fn escaped_len(text: &str) -> usize {
    text.chars().map(escaped).sum()
}

/// Shortens `text` to at most `keep` escaped bytes, on a char boundary.
fn cut(text: &mut String, keep: usize) {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += escaped(c);
        if used > keep {
            text.truncate(at);
            return;
        }
    }
}

/// `title` cut to what a hub takes ([`MAX_FIELD_BYTES`]), ending in `…` if cut.
pub(super) fn title(title: Option<String>) -> Option<String> {
    let mut title = title?;
    if title.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
        while !title.is_char_boundary(end) {
            end -= 1;
        }
        title.truncate(end);
        title.push('…');
    }
    Some(title)
}

/// The placeholder sent for `event` (`original` bytes) when the hub would not
/// take it: its place in the log, what it was, and `why`. None of its text.
pub(super) fn withheld(event: &Value, original: usize, why: &str) -> Value {
    let mut out = Map::new();
    for key in ["seq", "ts", "threadId", "turnId", "itemId"] {
        // Ids are short; one that is not is content, and stays out.
        if let Some(v) = event.get(key).filter(|v| v.is_u64() || v.as_str().is_some_and(|s| s.len() < MIN_CUT)) {
            out.insert(key.into(), v.clone());
        }
    }
    out.insert("type".into(), WITHHELD_EVENT.into());
    let kind = event.get("type").and_then(Value::as_str).filter(|t| t.len() < MIN_CUT);
    out.insert("withheld".into(), json!({ "type": kind, "originalBytes": original, "reason": why }));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_cut_to_fit_with_a_marker_and_the_ids_stay() {
        let prompt = "é\"x\n".repeat(5000);
        let mut event = json!({"seq": 9, "ts": "t", "threadId": "th", "type": "turn/started", "turnId": "u",
            "input": prompt, "client": {"name": "cli"}});
        let original = json_len(&event);
        assert_eq!(fit(&mut event, original), Fit::Whole);
        assert_eq!(fit(&mut event, 4000), Fit::Cut { original });
        assert!(json_len(&event) <= 4000, "{}", json_len(&event));
        assert!(json_len(&event) > 3900, "no more is cut than needed: {}", json_len(&event));
        let input = event["input"].as_str().unwrap();
        assert!(prompt.starts_with(input.split('…').next().unwrap()));
        assert!(
            input.ends_with(&format!(
                "… [truncated by tandem: {} bytes over the hub's 4000-byte limit]",
                original - 4000
            ))
        );
        assert_eq!(event["truncated"]["originalBytes"], original);
        for (k, v) in [("seq", json!(9)), ("ts", json!("t")), ("threadId", json!("th")), ("turnId", json!("u"))] {
            assert_eq!(event[k], v);
        }
        assert_eq!(event["client"]["name"], "cli");
    }

    #[test]
    fn several_texts_are_cut_longest_first_and_short_ones_never() {
        let mut event = json!({"seq": 1, "type": "item/completed", "item": {"id": "i", "type": "commandExecution",
            "command": "c".repeat(3000), "output": "o".repeat(9000)}});
        assert!(matches!(fit(&mut event, 2000), Fit::Cut { .. }));
        assert!(json_len(&event) <= 2000);
        assert!(event["item"]["output"].as_str().unwrap().starts_with("… [truncated"), "cut to nothing but the marker");
        assert!(event["item"]["command"].as_str().unwrap().contains("… [truncated"));
        assert_eq!(event["item"]["id"], "i");

        let mut many = json!({"seq": 2, "type": "x", "lines": vec!["short"; 1000]});
        assert!(matches!(fit(&mut many, 2000), Fit::TooBig { .. }));
    }

    #[test]
    fn a_placeholder_keeps_the_place_and_none_of_the_text() {
        let event = json!({"seq": 4, "ts": "t", "threadId": "th", "type": "turn/started", "turnId": "u", "input": "secret stuff"});
        let p = withheld(&event, 123, "the hub refused: no");
        assert_eq!(
            p,
            json!({"seq": 4, "ts": "t", "threadId": "th", "turnId": "u", "type": WITHHELD_EVENT,
                "withheld": {"type": "turn/started", "originalBytes": 123, "reason": "the hub refused: no"}})
        );
    }

    #[test]
    fn titles_are_cut_to_what_a_hub_takes() {
        assert_eq!(title(Some("short".into())).as_deref(), Some("short"));
        let long = title(Some("é".repeat(MAX_FIELD_BYTES))).unwrap();
        assert!(long.len() <= MAX_FIELD_BYTES && long.ends_with('…'), "{}", long.len());
    }
}
