//! An app-server syncing linked threads to a real hub: what is posted shows
//! up on the hub (redacted), only linked threads go, a hub or app-server
//! restart loses nothing and repeats nothing, and an event too big for the
//! hub goes truncated instead of stopping the link.

mod common;

use common::hub::Hub;
use common::{Home, wait_for};
use serde_json::{Value, json};

/// Every event the hub has for share `id`, through its poll WebSocket, once it has `upto`.
fn hub_events(hub: &Hub, id: &str, upto: u64) -> Vec<Value> {
    let mut poll = hub.poll(id);
    poll.until(|i| i["seq"].as_u64() == Some(upto))
        .into_iter()
        .filter(|i| i["type"] == "event")
        .map(|i| i["event"].clone())
        .collect()
}

fn share_id(url: &str) -> String {
    url.trim().rsplit('/').next().unwrap().to_owned()
}

fn links(home: &Home) -> String {
    home.share(&["links"]).ok().stdout
}

#[test]
fn a_linked_thread_reaches_the_hub_redacted_and_only_it() {
    let hub_home = Home::new();
    let hub = Hub::start(&hub_home, &[]);
    let home = Home::new();
    let _server = home.serve(&[]);
    let linked = home.new_thread();
    let other = home.new_thread();
    let out = home.share(&["link", "--thread", &linked[..30], "--hub", &hub.url()]).ok();
    let url = out.stdout.trim().to_owned();
    assert!(url.starts_with(&format!("{}/s/", hub.url())), "{url}");
    let id = share_id(&url);
    let again = home.share(&["link", "--thread", &linked, "--hub", &hub.url()]).ok();
    assert_eq!(again.stdout.trim(), url, "linking again keeps the link");

    let key = "AKIAIOSFODNN7EXAMPLE";
    home.share(&["post", "--thread", &linked, "--prompt", &format!("deploy with {key} please")]).ok();
    home.share(&["post", "--thread", &other, "--prompt", "UNLINKED-TEXT"]).ok();
    let n = home.last_seq(&linked);
    let events = hub_events(&hub, &id, n);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "every event once, in order");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(key), "{text}");
    assert!(text.contains("deploy with [redacted:aws] please"), "{text}");
    let local: Vec<Value> = home.events(&linked);
    assert_eq!(events[1]["type"], local[1]["type"]);
    assert_eq!(events[1]["turnId"], local[1]["turnId"]);

    let page = hub.request("GET", &format!("/s/{id}"), "");
    assert!(page.body.contains("deploy with [redacted:aws] please"), "{}", page.body);
    wait_for("share links to say synced", || links(&home).contains("synced"));

    let db = rusqlite::Connection::open(&hub.db).unwrap();
    let shares: i64 = db.query_row("SELECT count(*) FROM shares", [], |r| r.get(0)).unwrap();
    assert_eq!(shares, 1, "only the linked thread is on the hub");
    let leaked: i64 =
        db.query_row("SELECT count(*) FROM events WHERE json LIKE '%UNLINKED-TEXT%'", [], |r| r.get(0)).unwrap();
    assert_eq!(leaked, 0);

    // --no-redact: sent as it is.
    let raw = home.new_thread();
    let url = home.share(&["link", "--thread", &raw, "--hub", &hub.url(), "--no-redact"]).ok().stdout;
    home.share(&["post", "--thread", &raw, "--prompt", key]).ok();
    let events = hub_events(&hub, &share_id(&url), home.last_seq(&raw));
    assert!(serde_json::to_string(&events).unwrap().contains(key));
}

