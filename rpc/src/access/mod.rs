//! Who may do what over the network (DESIGN §6). A connection is admitted once,
//! at the door, with a token: the owner token (everything) or a link (one
//! thread, read or write). Unix-socket and stdio clients are the owner: the
//! socket's file mode is their door.
//!
//! A link's grant is not fixed at the door: it lasts only while the link is
//! neither revoked nor expired and its thread is `shared`, so every request is
//! checked again and each subscription is ended the moment that stops holding.
//! This module decides; it never sees bytes and never logs a secret.

pub mod links;
pub mod token;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tandem_protocol::methods::{Link, LinkScope, Request};
use tandem_protocol::{ErrorCode, RpcError};

pub use links::{LinkRefusal, Links, LinksError};
use tandem_engine::Engine;
use tandem_home::{Access, Home, open_private};

/// The file holding the owner token.
pub const OWNER_TOKEN_FILE: &str = "owner-token";
/// The file holding the links (hashed).
pub const LINKS_FILE: &str = "links.json";

/// Where the owner token of `home` is kept.
pub fn owner_token_path(home: &Home) -> PathBuf {
    home.dir().join(OWNER_TOKEN_FILE)
}

/// Reads the owner token of `home` (for clients that act as the owner).
pub fn read_owner_token(home: &Home) -> io::Result<String> {
    let mut s = String::new();
    open_private(&owner_token_path(home), Access::Read)?.read_to_string(&mut s)?;
    Ok(s.trim().to_owned())
}

/// The door: knows the owner token's hash and the links.
#[derive(Clone)]
pub struct Gate {
    owner_hash: String,
    links: Links,
}

/// What a connection was admitted as.
#[derive(Clone)]
pub enum Grant {
    /// Everything (the owner token, the unix socket, stdio).
    Owner,
    /// One thread, while the link stands and the thread is shared.
    Link(LinkGrant),
}

/// A link's grant.
#[derive(Clone)]
pub struct LinkGrant {
    pub id: String,
    pub thread_id: String,
    pub scope: LinkScope,
    expires: Option<i64>,
    links: Links,
}

/// Why a token was refused at the door.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No token at all (HTTP 401).
    Missing,
    /// A token that grants nothing now (HTTP 403): the error says why.
    Forbidden(RpcError),
    /// A token that matches nothing: not the owner's, no link's (never made,
    /// revoked, or guessed). HTTP 403 too; the web door counts these per address.
    Invalid(RpcError),
}

impl Gate {
    /// Opens the owner token of `home` (made, 0600, the first time) and its links.
    pub fn open(home: &Home) -> Result<Gate, LinksError> {
        let path = owner_token_path(home);
        let io_err = |source| LinksError::Io { path: path.clone(), source };
        let owner = load_or_create_owner_token(&path).map_err(io_err)?;
        let links = Links::open(&home.dir().join(LINKS_FILE))?;
        Ok(Gate { owner_hash: token::hash(&owner), links })
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Admits `presented` (the bearer token), or says why not.
    pub fn admit(&self, presented: Option<&str>, engine: &Engine) -> Result<Grant, Refusal> {
        let presented = presented.map(str::trim).filter(|t| !t.is_empty()).ok_or(Refusal::Missing)?;
        if !presented.contains('.') {
            return if token::matches(presented, &self.owner_hash) {
                Ok(Grant::Owner)
            } else {
                Err(Refusal::Invalid(RpcError::forbidden(
                    "this token is not valid here; use the owner token (see `tandem app-server status`) or a link",
                )))
            };
        }
        let admitted = self.links.admit(presented).map_err(|r| {
            let error = RpcError::forbidden(r.message());
            match r {
                LinkRefusal::Unknown => Refusal::Invalid(error),
                LinkRefusal::Expired => Refusal::Forbidden(error),
            }
        })?;
        let grant = LinkGrant {
            id: admitted.id,
            thread_id: admitted.thread_id,
            scope: admitted.scope,
            expires: admitted.expires,
            links: self.links.clone(),
        };
        grant.check(engine).map_err(Refusal::Forbidden)?;
        Ok(Grant::Link(grant))
    }
}

fn load_or_create_owner_token(path: &Path) -> io::Result<String> {
    let mut file = open_private(path, Access::ReadWrite)?;
    let mut existing = String::new();
    file.read_to_string(&mut existing)?;
    let existing = existing.trim();
    if !existing.is_empty() {
        return Ok(existing.to_owned());
    }
    let fresh = token::new_secret()?;
    file.write_all(format!("{fresh}\n").as_bytes())?;
    file.sync_all()?;
    Ok(fresh)
}

impl Grant {
    /// May post, interrupt or change the thread (the owner, a write link).
    pub fn writes(&self) -> bool {
        match self {
            Grant::Owner => true,
            Grant::Link(link) => link.scope != LinkScope::Read,
        }
    }
}

impl LinkGrant {
    /// Whether the grant still holds: the link stands and its thread is shared.
    pub fn check(&self, engine: &Engine) -> Result<(), RpcError> {
        self.links.check(&self.id).map_err(|r| RpcError::forbidden(r.message()))?;
        if !engine.is_shared(&self.thread_id) {
            return Err(RpcError::forbidden(
                "this thread is no longer shared; its owner can share it again (links that have not expired or been revoked then work again)",
            )
            .with("detail", "unshared"));
        }
        Ok(())
    }

