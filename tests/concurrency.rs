//! Real races: many clients posting at once, and followers that join at
//! different points of a running turn.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Barrier};

use common::*;
use serde_json::{Value, json};

fn wait_idle(home: &Home, thread: &str) {
    let mut raw = home.raw();
    wait_for("the thread to be idle", || {
        raw.call("thread/read", json!({"threadId": thread}))["thread"]["status"] == "idle"
    });
}

#[test]
fn sixteen_concurrent_posts_start_exactly_one_turn_every_time() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "100"]);
    let s = home.endpoint();
    let id = home.new_thread();
    let prompt = words(50);
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let children: Vec<_> = (0..16)
            .map(|_| {
                home.tandem()
                    .args(["share", "post", "--thread", &id, "--prompt", &prompt, "--no-wait", "--server", &s])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap()).collect();
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "round {round}: {codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 15, "round {round}: {codes:?}");
        let winner = outs.iter().find(|o| o.status.success()).unwrap();
        let turn = String::from_utf8_lossy(&winner.stdout).trim().to_owned();
        for o in outs.iter().filter(|o| !o.status.success()) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(&format!("busy: turn {turn}")), "{err}");
        }
        home.run(&["share", "interrupt", "--thread", &id, "--server", &s]).ok();
        wait_idle(&home, &id);
    }
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    assert_eq!(events.iter().filter(|e| e["type"] == "turn/started").count(), ROUNDS);
    assert_eq!(events.iter().filter(|e| e["type"] == "turn/completed").count(), ROUNDS);
}

#[test]
fn simultaneous_raw_submits_race_for_one_turn() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "50"]);
    let id = home.new_thread();
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let mut raw = home.raw();
                let id = id.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    raw.request("turn/start", json!({"threadId": id, "input": "a b c d e f g h i j"}))
                })
            })
            .collect();
        let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok: Vec<&Value> = answers.iter().filter(|a| a.get("result").is_some()).collect();
        assert_eq!(ok.len(), 1, "round {round}: {answers:?}");
        let turn = ok[0]["result"]["turn"]["id"].as_str().unwrap();
        for a in answers.iter().filter(|a| a.get("error").is_some()) {
            assert_eq!(a["error"]["code"], -32001, "{a}");
            assert_eq!(a["error"]["data"]["reason"], "busy");
            assert_eq!(a["error"]["data"]["activeTurnId"], turn);
        }
        // A client that sees turn/completed can post at once (invariant 1).
        let mut raw = home.raw();
        let seq = raw.call("thread/read", json!({"threadId": id}))["thread"]["lastSeq"].as_u64().unwrap();
        raw.call("thread/subscribe", json!({"threadId": id, "from": seq}));
        raw.events_until_completed(turn);
        let next = raw.request("turn/start", json!({"threadId": id, "input": "right after"}));
        assert!(next.get("result").is_some(), "round {round}: {next}");
        let next_turn = next["result"]["turn"]["id"].as_str().unwrap().to_owned();
        raw.events_until_completed(&next_turn);
    }
}

#[test]
fn tails_started_before_and_during_a_turn_equal_get() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "20"]);
    let s = home.endpoint();
    let id = home.new_thread();
    let mut from_start = Tail::start(&home, &["--thread", &id, "--from", "1"]);
    // The first tail is attached once it has printed thread/started.
    from_start.until(|e| e["type"] == "thread/started");

    let turn = home.run(&["share", "post", "--thread", &id, "--prompt", &words(300), "--no-wait", "--server", &s]).ok();
    let turn = turn.stdout.trim().to_owned();
    let mut raw = home.raw();
    wait_for("the turn to be under way", || {
        raw.call("thread/read", json!({"threadId": id}))["thread"]["lastSeq"].as_u64().unwrap() >= 30
    });
    let so_far = home.events(&id);
    let seq_from = 20u64;
    let ts_from = so_far[25]["ts"].as_str().unwrap().to_owned();
    let mut by_seq = Tail::start(&home, &["--thread", &id, "--from", &seq_from.to_string()]);
    let mut by_time = Tail::start(&home, &["--thread", &id, "--from", &ts_from]);
    let mut live = Tail::start(&home, &["--thread", &id]);

    let done = |e: &Value| e["type"] == "turn/completed" && e["turnId"] == turn;
    let a = from_start.until(done);
    let b = by_seq.until(done);
    let c = by_time.until(done);
    let d = live.until(done);

    let get = |from: &str| {
        home.run(&["share", "get", "--thread", &id, "--from", from, "--json", "--server", &s]).ok().json_lines()
    };
    let mut a_all = vec![home.events(&id)[0].clone()];
    a_all.extend(a);
    assert_eq!(a_all, get("1"));
    assert_eq!(b, get(&seq_from.to_string()));
    assert_eq!(c, get(&ts_from));
    assert!(c[0]["ts"].as_str().unwrap() >= ts_from.as_str());
    // The live tail saw a gapless suffix ending at the same place.
    let all = get("1");
    let first = d[0]["seq"].as_u64().unwrap() as usize;
    assert_eq!(d, all[first - 1..].to_vec());
}
