//! Autostart: a client aimed at the default endpoint starts the app-server in
//! the background when none answers, then waits until it does. Several clients
//! racing to start one is fine: the data directory's lock lets one server win,
//! and every client connects to it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tandem_protocol::ClientInfo;

use super::{Client, ClientError, Endpoint};
use tandem_home::Home;

/// How long a client waits for an autostarted server to answer.
pub const AUTOSTART_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `exe app-server --listen unix ARGS…` detached from this terminal
/// (its own session; output to `logs/app-server.stderr`).
pub fn start_background(home: &Home, exe: &Path, args: &[OsString]) -> std::io::Result<Child> {
    home.ensure()?;
    let stderr = tandem_home::open_private(&home.logs_dir().join("app-server.stderr"), tandem_home::Access::Append)?;
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
    cmd.spawn()
}

/// Connects to the default server of `home`, starting it if nobody answers.
pub async fn connect_or_start(home: &Home, exe: &Path, info: ClientInfo) -> Result<Client, ClientError> {
    let endpoint = Endpoint::Unix(home.socket_path());
    match Client::connect(&endpoint, info.clone()).await {
        Err(ClientError::Unreachable { .. }) => {}
        other => return other,
    }
    let mut child = start_background(home, exe, &[])
        .map_err(|e| ClientError::Autostart(format!("cannot run {}: {e}", exe.display())))?;
    let deadline = tokio::time::Instant::now() + AUTOSTART_TIMEOUT;
    let mut exited = None;
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        match Client::connect(&endpoint, info.clone()).await {
            Err(ClientError::Unreachable { reason, .. }) => {
                if exited.is_none() {
                    // Reap it if it exited: it may have lost the start race to
                    // another client's server, which will answer shortly.
                    exited = child.try_wait().ok().flatten();
                }
                if tokio::time::Instant::now() >= deadline {
                    let log = home.logs_dir().join("app-server.stderr");
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail = tail
                        .lines()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join(" | ");
                    return Err(ClientError::Autostart(format!(
                        "no answer on {endpoint} after {}s ({reason}){}; see {}",
                        AUTOSTART_TIMEOUT.as_secs(),
                        if tail.is_empty() { String::new() } else { format!("; the server said: {tail}") },
                        log.display()
                    )));
                }
            }
            other => return other,
        }
    }
}
