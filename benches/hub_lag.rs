//! Sync from an app-server to a hub, both the real `tandem` binary on this
//! machine (loopback, SQLite, fresh `TANDEM_HOME`s), read back through the
//! hub's poll WebSocket as a reader would. Three figures:
//!
//! - **catch-up**: a thread with a 50,000-word echo turn already in its log is
//!   linked; from `share link` until the hub's poll has the last event. Pure
//!   sync: full batches go back to back (no debounce while catching up).
//! - **live**: the same turn posted on a linked thread, from `turn/start`
//!   until the hub has its last event (includes making the turn, and the 1 s
//!   debounce of the last, partial batch).
//! - **lag**: a steady stream (the echo agent at one word per 5 ms) on a
//!   linked thread; for each event, the time from its commit (its `ts`) to
//!   its arrival on the hub's poll: what a reader sees on top of the author.
//!
//! Run: `cargo bench -p tandem --bench hub_lag` (a release build). Nothing is
//! asserted: this is a measurement, not a test.

use std::net::TcpStream;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use serde_json::Value;
use tandem_protocol::time::{now_millis, parse_rfc3339};

mod common;

use common::{Kill, tandem_with};

const WORDS: usize = 50_000;
const LAG_WORDS: usize = 2_000;
const LAG_DELAY_MS: &str = "5";

/// An app-server on a fresh home, and how to reach it.
struct AppServer {
    home: tempfile::TempDir,
    server: String,
    _child: Kill,
}

impl AppServer {
    fn start(extra: &[&str]) -> Result<AppServer> {
        let home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
        let (child, server) = common::app_server(home.path(), extra)?;
        Ok(AppServer { home, server, _child: child })
    }

    /// `tandem share ARGS --server …`.
    fn share(&self, args: &[&str], input: &str) -> Result<String> {
        let mut all = vec!["share"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &self.server]);
        tandem_with(self.home.path(), &all, input)
    }

    fn new_thread(&self) -> Result<String> {
        self.share(&["new"], "")
    }

    /// Links `thread` to the hub at `addr`; the share's id.
    fn link(&self, thread: &str, addr: &str) -> Result<String> {
        let url = self.share(&["link", "--thread", thread, "--hub", &format!("http://{addr}")], "")?;
        Ok(url.rsplit('/').next().context("share id")?.to_owned())
    }

    /// Posts `prompt` and waits for the turn to end.
    fn post(&self, thread: &str, prompt: &str) -> Result<()> {
        self.share(&["post", "--thread", thread, "--prompt", "-"], prompt).map(drop)
    }

    fn last_seq(&self, thread: &str) -> Result<u64> {
        let out = self.share(&["get", "--thread", thread, "--json"], "")?;
        let last = out.lines().last().context("no events")?;
        serde_json::from_str::<Value>(last)?["seq"].as_u64().context("no seq")
    }
}

/// The hub's poll of share `id`.
fn poll(addr: &str, id: &str) -> Result<tungstenite::WebSocket<TcpStream>> {
    let stream = TcpStream::connect(addr)?;
    Ok(tungstenite::client(format!("ws://{addr}/api/share/{id}/poll"), stream)?.0)
}

/// Reads the poll until the event `last`; calls `each` with every event.
fn read_until(ws: &mut tungstenite::WebSocket<TcpStream>, last: u64, mut each: impl FnMut(&Value)) -> Result<()> {
    loop {
        let msg = ws.read()?;
        let Ok(text) = msg.to_text() else { continue };
        let item: Value = serde_json::from_str(text)?;
        if item["type"] == "event" {
            each(&item["event"]);
        }
        if item["seq"].as_u64() == Some(last) {
            return Ok(());
        }
    }
}

fn words(n: usize) -> String {
    let text: String = (0..n).map(|i| format!("w{i} ")).collect();
    text.trim_end().to_owned()
}

fn main() -> Result<()> {
    let hub_home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let (_hub, addr) = common::hub(hub_home.path(), &[])?;

    // catch-up
    let app = AppServer::start(&[])?;
    let thread = app.new_thread()?;
    app.post(&thread, &words(WORDS))?;
    let last = app.last_seq(&thread)?;
    let start = Instant::now();
    let id = app.link(&thread, &addr)?;
    let mut ws = poll(&addr, &id)?;
    read_until(&mut ws, last, |_| {})?;
    let took = start.elapsed().as_secs_f64();
    println!(
        "hub sync, catch-up: {last} events (a {WORDS}-word turn) on the hub {took:.2} s after `share link` = {:.0} events/s",
        last as f64 / took
    );

    // live
    let thread = app.new_thread()?;
    let id = app.link(&thread, &addr)?;
    let start = Instant::now();
    app.post(&thread, &words(WORDS))?;
    let posted = start.elapsed().as_secs_f64();
    let last = app.last_seq(&thread)?;
    let mut ws = poll(&addr, &id)?;
    read_until(&mut ws, last, |_| {})?;
    let synced = start.elapsed().as_secs_f64();
    println!(
        "hub sync, live: {last} events (a {WORDS}-word turn): turn done in {posted:.2} s, on the hub after {synced:.2} s = {:.0} events/s end to end",
        last as f64 / synced
    );
    drop(app);

    // lag
    let app = AppServer::start(&["--echo-delay-ms", LAG_DELAY_MS])?;
    let thread = app.new_thread()?;
    let id = app.link(&thread, &addr)?;
    let before = app.last_seq(&thread)?;
    let mut ws = poll(&addr, &id)?;
    read_until(&mut ws, before, |_| {})?;
    let reader = std::thread::spawn(move || -> Result<Vec<i64>> {
        let mut lags = Vec::new();
        let mut done = false;
        while !done {
            let msg = ws.read()?;
            let Ok(text) = msg.to_text() else { continue };
            let item: Value = serde_json::from_str(text)?;
            let event = &item["event"];
            if let Some(ts) = event["ts"].as_str() {
                lags.push(now_millis() - parse_rfc3339(ts).map_err(|e| anyhow!(e))?);
            }
            done = event["type"] == "turn/completed";
        }
        Ok(lags)
    });
    let start = Instant::now();
    app.post(&thread, &words(LAG_WORDS))?;
    let streamed = start.elapsed().as_secs_f64();
    let mut lags = reader.join().map_err(|_| anyhow!("the poll reader panicked"))??;
    lags.sort_unstable();
    let pct = |p: usize| lags[(lags.len() - 1) * p / 100];
    println!(
        "hub sync, lag: {} events streamed over {streamed:.1} s (a word per {LAG_DELAY_MS} ms): commit to hub poll p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        pct(50),
        pct(90),
        pct(99),
        lags[lags.len() - 1]
    );
    Ok(())
}
