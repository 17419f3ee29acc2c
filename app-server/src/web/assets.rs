//! The viewer's files (the `tandem-viewer` crate, shared with the hub): one
//! HTML page, its stylesheet and its script. No answer carries thread data;
//! the page fetches everything over `/rpc` with the token from its URL
//! fragment.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use tandem_viewer::{Mode, Page};

/// `GET /t/{threadId}`: the viewer's page (the same shell for every thread).
pub async fn viewer(Path(thread_id): Path<String>) -> Response {
    if tandem_protocol::ids::normalize_uuid("threadId", &thread_id).is_err() {
        return super::not_found().await;
    }
    let page = tandem_viewer::page(&Page {
        mode: Mode::App,
        title: "…",
        state: "connecting…",
        shared: false,
        data: &[],
        transcript: "",
        noscript: "The viewer needs JavaScript to read the thread (it keeps the link's token in the page, never in the URL the server sees).",
    });
    tandem_viewer::html(StatusCode::OK, page)
}

/// `GET /assets/{name}`: the page's stylesheet and script.
pub async fn asset(Path(name): Path<String>) -> Response {
    match tandem_viewer::asset(&name) {
        Some(res) => res,
        None => super::not_found().await,
    }
}
