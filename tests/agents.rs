//! Real agents behind turns, against real counterparts: the `openai` backend
//! against an HTTP server in this test that streams SSE, and the `codex` and
//! `claude` adapters against executables that replay those tools' documented
//! JSON streams (fixtures in tests/fixtures/agents, sources in FORMATS.md).
//! Also: which agent the configuration picks (flag > env > file > default).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// What the fake OpenAI-compatible server saw of one request.
#[derive(Debug)]
struct Seen {
    auth: Option<String>,
    body: Value,
}

/// An HTTP/1.1 server on 127.0.0.1 that answers `/v1/chat/completions` by the
/// last user message: "fail 401", "fail 500", "hang", "garbage", "slow" (one
/// chunk, then waits for the client to hang up), else a 3-chunk stream.
struct FakeOpenAi {
    port: u16,
    seen: mpsc::Receiver<Seen>,
    hung_up: mpsc::Receiver<()>,
}

impl FakeOpenAi {
    fn start() -> FakeOpenAi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, seen) = mpsc::channel();
        let (hung_tx, hung_up) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (seen_tx, hung_tx) = (seen_tx.clone(), hung_tx.clone());
                std::thread::spawn(move || serve_one(stream, seen_tx, hung_tx));
            }
        });
        FakeOpenAi { port, seen, hung_up }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn next_request(&self) -> Seen {
        self.seen.recv_timeout(PATIENCE).expect("the agent made no request")
    }
}

fn serve_one(mut stream: TcpStream, seen: mpsc::Sender<Seen>, hung_up: mpsc::Sender<()>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    let mut auth = None;
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap(),
            "authorization" => auth = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(request_line.starts_with("POST /v1/chat/completions "), "{request_line}");
    let prompt = body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_owned();
    seen.send(Seen { auth, body }).unwrap();
    let chunk = |text: &str| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": text}}]}));
    let sse_head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    match prompt.as_str() {
        "fail 401" => {
            let b = r#"{"error":{"message":"Incorrect API key provided: sk-te***","type":"invalid_request_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            );
        }
        "fail 500" => {
            let b = "upstream model crashed";
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            );
        }
        "hang" => std::thread::sleep(Duration::from_secs(30)),
        "garbage" => {
            let _ = write!(stream, "{sse_head}{}data: {{not json\n\n", chunk("partial "));
        }
        "slow" => {
            let _ = write!(stream, "{sse_head}{}", chunk("first words "));
            let _ = stream.flush();
            // Keep the stream open until the client closes it.
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut buf = [0u8; 16];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = hung_up.send(());
        }
        _ => {
            let _ = write!(stream, "{sse_head}");
            for piece in ["Hel", "lo, ", &format!("you said: {prompt}")] {
                let _ = write!(stream, "{}", chunk(piece));
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = write!(
                stream,
                "data: {}\n\ndata: [DONE]\n\n",
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            );
        }
    }
}

fn post_json(home: &Home, thread: &str, prompt: &str) -> (i32, Vec<Value>) {
    let out =
        home.run(&["share", "post", "--thread", thread, "--prompt", prompt, "--json", "--server", &home.endpoint()]);
    (out.code, out.json_lines())
}

fn completion(events: &[Value]) -> &Value {
    events.iter().find(|e| e["type"] == "turn/completed").expect("no turn/completed")
}

#[test]
fn openai_streams_in_order_with_history_and_fails_clearly() {
    let fake = FakeOpenAi::start();
    let home = Home::new();
    let base = fake.base_url();
    let _server = home.serve_env(
        &[
            "--agent",
            "openai",
            "--base-url",
            &base,
            "--model",
            "tiny-1",
            "--api-key-env",
            "FAKE_KEY",
            "--request-timeout",
            "2",
            "--system-prompt",
            "be brief",
        ],
        &[("FAKE_KEY", "sk-test-secret")],
    );
    let id = home.new_thread();

    let (code, events) = post_json(&home, &id, "first question");
    assert_eq!(code, 0, "{events:?}");
    let req = fake.next_request();
    assert_eq!(req.auth.as_deref(), Some("Bearer sk-test-secret"));
    assert_eq!(req.body["model"], "tiny-1");
    assert_eq!(req.body["stream"], true);
    assert_eq!(
        req.body["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "first question"}])
    );
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "item/agentMessage/delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Hel", "lo, ", "you said: first question"]);
    assert_eq!(events[0]["agent"], json!({"kind": "openai", "model": "tiny-1"}));

    // The second turn carries the first as history.
    let (code, _) = post_json(&home, &id, "second");
    assert_eq!(code, 0);
    let req = fake.next_request();
    assert_eq!(
        req.body["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "Hello, you said: first question"},
            {"role": "user", "content": "second"}
        ])
    );

    for (prompt, needles) in [
        ("fail 401", vec!["401 Unauthorized", "/v1/chat/completions", "Incorrect API key provided", "$FAKE_KEY"]),
        ("fail 500", vec!["500 Internal Server Error", "upstream model crashed"]),
        ("hang", vec!["no answer within 2s"]),
        ("garbage", vec!["malformed stream", "/v1/chat/completions"]),
    ] {
        let (code, events) = post_json(&home, &id, prompt);
        assert_eq!(code, 1, "{prompt}: {events:?}");
        let done = completion(&events);
        assert_eq!(done["status"], "failed", "{prompt}");
        let error = done["error"].as_str().unwrap();
        for n in needles {
            assert!(error.contains(n), "{prompt}: {error:?} lacks {n:?}");
        }
        fake.next_request();
    }

    // The key never reaches the log or the database.
    for f in ["tandem.db", "tandem.db-wal", "logs/app-server.log"] {
        let bytes = std::fs::read(home.path().join(f)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains("sk-test-secret"), "the API key is in {f}");
    }
}

