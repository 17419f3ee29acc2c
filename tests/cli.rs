//! The `tandem share` CLI against a real server: output, paging, exit codes,
//! and bad input that must change nothing.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn new_post_get_round_trip() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let out = home.run(&["share", "new", "--title", "demo", "--json", "--server", &s]).ok();
    let thread: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let id = thread["id"].as_str().unwrap().to_owned();
    assert_eq!(thread["title"], "demo");
    assert_eq!(thread["status"], "idle");
    assert_eq!(thread["lastSeq"], 1);

    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "hello shared world", "--server", &s]).ok();
    let lines = out.lines();
    assert!(lines[0].contains("tandem-share") && lines[0].ends_with("hello shared world"), "{out:?}");
    assert_eq!(lines[1], "hello shared world");
    assert_eq!(lines[2], "[completed]");

    let events = home.events(&id);
    assert_contiguous(&events, 1);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "thread/started",
            "turn/started",
            "item/started",
            "item/agentMessage/delta",
            "item/agentMessage/delta",
            "item/agentMessage/delta",
            "item/completed",
            "turn/completed"
        ]
    );
    assert_eq!(events[1]["input"], "hello shared world");
    assert_eq!(events[1]["client"]["name"], "tandem-share");
    assert_eq!(events[1]["agent"]["kind"], "echo");
    assert_eq!(events[6]["item"]["text"], "hello shared world");
    assert_eq!(events[7]["status"], "completed");
    let mut last_ts = String::new();
    for e in &events {
        let ts = e["ts"].as_str().unwrap().to_owned();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        assert!(ts >= last_ts, "time went backwards");
        last_ts = ts;
    }

    // --json post prints exactly the turn's events as stored.
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "two words", "--json", "--server", &s]).ok();
    let posted = out.json_lines();
    let stored = home.events(&id);
    assert_eq!(posted, stored[8..].to_vec());

    // list shows it, human and json.
    let out = home.run(&["share", "list", "--server", &s]).ok();
    assert!(out.lines()[1].starts_with(&format!("{} ", &id[..8])) && out.stdout.contains("demo"), "{out:?}");
    let out = home.run(&["share", "list", "--json", "--server", &s]).ok();
    let listed = out.json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["lastSeq"], stored.len());
}

#[test]
fn get_pages_with_from_and_limit() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let id = home.new_thread();
    // 2,500 words: one turn of 2,505 events, more than two server pages.
    home.run(&["share", "post", "--thread", &id, "--prompt", &words(2500), "--json", "--server", &s]).ok();
    let all = home.events(&id);
    assert_eq!(all.len(), 2 + 2500 + 3);
    assert_contiguous(&all, 1);

    let page =
        home.run(&["share", "get", "--thread", &id, "--from", "3", "--limit", "5", "--json", "--server", &s]).ok();
    assert_eq!(page.json_lines(), all[2..7].to_vec());

    let page =
        home.run(&["share", "get", "--thread", &id, "--from", "999", "--limit", "1500", "--json", "--server", &s]).ok();
    assert_eq!(page.json_lines(), all[998..2498].to_vec());

    // From a timestamp: the first event at or after it.
    let ts = all[1500]["ts"].as_str().unwrap();
    let first_at = all.iter().position(|e| e["ts"].as_str().unwrap() >= ts).unwrap();
    let page =
        home.run(&["share", "get", "--thread", &id, "--from", ts, "--limit", "3", "--json", "--server", &s]).ok();
    assert_eq!(page.json_lines(), all[first_at..first_at + 3].to_vec());

    // Past the end: nothing, successfully.
    let page = home.run(&["share", "get", "--thread", &id, "--from", "100000", "--json", "--server", &s]).ok();
    assert!(page.stdout.is_empty());

    // Raw paging: next is the seq to pass on, absent at the end.
    let mut raw = home.raw();
    let r = raw.call("thread/events", serde_json::json!({"threadId": id, "from": 1, "limit": 5000}));
    assert_eq!(r["events"].as_array().unwrap().len(), 1000, "the server caps a page");
    assert_eq!(r["next"], 1001);
    let r = raw.call("thread/events", serde_json::json!({"threadId": id, "from": 2501}));
    assert_eq!(r["events"].as_array().unwrap().len(), 5);
    assert!(r.get("next").is_none());
}

