//! A subscriber that stops reading costs only itself (invariant 4): while it
//! stalls, a 100k-delta turn streams to everyone else and new turns run; when
//! it reads again it gets every event, in order, from the store.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_stalled_subscriber_neither_blocks_others_nor_loses_events() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();

    // Subscribes, then reads nothing until the end of the test.
    let mut stalled = home.raw();
    let sub = stalled.call("thread/subscribe", json!({"threadId": id}));
    assert!(sub["subscription"].is_u64(), "{sub}");

    let mut readers: Vec<Tail> = (0..2).map(|_| Tail::start(&home, &["--thread", &id, "--from", "2"])).collect();
    let mut raw_reader = home.raw();
    raw_reader.call("thread/subscribe", json!({"threadId": id}));

    const DELTAS: usize = 100_000;
    let mut poster = home.raw();
    let turn = poster.call("turn/start", json!({"threadId": id, "input": words(DELTAS)}));
    let turn = turn["turn"]["id"].as_str().unwrap().to_owned();

    // Everyone else gets the whole turn while the stalled one reads nothing.
    let done = |e: &serde_json::Value| e["type"] == "turn/completed";
    for r in &mut readers {
        let got = r.until(done);
        assert_eq!(got.len(), DELTAS + 4);
        assert_contiguous(&got, 2);
    }
    let got = raw_reader.events_until_completed(&turn);
    assert_eq!(got.len(), DELTAS + 4);
    assert_contiguous(&got, 2);

    // The thread is idle and takes another turn while the reader still stalls.
    let second = poster.call("turn/start", json!({"threadId": id, "input": "still here"}));
    let second = second["turn"]["id"].as_str().unwrap().to_owned();
    raw_reader.events_until_completed(&second);

    // Now the stalled subscriber reads: every event of both turns, in order.
    let first_turn = stalled.events_until_completed(&turn);
    assert_eq!(first_turn.len(), DELTAS + 4);
    assert_contiguous(&first_turn, 2);
    let second_turn = stalled.events_until_completed(&second);
    assert_contiguous(&second_turn, 2 + DELTAS as u64 + 4);
    assert_eq!(second_turn.len(), 2 + 2 + 2);
    assert_eq!(second_turn.last().unwrap()["status"], "completed");
}
