//! What readers of a share get, by its unguessable id and nothing else: the
//! viewer page (`/s/{id}`), its history in pages (`/api/share/{id}/events`)
//! and the live WebSocket (`/api/share/{id}/live?after=SEQ`, and the older
//! `/poll`, which is the same from seq 1). Readers never write: nothing here
//! takes a secret, and nothing here changes the store.
//!
//! A WebSocket reader is woken by `live` (a bump, no data) and reads what is
//! new from the store, so a slow reader only falls behind: it holds no queue
//! and costs no one else anything. Readers woken by the same change share one
//! read of the store (a snapshot); a reader behind it reads on by itself.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt as _;
use serde::Deserialize;
use serde_json::json;
use tandem_protocol::time::now_millis;

use crate::page::{self, PAGE_BYTES};
use crate::state::{Hub, Refusal, live_share, storage};
use crate::store::{HubStore, Share, StoreError, StoredEvent, is_expired};

/// Events a WebSocket reader reads from the store per round trip.
const LIVE_PAGE: usize = 500;

/// Events the page renders on the server (the script pages through the rest).
const PAGE_EVENTS: u64 = 2_000;

/// Events read from the store per step while the page walks back from its
/// last event: its memory stays near [`PAGE_BYTES`] plus one step.
const PAGE_STEP: u64 = 250;

/// The most events one `/events` answer holds.
const HISTORY_PAGE: usize = 1_000;

/// About the most bytes of event JSON one `/events` answer holds (at least
/// one event is always sent).
const HISTORY_BYTES: usize = 4 << 20;

/// How long one item may wait to leave for a reader that reads nothing: then
/// the reader is dropped (the viewer reconnects and resumes from its last
/// seq), rather than holding its task and connection forever.
const SEND_PATIENCE: Duration = Duration::from_secs(60);

/// A live reader with nothing to be sent is pinged this often, and dropped
/// when the next quiet spell finds that ping unanswered: a reader
/// whose network went away (a closed laptop, a dropped NAT entry) would
/// otherwise be waited on for ever on a share that no longer changes.
const PING_EVERY: Duration = Duration::from_secs(30);

/// The close code a reader gets when the share ends (deleted or expired); the
/// close reason and a last `{"type": "deleted" | "expired"}` item say which.
pub const CLOSE_ENDED: u16 = 4000;

/// `?before=SEQ` of the page (older history without JavaScript).
#[derive(Deserialize)]
pub(crate) struct ViewQuery {
    before: Option<u64>,
}

/// `GET /s/{id}`: the viewer, with the share's last events rendered.
pub(crate) async fn view<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    Path(id): Path<String>,
    query: Result<Query<ViewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let share = match live_share(&hub, &id).await {
        Ok(s) => s,
        Err(Refusal(status, why)) => {
            let title = match status {
                StatusCode::GONE => "Expired",
                s if s.is_server_error() => "Unavailable",
                _ => "Not found",
            };
            return tandem_viewer::html(status, page::notice(title, &why));
        }
    };
    if !share.shared {
        let why = "Its author has stopped sharing this thread for now.";
        return tandem_viewer::html(StatusCode::FORBIDDEN, page::notice("Not shared", why));
    }
    let last = share.next_seq.saturating_sub(1);
    let before = query.ok().and_then(|q| q.0.before).unwrap_or(last + 1).clamp(1, last + 1);
    let events = match page_events(&hub, &id, before).await {
        Ok(e) => e,
        Err(e) => return storage(e).into_response(),
    };
    let view = page::View { id: &id, title: share.title.as_deref(), last_seq: last, events: &events };
    tandem_viewer::html(StatusCode::OK, page::render(&view))
}

