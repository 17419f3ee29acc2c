//! A real `tandem hub` on a free port (bound to :0, the port read from its
//! first line), and what curl would do against it: plain HTTP/1.1 requests
//! and the poll and live WebSockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;

use super::{Home, PATIENCE, Server};

/// A hub process and where it listens.
pub struct Hub {
    pub server: Server,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The SQLite file (empty on other databases).
    pub db: PathBuf,
}

impl Hub {
    /// `tandem hub` on a free loopback port, its database in `home`.
    pub fn start(home: &Home, extra: &[&str]) -> Hub {
        Hub::start_at(home, "127.0.0.1:0", extra)
    }

    /// `tandem hub --listen ADDR` (port 0: a free one); its database in `home`.
    pub fn start_at(home: &Home, listen: &str, extra: &[&str]) -> Hub {
        Hub::start_env(home, listen, extra, &[])
    }

    /// [`Hub::start_at`] with extra environment variables (`RUST_LOG`).
    pub fn start_env(home: &Home, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Hub {
        let db = home.path().join("hub.db");
        let mut hub = Hub::start_on(home, listen, &format!("sqlite:{}", db.display()), extra, env);
        hub.db = db;
        hub
    }

    /// `tandem hub --listen ADDR --database URL` (a PostgreSQL URL: one replica).
    pub fn start_on(home: &Home, listen: &str, database: &str, extra: &[&str], env: &[(&str, &str)]) -> Hub {
        let db = PathBuf::new();
        let mut cmd = home.tandem();
        cmd.envs(env.iter().copied());
        cmd.args(["hub", "--listen", listen, "--database", database])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn hub");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let mut server = Server { child };
        let addr = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("hub did not say where it listens: {first:?} {}", server.stderr()))
            .to_owned();
        Hub { server, addr, db }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One request; the answer.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Reply {
        http(&self.addr, method, path, body)
    }

    /// `request` with a JSON body.
    pub fn json(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.request(method, path, &body.to_string())
    }

    /// `POST /api/share`: `(id, url, secret)`.
    pub fn create(&self, thread: &str) -> (String, String, String) {
        let r = self.json("POST", "/api/share", &serde_json::json!({ "threadId": thread }));
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned();
        (s("id"), s("url"), s("secret"))
    }

    /// `GET /api/share/{id}/poll`, connected.
    pub fn poll(&self, id: &str) -> Poll {
        self.socket(&format!("/api/share/{id}/poll"))
    }

    /// `GET /api/share/{id}/live?after=SEQ`, connected.
    pub fn live(&self, id: &str, after: u64) -> Poll {
        self.socket(&format!("/api/share/{id}/live?after={after}"))
    }

    /// A WebSocket to `path`, connected.
    pub fn socket(&self, path: &str) -> Poll {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let (ws, _) =
            tungstenite::client(format!("ws://{}{path}", self.addr), stream).unwrap_or_else(|e| panic!("{path}: {e}"));
        Poll { ws }
    }
}

impl Hub {
    /// The HTTP status a poll handshake gets (101 when it is taken).
    pub fn poll_status(&self, id: &str) -> u16 {
        self.socket_status(&format!("/api/share/{id}/poll"))
    }

    /// The HTTP status a WebSocket handshake to `path` gets (101 when it is taken).
    pub fn socket_status(&self, path: &str) -> u16 {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        match tungstenite::client(format!("ws://{}{path}", self.addr), stream) {
            Ok(_) => 101,
            Err(tungstenite::handshake::HandshakeError::Failure(tungstenite::Error::Http(res))) => {
                res.status().as_u16()
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> Reply {
    http_with(addr, method, path, &[], body)
}

/// [`http`] with extra header lines (`("X-Forwarded-For", "…")`).
pub fn http_with(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading all of a big body.
    let _ = s.write_all(body.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Reply { status, headers, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// A poll or live WebSocket.
pub struct Poll {
    ws: tungstenite::WebSocket<TcpStream>,
}

impl Poll {
    /// Items until the hub closes the socket, and its close frame (code, reason).
    pub fn rest(&mut self) -> (Vec<Value>, Option<(u16, String)>) {
        let mut items = Vec::new();
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => items.push(serde_json::from_str(&t).unwrap()),
                Ok(tungstenite::Message::Close(frame)) => {
                    return (items, frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Ok(_) => {}
                Err(_) => return (items, None),
            }
        }
    }

    /// The next item; `None` once the hub closed the socket.
    pub fn next(&mut self) -> Option<Value> {
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Items until one satisfies `done` (included).
    pub fn until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let item = self.next().unwrap_or_else(|| panic!("poll closed after {got:?}"));
            let stop = done(&item);
            got.push(item);
            if stop {
                return got;
            }
        }
    }
}

/// Every file under `dir` (recursively) whose bytes contain `needle`, with
/// the sizes of all files looked at (to show the check saw the WAL).
pub fn files_holding(dir: &std::path::Path, needle: &str) -> (Vec<PathBuf>, Vec<(PathBuf, u64)>) {
    let mut holding = Vec::new();
    let mut seen = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let Ok(bytes) = std::fs::read(&p) else { continue };
        seen.push((p.clone(), bytes.len() as u64));
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            holding.push(p);
        }
    }
    (holding, seen)
}
