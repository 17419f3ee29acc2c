//! Autostart: a client aimed at the default endpoint starts the app-server in
//! the background when none answers, then waits until it does. Several clients
//! racing to start one is fine: the data directory's lock lets one server win,
//! and every client connects to it.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tandem_protocol::ClientInfo;

use super::{Client, ClientError, Endpoint};
use tandem_home::Home;
use tandem_home::lock::DataLock;

/// How long a client waits for an autostarted server to answer.
pub const AUTOSTART_TIMEOUT: Duration = Duration::from_secs(20);

/// The most of a dead server's stderr a client repeats.
const SAID_LIMIT: u64 = 4096;

/// A server started in the background.
pub struct Started {
    pub child: Child,
    /// Its stderr file (shared by every start: it is appended to).
    pub log: PathBuf,
    /// Where in `log` this start's output begins.
    offset: u64,
}

impl Started {
    /// What this start wrote to its stderr (its last lines, `tandem: `
    /// dropped), on one line.
    pub fn said(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let end = f.metadata().map(|m| m.len()).unwrap_or(0);
            let from = self.offset.max(end.saturating_sub(SAID_LIMIT));
            if f.seek(SeekFrom::Start(from)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.take(SAID_LIMIT).read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(|l| l.strip_prefix("tandem: ").unwrap_or(l))
            .collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }

    /// How it ended, if it has (reaping it), and no other server took the
    /// data directory: it did not lose a start race, it failed.
    pub fn failed(&mut self, home: &Home) -> Option<ClientError> {
        let status = self.child.try_wait().ok().flatten()?;
        if DataLock::holder(&home.lock_path()).is_some() {
            return None;
        }
        Some(ClientError::ServerExited {
            code: status.code(),
            status: status.to_string(),
            said: self.said(),
            log: self.log.display().to_string(),
        })
    }
}

/// Starts `exe app-server --listen unix ARGS…` detached from this terminal
/// (its own session; output appended to `logs/app-server.stderr`).
pub fn start_background(home: &Home, exe: &Path, args: &[OsString]) -> std::io::Result<Started> {
    home.ensure()?;
    let log = home.logs_dir().join("app-server.stderr");
    let stderr = tandem_home::open_private(&log, tandem_home::Access::Append)?;
    let offset = stderr.metadata()?.len();
    let mut cmd = Command::new(exe);
    cmd.arg("app-server")
        .arg("--listen")
        .arg("unix")
        .args(args)
        .env("TANDEM_HOME", home.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: setsid is async-signal-safe; it detaches the server from the
    // terminal's session so a Ctrl-C there does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok(Started { child: cmd.spawn()?, log, offset })
}

/// Connects to the default server of `home`, starting it if nobody answers.
/// A server that exits instead of answering (a bad `config.toml`) is noticed
/// at once: [`ClientError::ServerExited`] says what it said.
pub async fn connect_or_start(home: &Home, exe: &Path, info: ClientInfo) -> Result<Client, ClientError> {
    let endpoint = Endpoint::Unix(home.socket_path());
    match Client::connect(&endpoint, info.clone()).await {
        Err(ClientError::Unreachable { .. }) => {}
        other => return other,
    }
    let mut started = start_background(home, exe, &[])
        .map_err(|e| ClientError::Autostart(format!("cannot run {}: {e}", exe.display())))?;
    let deadline = tokio::time::Instant::now() + AUTOSTART_TIMEOUT;
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        match Client::connect(&endpoint, info.clone()).await {
            Err(ClientError::Unreachable { reason, .. }) => {
                // If it exited with another server holding the lock, it lost
                // the start race to another client's: that one will answer.
                if let Some(failed) = started.failed(home) {
                    return Err(failed);
                }
                if tokio::time::Instant::now() >= deadline {
                    let said = started.said();
                    return Err(ClientError::Autostart(format!(
                        "no answer on {endpoint} after {}s ({reason}){}; see {}",
                        AUTOSTART_TIMEOUT.as_secs(),
                        if said.is_empty() { String::new() } else { format!("; the server said: {said}") },
                        started.log.display()
                    )));
                }
            }
            other => return other,
        }
    }
}
