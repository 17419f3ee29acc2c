//! The share server's HTTP API (DESIGN §7), as the hub serves it and the
//! app-server's sync queue speaks it: request and answer bodies, and the items a
//! share is made of. One declaration for both ends, like the JSON-RPC methods.
//!
//! A share holds one `thread` item (title, shared; the last write wins) and its
//! thread's events, each wrapped as `{"type":"event","seq":N,"event":{…}}`: the
//! event keeps its own `type` (`turn/started`, …), so it cannot be flattened
//! into the item.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most bytes of one request body a hub takes (a sync batch is one
/// request): a frame, like every other message of the protocol. `tandem hub`
/// serves with this limit and answers a bigger body with 413; the sending
/// side builds no request larger, cutting or withholding an event that would
/// not fit (see [`EventCuts`]).
pub const MAX_REQUEST_BYTES: usize = crate::MAX_FRAME_BYTES;

/// The longest thread id or title (bytes) a hub takes; a longer one is a 400.
pub const MAX_FIELD_BYTES: usize = 1000;

/// The `type` of the event a sender puts in place of one the hub would not
/// take even cut to fit: same `seq`, `ts`, `threadId` (and `turnId`,
/// `itemId` when it had them), so the share's log has no hole, and a
/// `withheld` object saying what it was (`type`, `originalBytes`) and why
/// (`reason`). Clients ignore types they do not know.
pub const WITHHELD_EVENT: &str = "event/withheld";

/// `POST /api/share`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateShare {
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// How long the share lives: `90s`, `30m`, `12h`, `7d` (see [`parse_duration`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<String>,
}

/// The answer to `POST /api/share`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedShare {
    pub id: String,
    pub url: String,
    /// Needed for every later sync and the delete; the hub keeps only its hash.
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `POST /api/share/{id}/sync`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub secret: String,
    pub data: Vec<SyncItem>,
}

/// `DELETE /api/share/{id}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteShare {
    pub secret: String,
}

/// One item of a share, as synced and as `GET /api/share/{id}/poll` sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SyncItem {
    /// The thread's title and shared flag.
    Thread {
        #[serde(default)]
        title: Option<String>,
        #[serde(default = "yes")]
        shared: bool,
    },
    /// One of the thread's events (its `seq` repeated outside, so the hub need
    /// not look inside). A `Value`, not raw text: serde's tagged enums cannot
    /// hold a `RawValue`.
    Event { seq: u64, event: Value },
}

fn yes() -> bool {
    true
}

/// The body of a `409`: where the share's events go on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub expected_seq: u64,
}

/// The body of every other error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubError {
    pub error: String,
}

/// `hub/link` (JSON-RPC): share a thread through a hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubLinkParams {
    pub thread_id: String,
    /// The hub's URL; default: `[hub] url` in the app-server's config.toml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// How long the share lives (`7d`); default: until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<String>,
    /// Send secrets as they are (default: redacted before they leave).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_redact: bool,
}

/// `hub/links`: the hub links, of one thread or all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubLinksParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// `hub/unlink`: stop syncing a thread; `delete` also removes it from the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubUnlinkParams {
    pub thread_id: String,
    #[serde(default)]
    pub delete: bool,
}

/// A thread's link to a hub, as `hub/link` and `hub/links` show it (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubLink {
    pub thread_id: String,
    /// The share's id on the hub.
    pub id: String,
    pub url: String,
    pub hub: String,
    /// The last seq the hub has acknowledged.
    pub acked_seq: u64,
    /// Events committed locally and not yet acknowledged.
    pub pending: u64,
    pub redact: bool,
    /// `synced`, `pending`, `retrying`, or why syncing stopped: `deleted`,
    /// `expired`, `refused`, `full`.
    pub state: String,
    /// The last failure, while retrying or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Events the hub got altered, so the rest could go on.
    #[serde(default, skip_serializing_if = "EventCuts::is_empty")]
    pub cuts: EventCuts,
}

/// What a link had to do to events too big for its hub (or refused by it),
/// so that they would not stop the rest. Counted once per event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCuts {
    /// Events sent with their longest texts cut to fit, each cut text ending
    /// in a `… [truncated by tandem: …]` marker and the event carrying
    /// `"truncated": {"originalBytes": N}`.
    #[serde(default)]
    pub truncated: u64,
    /// Events sent as a [`WITHHELD_EVENT`] placeholder instead.
    #[serde(default)]
    pub withheld: u64,
    /// The seq of the last event truncated or withheld.
    #[serde(default)]
    pub last_seq: u64,
    /// What happened to it, in words.
    #[serde(default)]
    pub last: String,
}

impl EventCuts {
    pub fn is_empty(&self) -> bool {
        self.truncated == 0 && self.withheld == 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubLinkResult {
    pub link: HubLink,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubLinksResult {
    pub data: Vec<HubLink>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubUnlinkResult {
    pub unlinked: bool,
    pub deleted: bool,
}

pub use crate::time::parse_duration;

/// A hub's base URL as typed (`--hub`, `[hub] url`): `http(s)://HOST[:PORT][/PATH]`,
/// trailing slashes dropped; no credentials, query or fragment. The error
/// says what is accepted and never repeats a password.
pub fn normalize_hub_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        return Err(format!("hub URL {url:?} must start with http:// or https://"));
    };
    if rest.is_empty() || rest.contains('@') || rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        let shown = match rest.split_once('@') {
            Some((_, host)) => format!("{}://…@{host}", if url.starts_with("https") { "https" } else { "http" }),
            None => url.to_owned(),
        };
        return Err(format!("hub URL {shown:?} must be a plain http(s)://HOST[:PORT][/PATH]"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        for bad in ["", "7", "d", "7x", "-1d", "0s", "99999999999w", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn items_round_trip() {
        let line = r#"{"type":"event","seq":3,"event":{"seq":3,"type":"turn/started"}}"#;
        let item: SyncItem = serde_json::from_str(line).unwrap();
        assert!(matches!(&item, SyncItem::Event { seq: 3, .. }));
        assert_eq!(serde_json::to_string(&item).unwrap(), line);
        let t: SyncItem = serde_json::from_str(r#"{"type":"thread","title":"x"}"#).unwrap();
        assert!(matches!(t, SyncItem::Thread { shared: true, .. }));
        assert!(serde_json::from_str::<SyncItem>(r#"{"type":"other"}"#).is_err());
    }
}
