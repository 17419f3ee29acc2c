//! How fast the web viewer opens a long thread: three 100,000-event threads,
//! made through the real `tandem app-server` — 33,000 imported turns and a
//! 1,000-word echo turn; 33,333 imported turns; one 100,000-word echo turn
//! (a delta per word) —
//! each opened in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, over WebDriver) from a read link, timed until the last
//! event is shown and the last answer is on screen. Each run opens the page
//! afresh (from `about:blank`); the figure is the median and the worst of the
//! runs, as the page measures it (`performance.now()`, from the start of the
//! navigation) and as the bench does (from asking for the page).
//!
//! Run: `cargo bench -p tandem --bench viewer`. Target: under 2 s (issue 10).
//! Nothing is asserted: this is a measurement, not a test.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

mod common;

use common::{BIN, Kill, tandem_with as tandem};

const IMPORTED_TURNS: usize = 33_000;
const ECHO_WORDS: usize = 1_000;
const DELTA_WORDS: usize = 100_000;
/// 1 + 3 × 33,333 = 100,000 events.
const ALL_IMPORTED: usize = 33_333;
const RUNS: usize = 7;

/// One JSON-RPC call on a fresh NDJSON connection to the unix socket.
fn call(sock: &std::path::Path, method: &str, params: Value) -> Result<Value> {
    let mut s = UnixStream::connect(sock)?;
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"clientInfo":{"name":"bench"}}});
    let req = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params});
    s.write_all(format!("{init}\n{req}\n").as_bytes())?;
    let mut reader = BufReader::new(s);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(anyhow!("{method}: the server hung up"));
        }
        let v: Value = serde_json::from_str(&line)?;
        if v["id"] == 1 {
            return v.get("result").cloned().ok_or_else(|| anyhow!("{method}: {v}"));
        }
    }
}

fn main() -> Result<()> {
    let home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let server = Command::new(BIN)
        .env("TANDEM_HOME", home.path())
        .args(["app-server", "--listen", "unix", "--listen", "http://127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _server = Kill(server);
    let sock = home.path().join("app-server.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while call(&sock, "thread/list", json!({})).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the app-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let server = format!("unix:{}", sock.display());
    let words = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let driver = chromedriver()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    // 33,000 imported turns (three events each), then an echo turn.
    let made = Instant::now();
    let turns: Vec<Value> = (0..IMPORTED_TURNS)
        .map(|i| json!({"input": format!("question {i}"), "response": format!("answer **{i}**")}))
        .collect();
    let thread = call(&sock, "thread/start", json!({"title": "long", "turns": turns}))?;
    let id = thread["thread"]["id"].as_str().context("thread id")?.to_owned();
    tandem(home.path(), &["share", "post", "--thread", &id, "--prompt", "-", "--server", &server], &words(ECHO_WORDS))?;
    let what = format!("{IMPORTED_TURNS} imported turns + a {ECHO_WORDS}-word echo turn");
    let ends = format!("w{}", ECHO_WORDS - 1);
    measure(&rt, driver.1, home.path(), &sock, &server, &id, &what, made.elapsed(), &ends)?;

    // Only imported turns: the last page is 333 turns to lay out.
    let made = Instant::now();
    let turns: Vec<Value> = (0..ALL_IMPORTED)
        .map(|i| json!({"input": format!("question {i}"), "response": format!("answer **{i}**")}))
        .collect();
    let thread = call(&sock, "thread/start", json!({"title": "long", "turns": turns}))?;
    let id = thread["thread"]["id"].as_str().context("thread id")?.to_owned();
    let what = format!("{ALL_IMPORTED} imported turns");
    let ends = format!("answer {}", ALL_IMPORTED - 1);
    measure(&rt, driver.1, home.path(), &sock, &server, &id, &what, made.elapsed(), &ends)?;

    // One turn of 100,000 deltas.
    let made = Instant::now();
    let id = tandem(home.path(), &["share", "new", "--server", &server], "")?;
    tandem(
        home.path(),
        &["share", "post", "--thread", &id, "--prompt", "-", "--server", &server],
        &words(DELTA_WORDS),
    )?;
    let what = format!("one {DELTA_WORDS}-word echo turn");
    let ends = format!("w{}", DELTA_WORDS - 1);
    measure(&rt, driver.1, home.path(), &sock, &server, &id, &what, made.elapsed(), &ends)
}

/// Opens thread `id` [`RUNS`] times and prints the figures; its last answer
/// ends with `ends`.
#[allow(clippy::too_many_arguments)]
fn measure(
    rt: &tokio::runtime::Runtime,
    port: u16,
    home: &std::path::Path,
    sock: &std::path::Path,
    server: &str,
    id: &str,
    what: &str,
    made: Duration,
    ends: &str,
) -> Result<()> {
    let last = call(sock, "thread/read", json!({"threadId": id}))?["thread"]["lastSeq"].as_u64().context("lastSeq")?;
    let link: Value =
        serde_json::from_str(&tandem(home, &["share", "link", "--thread", id, "--json", "--server", server], "")?)?;
    let url = link["url"].as_str().context("link url")?.to_owned();
    let (mut page, mut wall, dom) = rt.block_on(async {
        let c = browser(port).await?;
        let mut page = Vec::new();
        let mut wall = Vec::new();
        let shown = format!(
            "if (document.body.dataset.lastSeq === '{last}' && [...document.querySelectorAll('.msg.agent')].pop().textContent.endsWith({ends:?})) return performance.now(); return null;"
        );
        for _ in 0..RUNS {
            c.goto("about:blank").await?;
            let start = Instant::now();
            c.goto(&url).await?;
            loop {
                let v = c.execute(&shown, vec![]).await?;
                if let Some(ms) = v.as_f64() {
                    page.push(ms);
                    wall.push(start.elapsed().as_secs_f64() * 1e3);
                    break;
                }
                anyhow::ensure!(start.elapsed() < Duration::from_secs(120), "the page never showed the last event");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let dom = c.execute("return document.getElementsByTagName('*').length", vec![]).await?;
        let _ = c.close().await;
        anyhow::Ok((page, wall, dom))
    })?;
    page.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    println!(
        "viewer open, {last} events ({what}; made in {:.1} s): last answer on screen in median {:.0} ms, worst {:.0} ms (in the page, from navigation start); median {:.0} ms, worst {:.0} ms (from asking WebDriver); {RUNS} runs; {dom} elements in the page; target < 2000 ms",
        made.as_secs_f64(),
        page[RUNS / 2],
        page[RUNS - 1],
        wall[RUNS / 2],
        wall[RUNS - 1],
    );
    Ok(())
}

/// chromedriver on a free port.
fn chromedriver() -> Result<(Kill, u16)> {
    let exe = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("chromedriver is missing: apt-get install chromium chromium-driver")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(exe).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Kill(child), port))
}

async fn browser(port: u16) -> Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,800"],
        }),
    );
    Ok(ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await?)
}
