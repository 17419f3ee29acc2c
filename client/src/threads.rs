//! Threads as people name and see them, on the client side: every thread (all
//! `thread/list` pages) newest activity first, and an id or a typed prefix of
//! one resolved to exactly one thread. The server's protocol stays as it is:
//! prefixes never travel on the wire.

use tandem_protocol::Thread;
use tandem_protocol::ids::IdQuery;
use tandem_protocol::methods::{ThreadList, ThreadListParams};

use super::{Client, ClientError};

/// Why a typed id does not name one thread.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no thread id starts with {prefix}")]
    NotFound { prefix: String },
    #[error("{prefix} is the start of {} thread ids; type more of one:\n{}", .candidates.len(), list(.candidates))]
    Ambiguous { prefix: String, candidates: Vec<Thread> },
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn list(candidates: &[Thread]) -> String {
    candidates
        .iter()
        .map(|t| format!("  {}  {}  {}", t.id, t.updated_at, t.title.as_deref().unwrap_or("")).trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every thread of the server, the most recently active first.
pub async fn all_threads(client: &Client) -> Result<Vec<Thread>, ClientError> {
    let mut threads = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            client.call::<ThreadList>(&ThreadListParams { limit: Some(tandem_protocol::MAX_PAGE), cursor }).await?;
        threads.extend(page.data);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    by_activity(&mut threads);
    Ok(threads)
}

/// Sorts threads by last activity, newest first (then by id, newest first).
pub fn by_activity(threads: &mut [Thread]) {
    // `updatedAt` is RFC 3339 UTC with milliseconds: it sorts as text.
    threads.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| b.id.cmp(&a.id)));
}

/// The one thread id `query` names. A whole id is returned as it is (the
/// server says if it does not exist); a prefix is looked up in the list.
pub async fn resolve_thread(client: &Client, query: &IdQuery) -> Result<String, ResolveError> {
    if let IdQuery::Full(id) = query {
        return Ok(id.clone());
    }
    let mut candidates: Vec<Thread> = all_threads(client).await?.into_iter().filter(|t| query.matches(&t.id)).collect();
    match candidates.len() {
        0 => Err(ResolveError::NotFound { prefix: query.to_string() }),
        1 => Ok(candidates.remove(0).id),
        _ => Err(ResolveError::Ambiguous { prefix: query.to_string(), candidates }),
    }
}
