//! Links: per-thread tokens that let someone without the owner token read a
//! thread (or, with a write link, post to it). What is kept is a hash of each
//! secret, in `$TANDEM_HOME/links.json` (0600, replaced atomically); the
//! secret itself is shown once, when the link is made.
//!
//! This module knows nothing of threads' `shared` flag or of connections: it
//! answers "is this link still good" and says when any link changed.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tandem_protocol::methods::{Link, LinkScope};
use tandem_protocol::time::{format_millis, now_millis, parse_rfc3339};
use tokio::sync::watch;

use super::token;
use tandem_home::{Access, open_private};

/// Most links kept at once (a runaway script must not grow the file forever).
pub const MAX_LINKS: usize = 10_000;

/// One link as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    thread_id: String,
    scope: LinkScope,
    /// SHA-256 of the secret, hex.
    hash: String,
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

impl Record {
    fn expires_millis(&self) -> Option<i64> {
        self.expires_at.as_deref().and_then(|s| parse_rfc3339(s).ok())
    }

    fn expired(&self, now: i64) -> bool {
        self.expires_millis().is_some_and(|e| now >= e)
    }

    fn public(&self, now: i64) -> Link {
        Link {
            id: self.id.clone(),
            thread_id: self.thread_id.clone(),
            scope: self.scope,
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.clone(),
            last_used_at: self.last_used_at.clone(),
            expired: self.expired(now),
        }
    }
}

/// A revoked link, remembered (the newest [`MAX_LINKS`]) so that revoking
/// it again can say it was, rather than that there is no such link.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Revoked {
    id: String,
    thread_id: String,
    revoked_at: String,
}

#[derive(Serialize, Deserialize)]
struct LinksFile {
    version: u32,
    links: Vec<Record>,
    /// Absent in files written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    revoked: Vec<Revoked>,
}

/// Why a link does not let its holder in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRefusal {
    /// No such link: never made, revoked, or a forged token.
    Unknown,
    /// Past its `expiresAt`.
    Expired,
}

impl LinkRefusal {
    pub fn message(&self) -> &'static str {
        match self {
            LinkRefusal::Unknown => {
                "this link is not valid (revoked, or never made); ask the thread's owner for a new one"
            }
            LinkRefusal::Expired => "this link has expired; ask the thread's owner for a new one",
        }
    }
}

/// What a good link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub id: String,
    pub thread_id: String,
    pub scope: LinkScope,
    /// When it stops working, in Unix milliseconds.
    pub expires: Option<i64>,
}

/// Why links could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum LinksError {
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a links file Tandem can read ({why}); move it away to start with no links")]
    Corrupt { path: PathBuf, why: String },
    #[error("there are already {MAX_LINKS} links; revoke some first")]
    Full,
}

/// The server's links. Cheap to clone; clones share them.
#[derive(Clone)]
pub struct Links(Arc<Inner>);

struct Inner {
    path: PathBuf,
    records: Mutex<Vec<Record>>,
    /// Locked only while `records` is (after it).
    revoked: Mutex<Vec<Revoked>>,
    /// Bumped whenever a link is revoked (so open connections look again).
    changed: watch::Sender<u64>,
}

