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
//!
//! An agent message still streaming is redacted in parts, one per batch, so
//! a batch ends where no secret can straddle the cut: the deltas whose text
//! could be the start of one wait for the next batch ([`sendable`]). Only
//! time moves through `tokio::time`, so tests run the queue on a paused clock.
//!
//! Nothing the hub refuses about a batch's content stops the link (issue 18):
//! an event too big for a request goes cut to fit ([`fit`]), a batch the hub
//! finds too big (or otherwise refuses, 4xx) is sent again in halves, and a
//! single event it still refuses goes as a placeholder of the same seq. Only
//! when the hub refuses even that placeholder alone is the share itself
//! refused (full, for a 413), and the link stops.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tandem_protocol::Position;
use tandem_protocol::hub::SyncItem;
use tandem_protocol::methods::{ThreadEventsParams, ThreadReadParams};

use super::fit::{self, Fit, MAX_EVENTS_BYTES};
use super::uplink::Refusal;
use super::{Cut, HubSync, Phase};

/// How long events gather before a batch leaves.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// The first wait after a failed sync; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Most events in one sync request.
const BATCH_EVENTS: usize = tandem_protocol::MAX_PAGE;

/// Bytes of events (as logged) a batch is closed before reaching, unless it
/// is one event: half of what a request may carry
/// ([`fit::MAX_EVENTS_BYTES`]), leaving room for what redaction adds.
const BATCH_BYTES: usize = 4 << 20;

