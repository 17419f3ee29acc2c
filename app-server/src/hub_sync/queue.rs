//! One linked thread's sync queue: wait for committed events, let a second's
//! worth gather ([`DEBOUNCE`]), send everything after the hub's `ackedSeq`
//! (redacted unless the link says not to), and record the new `ackedSeq` once
//! the hub has it. The queue is the thread's log itself: what is pending is
//! simply what lies after `ackedSeq`, so nothing is held in memory, a hub
//! that is down costs nothing but retries (with backoff), and a restarted
//! app-server resumes from the saved `ackedSeq` with no gap and no duplicate
//! (the hub also skips seqs it has, and answers a gap with the seq it wants).
//!
//! Events come from the engine's store, woken by the thread's live feed
//! (`wait_committed_past`): the queue never holds a follower's ring.

use std::time::Duration;

use serde_json::Value;
use tandem_protocol::Position;
use tandem_protocol::hub::SyncItem;
use tandem_protocol::methods::ThreadEventsParams;

use super::HubSync;
use super::uplink::Refusal;

/// How long events gather before a batch leaves.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// The first wait after a failed sync; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Most events in one sync request.
const BATCH_EVENTS: usize = tandem_protocol::MAX_PAGE;

/// Bytes of events after which a batch is closed (a hub takes 8 MiB a request).
const BATCH_BYTES: usize = 4 << 20;

