//! The wire protocol on a raw socket, as `socat` or a 10-line script would use
//! it: errors for bad input (invariant 6) without dropping anybody.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn malformed_frames_get_errors_and_the_connection_survives() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let mut bad = home.raw();
    let mut other = home.raw();
    other.call("thread/subscribe", json!({"threadId": id}));

    let cases: &[(&str, i64, &str)] = &[
        ("{not json\n", -32700, "parseError"),
        ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/list\"}]\n", -32600, "invalidRequest"),
        ("{\"id\":1,\"method\":\"thread/list\"}\n", -32600, "invalidRequest"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/frobnicate\"}\n", -32601, "methodNotFound"),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"turn/start\",\"params\":{\"threadId\":\"x\"}}\n",
            -32602,
            "invalidParams",
        ),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/read\",\"params\":[\"x\"]}\n", -32602, "invalidParams"),
        ("\"just a string\"\n", -32600, "invalidRequest"),
    ];
    for (line, code, reason) in cases {
        bad.send_raw(line.as_bytes());
        let r = bad.read();
        assert_eq!(r["error"]["code"], *code, "{line}: {r}");
        assert_eq!(r["error"]["data"]["reason"], *reason, "{line}: {r}");
        assert!(r["error"]["message"].as_str().unwrap().len() > 10, "{r}");
        // The other client is unaffected.
        other.call("thread/read", json!({"threadId": id}));
    }

    // 9 MiB on one line: refused as too large, then the same connection works.
    let mut huge = String::from("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"thread/start\",\"params\":{\"title\":\"");
    huge.push_str(&"x".repeat(9 * 1024 * 1024));
    huge.push_str("\"}}\n");
    bad.send_raw(huge.as_bytes());
    let r = bad.read();
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(r["error"]["data"]["reason"], "frameTooLarge");
    let list = bad.call("thread/list", json!({}));
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "the oversized thread/start must not have run");

    // A notification (no id) gets no answer; the next request's answer comes first.
    bad.send_raw(b"{\"jsonrpc\":\"2.0\",\"method\":\"thread/list\"}\n");
    let r = bad.request("thread/read", json!({"threadId": id}));
    assert!(r.get("result").is_some(), "{r}");
    assert!(bad.notes.is_empty(), "a notification was answered: {:?}", bad.notes);

    // The subscriber saw no events from all that.
    other.call("turn/start", json!({"threadId": id, "input": "ok"}));
    let ev = other.next_event();
    assert_eq!(ev["type"], "turn/started");
    assert_eq!(ev["seq"], 2);
}

