//! The viewer's static files (`app-server/web/`), embedded in the binary: one
//! HTML shell, its stylesheet and its script. No file carries thread data; the
//! page fetches everything over `/rpc` with the token from its URL fragment.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "web/"]
struct Files;

fn file(name: &str) -> Option<Response> {
    let f = Files::get(name)?;
    let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("png") => "image/png",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let mut res = (StatusCode::OK, f.data.into_owned()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(res)
}

/// `GET /t/{threadId}`: the viewer's page (the same shell for every thread).
pub async fn viewer(Path(thread_id): Path<String>) -> Response {
    if tandem_protocol::ids::normalize_uuid("threadId", &thread_id).is_err() {
        return super::not_found().await;
    }
    match file("index.html") {
        Some(res) => res,
        None => super::not_found().await,
    }
}

/// `GET /assets/{name}`: the page's stylesheet and script.
pub async fn asset(Path(name): Path<String>) -> Response {
    if name == "index.html" {
        return super::not_found().await;
    }
    match file(&name) {
        Some(res) => res,
        None => super::not_found().await,
    }
}
