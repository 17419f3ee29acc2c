//! The http listener (DESIGN §6): the `/rpc` WebSocket carries the same
//! JSON-RPC as the unix socket, nothing is readable without a token, a browser
//! WebSocket from another origin is refused, every answer carries a CSP, and
//! links are enforced by their thread's `shared` flag.

mod common;

use common::web::*;
use common::*;
use serde_json::json;

/// Every refusal at the door: no token (401), a wrong token (403), a foreign
/// Origin (403), all with the CSP header; the owner token gets in.
#[test]
fn the_door_refuses_what_it_must() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let owner = owner_token(&home);
    let bearer = format!("Bearer {owner}");
    let wrong = format!("Bearer {}", "0".repeat(64));
    let host = web.host().to_owned();

    let none = http_get(&host, "/api/access", &[]);
    assert_eq!(none.status, 401, "{none:?}");
    assert_eq!(none.json()["error"]["code"], -32004);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let bad = http_get(&host, "/api/access", &[("Authorization", &wrong)]);
    assert_eq!(bad.status, 403, "{bad:?}");
    assert_eq!(bad.json()["error"]["data"]["reason"], "forbidden");
    let good = http_get(&host, "/api/access", &[("Authorization", &bearer)]);
    assert_eq!(good.status, 200, "{good:?}");
    assert_eq!(good.json()["owner"], true);
    let missing = http_get(&host, "/no/such/page", &[]);
    assert_eq!(missing.status, 404);
    for answer in [&none, &bad, &good, &missing] {
        let csp = answer.header("content-security-policy").unwrap_or_else(|| panic!("no CSP: {answer:?}"));
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    // Never the token in an answer.
    assert!(!good.body.contains(&owner));

    // The WebSocket: the same checks, before the upgrade.
    assert_eq!(ws_handshake(&host, &[]).status, 401);
    assert_eq!(ws_handshake(&host, &[("Authorization", &wrong)]).status, 403);
    let evil = ws_handshake(&host, &[("Authorization", &bearer), ("Origin", "http://evil.example")]);
    assert_eq!(evil.status, 403, "{evil:?}");
    assert_eq!(evil.json()["error"]["data"]["reason"], "badOrigin");
    // A page whose name resolves to 127.0.0.1 (DNS rebinding) is not served.
    let port = host.rsplit_once(':').unwrap().1;
    let rebound = format!("evil.example:{port}");
    let rebind = ws_handshake(&host, &[("Authorization", &bearer), ("Host", &rebound)]);
    assert_eq!(rebind.status, 421, "{rebind:?}");
    assert_eq!(rebind.json()["error"]["data"]["reason"], "badHost");
    let other_port = ws_handshake(&host, &[("Authorization", &bearer), ("Origin", "http://127.0.0.1:1")]);
    assert_eq!(other_port.status, 403);
    let same = format!("http://{host}");
    let ok = ws_handshake(&host, &[("Authorization", &bearer), ("Origin", &same)]);
    assert_eq!(ok.status, 101, "{ok:?}");
    // A browser offers its token as a subprotocol; the server picks its own.
    let proto = format!("tandem.v1, bearer.{owner}");
    let browser = ws_handshake(&host, &[("Sec-WebSocket-Protocol", &proto), ("Origin", &same)]);
    assert_eq!(browser.status, 101, "{browser:?}");
    assert_eq!(browser.header("sec-websocket-protocol"), Some("tandem.v1"));
    let wrong_proto = format!("tandem.v1, bearer.{}", "1".repeat(64));
    assert_eq!(ws_handshake(&host, &[("Sec-WebSocket-Protocol", &wrong_proto)]).status, 403);

    // The token is never written to the server's log.
    let log = std::fs::read_to_string(home.path().join("logs/app-server.log")).unwrap_or_default();
    assert!(!log.contains(&owner), "the owner token is in the log");
}