#[test]
fn typed_errors_for_unknown_ids() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let mut raw = home.raw();
    let missing = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f";
    for (method, params) in [
        ("thread/read", json!({"threadId": missing})),
        ("thread/events", json!({"threadId": missing})),
        ("thread/subscribe", json!({"threadId": missing})),
        ("turn/start", json!({"threadId": missing, "input": "x"})),
        ("thread/append", json!({"threadId": missing, "turns": [{"input": "a", "response": "b"}]})),
    ] {
        let r = raw.request(method, params);
        assert_eq!(r["error"]["code"], -32002, "{method}: {r}");
        assert_eq!(r["error"]["data"]["reason"], "threadNotFound");
        assert_eq!(r["error"]["message"], format!("thread not found: {missing}"));
    }
    let r = raw.request("turn/interrupt", json!({"threadId": id, "turnId": missing}));
    assert_eq!(r["error"]["code"], -32003, "{r}");
    assert_eq!(r["error"]["data"]["reason"], "turnNotFound");
    let r = raw.request("thread/read", json!({"threadId": "nope"}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("UUID"), "{r}");
    let r = raw.request("thread/events", json!({"threadId": id, "from": "last tuesday"}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("RFC 3339"), "{r}");
    for from in [json!(0), json!(u64::MAX), json!(1u64 << 63)] {
        let r = raw.request("thread/events", json!({"threadId": id, "from": from}));
        assert_eq!(r["error"]["code"], -32602, "{from}: {r}");
    }
    let r = raw.request("turn/start", json!({"threadId": id, "input": "x", "bogus": 1}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("bogus"), "{r}");
}

#[test]
fn initialize_names_the_client_of_its_turns() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let mut raw = home.raw();
    let init = raw.call("initialize", json!({"clientInfo": {"name": "my-script", "version": "2.1"}}));
    assert_eq!(init["protocolVersion"], 2);
    assert_eq!(init["serverInfo"]["name"], "tandem-app-server");
    assert_eq!(init["serverInfo"]["agent"]["kind"], "echo");
    let thread = raw.call("thread/start", json!({"title": "t"}));
    let id = thread["thread"]["id"].as_str().unwrap().to_owned();
    assert_eq!(thread["thread"]["shared"], true);
    raw.call("thread/subscribe", json!({"threadId": id}));
    let turn = raw.call("turn/start", json!({"threadId": id, "input": "hi"}));
    assert_eq!(turn["turn"]["client"], json!({"name": "my-script", "version": "2.1"}));
    assert_eq!(turn["turn"]["status"], "running");
    let turn_id = turn["turn"]["id"].as_str().unwrap().to_owned();
    let events = raw.events_until_completed(&turn_id);
    assert_eq!(events[0]["client"]["name"], "my-script");
    // An explicit client in turn/start wins.
    let turn =
        raw.call("turn/start", json!({"threadId": id, "input": "hi", "client": {"name": "bot", "version": "1"}}));
    assert_eq!(turn["turn"]["client"]["name"], "bot");
    let turn_id = turn["turn"]["id"].as_str().unwrap().to_owned();
    raw.events_until_completed(&turn_id);

    // thread/update emits thread/updated and changes what list shows.
    let up = raw.call("thread/update", json!({"threadId": id, "title": "renamed", "shared": false}));
    assert_eq!(up["thread"]["title"], "renamed");
    assert_eq!(up["thread"]["shared"], false);
    let ev = raw.next_event();
    assert_eq!(ev["type"], "thread/updated");
    assert_eq!(ev["title"], "renamed");
    let list = raw.call("thread/list", json!({}));
    assert_eq!(list["data"][0]["title"], "renamed");
}

#[test]
fn unsubscribe_stops_notifications_and_list_pages() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let mut raw = home.raw();
    let ids: Vec<String> = (0..5)
        .map(|i| {
            raw.call("thread/start", json!({"title": format!("t{i}")}))["thread"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let sub = raw.call("thread/subscribe", json!({"threadId": ids[0]}))["subscription"].clone();
    assert_eq!(raw.call("thread/unsubscribe", json!({"subscription": sub}))["unsubscribed"], true);
    assert_eq!(raw.call("thread/unsubscribe", json!({"subscription": sub}))["unsubscribed"], false);
    let turn = raw.call("turn/start", json!({"threadId": ids[0], "input": "quiet"}));
    let turn_id = turn["turn"]["id"].as_str().unwrap().to_owned();
    let mut other = home.raw();
    other.call("thread/subscribe", json!({"threadId": ids[0], "from": 1}));
    other.events_until_completed(&turn_id);
    raw.call("thread/list", json!({}));
    assert!(raw.notes.is_empty(), "notifications after unsubscribe: {:?}", raw.notes);

    // Newest first, two per page, cursors chain to the end.
    let mut seen = Vec::new();
    let mut cursor: Option<Value> = None;
    loop {
        let mut params = json!({"limit": 2});
        if let Some(c) = &cursor {
            params["cursor"] = c.clone();
        }
        let page = raw.call("thread/list", params);
        for t in page["data"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_owned());
        }
        match page.get("nextCursor") {
            Some(c) => cursor = Some(c.clone()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
}
