//! Importing earlier turns (`thread/start {threadId, turns}` and
//! `thread/append`): how a conversation that began elsewhere becomes shared.

mod common;

use common::*;
use serde_json::json;

#[test]
fn start_with_a_chosen_id_and_imported_turns() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let mut raw = home.raw();
    raw.call("initialize", json!({"clientInfo": {"name": "tandem-tui", "version": "0.1.0"}}));
    let id = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f";
    let thread = raw.call(
        "thread/start",
        json!({
            "threadId": id, "title": "local session",
            "turns": [
                {"input": "first question", "response": "first answer", "startedAt": "2026-11-20T10:00:00+01:00"},
                {"input": "second", "response": "two", "client": {"name": "other", "version": "9"}}
            ]
        }),
    );
    assert_eq!(thread["thread"]["id"], id);
    assert_eq!(thread["thread"]["lastSeq"], 7);
    assert_eq!(thread["thread"]["status"], "idle");
    let events = home.events(id);
    assert_contiguous(&events, 1);
    assert_eq!(events.len(), 7);
    assert_eq!(events[0]["type"], "thread/started");
    assert!(events[0].get("imported").is_none());
    let types: Vec<&str> = events[1..].iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["turn/started", "item/completed", "turn/completed"].repeat(2));
    for e in &events[1..] {
        assert_eq!(e["imported"], true, "{e}");
    }
    assert_eq!(events[1]["originalTs"], "2026-11-20T09:00:00.000Z");
    assert_eq!(events[1]["client"]["name"], "tandem-tui");
    assert_eq!(events[2]["item"]["text"], "first answer");
    assert!(events[4].get("originalTs").is_none());
    assert_eq!(events[4]["client"]["name"], "other");
    assert_eq!(events[6]["status"], "completed");

    // The same id again is refused and changes nothing.
    let r = raw.request("thread/start", json!({"threadId": id}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("already exists"), "{r}");
    assert_eq!(home.events(id), events);

    // A live turn follows the imported ones, and the CLI renders both.
    let out = home
        .run(&["share", "post", "--thread", id, "--prompt", "live now", "--server", home.socket().to_str().unwrap()])
        .ok();
    assert!(out.stdout.contains("live now"));
    let text = home.run(&["share", "get", "--thread", id, "--server", home.socket().to_str().unwrap()]).ok().stdout;
    assert!(text.contains("(imported)") && text.contains("first answer") && text.contains("live now"), "{text}");
}

#[test]
fn append_imports_into_an_idle_thread_only() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "300"]);
    let id = home.new_thread();
    let mut raw = home.raw();
    let t = raw.call("thread/append", json!({"threadId": id, "turns": [{"input": "q", "response": "a"}]}));
    assert_eq!(t["thread"]["lastSeq"], 4);

    // Bad input: refused, nothing written.
    for turns in [
        json!([]),
        json!([{"input": "q", "response": "a", "startedAt": "noon"}]),
        json!([{"input": " ", "response": "a"}]),
        json!([{"input": "q", "response": "a", "status": "running"}]),
        json!([{"input": "q", "response": "a", "status": "paused"}]),
    ] {
        let r = raw.request("thread/append", json!({"threadId": id, "turns": turns}));
        assert_eq!(r["error"]["code"], -32602, "{r}");
    }
    assert_eq!(home.events(&id).len(), 4);

    // While a turn runs: busy.
    let turn = raw.call("turn/start", json!({"threadId": id, "input": "a b c d e"}));
    let r = raw.request("thread/append", json!({"threadId": id, "turns": [{"input": "q", "response": "a"}]}));
    assert_eq!(r["error"]["code"], -32001, "{r}");
    assert_eq!(r["error"]["data"]["activeTurnId"], turn["turn"]["id"]);
}

#[test]
fn imported_turns_keep_their_status_error_and_agent() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let mut raw = home.raw();
    let id = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e70";
    raw.call(
        "thread/start",
        json!({
            "threadId": id,
            "turns": [
                {"input": "plain", "response": "old answer"},
                {"input": "cut short", "response": "half an ans", "status": "interrupted",
                 "error": "interrupted by tandem-tui", "agent": {"kind": "openai", "model": "gpt-x"}},
                {"input": "broken", "response": "", "status": "failed", "error": "no API key",
                 "agent": {"kind": "exec"}}
            ]
        }),
    );
    let events = home.events(id);
    let ends: Vec<(&str, Option<&str>)> = events
        .iter()
        .filter(|e| e["type"] == "turn/completed")
        .map(|e| (e["status"].as_str().unwrap(), e["error"].as_str()))
        .collect();
    assert_eq!(
        ends,
        [("completed", None), ("interrupted", Some("interrupted by tandem-tui")), ("failed", Some("no API key"))]
    );
    let agents: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["type"] == "turn/started").map(|e| &e["agent"]).collect();
    assert_eq!(agents[0], &json!({"kind": "imported"}), "no agent given: imported");
    assert_eq!(agents[1], &json!({"kind": "openai", "model": "gpt-x"}));
    assert_eq!(agents[2], &json!({"kind": "exec"}));

    // The CLI tells them apart too.
    let text = home.run(&["share", "get", "--thread", id, "--server", home.socket().to_str().unwrap()]).ok().stdout;
    assert!(text.contains("→ openai (gpt-x)] cut short"), "{text}");
    assert!(text.contains("[interrupted: interrupted by tandem-tui]"), "{text}");
    assert!(text.contains("[failed: no API key]"), "{text}");
}
