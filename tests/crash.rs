//! Restart safety (invariant 5): after kill -9 mid-turn nothing a client saw is
//! lost, no seq repeats, the turn is closed `interrupted`, and the thread takes
//! new turns. SIGTERM closes running turns the same way, cleanly.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

#[test]
fn kill_9_mid_turn_loses_no_acknowledged_event() {
    let home = Home::new();
    let mut server = home.serve(&["--echo-delay-ms", "2"]);
    let s = home.endpoint();
    let id = home.new_thread();

    let mut watcher = home.raw();
    watcher.call("thread/subscribe", json!({"threadId": id, "from": 1}));
    // A waiting `post` is connected when the server dies.
    let post = home
        .tandem()
        .args(["share", "post", "--thread", &id, "--prompt", &words(5000), "--server", &s])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < 300 {
        seen.push(watcher.next_event());
    }
    server.kill9();
    assert!(home.socket().exists(), "kill -9 leaves the socket file behind");

    let post = post.wait_with_output().unwrap();
    assert_eq!(post.status.code(), Some(5), "{post:?}");
    let err = String::from_utf8_lossy(&post.stderr);
    assert!(err.contains("lost the connection"), "{err}");

    // The stale socket is replaced by the new server.
    let _server = home.serve(&[]);
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    assert_eq!(events[..seen.len()], seen[..], "an event a client saw was lost or changed");
    let turn = seen[1]["turnId"].as_str().unwrap();
    let completions: Vec<&Value> = events.iter().filter(|e| e["type"] == "turn/completed").collect();
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0]["turnId"], turn);
    assert_eq!(completions[0]["status"], "interrupted");
    assert_eq!(completions[0]["error"], "app-server stopped");
    assert_eq!(events.last().unwrap(), completions[0]);

    let mut raw = home.raw();
    let thread = raw.call("thread/read", json!({"threadId": id}));
    assert_eq!(thread["thread"]["status"], "idle");
    assert_eq!(thread["thread"]["lastSeq"], events.len());
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "back again", "--server", &s]).ok();
    assert!(out.stdout.contains("back again"));
    let after = home.events(&id);
    assert_contiguous(&after, 1);
    assert_eq!(after[..events.len()], events[..]);
}

#[test]
fn sigterm_closes_running_turns_and_removes_the_socket() {
    let home = Home::new();
    let mut server = home.serve(&["--echo-delay-ms", "500"]);
    let s = home.endpoint();
    let id = home.new_thread();
    let turn = home.run(&["share", "post", "--thread", &id, "--prompt", &words(100), "--no-wait", "--server", &s]).ok();
    let turn = turn.stdout.trim().to_owned();
    let status = server.terminate();
    assert!(status.success(), "{status:?}: {}", server.stderr());
    assert!(!home.socket().exists(), "the socket file outlived a clean shutdown");

    let _server = home.serve(&[]);
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "turn/completed");
    assert_eq!(last["turnId"], turn);
    assert_eq!(last["status"], "interrupted");
    assert_eq!(last["error"], "app-server stopped");
    assert_eq!(events.iter().filter(|e| e["type"] == "turn/completed").count(), 1, "closed twice");
    home.run(&["share", "post", "--thread", &id, "--prompt", "again", "--server", &s]).ok();
}

#[test]
fn a_log_locked_by_another_process_delays_turns_but_leaves_no_gap() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let db = home.path().join("tandem.db");
    // Another process holds the database's write lock for 7 s (longer than
    // SQLite's own busy timeout).
    let mut locker = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(7)\nc.execute('COMMIT')",
            db.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(locker.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "patient words", "--server", &home.endpoint()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(locker.wait().unwrap().success());
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    assert_eq!(events.last().unwrap()["status"], "completed");
}