#[test]
fn bad_input_is_refused_with_the_documented_codes_and_changes_nothing() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let id = home.new_thread();
    let before = home.events(&id);

    let cases: &[(&[&str], i32, &str)] = &[
        (&["share", "post", "--thread", "not-a-uuid", "--prompt", "x"], 2, "neither an id nor the start of one"),
        (&["share", "get", "--thread", "01a"], 2, "at least its first 4 hex digits"),
        (&["share", "get", "--thread", "ffff0000"], 4, "no thread id starts with ffff0000"),
        (&["share", "post", "--thread", &id, "--prompt", "   "], 2, "prompt is empty"),
        (&["share", "get", "--thread", &id, "--from", "yesterday"], 2, "RFC 3339"),
        (&["share", "get", "--thread", &id, "--from", "0"], 2, "out of range"),
        (&["share", "get", "--thread", &id, "--from", "18446744073709551615"], 2, "out of range"),
        (&["share", "get", "--thread", &id, "--limit", "0"], 2, "--limit"),
        (&["share", "tail", "--thread", &id, "--from", "2026-13-01T00:00:00Z"], 2, "RFC 3339"),
        (
            &["share", "post", "--thread", "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f", "--prompt", "x"],
            4,
            "thread not found",
        ),
        (&["share", "get", "--thread", "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f"], 4, "thread not found"),
        (&["share", "tail", "--thread", "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f"], 4, "thread not found"),
        (&["share", "interrupt", "--thread", "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f"], 4, "thread not found"),
        (&["share", "post", "--thread", &id], 2, "--prompt"),
        (&["share", "frobnicate"], 2, "unrecognized subcommand"),
    ];
    for (args, code, needle) in cases {
        let mut full = args.to_vec();
        full.extend(["--server", &s]);
        if args[1] == "frobnicate" {
            full.truncate(2);
        }
        let out = home.run(&full);
        assert_eq!(out.code, *code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {}", out.stderr);
        // Our own errors are one line; clap's usage errors add a usage hint.
        if out.stderr.starts_with("tandem: ") {
            assert_eq!(out.stderr.lines().count(), 1, "{args:?}: say it in one line: {}", out.stderr);
        }
    }
    assert_eq!(home.events(&id), before, "bad input changed the thread");
    let threads = home.run(&["share", "list", "--json", "--server", &s]).ok();
    assert_eq!(threads.json_lines().len(), 1, "bad input created a thread");
}

#[test]
fn an_explicit_server_that_does_not_answer_is_exit_5() {
    let home = Home::new();
    let missing = home.path().join("nobody.sock");
    let ep = format!("unix:{}", missing.display());
    let out = home.run(&["share", "list", "--server", &ep]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains(&ep) && out.stderr.contains("try again"), "{}", out.stderr);
    assert!(!missing.exists(), "an explicit endpoint must not autostart a server");
    let out = home.run(&["share", "list", "--server", "stdio:exit 0"]);
    assert_eq!(out.code, 5, "{out:?}");
    let out = home.run(&["share", "list", "--server", "ws://127.0.0.1:1"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn no_wait_returns_the_turn_id_and_interrupt_stops_it() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "200"]);
    let s = home.endpoint();
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", &words(200), "--no-wait", "--server", &s]).ok();
    let turn = out.stdout.trim().to_owned();
    assert_eq!(turn.len(), 36, "{out:?}");
    let out = home.run(&["share", "interrupt", "--thread", &id, "--server", &s]).ok();
    assert!(out.stdout.contains("interrupted"), "{out:?}");
    let mut raw = home.raw();
    raw.call("thread/subscribe", serde_json::json!({"threadId": id, "from": 1}));
    let events = raw.events_until_completed(&turn);
    let done = events.last().unwrap();
    assert_eq!(done["status"], "interrupted");
    assert!(done["error"].as_str().unwrap().contains("interrupted by tandem-share"), "{done}");
    let out = home.run(&["share", "interrupt", "--thread", &id, "--server", &s]).ok();
    assert!(out.stdout.contains("nothing to interrupt"), "{out:?}");
    // And the thread takes a new turn at once.
    home.run(&["share", "post", "--thread", &id, "--prompt", "after", "--server", &s]).ok();
}

