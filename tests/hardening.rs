//! What a hostile or careless local client can do to the app-server, and what
//! it must not (DESIGN §9): memory it can pin, files it can trick the server
//! into touching, bytes that must come back exactly.

mod common;

use common::*;
use serde_json::json;

/// `share tail --json` prints the log's bytes, exactly as `share get --json`.
#[test]
fn tail_json_is_byte_identical_to_get_json() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let sock = home.endpoint();
    // Events whose keys a re-serializer would reorder (`type` after `seq`, an
    // item's `id` before `type`) and text that a re-encoder might escape.
    home.run(&["share", "post", "--thread", &id, "--prompt", "zeta alpha é \u{2028} <b>", "--server", &sock]).ok();
    let get = home.run(&["share", "get", "--thread", &id, "--json", "--server", &sock]).ok();
    let want: Vec<String> = get.stdout.lines().map(str::to_owned).collect();
    assert!(want.len() >= 6, "{want:?}");
    let mut tail = Tail::start(&home, &["--thread", &id, "--from", "1"]);
    assert_eq!(tail.raw_lines(want.len()), want);
}

/// Request ids come back as the client wrote them, not as a float would.
#[test]
fn ids_are_echoed_verbatim() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let mut raw = home.raw();
    for id in ["123456789012345678901234567890", "-0", "1e400", "0.10", "\"\\u00e9\"", "-12345678901234567890"] {
        raw.send_raw(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"thread/list\"}}\n").as_bytes());
        let line = raw.read_line_raw().expect("an answer");
        assert!(line.starts_with(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":")), "{id}: {line}");
        // An error answer keeps the id too.
        raw.send_raw(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"no/such\"}}\n").as_bytes());
        let line = raw.read_line_raw().expect("an answer");
        assert!(line.starts_with(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":")), "{id}: {line}");
    }
    // Still a working connection.
    raw.call("thread/list", json!({}));
}