/// One text frame is one JSON-RPC message into the same session code as a
/// socket line: the same answers, errors and event stream.
#[test]
fn the_websocket_speaks_the_socket_protocol() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let mut ws = WsRpc::connect(&web, &owner_token(&home));
    let init = ws.call("initialize", json!({"clientInfo": {"name": "ws-test", "version": "1"}}));
    assert_eq!(init["protocolVersion"], 2);
    assert!(init["serverInfo"]["listeners"].as_array().unwrap().iter().any(|l| l == &json!(web.url)));
    let thread = ws.call("thread/start", json!({"title": "over ws"}))["thread"].clone();
    let id = thread["id"].as_str().unwrap().to_owned();
    // Not JSON: -32700, and the connection stays.
    ws.send_text("{nope");
    let err = ws.read().unwrap();
    assert_eq!(err["error"]["code"], -32700, "{err}");
    let unknown = ws.request("no/such", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    // A message over the 8 MiB limit: frameTooLarge, and the connection stays.
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"thread/list\",\"params\":{{\"x\":\"{}\"}}}}",
        "a".repeat(9 << 20)
    );
    ws.send_text(&huge);
    let err = ws.read().unwrap();
    assert_eq!(err["error"]["data"]["reason"], "frameTooLarge", "{err}");
    // A binary frame is refused the same way: an error, and on we go.
    ws.send_binary(b"{}");
    assert_eq!(ws.read().unwrap()["error"]["code"], -32600);

    let sub = ws.call("thread/subscribe", json!({"threadId": id, "from": 1}))["subscription"].clone();
    let turn = ws.call("turn/start", json!({"threadId": id, "input": "hello over the web"}))["turn"].clone();
    let mut events = Vec::new();
    loop {
        let note = ws.next_note();
        assert_eq!(note["method"], "thread/event", "{note}");
        assert_eq!(note["params"]["subscription"], sub);
        let ev = note["params"]["result"].clone();
        let done = ev["type"] == "turn/completed";
        events.push(ev);
        if done {
            break;
        }
    }
    assert_contiguous(&events, 1);
    assert_eq!(events.last().unwrap()["turnId"], turn["id"]);
    assert_eq!(events[1]["type"], "turn/started");
    assert_eq!(events[1]["client"]["name"], "ws-test");
    // What the socket reads is what the WebSocket saw.
    assert_eq!(home.events(&id), events);
}

/// The owner token file is the user's alone, and status says how to use it
/// and lists every listener.
#[test]
fn status_lists_listeners_and_the_owner_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let file = home.path().join("owner-token");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let status = home.run(&["app-server", "status"]).ok();
    assert!(status.stdout.contains(&format!("listen:   {}", web.url)), "{}", status.stdout);
    assert!(status.stdout.contains(&format!("listen:   unix:{}", home.socket().display())), "{}", status.stdout);
    assert!(status.stdout.contains(&file.display().to_string()), "{}", status.stdout);
    assert!(!status.stdout.contains(&owner_token(&home)), "status must not print the token itself");
    let json = home.run(&["app-server", "status", "--json"]).ok().json_lines().remove(0);
    assert!(json["listeners"].as_array().unwrap().contains(&json!(web.url)), "{json}");
    assert_eq!(json["ownerTokenFile"], json!(file));
}

