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

/// Whether `pid` is a running process (a zombie is not).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Reads a pid a fake wrote to `path`, waiting for it.
fn read_pid(path: &Path) -> i32 {
    let mut pid = 0;
    wait_for(&format!("a pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path).ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    pid
}

/// A fake `codex` or `claude`: an executable that records its arguments (one
/// line per run in `NAME.args`), its pid (`NAME.pid`) and the size of the
/// prompt it read from stdin (`NAME.stdin`), then replays fixtures by the
/// prompt: `fail` → the failing stream (exit 1); `apikey` → a refused
/// ANTHROPIC_API_KEY; `hang` → the first line, then it sleeps; `sleep` → the
/// stream of a command being started, which it runs as `sleep 1000` in a
/// session of its own (pid in `NAME.sleeper`) and kills on SIGINT, as the
/// real CLIs do; `stubborn` → the same, but it ignores SIGINT and SIGTERM;
/// `retry` → a run that retried; `live` → a recorded run with a command and
/// streamed text; else the good stream. A resume of the session written in
/// `NAME.gone` is refused the way the real CLI refuses it.
fn fake_cli(home: &Home, name: &str) -> (PathBuf, PathBuf) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/agents");
    let fixtures = fixtures.canonicalize().unwrap();
    let base = home.path().join(name);
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> {base}.args
echo $$ > {base}.pid
prompt=$(cat)
printf '%s' "$prompt" | wc -c > {base}.stdin
if [ -f {base}.gone ]; then
  gone=$(cat {base}.gone)
  case "$*" in *"$gone"*)
    # The recorded refusals name another id: put in the one asked for.
    for f in {fx}/{name}-gone.jsonl {fx}/{name}-gone.stderr; do
      [ -f "$f" ] || continue
      out=1; case "$f" in *.stderr) out=2 ;; esac
      sed -e "s/3bdbc95e-0000-47dd-9acf-e4c350716af7/$gone/g" -e "s/0199aaaa-0000-7000-8000-000000000000/$gone/g" "$f" >&$out
    done
    exit 1 ;;
  esac
fi
case "$prompt" in
  *fail*) cat {fx}/{name}-fail.jsonl; echo "auth trouble" >&2; exit 1 ;;
  *apikey*) cat {fx}/{name}-fail-apikey.jsonl; exit 1 ;;
  *hang*) head -n 1 {fx}/{name}-ok.jsonl; exec sleep 1000 ;;
  *stubborn*)
    trap 'echo INT >> {base}.signals' INT
    trap 'echo TERM >> {base}.signals' TERM
    cat {fx}/{name}-sleep.jsonl
    setsid sleep 1000 </dev/null >/dev/null 2>&1 &
    echo $! > {base}.sleeper
    while :; do sleep 1; done ;;
  *sleep*)
    trap 'echo INT >> {base}.signals; kill $!; cat {fx}/{name}-sleep-after.jsonl 2>/dev/null; exit 1' INT
    cat {fx}/{name}-sleep.jsonl
    setsid sleep 1000 </dev/null >/dev/null 2>&1 &
    echo $! > {base}.sleeper
    wait
    exit 1 ;;
  *retry*) cat {fx}/{name}-retry.jsonl ;;
  *live*) cat {fx}/{name}-live.jsonl ;;
  *) cat {fx}/{name}-ok.jsonl ;;