impl Links {
    /// The links kept at `path` (none if the file does not exist yet).
    pub fn open(path: &Path) -> Result<Links, LinksError> {
        let io_err = |source| LinksError::Io { path: path.to_owned(), source };
        let (records, revoked) = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), Vec::new()),
            _ => {
                let file = open_private(path, Access::ReadWrite).map_err(io_err)?;
                let parsed: LinksFile = serde_json::from_reader(io::BufReader::new(file))
                    .map_err(|e| LinksError::Corrupt { path: path.to_owned(), why: e.to_string() })?;
                (parsed.links, parsed.revoked)
            }
        };
        Ok(Links(Arc::new(Inner {
            path: path.to_owned(),
            records: Mutex::new(records),
            revoked: Mutex::new(revoked),
            changed: watch::Sender::new(0),
        })))
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.0.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, Vec<Revoked>> {
        self.0.revoked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `records` to a temp file and renames it over the links file;
    /// `durable` also waits for the disk (not needed for a "last used" time).
    fn save(&self, records: &[Record], durable: bool) -> Result<(), LinksError> {
        let path = &self.0.path;
        let io_err = |source| LinksError::Io { path: path.clone(), source };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let revoked = self.revoked().clone();
        let body = serde_json::to_vec_pretty(&LinksFile { version: 1, links: records.to_vec(), revoked })
            .map_err(|e| io_err(io::Error::other(e)))?;
        let mut file = open_private(&tmp, Access::ReadWrite).map_err(io_err)?;
        file.set_len(0).map_err(io_err)?;
        file.write_all(&body).map_err(io_err)?;
        if durable {
            file.sync_all().map_err(io_err)?;
        }
        std::fs::rename(&tmp, path).map_err(io_err)
    }

    /// A new link to `thread_id`; its public form and its token (shown once).
    pub fn create(
        &self,
        thread_id: &str,
        scope: LinkScope,
        expires_in_secs: Option<u64>,
    ) -> Result<(Link, String), LinksError> {
        let io_err = |source| LinksError::Io { path: self.0.path.clone(), source };
        let id = token::new_id().map_err(io_err)?;
        let secret = token::new_secret().map_err(io_err)?;
        let now = now_millis();
        let expires_at = expires_in_secs
            .map(|s| format_millis(now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX / 2).saturating_mul(1000))));
        let record = Record {
            id: id.clone(),
            thread_id: thread_id.to_owned(),
            scope,
            hash: token::hash(&secret),
            created_at: format_millis(now),
            expires_at,
            last_used_at: None,
        };
        let mut records = self.records();
        if records.len() >= MAX_LINKS {
            return Err(LinksError::Full);
        }
        let link = record.public(now);
        records.push(record);
        if let Err(e) = self.save(&records, true) {
            records.pop();
            return Err(e);
        }
        tracing::info!(link = %id, thread = thread_id, scope = scope.as_str(), "link created");
        Ok((link, format!("{id}.{secret}")))
    }

    /// Links of `thread_id` (or all), oldest first.
    pub fn list(&self, thread_id: Option<&str>) -> Vec<Link> {
        let now = now_millis();
        self.records().iter().filter(|r| thread_id.is_none_or(|t| r.thread_id == t)).map(|r| r.public(now)).collect()
    }

    /// Ends the links `which` selects; their ids.
    fn revoke_where(&self, which: impl Fn(&Record) -> bool) -> Result<Vec<String>, LinksError> {
        let mut records = self.records();
        let before = records.clone();
        let revoked: Vec<String> = records.iter().filter(|r| which(r)).map(|r| r.id.clone()).collect();
        if revoked.is_empty() {
            return Ok(revoked);
        }
        let revoked_before = {
            let mut gone = self.revoked();
            let before = gone.clone();
            let revoked_at = format_millis(now_millis());
            gone.extend(records.iter().filter(|r| which(r)).map(|r| Revoked {
                id: r.id.clone(),
                thread_id: r.thread_id.clone(),
                revoked_at: revoked_at.clone(),
            }));
            let excess = gone.len().saturating_sub(MAX_LINKS);
            gone.drain(..excess);
            before
        };
        records.retain(|r| !which(r));
        if let Err(e) = self.save(&records, true) {
            *records = before;
            *self.revoked() = revoked_before;
            return Err(e);
        }
        drop(records);
        self.0.changed.send_modify(|n| *n += 1);
        tracing::info!(links = ?revoked, "links revoked");
        Ok(revoked)
    }

    /// Ends one link.
    pub fn revoke(&self, id: &str) -> Result<Vec<String>, LinksError> {
        self.revoke_where(|r| r.id == id)
    }

    /// When link `id` was revoked, if it was (and is still remembered).
    pub fn revoked_at(&self, id: &str) -> Option<String> {
        let _records = self.records();
        self.revoked().iter().rev().find(|r| r.id == id).map(|r| r.revoked_at.clone())
    }

    /// Ends every link of a thread.
    pub fn revoke_thread(&self, thread_id: &str) -> Result<Vec<String>, LinksError> {
        self.revoke_where(|r| r.thread_id == thread_id)
    }

    /// Checks a link token (`ID.SECRET`) and notes its use.
    pub fn admit(&self, presented: &str) -> Result<Admitted, LinkRefusal> {
        let (id, secret) = presented.split_once('.').ok_or(LinkRefusal::Unknown)?;
        let now = now_millis();
        let admitted = {
            let mut records = self.records();
            let record = records.iter_mut().find(|r| r.id == id).ok_or(LinkRefusal::Unknown)?;
            if !token::matches(secret, &record.hash) {
                return Err(LinkRefusal::Unknown);
            }
            if record.expired(now) {
                return Err(LinkRefusal::Expired);
            }
            record.last_used_at = Some(format_millis(now));
            let admitted = Admitted {
                id: record.id.clone(),
                thread_id: record.thread_id.clone(),
                scope: record.scope,
                expires: record.expires_millis(),
            };
            // When it was last used is worth a small write, not a refusal.
            if let Err(e) = self.save(&records, false) {
                tracing::warn!(error = %e, "could not note a link's use");
            }
            admitted
        };
        Ok(admitted)
    }

    /// Whether link `id` still stands (it may have been revoked or expired
    /// since it was admitted).
    pub fn check(&self, id: &str) -> Result<(), LinkRefusal> {
        let now = now_millis();
        match self.records().iter().find(|r| r.id == id) {
            None => Err(LinkRefusal::Unknown),
            Some(r) if r.expired(now) => Err(LinkRefusal::Expired),
            Some(_) => Ok(()),
        }
    }

    /// The public form of link `id`.
    pub fn get(&self, id: &str) -> Option<Link> {
        let now = now_millis();
        self.records().iter().find(|r| r.id == id).map(|r| r.public(now))
    }

    /// Changes whenever a link is revoked.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.0.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_kept_hashed_and_end_when_revoked_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.json");
        let links = Links::open(&path).unwrap();
        let (link, token) = links.create("t1", LinkScope::Read, None).unwrap();
        let (_, expired) = links.create("t1", LinkScope::Write, Some(0)).unwrap();
        let stored = std::fs::read_to_string(&path).unwrap();
        let secret = token.split_once('.').unwrap().1;
        assert!(!stored.contains(secret), "the secret must not be stored");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let again = Links::open(&path).unwrap();
        assert_eq!(again.admit(&token).unwrap().id, link.id);
        assert_eq!(again.admit(&format!("{}.{}", link.id, "0".repeat(64))), Err(LinkRefusal::Unknown));
        assert_eq!(again.admit("nonsense"), Err(LinkRefusal::Unknown));
        assert_eq!(again.admit(&expired), Err(LinkRefusal::Expired));
        assert!(again.list(Some("t1")).iter().any(|l| l.expired));

        let mut changes = again.changes();
        changes.borrow_and_update();
        assert_eq!(again.revoke(&link.id).unwrap(), vec![link.id.clone()]);
        assert!(changes.has_changed().unwrap());
        assert_eq!(again.admit(&token), Err(LinkRefusal::Unknown));
        assert_eq!(again.revoke_thread("t1").unwrap().len(), 1);
        let reopened = Links::open(&path).unwrap();
        assert!(reopened.list(None).is_empty());
        // Revoked links are remembered as such, across a restart.
        assert!(reopened.revoke(&link.id).unwrap().is_empty());
        assert!(reopened.revoked_at(&link.id).is_some());
        assert!(reopened.revoked_at("never-made").is_none());
    }
}