#[test]
fn prompt_from_stdin() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let id = home.new_thread();
    let out =
        home.run_with_stdin(&["share", "post", "--thread", &id, "--prompt", "-", "--server", &s], "from\nstdin\n");
    assert_eq!(out.code, 0, "{out:?}");
    let events = home.events(&id);
    assert_eq!(events[1]["input"], "from\nstdin", "the pipe's final newline is not part of the prompt");
    home.run_with_stdin(&["share", "post", "--thread", &id, "--prompt", "-", "--server", &s], "two\n\n").ok();
    assert_eq!(home.events(&id).iter().filter(|e| e["input"] == "two\n").count(), 1, "only one newline is dropped");
    let out = home.run_with_stdin(&["share", "post", "--thread", &id, "--prompt", "-", "--server", &s], "\n");
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn wait_idle_posts_after_the_running_turn() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "30"]);
    let s = home.endpoint();
    let id = home.new_thread();
    let first =
        home.run(&["share", "post", "--thread", &id, "--prompt", &words(100), "--no-wait", "--server", &s]).ok();
    let first = first.stdout.trim().to_owned();
    let busy = home.run(&["share", "post", "--thread", &id, "--prompt", "x", "--server", &s]);
    assert_eq!(busy.code, 3, "{busy:?}");
    assert!(busy.stderr.contains(&first) && busy.stderr.contains("--wait-idle"), "{}", busy.stderr);
    let out = home
        .run(&["share", "post", "--thread", &id, "--prompt", "patient one", "--wait-idle", "--json", "--server", &s])
        .ok();
    let mine = out.json_lines();
    assert_eq!(mine.last().unwrap()["type"], "turn/completed");
    assert_eq!(mine.last().unwrap()["status"], "completed");
    // The second turn started only after the first completed.
    let events = home.events(&id);
    let first_done = events.iter().position(|e| e["type"] == "turn/completed" && e["turnId"] == first).unwrap();
    let second_start = events.iter().position(|e| e["type"] == "turn/started" && e["input"] == "patient one").unwrap();
    assert!(first_done < second_start);
}

#[test]
fn wait_idle_is_bounded() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "1000"]);
    let s = home.endpoint();
    let id = home.new_thread();
    home.run(&["share", "post", "--thread", &id, "--prompt", &words(100), "--no-wait", "--server", &s]).ok();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "x", "--wait-idle=1", "--server", &s]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("still busy after waiting 1s"), "{}", out.stderr);
}

#[test]
fn failed_and_interrupted_turns_exit_1() {
    let home = Home::new();
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", "echo partial; echo 'no model here' >&2; exit 7"]);
    let s = home.endpoint();
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "hi", "--server", &s]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("partial"), "{out:?}");
    assert!(
        out.stdout.contains("[failed: `sh -c") && out.stdout.contains("exited with status 7: no model here"),
        "{out:?}"
    );
}

/// Two threads whose ids start alike (as UUID v7s made close together do).
fn twins(home: &Home) -> (String, String) {
    let mut raw = home.raw();
    let a = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f";
    let b = "0192f0c2-7b4e-7c1a-af00-000000000001";
    for (id, title) in [(a, "first"), (b, "second")] {
        raw.call("thread/start", serde_json::json!({"threadId": id, "title": title}));
    }
    (a.to_owned(), b.to_owned())
}