esac
"#,
        base = base.display(),
        fx = fixtures.display(),
    );
    let path = home.path().join(format!("fake-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, home.path().join(format!("{name}.args")))
}

/// A server whose agent is the fake `name`, with an empty `CODEX_HOME` (so
/// no codex configuration of the machine's leaks in) and no Anthropic key in
/// its environment.
fn serve_fake(home: &Home, name: &str) -> (common::Server, PathBuf, PathBuf) {
    let (program, log) = fake_cli(home, name);
    std::fs::write(
        home.path().join("config.toml"),
        format!("agent = \"{name}\"\n[{name}]\nprogram = \"{}\"\nmodel = \"m1\"\n", program.display()),
    )
    .unwrap();
    let codex_home = home.path().join("codex-home");
    std::fs::create_dir_all(&codex_home).unwrap();
    let server = home.serve_env(
        &[],
        &[("CODEX_HOME", codex_home.to_str().unwrap()), ("ANTHROPIC_API_KEY", ""), ("CODEX_API_KEY", "")],
    );
    (server, program, log)
}

/// Starts a turn without waiting; its id.
fn post_no_wait(home: &Home, thread: &str, prompt: &str) -> String {
    let out =
        home.run(&["share", "post", "--thread", thread, "--prompt", prompt, "--no-wait", "--server", &home.endpoint()]);
    out.ok().stdout.trim().to_owned()
}

fn cli_agent_round(name: &str, session: &str, first_text: &str, item_types: &[&str], auth_hint: &str) {
    let home = Home::new();
    let (_server, program, log) = serve_fake(&home, name);
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
    let turn = post_no_wait(&home, &id, "hang");
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
    wait_for("the CLI to be reaped", || !running(pid));
}

#[test]
fn codex_adapter_maps_items_resumes_fails_and_interrupts() {
    cli_agent_round(
        "codex",
        "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "Fixed the typo",
        &["agentSession", "commandExecution", "fileChange", "commandExecution"],
        "run `codex login`",
    );
}

#[test]
fn claude_adapter_maps_items_resumes_fails_and_interrupts() {
    cli_agent_round(
        "claude",
        "8f0c2b7e-5d1a-4c3e-9a6b-2e7f4d1c0a93",
        "I'll look at the greeting helper first.",
        &["agentSession", "commandExecution", "fileChange"],
        "run `claude auth login`",
    );
}

/// Interrupts a turn while the fake CLI runs `sleep 1000` in a session of its
/// own; the command shows as running before the interrupt and as interrupted
/// after it, the CLI got SIGINT first (then possibly `later` signals), and no
/// process of the turn survives.
fn interrupt_while_a_command_runs(name: &str, prompt: &str, later: &str) {
    let home = Home::new();
    let (_server, _, _) = serve_fake(&home, name);
    let id = home.new_thread();
    let mut raw = home.raw();
    raw.call("thread/subscribe", json!({"threadId": id}));
    let turn = post_no_wait(&home, &id, prompt);
    // The command is on the thread while it runs.
    let started = loop {
        let ev = raw.next_event();
        assert_ne!(ev["type"], "turn/completed", "the turn ended before its command showed: {ev}");
        if ev["type"] == "item/started" && ev["item"]["type"] == "commandExecution" {
            break ev;
        }
    };
    assert_eq!(started["item"]["status"], "inProgress", "{started}");
    assert!(started["item"]["command"].as_str().unwrap().contains("sleep 1000"), "{started}");
    let agent = read_pid(&home.path().join(format!("{name}.pid")));
    let sleeper = read_pid(&home.path().join(format!("{name}.sleeper")));
    assert!(running(sleeper));

    home.run(&["share", "interrupt", "--thread", &id, "--server", &home.endpoint()]).ok();
    let events = raw.events_until_completed(&turn);
    assert_eq!(events.last().unwrap()["status"], "interrupted", "{events:?}");
    let done = events
        .iter()
        .find(|e| e["type"] == "item/completed" && e["item"]["id"] == started["item"]["id"])
        .expect("the interrupted command has no item/completed");
    assert_eq!(done["item"]["status"], "interrupted", "{done}");
    wait_for("the CLI to be gone", || !running(agent));
    wait_for(&format!("the command it started ({sleeper}) to be gone"), || !running(sleeper));
    let got = std::fs::read_to_string(home.path().join(format!("{name}.signals"))).unwrap_or_default();
    // What a stubborn CLI notes after SIGINT depends on how fast it runs its
    // handler before the SIGKILL; the order does not.
    assert!(got == "INT\n" || got == format!("INT\n{later}"), "{name} was not stopped with SIGINT first: {got:?}");
}

#[test]
fn interrupting_codex_stops_the_command_it_started() {
    interrupt_while_a_command_runs("codex", "please sleep", "");
}

#[test]
fn interrupting_claude_stops_the_command_it_started() {
    interrupt_while_a_command_runs("claude", "please sleep", "");
}

#[test]
fn an_agent_ignoring_interrupts_is_killed_with_what_it_started() {
    interrupt_while_a_command_runs("codex", "stubborn", "TERM\n");
}

#[test]
fn a_300_kb_prompt_goes_to_the_cli_on_stdin() {
    for name in ["codex", "claude"] {
        let home = Home::new();
        let (_server, _, log) = serve_fake(&home, name);
        let id = home.new_thread();
        let prompt = "long prompt ".repeat(25_000);
        assert_eq!(prompt.len(), 300_000);
        let out = home.run_with_stdin(
            &["share", "post", "--thread", &id, "--prompt", "-", "--json", "--server", &home.endpoint()],
            &prompt,
        );
        assert_eq!(out.code, 0, "{name}: {out:?}");
        let read: usize =
            std::fs::read_to_string(home.path().join(format!("{name}.stdin"))).unwrap().trim().parse().unwrap();
        assert_eq!(read, 300_000, "{name}");
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(args.len() < 1000 && !args.contains("long prompt"), "{name}: {args}");
    }
}

/// A resume the CLI refuses: the refusal is shown, the dead session is marked
/// ended, the same turn runs in a new session, and later turns resume that one.
fn refused_resume_starts_a_new_session(name: &str, first: &str, second: &str, shown: &str) {
    let home = Home::new();
    let (_server, _, log) = serve_fake(&home, name);
    let id = home.new_thread();
    assert_eq!(post_json(&home, &id, "fix the typo").0, 0);
    std::fs::write(home.path().join(format!("{name}.gone")), first).unwrap();

    let (code, events) = post_json(&home, &id, "live please");
    assert_eq!(code, 0, "{events:?}");
    let items: Vec<&Value> = events.iter().filter(|e| e["type"] == "item/completed").map(|e| &e["item"]).collect();
    let ended = items.iter().position(|i| i["type"] == "agentSession" && i["ended"] == true).expect("no ended session");
    assert_eq!(items[ended]["sessionId"], first);
    let status = items.iter().find(|i| i["type"] == "status").expect("no status item");
    assert_eq!(status["kind"], "newSession");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains(shown) && message.contains("new"), "{message}");
    assert!(!message.contains("<unknown>") && !message.contains('\n'), "{message}");
    let fresh = items.iter().position(|i| i["type"] == "agentSession" && i["sessionId"] == second).unwrap();
    assert!(fresh > ended);
    assert!(completion(&events)["status"] == "completed");
    let human = home.run(&["share", "get", "--thread", &id, "--server", &home.endpoint()]).ok().stdout;
    assert!(human.contains(&format!("↻ {name} could not resume session {first}")), "{human}");

    assert_eq!(post_json(&home, &id, "and again").0, 0);
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(calls[1].contains(first) && !calls[2].contains(first) && !calls[2].contains("resume"), "{calls:?}");
    assert!(calls[3].contains(second), "the turn after did not resume the new session: {calls:?}");
}