/// Syncs `thread_id` until it is unlinked or the hub ends the share.
pub(super) async fn run(sync: HubSync, thread_id: String) {
    let engine = sync.engine().clone();
    if engine.committed_seq(&thread_id).is_err() {
        sync.stop(&thread_id, "refused", "the thread no longer exists here".into());
        return;
    }
    let mut meta_sent: Option<(Option<String>, bool)> = None;
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0;
    // Whether to let events gather before the next batch: after a wake-up or
    // a sync (so a streaming turn goes a second at a time, not per commit),
    // but not at start, after a failure, or while catching up in full batches.
    let mut settle = false;
    // The last seq read by a sync that held deltas back: nothing is due
    // until something after it is committed.
    let mut held_upto = 0;
    // Messages whose open secret had to go out in parts (see below): their
    // further deltas go blank until the message ends, whose `item/completed`
    // carries the whole text, redacted whole.
    let mut open_secrets: Vec<String> = Vec::new();
    // Most events the next batch reads: halved when the hub refuses a batch
    // (or it comes out too big once redacted), doubled back after a sync.
    let mut cap = BATCH_EVENTS;
    // An event the hub refused alone, and why: it goes as a placeholder.
    let mut withhold: Option<(u64, String)> = None;
    loop {
        let Some(link) = sync.record(&thread_id) else { return };
        if link.stopped.is_some() {
            return;
        }
        let Ok(thread) = engine.thread_read(ThreadReadParams { thread_id: thread_id.clone() }) else { return };
        let (title, shared) = (thread.title, thread.shared);
        let Ok(committed) = engine.committed_seq(&thread_id) else { return };
        let title = if link.redact { title.map(|t| tandem_engine::redact::secrets(&t).into_owned()) } else { title };
        // A hub refuses a longer title (400), which no split would help.
        let meta = (fit::title(title), shared);
        // A thread that is not shared right now tells the hub so, and sends
        // no events until it is shared again.
        let events_due = shared && committed > link.acked_seq.max(held_upto);
        if meta_sent.as_ref() == Some(&meta) && !events_due {
            sync.set_status(&thread_id, None);
            sync.set_phase(&thread_id, Phase::Idle);
            let _ = engine.wait_committed_past(&thread_id, committed).await;
            settle = true;
            continue;
        }
        if settle {
            settle = false;
            sync.set_phase(&thread_id, Phase::Gathering);
            tokio::time::sleep(DEBOUNCE).await;
            continue; // look again: more may have come
        }
        let mut items = vec![SyncItem::Thread { title: meta.0.clone(), shared }];
        let mut last = link.acked_seq;
        let mut full = false;
        // Set when deltas were held back: the last seq read.
        let mut held = None;
        // What this batch does to the open secrets, kept only once the hub
        // has the batch: a batch refused and read again smaller may no
        // longer hold the `item/completed` that ended one, and forgetting it
        // anyway would send the rest of that secret's message unblanked.
        let mut open_after = open_secrets.clone();
        // The events of this batch sent truncated or as placeholders.
        let mut cuts: Vec<(u64, Cut)> = Vec::new();
        let mut placeholders = 0;
        let mut events_bytes = 0;
        if events_due {
            let params = ThreadEventsParams {
                thread_id: thread_id.clone(),
                from: Some(Position::Seq(link.acked_seq + 1)),
                limit: Some(cap),
            };
            let page = match engine.thread_events(params).await {
                Ok(p) => p,
                Err(e) => {
                    sync.set_status(&thread_id, Some(format!("cannot read the thread: {}", e.message)));
                    failures += 1;
                    sync.set_phase(&thread_id, Phase::Retrying { failures, wait: backoff });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let mut bytes = 0;
            full = page.next.is_some();
            let mut events = Vec::new();
            for raw in page.events {
                // Closed before the event that would pass the mark, so that a
                // big event goes alone rather than on top of a full batch.
                let len = raw.get().len();
                if !events.is_empty() && bytes + len > BATCH_BYTES {
                    full = true;
                    break;
                }
                bytes += len;
                let Ok(event) = serde_json::from_str::<Value>(raw.get()) else { break };
                let Some(seq) = event.get("seq").and_then(Value::as_u64) else { break };
                events.push((seq, event));
            }
            if link.redact {
                let keep = sendable(&events);
                if keep == 0 && full {
                    // One message's open secret filling a whole batch (a
                    // private key streamed in more than a page of deltas):
                    // holding it back would hold the queue forever. It goes
                    // with its messages blank until they end (below).
                    tracing::warn!(thread = %thread_id, "a batch of nothing but a secret still streaming; its message goes blank until it ends (its item/completed carries the whole text, redacted)");
                    for (_, e) in &events {
                        if let Some(item) = delta_item(e)
                            && !open_after.contains(&item)
                        {
                            open_after.push(item);
                        }
                    }
                } else if keep < events.len() {
                    held = events.last().map(|e| e.0);
                    events.truncate(keep);
                }
            }
            if !open_after.is_empty() {
                blank_open_secrets(&mut events, &mut open_after);
            }
            last = events.last().map_or(link.acked_seq, |e| e.0);
            // Coalesce before redacting, so a key streamed across deltas is
            // seen whole (and across batches, thanks to `sendable`).
            coalesce_deltas(&mut events);
            for (seq, mut event) in events {
                if link.redact {
                    tandem_engine::redact::secrets_in_json(&mut event);
                }
                // Cut after redaction: what is cut is redacted text, and
                // cutting only removes, so it never shows more of a secret.
                let event = match withhold.as_ref().filter(|(at, _)| *at == seq) {
                    Some((_, why)) => {
                        let original = fit::json_len(&event);
                        cuts.push((seq, Cut::Withheld { original, why: why.clone() }));
                        fit::withheld(&event, original, why)
                    }
                    None => match fit::fit(&mut event, MAX_EVENTS_BYTES) {
                        Fit::Whole => event,
                        Fit::Cut { original } => {
                            tracing::warn!(thread = %thread_id, seq, original, "an event too big for the hub goes truncated");
                            cuts.push((seq, Cut::Truncated { original }));
                            event
                        }
                        Fit::TooBig { original } => {
                            let why = format!(
                                "{original} bytes, over the hub's {MAX_EVENTS_BYTES}-byte limit, with no long text to cut"
                            );
                            tracing::warn!(thread = %thread_id, seq, original, "an event too big for the hub goes withheld");
                            cuts.push((seq, Cut::Withheld { original, why: why.clone() }));
                            fit::withheld(&event, original, &why)
                        }
                    },
                };
                if event.get("type").and_then(Value::as_str) == Some(tandem_protocol::hub::WITHHELD_EVENT) {
                    placeholders += 1;
                }
                events_bytes += fit::json_len(&event);
                items.push(SyncItem::Event { seq, event });
            }
        }
        let sent = items.len() - 1;
        if sent > 1 && events_bytes > MAX_EVENTS_BYTES {
            // Redaction made the batch bigger than a request may be (a marker
            // is longer than what it replaces): read fewer events again.
            cap = (sent / 2).max(1);
            tracing::info!(thread = %thread_id, events = sent, bytes = events_bytes, "a batch too big once redacted; sending it in halves");
            continue;
        }
        if items.len() == 1 && meta_sent.as_ref() == Some(&meta) {
            // All that is new is held back: nothing to send until more comes.
            held_upto = held.unwrap_or(0);
            settle = true;
            continue;
        }
        sync.set_phase(&thread_id, Phase::Sending);
        match sync.uplink().sync(&link, items).await {
            Ok(()) => {
                held_upto = held.unwrap_or(0);
                backoff = MIN_BACKOFF;
                failures = 0;
                settle = !full;
                meta_sent = Some(meta);
                open_secrets = open_after;
                cap = (cap * 2).min(BATCH_EVENTS);
                withhold = None;
                if !cuts.is_empty() {
                    sync.note_cuts(&thread_id, &cuts);
                }
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
                held_upto = 0;
                sync.ack(&thread_id, resume).await;
            }
            // The hub will not take something in this batch (too big, or
            // refused as it is): find what, sending less, instead of
            // retrying the same batch forever or stopping the link.
            Err(refusal) if refusal.about_content() && (sent > 1 || (sent == 1 && placeholders == 0)) => {
                held_upto = 0;
                if sent > 1 {
                    cap = (sent / 2).max(1);
                    tracing::warn!(thread = %thread_id, %refusal, events = sent, "the hub refused a batch; sending it in halves");
                } else {
                    let seq = last;
                    tracing::warn!(thread = %thread_id, %refusal, seq, "the hub refused an event; a placeholder goes in its place");
                    let why = if link.redact {
                        tandem_engine::redact::secrets(&refusal.to_string()).into_owned()
                    } else {
                        refusal.to_string()
                    };
                    withhold = Some((seq, why));
                }
            }
            Err(refusal) => match refusal.stops() {
                Some(state) => {
                    tracing::warn!(thread = %thread_id, %refusal, "hub sync stopped");
                    sync.stop(&thread_id, state, refusal.to_string());
                    return;
                }
                None => {
                    held_upto = 0;
                    tracing::info!(thread = %thread_id, %refusal, retry_in = ?backoff, "hub sync failed; retrying");
                    sync.set_status(&thread_id, Some(refusal.to_string()));
                    failures += 1;
                    sync.set_phase(&thread_id, Phase::Retrying { failures, wait: backoff });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
        }
    }
}

const DELTA: &str = "item/agentMessage/delta";

/// Moves the text of every delta of an item into the item's first delta of
/// the batch, leaving the others empty (even with other events between
/// them). Every seq stays (the hub's log has no holes and the wire does not
/// change), concatenating an item's deltas gives the same text, and the
/// redaction that follows sees the batch's text of each message whole
/// instead of a key cut in pieces.
pub(super) fn coalesce_deltas(events: &mut [(u64, Value)]) {
    let mut first: HashMap<String, usize> = HashMap::new();
    for i in 0..events.len() {
        let Some(item) = delta_item(&events[i].1) else { continue };
        let Some(&at) = first.get(&item) else {
            first.insert(item, i);
            continue;
        };
        let moved = match events[i].1.get_mut("delta") {
            Some(Value::String(d)) => std::mem::take(d),
            _ => continue,
        };
        if let Some(Value::String(text)) = events[at].1.get_mut("delta") {
            text.push_str(&moved);
        }
    }
}

/// How many of `events` (read after `ackedSeq`, in seq order) can go now:
/// all but the deltas of a message still streaming from where its text in
/// this batch could be the start of a secret ([`tandem_engine::redact::settled_len`],
/// cutting only between deltas), and every event after the first of those.
///
/// Why this keeps "no gap, no duplicate": what is held back is simply not
/// sent, so `ackedSeq` stops before it, and the next batch reads it again
/// from the log with what came since and redacts that text whole. What went
/// before ended where no secret can straddle the cut, so no key is ever sent
/// half in one batch and half in the next. A message is finished (nothing
/// held) once its `item/completed` or its turn's `turn/completed` is in the
/// batch.
pub(super) fn sendable(events: &[(u64, Value)]) -> usize {
    let mut keep = events.len();
    let mut seen: Vec<String> = Vec::new();
    for (i, (_, event)) in events.iter().enumerate() {
        let Some(item) = delta_item(event) else { continue };
        if seen.contains(&item) {
            continue;
        }
        let turn = event.get("turnId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let deltas: Vec<usize> =
            (i..events.len()).filter(|&j| delta_item(&events[j].1).as_deref() == Some(item.as_str())).collect();
        seen.push(item);
        let after = deltas.last().map_or(i, |&j| j + 1);
        if events[after..].iter().any(|(_, e)| finishes(e, &seen[seen.len() - 1], &turn)) {
            continue;
        }
        let mut text = String::new();
        let mut cuts = vec![0];
        for &j in &deltas {
            text.push_str(events[j].1.get("delta").and_then(Value::as_str).unwrap_or_default());
            cuts.push(text.len());
        }
        let settled = tandem_engine::redact::settled_len(&text, &cuts);
        let going = cuts[1..].iter().take_while(|&&end| end <= settled).count();
        if let Some(&first_held) = deltas.get(going) {
            keep = keep.min(first_held);
        }
    }
    keep
}

/// Blanks the deltas of `open` messages (a secret of theirs went out in
/// parts: what follows could be its middle, which no rule would recognise),
/// and forgets a message once it ends in `events` (its `item/completed`, or
/// any `turn/completed`, which ends every message of the turn).
fn blank_open_secrets(events: &mut [(u64, Value)], open: &mut Vec<String>) {
    for (_, event) in events.iter_mut() {
        if let Some(item) = delta_item(event)
            && open.contains(&item)
        {
            event["delta"] = Value::String(String::new());
            continue;
        }
        match event.get("type").and_then(Value::as_str) {
            Some("item/completed") => {
                let id = event.pointer("/item/id").and_then(Value::as_str).unwrap_or_default();
                open.retain(|i| i != id);
            }
            Some("turn/completed") => open.clear(),
            _ => {}
        }
    }
}

/// Whether `event` ends the message `item` of turn `turn`.
fn finishes(event: &Value, item: &str, turn: &str) -> bool {
    match event.get("type").and_then(Value::as_str) {
        Some("item/completed") => event.pointer("/item/id").and_then(Value::as_str) == Some(item),
        Some("turn/completed") => event.get("turnId").and_then(Value::as_str) == Some(turn),
        _ => false,
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
    fn a_secret_sent_in_parts_leaves_the_rest_of_its_message_blank_until_it_ends() {
        let mut open = vec!["a".to_owned()];
        let mut events = vec![
            delta(10, "a", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            delta(11, "b", "other text"),
            delta(12, "a", "-----END PRIVATE KEY-----"),
            (13, json!({"seq": 13, "type": "item/completed", "item": {"id": "a", "text": "whole"}})),
            delta(14, "a", "after"),
        ];
        blank_open_secrets(&mut events, &mut open);
        let texts: Vec<&str> = events.iter().filter_map(|(_, e)| e.get("delta").and_then(Value::as_str)).collect();
        assert_eq!(texts, ["", "other text", "", "after"]);
        assert!(open.is_empty());
        let mut open = vec!["a".to_owned(), "c".to_owned()];
        let mut events = vec![(20, json!({"seq": 20, "type": "turn/completed", "turnId": "t"}))];
        blank_open_secrets(&mut events, &mut open);
        assert!(open.is_empty());
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
        assert_eq!(texts, ["Hello youlate", "", "", "other", ""], "an item's deltas, even apart, go into its first");
    }

    fn ends(seq: u64, kind: &str, item: &str) -> (u64, Value) {
        (seq, json!({"seq": seq, "type": kind, "turnId": "u", "item": {"id": item}}))
    }

    #[test]
    fn deltas_that_may_start_a_secret_wait_unless_the_message_is_finished() {
        let mut events = vec![
            (1, json!({"seq": 1, "type": "turn/started", "turnId": "u"})),
            delta(2, "a", "deploy "),
            delta(3, "a", "with "),
            delta(4, "a", "AKIAIOSF"),
        ];
        for e in &mut events[1..] {
            e.1["turnId"] = json!("u");
        }
        assert_eq!(sendable(&events), 3, "the last delta may be half a key");
        // Anything after a held delta waits too: seqs go in order.
        events.push(delta(5, "b", "other "));
        events[4].1["turnId"] = json!("u");
        assert_eq!(sendable(&events), 3);
        let mut done = events.clone();
        done.push(ends(6, "item/completed", "a"));
        assert_eq!(sendable(&done), 6, "b is still open, but its text ends with a word");
        let mut turn_done = events.clone();
        turn_done.push(ends(6, "turn/completed", "-"));
        assert_eq!(sendable(&turn_done), 6);
        let plain = vec![delta(1, "a", "all "), delta(2, "a", "words ")];
        assert_eq!(sendable(&plain), 2);
    }

    #[test]
    fn a_key_streamed_in_pieces_is_redacted_once_coalesced() {
        let mut events = vec![delta(1, "a", "use AKIAIOSF"), delta(2, "a", "ODNN7EXAMPLE now")];
        coalesce_deltas(&mut events);
        for (_, e) in &mut events {
            tandem_engine::redact::secrets_in_json(e);
        }
        assert_eq!(events[0].1["delta"], "use [redacted:aws] now");
        assert_eq!(events[1].1["delta"], "");
    }
}
