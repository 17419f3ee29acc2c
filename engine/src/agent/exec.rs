//! `exec`: runs a command per turn. The prompt goes to its stdin (then stdin is
//! closed), its stdout is streamed as the agent message, its exit status decides
//! the turn's status, and an interrupt sends SIGINT to its process group, then
//! SIGTERM and SIGKILL after grace periods, and kills any descendant left
//! running. The child is always reaped.

use std::process::Stdio;
use std::time::Duration;

use tandem_protocol::AgentInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::proctree::Descendants;
use super::{Agent, BoxFuture, Cancel, DeltaSink, Outcome, TurnInput};

/// How much of the command's stderr a failed turn reports.
const STDERR_TAIL: usize = 2048;

/// Runs `program args…` for every turn.
#[derive(Debug, Clone)]
pub struct ExecAgent {
    pub program: String,
    pub args: Vec<String>,
    /// Time between the signals of an interrupt (SIGINT, SIGTERM, SIGKILL).
    pub grace: Duration,
    /// Where the command runs (default: the app-server's directory).
    pub cwd: Option<std::path::PathBuf>,
}

impl ExecAgent {
    pub fn new(command: Vec<String>) -> Option<Self> {
        let mut it = command.into_iter();
        let program = it.next()?;
        Some(ExecAgent { program, args: it.collect(), grace: Duration::from_secs(3), cwd: None })
    }

    /// Runs the command in `dir`.
    pub fn in_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.cwd = dir;
        self
    }

    fn command_line(&self) -> String {
        std::iter::once(&self.program).chain(&self.args).cloned().collect::<Vec<_>>().join(" ")
    }
}

impl Agent for ExecAgent {
    fn info(&self) -> AgentInfo {
        AgentInfo { kind: "exec".into(), model: Some(self.command_line()) }
    }

    fn run<'a>(&'a self, input: TurnInput, out: &'a mut dyn DeltaSink, cancel: Cancel) -> BoxFuture<'a, Outcome> {
        Box::pin(self.run_turn(input, out, cancel))
    }
}

impl ExecAgent {
    async fn run_turn(&self, input: TurnInput, out: &mut dyn DeltaSink, mut cancel: Cancel) -> Outcome {
        let mut cmd = turn_command(&self.program, &self.args, &input, self.cwd.as_deref());
        cmd.stdin(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed(format!("could not start `{}`: {e}", self.command_line()));
            }
        };
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let prompt = input.input.into_bytes();
        // A command that never reads its stdin must not stall the turn.
        let feeder = tokio::spawn(async move {
            let _ = stdin.write_all(&prompt).await;
            let _ = stdin.shutdown().await;
        });
        let mut text = Utf8Stream::default();
        let ended = supervise(&mut child, self.grace, &mut cancel, |bytes| {
            if let Some(chunk) = text.push(bytes) {
                out.delta(&chunk);
            }
        })
        .await;
        feeder.abort();
        let (status, tail) = match ended {
            Ended::Interrupted(reason) => return Outcome::Interrupted(reason),
            Ended::Exited { status, stderr_tail } => (status, stderr_tail),
        };
        if let Some(rest) = text.finish() {
            out.delta(&rest);
        }
        match status {
            Ok(s) if s.success() => Outcome::Completed,
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                let how = match (s.code(), s.signal()) {
                    (Some(code), _) => format!("exited with status {code}"),
                    (None, Some(sig)) => format!("was killed by signal {sig}"),
                    _ => "failed".to_owned(),
                };
                let mut msg = format!("`{}` {how}", self.command_line());
                if !tail.is_empty() {
                    msg.push_str(": ");
                    msg.push_str(&tail);
                }
                Outcome::Failed(msg)
            }
            Err(e) => Outcome::Failed(format!("could not wait for `{}`: {e}", self.command_line())),
        }
    }
}

