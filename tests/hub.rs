//! `tandem hub`, driven as curl would: every answer of the API (DESIGN §7),
//! the poll WebSocket, the read-only page, and what is left in the hub's
//! database after a delete or an expiry.

mod common;

use common::hub::Hub;
use common::{Home, PATIENCE};
use serde_json::{Value, json};

const THREAD: &str = "0190c0de-0000-7000-8000-0000000000aa";

fn event(seq: u64, text: &str) -> Value {
    json!({ "type": "event", "seq": seq, "event": {
        "seq": seq, "threadId": THREAD, "type": "turn/started", "turnId": format!("t{seq}"),
        "input": text, "client": { "name": "test", "version": "1" }
    }})
}

fn sync(hub: &Hub, id: &str, secret: &str, data: Vec<Value>) -> common::hub::Reply {
    hub.json("POST", &format!("/api/share/{id}/sync"), &json!({ "secret": secret, "data": data }))
}

fn seqs(items: &[Value]) -> Vec<u64> {
    items.iter().filter(|i| i["type"] == "event").map(|i| i["seq"].as_u64().unwrap()).collect()
}

#[test]
fn create_sync_then_poll_and_read_the_page() {
    let home = Home::new();
    let hub = Hub::start(&home, &["--public-url", "https://hub.example/"]);
    let (id, url, secret) = hub.create(THREAD);
    assert_eq!(url, format!("https://hub.example/s/{id}"));
    assert_eq!(secret.len(), 64, "256 bits in hex");
    let (id2, _, secret2) = hub.create(THREAD);
    assert_ne!((&id, &secret), (&id2, &secret2));

    let r =
        sync(&hub, &id, &secret, vec![json!({"type":"thread","title":"<b>demo</b>","shared":true}), event(1, "one")]);
    assert_eq!((r.status, r.json()), (200, json!({})), "{r:?}");
    let r = sync(&hub, &id, &secret, vec![event(2, "two <script>alert(1)</script>"), event(3, "three")]);
    assert_eq!(r.status, 200, "{r:?}");

    let mut poll = hub.poll(&id);
    let first = poll.until(|i| i["seq"] == 3);
    assert_eq!(first[0], json!({"type":"thread","title":"<b>demo</b>","shared":true}));
    assert_eq!(seqs(&first), [1, 2, 3]);
    assert_eq!(first[2]["event"]["input"], "two <script>alert(1)</script>");

    // Live: what is synced next arrives on the open poll, after what came before.
    let r = sync(&hub, &id, &secret, vec![event(4, "four"), json!({"type":"thread","title":"renamed","shared":true})]);
    assert_eq!(r.status, 200, "{r:?}");
    // The thread item is not ordered among events (its last write wins).
    let live = [poll.next().expect("an item"), poll.next().expect("another")];
    assert_eq!(seqs(&live), [4]);
    assert!(live.contains(&json!({"type":"thread","title":"renamed","shared":true})), "{live:?}");

    // Sharing off: the page says so and shows nothing; pollers get no events.
    let r = sync(&hub, &id, &secret, vec![json!({"type":"thread","title":"renamed","shared":false})]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(poll.next(), Some(json!({"type":"thread","title":"renamed","shared":false})));
    assert_eq!(hub.request("GET", &format!("/s/{id}"), "").status, 403);
    let mut paused = hub.poll(&id);
    assert_eq!(paused.next(), Some(json!({"type":"thread","title":"renamed","shared":false})));
    assert_eq!(sync(&hub, &id, &secret, vec![json!({"type":"thread","title":"renamed","shared":true})]).status, 200);
    let resumed = paused.until(|i| i["seq"] == 4);
    assert_eq!(resumed[0], json!({"type":"thread","title":"renamed","shared":true}));
    assert_eq!(seqs(&resumed), [1, 2, 3, 4]);

    let page = hub.request("GET", &format!("/s/{id}"), "");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP header");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // The viewer's one set of headers, the same as the app-server's.
    for (name, value) in
        [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"), ("x-frame-options", "DENY")]
    {
        assert_eq!(page.header(name), Some(value), "{name}: {page:?}");
    }
    assert!(page.body.contains("two &lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);
    assert_eq!(page.body.matches("<script").count(), 1, "only the viewer's own: {}", page.body);
    assert!(page.body.contains("renamed"));
    let order: Vec<usize> = ["one", "two", "three", "four"].iter().map(|w| page.body.find(w).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in seq order: {order:?}");
    let other = hub.request("GET", &format!("/s/{id2}"), "");
    assert!(other.body.contains("Nothing has been shared"), "{}", other.body);
}

#[test]
fn every_refusal_has_its_status() {
    let home = Home::new();
    let hub = Hub::start(&home, &["--max-share-kib", "2"]);
    let (id, _, secret) = hub.create(THREAD);

    let r = sync(&hub, &id, &"0".repeat(64), vec![event(1, "x")]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("secret"));
    assert_eq!(sync(&hub, "aaaaaaaaaaaa", &secret, vec![event(1, "x")]).status, 404);
    assert_eq!(sync(&hub, "../../etc", &secret, vec![event(1, "x")]).status, 404);

    assert_eq!(sync(&hub, &id, &secret, vec![event(1, "a"), event(2, "b")]).status, 200);
    let r = sync(&hub, &id, &secret, vec![event(4, "d")]);
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json()["expectedSeq"], 3);
    // A resend from the expected seq is fine, and what was stored is not doubled.
    assert_eq!(sync(&hub, &id, &secret, vec![event(2, "b"), event(3, "c")]).status, 200);

    let big = "x".repeat(3000);
    let r = sync(&hub, &id, &secret, vec![event(4, &big)]);
    assert_eq!(r.status, 413, "{r:?}");
    // Bigger than any request may be: refused before it is read.
    let huge = json!({"secret": secret, "data": [event(4, &"y".repeat(9 << 20))]}).to_string();
    assert_eq!(hub.request("POST", &format!("/api/share/{id}/sync"), &huge).status, 413);

    let seq0 = json!({"secret": secret, "data": [{"type":"event","seq":0,"event":{}}]}).to_string();
    let not_object = json!({"secret": secret, "data": [{"type":"event","seq":4,"event":"text"}]}).to_string();
    for bad in ["not json", r#"{"secret":"s"}"#, &seq0, &not_object] {
        let r = hub.request("POST", &format!("/api/share/{id}/sync"), bad);
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    let r = hub.json("POST", "/api/share", &json!({"threadId": THREAD, "expire": "soon"}));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("7d"), "{r:?}");

    let mut poll = hub.poll(&id);
    assert_eq!(seqs(&poll.until(|i| i["seq"] == 3)), [1, 2, 3]);
}

#[test]
fn creations_past_the_rate_limit_are_told_when_to_retry() {
    let home = Home::new();
    let hub = Hub::start(&home, &["--create-limit", "2"]);
    hub.create(THREAD);
    hub.create(THREAD);
    let r = hub.json("POST", "/api/share", &json!({"threadId": THREAD}));
    assert_eq!(r.status, 429, "{r:?}");
    let after: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");
}

/// `POST /api/share` with `X-Forwarded-For: xff` (none if empty): the status.
fn create_from(hub: &Hub, xff: &str) -> u16 {
    let body = json!({ "threadId": THREAD }).to_string();
    let headers: &[(&str, &str)] = if xff.is_empty() { &[] } else { &[("X-Forwarded-For", xff)] };
    common::hub::http_with(&hub.addr, "POST", "/api/share", headers, &body).status
}

#[test]
fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    // No proxy trusted: the header is the client's word, and changes nothing.
    let home = Home::new();
    let hub = Hub::start(&home, &["--create-limit", "2"]);
    assert_eq!(create_from(&hub, "203.0.113.1"), 200);
    assert_eq!(create_from(&hub, "203.0.113.2"), 200);
    assert_eq!(create_from(&hub, "203.0.113.3"), 429, "a spoofed X-Forwarded-For does not dodge the limit");
    assert_eq!(create_from(&hub, ""), 429);
    drop(hub);

    // 127.0.0.1 is a trusted proxy: each forwarded client has its own budget.
    let home = Home::new();
    let hub = Hub::start(&home, &["--create-limit", "1", "--trusted-proxy", "127.0.0.1"]);
    assert_eq!(create_from(&hub, "203.0.113.7"), 200);
    assert_eq!(create_from(&hub, "203.0.113.7"), 429);
    assert_eq!(create_from(&hub, "198.51.100.9"), 200, "another client, another budget");
    // What a client puts left of the proxy's entry does not make it someone else.
    assert_eq!(create_from(&hub, "192.0.2.50, 203.0.113.7"), 429);
    // Without the header the proxy itself is the client.
    assert_eq!(create_from(&hub, ""), 200);
    assert_eq!(create_from(&hub, ""), 429);
    drop(hub);

    // The same from the environment, as networks, with a chain of proxies.
    let home = Home::new();
    let env = [("TANDEM_HUB_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.0/8")];
    let hub = Hub::start_env(&home, "127.0.0.1:0", &["--create-limit", "1"], &env);
    assert_eq!(create_from(&hub, "203.0.113.7, 10.1.2.3"), 200);
    assert_eq!(create_from(&hub, "203.0.113.7"), 429, "the same client through one proxy less");
    assert_eq!(create_from(&hub, "198.51.100.9, 10.1.2.3"), 200);
}

#[test]
fn a_bad_trusted_proxy_is_refused_by_name() {
    let home = Home::new();
    for bad in ["10.0.0.0/33", "proxy.local", "300.1.1.1"] {
        let out = home.run(&["hub", "--database", "memory", "--trusted-proxy", "127.0.0.1", "--trusted-proxy", bad]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.contains("--trusted-proxy") && out.stderr.contains(bad.split('/').next_back().unwrap()),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[test]
fn delete_leaves_nothing_in_the_database() {
    let home = Home::new();
    let hub = Hub::start(&home, &[]);
    let (id, _, secret) = hub.create(THREAD);
    let (keep, _, keep_secret) = hub.create(THREAD);
    let marker = "PRECIOUS-MARKER-7731";
    assert_eq!(sync(&hub, &id, &secret, vec![json!({"type":"thread","title":marker}), event(1, marker)]).status, 200);
    assert_eq!(sync(&hub, &keep, &keep_secret, vec![event(1, "kept")]).status, 200);
    let mut poll = hub.poll(&id);
    poll.until(|i| i["seq"] == 1);

    let path = format!("/api/share/{id}");
    assert_eq!(hub.json("DELETE", &path, &json!({"secret": keep_secret})).status, 401);
    let r = hub.json("DELETE", &path, &json!({"secret": secret}));
    assert_eq!((r.status, r.json()), (200, json!({})), "{r:?}");
    assert_eq!(poll.next(), Some(json!({"type":"deleted"})), "an open poll is told");
    assert_eq!(poll.next(), None);

    assert_eq!(hub.json("DELETE", &path, &json!({"secret": secret})).status, 404);
    assert_eq!(sync(&hub, &id, &secret, vec![event(2, "x")]).status, 404);
    assert_eq!(hub.poll_status(&id), 404);
    assert_eq!(hub.poll_status(&keep), 101);
    assert_eq!(hub.request("GET", &format!("/s/{id}"), "").status, 404);

    let db = rusqlite::Connection::open(&hub.db).unwrap();
    let count = |sql: &str| db.query_row(sql, [&id], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT count(*) FROM shares WHERE id = ?1"), 0);
    assert_eq!(count("SELECT count(*) FROM events WHERE share_id = ?1"), 0);
    let all: i64 = db.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(all, 1, "the other share's event stays");
    // Not even in the file's free pages: the hub checkpointed the pages as
    // they are now, and deleted text was overwritten (the WAL: below).
    let bytes = std::fs::read(&hub.db).unwrap();
    assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "the deleted text is still in the file");
    assert!(bytes.windows(4).any(|w| w == b"kept"), "the check looks at the right file");
}

/// A secret-looking text no other part of a test writes.
const WAL_MARKER: &str = "sk-live-TANDEM-WAL-MARKER-51c0ffee";

/// A share holding `marker` in its title, a small event and a big one (an
/// overflow page in SQLite), beside another share that stays.
fn share_with_marker(hub: &Hub, marker: &str, expire: Option<&str>) -> (String, String) {
    let mut create = json!({ "threadId": THREAD, "title": marker });
    if let Some(e) = expire {
        create["expire"] = json!(e);
    }
    let r = hub.json("POST", "/api/share", &create);
    assert_eq!(r.status, 200, "{r:?}");
    let (id, secret) = (r.json()["id"].as_str().unwrap().to_owned(), r.json()["secret"].as_str().unwrap().to_owned());
    let big = format!("{marker} {}", "filler ".repeat(3000)).repeat(2);
    let data = vec![json!({"type":"thread","title":marker}), event(1, marker), event(2, &big)];
    assert_eq!(sync(hub, &id, &secret, data).status, 200);
    let (keep, _, keep_secret) = hub.create(THREAD);
    assert_eq!(sync(hub, &keep, &keep_secret, vec![event(1, "kept-text")]).status, 200);
    (id, secret)
}

/// The files of the hub's SQLite store that still hold `marker`: none, is
/// the point (the WAL included, not only the main file).
fn assert_no_file_holds(home: &Home, marker: &str, when: &str) {
    let (holding, seen) = common::hub::files_holding(home.path(), marker);
    assert!(holding.is_empty(), "{when}: {holding:?} still hold the text (files: {seen:?})");
    assert!(seen.iter().any(|(p, _)| p.ends_with("hub.db")), "{when}: the check looks at the store: {seen:?}");
    let (kept, _) = common::hub::files_holding(home.path(), "kept-text");
    assert!(!kept.is_empty(), "{when}: the other share's text is still there, so the check can see text");
}

/// Issue 18.1: when DELETE answers, the share's text is in no file of the
/// store — not in the main file (`secure_delete`) and not in `hub.db-wal`,
/// where every sync's pages sit until a checkpoint — and a `kill -9` right
/// after the answer changes nothing.
#[test]
fn a_deleted_share_leaves_its_text_in_no_file_not_even_the_wal() {
    let home = Home::new();
    let mut hub = Hub::start(&home, &[]);
    let (id, secret) = share_with_marker(&hub, WAL_MARKER, None);
    let (before, _) = common::hub::files_holding(home.path(), WAL_MARKER);
    assert!(!before.is_empty(), "the text is on disk before the delete");

    let r = hub.json("DELETE", &format!("/api/share/{id}"), &json!({"secret": secret}));
    assert_eq!(r.status, 200, "{r:?}");
    assert_no_file_holds(&home, WAL_MARKER, "right after DELETE answered");
    hub.server.kill9();
    assert_no_file_holds(&home, WAL_MARKER, "after kill -9");

    // The store is whole after that: a new hub on the file serves the other share.
    let hub = Hub::start(&home, &[]);
    assert_eq!(hub.request("GET", &format!("/s/{id}"), "").status, 404);
}

/// The same for a share that expired: purged (by the first request that
/// finds it expired) before that request is answered 410.
#[test]
fn an_expired_share_leaves_its_text_in_no_file_once_purged() {
    let home = Home::new();
    let mut hub = Hub::start(&home, &[]);
    let (id, _) = share_with_marker(&hub, WAL_MARKER, Some("2s"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(hub.request("GET", &format!("/s/{id}"), "").status, 410);
    assert_no_file_holds(&home, WAL_MARKER, "right after the 410");
    hub.server.kill9();
    assert_no_file_holds(&home, WAL_MARKER, "after kill -9");
}

/// Another process reading the file (a backup, `sqlite3`) can hold the WAL:
/// a checkpoint must wait for it. The DELETE waits (up to the busy timeout)
/// rather than answer with the text still in the WAL.
#[test]
fn a_delete_waits_for_a_reader_holding_the_wal_then_leaves_nothing() {
    let home = Home::new();
    let hub = Hub::start(&home, &[]);
    let (id, secret) = share_with_marker(&hub, WAL_MARKER, None);
    let reader = rusqlite::Connection::open(&hub.db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3, "the reader's snapshot has the share");
    let started = std::time::Instant::now();
    let addr = hub.addr.clone();
    let delete = std::thread::spawn(move || {
        let r = common::hub::http(&addr, "DELETE", &format!("/api/share/{id}"), &json!({"secret": secret}).to_string());
        (r.status, std::time::Instant::now())
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    reader.execute_batch("COMMIT").unwrap();
    let released = std::time::Instant::now();
    drop(reader);
    let (status, answered) = delete.join().unwrap();
    assert_eq!(status, 200);
    assert!(answered >= released, "answered {:?} after the start, before the reader let go", answered - started);
    assert_no_file_holds(&home, WAL_MARKER, "after the delete waited for the reader");
}

#[test]
fn expired_shares_answer_410_and_keep_nothing() {
    let home = Home::new();
    let hub = Hub::start(&home, &[]);
    let r = hub.json("POST", "/api/share", &json!({"threadId": THREAD, "title": "EXPIRING-TITLE", "expire": "1s"}));
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let (id, secret) = (v["id"].as_str().unwrap().to_owned(), v["secret"].as_str().unwrap().to_owned());
    assert!(v["expiresAt"].as_str().is_some(), "{v}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = sync(&hub, &id, &secret, vec![event(1, "late")]);
    assert_eq!(r.status, 410, "{r:?}");
    assert_eq!(hub.request("GET", &format!("/s/{id}"), "").status, 410);
    assert_eq!(hub.poll_status(&id), 410);
    assert_eq!(hub.socket_status(&format!("/api/share/{id}/live?after=0")), 410);
    // A reader open when the time runs out is told, with nothing synced to wake it.
    let r = hub.json("POST", "/api/share", &json!({"threadId": THREAD, "expire": "1s"}));
    let (other, other_secret) = (r.json()["id"].as_str().unwrap().to_owned(), r.json()["secret"].clone());
    assert_eq!(sync(&hub, &other, other_secret.as_str().unwrap(), vec![event(1, "x")]).status, 200);
    let (items, close) = hub.live(&other, 0).rest();
    assert_eq!(seqs(&items), [1]);
    assert_eq!(items.last(), Some(&json!({"type":"expired"})));
    assert_eq!(close.map(|(code, reason)| (code, reason.contains("expired"))), Some((4000, true)));
    assert_eq!(hub.request("GET", &format!("/api/share/{id}/events"), "").status, 410);
    assert_eq!(hub.json("DELETE", &format!("/api/share/{id}"), &json!({"secret": secret})).status, 410);

    let db = rusqlite::Connection::open(&hub.db).unwrap();
    let (title, hash, expired): (Option<String>, Vec<u8>, bool) = db
        .query_row("SELECT title, secret_hash, expired FROM shares WHERE id = ?1", [&id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((title, hash, expired), (None, vec![], true), "only a tombstone is left");
}

#[test]
fn remote_addresses_need_allow_remote_and_get_a_tls_warning() {
    let home = Home::new();
    let out = home.run(&["hub", "--listen", "0.0.0.0:0", "--database", "memory"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--allow-remote"), "{}", out.stderr);

    let mut hub = Hub::start_at(&home, "0.0.0.0:0", &["--allow-remote"]);
    let port = hub.addr.rsplit(':').next().unwrap().to_owned();
    let r = common::hub::http(&format!("127.0.0.1:{port}"), "GET", "/s/aaaaaaaaaaaa", "");
    assert_eq!(r.status, 404);
    hub.server.terminate();
    let err = hub.server.stderr();
    assert!(err.contains("WARNING") && err.contains("TLS"), "{err}");

    let out = home.run(&["hub", "--database", "mysql://x/y"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("sqlite:PATH, postgres://"), "{}", out.stderr);
    let out = home.run(&["hub", "--public-url", "hub.example", "--database", "memory"]);
    assert_eq!(out.code, 2, "{out:?}");

    // A port that is taken: a clear failure, not a panic.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = home.run(&["hub", "--listen", &addr, "--database", "memory"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(&format!("cannot listen on {addr}")), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let _ = PATIENCE;
}

/// The viewer's live WebSocket: the thread, the events after `after` exactly,
/// then new ones; and when the share is deleted, a last item and a close
/// frame that say so. Its history pages, and the page and assets it needs.
#[test]
fn live_resumes_after_a_seq_and_says_why_it_ends() {
    let home = Home::new();
    let hub = Hub::start(&home, &[]);
    let (id, _, secret) = hub.create(THREAD);
    let thread = json!({"type":"thread","title":"live","shared":true});
    let r = sync(&hub, &id, &secret, vec![thread.clone(), event(1, "a"), event(2, "b"), event(3, "c"), event(4, "d")]);
    assert_eq!(r.status, 200, "{r:?}");

    // After 2: the thread, then 3 and 4, then what is synced next, once.
    let mut live = hub.live(&id, 2);
    assert_eq!(live.next(), Some(thread.clone()));
    assert_eq!(seqs(&[live.next().unwrap(), live.next().unwrap()]), [3, 4]);
    assert_eq!(sync(&hub, &id, &secret, vec![event(4, "d"), event(5, "e")]).status, 200);
    let next = live.next().unwrap();
    assert_eq!((next["seq"].clone(), next["event"]["input"].clone()), (json!(5), json!("e")));
    // After the last one: only the thread; after 0 (or none): everything.
    let mut caught_up = hub.live(&id, 5);
    assert_eq!(caught_up.next(), Some(thread.clone()));
    assert_eq!(sync(&hub, &id, &secret, vec![event(6, "f")]).status, 200);
    assert_eq!(seqs(&[caught_up.next().unwrap()]), [6]);
    assert_eq!(seqs(&hub.live(&id, 0).until(|i| i["seq"] == 6)), [1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(&hub.socket(&format!("/api/share/{id}/live")).until(|i| i["seq"] == 6)), [1, 2, 3, 4, 5, 6]);

    assert_eq!(hub.socket_status("/api/share/aaaaaaaaaaaa/live?after=0"), 404);
    assert_eq!(hub.socket_status("/api/share/../live"), 404);
    assert_eq!(hub.socket_status(&format!("/api/share/{id}/live?after=-1")), 400);

    // History pages: from, limit, next and the last seq.
    let page = hub.request("GET", &format!("/api/share/{id}/events?from=2&limit=2"), "");
    assert_eq!(page.status, 200, "{page:?}");
    let v = page.json();
    let got: Vec<u64> = v["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!((got, v["next"].clone(), v["lastSeq"].clone()), (vec![2, 3], json!(4), json!(6)));
    let v = hub.request("GET", &format!("/api/share/{id}/events?from=5"), "").json();
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    assert!(v.get("next").is_none(), "{v}");
    assert_eq!(hub.request("GET", &format!("/api/share/{id}/events?limit=0"), "").status, 400);
    assert_eq!(hub.request("GET", &format!("/api/share/{id}/events?from=x"), "").status, 400);
    assert_eq!(hub.request("GET", "/api/share/aaaaaaaaaaaa/events", "").status, 404);

    // The page is the viewer (its script, no inline script or style), with
    // the history rendered for readers without JavaScript.
    let page = hub.request("GET", &format!("/s/{id}"), "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<script src="/assets/viewer.js" defer></script>"#), "{}", page.body);
    assert!(page.body.contains(r#"data-mode="hub""#) && page.body.contains(r#"data-hub-seq="6""#), "{}", page.body);
    assert!(page.body.contains(r#"<div class="msg user">f</div>"#), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let js = hub.request("GET", "/assets/viewer.js", "");
    assert_eq!((js.status, js.header("content-type")), (200, Some("text/javascript; charset=utf-8")));
    assert_eq!(hub.request("GET", "/assets/index.html", "").status, 404);

    // Deleted: the open socket is told, and closed with the reason.
    let r = hub.json("DELETE", &format!("/api/share/{id}"), &json!({"secret": secret}));
    assert_eq!(r.status, 200, "{r:?}");
    let (items, close) = live.rest();
    assert_eq!(seqs(&items), [6], "what came before the delete, once");
    assert_eq!(items.last(), Some(&json!({"type":"deleted"})));
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 4000);
    assert!(reason.contains("deleted"), "{reason}");
    assert_eq!(hub.socket_status(&format!("/api/share/{id}/live?after=0")), 404);
}

/// Reads until the hub closes `s` (EOF or a reset); how long that took, or
/// `None` if it stayed open for `wait`.
fn closed_within(s: &mut std::net::TcpStream, wait: std::time::Duration) -> Option<std::time::Duration> {
    use std::io::Read;
    let started = std::time::Instant::now();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue, // an answer (408) before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// Issue 18.4: a connection that sends nothing, or half a request line, is
/// closed once the header timeout runs out; and while 200 of them are open a
/// normal client is served as ever.
#[test]
fn half_open_connections_are_closed_after_the_header_timeout() {
    use std::io::Write;
    let home = Home::new();
    let hub = Hub::start_env(&home, "127.0.0.1:0", &[], &[("TANDEM_HUB_HEADER_TIMEOUT", "2s")]);
    let opened = std::time::Instant::now();
    let mut half_open: Vec<std::net::TcpStream> = (0..200)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(&hub.addr).unwrap();
            if i % 2 == 1 {
                s.write_all(b"GET /s/aaaaaaaaaaaa HT").unwrap();
            }
            s
        })
        .collect();
    let (id, _, _) = hub.create(THREAD);
    let r = hub.request("GET", &format!("/s/{id}"), "");
    assert_eq!(r.status, 200, "served while 200 connections hang: {r:?}");
    for (i, s) in half_open.iter_mut().enumerate() {
        // 2 s timeout; 30 s is the margin for a loaded machine.
        let closed = closed_within(s, std::time::Duration::from_secs(30));
        assert!(closed.is_some(), "connection {i} still open {:?} after it was opened", opened.elapsed());
    }
    assert!(opened.elapsed() >= std::time::Duration::from_millis(1500), "closed by the timeout, not at once");
}

/// Past `TANDEM_HUB_MAX_PENDING` connections without a request, the one
/// waiting longest is closed to make room (long before its header timeout),
/// and a new client still gets in.
#[test]
fn past_the_pending_cap_the_longest_waiting_connection_makes_room() {
    let home = Home::new();
    let env = [("TANDEM_HUB_HEADER_TIMEOUT", "10m"), ("TANDEM_HUB_MAX_PENDING", "50")];
    let hub = Hub::start_env(&home, "127.0.0.1:0", &[], &env);
    let mut waiting: Vec<std::net::TcpStream> =
        (0..100).map(|_| std::net::TcpStream::connect(&hub.addr).unwrap()).collect();
    for (i, s) in waiting[..50].iter_mut().enumerate() {
        let closed = closed_within(s, std::time::Duration::from_secs(30));
        assert!(closed.is_some(), "the oldest connections make room; {i} did not");
    }
    let r = hub.request("GET", "/s/aaaaaaaaaaaa", "");
    assert_eq!(r.status, 404, "a new client gets in: {r:?}");
    // The newer ones were left alone (bar the one the client above displaced).
    let mut open = 0;
    for s in &mut waiting[51..] {
        open += usize::from(closed_within(s, std::time::Duration::from_millis(100)).is_none());
    }
    assert_eq!(open, 49);
}

/// A request whose body trickles in is answered 408 once the request
/// timeout runs out, rather than holding its connection for ever.
#[test]
fn a_trickled_body_gets_408_after_the_request_timeout() {
    use std::io::{Read, Write};
    let home = Home::new();
    let hub = Hub::start_env(&home, "127.0.0.1:0", &[], &[("TANDEM_HUB_REQUEST_TIMEOUT", "2s")]);
    let mut s = std::net::TcpStream::connect(&hub.addr).unwrap();
    let head = format!("POST /api/share HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"thr", hub.addr);
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

/// SIGTERM stops the listener but lets a request in flight finish.
#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    use std::io::{Read, Write};
    let home = Home::new();
    let mut hub = Hub::start(&home, &[]);
    let body = json!({ "threadId": THREAD }).to_string();
    let mut s = std::net::TcpStream::connect(&hub.addr).unwrap();
    let head = format!("POST /api/share HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", hub.addr, body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body.as_bytes()[..5]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    hub.server.signal(libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(std::net::TcpStream::connect(&hub.addr).is_err(), "no new connections once stopping");
    s.write_all(&body.as_bytes()[5..]).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("\"secret\""), "{answer:?}");
    assert!(hub.server.terminate().success());
}

/// Issue 18.6: the server-rendered page is capped by bytes as well as by
/// events, so a share of large events does not make a page of tens of MiB
/// for every reader; the rest is a link (or, with JavaScript, a scroll) away,
/// and walking the links shows every event once.
#[test]
fn the_page_is_capped_by_bytes_and_links_to_the_rest() {
    let home = Home::new();
    let hub = Hub::start(&home, &[]);
    let (id, _, secret) = hub.create(THREAD);
    // 8 events of ~400 KB (3.2 MB), then a small last one.
    let big = |n: u64| format!("BIG-{n}-START {} BIG-{n}-END", "lorem ipsum ".repeat(400_000 / 12));
    for n in 1..=8 {
        assert_eq!(sync(&hub, &id, &secret, vec![event(n, &big(n))]).status, 200);
    }
    assert_eq!(sync(&hub, &id, &secret, vec![event(9, "LATEST-MESSAGE")]).status, 200);

    const CAP: usize = 1_200_000; // 1 MiB of events, and the page around them
    let mut path = format!("/s/{id}");
    let mut seen = Vec::new();
    for _ in 0..20 {
        let page = hub.request("GET", &path, "");
        assert_eq!(page.status, 200);
        assert!(page.body.len() < CAP, "{path}: a page of {} bytes", page.body.len());
        if seen.is_empty() {
            assert!(page.body.contains("LATEST-MESSAGE"), "the first page ends with the latest message");
        }
        for n in (1..=8).rev() {
            if page.body.contains(&format!("BIG-{n}-START")) {
                assert!(page.body.contains(&format!("BIG-{n}-END")), "event {n} whole");
                seen.push(n);
            }
        }
        let Some(at) = page.body.find("?before=") else { break };
        assert!(page.body.contains("Earlier messages"));
        let seq: String = page.body[at + 8..].chars().take_while(char::is_ascii_digit).collect();
        path = format!("/s/{id}?before={seq}");
    }
    assert_eq!(seen, [8, 7, 6, 5, 4, 3, 2, 1], "every event once, newest first, across the pages");

    // One event bigger than the cap on its own: shown, cut, and said so.
    let (huge, _, huge_secret) = hub.create(THREAD);
    let text = format!("HUGE-START {} HUGE-END", "dolor sit amet ".repeat(3_000_000 / 15));
    assert_eq!(sync(&hub, &huge, &huge_secret, vec![event(1, &text)]).status, 200);
    let page = hub.request("GET", &format!("/s/{huge}"), "");
    assert_eq!(page.status, 200);
    assert!(page.body.len() < CAP, "a page of {} bytes", page.body.len());
    assert!(page.body.contains("HUGE-START") && !page.body.contains("HUGE-END"), "cut");
    assert!(page.body.contains("more bytes"), "and says so");
}
