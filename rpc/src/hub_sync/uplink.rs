//! Talking to a hub: its JSON API (DESIGN §7) over HTTP, each answer turned
//! into what the sync queue must do next. Secrets go in request bodies only,
//! never in URLs or logs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tandem_protocol::hub::{CreateShare, CreatedShare, DeleteShare, Gap, HubError, SyncItem, SyncRequest};

use super::links::LinkRecord;

/// How long one request to a hub may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a hub did not take a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The hub has events up to `expected - 1`: resend from `expected`.
    #[error("the hub expects seq {0} next")]
    Gap(u64),
    /// 404: the share was deleted on the hub.
    #[error("the share no longer exists on the hub")]
    Deleted,
    /// 410.
    #[error("the share has expired on the hub")]
    Expired,
    /// 401 or another refusal that retrying will not change.
    #[error("the hub refused: {0}")]
    Refused(String),
    /// 413: the request is too big, or the share would be too full with it.
    #[error("the hub refused: {0}")]
    Full(String),
    /// Another 4xx about what was sent (400, 422, …): the same request will
    /// be refused again, but less of it may not.
    #[error("the hub refused: {0}")]
    Rejected(String),
    /// The hub is down or overloaded (unreachable, 5xx, 429): retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl Refusal {
    /// The link state this refusal leaves a link in, if it ends the syncing.
    pub fn stops(&self) -> Option<&'static str> {
        match self {
            Refusal::Deleted => Some("deleted"),
            Refusal::Expired => Some("expired"),
            Refusal::Refused(_) => Some("refused"),
            Refusal::Full(_) => Some("full"),
            Refusal::Rejected(_) => Some("refused"),
            Refusal::Gap(_) | Refusal::Unavailable(_) => None,
        }
    }

    /// Whether the hub refused what a request carried rather than who sent
    /// it or where: sending less (a split batch, a placeholder) may pass.
    pub fn about_content(&self) -> bool {
        matches!(self, Refusal::Full(_) | Refusal::Rejected(_))
    }
}

/// A hub's answer, on its way.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, Refusal>> + Send + 'a>>;

/// What the sync queue needs of a hub: the three calls of its API. [`Uplink`]
/// makes them over HTTP; tests put a scripted hub in its place.
pub trait HubApi: Send + Sync + 'static {
    fn create<'a>(&'a self, hub: &'a str, req: &'a CreateShare) -> Reply<'a, CreatedShare>;
    fn sync<'a>(&'a self, link: &'a LinkRecord, data: Vec<SyncItem>) -> Reply<'a, ()>;
    fn delete<'a>(&'a self, link: &'a LinkRecord) -> Reply<'a, ()>;
}

impl HubApi for Uplink {
    fn create<'a>(&'a self, hub: &'a str, req: &'a CreateShare) -> Reply<'a, CreatedShare> {
        Box::pin(Uplink::create(self, hub, req))
    }
    fn sync<'a>(&'a self, link: &'a LinkRecord, data: Vec<SyncItem>) -> Reply<'a, ()> {
        Box::pin(Uplink::sync(self, link, data))
    }
    fn delete<'a>(&'a self, link: &'a LinkRecord) -> Reply<'a, ()> {
        Box::pin(Uplink::delete(self, link))
    }
}

/// An HTTP client for hubs, made on first use: building one loads the
/// system's root certificates (~13 M instructions, measured with callgrind),
/// which a server that never talks to a hub should not pay at every start.
#[derive(Clone, Default)]
pub struct Uplink {
    http: Arc<OnceLock<reqwest::Client>>,
}

impl Uplink {
    pub fn new() -> Uplink {
        Uplink::default()
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            // reqwest is built without a bundled crypto provider; use ring's.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        })
    }

    /// `POST /api/share`.
    pub async fn create(&self, hub: &str, req: &CreateShare) -> Result<CreatedShare, Refusal> {
        let res = self.send(json(self.http().post(format!("{hub}/api/share")), req), hub).await?;
        let text = res.text().await.map_err(|e| Refusal::Unavailable(format!("hub {hub}: {e}")))?;
        serde_json::from_str(&text).map_err(|e| Refusal::Refused(format!("unexpected answer from {hub}: {e}")))
    }

    /// `POST /api/share/{id}/sync`.
    pub async fn sync(&self, link: &LinkRecord, data: Vec<SyncItem>) -> Result<(), Refusal> {
        let body = SyncRequest { secret: link.secret.clone(), data };
        let url = format!("{}/api/share/{}/sync", link.hub, link.id);
        self.send(json(self.http().post(url), &body), &link.hub).await.map(drop)
    }

    /// `DELETE /api/share/{id}`.
    pub async fn delete(&self, link: &LinkRecord) -> Result<(), Refusal> {
        let url = format!("{}/api/share/{}", link.hub, link.id);
        let body = DeleteShare { secret: link.secret.clone() };
        self.send(json(self.http().delete(url), &body), &link.hub).await.map(drop)
    }

    async fn send(&self, req: reqwest::RequestBuilder, hub: &str) -> Result<reqwest::Response, Refusal> {
        let res = req.send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                tandem_engine::redact::urls(&e.to_string()).into_owned()
            };
            Refusal::Unavailable(format!("hub {hub} unreachable: {why}"))
        })?;
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Ok(res);
        }
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = res.text().await.unwrap_or_default();
        let said =
            serde_json::from_str::<HubError>(&text).map(|e| e.error).unwrap_or_else(|_| format!("HTTP {status}"));
        Err(match status {
            409 => match serde_json::from_str::<Gap>(&text) {
                Ok(gap) => Refusal::Gap(gap.expected_seq),
                Err(_) => Refusal::Refused(format!("HTTP 409 without expectedSeq from {hub}")),
            },
            404 => Refusal::Deleted,
            410 => Refusal::Expired,
            // A body over the limit gets no JSON (the hub's HTTP layer, or a
            // proxy in front of it, answers): say what it was.
            413 if said.starts_with("HTTP ") => Refusal::Full(format!("{said}: the request is too large")),
            413 => Refusal::Full(said),
            401 | 403 => Refusal::Refused(said),
            429 => Refusal::Unavailable(format!(
                "hub {hub} is rate-limiting: {said}{}",
                retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default()
            )),
            400..=499 => Refusal::Rejected(said),
            s if s >= 500 => Refusal::Unavailable(format!("hub {hub} failed: {said}")),
            _ => Refusal::Refused(said),
        })
    }
}

/// A JSON body (reqwest is built without its `json` feature).
fn json(req: reqwest::RequestBuilder, body: &impl serde::Serialize) -> reqwest::RequestBuilder {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    req.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes)
}
