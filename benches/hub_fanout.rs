//! The hub's viewer fan-out, measured: 500 viewers on one share's live
//! WebSocket (what the web viewer opens at `/s/{id}`); the bench syncs batches
//! of events as an app-server would and times each batch from the start of its
//! sync request to each viewer's receipt of its last event (one sample per
//! batch and viewer). The hub is the real `tandem` binary on this machine
//! (loopback, SQLite, a fresh `TANDEM_HOME`).
//!
//! Run: `cargo bench -p tandem --bench hub_fanout`. Nothing is asserted: this
//! is a measurement, not a test.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use serde_json::Value;

mod common;

use common::Kill;

fn main() -> Result<()> {
    fanout()
}

/// `tandem hub` on a free port of loopback, its home a new temp dir: the
/// process (killed on drop), its address and the dir.
fn start_hub() -> Result<(Kill, String, tempfile::TempDir)> {
    let hub_home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let (hub, addr) = common::hub(hub_home.path(), &[])?;
    Ok((hub, addr, hub_home))
}

/// Viewers on the share's live WebSocket.
const VIEWERS: usize = 500;
/// Sync requests measured, and events in each (as the app-server's debounced
/// batches carry several).
const BATCHES: usize = 100;
const BATCH_EVENTS: u64 = 5;
/// Between two syncs (the app-server sends one a second per thread; this is
/// far denser, so that the run is short).
const BATCH_GAP: Duration = Duration::from_millis(200);

fn fanout() -> Result<()> {
    let (hub, addr, _hub_home) = start_hub()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let created: Value = serde_json::from_str(
            &post(&addr, "/api/share", &serde_json::json!({"threadId": "0190c0de-0000-7000-8000-00000000beef"})).await?,
        )?;
        let id = created["id"].as_str().context("share id")?.to_owned();
        let secret = created["secret"].as_str().context("share secret")?.to_owned();
        let event = |seq: u64| {
            serde_json::json!({"type": "event", "seq": seq, "event": {
                "seq": seq, "type": "item/agentMessage/delta", "threadId": "0190c0de-0000-7000-8000-00000000beef",
                "turnId": "t", "itemId": "i", "delta": format!("word{seq} "),
            }})
        };
        let first = serde_json::json!({"secret": secret, "data": [{"type": "thread", "title": "bench", "shared": true}, event(1)]});
        post(&addr, &format!("/api/share/{id}/sync"), &first).await?;

        let last = 1 + BATCHES as u64 * BATCH_EVENTS;
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
        let mut viewers = Vec::new();
        for _ in 0..VIEWERS {
            let url = format!("ws://{addr}/api/share/{id}/live?after=1");
            let ready_tx = ready_tx.clone();
            viewers.push(tokio::spawn(async move { viewer(&url, last, ready_tx).await }));
        }
        for _ in 0..VIEWERS {
            tokio::time::timeout(Duration::from_secs(120), ready.recv()).await?.context("a viewer failed")?;
        }
        let cpu_before = proc_cpu(hub.0.id());
        let mut sent = Vec::new();
        for b in 0..BATCHES as u64 {
            let data: Vec<Value> = (0..BATCH_EVENTS).map(|i| event(2 + b * BATCH_EVENTS + i)).collect();
            let body = serde_json::json!({"secret": secret, "data": data});
            sent.push(Instant::now());
            post(&addr, &format!("/api/share/{id}/sync"), &body).await?;
            tokio::time::sleep(BATCH_GAP).await;
        }
        let mut samples = Vec::with_capacity(VIEWERS * BATCHES);
        for v in viewers {
            let seen = tokio::time::timeout(Duration::from_secs(120), v).await???;
            for (b, at) in sent.iter().enumerate() {
                let last_of_batch = 1 + (b as u64 + 1) * BATCH_EVENTS;
                let got = seen.get(&last_of_batch).context("a viewer missed an event")?;
                samples.push(got.saturating_duration_since(*at));
            }
        }
        let cpu = proc_cpu(hub.0.id()).zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
        samples.sort();
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        println!(
            "hub fan-out: {VIEWERS} live WebSocket viewers, {BATCHES} syncs of {BATCH_EVENTS} events: sync -> viewer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples; hub cpu {})",
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            samples.len(),
            cpu.map_or("?".into(), |c| format!("{:.2} s", c.as_secs_f64())),
        );
        Ok(())
    })
}

/// One viewer: connects, says so once it has the thread item, then notes
/// when each event arrives until `last`.
async fn viewer(
    url: &str,
    last: u64,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<std::collections::HashMap<u64, Instant>> {
    use futures_util::StreamExt as _;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut seen = std::collections::HashMap::new();
    let mut told = false;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        let Ok(text) = msg.to_text() else { continue };
        let now = Instant::now();
        let item: Value = serde_json::from_str(text)?;
        if !told {
            told = true;
            let _ = ready.send(());
        }
        if let Some(seq) = item["seq"].as_u64() {
            seen.insert(seq, now);
            if seq == last {
                return Ok(seen);
            }
        }
    }
    Err(anyhow!("the hub closed a viewer's socket early"))
}

/// `POST path` with a JSON body over a fresh connection; the answer's body
/// (an error unless 200).
async fn post(addr: &str, path: &str, body: &Value) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = body.to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").context("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(anyhow!("{path}: {head} {rest}"));
    }
    Ok(rest.to_owned())
}

/// CPU time (user + system) of a process so far.
fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}
