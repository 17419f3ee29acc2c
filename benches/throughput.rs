//! Throughput and latency of the real `tandem app-server`, driven over its unix
//! socket by raw NDJSON clients (one connection per subscriber).
//!
//! Run: `cargo bench -p tandem --bench throughput` (append `-- fanout`, `burst`,
//! `ingest`, `events` or `web` to run only the scenarios whose name contains it).
//!
//! Every scenario starts a fresh server (`tandem app-server --listen unix`, echo
//! agent, `TANDEM_HOME` a new directory under /tmp) and stops it with SIGTERM at
//! the end. It measures:
//!
//! 1. fan-out: time from writing `turn/start` to each subscriber reading that
//!    turn's `turn/started`, one sample per (turn, subscriber), with 1, 10 and 100
//!    subscribers on one thread;
//! 2. burst: one 20,000-word turn delivered to 100 subscribers, in deliveries/s;
//! 3. ingest: one 300,000-word turn with 10 subscribers reading, in events/s;
//! 4. events: `thread/events` (limit 100) at random positions of a 1,000-event and
//!    a 1,000,000-event thread, per call;
//! 5. web: fan-out as in 1 to 200 subscribers over the `/rpc` WebSocket (the
//!    web viewer's transport, owner token), then to 200 over the unix socket,
//!    on the same server in the same run.
//!
//! Client and server share the machine, so every figure includes the client's
//! own cost of reading; the `cpu:` line under each figure says how much CPU
//! the server and the bench used. Each figure prints its target next to it;
//! nothing is asserted: this is a measurement, not a test.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// How long any single wait of the bench may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// Fan-out: turns measured per configuration, after the warm-up ones.
const FANOUT_TURNS: usize = 300;
const FANOUT_WARMUP: usize = 20;

/// Events of a turn besides its deltas: turn/started, item/started,
/// item/completed, turn/completed.
const TURN_OVERHEAD: usize = 4;

