//! What every route of the hub shares: the store, the live wake-ups, the
//! limits, and the one access check a share gets per request
//! ([`live_share`]), with the refusals it answers. The write API (`api`) and
//! the readers (`reader`) both build on this and not on each other; `routes`
//! puts them together.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::json;
use tandem_protocol::time::now_millis;

use crate::client_ip::TrustedProxies;
use crate::live::Live;
use crate::secret;
use crate::store::{HubStore, Share, StoreError, is_expired};

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
    pub(crate) creates: DefaultKeyedRateLimiter<IpAddr>,
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

/// An error answer: a status and `{"error": why}`.
pub(crate) struct Refusal(pub StatusCode, pub String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A store's failure: 503 while the database is down or restarting
/// (PostgreSQL) — a wait, not a fault, which senders retry — else 500.
pub(crate) fn storage(e: StoreError) -> Refusal {
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

pub(crate) fn not_found() -> Refusal {
    Refusal(StatusCode::NOT_FOUND, "no such share (never made, or deleted)".into())
}

pub(crate) fn gone() -> Refusal {
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
