//! The web viewer (DESIGN §6, §7): one HTML page, its stylesheet and its
//! script (`web/`), embedded in the binary and served by both the app-server
//! (`/t/{id}`, over `/rpc`) and the hub (`/s/{id}`, read-only, over its share
//! API). The script picks its data source from the page's `data-mode`.
//!
//! The page is a template with `{{name}}` slots filled in one pass, so text put
//! into one slot can never open another. Whatever fills a slot is HTML: plain
//! text goes through [`escape`] first. No slot is inside a `<script>`: the
//! policy ([`CSP`]) allows no inline script at all.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "web/"]
struct Files;

/// What a viewer page may load: only its own server's files, scripts and
/// WebSocket; no inline script or style, no framing, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the page gets its thread from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The app-server: JSON-RPC over `/rpc`, with a token from the URL fragment.
    App,
    /// A hub: its share API, no token, read-only.
    Hub,
}

/// What fills a page's slots.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    pub mode: Mode,
    /// The thread's title, plain text.
    pub title: &'a str,
    /// The turn state shown before the script runs, plain text.
    pub state: &'a str,
    /// Whether the "Shared" pill starts lit.
    pub shared: bool,
    /// Extra `data-*` attributes of `<body>` for the script: (name after
    /// `data-`, plain-text value).
    pub data: &'a [(&'a str, String)],
    /// The server-rendered transcript, HTML (every thread text escaped).
    pub transcript: &'a str,
    /// What a reader without JavaScript is told, plain text.
    pub noscript: &'a str,
}

/// The viewer page with its slots filled.
pub fn page(p: &Page) -> String {
    let template = Files::get("index.html").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
    let mut data = String::new();
    for (name, value) in p.data {
        // Names come from the servers' code, never from a thread; keep them
        // to what an attribute name may be all the same.
        if name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            data.push_str(&format!(" data-{name}=\"{}\"", escape(value)));
        }
    }
    fill(&template, |slot| match slot {
        "mode" => Some(match p.mode {
            Mode::App => "app".into(),
            Mode::Hub => "hub".into(),
        }),
        "data" => Some(data.clone()),
        "title" => Some(escape(p.title)),
        "state" => Some(escape(p.state)),
        "pill-class" => Some(if p.shared { "on" } else { "off" }.into()),
        "pill" => Some(if p.shared { "Shared" } else { "Not shared" }.into()),
        "transcript" => Some(p.transcript.to_owned()),
        "noscript" => Some(escape(p.noscript)),
        _ => None,
    })
}

/// Fills `{{name}}` slots left to right in one pass; an unknown slot stays as
/// it is. What a slot is filled with is never scanned again.
fn fill(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}").and_then(|close| value(&after[..close]).map(|v| (close, v))) {
            Some((close, v)) => {
                out.push_str(&v);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

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

/// `GET /assets/{name}`: the page's stylesheet or script; `None` for
/// anything else (the page itself is served only through [`page`]).
pub fn asset(name: &str) -> Option<Response> {
    let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => return None,
    };
    let f = Files::get(name)?;
    let mut res = (StatusCode::OK, f.data.into_owned()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(res)
}

/// The headers every answer of a server that serves the viewer carries (the
/// app-server's web listener and the hub alike, so the two cannot drift):
/// the page policy ([`CSP`]), no MIME sniffing, no referrer (a link's
/// `#k=` fragment never leaves anyway, but its path is a share's id), and no
/// framing — `X-Frame-Options` for browsers older than CSP's
/// `frame-ancestors`. A middleware: `.layer(axum::middleware::map_response(security_headers))`.
pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// A page as an HTTP answer.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_once_and_text_is_escaped() {
        let evil = "{{transcript}}<script>x</script>\"";
        let data = [("share", "a\"b".to_owned()), ("bad name", "x".to_owned())];
        let html = page(&Page {
            mode: Mode::Hub,
            title: evil,
            state: "idle",
            shared: true,
            data: &data,
            transcript: "<section>SECRET-SLOT</section>",
            noscript: "no <js>",
        });
        assert!(!html.contains("<script>x"), "{html}");
        assert_eq!(html.matches("SECRET-SLOT").count(), 1, "a title cannot open the transcript slot: {html}");
        assert!(html.contains("{{transcript}}&lt;script&gt;"), "{html}");
        assert!(html.contains("data-mode=\"hub\""));
        assert!(html.contains("data-share=\"a&quot;b\""));
        assert!(!html.contains("bad name"));
        assert!(html.contains("no &lt;js&gt;"));
    }

    #[test]
    fn only_the_stylesheet_and_script_are_assets() {
        assert!(asset("viewer.js").is_some());
        assert!(asset("viewer.css").is_some());
        assert!(asset("index.html").is_none());
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn every_answer_gets_the_same_headers() {
        let res = (StatusCode::NOT_FOUND, "x").into_response();
        let res = poll_once(security_headers(res));
        let h = res.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    }

    /// The middleware never awaits anything: one poll finishes it.
    fn poll_once<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("security_headers waited"),
        }
    }
}