#[test]
fn openai_interrupt_closes_the_stream_and_refused_connections_fail() {
    let fake = FakeOpenAi::start();
    let home = Home::new();
    let _server = home.serve(&["--agent", "openai", "--base-url", &fake.base_url(), "--model", "m"]);
    let id = home.new_thread();
    let turn = home
        .run(&["share", "post", "--thread", &id, "--prompt", "slow", "--no-wait", "--server", &home.endpoint()])
        .ok();
    let turn = turn.stdout.trim().to_owned();
    fake.next_request();
    let mut raw = home.raw();
    raw.call("thread/subscribe", json!({"threadId": id, "from": 1}));
    loop {
        if raw.next_event()["type"] == "item/agentMessage/delta" {
            break;
        }
    }
    home.run(&["share", "interrupt", "--thread", &id, "--server", &home.endpoint()]).ok();
    let events = raw.events_until_completed(&turn);
    assert_eq!(events.last().unwrap()["status"], "interrupted");
    fake.hung_up.recv_timeout(PATIENCE).expect("the HTTP stream was not closed");

    // Nobody listening: a failed turn naming the endpoint, not a hang.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let home2 = Home::new();
    let _s2 = home2.serve(&["--agent", "openai", "--base-url", &format!("http://127.0.0.1:{port}/v1")]);
    let id2 = home2.new_thread();
    let (code, events) = post_json(&home2, &id2, "anyone?");
    assert_eq!(code, 1);
    let error = completion(&events)["error"].as_str().unwrap().to_owned();
    assert!(error.contains(&format!("127.0.0.1:{port}")) && error.contains("cannot connect"), "{error}");
}

/// Writes an executable that records its arguments and replays a fixture:
/// `fail` in the prompt → the failing stream (exit 1), `hang` → the first line,
/// then it sleeps; otherwise the good stream.
fn fake_cli(home: &Home, name: &str) -> (PathBuf, PathBuf) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/agents");
    let fixtures = fixtures.canonicalize().unwrap();
    let log = home.path().join(format!("{name}.args"));
    let pidfile = home.path().join(format!("{name}.pid"));
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> {log}
echo $$ > {pid}
case "$*" in
  *fail*) cat {fx}/{name}-fail.jsonl; echo "auth trouble" >&2; exit 1 ;;
  *hang*) head -n 1 {fx}/{name}-ok.jsonl; exec sleep 1000 ;;
  *) cat {fx}/{name}-ok.jsonl ;;