/// The events the page shows before seq `before`: the latest ones, at most
/// [`PAGE_EVENTS`] and about [`PAGE_BYTES`] of them (at least one), read
/// back from `before` in steps so a share of large events is never read
/// whole. Seqs have no gaps, so the page's first seq is where "Earlier
/// messages" goes on.
async fn page_events<S: HubStore>(hub: &Hub<S>, id: &str, before: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let floor = before.saturating_sub(PAGE_EVENTS).max(1);
    let mut newest_first: Vec<StoredEvent> = Vec::new();
    let mut bytes = 0;
    let mut end = before;
    'steps: while end > floor {
        let start = end.saturating_sub(PAGE_STEP).max(floor);
        for e in hub.store.events(id, start, (end - start) as usize).await?.into_iter().rev() {
            if !newest_first.is_empty() && bytes + e.json.len() > PAGE_BYTES {
                break 'steps;
            }
            bytes += e.json.len();
            newest_first.push(e);
        }
        end = start;
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// `?from=SEQ&limit=N` of `/events`.
#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/share/{id}/events?from=SEQ&limit=N`: up to `limit` events from
/// `from` on, as `{"events":[…], "next"?: SEQ, "lastSeq": N}` (`next` when
/// there are more). 403 while its author has sharing off.
pub(crate) async fn history<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(q) = query.map_err(|e| {
        Refusal(StatusCode::BAD_REQUEST, format!("expected ?from=SEQ&limit=N (both optional): {}", e.body_text()))
    })?;
    let share = live_share(&hub, &id).await?;
    if !share.shared {
        return Err(Refusal(StatusCode::FORBIDDEN, "its author has stopped sharing this thread for now".into()));
    }
    let limit = match q.limit {
        Some(0) => return Err(Refusal(StatusCode::BAD_REQUEST, "limit must be at least 1".into())),
        Some(n) => n.min(HISTORY_PAGE),
        None => HISTORY_PAGE,
    };
    let from = q.from.unwrap_or(1).max(1);
    let mut page = hub.store.events(&id, from, limit + 1).await.map_err(storage)?;
    let mut bytes = 0;
    let fits = page
        .iter()
        .position(|e| {
            bytes += e.json.len();
            bytes > HISTORY_BYTES
        })
        .map_or(page.len(), |i| i.max(1));
    let more = page.len() > limit || fits < page.len();
    page.truncate(limit.min(fits));
    // The stored JSON was checked to be an object when it was synced: it goes
    // out as it is, not parsed and printed again.
    let mut body = String::with_capacity(bytes.min(HISTORY_BYTES) + 64);
    body.push_str("{\"events\":[");
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push(']');
    if let (true, Some(last)) = (more, page.last()) {
        body.push_str(&format!(",\"next\":{}", last.seq + 1));
    }
    body.push_str(&format!(",\"lastSeq\":{}}}", share.next_seq.saturating_sub(1)));
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /api/share/{id}/poll` (WebSocket): every stored item, then live ones.
pub(crate) async fn poll<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, Refusal> {
    live_share(&hub, &id).await?;
    Ok(ws.on_upgrade(move |socket| follow(hub, id, 1, socket)))
}

/// `?after=SEQ` of `/live`.
#[derive(Deserialize)]
pub(crate) struct LiveQuery {
    after: Option<u64>,
}

/// `GET /api/share/{id}/live?after=SEQ` (WebSocket): the thread item, the
/// events after `after` (default 0: all), then new ones as they are stored.
/// 404 for an unknown share, 410 for an expired one, before the upgrade.
pub(crate) async fn live<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    Path(id): Path<String>,
    query: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Result<Response, Refusal> {
    let Query(q) = query.map_err(|e| {
        Refusal(StatusCode::BAD_REQUEST, format!("expected ?after=SEQ (a seq, 0 for all): {}", e.body_text()))
    })?;
    let after = q.after.unwrap_or(0).min(i64::MAX as u64 - 1);
    live_share(&hub, &id).await?;
    Ok(ws.on_upgrade(move |socket| follow(hub, id, after + 1, socket)))
}

fn thread_item(share: &Share) -> String {
    json!({ "type": "thread", "title": share.title, "shared": share.shared }).to_string()
}

/// What one read of the store found for a share, handed to every reader
/// woken by the same change: 500 viewers of a share cost one read per sync,
/// not 500.
struct Snapshot {
    /// When the read began: it saw every change bumped before then.
    began: Instant,
    share: Option<Share>,
    /// The thread item, as sent.
    thread: Utf8Bytes,
    /// Events from seq `from` on (at most a page), as sent.
    from: u64,
    events: Vec<(u64, Utf8Bytes)>,
}

/// The last snapshot of one share, shared by its readers (each holds the Arc).
type Slot = Arc<Last>;
type Last = tokio::sync::Mutex<Option<Arc<Snapshot>>>;

/// The slots of the shares being read, by (hub, share id); an entry goes
/// when the last reader of its share leaves.
static SLOTS: LazyLock<Mutex<Slots>> = LazyLock::new(Mutex::default);
type Slots = HashMap<(usize, String), Weak<Last>>;

fn slot_of<S>(hub: &Arc<Hub<S>>, id: &str) -> Slot {
    let key = (Arc::as_ptr(hub) as usize, id.to_owned());
    let mut slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(slot) = slots.get(&key).and_then(Weak::upgrade) {
        return slot;
    }
    slots.retain(|_, w| w.strong_count() > 0);
    let slot = Slot::default();
    slots.insert(key, Arc::downgrade(&slot));
    slot
}

/// A snapshot that saw every change before `woke` and holds the events from
/// `next_seq` on (if there are any): the last one if it does, else a new read.
async fn snapshot<S: HubStore>(
    hub: &Hub<S>,
    id: &str,
    slot: &Slot,
    woke: Instant,
    next_seq: u64,
) -> Result<Arc<Snapshot>, StoreError> {
    let mut last = slot.lock().await;
    if let Some(s) = last.as_ref().filter(|s| s.began > woke && s.from <= next_seq) {
        return Ok(Arc::clone(s));
    }
    let began = Instant::now();
    let share = hub.store.get(id).await?;
    let mut events = Vec::new();
    if share.as_ref().is_some_and(|s| s.shared && next_seq < s.next_seq) {
        for e in hub.store.events(id, next_seq, LIVE_PAGE).await? {
            let item = format!(r#"{{"type":"event","seq":{},"event":{}}}"#, e.seq, e.json);
            events.push((e.seq, Utf8Bytes::from(item)));
        }
    }
    let thread = share.as_ref().map(thread_item).unwrap_or_default().into();
    let snap = Arc::new(Snapshot { began, share, thread, from: next_seq, events });
    *last = Some(Arc::clone(&snap));
    Ok(snap)
}

/// Sends a share's items to one reader: the thread, the stored events from
/// `next_seq` on, then whatever is synced later, until the reader leaves or
/// the share ends.
async fn follow<S: HubStore>(hub: Arc<Hub<S>>, id: String, mut next_seq: u64, mut socket: WebSocket) {
    // Watch before reading, so a sync between the read and the wait still wakes us.
    let mut changes = hub.live.watch(&id);
    let slot = slot_of(&hub, &id);
    let mut sent_thread: Option<Utf8Bytes> = None;
    let mut heard = Instant::now();
    let mut pinged: Option<Instant> = None;
    loop {
        changes.borrow_and_update();
        let woke = Instant::now();
        let snap = match snapshot(&hub, &id, &slot, woke, next_seq).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, share = %id, "reader could not read the share");
                return;
            }
        };
        let share = match &snap.share {
            Some(s) if !is_expired(s, now_millis()) => s,
            Some(_) => return close(socket, "expired", "the share has expired").await,
            None => return close(socket, "deleted", "the share was deleted").await,
        };
        if sent_thread.as_ref() != Some(&snap.thread) {
            if !feed(&mut socket, snap.thread.clone()).await {
                return;
            }
            sent_thread = Some(snap.thread.clone());
        }
        // While its author has sharing off, a share shows nothing more than
        // that (the events resume once it is on again).
        if share.shared {
            if snap.from <= next_seq {
                let from = next_seq;
                for (seq, item) in snap.events.iter().filter(|(seq, _)| *seq >= from) {
                    if !feed(&mut socket, item.clone()).await {
                        return;
                    }
                    next_seq = seq + 1;
                }
            }
            // Behind the snapshot, or past its page: this reader reads on by itself.
            let mut more = next_seq < share.next_seq;
            while more {
                let page = match hub.store.events(&id, next_seq, LIVE_PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, share = %id, "reader could not read events");
                        return;
                    }
                };
                more = page.len() == LIVE_PAGE;
                for e in page {
                    let item = format!(r#"{{"type":"event","seq":{},"event":{}}}"#, e.seq, e.json);
                    if !feed(&mut socket, item.into()).await {
                        return;
                    }
                    next_seq = e.seq + 1;
                }
            }
        }
        if !flush(&mut socket).await {
            return;
        }
        // Nothing bumps a share when its time runs out: wake then, to say so.
        let expires_in = share.expires_at.map(|at| Duration::from_millis((at - now_millis()).max(0) as u64 + 1));
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(expires_in.unwrap_or(Duration::MAX)), if expires_in.is_some() => {}
            msg = socket.recv() => match msg {
                // Readers have nothing to say; a close or an error ends it.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // Pongs included: the reader is there.
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = tokio::time::sleep(PING_EVERY) => {
                // The last ping, at least this long ago, got no answer.
                if pinged.is_some_and(|at| heard < at) {
                    tracing::debug!(share = %id, "dropping a live reader that answers nothing");
                    return;
                }
                let ping = tokio::time::timeout(SEND_PATIENCE, socket.send(Message::Ping(Default::default())));
                if !matches!(ping.await, Ok(Ok(()))) {
                    return;
                }
                pinged = Some(Instant::now());
            }
        }
    }
}

/// Queues one item (what a wake brings leaves in one write, at [`flush`]);
/// false if the reader is gone or took nothing for [`SEND_PATIENCE`].
async fn feed(socket: &mut WebSocket, item: Utf8Bytes) -> bool {
    matches!(tokio::time::timeout(SEND_PATIENCE, socket.feed(Message::Text(item))).await, Ok(Ok(())))
}

/// Sends what was queued; false as for [`feed`].
async fn flush(socket: &mut WebSocket) -> bool {
    matches!(tokio::time::timeout(SEND_PATIENCE, socket.flush()).await, Ok(Ok(())))
}

/// Tells the reader the share ended (`{"type": why}`), then closes with
/// [`CLOSE_ENDED`] and `reason`.
async fn close(mut socket: WebSocket, why: &str, reason: &str) {
    let goodbye = async {
        let _ = socket.send(Message::text(json!({ "type": why }).to_string())).await;
        let frame = CloseFrame { code: CLOSE_ENDED, reason: reason.into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
        // Give the close frame a moment to leave before the socket drops.
        let _ = socket.recv().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), goodbye).await;
}