/// Syncs `thread_id` until it is unlinked or the hub ends the share.
pub(super) async fn run(sync: HubSync, thread_id: String) {
    let engine = sync.engine().clone();
    let Ok(handle) = engine.thread(&thread_id) else {
        sync.stop(&thread_id, "refused", "the thread no longer exists here".into());
        return;
    };
    let mut meta_sent: Option<(Option<String>, bool)> = None;
    let mut backoff = MIN_BACKOFF;
    // Whether to let events gather before the next batch: after a wake-up or
    // a sync (so a streaming turn goes a second at a time, not per commit),
    // but not at start, after a failure, or while catching up in full batches.
    let mut settle = false;
    loop {
        let Some(link) = sync.record(&thread_id) else { return };
        if link.stopped.is_some() {
            return;
        }
        let (title, shared) = {
            let st = handle.lock();
            (st.title.clone(), st.shared)
        };
        let committed = handle.committed_seq();
        let title = if link.redact { title.map(|t| crate::redact::secrets(&t).into_owned()) } else { title };
        let meta = (title, shared);
        // A thread that is not shared right now tells the hub so, and sends
        // no events until it is shared again.
        let events_due = shared && committed > link.acked_seq;
        if meta_sent.as_ref() == Some(&meta) && !events_due {
            sync.set_status(&thread_id, None);
            handle.wait_committed_past(committed).await;
            settle = true;
            continue;
        }
        if settle {
            settle = false;
            tokio::time::sleep(DEBOUNCE).await;
            continue; // look again: more may have come
        }
        let mut items = vec![SyncItem::Thread { title: meta.0.clone(), shared }];
        let mut last = link.acked_seq;
        let mut full = false;
        if events_due {
            let params = ThreadEventsParams {
                thread_id: thread_id.clone(),
                from: Some(Position::Seq(link.acked_seq + 1)),
                limit: Some(BATCH_EVENTS),
            };
            let page = match engine.thread_events(params).await {
                Ok(p) => p,
                Err(e) => {
                    sync.set_status(&thread_id, Some(format!("cannot read the thread: {}", e.message)));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let mut bytes = 0;
            full = page.next.is_some();
            let mut events = Vec::new();
            for raw in page.events {
                bytes += raw.get().len();
                let Ok(event) = serde_json::from_str::<Value>(raw.get()) else { break };
                let Some(seq) = event.get("seq").and_then(Value::as_u64) else { break };
                events.push((seq, event));
                last = seq;
                if bytes > BATCH_BYTES {
                    full = true;
                    break;
                }
            }
            // Coalesce before redacting, so a key streamed across deltas is
            // seen whole (within a batch).
            coalesce_deltas(&mut events);
            for (seq, mut event) in events {
                if link.redact {
                    crate::redact::secrets_in_json(&mut event);
                }
                items.push(SyncItem::Event { seq, event });
            }
        }
        match sync.uplink().sync(&link, items).await {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                settle = !full;
                meta_sent = Some(meta);
                if last > link.acked_seq {
                    sync.ack(&thread_id, last).await;
                }
                tracing::debug!(thread = %thread_id, acked = last, "synced to the hub");
            }
            Err(Refusal::Gap(expected)) => {
                let resume = expected.saturating_sub(1);
                if resume > committed {
                    sync.stop(
                        &thread_id,
                        "refused",
                        format!("the hub has events up to {resume}, this thread only {committed}"),
                    );
                    return;
                }
                tracing::info!(thread = %thread_id, expected, "the hub asks to resend from an earlier seq");
                sync.ack(&thread_id, resume).await;
            }
            Err(refusal) => match refusal.stops() {
                Some(state) => {
                    tracing::warn!(thread = %thread_id, %refusal, "hub sync stopped");
                    sync.stop(&thread_id, state, refusal.to_string());
                    return;
                }
                None => {
                    tracing::info!(thread = %thread_id, %refusal, retry_in = ?backoff, "hub sync failed; retrying");
                    sync.set_status(&thread_id, Some(refusal.to_string()));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
        }
    }
}

const DELTA: &str = "item/agentMessage/delta";

/// Moves the text of each run of consecutive deltas of one item into the
/// run's first delta, leaving the others empty. Every seq stays (the hub's
/// log has no holes and the wire does not change), concatenating the deltas
/// gives the same text, and the redaction that follows sees the run's text
/// whole instead of a key cut in pieces.
pub(super) fn coalesce_deltas(events: &mut [(u64, Value)]) {
    let mut i = 0;
    while i < events.len() {
        let Some(item) = delta_item(&events[i].1) else {
            i += 1;
            continue;
        };
        let mut end = i + 1;
        while end < events.len() && delta_item(&events[end].1) == Some(item.clone()) {
            end += 1;
        }
        if end - i > 1 {
            let mut text = String::new();
            for (_, e) in &mut events[i..end] {
                if let Some(Value::String(d)) = e.get_mut("delta") {
                    text.push_str(&std::mem::take(d));
                }
            }
            events[i].1["delta"] = Value::String(text);
        }
        i = end;
    }
}

fn delta_item(event: &Value) -> Option<String> {
    if event.get("type")?.as_str()? != DELTA || !event.get("delta")?.is_string() {
        return None;
    }
    Some(event.get("itemId")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delta(seq: u64, item: &str, text: &str) -> (u64, Value) {
        (seq, json!({"seq": seq, "type": DELTA, "itemId": item, "delta": text}))
    }

    #[test]
    fn runs_of_deltas_move_into_their_first_and_keep_every_seq() {
        let mut events = vec![
            (1, json!({"seq": 1, "type": "item/started"})),
            delta(2, "a", "Hel"),
            delta(3, "a", "lo "),
            delta(4, "a", "you"),
            delta(5, "b", "other"),
            (6, json!({"seq": 6, "type": "item/completed"})),
            delta(7, "a", "late"),
        ];
        coalesce_deltas(&mut events);
        let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
        let texts: Vec<&str> = events.iter().filter_map(|e| e.1["delta"].as_str()).collect();
        assert_eq!(texts, ["Hello you", "", "", "other", "late"]);
    }

    #[test]
    fn a_key_streamed_in_pieces_is_redacted_once_coalesced() {
        let mut events = vec![delta(1, "a", "use AKIAIOSF"), delta(2, "a", "ODNN7EXAMPLE now")];
        coalesce_deltas(&mut events);
        for (_, e) in &mut events {
            crate::redact::secrets_in_json(e);
        }
        assert_eq!(events[0].1["delta"], "use [redacted:aws] now");
        assert_eq!(events[1].1["delta"], "");
    }
}