    /// Resolves once the grant no longer holds, with the error that says why.
    pub async fn lost(&self, engine: &Engine) -> RpcError {
        let mut links = self.links.changes();
        let mut threads = engine.thread_changes();
        loop {
            links.borrow_and_update();
            threads.borrow_and_update();
            if let Err(e) = self.check(engine) {
                return e;
            }
            let expiry = async {
                match self.expires {
                    Some(ms) => {
                        let left = ms.saturating_sub(tandem_protocol::time::now_millis()).max(0) as u64;
                        tokio::time::sleep(std::time::Duration::from_millis(left)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = links.changed() => {}
                _ = threads.changed() => {}
                _ = expiry => {}
            }
        }
    }

    /// Whether this grant lets a request through: its own thread only, and
    /// writing only with a write link.
    pub fn allows(&self, req: &Request) -> Result<(), RpcError> {
        let (thread_id, writes) = match req {
            Request::Initialize(_) | Request::AccessRead(_) | Request::ThreadUnsubscribe(_) => return Ok(()),
            Request::ThreadRead(p) => (&p.thread_id, false),
            Request::ThreadEvents(p) => (&p.thread_id, false),
            Request::ThreadSubscribe(p) => (&p.thread_id, false),
            Request::TurnStart(p) => (&p.thread_id, true),
            Request::TurnInterrupt(p) => (&p.thread_id, true),
            Request::ThreadUpdate(p) => (&p.thread_id, true),
            other => {
                return Err(RpcError::forbidden(format!(
                    "a link cannot call {}; it reads (and with a write link, posts to) its own thread",
                    other.method()
                )));
            }
        };
        let same = tandem_protocol::ids::normalize_uuid("threadId", thread_id).is_ok_and(|t| t == self.thread_id);
        if !same {
            return Err(RpcError::forbidden(format!("this link is for thread {} only", self.thread_id)));
        }
        if writes && self.scope == LinkScope::Read {
            return Err(RpcError::forbidden(format!(
                "this is a read-only link: it cannot call {}; ask for a write link",
                req.method()
            )));
        }
        Ok(())
    }

    /// The link's public form, as `access/read` shows it.
    pub fn public(&self) -> Option<Link> {
        self.links.get(&self.id)
    }
}

impl Refusal {
    /// The JSON-RPC error of this refusal.
    pub fn error(&self) -> RpcError {
        match self {
            Refusal::Missing => RpcError::new(
                ErrorCode::Forbidden,
                "a token is required: send `Authorization: Bearer TOKEN` (the owner token, see `tandem app-server status`, or a link's)",
            )
            .with_reason("unauthorized"),
            Refusal::Forbidden(e) | Refusal::Invalid(e) => e.clone(),
        }
    }
}
