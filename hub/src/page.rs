//! `GET /s/{id}`: a read-only page of a share, rendered on the server from
//! its stored events. Plain HTML with no script, every byte from the thread
//! escaped, and a `Content-Security-Policy` that allows nothing but the
//! page's own inline style — so even an escaping bug could not run code. The
//! web viewer (DESIGN §6) replaces this page; it stays as the no-JS fallback.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

/// The policy on every HTML page: no scripts, no loads, no framing.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\
pre{white-space:pre-wrap;word-wrap:break-word;margin:.3rem 0;padding:.5rem;border-radius:4px}\
.input{background:#eef4ff}.answer{background:#f6f6f6}.item{background:#fff8e6;font-size:13px}\
.who,.meta{color:#777;font-size:13px}.turn{margin:1.2rem 0}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A whole page: `title` and the events' JSON, in seq order.
pub fn render(title: Option<&str>, events: &[String]) -> String {
    let title = title.filter(|t| !t.is_empty()).unwrap_or("Shared thread");
    let mut body = String::new();
    // An item's text so far, from its deltas, until it completes.
    let mut streaming: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut open_turn = false;
    let flush = |body: &mut String, streaming: &mut HashMap<String, String>, order: &mut Vec<String>| {
        for id in order.drain(..) {
            if let Some(text) = streaming.remove(&id) {
                let _ = write!(body, "<pre class=\"answer\">{}</pre>", escape(&text));
            }
        }
    };
    for json in events {
        let Ok(e) = serde_json::from_str::<Value>(json) else { continue };
        match str_of(&e, "type") {
            "turn/started" => {
                flush(&mut body, &mut streaming, &mut order);
                if open_turn {
                    body.push_str("</section>");
                }
                open_turn = true;
                let who = e.get("client").map(|c| str_of(c, "name")).unwrap_or("");
                let _ = write!(
                    body,
                    "<section class=\"turn\"><p class=\"who\">{}</p><pre class=\"input\">{}</pre>",
                    escape(if who.is_empty() { "someone" } else { who }),
                    escape(str_of(&e, "input"))
                );
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
                        let _ = write!(body, "<pre class=\"answer\">{}</pre>", escape(str_of(item, "text")));
                    }
                    kind => {
                        let detail = ["command", "path", "name", "text", "message"]
                            .iter()
                            .map(|k| str_of(item, k))
                            .find(|s| !s.is_empty())
                            .unwrap_or("");
                        let _ = write!(body, "<pre class=\"item\">{}: {}</pre>", escape(kind), escape(detail));
                    }
                }
            }
            "turn/completed" => {
                flush(&mut body, &mut streaming, &mut order);
                let status = str_of(&e, "status");
                if status != "completed" {
                    let error = str_of(&e, "error");
                    let _ = write!(
                        body,
                        "<p class=\"meta\">turn {}{}{}</p>",
                        escape(status),
                        if error.is_empty() { "" } else { ": " },
                        escape(error)
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
    if events.is_empty() {
        body.push_str("<p class=\"meta\">Nothing has been shared here yet.</p>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{t} · Tandem</title><style>{STYLE}</style></head>\
         <body><h1>{t}</h1><p class=\"meta\">A read-only copy of a Tandem thread. Reload for newer messages.</p>{body}</body></html>",
        t = escape(title)
    )
}

/// A page saying why there is nothing to show.
pub fn notice(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\
         <body><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = escape(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_the_thread_is_escaped() {
        let evil = "<script>alert('x')</script>&\"";
        let events = [
            serde_json::json!({"type":"turn/started","input":evil,"client":{"name":evil}}).to_string(),
            serde_json::json!({"type":"item/agentMessage/delta","itemId":"i","delta":evil}).to_string(),
        ];
        let html = render(Some(evil), &events);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        assert_eq!(html.matches("&lt;script&gt;").count(), 5, "title twice, input, who, delta");
    }

    #[test]
    fn completed_items_replace_their_deltas() {
        let events = [
            serde_json::json!({"type":"turn/started","input":"hi","client":{"name":"cli"}}).to_string(),
            serde_json::json!({"type":"item/agentMessage/delta","itemId":"i","delta":"hel"}).to_string(),
            serde_json::json!({"type":"item/completed","item":{"id":"i","type":"agentMessage","text":"hello"}})
                .to_string(),
            serde_json::json!({"type":"turn/completed","status":"interrupted","error":"stopped"}).to_string(),
        ];
        let html = render(None, &events);
        assert!(html.contains("<pre class=\"answer\">hello</pre>"), "{html}");
        assert!(!html.contains(">hel<"), "{html}");
        assert!(html.contains("turn interrupted: stopped"));
    }
}