/// A non-loopback address needs --allow-remote: a usage error (exit 2) that
/// says why, and nothing listens.
#[test]
fn remote_listening_needs_allow_remote() {
    let home = Home::new();
    let out = home.run(&["app-server", "--listen", "http://0.0.0.0:0"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--allow-remote") && out.stderr.contains("TLS"), "{}", out.stderr);
    let out = home.run(&["app-server", "--listen", "http://example.com:80"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not an IP address"), "{}", out.stderr);
}

/// Past the connection limit a WebSocket is refused with 503 and an error
/// body, not left hanging.
#[test]
fn websockets_count_against_the_connection_limit() {
    let home = Home::new();
    let web = WebServer::start(&home, &["--max-connections", "1"]);
    let owner = owner_token(&home);
    // The slot is every listener's: the readiness probe on the unix socket
    // may hold it a moment longer.
    let mut first = None;
    wait_for("the probe's slot to free", || {
        first = try_ws(&web, &owner).ok();
        first.is_some()
    });
    let mut first = first.unwrap();
    first.call("thread/list", json!({}));
    let bearer = format!("Bearer {owner}");
    let refused = ws_handshake(web.host(), &[("Authorization", &bearer)]);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.json()["error"]["data"]["reason"], "tooManyConnections");
    drop(first);
    wait_for("the first WebSocket's slot to free", || {
        ws_handshake(web.host(), &[("Authorization", &bearer)]).status == 101
    });
}

/// The `forbidden` error of a response.
fn assert_forbidden(r: &serde_json::Value) {
    assert_eq!(r["error"]["code"], -32004, "{r}");
    assert_eq!(r["error"]["data"]["reason"], "forbidden", "{r}");
}

/// A link works only while its thread is shared: turning sharing off closes
/// the link's subscription with a notice and refuses its next request and any
/// new connection; turning it on again lets the link back in. The owner is
/// never affected.
#[test]
fn links_follow_the_shared_flag() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let id = home.new_thread();
    let (url, token, _) = make_link(&home, &id, &[]);
    assert!(url.starts_with(&format!("{}/t/{id}#k=", web.url)), "{url}");
    assert!(url.ends_with(&token));

    let mut viewer = WsRpc::connect(&web, &token);
    let access = viewer.call("access/read", json!({}));
    assert_eq!(access["owner"], false);
    assert_eq!(access["link"]["scope"], "read");
    assert_eq!(viewer.call("thread/read", json!({"threadId": id}))["thread"]["shared"], true);
    let sub = viewer.call("thread/subscribe", json!({"threadId": id, "from": 1}))["subscription"].clone();
    assert_eq!(viewer.next_note()["params"]["result"]["type"], "thread/started");

    let mut owner = WsRpc::connect(&web, &owner_token(&home));
    owner.call("thread/update", json!({"threadId": id, "shared": false}));
    // The viewer is told, on the subscription it had (the thread/updated event
    // may or may not reach it first).
    let closed = loop {
        let note = viewer.next_note();
        if note["method"] == "subscription/closed" {
            break note;
        }
        assert_eq!(note["method"], "thread/event", "{note}");
    };
    assert_eq!(closed["params"]["subscription"], sub);
    assert_eq!(closed["params"]["error"]["code"], -32004);
    assert!(closed["params"]["error"]["message"].as_str().unwrap().contains("no longer shared"), "{closed}");
    assert_forbidden(&viewer.request("thread/read", json!({"threadId": id})));
    assert_forbidden(&viewer.request("thread/events", json!({"threadId": id})));
    let bearer = format!("Bearer {token}");
    assert_eq!(ws_handshake(web.host(), &[("Authorization", &bearer)]).status, 403);
    let page = http_get(web.host(), "/api/access", &[("Authorization", &bearer)]);
    assert_eq!(page.status, 403);
    assert!(page.body.contains("no longer shared"), "{page:?}");
    // The owner reads and posts as before, over the web and the socket.
    assert_eq!(owner.call("thread/read", json!({"threadId": id}))["thread"]["shared"], false);
    home.run(&["share", "post", "--thread", &id, "--prompt", "private now", "--server", &home.endpoint()]).ok();

    owner.call("thread/update", json!({"threadId": id, "shared": true}));
    assert_eq!(viewer.call("thread/read", json!({"threadId": id}))["thread"]["shared"], true);
    let mut again = try_ws(&web, &token).expect("the link works again once shared");
    let events = again.call("thread/events", json!({"threadId": id}))["events"].clone();
    assert!(events.as_array().unwrap().iter().any(|e| e["input"] == "private now"), "{events}");
}

/// Revoking ends a link at once (its open subscription too); an expired link
/// is refused and listed as expired.
#[test]
fn revoked_and_expired_links_stop() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let id = home.new_thread();
    let sock = home.endpoint();
    let (_, token, link_id) = make_link(&home, &id, &[]);
    let (_, kept, kept_id) = make_link(&home, &id, &["--write", "--expire", "7d"]);
    let mut viewer = WsRpc::connect(&web, &token);
    let sub = viewer.call("thread/subscribe", json!({"threadId": id}))["subscription"].clone();

    let listed = home.run(&["share", "links", "--thread", &id, "--server", &sock]).ok();
    assert!(listed.stdout.contains(&link_id) && listed.stdout.contains(&kept_id), "{}", listed.stdout);
    assert!(listed.stdout.lines().any(|l| l.starts_with(&kept_id) && l.contains("write")), "{}", listed.stdout);
    let json_list = home.run(&["share", "links", "--json", "--server", &sock]).ok().json_lines();
    let mine = json_list.iter().find(|l| l["id"] == link_id.as_str()).unwrap();
    assert_eq!(mine["scope"], "read");
    assert!(mine["lastUsedAt"].is_string(), "{mine}");
    assert!(json_list.iter().find(|l| l["id"] == kept_id.as_str()).unwrap()["expiresAt"].is_string());

    let out = home.run(&["share", "revoke", &link_id, "--server", &sock]).ok();
    assert_eq!(out.stdout.trim(), format!("revoked {link_id}"));
    let closed = viewer.next_note();
    assert_eq!(closed["method"], "subscription/closed", "{closed}");
    assert_eq!(closed["params"]["subscription"], sub);
    assert_forbidden(&viewer.request("thread/read", json!({"threadId": id})));
    assert_eq!(try_ws(&web, &token).err(), Some(403));
    // The other link is untouched; revoking it again says it already was (0).
    try_ws(&web, &kept).expect("the other link still works").call("thread/read", json!({"threadId": id}));
    let again = home.run(&["share", "revoke", &link_id, "--server", &sock]).ok();
    assert!(again.stdout.contains("already revoked"), "{again:?}");
    // --thread ends all of a thread's links.
    let out = home.run(&["share", "revoke", "--thread", &id, "--server", &sock]).ok();
    assert_eq!(out.stdout.trim(), format!("revoked {kept_id}"));
    assert_eq!(try_ws(&web, &kept).err(), Some(403));

    // Expiry: a link for a second is refused once the second has passed.
    let (_, brief, brief_id) = make_link(&home, &id, &["--expire", "1s"]);
    wait_for("the link to expire", || try_ws(&web, &brief).is_err());
    let bearer = format!("Bearer {brief}");
    let refused = http_get(web.host(), "/api/access", &[("Authorization", &bearer)]);
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("expired"), "{refused:?}");
    let listed = home.run(&["share", "links", "--thread", &id, "--server", &sock]).ok();
    assert!(listed.stdout.lines().any(|l| l.starts_with(&brief_id) && l.contains("(expired)")), "{}", listed.stdout);
    // Bad durations are usage errors, checked before connecting.
    for bad in ["0s", "7", "1y", "-1d"] {
        let out = home.run(&["share", "link", "--thread", &id, "--expire", bad, "--server", &sock]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
    }
}

/// A read link reads its own thread only; a write link also posts,
/// interrupts and toggles sharing. Neither manages links or other threads.
#[test]
fn read_links_read_and_write_links_post() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let id = home.new_thread();
    let other = home.new_thread();
    let (_, read, _) = make_link(&home, &id, &[]);
    let (_, write, _) = make_link(&home, &id, &["--write"]);

    let mut reader = WsRpc::connect(&web, &read);
    assert_forbidden(&reader.request("turn/start", json!({"threadId": id, "input": "hi"})));
    assert_forbidden(&reader.request("turn/interrupt", json!({"threadId": id})));
    assert_forbidden(&reader.request("thread/update", json!({"threadId": id, "shared": false})));
    assert_forbidden(&reader.request("thread/read", json!({"threadId": other})));
    assert_forbidden(&reader.request("thread/list", json!({})));
    assert_forbidden(&reader.request("thread/start", json!({})));
    assert_forbidden(&reader.request("link/create", json!({"threadId": id})));
    assert_forbidden(&reader.request("link/list", json!({})));
    assert_eq!(reader.call("thread/read", json!({"threadId": id}))["thread"]["id"], id.as_str());

    let mut writer = WsRpc::connect(&web, &write);
    let turn = writer.call("turn/start", json!({"threadId": id, "input": "from a write link"}))["turn"].clone();
    assert_forbidden(&writer.request("turn/start", json!({"threadId": other, "input": "elsewhere"})));
    assert_forbidden(&writer.request("link/revoke", json!({"threadId": id})));
    writer.call("turn/interrupt", json!({"threadId": id}));
    let sub = writer.call("thread/subscribe", json!({"threadId": id, "from": 1}))["subscription"].clone();
    loop {
        let note = writer.next_note();
        assert_eq!(note["params"]["subscription"], sub);
        if note["params"]["result"]["type"] == "turn/completed" {
            assert_eq!(note["params"]["result"]["turnId"], turn["id"]);
            break;
        }
    }
    // Its own toggle ends its own access (and everyone's link access).
    writer.call("thread/update", json!({"threadId": id, "shared": false}));
    assert_forbidden(&writer.request("thread/read", json!({"threadId": id})));
    assert_forbidden(&reader.request("thread/read", json!({"threadId": id})));
}

