//! The hub's HTTP surface (DESIGN §7): the JSON API an app-server syncs
//! through, and the routes (what readers get — the viewer, its history and
//! live WebSocket — is in `reader`). Access is decided here, once per
//! request: the secret for writes, the unguessable id for reads. Nothing
//! here logs a secret or a request body.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::json;
use tandem_protocol::hub::{CreateShare, CreatedShare, DeleteShare, SyncItem, SyncRequest, parse_duration};
use tandem_protocol::time::{format_millis, now_millis};

use crate::client_ip::TrustedProxies;
use crate::live::Live;
use crate::page;
use crate::reader;
use crate::secret;
use crate::store::{HubStore, NewShare, Share, StoredEvent, SyncBatch, SyncOutcome, is_expired};

/// The longest thread id or title a share accepts.
const MAX_FIELD: usize = 1000;

/// What the API may take.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Shares one client address may create per minute.
    pub creates_per_minute: u32,
    /// Bytes of events one share may hold.
    pub share_bytes: u64,
    /// Bytes of one request body.
    pub body_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client that the
    /// creation limit counts (otherwise the TCP peer is the client).
    pub trusted_proxies: TrustedProxies,
}

/// What every handler shares.
pub struct Hub<S> {
    pub store: S,
    pub live: Live,
    /// The URL readers use, without a trailing slash.
    pub public_url: String,
    pub limits: Limits,
    creates: DefaultKeyedRateLimiter<IpAddr>,
}

impl<S: HubStore> Hub<S> {
    pub fn new(store: S, public_url: String, limits: Limits) -> Arc<Hub<S>> {
        let per_minute = std::num::NonZeroU32::new(limits.creates_per_minute.max(1)).expect("at least 1");
        Arc::new(Hub {
            store,
            live: Live::default(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            creates: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            limits,
        })
    }

    /// Purges expired shares and forgets idle rate-limit entries.
    pub async fn tidy(&self) {
        match self.store.purge_expired(now_millis()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired shares purged"),
            Err(e) => tracing::error!(error = %e, "could not purge expired shares"),
        }
        self.creates.retain_recent();
    }
}

/// The routes.
pub fn router<S: HubStore>(hub: Arc<Hub<S>>) -> Router {
    let body_limit = hub.limits.body_bytes;
    Router::new()
        .route("/api/share", post(create::<S>))
        .route("/api/share/{id}", axum::routing::delete(remove::<S>))
        .route("/api/share/{id}/sync", post(sync::<S>))
        .route("/api/share/{id}/poll", get(reader::poll::<S>))
        .route("/api/share/{id}/live", get(reader::live::<S>))
        .route("/api/share/{id}/events", get(reader::history::<S>))
        .route("/s/{id}", get(reader::view::<S>))
        .route("/assets/{name}", get(asset))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(hub)
}

/// `GET /assets/{name}`: the viewer's stylesheet and script.
async fn asset(Path(name): Path<String>) -> Response {
    tandem_viewer::asset(&name).unwrap_or_else(|| not_found().into_response())
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(page::CSP));
    res
}

/// An error answer: a status and `{"error": why}`.
pub(crate) struct Refusal(pub StatusCode, pub String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A store's failure: 503 while the database is down or restarting
/// (PostgreSQL) — a wait, not a fault, which senders retry — else 500.
pub(crate) fn storage(e: crate::store::StoreError) -> Refusal {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "hub storage unavailable");
        return Refusal(StatusCode::SERVICE_UNAVAILABLE, "the hub's database is unavailable; try again shortly".into());
    }
    internal(e)
}

/// Any other failure of the hub itself: 500, the cause in the log only.
pub(crate) fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "hub storage failed");
    Refusal(StatusCode::INTERNAL_SERVER_ERROR, "the hub could not use its storage; see its log".into())
}

fn bad_request(e: impl std::fmt::Display) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, e.to_string())
}

fn not_found() -> Refusal {
    Refusal(StatusCode::NOT_FOUND, "no such share (never made, or deleted)".into())
}

fn gone() -> Refusal {
    Refusal(StatusCode::GONE, "this share has expired".into())
}

/// The share `id`, live: 404 if unknown, 410 if expired (purging it then, so
/// an expired share's data never outlives its first refusal).
pub(crate) async fn live_share<S: HubStore>(hub: &Hub<S>, id: &str) -> Result<Share, Refusal> {
    if !secret::is_id(id) {
        return Err(not_found());
    }
    let now = now_millis();
    let share = hub.store.get(id).await.map_err(storage)?.ok_or_else(not_found)?;
    if is_expired(&share, now) {
        if !share.expired {
            hub.store.purge_expired(now).await.map_err(storage)?;
            hub.live.changed(id);
        }
        return Err(gone());
    }
    Ok(share)
}

