//! The hub's routes: the write API (`api`), what readers get (`reader`) and
//! the viewer's assets, behind one body limit and the viewer's security
//! headers (`tandem_viewer::security_headers`, the app-server's too).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api;
use crate::reader;
use crate::state::{Hub, not_found};
use crate::store::HubStore;

/// The routes.
pub fn router<S: HubStore>(hub: Arc<Hub<S>>) -> Router {
    let body_limit = hub.limits.body_bytes;
    Router::new()
        .route("/api/share", post(api::create::<S>))
        .route("/api/share/{id}", axum::routing::delete(api::remove::<S>))
        .route("/api/share/{id}/sync", post(api::sync::<S>))
        .route("/api/share/{id}/poll", get(reader::poll::<S>))
        .route("/api/share/{id}/live", get(reader::live::<S>))
        .route("/api/share/{id}/events", get(reader::history::<S>))
        .route("/s/{id}", get(reader::view::<S>))
        .route("/assets/{name}", get(asset))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(tandem_viewer::security_headers))
        .with_state(hub)
}

/// `GET /assets/{name}`: the viewer's stylesheet and script.
async fn asset(Path(name): Path<String>) -> Response {
    tandem_viewer::asset(&name).unwrap_or_else(|| not_found().into_response())
}