/// `tandem share … --server ws://…/rpc --token-env VAR`: the CLI over the
/// WebSocket, as the owner and as links.
#[test]
fn share_post_and_tail_over_the_websocket() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let ws = web.ws();
    let over_ws = |args: &[&str], token: &str| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &ws, "--token-env", "TEST_TANDEM_TOKEN"]);
        let out = home.tandem().args(&all).env("TEST_TANDEM_TOKEN", token).output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let owner = owner_token(&home);
    let id = over_ws(&["share", "new", "--title", "remote"], &owner).ok().stdout.trim().to_owned();
    assert!(over_ws(&["share", "list", "--json"], &owner).ok().stdout.contains(&id));

    let mut tail_cmd = home.tandem();
    tail_cmd
        .args(["share", "tail", "--json", "--thread", &id, "--from", "1", "--server", &ws])
        .args(["--token-env", "TEST_TANDEM_TOKEN"])
        .env("TEST_TANDEM_TOKEN", &owner);
    let mut tail = Tail::spawn(tail_cmd);
    let posted = over_ws(&["share", "post", "--thread", &id, "--prompt", "one two three"], &owner).ok();
    assert!(posted.stdout.contains("one two three"), "{posted:?}");
    let seen = tail.until(|e| e["type"] == "turn/completed");
    assert_contiguous(&seen, 1);
    assert_eq!(seen.iter().find(|e| e["type"] == "turn/started").unwrap()["input"], "one two three");
    assert_eq!(home.events(&id), seen);

    // A write link posts; a read link reads but may not post (exit 1, says why).
    let (_, write, _) = make_link(&home, &id, &["--write"]);
    let (_, read, _) = make_link(&home, &id, &[]);
    over_ws(&["share", "post", "--thread", &id, "--prompt", "from the link"], &write).ok();
    let refused = over_ws(&["share", "post", "--thread", &id, "--prompt", "nope"], &read);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("read-only link"), "{}", refused.stderr);
    let got = over_ws(&["share", "get", "--thread", &id, "--json"], &read).ok();
    assert!(got.stdout.contains("from the link"));

    // A read link's tail ends, saying why, when the link is revoked.
    let mut link_tail_cmd = home.tandem();
    link_tail_cmd
        .args(["share", "tail", "--json", "--thread", &id, "--from", "1", "--server", &ws])
        .args(["--token-env", "TEST_TANDEM_TOKEN"])
        .env("TEST_TANDEM_TOKEN", &read)
        .stderr(std::process::Stdio::piped());
    let mut link_tail = Tail::spawn(link_tail_cmd);
    link_tail.until(|e| e["type"] == "thread/started");
    home.run(&["share", "revoke", "--thread", &id, "--server", &home.endpoint()]).ok();
    assert_eq!(link_tail.wait(), 1);

    // Refusals: a wrong token (1), no token variable (2), no --token-env (2).
    let wrong = over_ws(&["share", "list"], &"0".repeat(64));
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains("refused") && wrong.stderr.contains("not valid"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains(&owner));
    let unset = home.run(&["share", "list", "--server", &ws, "--token-env", "NO_SUCH_TANDEM_VAR"]);
    assert_eq!(unset.code, 2, "{unset:?}");
    assert!(unset.stderr.contains("NO_SUCH_TANDEM_VAR"), "{}", unset.stderr);
    let bare = home.run(&["share", "list", "--server", &ws]);
    assert_eq!(bare.code, 2, "{bare:?}");
    assert!(bare.stderr.contains("--token-env"), "{}", bare.stderr);
}