fn main() -> Result<()> {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!(
        "tandem throughput bench ({} cores, server {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env!("CARGO_BIN_EXE_tandem")
    );

    if wanted("fanout") {
        for subs in [1, 10, 100] {
            let server = Server::start()?;
            let lat = rt.block_on(fanout(&server, subs))?;
            let usage = server.stop();
            let target = if subs == 100 {
                verdict(lat.p50 <= Duration::from_micros(1000) && lat.p99 <= Duration::from_micros(2500))
            } else {
                "(target is for 100 subscribers)"
            };
            println!(
                "1 fan-out  {subs:>3} subscribers: turn/start -> turn/started p50 {} p99 {} max {} ({} samples){}   target @100: p50 <= 1 ms, p99 <= 2.5 ms {target}",
                ms(lat.p50),
                ms(lat.p99),
                ms(lat.max),
                lat.samples,
                lat.note,
            );
            println!("{usage}");
        }
    }

    if wanted("burst") {
        let server = Server::start()?;
        let b = rt.block_on(burst(&server, 100, 20_000))?;
        let usage = server.stop();
        let rate = b.deliveries as f64 / b.elapsed.as_secs_f64();
        println!(
            "2 burst    100 subscribers x {} events: {} deliveries in {} = {:.2} M deliveries/s (first subscriber done {}){}   target >= 1.25 M/s {}",
            b.events,
            b.deliveries,
            ms(b.elapsed),
            rate / 1e6,
            ms(b.first_done),
            b.note,
            verdict(rate >= 1.25e6),
        );
        println!("{usage}");
    }

    if wanted("ingest") {
        let server = Server::start()?;
        let i = rt.block_on(ingest(&server, 10, 300_000))?;
        let usage = server.stop();
        let rate = i.events as f64 / i.elapsed.as_secs_f64();
        println!(
            "3 ingest   {} events, 10 subscribers: last subscriber done {} = {:.0}k events/s; poster's own subscriber done {}, turn/start answered {}{}   target >= 100k events/s {}",
            i.events,
            ms(i.elapsed),
            rate / 1e3,
            ms(i.poster_done),
            ms(i.acked),
            i.note,
            verdict(rate >= 100e3),
        );
        println!("{usage}");
    }

    if wanted("events") {
        let server = Server::start()?;
        let e = rt.block_on(events_paging(&server, 1_000, 1_000_000, 2_000))?;
        let usage = server.stop();
        let ratio_mean = e.big.mean.as_secs_f64() / e.small.mean.as_secs_f64();
        let ratio_p50 = e.big.p50.as_secs_f64() / e.small.p50.as_secs_f64();
        println!(
            "4 events   thread/events limit 100, {} calls each: {}-event thread mean {} p50 {}; {}-event thread mean {} p50 {}; ratio big/small mean {ratio_mean:.2} p50 {ratio_p50:.2} (big thread built at {:.0}k events/s){}   target ratio <= 1.5 {}",
            e.calls,
            e.small.events,
            us(e.small.mean),
            us(e.small.p50),
            e.big.events,
            us(e.big.mean),
            us(e.big.p50),
            e.build_rate / 1e3,
            e.note,
            verdict(ratio_mean <= 1.5),
        );
        println!("{usage}");
    }
    if wanted("web") {
        let server = Server::start_with(&["--listen", "http://127.0.0.1:0"])?;
        let ws = rt.block_on(server.web())?;
        let mut lines = Vec::new();
        for (name, via) in [("WebSocket", Via::Ws(ws)), ("unix", Via::Unix)] {
            let lat = rt.block_on(fanout_via(&server, 200, &via))?;
            lines.push(format!(
                "5 web      200 {name:<9} subscribers: turn/start -> turn/started p50 {} p99 {} max {} ({} samples){}",
                ms(lat.p50),
                ms(lat.p99),
                ms(lat.max),
                lat.samples,
                lat.note,
            ));
        }
        let usage = server.stop();
        for l in lines {
            println!("{l}");
        }
        println!("{usage}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Scenarios

struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
    samples: usize,
    note: String,
}

/// Scenario 1: sequential one-word turns; each subscriber timestamps every
/// `turn/started`.
async fn fanout(server: &Server, subs: usize) -> Result<Latency> {
    fanout_via(server, subs, &Via::Unix).await
}

/// How subscribers reach the server.
enum Via {
    Unix,
    /// The `/rpc` WebSocket: its URL and the owner token.
    Ws((String, String)),
}

async fn fanout_via(server: &Server, subs: usize, via: &Via) -> Result<Latency> {
    let mut poster = server.connect().await?;
    let thread = start_thread(&mut poster, "fanout").await?;
    let total = FANOUT_WARMUP + FANOUT_TURNS;
    let (readers, mut done) = match via {
        Via::Unix => spawn_subscribers(server, &thread, subs, total).await?,
        Via::Ws((url, token)) => spawn_ws_subscribers(url, token, &thread, subs, total).await?,
    };

    let mut sent = HashMap::new();
    for i in 0..total {
        let reply = poster.call_timed("turn/start", json!({"threadId": thread, "input": "hello"})).await?;
        sent.insert(turn_id(&reply.value)?, (i, reply.sent));
        wait_for(&mut done, subs).await?;
    }

    let mut samples = Vec::with_capacity(subs * FANOUT_TURNS);
    let mut unmatched = 0;
    let mut gaps = 0;
    for report in join_all(readers).await? {
        gaps += report.gaps;
        for seen in report.turns {
            match sent.get(&seen.turn_id) {
                Some(&(i, _)) if i < FANOUT_WARMUP => {}
                Some(&(_, at)) => samples.push(seen.started - at),
                None => unmatched += 1,
            }
        }
    }
    if samples.is_empty() {
        bail!("no fan-out samples");
    }
    samples.sort_unstable();
    let mut note = String::new();
    if samples.len() != subs * FANOUT_TURNS || unmatched > 0 || gaps > 0 {
        note = format!(" [expected {} samples; {unmatched} unmatched turn ids, {gaps} seq gaps]", subs * FANOUT_TURNS);
    }
    Ok(Latency {
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max: *samples.last().expect("not empty"),
        samples: samples.len(),
        note,
    })
}

struct Burst {
    events: usize,
    deliveries: u64,
    elapsed: Duration,
    first_done: Duration,
    note: String,
}

/// Scenario 2: one long turn to many subscribers (after a one-word warm-up
/// turn).
async fn burst(server: &Server, subs: usize, words: usize) -> Result<Burst> {
    let mut poster = server.connect().await?;
    let thread = start_thread(&mut poster, "burst").await?;
    let (readers, mut done) = spawn_subscribers(server, &thread, subs, 2).await?;

    poster.call("turn/start", json!({"threadId": thread, "input": "warm"})).await?;
    wait_for(&mut done, subs).await?;

    let input = prompt(words);
    let t0 = poster.call_timed("turn/start", json!({"threadId": thread, "input": input})).await?.sent;
    wait_for(&mut done, subs).await?;

    let events = words + TURN_OVERHEAD;
    let (mut deliveries, mut last, mut first, mut gaps, mut short) = (0, Duration::ZERO, Duration::MAX, 0, 0);
    for report in join_all(readers).await? {
        let seen = report.turns.last().context("subscriber saw no turn")?;
        deliveries += seen.events;
        if seen.events != events as u64 {
            short += 1;
        }
        gaps += report.gaps;
        last = last.max(seen.completed - t0);
        first = first.min(seen.completed - t0);
    }
    let note = if gaps > 0 || short > 0 {
        format!(" [{short} subscribers with a wrong event count, {gaps} seq gaps]")
    } else {
        String::new()
    };
    Ok(Burst { events, deliveries, elapsed: last, first_done: first, note })
}

struct Ingest {
    events: usize,
    elapsed: Duration,
    poster_done: Duration,
    acked: Duration,
    note: String,
}

/// Scenario 3: one very long turn, with 10 subscribers plus the poster's own
/// subscription on the posting connection.
async fn ingest(server: &Server, subs: usize, words: usize) -> Result<Ingest> {
    let mut poster = server.connect().await?;
    let thread = start_thread(&mut poster, "ingest").await?;
    let (readers, mut done) = spawn_subscribers(server, &thread, subs, 2).await?;
    poster.call("thread/subscribe", json!({"threadId": thread})).await?;

    poster.post_and_follow(&thread, "warm").await?;
    wait_for(&mut done, subs).await?;

    let own = poster.post_and_follow(&thread, &prompt(words)).await?;
    wait_for(&mut done, subs).await?;

    let events = words + TURN_OVERHEAD;
    let mut last = own.completed - own.sent;
    let (mut gaps, mut short) = (0, 0);
    for report in join_all(readers).await? {
        let seen = report.turns.last().context("subscriber saw no turn")?;
        if seen.events != events as u64 {
            short += 1;
        }
        gaps += report.gaps;
        last = last.max(seen.completed - own.sent);
    }
    if own.events != events as u64 {
        short += 1;
    }
    let note = if gaps > 0 || short > 0 {
        format!(" [{short} subscribers with a wrong event count, {gaps} seq gaps]")
    } else {
        String::new()
    };
    Ok(Ingest { events, elapsed: last, poster_done: own.completed - own.sent, acked: own.acked - own.sent, note })
}

struct PageTimes {
    events: u64,
    mean: Duration,
    p50: Duration,
}

struct Paging {
    calls: usize,
    small: PageTimes,
    big: PageTimes,
    build_rate: f64,
    note: String,
}

/// Scenario 4: `thread/events` pages at random positions of a small and a big
/// thread, interleaved on one connection.
async fn events_paging(server: &Server, small: u64, big: u64, calls: usize) -> Result<Paging> {
    const LIMIT: u64 = 100;
    const WARMUP: usize = 100;
    let mut conn = server.connect().await?;
    let small_id = start_thread(&mut conn, "small").await?;
    fill_thread(&mut conn, &small_id, small, 250_000).await?;
    let big_id = start_thread(&mut conn, "big").await?;
    let built = Instant::now();
    fill_thread(&mut conn, &big_id, big, 250_000).await?;
    let build_rate = big as f64 / built.elapsed().as_secs_f64();

    let mut rng = SplitMix(0x7a6e_de11);
    let mut times = [Vec::with_capacity(calls), Vec::with_capacity(calls)];
    let mut bad_pages = 0;
    for i in 0..WARMUP + calls {
        for (k, (id, len)) in [(&small_id, small), (&big_id, big)].into_iter().enumerate() {
            let from = 1 + rng.below(len - LIMIT + 1);
            let reply = conn.call_timed("thread/events", json!({"threadId": id, "from": from, "limit": LIMIT})).await?;
            let page = reply.value["events"].as_array().map_or(0, Vec::len);
            let first = reply.value["events"][0]["seq"].as_u64();
            if page as u64 != LIMIT || first != Some(from) {
                bad_pages += 1;
            }
            if i >= WARMUP {
                times[k].push(reply.received - reply.sent);
            }
        }
    }
    let [small_times, big_times] = times.map(|mut t| {
        t.sort_unstable();
        t
    });
    let stats = |events, t: &[Duration]| PageTimes {
        events,
        mean: t.iter().sum::<Duration>() / t.len() as u32,
        p50: percentile(t, 50.0),
    };
    Ok(Paging {
        calls,
        small: stats(small, &small_times),
        big: stats(big, &big_times),
        build_rate,
        note: if bad_pages > 0 {
            format!(" [{bad_pages} pages were short or started at the wrong seq]")
        } else {
            String::new()
        },
    })
}

/// Runs echo turns on a fresh thread (which holds its `thread/started`) until it
/// holds exactly `total` events, at most `max_words` per turn, then waits until
/// the last one is readable.
async fn fill_thread(conn: &mut Conn, thread: &str, total: u64, max_words: u64) -> Result<()> {
    let mut have = 1;
    while have < total {
        let left = total - have;
        let words = if left > max_words + TURN_OVERHEAD as u64 {
            // Leave room for one more turn of at least one word.
            max_words.min(left - 2 * TURN_OVERHEAD as u64 - 1)
        } else {
            left - TURN_OVERHEAD as u64
        };
        conn.call("turn/start", json!({"threadId": thread, "input": prompt(words as usize)})).await?;
        have += words + TURN_OVERHEAD as u64;
        // Idle again once the turn has ended (`turn/completed` may still be
        // on its way to the log, which the next turn does not need).
        poll_until(conn, "thread/read", json!({"threadId": thread}), |v| v["thread"]["status"] == "idle").await?;
    }
    let last = json!({"threadId": thread, "from": total, "limit": 2});
    poll_until(conn, "thread/events", last, |v| v["events"].as_array().map(Vec::len) == Some(1)).await
}

// ---------------------------------------------------------------------------
// Subscribers

/// One turn as a subscriber saw it.
struct TurnSeen {
    turn_id: String,
    /// When its `turn/started` was read.
    started: Instant,
    /// When its `turn/completed` was read.
    completed: Instant,
    /// Events read from `turn/started` to `turn/completed`, both included.
    events: u64,
}

#[derive(Default)]
struct SubReport {
    turns: Vec<TurnSeen>,
    /// Times a seq was not the previous one plus one.
    gaps: u64,
}

/// Feeds a subscriber's lines through; tells `done` at each `turn/completed`.
#[derive(Default)]
struct TurnTracker {
    report: SubReport,
    last_seq: Option<u64>,
    current: Option<(String, Instant)>,
    events: u64,
}

impl TurnTracker {
    /// Returns whether `line` was an event that completed a turn.
    fn see(&mut self, line: &[u8], now: Instant) -> bool {
        let Some(event) = EventHead::parse(line) else {
            return false;
        };
        self.events += 1;
        if let Some(seq) = event.seq {
            if self.last_seq.is_some_and(|prev| seq != prev + 1) {
                self.report.gaps += 1;
            }
            self.last_seq = Some(seq);
        }
        match event.kind {
            b"turn/started" => {
                self.events = 1;
                let id = event.field(br#""turnId":""#).unwrap_or_default();
                self.current = Some((String::from_utf8_lossy(id).into_owned(), now));
                false
            }
            b"turn/completed" => {
                let (turn_id, started) = self.current.take().unwrap_or((String::new(), now));
                self.report.turns.push(TurnSeen {
                    turn_id,
                    started,
                    completed: now,
                    events: std::mem::take(&mut self.events),
                });
                true
            }
            _ => false,
        }
    }
}

/// Connects `n` subscribers to `thread` (live from now), each on its own
/// connection and task, each stopping after `turns` completed turns.
async fn spawn_subscribers(
    server: &Server,
    thread: &str,
    n: usize,
    turns: usize,
) -> Result<(Vec<tokio::task::JoinHandle<Result<SubReport>>>, mpsc::UnboundedReceiver<()>)> {
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = server.connect().await?;
        conn.call("thread/subscribe", json!({"threadId": thread})).await?;
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut tracker = TurnTracker::default();
            while tracker.report.turns.len() < turns {
                let line = conn.read_line().await?;
                if tracker.see(line, Instant::now()) {
                    let _ = done.send(());
                }
            }
            Ok(tracker.report)
        }));
    }
    Ok((tasks, done_rx))
}

