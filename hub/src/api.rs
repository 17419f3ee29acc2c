//! The hub's write API (DESIGN §7): the JSON an app-server creates, syncs
//! and deletes shares through. What readers get — the viewer, its history
//! and live WebSocket — is in `reader`; the routes are in `routes`. Writes
//! need the share's secret, checked here; whether the share is live at all
//! is `state::live_share`. Nothing here logs a secret or a request body.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use serde_json::json;
use tandem_protocol::hub::{CreateShare, CreatedShare, DeleteShare, SyncItem, SyncRequest, parse_duration};
use tandem_protocol::time::{format_millis, now_millis};

use crate::secret;
use crate::state::{Hub, Refusal, gone, internal, live_share, not_found, storage};
use crate::store::{HubStore, NewShare, Share, StoredEvent, SyncBatch, SyncOutcome};

/// The longest thread id or title a share takes (the sender cuts titles to it).
const MAX_FIELD: usize = tandem_protocol::hub::MAX_FIELD_BYTES;

fn bad_request(e: impl std::fmt::Display) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, e.to_string())
}

fn check_secret(given: &str, share: &Share) -> Result<(), Refusal> {
    if secret::matches(given, &share.secret_hash) {
        Ok(())
    } else {
        Err(Refusal(StatusCode::UNAUTHORIZED, "wrong secret for this share".into()))
    }
}

pub(crate) async fn create<S: HubStore>(
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

pub(crate) async fn sync<S: HubStore>(
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

pub(crate) async fn remove<S: HubStore>(
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