#[test]
fn any_unique_prefix_names_a_thread_and_an_ambiguous_one_lists_the_candidates() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let (a, b) = twins(&home);

    // Ambiguous: exit 2, every candidate named, nothing done.
    for cmd in [
        &["share", "get", "--thread", "0192f0c2"][..],
        &["share", "post", "--thread", "0192F0C2-7B4E", "--prompt", "x"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--server", &s]);
        let out = home.run(&args);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("is the start of 2 thread ids"), "{}", out.stderr);
        assert!(out.stderr.contains(&a) && out.stderr.contains(&b), "{}", out.stderr);
    }
    assert_eq!(home.events(&a).len(), 1);

    // Unique: works everywhere an id is taken, hyphens or not.
    let out = home.run(&["share", "post", "--thread", "0192f0c27b4e7c1a9", "--prompt", "to a", "--server", &s]).ok();
    assert!(out.stdout.contains("to a"), "{out:?}");
    assert!(home.events(&a).iter().any(|e| e["input"] == "to a"));
    let got = home.run(&["share", "get", "--thread", "0192f0c2-7b4e-7c1a-a", "--json", "--server", &s]).ok();
    assert_eq!(got.json_lines()[0]["threadId"], b.as_str());
    let out = home.run(&["share", "interrupt", "--thread", "0192f0c2-7b4e-7c1a-a", "--server", &s]).ok();
    assert!(out.stdout.contains(&format!("thread {b} is idle")), "{out:?}");

    // The list leads with each id's shortest unique start: enough to type.
    let out = home.run(&["share", "list", "--server", &s]).ok();
    assert!(out.stdout.contains("0192f0c2-7b4e-7c1a-9 ") && out.stdout.contains("0192f0c2-7b4e-7c1a-a "), "{out:?}");
}

#[test]
fn list_is_ordered_by_last_activity_and_shows_it() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let older = home.run(&["share", "new", "--title", "older", "--server", &s]).ok().stdout.trim().to_owned();
    let newer = home.run(&["share", "new", "--title", "newer", "--server", &s]).ok().stdout.trim().to_owned();
    let ids = |home: &Home| -> Vec<String> {
        let out = home.run(&["share", "list", "--json", "--server", &s]).ok();
        out.json_lines().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(&home), [newer.clone(), older.clone()]);
    // A turn on the older thread makes it the most recently active.
    home.run(&["share", "post", "--thread", &older, "--prompt", "wake up", "--server", &s]).ok();
    assert_eq!(ids(&home), [older.clone(), newer.clone()]);
    let out = home.run(&["share", "list", "--server", &s]).ok();
    let lines = out.lines();
    assert!(lines[0].contains("LAST ACTIVITY"), "{out:?}");
    assert!(lines[1].ends_with("older") && lines[2].ends_with("newer"), "{out:?}");
    let json = home.run(&["share", "list", "--json", "--server", &s]).ok().json_lines();
    let updated = json[0]["updatedAt"].as_str().unwrap();
    assert!(lines[1].contains(updated), "the line shows when it was last active: {out:?}");
}

#[test]
fn tail_reconnects_after_a_server_restart_and_misses_nothing() {
    let home = Home::new();
    let mut server = home.serve(&[]);
    let s = home.endpoint();
    let id = home.new_thread();
    home.run(&["share", "post", "--thread", &id, "--prompt", "before the restart", "--server", &s]).ok();
    let mut tail = Tail::start(&home, &["--thread", &id, "--from", "1"]);
    let mut seen = tail.until(|e| e["type"] == "turn/completed");

    server.kill9();
    // A turn written while the tail is away, and one after it is back.
    let _server = home.serve(&[]);
    home.run(&["share", "post", "--thread", &id, "--prompt", "after the restart", "--server", &s]).ok();
    seen.extend(tail.until(|e| e["type"] == "turn/completed"));
    home.run(&["share", "post", "--thread", &id, "--prompt", "and later", "--server", &s]).ok();
    seen.extend(tail.until(|e| e["type"] == "turn/completed"));
    assert_eq!(seen, home.events(&id), "the tail printed every event once, in order");
    assert!(seen.iter().any(|e| e["input"] == "and later"));
}