/// `app-server start --listen http://…` runs the background server with the
/// http listener next to its socket; status shows both, and stop stops it.
#[test]
fn background_server_can_listen_on_http() {
    let home = Home::new();
    let _stop = StopOnDrop(&home);
    let started = home.run(&["app-server", "start", "--listen", "http://127.0.0.1:0"]).ok();
    assert!(started.stdout.contains("app-server started"), "{started:?}");
    let status = home.run(&["app-server", "status", "--json"]).ok().json_lines().remove(0);
    let listeners: Vec<&str> = status["listeners"].as_array().unwrap().iter().filter_map(|l| l.as_str()).collect();
    assert!(listeners.iter().any(|l| l.starts_with("unix:")), "{listeners:?}");
    let url = listeners.iter().find(|l| l.starts_with("http://127.0.0.1:")).expect("the http listener");
    let host = url.strip_prefix("http://").unwrap();
    let owner = owner_token(&home);
    let bearer = format!("Bearer {owner}");
    assert_eq!(http_get(host, "/api/access", &[("Authorization", &bearer)]).status, 200);
    // A foreground-only transport is refused for the background server, and
    // the refused restart leaves the running one alone.
    assert_eq!(home.run(&["app-server", "restart", "--listen", "stdio"]).code, 2);
    assert_eq!(http_get(host, "/api/access", &[("Authorization", &bearer)]).status, 200);
    home.run(&["app-server", "status"]).ok();
}

