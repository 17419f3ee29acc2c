//! The hub, measured: sync throughput from an app-server to a hub (one long
//! turn of the echo agent on a linked thread, timed from `turn/start` until
//! a viewer's poll WebSocket has delivered the turn's last event) and viewer
//! latency (one event synced over HTTP, timed until a viewer's poll has it),
//! on a single SQLite hub and on two replicas sharing one PostgreSQL (the
//! sender on replica A, the viewer on replica B, so every figure crosses
//! replicas through LISTEN/NOTIFY). All servers are the real `tandem` binary
//! on this machine (loopback, fresh `TANDEM_HOME`s); PostgreSQL is a cluster
//! the bench starts itself (`tests/common/pg.rs`).
//!
//! Run: `cargo bench -p tandem --bench hub`. Nothing is asserted: this is a
//! measurement, not a test. The throughput figure includes the 1 s debounce
//! of the last, partial batch.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;

const WORDS: usize = 50_000;
/// Single events synced one after another for the latency figure.
const PINGS: usize = 300;

mod common;
#[path = "../tests/common/pg.rs"]
mod pg;

use common::{tandem, tandem_with};

/// One HTTP/1.1 POST with a JSON body; the status and body.
fn post(addr: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").context("an HTTP answer")?;
    let status = head.split_whitespace().nth(1).context("a status")?.parse()?;
    Ok((status, serde_json::from_str(rest.trim()).unwrap_or(Value::Null)))
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn poll(addr: &str, id: &str) -> Result<Ws> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(tungstenite::client(format!("ws://{addr}/api/share/{id}/poll"), stream)?.0)
}

/// Reads the poll until the event with `seq`.
fn until_seq(ws: &mut Ws, seq: u64) -> Result<()> {
    loop {
        let msg = ws.read()?;
        let Ok(text) = msg.to_text() else { continue };
        let item: Value = serde_json::from_str(text)?;
        if item["seq"].as_u64() == Some(seq) {
            return Ok(());
        }
    }
}

/// Events per second from a long echo turn on a thread linked to
/// `sender`, until the viewer's poll on `viewer` has its last event.
fn sync_throughput(sender: &str, viewer: &str) -> Result<String> {
    let home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let (_server, server) = common::app_server(home.path(), &[])?;
    let thread = tandem(home.path(), &["share", "new", "--server", &server])?;
    let url = tandem(
        home.path(),
        &["share", "link", "--thread", &thread, "--hub", &format!("http://{sender}"), "--server", &server],
    )?;
    let id = url.rsplit('/').next().context("share id")?.to_owned();

    let prompt: String = (0..WORDS).map(|i| format!("w{i} ")).collect();
    let start = Instant::now();
    tandem_with(
        home.path(),
        &["share", "post", "--thread", &thread, "--prompt", "-", "--server", &server],
        prompt.trim_end(),
    )?;
    let posted = start.elapsed();
    let events: Vec<Value> =
        tandem(home.path(), &["share", "get", "--thread", &thread, "--json", "--server", &server])?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
    let last = events.last().and_then(|e| e["seq"].as_u64()).context("no events")?;
    until_seq(&mut poll(viewer, &id)?, last)?;
    let synced = start.elapsed();
    Ok(format!(
        "{last} events (a {WORDS}-word turn): turn done in {:.2} s, on the viewer after {:.2} s = {:.0} events/s end to end",
        posted.as_secs_f64(),
        synced.as_secs_f64(),
        last as f64 / synced.as_secs_f64()
    ))
}

/// From one event's sync on `sender` until a viewer's poll on `viewer` has
/// it, [`PINGS`] times in a row: median, p99 and max.
fn viewer_latency(sender: &str, viewer: &str) -> Result<String> {
    let (status, created) = post(sender, "/api/share", &serde_json::json!({ "threadId": "bench" }))?;
    anyhow::ensure!(status == 200, "create: {status} {created}");
    let id = created["id"].as_str().context("id")?.to_owned();
    let secret = created["secret"].as_str().context("secret")?.to_owned();
    let mut ws = poll(viewer, &id)?;
    let mut took = Vec::with_capacity(PINGS);
    for seq in 1..=PINGS as u64 {
        let data = serde_json::json!([{ "type": "event", "seq": seq, "event": { "seq": seq, "type": "ping" } }]);
        let start = Instant::now();
        let (status, said) =
            post(sender, &format!("/api/share/{id}/sync"), &serde_json::json!({ "secret": secret, "data": data }))?;
        anyhow::ensure!(status == 200, "sync: {status} {said}");
        until_seq(&mut ws, seq)?;
        took.push(start.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "{PINGS} single-event syncs: median {:.2} ms, p99 {:.2} ms, max {:.2} ms from POST to the viewer",
        ms(took[PINGS / 2]),
        ms(took[PINGS * 99 / 100]),
        ms(took[PINGS - 1])
    ))
}

fn main() -> Result<()> {
    let sqlite_home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let (_sqlite, single) = common::hub(
        sqlite_home.path(),
        &["--database", &format!("sqlite:{}", sqlite_home.path().join("hub.db").display())],
    )?;
    println!("SQLite, one hub: latency: {}", viewer_latency(&single, &single)?);
    println!("SQLite, one hub: sync: {}", sync_throughput(&single, &single)?);

    let cluster = pg::Cluster::start();
    let url = cluster.new_database();
    let (home_a, home_b) = (
        tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?,
        tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?,
    );
    let (_a, a) = common::hub(home_a.path(), &["--database", &url])?;
    let (_b, b) = common::hub(home_b.path(), &["--database", &url])?;
    println!("PostgreSQL, 2 replicas (sync on A, viewer on B): latency: {}", viewer_latency(&a, &b)?);
    println!("PostgreSQL, 2 replicas (sync on A, viewer on B): sync: {}", sync_throughput(&a, &b)?);
    Ok(())
}