/// A turn's subprocess: its own process group (so an interrupt reaches all
/// of it), the turn's ids in its environment, output piped, killed if dropped.
/// Stdin is null unless the caller pipes it.
pub(super) fn turn_command(
    program: &str,
    args: &[String],
    input: &TurnInput,
    cwd: Option<&std::path::Path>,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("TANDEM_THREAD_ID", &input.thread_id)
        .env("TANDEM_TURN_ID", &input.turn_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// How a turn's subprocess ended.
pub(super) enum Ended {
    /// It exited (or could not be waited for); the tail of its stderr.
    Exited { status: std::io::Result<std::process::ExitStatus>, stderr_tail: String },
    /// The turn was interrupted; the child has been stopped and reaped.
    Interrupted(Option<String>),
}

/// Runs a spawned turn subprocess to its end: hands every chunk of its stdout
/// to `on_output`, and waits for its exit, its output and an interrupt
/// together — so a background process that inherited stdout cannot keep the
/// turn running after the command has exited (it gets [`DRAIN`], then its
/// process group is killed).
///
/// An interrupt is what Ctrl-C in a terminal would do, then firmer: SIGINT to
/// the process group (codex kills the commands it started, claude records the
/// interruption), SIGTERM after `grace`, SIGKILL after another `grace`. Output
/// keeps flowing to `on_output` meanwhile, so what the agent says while it
/// stops is not lost. Once it has exited, every descendant still running —
/// also those in sessions of their own, which no group signal reaches — is
/// killed.
pub(super) async fn supervise(
    child: &mut tokio::process::Child,
    grace: Duration,
    cancel: &mut Cancel,
    mut on_output: impl FnMut(&[u8]),
) -> Ended {
    let pid = child.id();
    let stderr = spawn_stderr_tail(child.stderr.take().expect("stderr is piped"));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdout_open = true;
    let mut exited = None;
    let mut drain_until = None;
    let mut stopping: Option<Stopping> = None;
    let mut tree = Descendants::default();
    let mut tick = tokio::time::interval(TREE_REFRESH);
    while stdout_open || exited.is_none() {
        let escalate_at = stopping.as_ref().and_then(|s| s.next);
        tokio::select! {
            reason = cancel.cancelled(), if stopping.is_none() && exited.is_none() => {
                if let Some(pid) = pid {
                    tree.refresh(pid);
                    signal_group(pid, libc::SIGINT);
                }
                stopping = Some(Stopping { reason, sent: libc::SIGINT, next: Some(tokio::time::Instant::now() + grace) });
            }
            _ = sleep_until(escalate_at), if exited.is_none() => {
                let s = stopping.as_mut().expect("a deadline is set only while stopping");
                let signal = if s.sent == libc::SIGINT { libc::SIGTERM } else { libc::SIGKILL };
                if let Some(pid) = pid {
                    tree.refresh(pid);
                    signal_group(pid, signal);
                }
                s.sent = signal;
                s.next = (signal == libc::SIGTERM).then(|| tokio::time::Instant::now() + grace);
                if signal == libc::SIGKILL {
                    let _ = child.start_kill();
                }
            }
            _ = tick.tick(), if stopping.is_some() && exited.is_none() => {
                // Commands started after the interrupt are descendants too.
                if let Some(pid) = pid {
                    tree.refresh(pid);
                }
            }
            read = stdout.read(&mut buf), if stdout_open => match read {
                Ok(0) | Err(_) => stdout_open = false,
                Ok(n) => on_output(&buf[..n]),
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some(status);
                drain_until = Some(tokio::time::Instant::now() + DRAIN);
            }
            _ = sleep_until(drain_until), if stdout_open => {
                // The command is gone but something it started still holds
                // its output: that is no longer this turn's business.
                if let Some(pid) = pid {
                    signal_group(pid, libc::SIGKILL);
                }
                stdout_open = false;
            }
        }
    }
    let tail = tokio::time::timeout(DRAIN, stderr).await.ok().and_then(Result::ok).unwrap_or_default();
    if let Some(s) = stopping {
        if let Some(pid) = pid {
            signal_group(pid, libc::SIGKILL); // stragglers in the group
        }
        let survivors = tree.kill_survivors();
        if survivors > 0 {
            tracing::info!(survivors, "killed what the interrupted agent left running");
        }
        return Ended::Interrupted(s.reason);
    }
    Ended::Exited { status: exited.expect("the loop ends once the command has exited"), stderr_tail: tail_text(tail) }
}

/// An interrupt in progress: why, the last signal sent, when to send the next.
struct Stopping {
    reason: Option<String>,
    sent: i32,
    next: Option<tokio::time::Instant>,
}

/// How long output may keep coming after the command itself has exited.
const DRAIN: Duration = Duration::from_millis(500);

/// How often an interrupted agent's process tree is looked at again while it
/// stops, so commands it starts meanwhile are known before they are orphaned.
const TREE_REFRESH: Duration = Duration::from_millis(100);

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Collects the last [`STDERR_TAIL`] bytes a child writes to stderr.
fn spawn_stderr_tail(mut stderr: tokio::process::ChildStderr) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        tail
    })
}

/// The stderr tail as trimmed text.
fn tail_text(tail: Vec<u8>) -> String {
    String::from_utf8_lossy(&tail[tail.len().saturating_sub(STDERR_TAIL)..]).trim().to_owned()
}

fn signal_group(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created
    // for the child (process_group(0) makes its pgid equal its pid).
    unsafe {
        libc::kill(-(pid as i32), sig);
    }
}

/// Turns a byte stream into UTF-8 text without splitting characters between
/// deltas; invalid bytes become U+FFFD.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked valid"));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            // An incomplete character at the end: wait for the rest.
                            self.pending.drain(..valid);
                            break;
                        }
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_keeps_characters_whole() {
        let mut s = Utf8Stream::default();
        let bytes = "héllo €".as_bytes();
        let mut out = String::new();
        for b in bytes {
            out.extend(s.push(std::slice::from_ref(b)));
        }
        assert_eq!(out, "héllo €");
        assert_eq!(s.push(b"a\xffb").as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(s.push(b"\xe2\x82").as_deref(), None);
        assert_eq!(s.finish().as_deref(), Some("\u{FFFD}"));
    }
}