esac
"#,
        log = log.display(),
        pid = pidfile.display(),
        fx = fixtures.display(),
    );
    let path = home.path().join(format!("fake-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, log)
}

fn cli_agent_round(name: &str, session: &str, first_text: &str, item_types: &[&str], auth_hint: &str) {
    let home = Home::new();
    let (program, log) = fake_cli(&home, name);
    std::fs::write(
        home.path().join("config.toml"),
        format!("agent = \"{name}\"\n[{name}]\nprogram = \"{}\"\nmodel = \"m1\"\n", program.display()),
    )
    .unwrap();
    let _server = home.serve(&[]);
    let id = home.new_thread();

    let (code, events) = post_json(&home, &id, "fix the typo");
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(events[0]["agent"], json!({"kind": name, "model": "m1"}));
    let items: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "item/completed")
        .map(|e| e["item"]["type"].as_str().unwrap())
        .filter(|t| *t != "agentMessage")
        .collect();
    assert_eq!(items, item_types);
    let message =
        events.iter().rev().find(|e| e["type"] == "item/completed" && e["item"]["type"] == "agentMessage").unwrap();
    assert!(message["item"]["text"].as_str().unwrap().starts_with(first_text), "{message}");
    let human = home.run(&["share", "get", "--thread", &id, "--server", &home.endpoint()]).ok().stdout;
    assert!(human.contains("$ ") && human.contains("~ edited"), "{human}");

    // The next turn resumes the recorded session.
    let (code, _) = post_json(&home, &id, "and again");
    assert_eq!(code, 0);
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert!(!calls[0].contains(session), "{calls:?}");
    assert!(calls[1].contains(session), "the second turn did not resume {session}: {calls:?}");

    // A failing run: failed, with the command tried and what to do.
    let (code, events) = post_json(&home, &id, "please fail");
    assert_eq!(code, 1);
    let error = completion(&events)["error"].as_str().unwrap().to_owned();
    assert!(error.contains(&program.display().to_string()) && error.contains(auth_hint), "{error}");

    // Interrupt: the process is stopped and reaped.
    let turn = home
        .run(&["share", "post", "--thread", &id, "--prompt", "hang", "--no-wait", "--server", &home.endpoint()])
        .ok();
    let turn = turn.stdout.trim().to_owned();
    let pidfile = home.path().join(format!("{name}.pid"));
    let mut pid = 0;
    wait_for("the fake CLI to start", || {
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        pid = std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
        calls.lines().count() == 4 && pid > 0
    });
    home.run(&["share", "interrupt", "--thread", &id, "--server", &home.endpoint()]).ok();
    let mut raw = home.raw();
    raw.call("thread/subscribe", json!({"threadId": id, "from": 1}));
    let events = raw.events_until_completed(&turn);
    assert_eq!(events.last().unwrap()["status"], "interrupted");
    wait_for("the CLI to be reaped", || unsafe { libc::kill(pid, 0) } != 0);
}

#[test]
fn codex_adapter_maps_items_resumes_fails_and_interrupts() {
    cli_agent_round(
        "codex",
        "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "Fixed the typo",
        &["agentSession", "commandExecution", "fileChange", "commandExecution"],
        "codex login",
    );
}

#[test]
fn claude_adapter_maps_items_resumes_fails_and_interrupts() {
    cli_agent_round(
        "claude",
        "8f0c2b7e-5d1a-4c3e-9a6b-2e7f4d1c0a93",
        "I'll look at the greeting helper first.",
        &["agentSession", "commandExecution", "fileChange"],
        "/login",
    );
}

#[test]
fn a_missing_cli_fails_the_turn_naming_it() {
    let home = Home::new();
    // A PATH with no codex on it.
    let empty = home.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let _server = home.serve_env(&["--agent", "codex"], &[("PATH", empty.to_str().unwrap())]);
    let id = home.new_thread();
    let (code, events) = post_json(&home, &id, "hi");
    assert_eq!(code, 1);
    let error = completion(&events)["error"].as_str().unwrap();
    assert!(error.contains("`codex exec --json") && error.contains("not installed"), "{error}");
}

fn status_agent(home: &Home, extra_env: &[(&str, &str)], flags: &[&str]) -> Value {
    let mut server = home.serve_env(flags, extra_env);
    let status = home.run(&["app-server", "status", "--json"]).ok();
    server.terminate();
    serde_json::from_str::<Value>(status.stdout.trim()).unwrap()["agent"].clone()
}

#[test]
fn configuration_precedence_is_flag_env_file_default() {
    let home = Home::new();
    assert_eq!(status_agent(&home, &[], &[]), json!({"kind": "echo"}));
    std::fs::write(
        home.path().join("config.toml"),
        "agent = \"exec\"\n[exec]\ncommand = [\"cat\"]\n[openai]\nmodel = \"file-model\"\n",
    )
    .unwrap();
    assert_eq!(status_agent(&home, &[], &[]), json!({"kind": "exec", "model": "cat"}));
    assert_eq!(
        status_agent(&home, &[("TANDEM_AGENT", "openai")], &[]),
        json!({"kind": "openai", "model": "file-model"})
    );
    assert_eq!(
        status_agent(&home, &[("TANDEM_AGENT", "openai"), ("TANDEM_MODEL", "env-model")], &[]),
        json!({"kind": "openai", "model": "env-model"})
    );
    assert_eq!(
        status_agent(&home, &[("TANDEM_AGENT", "openai"), ("TANDEM_MODEL", "env-model")], &["--agent", "echo"]),
        json!({"kind": "echo"})
    );

    // A broken file is refused, naming the file and what is wrong.
    std::fs::write(home.path().join("config.toml"), "agent = \"echo\"\n[openai]\nmodle = \"x\"\n").unwrap();
    let out = home.run(&["app-server"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("config.toml") && out.stderr.contains("modle"), "{}", out.stderr);
    std::fs::remove_file(home.path().join("config.toml")).unwrap();
    let out = home.run(&["app-server", "--agent", "gpt"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("echo, exec, openai, codex, claude"), "{}", out.stderr);
}