/// [`spawn_subscribers`] over the `/rpc` WebSocket: one text frame per message.
async fn spawn_ws_subscribers(
    url: &str,
    token: &str,
    thread: &str,
    n: usize,
    turns: usize,
) -> Result<(Vec<tokio::task::JoinHandle<Result<SubReport>>>, mpsc::UnboundedReceiver<()>)> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = url.into_client_request()?;
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket to /rpc")?;
        let sub = json!({"jsonrpc":"2.0","id":1,"method":"thread/subscribe","params":{"threadId": thread}});
        ws.send(Message::Text(sub.to_string().into())).await?;
        // The answer comes before any event.
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"result\"") => {}
            other => bail!("thread/subscribe over the WebSocket failed: {other:?}"),
        }
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut tracker = TurnTracker::default();
            while tracker.report.turns.len() < turns {
                let msg = tokio::time::timeout(PATIENCE, ws.next())
                    .await
                    .context("timed out reading the WebSocket")?
                    .context("the server closed the WebSocket")??;
                if let Message::Text(t) = msg
                    && tracker.see(t.as_bytes(), Instant::now())
                {
                    let _ = done.send(());
                }
            }
            Ok(tracker.report)
        }));
    }
    Ok((tasks, done_rx))
}

/// Waits until `n` more subscribers have reported a completed turn.
async fn wait_for(done: &mut mpsc::UnboundedReceiver<()>, n: usize) -> Result<()> {
    for _ in 0..n {
        tokio::time::timeout(PATIENCE, done.recv())
            .await
            .context("timed out waiting for subscribers to see turn/completed")?
            .context("a subscriber stopped early")?;
    }
    Ok(())
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Result<SubReport>>>) -> Result<Vec<SubReport>> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await??);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Reading event notifications without parsing them

