//! `--listen http://HOST:PORT`: the web door (DESIGN §6). axum routes, the
//! checks every request passes before it reaches anything (Origin, token,
//! connection limit) and the headers every answer carries (CSP). What a
//! connection may do once in is decided by `access`; what it says is handled
//! by the same `Session` as a unix-socket line (`socket`).
//!
//! This module never logs a token, and never puts one in a URL it serves.

mod assets;
mod http;
mod per_ip;
mod socket;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tandem_protocol::RpcError;
use tokio::net::TcpListener;
use tokio::sync::watch;

use per_ip::PerIp;
pub use per_ip::{STRIKE_BURST, STRIKES_PER_SECOND};
use tandem_rpc::access::{Gate, Grant, Refusal};
use tandem_rpc::context::Context;

use crate::transport::slots::Slots;
use tandem_protocol::{WS_BEARER_PREFIX as BEARER_SUBPROTOCOL, WS_SUBPROTOCOL as SUBPROTOCOL};

/// What every page may load: the viewer's policy (only this server's own
/// files, scripts and WebSocket; no inline script, no framing, no plugins).
pub use tandem_viewer::CSP;

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

/// Where users reach the listener when that is not the address it is bound
/// to (a reverse proxy with TLS in front, `--public-url`): links point there,
/// pages served from there may open the WebSocket (`Origin`), and requests for
/// its name are answered on a loopback listener (`Host`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `https://name[:port]`, lower-cased.
    origin: String,
    /// `name[:port]`.
    host: String,
}

impl PublicUrl {
    /// `http(s)://NAME[:PORT]`, nothing after but an optional `/`.
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let lower = text.trim().to_ascii_lowercase();
        let accepted = "accepted: http(s)://NAME[:PORT], e.g. https://tandem.example.com";
        let Some((scheme, rest)) = lower.split_once("://").filter(|(s, _)| *s == "http" || *s == "https") else {
            return Err(format!("{text:?} is not an http(s):// URL; {accepted}"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let bad =
            || format!("{text:?} must be only a scheme and a host (no user, path, query or fragment); {accepted}");
        // NAME, NAME:PORT, [V6] or [V6]:PORT.
        let (name, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(bad());
                }
                (
                    &authority[..addr.len() + 2],
                    after.strip_prefix(':').map(Some).unwrap_or((!after.is_empty()).then_some("")),
                )
            }
            None => match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            },
        };
        let name_ok = name.starts_with('[')
            || (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)));
        if !name_ok {
            return Err(bad());
        }
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        };
        // Browsers leave the scheme's default port out of `Origin` and `Host`.
        let default = if scheme == "https" { 443 } else { 80 };
        let host = match port {
            Some(p) if p != default => format!("{name}:{p}"),
            _ => name.to_owned(),
        };
        Ok(PublicUrl { origin: format!("{scheme}://{host}"), host })
    }

    /// `https://name[:port]`.
    pub fn as_str(&self) -> &str {
        &self.origin
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.origin)
    }
}

/// A bound http listener and the base URL links point at.
pub struct HttpListener {
    listener: TcpListener,
    /// `http://ADDR:PORT`, as bound.
    pub url: String,
    /// Where links point: the `--public-url`, else `url`.
    pub link_base: String,
    /// Bound to a loopback address: only loopback `Host` names are served.
    loopback: bool,
    public: Option<PublicUrl>,
}

/// Binds `addr`; a non-loopback address only with `allow_remote`. Links
/// point at `public` when given, else at the bound address.
pub async fn bind(
    addr: SocketAddr,
    allow_remote: bool,
    public: Option<PublicUrl>,
) -> Result<HttpListener, HttpBindError> {
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
    let url = format!("http://{local}");
    let link_base = public.as_ref().map_or_else(|| url.clone(), |p| p.origin.clone());
    Ok(HttpListener { listener, url, link_base, loopback: local.ip().is_loopback(), public })
}

