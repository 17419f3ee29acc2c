//! What the hub and viewer benches share: the `tandem` binary under test, a
//! way to run it, and a hub on a free port of loopback.

// Each bench uses part of this.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};

/// The binary this package builds.
pub const BIN: &str = env!("CARGO_BIN_EXE_tandem");

/// A child process, sent SIGTERM and reaped when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        // SAFETY: kill with a pid of a child we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// `tandem ARGS` in `home`; its stdout, trimmed.
pub fn tandem(home: &Path, args: &[&str]) -> Result<String> {
    tandem_with(home, args, "")
}

/// `tandem ARGS` in `home` with `input` on stdin; its stdout, trimmed.
pub fn tandem_with(home: &Path, args: &[&str], input: &str) -> Result<String> {
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

/// `tandem hub` in `home` on a free port of loopback, with `extra` flags: the
/// process and its `HOST:PORT`.
pub fn hub(home: &Path, extra: &[&str]) -> Result<(Kill, String)> {
    let mut hub = Command::new(BIN)
        .env("TANDEM_HOME", home)
        .args(["hub", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut first = String::new();
    BufReader::new(hub.stdout.take().context("hub stdout")?).read_line(&mut first)?;
    let hub = Kill(hub);
    let addr = first.split_whitespace().find_map(|w| w.strip_prefix("http://")).context("hub address")?.to_owned();
    Ok((hub, addr))
}

/// `tandem app-server --listen unix EXTRA` in `home`, once its socket takes
/// connections: the process and its `unix:SOCKET` endpoint.
pub fn app_server(home: &Path, extra: &[&str]) -> Result<(Kill, String)> {
    let child = Command::new(BIN)
        .env("TANDEM_HOME", home)
        .args(["app-server", "--listen", "unix"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let child = Kill(child);
    let sock = home.join("app-server.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the app-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, format!("unix:{}", sock.display())))
}
