//! Issue 18.5: what clients that never read cost the app-server.
//!
//! `cargo bench -p tandem --bench clients_memory [-- N BUDGET_MIB WORDS]`
//! (default 1,000 WebSockets, the default 512 MiB budget, a 400,000-word turn):
//! N read-link WebSockets subscribe to one thread and then never read; the
//! owner posts a big turn to it (echo agent) and, all along, asks `thread/list`
//! on the unix socket every 100 ms. Prints the server's RSS before, at its
//! peak, once the turn is done, and after the WebSockets close, and the
//! owner's latency (p50, max).

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A blocking JSON-RPC client on the unix socket.
struct Owner {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next: u64,
}

impl Owner {
    fn connect(sock: &std::path::Path) -> Result<Owner> {
        let s = UnixStream::connect(sock)?;
        Ok(Owner { reader: BufReader::new(s.try_clone()?), writer: s, next: 1 })
    }
    fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next;
        self.next += 1;
        writeln!(self.writer, "{}", json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))?;
        loop {
            let mut line = String::new();
            anyhow::ensure!(self.reader.read_line(&mut line)? > 0, "the server closed the socket");
            let v: Value = serde_json::from_str(&line)?;
            if v["id"] == json!(id) {
                return v.get("result").cloned().with_context(|| format!("{method}: {v}"));
            }
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.first().map_or(Ok(1000), |a| a.parse())?;
    let budget: Option<usize> = args.get(1).map(|a| a.parse()).transpose()?;
    let words: usize = args.get(2).map_or(Ok(400_000), |a| a.parse())?;
    let home = tempfile::tempdir()?;
    let mut extra = vec!["--listen".to_owned(), "http://127.0.0.1:0".to_owned(), "--max-connections-per-ip".to_owned()];
    extra.push((n + 10).to_string());
    extra.extend(["--max-connections".to_owned(), (n + 200).to_string()]);
    if let Some(b) = budget {
        extra.extend(["--clients-buffer-mib".to_owned(), b.to_string()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (server, endpoint) = common::app_server(home.path(), &extra)?;
    let pid = server.0.id();
    let sock = home.path().join("app-server.sock");
    let thread = common::tandem(home.path(), &["share", "new", "--server", &endpoint])?;
    let link: Value = serde_json::from_str(&common::tandem(
        home.path(),
        &["share", "link", "--thread", &thread, "--json", "--server", &endpoint],
    )?)?;
    let token = link["token"].as_str().context("token")?.to_owned();
    let host = link["url"].as_str().context("url")?.trim_start_matches("http://").split('/').next().unwrap().to_owned();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let before = rss_mib(pid, "VmRSS");
    let sockets = rt.block_on(async {
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
        let mut sockets = Vec::with_capacity(n);
        for _ in 0..n {
            let mut req = format!("ws://{host}/rpc").into_client_request()?;
            req.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket")?;
            let sub =
                json!({"jsonrpc":"2.0","id":1,"method":"thread/subscribe","params":{"threadId": thread, "from": 1}});
            ws.send(Message::Text(sub.to_string().into())).await?;
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains("\"result\"") => {}
                other => anyhow::bail!("subscribe: {other:?}"),
            }
            // From here on it never reads.
            sockets.push(ws);
        }
        anyhow::Ok(sockets)
    })?;
    let connected = rss_mib(pid, "VmRSS");

    let mut owner = Owner::connect(&sock)?;
    let prompt = (0..words).map(|i| format!("w{i:06}")).collect::<Vec<_>>().join(" ");
    let started = Instant::now();
    owner.call("turn/start", json!({"threadId": thread, "input": prompt}))?;
    drop(prompt);
    let mut latencies = Vec::new();
    let mut peak: f64 = 0.0;
    loop {
        let t = Instant::now();
        let read = owner.call("thread/read", json!({"threadId": thread}))?;
        owner.call("thread/list", json!({}))?;
        latencies.push(t.elapsed());
        peak = peak.max(rss_mib(pid, "VmRSS"));
        if read["thread"]["status"] == "idle" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let turn = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let done = rss_mib(pid, "VmRSS");
    drop(sockets);
    drop(rt);
    std::thread::sleep(Duration::from_secs(3));
    let closed = rss_mib(pid, "VmRSS");
    let t = Instant::now();
    owner.call("thread/list", json!({}))?;
    let after = t.elapsed();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "clients_memory: {n} non-reading WebSockets, budget {} MiB, {words}-word turn ({:.1} s)",
        budget.map_or("default (512)".to_owned(), |b| b.to_string()),
        turn.as_secs_f64()
    );
    println!(
        "  RSS MiB: before {before:.0}, connected {connected:.0}, peak {peak:.0} (HWM {:.0}), turn done {done:.0}, sockets closed {closed:.0}",
        rss_mib(pid, "VmHWM")
    );
    println!(
        "  owner thread/read+thread/list: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples); after close {:.1} ms",
        p(0.5),
        p(0.99),
        p(1.0),
        latencies.len(),
        after.as_secs_f64() * 1000.0
    );
    Ok(())
}