/// A link needs an http listener to point at: without one, `share link`
/// says how to start one (exit 1) and makes nothing.
#[test]
fn links_need_an_http_listener() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let out = home.run(&["share", "link", "--thread", &id, "--server", &home.endpoint()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no http listener") && out.stderr.contains("--listen http://"), "{}", out.stderr);
    let listed = home.run(&["share", "links", "--json", "--server", &home.endpoint()]).ok();
    assert_eq!(listed.stdout, "");
    // An unknown thread is "not found" (4), checked before anything is made.
    let out = home.run(&["share", "link", "--thread", &uuid_like(), "--server", &home.endpoint()]);
    assert_eq!(out.code, 4, "{out:?}");
}

fn uuid_like() -> String {
    "0190f3a0-0000-7000-8000-000000000000".into()
}

/// Wrong tokens are counted per address: past a burst the address's wrong
/// tokens get 429 with `Retry-After`, on the page API and the WebSocket alike;
/// a valid token always gets in (so stale tabs or a guesser behind the same
/// proxy never lock the owner out).
#[test]
fn an_address_that_guesses_tokens_is_slowed_down() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let owner = owner_token(&home);
    let host = web.host().to_owned();
    let mut statuses = Vec::new();
    let mut throttled = None;
    for i in 0..40 {
        let wrong = format!("Bearer {i:064x}");
        let answer = http_get(&host, "/api/access", &[("Authorization", &wrong)]);
        statuses.push(answer.status);
        if answer.status == 429 {
            throttled = Some(answer);
            break;
        }
        assert_eq!(answer.status, 403, "{answer:?}");
    }
    let throttled = throttled.unwrap_or_else(|| panic!("never throttled: {statuses:?}"));
    // The burst is 20 wrong tokens (forgiven at 1/s, so a slow run may get a few more).
    assert!(statuses.len() > 20, "throttled too early: {statuses:?}");
    assert_eq!(throttled.json()["error"]["data"]["reason"], "tooManyAttempts", "{throttled:?}");
    let retry: u64 = throttled.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "{throttled:?}");
    let wrong = format!("Bearer {}", "e".repeat(64));
    assert_eq!(ws_handshake(&host, &[("Authorization", &wrong)]).status, 429);
    // The right token from the same address gets in meanwhile.
    let right = format!("Bearer {owner}");
    assert_eq!(http_get(&host, "/api/access", &[("Authorization", &right)]).status, 200);
    assert_eq!(ws_handshake(&host, &[("Authorization", &right)]).status, 101);
    // Once the strikes have leaked away, a wrong token is told 403 again.
    wait_for("the address to be forgiven", || {
        http_get(&host, "/api/access", &[("Authorization", &wrong)]).status == 403
    });
}

/// `--max-connections-per-ip`: one address cannot take every WebSocket.
#[test]
fn websockets_are_capped_per_address() {
    let home = Home::new();
    let web = WebServer::start(&home, &["--max-connections-per-ip", "2"]);
    let id = home.new_thread();
    let (_, link, _) = make_link(&home, &id, &[]);
    let mut first = WsRpc::connect(&web, &link);
    first.call("access/read", json!({}));
    let mut second = WsRpc::connect(&web, &link);
    second.call("access/read", json!({}));
    let bearer = format!("Bearer {link}");
    let refused = ws_handshake(web.host(), &[("Authorization", &bearer)]);
    assert_eq!(refused.status, 503, "{refused:?}");
    let error = refused.json()["error"].clone();
    assert_eq!(error["data"]["reason"], "tooManyConnections", "{error}");
    assert!(error["message"].as_str().unwrap().contains("--max-connections-per-ip"), "{error}");
    drop(first);
    wait_for("a slot of this address to free", || {
        ws_handshake(web.host(), &[("Authorization", &bearer)]).status == 101
    });
    let out = home.run(&["app-server", "--listen", "http://127.0.0.1:0", "--max-connections-per-ip", "0"]);
    assert_eq!(out.code, 2, "{out:?}");
}

/// Issue 18.7: links holding every WebSocket an address may open do not
/// lock the owner out from that address (a valid owner token always gets
/// in); the link's next socket is still refused.
#[test]
fn the_owner_gets_in_past_the_per_address_cap() {
    let home = Home::new();
    let web = WebServer::start(&home, &["--max-connections-per-ip", "3"]);
    let id = home.new_thread();
    let (_, link, _) = make_link(&home, &id, &[]);
    let mut links: Vec<WsRpc> = (0..3).map(|_| WsRpc::connect(&web, &link)).collect();
    for l in &mut links {
        assert_eq!(l.call("access/read", json!({}))["owner"], false);
    }
    assert_eq!(try_ws(&web, &link).err(), Some(503), "a fourth link socket got in");
    let owner = owner_token(&home);
    let mut mine: Vec<WsRpc> = (0..2).map(|_| WsRpc::connect(&web, &owner)).collect();
    for o in &mut mine {
        assert_eq!(o.call("access/read", json!({}))["owner"], true);
        assert_eq!(o.call("thread/read", json!({"threadId": id}))["thread"]["id"], id.as_str());
    }
    // The owner's sockets are not counted against the address either.
    drop(mine);
    assert_eq!(try_ws(&web, &link).err(), Some(503), "a link socket got in past the cap");
    drop(links.pop());
    wait_for("the link's slot to free", || try_ws(&web, &link).is_ok());
}