#[test]
fn tail_no_reconnect_exits_5_naming_where_to_resume() {
    let home = Home::new();
    let mut server = home.serve(&[]);
    let id = home.new_thread();
    let mut child = home
        .tandem()
        .args(["share", "tail", "--thread", &id, "--from", "1", "--no-reconnect", "--server", &home.endpoint()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains("thread started"), "{line}");
    server.kill9();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("resume with --from 2"), "{stderr}");
}

#[test]
fn ctrl_c_while_post_waits_for_an_idle_thread_exits_130_and_posts_nothing() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "200"]);
    let s = home.endpoint();
    let id = home.new_thread();
    home.run(&["share", "post", "--thread", &id, "--prompt", &words(300), "--no-wait", "--server", &s]).ok();
    let mut child = home
        .tandem()
        .args(["share", "post", "--thread", &id, "--prompt", "patient", "--wait-idle", "--server", &s])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting up to 600s") {
        let n = std::io::BufRead::read_line(&mut stderr, &mut said).unwrap();
        assert!(n > 0, "post ended without saying it waits: {said}");
    }
    assert!(said.contains("busy"), "{said}");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert!(rest.contains("nothing was posted"), "{rest}");
    assert!(!home.events(&id).iter().any(|e| e["input"] == "patient"));
    home.run(&["share", "interrupt", "--thread", &id, "--server", &s]).ok();
}

#[test]
fn a_live_tail_resumes_after_a_restart_where_it_was() {
    let home = Home::new();
    let mut server = home.serve(&[]);
    let s = home.endpoint();
    let id = home.new_thread();
    let mut tail = Tail::start(&home, &["--thread", &id]);
    // It prints only what happens after it started: post until it shows something.
    let first = loop {
        home.run(&["share", "post", "--thread", &id, "--prompt", "ping", "--server", &s]).ok();
        if let Some(ev) = tail.next_within(std::time::Duration::from_secs(1)) {
            break ev;
        }
    };
    let from = first["seq"].as_u64().unwrap() as usize;
    let mut seen = vec![first.clone()];
    if first["type"] != "turn/completed" {
        seen.extend(tail.until(|e| e["type"] == "turn/completed"));
    }

    server.kill9();
    let _server = home.serve(&[]);
    home.run(&["share", "post", "--thread", &id, "--prompt", "after the restart", "--server", &s]).ok();
    seen.extend(tail.until(|e| e["type"] == "turn/completed"));
    assert_eq!(seen, home.events(&id)[from - 1..].to_vec(), "nothing missed or repeated across the restart");
    assert_eq!(seen.last().unwrap()["type"], "turn/completed");
    assert!(seen.iter().any(|e| e["input"] == "after the restart"));
}

/// `status` shows the flags the server runs with, and `restart` without flags
/// keeps them (with flags, it takes the new ones).
#[test]
fn restart_keeps_the_flags_status_shows() {
    let home = Home::new();
    let _stop = StopOnDrop(&home);
    home.run(&["app-server", "start", "--echo-delay-ms", "150"]).ok();
    let status = home.run(&["app-server", "status"]).ok();
    assert!(status.stdout.contains("--echo-delay-ms 150"), "{status:?}");
    home.run(&["app-server", "restart"]).ok();
    let status = home.run(&["app-server", "status", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let flags: Vec<&str> = v["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(flags.windows(2).any(|w| w == ["--echo-delay-ms", "150"]), "{flags:?}");
    home.run(&["app-server", "restart", "--echo-delay-ms", "5"]).ok();
    let status = home.run(&["app-server", "status"]).ok();
    assert!(status.stdout.contains("--echo-delay-ms 5") && !status.stdout.contains("150"), "{status:?}");
}

/// The server takes lines of at most 8 MiB (`MAX_FRAME_BYTES`). A bigger
/// prompt — from a file or a pipe — is refused before anything is sent, and
/// so is one that only the JSON escaping makes too big: exit 2 at once,
/// saying the limit and the size, never a wait for an answer that cannot come.
#[test]
fn a_prompt_over_the_line_limit_exits_2_at_once_saying_the_limit() {
    const LIMIT: usize = 8 * 1024 * 1024;
    let home = Home::new();
    let _server = home.serve(&[]);
    let s = home.endpoint();
    let id = home.new_thread();
    let post = ["share", "post", "--thread", id.as_str(), "--prompt", "-", "--server", s.as_str()];
    let quick = std::time::Duration::from_secs(30);

    let big = words(LIMIT / 5);
    assert!(big.len() > LIMIT);
    let file = home.path().join("prompt.md");
    std::fs::write(&file, &big).unwrap();
    let out = home.run_within(&post, Input::File(file), quick);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(&format!("the prompt is {} bytes", big.len())), "{out:?}");
    assert!(out.stderr.contains(&format!("at most {LIMIT} bytes (8 MiB)")), "{out:?}");

    let out = home.run_within(&post, Input::Bytes(big.into_bytes()), quick);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(&format!("at most {LIMIT} bytes")), "{out:?}");

    // 5 MiB of quotes is 10 MiB as JSON.
    let quotes = "\"".repeat(5 << 20);
    let out = home.run_within(&post, Input::Bytes(quotes.into_bytes()), quick);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("as a JSON request") && out.stderr.contains(&format!("at most {LIMIT}")), "{out:?}");

    // Nothing was posted, and a prompt that fits still goes through.
    assert_eq!(home.last_seq(&id), 1);
    home.share(&["post", "--thread", &id, "--prompt", "fits"]).ok();
}

