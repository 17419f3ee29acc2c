//! Test harness: every test gets its own `TANDEM_HOME` in a fresh temp dir, runs
//! the real `tandem` binary, and talks to real servers over real sockets.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod pg;
pub mod web;

pub const BIN: &str = env!("CARGO_BIN_EXE_tandem");

/// How long a test waits for something that should happen before declaring a
/// hang. Generous: these machines are small and shared.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// An isolated data directory.
pub struct Home {
    dir: tempfile::TempDir,
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self
    }
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new().prefix("tdm").tempdir_in("/tmp").expect("temp dir");
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("app-server.sock")
    }

    /// The server's endpoint as `--server` takes it.
    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    /// `tandem` with this home and nothing from the caller's environment.
    pub fn tandem(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("TANDEM_HOME", self.path())
            .env_remove("TANDEM_SERVER")
            .env_remove("TANDEM_AGENT")
            .env_remove("TANDEM_ECHO_DELAY_MS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Runs `tandem ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = self.tandem().args(args).output().expect("run tandem");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `tandem ARGS` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Out {
        let mut child = self
            .tandem()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `tandem ARGS` with `stdin` (a file, or bytes written from a
    /// thread), killing it and panicking if it has not finished within
    /// `limit`: for what used to hang.
    pub fn run_within(&self, args: &[&str], stdin: Input, limit: Duration) -> Out {
        let mut cmd = self.tandem();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let feed = match stdin {
            Input::Null => None,
            Input::File(path) => {
                cmd.stdin(std::fs::File::open(path).expect("open the input file"));
                None
            }
            Input::Bytes(bytes) => {
                cmd.stdin(Stdio::piped());
                Some(bytes)
            }
        };
        let mut child = cmd.spawn().expect("run tandem");
        if let Some(bytes) = feed {
            let mut w = child.stdin.take().unwrap();
            // It may stop reading early (and exit): a broken pipe is fine.
            std::thread::spawn(move || drop(w.write_all(&bytes)));
        }
        let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = so.read_to_string(&mut s);
            s
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`tandem {}` did not finish within {limit:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out { code: status.code().unwrap_or(-1), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    }

    /// Starts `tandem app-server ARGS` in the foreground and waits until its
    /// default socket answers.
    pub fn serve(&self, args: &[&str]) -> Server {
        self.serve_env(args, &[])
    }

    /// [`Home::serve`] with extra environment variables for the server.
    pub fn serve_env(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = self.tandem();
        cmd.arg("app-server").args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut server = Server { child: cmd.spawn().expect("spawn app-server") };
        wait_for("the app-server to answer", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("app-server exited ({status}): {}", server.stderr());
            }
            UnixStream::connect(self.socket()).is_ok()
        });
        server
    }

    /// A new thread on the running server; its id.
    pub fn new_thread(&self) -> String {
        let out = self.run(&["share", "new", "--server", self.socket().to_str().unwrap()]).ok();
        out.stdout.trim().to_owned()
    }

    /// `tandem share ARGS --server SOCKET`.
    pub fn share(&self, args: &[&str]) -> Out {
        let sock = self.socket();
        let mut all = vec!["share"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", sock.to_str().unwrap()]);
        self.run(&all)
    }

    /// The seq of the thread's last event.
    pub fn last_seq(&self, thread: &str) -> u64 {
        self.events(thread).last().unwrap()["seq"].as_u64().unwrap()
    }

    /// `share get --json` of the whole thread.
    pub fn events(&self, thread: &str) -> Vec<Value> {
        self.run(&["share", "get", "--thread", thread, "--json", "--server", self.socket().to_str().unwrap()])
            .ok()
            .json_lines()
    }

    /// A raw NDJSON connection to the server.
    pub fn raw(&self) -> Raw {
        Raw::connect(&self.socket())
    }
}

/// What [`Home::run_within`] gives the command on stdin.
pub enum Input {
    Null,
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// A foreground app-server; SIGTERMed (then killed) when dropped.
pub struct Server {
    pub child: Child,
}

impl Server {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "app-server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its stderr, once it has exited.
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Stops the background (autostarted) server of a home when dropped.
pub struct StopOnDrop<'a>(pub &'a Home);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["app-server", "stop"]);
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`: resident now, `VmHWM`: the
/// peak so far).
pub fn proc_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Polls `cond` until it holds; panics naming `what` after [`PATIENCE`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw JSON-RPC connection: what `socat` or a 10-line script would do.
pub struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Notifications read while waiting for a response.
    pub notes: VecDeque<Value>,
}

impl Raw {
    pub fn connect(path: &Path) -> Raw {
        let stream = UnixStream::connect(path).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Raw { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream, next_id: 1, notes: VecDeque::new() }
    }

    /// The writing half, for tests that write without waiting for answers.
    pub fn writer_mut(&mut self) -> &mut UnixStream {
        &mut self.writer
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next line the server sends, exactly as sent (without the newline);
    /// `None` once the server has closed the connection.
    pub fn read_line_raw(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read from server (timed out?)");
        (n > 0).then(|| line.trim_end_matches('\n').to_owned())
    }

    /// The next line the server sends, parsed.
    pub fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read from server (timed out?)");
        assert!(n > 0, "server closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Sends a request and returns the whole response object.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string() + "\n";
        self.send_raw(line.as_bytes());
        loop {
            let msg = self.read();
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
            self.notes.push_back(msg);
        }
    }

    /// Sends a request; returns its result, panicking on an error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        match r.get("result") {
            Some(v) => v.clone(),
            None => panic!("{method} failed: {r}"),
        }
    }

    /// The next `thread/event` notification's event.
    pub fn next_event(&mut self) -> Value {
        let msg = match self.notes.pop_front() {
            Some(m) => m,
            None => self.read(),
        };
        assert_eq!(msg["method"], "thread/event", "{msg}");
        msg["params"]["result"].clone()
    }

    /// Events until (and including) the `turn/completed` of `turn`.
    pub fn events_until_completed(&mut self, turn: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let ev = self.next_event();
            let done = ev["type"] == "turn/completed" && ev["turnId"] == turn;
            out.push(ev);
            if done {
                return out;
            }
        }
    }
}

/// Asserts `events` have seqs `first, first+1, …` with no gap or repeat.
pub fn assert_contiguous(events: &[Value], first: u64) {
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev["seq"].as_u64(), Some(first + i as u64), "event {i} out of order: {ev}");
    }
}

/// A prompt of `n` words.
pub fn words(n: usize) -> String {
    (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

/// A running `tandem share tail --json`, read line by line on a thread.
pub struct Tail {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Tail {
    pub fn start(home: &Home, args: &[&str]) -> Tail {
        let mut cmd = home.tandem();
        cmd.args(["share", "tail", "--json", "--server", &format!("unix:{}", home.socket().display())]).args(args);
        Tail::spawn(cmd)
    }

    /// Runs `cmd` (a `tandem share tail --json …`) and reads its lines.
    pub fn spawn(mut cmd: Command) -> Tail {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn tail");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Tail { child, lines: rx }
    }

    /// Events until (and including) the first one `done` accepts.
    pub fn until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let line = self.lines.recv_timeout(PATIENCE).expect("tail printed nothing more (hung or exited)");
            let ev: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let stop = done(&ev);
            out.push(ev);
            if stop {
                return out;
            }
        }
    }

    /// The next `n` lines exactly as printed.
    pub fn raw_lines(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.lines.recv_timeout(PATIENCE).expect("tail printed nothing more (hung or exited)")).collect()
    }

    /// The next event if one comes within `wait` (for polling, not asserting).
    pub fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(wait).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
    }

    /// Waits for the tail process to exit; its exit code.
    pub fn wait(&mut self) -> i32 {
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
pub mod hub;