/// Runs `tandem ARGS`, killed after `limit`: `None` if it had not finished.
fn run_within(home: &Home, args: &[&str], limit: std::time::Duration) -> Option<Out> {
    let mut child = home
        .tandem()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Some(Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Waits until every stream has been closed by the server (EOF or reset)
/// or `deadline` passes; how many were closed.
fn count_closed(conns: &mut [std::net::TcpStream], deadline: std::time::Instant) -> usize {
    use std::io::Read;
    let mut closed = 0;
    for c in conns.iter_mut() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        c.set_read_timeout(Some(left.max(std::time::Duration::from_millis(1)))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match c.read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(_) => {
                    closed += 1;
                    break;
                }
            }
        }
    }
    closed
}

/// Issue 18.4: connections to the http listener that send nothing, or half a
/// request, are closed by the header timeout, only a few are held at once,
/// and the owner's CLI on the unix socket gets in meanwhile — under a small
/// open-file limit, and also once web clients hold the whole http share.
#[test]
fn half_open_http_connections_time_out_and_never_lock_the_owner_out() {
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let home = Home::new();
    // 256 descriptors: the server fits 96 connections, 48 of them for http
    // (the rest is the socket's), 24 of those without a request yet.
    let web = WebServer::start_with_file_limit(&home, &["--header-timeout", "2"], 256);
    let host = web.host().to_owned();
    let sock = home.endpoint();
    let started = Instant::now();
    let mut half_open: Vec<TcpStream> = (0..600)
        .map(|i| {
            let addr = host.parse().unwrap();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connection {i}: {e}: the listener stopped accepting"));
            if i % 2 == 0 {
                s.write_all(b"GET /t/x HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
            }
            s
        })
        .collect();
    let out = run_within(&home, &["share", "list", "--server", &sock], Duration::from_secs(15));
    assert_eq!(out.map(|o| o.code), Some(0), "the owner's CLI was locked out by half-open http connections");
    let closed = count_closed(&mut half_open, started + Duration::from_secs(2 + 10));
    assert_eq!(closed, half_open.len(), "half-open connections were not closed in time");
    drop(half_open);

    // Web clients that hold the whole http share: the next is told 503, the
    // owner's CLI on the socket still gets in.
    let owner = owner_token(&home);
    let mut sockets = Vec::new();
    let refused = loop {
        match try_ws(&web, &owner) {
            Ok(mut ws) => {
                ws.call("thread/list", json!({}));
                sockets.push(ws);
                assert!(sockets.len() <= 48, "more WebSockets than the http share");
            }
            Err(status) => break status,
        }
    };
    assert_eq!(refused, 503);
    assert!(sockets.len() >= 40, "only {} WebSockets got in", sockets.len());
    let bearer = format!("Bearer {owner}");
    let answer = ws_handshake(&host, &[("Authorization", &bearer)]);
    assert_eq!(answer.json()["error"]["data"]["reason"], "tooManyConnections", "{answer:?}");
    let more: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&host).expect("connect")).collect();
    let out = run_within(&home, &["share", "list", "--server", &sock], Duration::from_secs(15));
    assert_eq!(out.map(|o| o.code), Some(0), "the owner's CLI was locked out with the http share full");
    drop(more);
    // The WebSockets were served all along.
    for ws in sockets.iter_mut().take(3) {
        ws.call("thread/list", json!({}));
    }
}

/// A read-only link's WebSocket holds at most 64 KiB of a message; the owner
/// and write links may send prompts up to the protocol's frame limit.
#[test]
fn a_read_link_cannot_make_the_server_hold_large_messages() {
    let home = Home::new();
    let web = WebServer::start(&home, &[]);
    let id = home.new_thread();
    let (_, read, _) = make_link(&home, &id, &[]);
    let (_, write, _) = make_link(&home, &id, &["--write"]);
    let big =
        json!({"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId": id, "pad": "x".repeat(200_000)}})
            .to_string();
    let mut writer = WsRpc::connect(&web, &write);
    writer.send_text(&big);
    let answer = writer.read().expect("an answer to the write link");
    assert_eq!(answer["id"], 1, "{answer}");
    let mut reader = WsRpc::connect(&web, &read);
    assert_eq!(reader.call("thread/read", json!({"threadId": id}))["thread"]["id"], id.as_str());
    reader.send_text(&big);
    assert_eq!(reader.read_or_gone(), None, "a read link's 200 KB message was taken");
}

