//! Web helpers: a server with an http listener on a free port, plain HTTP
//! requests and WebSocket handshakes over std sockets, and a JSON-RPC client
//! over a real WebSocket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use super::*;

/// A foreground app-server with a unix socket and an http listener.
pub struct WebServer {
    pub server: Server,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl WebServer {
    pub fn start(home: &Home, extra: &[&str]) -> WebServer {
        let mut args = vec!["--listen", "unix", "--listen", "http://127.0.0.1:0"];
        args.extend_from_slice(extra);
        let server = home.serve(&args);
        WebServer::ready(home, server)
    }

    /// [`WebServer::start`] with the server's open-file limit (soft and hard)
    /// set to `nofile`, as a small `ulimit -n` would.
    pub fn start_with_file_limit(home: &Home, extra: &[&str], nofile: u64) -> WebServer {
        use std::os::unix::process::CommandExt;
        let mut cmd = home.tandem();
        cmd.args(["app-server", "--listen", "unix", "--listen", "http://127.0.0.1:0"]).args(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut server = Server { child: cmd.spawn().expect("spawn app-server") };
        wait_for("the app-server to answer", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("app-server exited ({status}): {}", server.stderr());
            }
            std::os::unix::net::UnixStream::connect(home.socket()).is_ok()
        });
        WebServer::ready(home, server)
    }

    fn ready(home: &Home, server: Server) -> WebServer {
        // Under a connection limit of 1 the readiness probe's slot may not be
        // free yet: ask again until the answer is not a refusal.
        let mut init = Value::Null;
        wait_for("initialize on the unix socket", || {
            let Ok(mut stream) = std::os::unix::net::UnixStream::connect(home.socket()) else { return false };
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let req = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"test"}}});
            if stream.write_all(format!("{req}\n").as_bytes()).is_err() {
                return false;
            }
            let mut line = String::new();
            let _ = BufReader::new(stream).read_line(&mut line);
            init = serde_json::from_str::<Value>(&line).map(|v| v["result"].clone()).unwrap_or(Value::Null);
            !init.is_null()
        });
        let url = init["serverInfo"]["listeners"]
            .as_array()
            .expect("listeners in initialize")
            .iter()
            .filter_map(Value::as_str)
            .find(|l| l.starts_with("http://"))
            .expect("an http listener")
            .to_owned();
        WebServer { server, url }
    }

    /// `HOST:PORT`.
    pub fn host(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    /// `ws://HOST:PORT/rpc`.
    pub fn ws(&self) -> String {
        format!("ws://{}/rpc", self.host())
    }
}

/// The owner token of a home.
pub fn owner_token(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("owner-token")).expect("owner-token").trim().to_owned()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `GET path` with extra header lines; reads the status, headers and (for
/// anything but a 101) the body to the end.
pub fn http_get(host: &str, path: &str, headers: &[(&str, &str)]) -> HttpAnswer {
    let mut stream = TcpStream::connect(host).expect("connect to the http listener");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    read_answer(BufReader::new(stream), false)
}

/// Reads an HTTP answer: status, headers and, for anything but a 101, the
/// body — `Content-Length` bytes, or to the end on a closed connection
/// (`kept_alive`: no length means no body).
fn read_answer(mut reader: BufReader<TcpStream>, kept_alive: bool) -> HttpAnswer {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        panic!("not an HTTP answer: {status_line:?}");
    });
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut body = String::new();
    if status != 101 {
        let len = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.clone());
        match len.and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => {
                let mut buf = vec![0u8; n];
                reader.read_exact(&mut buf).unwrap();
                body = String::from_utf8_lossy(&buf).into_owned();
            }
            None if kept_alive => {}
            None => {
                let _ = reader.read_to_string(&mut body);
            }
        }
    }
    HttpAnswer { status, headers, body }
}

/// The headers of a WebSocket handshake to `/rpc`, plus `extra`.
pub fn ws_handshake(host: &str, extra: &[(&str, &str)]) -> HttpAnswer {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    headers.extend_from_slice(extra);
    // `Connection: close` from http_get would fight `Connection: Upgrade`;
    // write the request by hand.
    let mut stream = TcpStream::connect(host).expect("connect to the http listener");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    // An explicit Host in `extra` replaces the real one.
    let host_header = extra.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map_or(host, |(_, v)| *v);
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("host"));
    let mut req = format!("GET /rpc HTTP/1.1\r\nHost: {host_header}\r\n");
    for (k, v) in &headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    // The connection may be kept alive: read exactly the body.
    read_answer(BufReader::new(stream), true)
}

/// A JSON-RPC client over a real WebSocket.
pub struct WsRpc {
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    pub notes: std::collections::VecDeque<Value>,
}

impl WsRpc {
    /// Connects to `/rpc` with `Authorization: Bearer token`.
    pub fn connect(web: &WebServer, token: &str) -> WsRpc {
        use tungstenite::client::IntoClientRequest;
        let mut req = web.ws().into_client_request().unwrap();
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let stream = TcpStream::connect(web.host()).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let (socket, res) = tungstenite::client(req, stream).expect("WebSocket handshake");
        assert_eq!(res.status(), 101);
        WsRpc { socket, next_id: 1, notes: Default::default() }
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.socket.send(tungstenite::Message::Binary(bytes.to_vec().into())).unwrap();
    }

    pub fn send_text(&mut self, text: &str) {
        self.socket.send(tungstenite::Message::Text(text.into())).unwrap();
    }

    /// The next text frame, parsed; `None` once the server closed.
    pub fn read(&mut self) -> Option<Value> {
        loop {
            match self.socket.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("{e}: {t}")));
                }
                Ok(tungstenite::Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return None,
                Err(e) => panic!("reading the WebSocket: {e}"),
            }
        }
    }

    /// The next text frame, parsed; `None` once the server closed or dropped
    /// the connection (a reset included).
    pub fn read_or_gone(&mut self) -> Option<Value> {
        loop {
            match self.socket.read() {
                Ok(tungstenite::Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string());
        loop {
            let msg = self.read().expect("the server closed the WebSocket");
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
            self.notes.push_back(msg);
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        match r.get("result") {
            Some(v) => v.clone(),
            None => panic!("{method} failed: {r}"),
        }
    }

    /// The next notification (any method).
    pub fn next_note(&mut self) -> Value {
        match self.notes.pop_front() {
            Some(m) => m,
            None => self.read().expect("the server closed the WebSocket"),
        }
    }
}

/// `tandem share link --thread T ARGS --json` on the home's socket: the URL
/// and the token.
pub fn make_link(home: &Home, thread: &str, args: &[&str]) -> (String, String, String) {
    let sock = home.endpoint();
    let mut all = vec!["share", "link", "--thread", thread, "--json", "--server", &sock];
    all.extend_from_slice(args);
    let v = home.run(&all).ok().json_lines().remove(0);
    (
        v["url"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
        v["link"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Connects a WebSocket with `token`; the handshake's status when refused.
pub fn try_ws(web: &WebServer, token: &str) -> Result<WsRpc, u16> {
    use tungstenite::client::IntoClientRequest;
    let mut req = web.ws().into_client_request().unwrap();
    req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let stream = TcpStream::connect(web.host()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    match tungstenite::client(req, stream) {
        Ok((socket, _)) => Ok(WsRpc { socket, next_id: 1, notes: Default::default() }),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(res))) => Err(res.status().as_u16()),
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}