/// Only the head of a line is searched: an event's `seq`, `type` and (for
/// `turn/started`) `turnId` come first, its long fields after.
const HEAD: usize = 512;

/// The index just past the first `needle` in `hay[from..end]`.
fn find_after(hay: &[u8], from: usize, end: usize, needle: &[u8]) -> Option<usize> {
    let end = end.min(hay.len());
    let (&first, rest) = needle.split_first()?;
    let mut i = from;
    while i < end {
        let at = i + hay[i..end].iter().position(|&b| b == first)?;
        if hay[at + 1..].starts_with(rest) {
            return Some(at + needle.len());
        }
        i = at + 1;
    }
    None
}

fn is_event(line: &[u8]) -> bool {
    find_after(line, 0, 64, br#""method":"thread/event""#).is_some()
}

/// What the bench reads of a `thread/event` notification, in one forward scan
/// of its head (string values are not unescaped).
struct EventHead<'a> {
    line: &'a [u8],
    seq: Option<u64>,
    kind: &'a [u8],
    /// Where the bytes after the type start.
    rest: usize,
}

impl<'a> EventHead<'a> {
    /// `None` for anything but an event notification.
    fn parse(line: &'a [u8]) -> Option<Self> {
        let mut at = find_after(line, 0, 64, br#""method":"thread/event""#)?;
        let mut seq = None;
        if let Some(start) = find_after(line, at, HEAD, br#""seq":"#) {
            let digits =
                line[start..].iter().take_while(|b| b.is_ascii_digit()).fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
            seq = Some(digits);
            at = start;
        }
        let (kind, rest) = string_after(line, at, br#""type":""#)?;
        Some(EventHead { line, seq, kind, rest })
    }

    /// A string field that comes after the type (`pat` is `"key":"`).
    fn field(&self, pat: &[u8]) -> Option<&'a [u8]> {
        string_after(self.line, self.rest, pat).map(|(value, _)| value)
    }
}

/// The string value after `pat` (which ends with its opening quote), and the
/// index past it.
fn string_after<'a>(line: &'a [u8], from: usize, pat: &[u8]) -> Option<(&'a [u8], usize)> {
    let start = find_after(line, from, HEAD, pat)?;
    let len = line[start..].iter().position(|&b| b == b'"')?;
    Some((&line[start..start + len], start + len))
}

