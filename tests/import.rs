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
