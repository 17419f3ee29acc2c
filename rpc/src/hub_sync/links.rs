//! The hub links this app-server keeps: `$TANDEM_HOME/hub-links.json`, one
//! record per linked thread with the share's secret and how far the hub has
//! acknowledged. Written whole, atomically (a 0600 temp file, fsynced, then
//! renamed over the old one), never through a symlink: a crash leaves the
//! old file or the new one, and the secret is never readable by others.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tandem_protocol::hub::EventCuts;

use tandem_home::{Access, Home, open_private};

/// One linked thread, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkRecord {
    /// The share's id on the hub.
    pub id: String,
    pub url: String,
    pub secret: String,
    /// The hub's base URL.
    pub hub: String,
    /// The last seq the hub acknowledged: syncing resumes after it.
    pub acked_seq: u64,
    pub redact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Set when the hub said the share is gone (`deleted`, `expired`) or
    /// refused it for good (`refused`, `full`): syncing stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Events sent truncated or withheld so that the rest could go on; kept
    /// here so `share links` still says so after a restart.
    #[serde(default, skip_serializing_if = "EventCuts::is_empty")]
    pub cuts: EventCuts,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LinkFile {
    version: u32,
    /// By thread id.
    links: BTreeMap<String, LinkRecord>,
}

/// The file of a data directory's hub links.
pub struct LinkStore {
    path: PathBuf,
}

impl LinkStore {
    pub fn new(home: &Home) -> LinkStore {
        LinkStore { path: home.dir().join("hub-links.json") }
    }

    /// Every link (none if the file does not exist yet).
    pub fn load(&self) -> std::io::Result<BTreeMap<String, LinkRecord>> {
        let file = match open_private(&self.path, Access::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let parsed: LinkFile = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))
        })?;
        Ok(parsed.links)
    }

    /// Replaces the file with `links`.
    pub fn save(&self, links: &BTreeMap<String, LinkRecord>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut file = open_private(&tmp, Access::ReadWrite)?;
        file.set_len(0)?;
        let body = serde_json::to_vec_pretty(&LinkFile { version: 1, links: links.clone() })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        file.write_all(&body)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn saved_links_load_back_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::new(&Home::at(dir.path()));
        assert!(store.load().unwrap().is_empty());
        let rec = LinkRecord {
            id: "abc".into(),
            url: "http://h/s/abc".into(),
            secret: "s3".into(),
            hub: "http://h".into(),
            acked_seq: 7,
            redact: true,
            expires_at: None,
            stopped: None,
            cuts: EventCuts { truncated: 1, withheld: 0, last_seq: 5, last: "truncated".into() },
        };
        let links = BTreeMap::from([("t1".to_owned(), rec)]);
        store.save(&links).unwrap();
        assert_eq!(store.load().unwrap(), links);
        let mode = std::fs::metadata(dir.path().join("hub-links.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("hub-links.json.tmp").exists());
    }
}