/// A server that exits as it starts (here: config.toml names an agent
/// directory that does not exist) is noticed at once, not after the 20 s
/// autostart wait: the CLI says why — once, however many attempts the
/// server's stderr file holds — and exits 2, as `tandem app-server start` does.
#[test]
fn autostart_of_a_server_with_a_bad_config_fails_at_once_saying_why() {
    let home = Home::new();
    std::fs::write(home.path().join("config.toml"), "cwd = \"/nonexistent/tandem-agent-dir\"\n").unwrap();
    let post = ["share", "post", "--thread", "00000000-0000-0000-0000-000000000000", "--prompt", "hi"];
    for attempt in 0..2 {
        let began = std::time::Instant::now();
        let out = home.run_within(&post, Input::Null, std::time::Duration::from_secs(60));
        let took = began.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "attempt {attempt} took {took:?}: {out:?}");
        assert_eq!(out.code, 2, "{out:?}");
        let reason = "the agent directory /nonexistent/tandem-agent-dir does not exist";
        assert_eq!(out.stderr.matches(reason).count(), 1, "attempt {attempt}: {out:?}");
        assert!(out.stderr.contains("app-server.stderr"), "{out:?}");
    }
    let log = std::fs::read_to_string(home.path().join("logs/app-server.stderr")).unwrap();
    assert_eq!(log.matches("does not exist").count(), 2, "{log}");
    // `app-server start` refuses the same config with the same code.
    assert_eq!(home.run(&["app-server", "start"]).code, 2);
}

/// Revoking a link twice: the second time says it already was (and when),
/// and succeeds — the link is revoked, as asked. An id never made is still
/// "not found" (4).
#[test]
fn revoking_a_revoked_link_says_so_and_succeeds() {
    let home = Home::new();
    let _web = common::web::WebServer::start(&home, &[]);
    let s = home.endpoint();
    let id = home.new_thread();
    let out = home.run(&["share", "link", "--thread", &id, "--json", "--server", &s]).ok();
    let link: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let link_id = link["link"]["id"].as_str().unwrap().to_owned();

    let out = home.run(&["share", "revoke", &link_id, "--server", &s]).ok();
    assert_eq!(out.stdout.trim(), format!("revoked {link_id}"));
    let again = home.run(&["share", "revoke", &link_id, "--server", &s]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains(&format!("link {link_id} was already revoked at 20")), "{again:?}");
    let unknown = home.run(&["share", "revoke", "0123456789abcdef", "--server", &s]);
    assert_eq!(unknown.code, 4, "{unknown:?}");
    assert!(unknown.stderr.contains("no link 0123456789abcdef"), "{unknown:?}");
}
