//! The in-memory backend, for a private (LOCAL) session: the same log and the
//! same ordering rules, nothing on disk. Seqs are contiguous from 1, so a seq is
//! an index; timestamps never go backwards, so a time is a binary search.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{LogEntry, RowChange, WriteOp};

#[derive(Default)]
struct MemThread {
    /// `(ts, json)` of seq `i + 1`.
    events: Vec<(String, Box<str>)>,
    /// Seqs of the events a turn outline needs.
    outline: Vec<u64>,
}

/// Every thread's events, behind one lock (writes come from the writer thread).
#[derive(Default)]
pub(super) struct MemLog {
    threads: RwLock<HashMap<String, MemThread>>,
}

impl MemLog {
    pub(super) fn commit(&self, batch: &[WriteOp]) {
        let mut threads = self.threads.write().unwrap_or_else(|p| p.into_inner());
        for op in batch {
            let WriteOp::Event(ev) = op else { continue };
            let thread = threads.entry(ev.thread_id.to_string()).or_default();
            if let RowChange::Create { .. } = ev.row {
                thread.events.clear();
                thread.outline.clear();
            }
            if matches!(ev.kind, "turn/started" | "item/completed") {
                thread.outline.push(ev.seq);
            }
            debug_assert_eq!(thread.events.len() as u64 + 1, ev.seq, "seqs are gapless");
            thread.events.push((ev.ts.clone(), ev.json.clone()));
        }
    }

    pub(super) fn read_page(&self, thread_id: &str, from: u64, limit: usize) -> Vec<LogEntry> {
        let threads = self.threads.read().unwrap_or_else(|p| p.into_inner());
        let Some(t) = threads.get(thread_id) else {
            return Vec::new();
        };
        let start = (from.max(1) - 1) as usize;
        t.events
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, (_, json))| LogEntry { seq: i as u64 + 1, json: json.clone() })
            .collect()
    }

    pub(super) fn read_outline(&self, thread_id: &str) -> Vec<LogEntry> {
        let threads = self.threads.read().unwrap_or_else(|p| p.into_inner());
        let Some(t) = threads.get(thread_id) else { return Vec::new() };
        t.outline.iter().map(|&seq| LogEntry { seq, json: t.events[(seq - 1) as usize].1.clone() }).collect()
    }

    pub(super) fn first_seq_at(&self, thread_id: &str, ts: &str) -> Option<u64> {
        let threads = self.threads.read().unwrap_or_else(|p| p.into_inner());
        let t = threads.get(thread_id)?;
        let i = t.events.partition_point(|(t, _)| t.as_str() < ts);
        (i < t.events.len()).then_some(i as u64 + 1)
    }
}
