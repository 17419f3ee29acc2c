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

/// Parses `90s`, `30m`, `12h`, `7d` or `2w` into seconds (at least 1).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let err = || format!("{text:?} is not a duration; use a number and a unit, e.g. 90s, 30m, 12h, 7d or 2w");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!("{text:?}: a share must live at least one second")),
        Some(s) if s <= 10 * 365 * 86_400 => Ok(s),
        _ => Err(format!("{text:?} is too long; at most ten years")),
    }
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