fn check_secret(given: &str, share: &Share) -> Result<(), Refusal> {
    if secret::matches(given, &share.secret_hash) {
        Ok(())
    } else {
        Err(Refusal(StatusCode::UNAUTHORIZED, "wrong secret for this share".into()))
    }
}

async fn create<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    // A line that is not text counts as junk (it ends the walk), not as absent.
    let forwarded = headers.get_all("x-forwarded-for").into_iter().map(|v| v.to_str().unwrap_or(""));
    let client = hub.limits.trusted_proxies.client(peer.ip(), forwarded);
    if let Err(not_until) = hub.creates.check_key(&client) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut res = Refusal(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many shares created from this address; try again in {secs} s"),
        )
        .into_response();
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return Ok(res);
    }
    let req: CreateShare = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("expected {{\"threadId\":…, \"title\"?:…, \"expire\"?:\"7d\"}}: {e}")))?;
    if req.thread_id.is_empty() || req.thread_id.len() > MAX_FIELD {
        return Err(bad_request(format!("threadId must have 1 to {MAX_FIELD} bytes")));
    }
    if req.title.as_ref().is_some_and(|t| t.len() > MAX_FIELD) {
        return Err(bad_request(format!("title must have at most {MAX_FIELD} bytes")));
    }
    let now = now_millis();
    let expires_at = match &req.expire {
        Some(text) => Some(now + 1000 * parse_duration(text).map_err(bad_request)? as i64),
        None => None,
    };
    let secret = secret::new_secret().map_err(internal)?;
    // 60 random bits: a clash is next to impossible, but cheap to survive.
    for _ in 0..3 {
        let id = secret::new_id().map_err(internal)?;
        let new = NewShare {
            id: id.clone(),
            secret_hash: secret::hash(&secret),
            thread_id: req.thread_id.clone(),
            title: req.title.clone(),
            created_at: now,
            expires_at,
        };
        match hub.store.create(new).await {
            Ok(()) => {
                tracing::info!(share = %id, "share created");
                let url = format!("{}/s/{id}", hub.public_url);
                let created = CreatedShare { id, url, secret, expires_at: expires_at.map(format_millis) };
                return Ok(axum::Json(created).into_response());
            }
            Err(crate::store::StoreError::Exists(_)) => continue,
            Err(e) => return Err(storage(e)),
        }
    }
    Err(internal("three random share ids were all taken"))
}

async fn sync<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let share = live_share(&hub, &id).await?;
    let req: SyncRequest = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "expected {{\"secret\":…, \"data\":[{{\"type\":\"thread\",…}} | {{\"type\":\"event\",\"seq\":N,\"event\":{{…}}}}]}}: {e}"
        ))
    })?;
    check_secret(&req.secret, &share)?;
    let mut batch = SyncBatch::default();
    for item in req.data {
        match item {
            SyncItem::Thread { title, shared } => {
                if title.as_ref().is_some_and(|t| t.len() > MAX_FIELD) {
                    return Err(bad_request(format!("title must have at most {MAX_FIELD} bytes")));
                }
                batch.thread = Some((title, shared));
            }
            SyncItem::Event { seq, event } => {
                if seq == 0 || seq > i64::MAX as u64 {
                    return Err(bad_request("an event's seq starts at 1"));
                }
                if !event.is_object() {
                    return Err(bad_request(format!("event {seq} must be a JSON object")));
                }
                batch.events.push(StoredEvent { seq, json: event.to_string() });
            }
        }
    }
    let outcome = hub.store.sync(&id, batch, now_millis(), hub.limits.share_bytes).await.map_err(storage)?;
    match outcome {
        SyncOutcome::Stored { added, next_seq } => {
            tracing::debug!(share = %id, added, next_seq, "synced");
            hub.live.changed(&id);
            Ok(axum::Json(json!({})).into_response())
        }
        SyncOutcome::Gap { expected_seq } => Ok((
            StatusCode::CONFLICT,
            axum::Json(
                json!({ "expectedSeq": expected_seq, "error": format!("events must go on at seq {expected_seq}") }),
            ),
        )
            .into_response()),
        SyncOutcome::TooBig { limit } => Err(Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a share may hold at most {limit} bytes of events; this sync would pass that"),
        )),
        SyncOutcome::Missing => Err(not_found()),
        SyncOutcome::Expired => Err(gone()),
    }
}

async fn remove<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let share = live_share(&hub, &id).await?;
    let req: DeleteShare =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("expected {{\"secret\":…}}: {e}")))?;
    check_secret(&req.secret, &share)?;
    if !hub.store.delete(&id).await.map_err(storage)? {
        return Err(not_found());
    }
    tracing::info!(share = %id, "share deleted");
    hub.live.changed(&id);
    Ok(axum::Json(json!({})).into_response())
}