#[test]
fn codex_refusing_a_resume_starts_a_new_session() {
    refused_resume_starts_a_new_session(
        "codex",
        "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "01a208c7-bca3-7383-a79d-4dafa0e5862b",
        "no rollout found for thread id 0199a213-81c0-7800-8aa1-bbab2a035a53",
    );
}

#[test]
fn claude_refusing_a_resume_starts_a_new_session() {
    refused_resume_starts_a_new_session(
        "claude",
        "8f0c2b7e-5d1a-4c3e-9a6b-2e7f4d1c0a93",
        "aadef9c3-b422-4af1-aa24-084b759442e3",
        "No conversation found with session ID: 8f0c2b7e-5d1a-4c3e-9a6b-2e7f4d1c0a93",
    );
}

#[test]
fn live_text_commands_and_retries_show_while_the_agent_works() {
    for (name, retry_line) in [
        ("codex", "↻ codex: Reconnecting... 2/5 (stream disconnected before completion"),
        ("claude", "↻ claude: API error 529 (overloaded), retrying 2/10"),
    ] {
        let home = Home::new();
        let (_server, _, _) = serve_fake(&home, name);
        let id = home.new_thread();
        let out = home.run(&["share", "post", "--thread", &id, "--prompt", "retry", "--server", &home.endpoint()]);
        assert_eq!(out.code, 0, "{out:?}");
        let lines = out.lines();
        let retry = lines.iter().position(|l| l.starts_with(retry_line)).unwrap_or_else(|| panic!("{lines:?}"));
        let answer = lines.iter().position(|l| l.contains("Hello from the mock.")).unwrap();
        assert!(retry < answer, "{lines:?}");

        // A command shows when it starts, then with its output.
        let out = home.run(&["share", "post", "--thread", &id, "--prompt", "live", "--server", &home.endpoint()]);
        assert_eq!(out.code, 0, "{out:?}");
        let lines = out.lines();
        let running = lines.iter().position(|l| l.starts_with("$ ") && l.ends_with("(running)"));
        let ran = lines.iter().position(|l| l.starts_with("$ ") && !l.ends_with("(running)"));
        let (running, ran) = (running.unwrap_or_else(|| panic!("{lines:?}")), ran.unwrap());
        assert!(running < ran && lines[ran + 1].trim() == "hi", "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("Ran it.")), "{lines:?}");
    }
    // Claude's text arrives as the model streams it, once.
    let home = Home::new();
    let (_server, _, _) = serve_fake(&home, "claude");
    let id = home.new_thread();
    let (code, events) = post_json(&home, &id, "live");
    assert_eq!(code, 0);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "item/agentMessage/delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Ran", " it."]);
}

#[test]
fn login_hints_only_when_the_key_comes_from_the_login() {
    // claude with ANTHROPIC_API_KEY: its own init line says so.
    let home = Home::new();
    let (_server, _, _) = serve_fake(&home, "claude");
    let id = home.new_thread();
    let (code, events) = post_json(&home, &id, "apikey");
    assert_eq!(code, 1);
    let error = completion(&events)["error"].as_str().unwrap();
    assert!(error.contains("invalid x-api-key") && error.contains("$ANTHROPIC_API_KEY"), "{error}");
    assert!(!error.contains("login"), "{error}");

    // codex with a custom provider: its key is in the provider's variable.
    let home = Home::new();
    let codex_home = home.path().join("codex-home");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        "model_provider = \"mock\"\n[model_providers.mock]\nbase_url = \"http://127.0.0.1:9/v1\"\nwire_api = \"responses\"\nenv_key = \"MOCK_KEY\"\n",
    )
    .unwrap();
    let (_server, _, _) = serve_fake(&home, "codex");
    let id = home.new_thread();
    let (code, events) = post_json(&home, &id, "fail");
    assert_eq!(code, 1);
    let error = completion(&events)["error"].as_str().unwrap();
    assert!(error.contains("401 Unauthorized") && error.contains("$MOCK_KEY") && error.contains("`mock`"), "{error}");
    assert!(!error.contains("codex login"), "{error}");
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