/// `--public-url`: links point at it, pages served from it may open the
/// WebSocket, and its name is answered on a loopback listener (the reverse
/// proxy in front passes it on); anything else is still refused.
#[test]
fn a_public_url_is_where_links_point_and_pages_come_from() {
    let home = Home::new();
    let web =
        WebServer::start(&home, &["--public-url", "https://Tandem.example.com:443/", "--max-connections-per-ip", "1"]);
    let owner = owner_token(&home);
    let bearer = format!("Bearer {owner}");
    let id = home.new_thread();
    let (url, _, _) = make_link(&home, &id, &[]);
    assert!(url.starts_with(&format!("https://tandem.example.com/t/{id}#k=")), "{url}");
    let proxied = [("Host", "tandem.example.com"), ("Origin", "https://tandem.example.com")];
    let ok = ws_handshake(web.host(), &[proxied[0], proxied[1], ("Authorization", &bearer)]);
    assert_eq!(ok.status, 101, "{ok:?}");
    // Behind the proxy every client has its address: no per-address cap.
    let mut first = WsRpc::connect(&web, &owner);
    first.call("thread/list", json!({}));
    let mut second = WsRpc::connect(&web, &owner);
    second.call("thread/list", json!({}));
    let page = http_get(web.host(), &format!("/t/{id}"), &[]);
    assert_eq!(page.status, 200, "{page:?}");
    let evil = ws_handshake(web.host(), &[("Origin", "https://evil.example"), ("Authorization", &bearer)]);
    assert_eq!(evil.status, 403, "{evil:?}");
    let port = web.host().rsplit_once(':').unwrap().1;
    let rebound = format!("evil.example:{port}");
    assert_eq!(ws_handshake(web.host(), &[("Host", &rebound), ("Authorization", &bearer)]).status, 421);

    for bad in
        ["ftp://tandem.example.com", "https://tandem.example.com/sub/path", "https://user@host", "tandem.example.com"]
    {
        let out = home.run(&["app-server", "--listen", "http://127.0.0.1:0", "--public-url", bad]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(out.stderr.contains("http(s)://NAME[:PORT]"), "{bad}: {}", out.stderr);
    }
    let out = home.run(&["app-server", "--listen", "unix", "--public-url", "https://tandem.example.com"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--listen http://"), "{}", out.stderr);
}

/// Issue 18.5, the part that is done: many read-link WebSockets that never
/// read, on a thread that gets a big turn, while the owner is answered on the
/// socket; once they close, the server gives their memory back to the system
/// (glibc kept it: RSS stayed at its peak). What they hold while open is
/// still above `--clients-buffer-mib` (see the README's limits: a waiting
/// subscription holds the page and the piece it is trying to queue).
#[test]
fn memory_pinned_by_clients_that_never_read_is_given_back() {
    use std::time::{Duration, Instant};
    let home = Home::new();
    let web = WebServer::start(&home, &["--clients-buffer-mib", "32"]);
    let pid = web.server.pid();
    let id = home.new_thread();
    let (_, link, _) = make_link(&home, &id, &[]);
    let mut sockets: Vec<WsRpc> = (0..100)
        .map(|_| {
            let mut ws = WsRpc::connect(&web, &link);
            ws.call("thread/subscribe", json!({"threadId": id, "from": 1}));
            ws
        })
        .collect();
    let before = proc_kib(pid, "VmRSS");
    let mut owner = home.raw();
    let prompt = (0..100_000).map(|i| format!("w{i:06}")).collect::<Vec<_>>().join(" ");
    owner.call("turn/start", json!({"threadId": id, "input": prompt}));
    let mut slowest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let status = owner.call("thread/read", json!({"threadId": id}))["thread"]["status"].clone();
        slowest = slowest.max(t.elapsed());
        if status == "idle" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = proc_kib(pid, "VmRSS");
    assert!(peak > before + 100 * 1024, "the turn pinned too little to tell ({before} -> {peak} KiB)");
    sockets.iter_mut().for_each(|s| s.send_text("{}"));
    drop(sockets);
    wait_for("the memory of the closed clients to be given back", || proc_kib(pid, "VmRSS") < before + 64 * 1024);
    owner.call("thread/list", json!({}));
    eprintln!("RSS {before} -> {peak} KiB; owner's slowest thread/read {slowest:?}");
}