#[test]
fn a_streaming_turn_goes_in_a_few_batches_not_one_request_per_event() {
    let hub_home = Home::new();
    let mut hub = Hub::start_env(&hub_home, "127.0.0.1:0", &[], &[("RUST_LOG", "tandem_hub=debug")]);
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "10"]);
    let thread = home.new_thread();
    let id = share_id(&home.share(&["link", "--thread", &thread, "--hub", &hub.url()]).ok().stdout);
    home.share(&["post", "--thread", &thread, "--prompt", &common::words(60)]).ok();
    let n = home.last_seq(&thread);
    assert!(n > 60, "a delta per word: {n}");
    let events = hub_events(&hub, &id, n);
    assert_eq!(events.len() as u64, n);
    // Deltas are coalesced per batch: fewer carry text, none is lost.
    let deltas: Vec<&str> =
        events.iter().filter(|e| e["type"] == "item/agentMessage/delta").filter_map(|e| e["delta"].as_str()).collect();
    let completed = events.iter().find(|e| e["type"] == "item/completed").expect("the answer");
    assert_eq!(deltas.concat(), completed["item"]["text"].as_str().unwrap());
    assert!(deltas.iter().any(|d| d.is_empty()), "{deltas:?}");
    hub.server.terminate();
    let log = hub.server.stderr();
    let requests = log.lines().filter(|l| l.contains("synced")).count();
    // The turn streams for about 0.6 s; with a 1 s debounce that is a handful
    // of requests even on a slow machine, never one per event.
    assert!((1..=n as usize / 4).contains(&requests), "{requests} sync requests for {n} events:\n{log}");
}

#[test]
fn hub_and_app_server_restarts_lose_nothing_and_repeat_nothing() {
    let hub_home = Home::new();
    let mut hub = Hub::start(&hub_home, &[]);
    let addr = hub.addr.clone();
    let home = Home::new();
    let mut server = home.serve(&[]);
    let thread = home.new_thread();
    let url = home.share(&["link", "--thread", &thread, "--hub", &hub.url()]).ok().stdout;
    let id = share_id(&url);
    home.share(&["post", "--thread", &thread, "--prompt", "before the outage"]).ok();
    let first = home.last_seq(&thread);
    hub_events(&hub, &id, first);
    wait_for("the link to be synced", || links(&home).contains("synced"));

    // The hub goes down; what is posted meanwhile waits.
    hub.server.kill9();
    home.share(&["post", "--thread", &thread, "--prompt", "during the outage"]).ok();
    let second = home.last_seq(&thread);
    let pending = format!("pending {} events", second - first);
    wait_for("share links to show the pending events", || links(&home).contains(&pending));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join("hub-links.json")).unwrap()).unwrap();
    assert_eq!(saved["links"][&thread]["ackedSeq"], first, "what the hub acknowledged is kept: {saved}");

    // The app-server restarts too, with the events still pending.
    server.terminate();
    drop(server);
    let server = home.serve(&[]);
    home.share(&["post", "--thread", &thread, "--prompt", "after the restart"]).ok();
    let third = home.last_seq(&thread);
    assert!(third > second);

    // The hub comes back on its address with its database.
    let hub = Hub::start_at(&hub_home, &addr, &[]);
    let events = hub_events(&hub, &id, third);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=third).collect::<Vec<_>>(), "no gap, no duplicate");
    let text = serde_json::to_string(&events).unwrap();
    for said in ["before the outage", "during the outage", "after the restart"] {
        assert_eq!(text.matches(&format!("\"input\":\"{said}\"")).count(), 1, "{said}: {text}");
    }
    wait_for("the link to be synced again", || links(&home).contains("synced"));
    drop(server);
}

