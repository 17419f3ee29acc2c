//! `GET /s/{id}`: the web viewer (the `tandem-viewer` crate, the same page
//! and script as the app-server's) in its read-only hub mode, with the last
//! stretch of the share's history rendered here on the server, so the page
//! reads without JavaScript; the script then takes over (history pages,
//! then live over `/api/share/{id}/live`). Every byte from the thread is
//! escaped, and the policy allows no inline script.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;
use tandem_viewer::{Mode, Page, escape};

use crate::store::StoredEvent;

pub use tandem_viewer::CSP;

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// About the most bytes of event JSON the page renders: the reader picks
/// the latest events that fit (always at least the last one). Every reader
/// of `/s/{id}` gets this page, so a share of large events must not make each
/// of them a page of its size.
pub const PAGE_BYTES: usize = 1 << 20;

/// The most bytes of one text (a prompt, a message) the page shows: the
/// last event is shown even when it is bigger than [`PAGE_BYTES`] on its own
/// (up to a request's 8 MiB), so its text is cut.
const MAX_TEXT: usize = PAGE_BYTES;

/// `text` escaped, cut to [`MAX_TEXT`] bytes (at a character) with a note
/// saying how much more there is (the script shows it whole).
fn shown(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return escape(text);
    }
    let cut = (0..=MAX_TEXT).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}… [{} more bytes: open this page with JavaScript for all of it]", escape(&text[..cut]), text.len() - cut)
}

/// What the page shows of a share.
pub struct View<'a> {
    pub id: &'a str,
    pub title: Option<&'a str>,
    /// The share's last seq (0: nothing yet).
    pub last_seq: u64,
    /// A stretch of its events, in seq order.
    pub events: &'a [StoredEvent],
}

/// A share's page.
pub fn render(v: &View) -> String {
    let title = v.title.filter(|t| !t.is_empty()).unwrap_or("Shared thread");
    let (mut body, running) = transcript(v.events);
    let first = v.events.first().map_or(v.last_seq + 1, |e| e.seq);
    if first > 1 {
        // Without JavaScript, older history is a link away; the script loads
        // it as the reader scrolls up instead.
        let earlier =
            format!("<p class=\"earlier\"><a href=\"/s/{}?before={first}\">Earlier messages</a></p>", escape(v.id));
        body.insert_str(0, &earlier);
    }
    if v.events.is_empty() && v.last_seq == 0 {
        body.push_str("<p class=\"meta\">Nothing has been shared here yet.</p>");
    }
    // How far the hub was: the script loads its last page from there.
    let data = [("share", v.id.to_owned()), ("hub-seq", v.last_seq.to_string())];
    let state = match &running {
        Some(who) => format!("running · {who}"),
        None => "idle".to_owned(),
    };
    tandem_viewer::page(&Page {
        mode: Mode::Hub,
        title,
        state: &state,
        shared: true,
        data: &data,
        transcript: &body,
        noscript: "A read-only copy of a Tandem thread. Without JavaScript it does not update: reload for newer messages.",
    })
}