// ---------------------------------------------------------------------------
// Connections

/// One NDJSON connection to the server.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    line: Vec<u8>,
}

/// A response with the times its request was written and it was read in full
/// (before the client parsed it).
struct Reply {
    sent: Instant,
    received: Instant,
    value: Value,
}

/// What the posting connection saw of its own turn.
struct OwnTurn {
    sent: Instant,
    acked: Instant,
    completed: Instant,
    events: u64,
}

impl Conn {
    async fn connect(path: &Path) -> Result<Conn> {
        let stream = UnixStream::connect(path).await.with_context(|| format!("connecting to {}", path.display()))?;
        let (r, w) = stream.into_split();
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            next_id: 1,
            line: Vec::with_capacity(64 * 1024),
        })
    }

    /// Writes a request; returns its id and when it was written.
    async fn send(&mut self, method: &str, params: Value) -> Result<(u64, Instant)> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        line.push(b'\n');
        let sent = Instant::now();
        self.writer.write_all(&line).await?;
        Ok((id, sent))
    }

    /// The next line (without its newline); an error at end of stream.
    async fn read_line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        let n = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut self.line))
            .await
            .context("timed out reading from the server")??;
        if n == 0 || self.line.last() != Some(&b'\n') {
            bail!("the server closed the connection");
        }
        self.line.pop();
        Ok(&self.line)
    }

    /// Sends a request and reads up to its response, skipping notifications.
    async fn call_timed(&mut self, method: &str, params: Value) -> Result<Reply> {
        let (id, sent) = self.send(method, params).await?;
        loop {
            let line = self.read_line().await?;
            let received = Instant::now();
            if is_event(line) {
                continue;
            }
            if let Some(value) = response_to(line, id, method)? {
                return Ok(Reply { sent, received, value });
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        Ok(self.call_timed(method, params).await?.value)
    }

    /// Posts a turn on a connection that is subscribed to its thread, and reads
    /// the answer and the turn's events up to its `turn/completed`. The two may
    /// come in either order: the answer waits for `turn/started` to be durable,
    /// and a short turn can be committed, and streamed, in that same group.
    async fn post_and_follow(&mut self, thread: &str, input: &str) -> Result<OwnTurn> {
        let (id, sent) = self.send("turn/start", json!({"threadId": thread, "input": input})).await?;
        let mut tracker = TurnTracker::default();
        let mut acked = None;
        while acked.is_none() || tracker.report.turns.is_empty() {
            let line = self.read_line().await?;
            let now = Instant::now();
            if is_event(line) {
                tracker.see(line, now);
            } else if response_to(line, id, "turn/start")?.is_some() {
                acked = Some(now);
            }
        }
        let seen = tracker.report.turns.pop().expect("a turn was completed");
        Ok(OwnTurn { sent, acked: acked.expect("answered"), completed: seen.completed, events: seen.events })
    }
}

/// The result of the response to request `id`, `None` for another message.
fn response_to(line: &[u8], id: u64, method: &str) -> Result<Option<Value>> {
    let mut msg: Value = serde_json::from_slice(line).context("unparsable line from the server")?;
    if msg["id"] != id {
        return Ok(None);
    }
    if let Some(err) = msg.get("error") {
        bail!("{method} failed: {err}");
    }
    Ok(Some(msg["result"].take()))
}

async fn start_thread(conn: &mut Conn, title: &str) -> Result<String> {
    let v = conn.call("thread/start", json!({"title": title})).await?;
    v["thread"]["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("thread/start without thread.id: {v}"))
}

fn turn_id(result: &Value) -> Result<String> {
    result["turn"]["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("turn/start without turn.id: {result}"))
}

/// Repeats a call every few milliseconds until `ok` holds for its result.
async fn poll_until(conn: &mut Conn, method: &str, params: Value, ok: impl Fn(&Value) -> bool) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !ok(&conn.call(method, params.clone()).await?) {
        if Instant::now() > deadline {
            bail!("timed out polling {method} {params}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The server under test

/// A running `tandem app-server` with its own `TANDEM_HOME`; SIGTERMed (then
/// SIGKILLed if it lingers) when dropped, so none outlives the bench.
struct Server {
    child: Option<Child>,
    socket: PathBuf,
    home: tempfile::TempDir,
    client_cpu_at_start: Duration,
}

impl Server {
    /// Starts a server and waits until it answers `initialize`. Call it from the
    /// main thread: the child gets SIGTERM when the thread that spawned it ends.
    fn start() -> Result<Server> {
        Server::start_with(&[])
    }

    /// A server with more arguments after `--listen unix`.
    fn start_with(args: &[&str]) -> Result<Server> {
        let home = tempfile::Builder::new().prefix("tnb").tempdir_in("/tmp")?;
        let stderr = File::create(home.path().join("stderr.log"))?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.args(["app-server", "--listen", "unix"])
            .args(args)
            .env("TANDEM_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting tandem app-server")?;
        let mut server = Server {
            child: Some(child),
            socket: home.path().join("app-server.sock"),
            home,
            client_cpu_at_start: self_cpu(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.initialize().is_ok() {
                return Ok(());
            }
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait()? {
                let mut log = String::new();
                let _ = File::open(self.home.path().join("stderr.log")).and_then(|mut f| f.read_to_string(&mut log));
                bail!("app-server exited with {status} before answering:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("app-server did not answer on {}", self.socket.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One blocking `initialize` round trip.
    fn initialize(&self) -> std::io::Result<()> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}\n",
        )?;
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line)?;
        if line.contains("\"result\"") { Ok(()) } else { Err(std::io::Error::other(line)) }
    }

    async fn connect(&self) -> Result<Conn> {
        let mut conn = Conn::connect(&self.socket).await?;
        conn.call("initialize", json!({"clientInfo": {"name": "bench", "version": "0"}})).await?;
        Ok(conn)
    }

    /// The `/rpc` WebSocket URL of its http listener, and the owner token.
    async fn web(&self) -> Result<(String, String)> {
        let mut conn = Conn::connect(&self.socket).await?;
        let init = conn.call("initialize", json!({"clientInfo": {"name": "bench", "version": "0"}})).await?;
        let http = init["serverInfo"]["listeners"]
            .as_array()
            .and_then(|l| l.iter().filter_map(Value::as_str).find(|l| l.starts_with("http://")))
            .context("the server has no http listener")?;
        let token = std::fs::read_to_string(self.home.path().join("owner-token"))?.trim().to_owned();
        Ok((format!("ws://{}/rpc", http.trim_start_matches("http://")), token))
    }

    /// Stops the server; returns a line with the CPU time it and this bench
    /// used since it started, its peak memory, and how it exited if that was
    /// slow or unclean.
    fn stop(mut self) -> String {
        let pid = self.child.as_ref().map_or(0, Child::id);
        let server_cpu = proc_cpu(pid).map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64()));
        let rss = proc_peak_rss_kib(pid).map_or("?".into(), |k| format!("{} MiB", k / 1024));
        let client_cpu = self_cpu().saturating_sub(self.client_cpu_at_start);
        let mut line = format!(
            "    cpu: server {server_cpu}, bench client {:.2} s; server peak RSS {rss}",
            client_cpu.as_secs_f64()
        );
        if let Some((status, took)) = self.terminate()
            && (!status.success() || took > Duration::from_secs(2))
        {
            line.push_str(&format!("; app-server exited with {status} {} after SIGTERM", ms(took)));
        }
        line
    }

    fn terminate(&mut self) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let t0 = Instant::now();
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        while t0.elapsed() < Duration::from_secs(15) {
            match child.try_wait() {
                Ok(Some(status)) => return Some((status, t0.elapsed())),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        eprintln!("app-server {} ignored SIGTERM; killing it", child.id());
        let _ = child.kill();
        child.wait().ok().map(|s| (s, t0.elapsed()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

// ---------------------------------------------------------------------------
// Small helpers

/// User plus system CPU time of process `pid` so far.
fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// The peak resident set size of process `pid` (`VmHWM`), in KiB.
fn proc_peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of this process so far.
fn self_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `n` distinct short words.
fn prompt(n: usize) -> String {
    let mut s = String::with_capacity(n * 8);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("w{i}"));
    }
    s
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn verdict(met: bool) -> &'static str {
    if met { "[met]" } else { "[MISSED]" }
}

/// A tiny deterministic PRNG (SplitMix64) for the paging positions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` for `n` far below 2^64.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