#[test]
fn a_key_streamed_across_two_batches_never_reaches_the_hub() {
    let hub_home = Home::new();
    let mut hub = Hub::start(&hub_home, &[]);
    let addr = hub.addr.clone();
    let home = Home::new();
    let (go1, go2) = (home.path().join("go1"), home.path().join("go2"));
    // An agent that streams a real-looking key in two writes, each when told
    // (the script puts it together, so that the command line, which is in
    // `turn/started`, does not hold the key's halves).
    let script = format!(
        "cat >/dev/null; printf 'before the key. '; until [ -e {} ]; do sleep 0.05; done; \
         printf 'deploy with AKIA%s' IOSF; until [ -e {} ]; do sleep 0.05; done; printf '%sEXAMPLE now' ODNN7",
        go1.display(),
        go2.display()
    );
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", &script]);
    let thread = home.new_thread();
    let id = share_id(&home.share(&["link", "--thread", &thread, "--hub", &hub.url()]).ok().stdout);
    hub_events(&hub, &id, home.last_seq(&thread));
    wait_for("the link to be synced", || links(&home).contains("synced"));

    // With the hub down, the first part and the half key are both in the log
    // before any batch reads them: the next batch must cut between them.
    hub.server.kill9();
    home.share(&["post", "--thread", &thread, "--prompt", "go", "--no-wait"]).ok();
    let deltas = || -> Vec<String> {
        home.events(&thread)
            .iter()
            .filter(|e| e["type"] == "item/agentMessage/delta")
            .map(|e| e["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    wait_for("the first part", || !deltas().is_empty());
    assert_eq!(deltas(), ["before the key. "]);
    std::fs::write(&go1, "").unwrap();
    wait_for("the half key", || deltas().len() == 2);
    assert_eq!(deltas(), ["before the key. ", "deploy with AKIAIOSF"]);
    let half = home.last_seq(&thread);

    let hub = Hub::start_at(&hub_home, &addr, &[]);
    let mut poll = hub.poll(&id);
    let mut items = poll.until(|i| i["seq"].as_u64() == Some(half - 1));
    let first = serde_json::to_string(&items).unwrap();
    assert!(first.contains("before the key. ") && !first.contains("AKIAIOSF"), "{first}");

    // The rest of the key comes in a later batch, and the message ends.
    std::fs::write(&go2, "").unwrap();
    wait_for("the turn to end", || home.events(&thread).last().unwrap()["type"] == "turn/completed");
    let n = home.last_seq(&thread);
    items.extend(poll.until(|i| i["seq"].as_u64() == Some(n)));
    let events: Vec<&Value> = items.iter().filter(|i| i["type"] == "event").map(|i| &i["event"]).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "no gap, no duplicate");
    let text: String =
        events.iter().filter(|e| e["type"] == "item/agentMessage/delta").filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(text, "before the key. deploy with [redacted:aws] now");
    let completed = events.iter().find(|e| e["type"] == "item/completed").expect("the message");
    assert_eq!(completed["item"]["text"], "before the key. deploy with [redacted:aws] now");

    // Not one half of it in the hub's database, nor in its WAL.
    let db = rusqlite::Connection::open(&hub.db).unwrap();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let mut bytes = std::fs::read(&hub.db).unwrap();
    bytes.extend(std::fs::read(hub.db.with_extension("db-wal")).unwrap_or_default());
    for half in ["AKIAIOSF", "ODNN7EXAMPLE"] {
        assert!(!bytes.windows(half.len()).any(|w| w == half.as_bytes()), "{half} is in the hub's database");
    }
    assert!(bytes.windows(14).any(|w| w == b"[redacted:aws]"), "the check looks at the right file");
}

#[test]
fn unlink_delete_removes_the_share_and_bad_input_is_refused() {
    let hub_home = Home::new();
    let hub = Hub::start(&hub_home, &[]);
    let home = Home::new();
    let _server = home.serve(&[]);
    let thread = home.new_thread();

    let out = home.share(&["link", "--thread", &thread, "--hub", "ftp://x"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = home.share(&["link", "--thread", &thread, "--hub", &hub.url(), "--expire", "soon"]);
    assert_eq!(out.code, 2, "{out:?}");
    // Without --hub it is a link to this app-server's viewer, which needs an
    // http listener.
    let out = home.share(&["link", "--thread", &thread]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("http listener"), "{}", out.stderr);
    let out = home.share(&["link", "--thread", &thread, "--hub", &hub.url(), "--write"]);
    assert_eq!(out.code, 2, "--write is for local links: {out:?}");
    let out = home.share(&["link", "--thread", &thread, "--hub"]);
    assert_eq!(out.code, 2, "no [hub] url in config.toml: {out:?}");
    assert!(out.stderr.contains("[hub]"), "{}", out.stderr);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let out = home.share(&["link", "--thread", &thread, "--hub", &dead_url]);
    assert_eq!(out.code, 5, "{out:?}");
    let out = home.share(&["unlink", "--thread", &thread]);
    assert_eq!(out.code, 1, "not linked: {out:?}");

    // `--hub` alone: `[hub] url` in config.toml.
    std::fs::write(home.path().join("config.toml"), format!("[hub]\nurl = \"{}\"\n", hub.url())).unwrap();
    let url = home.share(&["link", "--thread", &thread, "--expire", "7d", "--hub"]).ok().stdout;
    let id = share_id(&url);
    home.share(&["post", "--thread", &thread, "--prompt", "to be deleted"]).ok();
    hub_events(&hub, &id, home.last_seq(&thread));
    let json = home.share(&["links", "--json"]).ok().json_lines();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["id"], id.as_str());
    assert!(json[0]["expiresAt"].is_string(), "{}", json[0]);
    assert!(json[0].get("secret").is_none(), "the secret never leaves the app-server");
    let saved = std::fs::read_to_string(home.path().join("hub-links.json")).unwrap();
    assert!(saved.contains(&id));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.path().join("hub-links.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = home.share(&["unlink", "--thread", &thread, "--delete"]).ok();
    assert!(out.stdout.contains("deleted from the hub"), "{out:?}");
    assert_eq!(hub.request("GET", &format!("/s/{id}"), "").status, 404);
    assert!(links(&home).trim().is_empty());
    let db = rusqlite::Connection::open(&hub.db).unwrap();
    let left: i64 = db.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);
}

/// Every event the hub has for share `id`, through `GET /api/share/{id}/events`
/// (page after page), and the share's last seq.
fn hub_history(hub: &Hub, id: &str) -> (Vec<Value>, u64) {
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = hub.request("GET", &format!("/api/share/{id}/events?from={from}"), "");
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(next) => from = next,
            None => return (events, page["lastSeq"].as_u64().unwrap()),
        }
    }
}

#[test]
fn a_prompt_too_big_for_the_hub_goes_truncated_and_the_link_goes_on() {
    let hub_home = Home::new();
    let hub = Hub::start(&hub_home, &[]);
    let home = Home::new();
    // An agent that answers briefly: only the prompt's event is big.
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", "cat >/dev/null; printf ok"]);
    let thread = home.new_thread();
    let id = share_id(&home.share(&["link", "--thread", &thread, "--hub", &hub.url()]).ok().stdout);

    // A prompt filling a frame, so the app-server takes it; its
    // `turn/started`, with more fields and in a sync request, is more than
    // the hub takes in one (`tandem hub` serves with this same limit).
    let limit = tandem_protocol::hub::MAX_REQUEST_BYTES;
    let mut raw = home.raw();
    let empty = json!({"jsonrpc": "2.0", "id": 1, "method": "turn/start", "params": {"threadId": thread, "input": ""}});
    let prompt = "y".repeat(limit - empty.to_string().len() - 16);
    raw.call("turn/start", json!({"threadId": thread, "input": prompt}));
    wait_for("the big turn to end", || last_type(&home, &thread) == "turn/completed");
    home.share(&["post", "--thread", &thread, "--prompt", "after the big one"]).ok();
    let n = home.last_seq(&thread);

    let mut history = (Vec::new(), 0);
    wait_for("the hub to have the thread's last seq", || {
        history = hub_history(&hub, &id);
        history.1 == n
    });
    let (events, _) = history;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "no gap, no duplicate");
    let big = events.iter().find(|e| e["type"] == "turn/started").unwrap();
    let input = big["input"].as_str().unwrap();
    assert!(input.starts_with("yyyy") && input.len() < limit, "{}", input.len());
    let marker = "… [truncated by tandem: ";
    assert!(input.contains(marker) && input.ends_with("-byte limit]"), "{}", &input[input.len() - 120..]);
    assert!(big["truncated"]["originalBytes"].as_u64().unwrap() > input.len() as u64);
    assert!(big["turnId"].is_string() && big["client"].is_object(), "the rest of the event stays");
    let text = serde_json::to_string(&events[events.len() - 5..]).unwrap();
    assert!(text.contains("after the big one") && !text.contains(marker), "the next turn whole: {text}");

    wait_for("the link to be synced", || links(&home).contains("synced"));
    let link = &home.share(&["links", "--json"]).ok().json_lines()[0];
    let cuts = &link["cuts"];
    assert_eq!((cuts["truncated"].as_u64(), cuts["withheld"].as_u64()), (Some(1), Some(0)), "{link}");
    assert_eq!(cuts["lastSeq"], big["seq"], "{link}");
    assert_eq!(link["state"], "synced");
    let human = links(&home);
    assert!(human.contains("synced; 1 truncated, 0 withheld to fit the hub"), "{human}");
}

/// The type of the thread's last event, read alone (a whole `share get`
/// would carry the big event each time).
fn last_type(home: &Home, thread: &str) -> String {
    let mut raw = home.raw();
    let last = raw.call("thread/read", json!({"threadId": thread}))["thread"]["lastSeq"].clone();
    let page = raw.call("thread/events", json!({"threadId": thread, "from": last, "limit": 1}));
    page["events"][0]["type"].as_str().unwrap_or_default().to_owned()
}
