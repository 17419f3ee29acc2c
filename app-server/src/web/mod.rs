//! `--listen http://HOST:PORT`: the web door (DESIGN §6). axum routes, the
//! checks every request passes before it reaches anything (Origin, token,
//! connection limit) and the headers every answer carries (CSP). What a
//! connection may do once in is decided by `access`; what it says is handled
//! by the same `Session` as a unix-socket line (`socket`).
//!
//! This module never logs a token, and never puts one in a URL it serves.

mod assets;
mod socket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tandem_protocol::RpcError;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::access::{Gate, Grant, Refusal};
use crate::transport::Shared;

/// The WebSocket subprotocol the server speaks (JSON-RPC, one message per
/// text frame). A browser, which cannot set `Authorization` on a WebSocket,
/// offers its token as a second subprotocol `bearer.TOKEN`.
pub const SUBPROTOCOL: &str = "tandem.v1";

/// The prefix of the subprotocol that carries a browser's token.
pub const BEARER_SUBPROTOCOL: &str = "bearer.";

/// What every page may load: only this server's own files, scripts and
/// WebSocket; no inline script, no framing, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Errors while binding the http listener.
#[derive(Debug, thiserror::Error)]
pub enum HttpBindError {
    #[error("cannot listen on http://{addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error(
        "refusing to listen on http://{0}: it is not a loopback address. Pass --allow-remote to do it anyway; then put a reverse proxy with TLS in front, since tokens would otherwise cross the network in clear text"
    )]
    NotLoopback(SocketAddr),
}

/// A bound http listener and the base URL links point at.
pub struct HttpListener {
    listener: TcpListener,
    pub url: String,
    /// Bound to a loopback address: only loopback `Host` names are served.
    loopback: bool,
}

/// Binds `addr`; a non-loopback address only with `allow_remote`.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<HttpListener, HttpBindError> {
    if !addr.ip().is_loopback() {
        if !allow_remote {
            return Err(HttpBindError::NotLoopback(addr));
        }
        tracing::warn!(
            %addr,
            "LISTENING BEYOND THIS MACHINE without TLS: tokens and threads cross the network in clear text; put a reverse proxy with TLS in front"
        );
    }
    let listener = TcpListener::bind(addr).await.map_err(|source| HttpBindError::Io { addr, source })?;
    let local = listener.local_addr().map_err(|source| HttpBindError::Io { addr, source })?;
    Ok(HttpListener { listener, url: format!("http://{local}"), loopback: local.ip().is_loopback() })
}

/// What the routes share.
#[derive(Clone)]
struct Web {
    shared: Shared,
    gate: Gate,
    /// WebSocket connections served at once (`Limits::max_connections`).
    connections: Arc<Semaphore>,
}

/// Serves `listener` until `stop` turns true.
pub async fn serve(listener: HttpListener, shared: Shared, gate: Gate, mut stop: watch::Receiver<bool>) {
    let web = Web { connections: Arc::new(Semaphore::new(shared.limits.max_connections)), shared, gate };
    let loopback = listener.loopback;
    let app = Router::new()
        .route("/rpc", get(rpc))
        .route("/api/access", get(access))
        .route("/t/{thread_id}", get(assets::viewer))
        .route("/assets/{name}", get(assets::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(move |req, next| loopback_host(loopback, req, next)))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener.listener, app).with_graceful_shutdown(stopped).await {
        tracing::error!(error = %e, "the http listener failed");
    }
}

/// A loopback listener answers only to loopback names in `Host`: a web page
/// whose own name was made to resolve to 127.0.0.1 (DNS rebinding) gets
/// nothing from it, not even the viewer's shell.
async fn loopback_host(loopback: bool, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if loopback {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let is_loopback =
            name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !is_loopback {
            tracing::warn!(host, "refusing a request for a non-loopback Host on a loopback listener");
            return refuse(
                StatusCode::MISDIRECTED_REQUEST,
                &RpcError::forbidden("this server answers only to localhost, 127.0.0.1 or [::1]")
                    .with_reason("badHost"),
            );
        }
    }
    next.run(req).await
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// A refusal as HTTP: the status and the JSON-RPC error object as the body.
fn refuse(status: StatusCode, error: &RpcError) -> Response {
    let body = serde_json::json!({ "error": error }).to_string();
    let mut res = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

fn json_response(body: &serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refusal_response(r: &Refusal) -> Response {
    let status = match r {
        Refusal::Missing => StatusCode::UNAUTHORIZED,
        Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
    };
    refuse(status, &r.error())
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, &RpcError::invalid_request("no such page"))
}

/// The bearer token of a request: `Authorization: Bearer TOKEN`, or (from a
/// browser's WebSocket) the subprotocol `bearer.TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = v.splitn(2, ' ');
        if parts.next().is_some_and(|s| s.eq_ignore_ascii_case("bearer")) {
            return parts.next().map(|t| t.trim().to_owned());
        }
        return None;
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_SUBPROTOCOL).map(str::to_owned))
}

/// A browser's WebSocket must come from a page of this server: `Origin`, when
/// sent, must be `http://` + the `Host` asked for (else any site the user
/// visits could drive the server with a token it got hold of).
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser (the CLI, a script): nothing to forge.
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin.strip_prefix("http://").is_some_and(|o| o.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// `GET /api/access`: what the bearer token grants (200), or why nothing (401/403).
async fn access(State(web): State<Web>, headers: HeaderMap) -> Response {
    match web.gate.admit(bearer(&headers).as_deref(), &web.shared.engine) {
        Ok(Grant::Owner) => json_response(&serde_json::json!({"owner": true})),
        Ok(Grant::Link(link)) => json_response(&serde_json::json!({"owner": false, "link": link.public()})),
        Err(r) => refusal_response(&r),
    }
}

/// `GET /rpc`: the WebSocket, once Origin, token and connection limit allow it.
async fn rpc(State(web): State<Web>, parts: Parts) -> Response {
    let headers = &parts.headers;
    if !origin_ok(headers) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "refusing a WebSocket from another origin");
        return refuse(
            StatusCode::FORBIDDEN,
            &RpcError::forbidden("this WebSocket's Origin is not this server; open the page from the server itself")
                .with_reason("badOrigin"),
        );
    }
    let grant = match web.gate.admit(bearer(headers).as_deref(), &web.shared.engine) {
        Ok(g) => g,
        Err(r) => return refusal_response(&r),
    };
    let Ok(permit) = Arc::clone(&web.connections).try_acquire_owned() else {
        let max = web.shared.limits.max_connections;
        tracing::warn!(limit = max, "refusing a WebSocket: at the connection limit");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, &RpcError::too_many_connections(max));
    };
    let mut parts = parts;
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let shared = web.shared.clone();
    upgrade
        .protocols([SUBPROTOCOL])
        // Up to twice the protocol's limit is read, so that a message a little
        // over it gets `frameTooLarge` and the connection stays, as a long
        // line does on the socket; far larger ones close the connection.
        .max_message_size(socket::READ_LIMIT)
        .max_frame_size(socket::READ_LIMIT)
        .on_upgrade(move |ws| async move {
            socket::serve(ws, shared, grant).await;
            drop(permit);
        })
}
