//! Sync throughput from an app-server to a hub: one long turn of the echo
//! agent on a linked thread, timed from `turn/start` until the hub's poll
//! WebSocket has delivered the turn's last event. Both servers are the real
//! `tandem` binary on this machine (loopback, SQLite, a fresh `TANDEM_HOME`).
//!
//! Run: `cargo bench -p tandem --bench hub`. Nothing is asserted: this is a
//! measurement, not a test. The figure includes the 1 s debounce of the last,
//! partial batch.

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tandem");
const WORDS: usize = 50_000;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        // SAFETY: kill with a pid of a child we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn tandem(home: &std::path::Path, args: &[&str]) -> Result<String> {
    tandem_with(home, args, "")
}

/// `tandem ARGS` with `input` on stdin.
fn tandem_with(home: &std::path::Path, args: &[&str], input: &str) -> Result<String> {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .env("TANDEM_HOME", home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(anyhow!("tandem {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn main() -> Result<()> {
    let hub_home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let home = tempfile::Builder::new().prefix("tdmbench").tempdir_in("/tmp")?;
    let mut hub = Command::new(BIN)
        .env("TANDEM_HOME", hub_home.path())
        .args(["hub", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut first = String::new();
    BufReader::new(hub.stdout.take().context("hub stdout")?).read_line(&mut first)?;
    let _hub = Kill(hub);
    let addr = first.split_whitespace().find_map(|w| w.strip_prefix("http://")).context("hub address")?.to_owned();

    let server = Command::new(BIN)
        .env("TANDEM_HOME", home.path())
        .args(["app-server", "--listen", "unix"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _server = Kill(server);
    let sock = home.path().join("app-server.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the app-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = format!("unix:{}", sock.display());
    let thread = tandem(home.path(), &["share", "new", "--server", &server])?;
    let url = tandem(
        home.path(),
        &["share", "link", "--thread", &thread, "--hub", &format!("http://{addr}"), "--server", &server],
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

    let stream = TcpStream::connect(&addr)?;
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/api/share/{id}/poll"), stream)?;
    loop {
        let msg = ws.read()?;
        let Ok(text) = msg.to_text() else { continue };
        let item: Value = serde_json::from_str(text)?;
        if item["seq"].as_u64() == Some(last) {
            break;
        }
    }
    let synced = start.elapsed();
    println!(
        "hub sync: {last} events (a {WORDS}-word turn): turn done in {:.2} s, on the hub after {:.2} s = {:.0} events/s end to end",
        posted.as_secs_f64(),
        synced.as_secs_f64(),
        last as f64 / synced.as_secs_f64()
    );
    Ok(())
}