/// The events as the viewer's markup (its classes, plain text where the
/// script would render markdown); and who runs the turn left open, if any.
fn transcript(events: &[StoredEvent]) -> (String, Option<String>) {
    let mut body = String::new();
    // An item's text so far, from its deltas, until it completes.
    let mut streaming: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut open_turn = false;
    let mut running = None;
    let flush = |body: &mut String, streaming: &mut HashMap<String, String>, order: &mut Vec<String>| {
        for id in order.drain(..) {
            if let Some(text) = streaming.remove(&id) {
                let _ = write!(body, "<div class=\"msg agent plain\">{}</div>", shown(&text));
            }
        }
    };
    for stored in events {
        let Ok(e) = serde_json::from_str::<Value>(&stored.json) else { continue };
        match str_of(&e, "type") {
            "turn/started" => {
                flush(&mut body, &mut streaming, &mut order);
                if open_turn {
                    body.push_str("</section>");
                }
                open_turn = true;
                let who = e.get("client").map(|c| str_of(c, "name")).unwrap_or("");
                let who = if who.is_empty() { "someone" } else { who };
                let ts = e.get("originalTs").and_then(Value::as_str).unwrap_or(str_of(&e, "ts"));
                let imported = e.get("imported").and_then(Value::as_bool).unwrap_or(false);
                let _ = write!(
                    body,
                    "<section class=\"turn\"><div class=\"meta\">{} · {}{}</div><div class=\"msg user\">{}</div>",
                    escape(who),
                    escape(ts),
                    if imported { " · imported" } else { "" },
                    shown(str_of(&e, "input"))
                );
                running = (!imported).then(|| who.to_owned());
            }
            "item/agentMessage/delta" => {
                let id = str_of(&e, "itemId").to_owned();
                if !streaming.contains_key(&id) {
                    order.push(id.clone());
                }
                streaming.entry(id).or_default().push_str(str_of(&e, "delta"));
            }
            "item/completed" => {
                let Some(item) = e.get("item") else { continue };
                let id = str_of(item, "id");
                streaming.remove(id);
                order.retain(|o| o != id);
                flush(&mut body, &mut streaming, &mut order);
                match str_of(item, "type") {
                    "agentMessage" => {
                        let _ = write!(body, "<div class=\"msg agent plain\">{}</div>", shown(str_of(item, "text")));
                    }
                    kind => {
                        let detail = ["command", "path", "tool", "name", "text", "message"]
                            .iter()
                            .map(|k| str_of(item, k))
                            .find(|s| !s.is_empty())
                            .unwrap_or("");
                        let _ = write!(body, "<div class=\"item\">{}: {}</div>", escape(kind), shown(detail));
                    }
                }
            }
            "turn/completed" => {
                flush(&mut body, &mut streaming, &mut order);
                running = None;
                let status = str_of(&e, "status");
                if status != "completed" {
                    let error = str_of(&e, "error");
                    let _ = write!(
                        body,
                        "<div class=\"status {s}\">{s}{}{}</div>",
                        if error.is_empty() { "" } else { ": " },
                        escape(error),
                        s = escape(status),
                    );
                }
            }
            _ => {}
        }
    }
    flush(&mut body, &mut streaming, &mut order);
    if open_turn {
        body.push_str("</section>");
    }
    (body, running)
}

/// A page saying why there is nothing to show (the script sees `data-ended`
/// and stays idle).
pub fn notice(title: &str, text: &str) -> String {
    let body = format!("<p class=\"notice error\">{}</p>", escape(text));
    tandem_viewer::page(&Page {
        mode: Mode::Hub,
        title,
        state: "",
        shared: false,
        data: &[("ended", "true".to_owned())],
        transcript: &body,
        noscript: "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(events: &[Value]) -> Vec<StoredEvent> {
        events.iter().enumerate().map(|(i, e)| StoredEvent { seq: i as u64 + 1, json: e.to_string() }).collect()
    }

    #[test]
    fn everything_from_the_thread_is_escaped() {
        let evil = "<script>alert('x')</script>&\"";
        let events = stored(&[
            serde_json::json!({"type":"turn/started","input":evil,"client":{"name":evil}}),
            serde_json::json!({"type":"item/agentMessage/delta","itemId":"i","delta":evil}),
        ]);
        let html = render(&View { id: "abc", title: Some(evil), last_seq: 2, events: &events });
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        assert_eq!(html.matches("&lt;script&gt;").count(), 6, "title twice, input, who twice, delta");
        assert!(html.contains("running · &lt;script&gt;"), "{html}");
    }

    #[test]
    fn completed_items_replace_their_deltas() {
        let events = stored(&[
            serde_json::json!({"type":"turn/started","input":"hi","client":{"name":"cli"}}),
            serde_json::json!({"type":"item/agentMessage/delta","itemId":"i","delta":"hel"}),
            serde_json::json!({"type":"item/completed","item":{"id":"i","type":"agentMessage","text":"hello"}}),
            serde_json::json!({"type":"turn/completed","status":"interrupted","error":"stopped"}),
        ]);
        let html = render(&View { id: "abc", title: None, last_seq: 4, events: &events });
        assert!(html.contains("<div class=\"msg agent plain\">hello</div>"), "{html}");
        assert!(!html.contains(">hel<"), "{html}");
        assert!(html.contains("interrupted: stopped"));
        assert!(!html.contains("Earlier messages"));
    }

    #[test]
    fn a_tail_links_to_what_came_before() {
        let mut events = stored(&[serde_json::json!({"type":"turn/started","input":"late","client":{"name":"x"}})]);
        events[0].seq = 41;
        let html = render(&View { id: "abc", title: None, last_seq: 41, events: &events });
        assert!(html.contains("href=\"/s/abc?before=41\""), "{html}");
        assert!(html.contains("data-hub-seq=\"41\""));
    }
}