/// What the routes share.
#[derive(Clone)]
struct Web {
    ctx: Context,
    gate: Gate,
    /// What each peer address may open and guess.
    per_ip: PerIp,
    public: Option<PublicUrl>,
}

/// Serves `listener` until `stop` turns true. Every connection holds one of
/// `slots`' http share from its accept to its close (see `http`).
pub async fn serve(listener: HttpListener, ctx: Context, gate: Gate, slots: Slots, stop: watch::Receiver<bool>) {
    let header_timeout = ctx.limits.header_timeout;
    let web = Web { per_ip: PerIp::new(ctx.limits.max_connections_per_ip), public: listener.public.clone(), ctx, gate };
    let loopback = listener.loopback;
    let public_host = listener.public.as_ref().map(|p| p.host.clone());
    let app = Router::new()
        .route("/rpc", get(rpc))
        .route("/api/access", get(access))
        .route("/t/{thread_id}", get(assets::viewer))
        .route("/assets/{name}", get(assets::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(move |req, next| loopback_host(loopback, public_host.clone(), req, next)))
        .layer(axum::middleware::map_response(tandem_viewer::security_headers))
        .with_state(web);
    http::serve(listener.listener, app, slots, header_timeout, stop).await;
}

/// A loopback listener answers only to loopback names in `Host`: a web page
/// whose own name was made to resolve to 127.0.0.1 (DNS rebinding) gets
/// nothing from it, not even the viewer's shell. The `--public-url` name is
/// answered too: a reverse proxy on this machine passes it on.
async fn loopback_host(
    loopback: bool,
    public_host: Option<String>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let public = public_host.is_some_and(|p| p.eq_ignore_ascii_case(host));
    if loopback && !public {
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

/// A refusal as HTTP: the status and the JSON-RPC error object as the body.
fn refuse(status: StatusCode, error: &RpcError) -> Response {
    let body = serde_json::json!({ "error": error }).to_string();
    let mut res = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// An address that presented too many wrong tokens: 429 with `Retry-After`.
fn too_many_guesses(ip: IpAddr, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    tracing::warn!(%ip, retry_after = secs, "refusing an address that presented too many invalid tokens");
    let error = RpcError::forbidden(format!(
        "too many invalid tokens from this address ({STRIKE_BURST} in a burst, {STRIKES_PER_SECOND} more a second); retry in {secs}s"
    ))
    .with_reason("tooManyAttempts");
    let mut res = refuse(StatusCode::TOO_MANY_REQUESTS, &error);
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// The token of a request, checked; a token that matches nothing is a strike
/// against the peer's address, and past a burst it is answered 429. A valid
/// token always gets in (see `per_ip`).
fn admit(web: &Web, peer: IpAddr, headers: &HeaderMap) -> Result<Grant, Box<Response>> {
    web.gate.admit(bearer(headers).as_deref(), &web.ctx.engine).map_err(|r| {
        if let Refusal::Invalid(_) = r
            && let Err(wait) = web.per_ip.strike(peer)
        {
            return Box::new(too_many_guesses(peer, wait));
        }
        Box::new(refusal_response(&r))
    })
}

fn json_response(body: &serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refusal_response(r: &Refusal) -> Response {
    let status = match r {
        Refusal::Missing => StatusCode::UNAUTHORIZED,
        Refusal::Forbidden(_) | Refusal::Invalid(_) => StatusCode::FORBIDDEN,
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
/// sent, must be `http://` + the `Host` asked for, or the `--public-url`
/// (else any site the user visits could drive the server with a token it got
/// hold of).
fn origin_ok(headers: &HeaderMap, public: Option<&PublicUrl>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser (the CLI, a script): nothing to forge.
        return true;
    };
    if let (Some(public), Ok(origin)) = (public, origin.to_str())
        && origin.eq_ignore_ascii_case(&public.origin)
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin.strip_prefix("http://").is_some_and(|o| o.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// `GET /api/access`: what the bearer token grants (200), or why nothing (401/403).
async fn access(State(web): State<Web>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    match admit(&web, peer.ip(), &headers) {
        Ok(Grant::Owner) => json_response(&serde_json::json!({"owner": true})),
        Ok(Grant::Link(link)) => json_response(&serde_json::json!({"owner": false, "link": link.public()})),
        Err(res) => *res,
    }
}

/// `GET /rpc`: the WebSocket, once Origin, token and connection limit allow it.
async fn rpc(State(web): State<Web>, ConnectInfo(peer): ConnectInfo<SocketAddr>, parts: Parts) -> Response {
    let headers = &parts.headers;
    if !origin_ok(headers, web.public.as_ref()) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "refusing a WebSocket from another origin");
        return refuse(
            StatusCode::FORBIDDEN,
            &RpcError::forbidden("this WebSocket's Origin is not this server; open the page from the server itself")
                .with_reason("badOrigin"),
        );
    }
    let grant = match admit(&web, peer.ip(), headers) {
        Ok(g) => g,
        Err(res) => return *res,
    };
    // Behind a reverse proxy on this machine (`--public-url`) every client has
    // the proxy's address: only the total limit applies then. The owner is
    // never held to it either (as with the wrong-token throttle): a valid
    // owner token always gets in, however many sockets links hold from its
    // address. The connection itself already holds one of the listener's
    // slots (`http`), so the total limit is kept without a count here.
    let behind_proxy = web.public.is_some() && peer.ip().is_loopback();
    let exempt = behind_proxy || matches!(grant, Grant::Owner);
    let slot = if exempt { None } else { web.per_ip.socket(peer.ip()) };
    if slot.is_none() && !exempt {
        let max = web.per_ip.max_sockets();
        tracing::warn!(peer = %peer.ip(), limit = max, "refusing a WebSocket: its address has the most open");
        let mut error = RpcError::too_many_connections(max);
        error.message = format!(
            "too many connections from this address: at most {max} WebSockets at once per address; close some, or restart the server with a higher --max-connections-per-ip"
        );
        return refuse(StatusCode::SERVICE_UNAVAILABLE, &error);
    }
    let mut parts = parts;
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let ctx = web.ctx.clone();
    // A message is held whole until its last frame: a read-only link asks
    // only for small things, so it may hold little (a larger message closes
    // its connection); the owner and write links may send a prompt as large as
    // the protocol allows, and up to twice that is read, so that a message a
    // little over it gets `frameTooLarge` and the connection stays, as a long
    // line does on the socket; far larger ones close the connection.
    let read_limit = if grant.writes() { socket::READ_LIMIT } else { socket::READ_ONLY_LIMIT };
    upgrade.protocols([SUBPROTOCOL]).max_message_size(read_limit).max_frame_size(read_limit).on_upgrade(
        move |ws| async move {
            socket::serve(ws, ctx, grant).await;
            drop(slot);
        },
    )
}

#[cfg(test)]
mod tests {
    use super::PublicUrl;

    #[test]
    fn public_urls_are_an_origin_without_the_default_port() {
        let ok = |text: &str, origin: &str, host: &str| {
            let url = PublicUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((url.origin.as_str(), url.host.as_str()), (origin, host), "{text}");
        };
        ok("https://Tandem.Example.com/", "https://tandem.example.com", "tandem.example.com");
        ok("https://x.example:443", "https://x.example", "x.example");
        ok("http://x.example:80", "http://x.example", "x.example");
        ok("https://x.example:8443", "https://x.example:8443", "x.example:8443");
        ok("http://[::1]:7878", "http://[::1]:7878", "[::1]:7878");
        ok("https://[2001:db8::1]", "https://[2001:db8::1]", "[2001:db8::1]");
        for bad in [
            "ftp://x",
            "x.example",
            "https://",
            "http://:",
            "http://a:b:c",
            "https://x:0",
            "https://x:99999",
            "https://[::1",
            "https://[nope]",
            "https://[::1]x",
            "https://u@x",
            "https://x/p",
            "https://x?q",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
