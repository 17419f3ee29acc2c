//! The `exec` agent with real subprocesses: prompt on stdin, env, streamed
//! stdout, exit status, interrupt (SIGTERM, then SIGKILL), and no zombies.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

/// Whether `pid` still exists (a zombie counts: it was not reaped).
fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn read_pid(path: &std::path::Path) -> i32 {
    let mut pid = 0;
    wait_for("the agent to write its pid", || {
        pid = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    pid
}

#[test]
fn streams_stdout_with_the_prompt_on_stdin_and_ids_in_env() {
    let home = Home::new();
    let script = r#"printf 'thread=%s turn=%s\n' "$TANDEM_THREAD_ID" "$TANDEM_TURN_ID"; tr a-z A-Z"#;
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", script]);
    let id = home.new_thread();
    let out = home
        .run(&[
            "share",
            "post",
            "--thread",
            &id,
            "--prompt",
            "hello from stdin",
            "--json",
            "--server",
            &home.endpoint(),
        ])
        .ok();
    let events = out.json_lines();
    let turn = events[0]["turnId"].as_str().unwrap();
    assert_eq!(events[0]["agent"]["kind"], "exec");
    let done = events.iter().find(|e| e["type"] == "item/completed").unwrap();
    assert_eq!(done["item"]["text"], format!("thread={id} turn={turn}\nHELLO FROM STDIN"));
    assert_eq!(events.last().unwrap()["status"], "completed");
}

#[test]
fn a_missing_program_fails_the_turn_saying_what_was_tried() {
    let home = Home::new();
    let _server = home.serve(&["--agent", "exec", "--", "/nonexistent/agent", "--flag"]);
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "hi", "--server", &home.endpoint()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("could not start `/nonexistent/agent --flag`"), "{out:?}");
}

#[test]
fn interrupt_terminates_the_process_group_and_reaps_it() {
    let home = Home::new();
    let pidfile = home.path().join("agent.pid");
    let script = format!("echo $$ > {}; echo started; exec sleep 1000", pidfile.display());
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", &script]);
    let id = home.new_thread();
    let mut raw = home.raw();
    raw.call("thread/subscribe", json!({"threadId": id}));
    let turn = raw.call("turn/start", json!({"threadId": id, "input": "x"}))["turn"]["id"].as_str().unwrap().to_owned();
    loop {
        if raw.next_event()["type"] == "item/agentMessage/delta" {
            break;
        }
    }
    let pid = read_pid(&pidfile);
    assert!(alive(pid));
    assert_eq!(raw.call("turn/interrupt", json!({"threadId": id}))["interrupted"], true);
    let events = raw.events_until_completed(&turn);
    assert_eq!(events.last().unwrap()["status"], "interrupted");
    wait_for("the agent process to be reaped", || !alive(pid));
}

#[test]
fn an_agent_ignoring_sigterm_is_killed_after_the_grace_period() {
    let home = Home::new();
    let pidfile = home.path().join("agent.pid");
    let script = format!("trap '' TERM; echo $$ > {}; echo started; while :; do sleep 0.05; done", pidfile.display());
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", &script]);
    let id = home.new_thread();
    let s = home.endpoint();
    let turn = home.run(&["share", "post", "--thread", &id, "--prompt", "x", "--no-wait", "--server", &s]).ok();
    let turn = turn.stdout.trim().to_owned();
    let pid = read_pid(&pidfile);
    home.run(&["share", "interrupt", "--thread", &id, "--server", &s]).ok();
    let mut raw = home.raw();
    raw.call("thread/subscribe", json!({"threadId": id, "from": 1}));
    let events = raw.events_until_completed(&turn);
    assert_eq!(events.last().unwrap()["status"], "interrupted");
    wait_for("the agent process to be reaped", || !alive(pid));
}

#[test]
fn ctrl_c_on_post_interrupts_its_turn_and_exits_130() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "200"]);
    let id = home.new_thread();
    let mut post = home
        .tandem()
        .args(["share", "post", "--thread", &id, "--prompt", &words(100), "--json", "--server", &home.endpoint()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut raw = home.raw();
    wait_for("the turn to stream", || {
        raw.call("thread/read", json!({"threadId": id}))["thread"]["lastSeq"].as_u64().unwrap() >= 5
    });
    unsafe {
        libc::kill(post.id() as i32, libc::SIGINT);
    }
    let status = post.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut stdout = String::new();
    std::io::Read::read_to_string(post.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "turn/completed");
    assert_eq!(last["status"], "interrupted");
    let events = home.events(&id);
    assert_eq!(events.last().unwrap(), &last);
}

#[test]
fn a_background_process_holding_stdout_does_not_keep_the_turn_running() {
    let home = Home::new();
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", "cat >/dev/null; echo hi; sleep 300 &"]);
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "x", "--server", &home.endpoint()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("hi") && out.stdout.contains("[completed]"), "{out:?}");
    // And the thread takes the next turn.
    home.run(&["share", "post", "--thread", &id, "--prompt", "y", "--server", &home.endpoint()]).ok();
}

#[test]
fn events_larger_than_a_request_line_still_reach_clients() {
    let home = Home::new();
    // A 9 MB answer: its item/completed event alone is over the 8 MiB request limit.
    let _server =
        home.serve(&["--agent", "exec", "--", "sh", "-c", "cat >/dev/null; head -c 9000000 /dev/zero | tr '\\0' a"]);
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "big", "--json", "--server", &home.endpoint()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posted = out.json_lines();
    assert_contiguous(&posted, 2);
    let done = posted.iter().find(|e| e["type"] == "item/completed").unwrap();
    assert_eq!(done["item"]["text"].as_str().unwrap().len(), 9_000_000);
    let all = home.events(&id);
    assert_contiguous(&all, 1);
    assert_eq!(all[1..], posted[..]);
}

#[test]
fn the_agent_runs_in_the_configured_directory() {
    let home = Home::new();
    let project = home.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(home.path().join("config.toml"), format!("cwd = \"{}\"\n", project.display())).unwrap();
    let _server = home.serve(&["--agent", "exec", "--", "sh", "-c", "cat >/dev/null; pwd"]);
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "where?", "--server", &home.endpoint()]).ok();
    assert!(out.stdout.contains(&project.display().to_string()), "{out:?}");

    let missing = home.run(&["app-server", "--agent", "exec", "--agent-cwd", "/nonexistent/dir", "--", "true"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("/nonexistent/dir"), "{}", missing.stderr);
}
