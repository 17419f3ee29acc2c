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

const MIB: u64 = 1024;

/// Following a thread costs memory only while someone follows it: a thousand
/// follow/unfollow rounds on as many threads leave the server where it was.
#[test]
fn followed_threads_cost_nothing_once_unfollowed() {
    let home = Home::new();
    let server = home.serve(&[]);
    let mut raw = home.raw();
    let threads: Vec<String> =
        (0..512).map(|_| raw.call("thread/start", json!({}))["thread"]["id"].as_str().unwrap().to_owned()).collect();
    let before = proc_kib(server.pid(), "VmRSS");
    // Unsubscribed one by one…
    for id in &threads {
        let sub = raw.call("thread/subscribe", json!({"threadId": id}))["subscription"].clone();
        assert_eq!(raw.call("thread/unsubscribe", json!({"subscription": sub}))["unsubscribed"], true);
    }
    // …and left all at once by a client that goes away.
    let mut leaver = home.raw();
    for id in &threads {
        leaver.call("thread/subscribe", json!({"threadId": id}));
    }
    let during = proc_kib(server.pid(), "VmRSS");
    drop(leaver);
    // The server has noticed the leaver once another request round-trips after
    // its subscriptions ended (they end with its connection).
    raw.call("thread/list", json!({}));
    let after = proc_kib(server.pid(), "VmRSS");
    assert!(during < before + 64 * MIB, "512 followed idle threads took {} KiB", during - before);
    assert!(after < before + 64 * MIB, "RSS grew from {before} to {after} KiB");
    // Following still works, live, after all that.
    let id = &threads[0];
    raw.call("thread/subscribe", json!({"threadId": id}));
    raw.call("turn/start", json!({"threadId": id, "input": "still live"}));
    let events = loop {
        let ev = raw.next_event();
        if ev["type"] == "turn/completed" {
            break ev;
        }
    };
    assert_eq!(events["status"], "completed");
}

/// A client that asks and never reads holds at most its outbound budget; the
/// server stops reading its requests until it reads, and loses none of them.
#[test]
fn a_client_that_never_reads_pins_only_its_budget() {
    let home = Home::new();
    let server = home.serve(&["--client-buffer-mib", "8"]);
    let mut raw = home.raw();
    let big = "y".repeat(3 << 20);
    let id = raw.call("thread/start", json!({"turns": [{"input": "x", "response": big}]}))["thread"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(big);
    let before = proc_kib(server.pid(), "VmRSS");

    const ASKS: usize = 200;
    let hog = std::os::unix::net::UnixStream::connect(home.socket()).unwrap();
    let mut w = hog.try_clone().unwrap();
    let req =
        format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/events\",\"params\":{{\"threadId\":\"{id}\"}}}}\n");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..ASKS {
            if w.write_all(req.as_bytes()).is_err() {
                return;
            }
        }
    });
    // Others are served meanwhile, and the hog's pages do not pile up.
    for _ in 0..20 {
        home.run(&["share", "list", "--server", &home.endpoint()]).ok();
    }
    let during = proc_kib(server.pid(), "VmRSS");
    assert!(during < before + 96 * MIB, "an unread client pinned {} KiB (budget 8 MiB)", during - before);

    // Reading now gets every answer, whole.
    let mut reader = std::io::BufReader::new(hog);
    let mut line = Vec::new();
    for i in 0..ASKS {
        line.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).unwrap();
        assert!(n > 3 << 20, "answer {i} was {n} bytes");
        assert!(line.starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"events\":["), "answer {i}");
    }
    writer.join().unwrap();
}

/// Unfinished lines share one budget and must keep moving: a client that
/// would pass the budget, or stalls mid-line, is told why and closed; idle
/// clients and whole lines are not affected.
#[test]
fn unfinished_lines_are_capped_and_time_out() {
    let home = Home::new();
    let server = home.serve(&["--line-buffer-mib", "16", "--line-timeout", "2"]);
    let before = proc_kib(server.pid(), "VmRSS");
    let mut idle = home.raw();
    idle.call("thread/list", json!({}));

    // Four clients with 6 MiB each of one unfinished line: 24 MiB > 16.
    let chunk = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/start\",\"params\":{{\"title\":\"{}",
        "t".repeat(6 << 20)
    );
    let mut hogs: Vec<Raw> = (0..4).map(|_| home.raw()).collect();
    for hog in &mut hogs {
        // The server may already have closed this one: a failed write is fine.
        let _ = std::io::Write::write_all(hog.writer_mut(), chunk.as_bytes());
    }
    let mut refused = 0;
    for hog in &mut hogs {
        // Every hog ends: refused as overloaded, or (holding budget) timed out.
        let line = hog.read_line_raw().expect("an error line before the close");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let reason = v["error"]["data"]["reason"].as_str().unwrap().to_owned();
        assert!(reason == "overloaded" || reason == "lineTimeout", "{line}");
        if reason == "overloaded" {
            refused += 1;
        }
        assert_eq!(hog.read_line_raw(), None, "the connection is closed after the error");
    }
    assert!(refused >= 1, "24 MiB of unfinished lines passed a 16 MiB budget");
    let peak = proc_kib(server.pid(), "VmHWM");
    assert!(peak < before + 96 * MIB, "unfinished lines took {} KiB", peak - before);

    // The idle client was never timed out, and whole big lines still go through.
    idle.call("thread/list", json!({}));
    let title = "t".repeat(6 << 20);
    let t = idle.call("thread/start", json!({"title": title}));
    assert_eq!(t["thread"]["title"].as_str().map(str::len), Some(6 << 20));
}

/// At the connection limit a new client gets an error line at once, and the
/// CLI says what happened (exit 5) instead of hanging.
#[test]
fn the_connection_limit_answers_instead_of_hanging() {
    let home = Home::new();
    let _server = home.serve(&["--max-connections", "4"]);
    // (The probe that saw the server up may hold a slot a moment longer.)
    let mut held: Vec<Raw> = Vec::new();
    while held.len() < 4 {
        let mut r = home.raw();
        r.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/list\"}\n");
        let answer = r.read_line_raw().unwrap_or_default();
        if answer.contains("\"result\"") {
            held.push(r);
        } else {
            assert!(answer.contains("tooManyConnections"), "{answer}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let mut extra = home.raw();
    let line = extra.read_line_raw().expect("an error line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["error"]["data"]["reason"], "tooManyConnections", "{line}");
    assert_eq!(v["id"], serde_json::Value::Null);
    assert_eq!(extra.read_line_raw(), None);

    let out = home.run(&["share", "list", "--server", &home.endpoint()]);
    assert_eq!(out.code, 5, "{out:?}");

    assert!(out.stderr.contains("too many connections") && out.stderr.contains("--max-connections"), "{out:?}");

    // One leaves; the next client gets in.
    held.pop();
    wait_for("a freed connection slot", || home.run(&["share", "list", "--server", &home.endpoint()]).code == 0);
}

/// A fast agent waits for the log writer instead of queueing without bound:
/// with the database's write lock held by another process, the turn stops
/// a bounded way ahead of what is committed, and finishes once the lock goes.
#[test]
fn a_fast_agent_is_paced_by_the_log_writer() {
    let home = Home::new();
    let server = home.serve(&[]);
    let id = home.new_thread();
    let mut raw = home.raw();
    let base = proc_kib(server.pid(), "VmHWM");
    // 256k one-letter words: as many deltas, as fast as echo can make them.
    let prompt = "a ".repeat(256 * 1024);
    let out = home.run_with_stdin(
        &["share", "post", "--thread", &id, "--prompt", "-", "--no-wait", "--server", &home.endpoint()],
        &prompt,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let last_seq =
        |raw: &mut Raw| raw.call("thread/read", json!({"threadId": id}))["thread"]["lastSeq"].as_u64().unwrap();

    // Another process takes the write lock: nothing more is committed.
    let db = rusqlite::Connection::open(home.path().join("tandem.db")).unwrap();
    db.busy_timeout(PATIENCE).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let committed =
        db.query_row("SELECT MAX(seq) FROM events WHERE thread_id = ?1", [&id], |r| r.get::<_, i64>(0)).unwrap() as u64;
    // The agent runs on until the writer's queue is full, then waits.
    let mut seen = last_seq(&mut raw);
    let mut still = 0;
    while still < 10 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = last_seq(&mut raw);
        still = if now == seen { still + 1 } else { 0 };
        seen = now;
        assert!(seen < committed + 100_000, "the turn ran {} events ahead of the log", seen - committed);
    }
    let peak = proc_kib(server.pid(), "VmHWM");
    db.execute_batch("COMMIT").unwrap();
    drop(db);

    // Idle comes just before turn/completed is committed (invariant 1).
    wait_for("the turn to end", || raw.call("thread/read", json!({"threadId": id}))["thread"]["status"] == "idle");
    let last = last_seq(&mut raw);
    assert!(last > 256 * 1024, "{last}");
    let mut tail = json!(null);
    wait_for("turn/completed in the log", || {
        tail = raw.call("thread/events", json!({"threadId": id, "from": last}))["events"][0].clone();
        !tail.is_null()
    });
    assert_eq!((tail["type"].as_str(), tail["status"].as_str()), (Some("turn/completed"), Some("completed")));
    assert!(peak < base + 120 * MIB, "a paced turn peaked at +{} KiB", peak - base);
}

/// Runs `cmd` to its end, or kills it after [`PATIENCE`] and panics.
fn finish(mut cmd: std::process::Command) -> Out {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(PATIENCE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the command did not finish");
        }
    };
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

/// A link planted in the data directory is refused by name, and what it
/// points at is left alone.
#[test]
fn links_in_the_data_directory_are_refused() {
    for name in ["app-server.lock", "logs/app-server.log", "tandem.db", "tandem.db-wal"] {
        let home = Home::new();
        std::fs::create_dir_all(home.path().join("logs")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, home.path().join(name)).unwrap();
        let mut cmd = home.tandem();
        cmd.arg("app-server");
        let out = finish(cmd);
        assert_ne!(out.code, 0, "{name}: {out:?}");
        assert!(
            out.stderr.contains("symbolic link") && out.stderr.contains(name.rsplit('/').next().unwrap()),
            "{name}: {out:?}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{name}");
        assert_eq!(mode(&victim), 0o644, "{name}");
    }
}

/// Under `umask 000` everything the server makes is still for its user only.
#[test]
fn files_are_private_whatever_the_umask() {
    use std::os::unix::process::CommandExt;
    let home = Home::new();
    std::fs::remove_dir(home.path()).unwrap();
    let mut cmd = home.tandem();
    cmd.arg("app-server").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut server = Server { child: cmd.spawn().unwrap() };
    wait_for("the server", || std::os::unix::net::UnixStream::connect(home.socket()).is_ok());
    let id = home.new_thread();
    home.run(&["share", "post", "--thread", &id, "--prompt", "private", "--server", &home.endpoint()]).ok();
    assert_eq!(mode(home.path()), 0o700);
    assert_eq!(mode(&home.path().join("logs")), 0o700);
    assert_eq!(mode(&home.socket()) & 0o777, 0o600);
    for f in ["app-server.lock", "logs/app-server.log", "tandem.db", "tandem.db-wal", "tandem.db-shm"] {
        assert_eq!(mode(&home.path().join(f)), 0o600, "{f}");
    }
    assert!(server.terminate().success());
}

/// A data directory that is not the user's own, or that every user can
/// write to, is refused with a message that says so.
#[test]
fn a_data_directory_of_another_user_or_open_to_all_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = home.tandem();
    cmd.arg("app-server");
    let out = finish(cmd);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("every user can write"), "{out:?}");
    // Nothing was created in it.
    assert!(std::fs::read_dir(home.path()).unwrap().next().is_none());

    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot make a directory of another user; that half is skipped");
        return;
    }
    let theirs = Home::new();
    let before = mode(theirs.path());
    let c_path = std::ffi::CString::new(theirs.path().as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::chown(c_path.as_ptr(), 4242, 4242) }, 0);
    let mut cmd = theirs.tandem();
    cmd.arg("app-server");
    let out = finish(cmd);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("belongs to user 4242"), "{out:?}");
    assert_eq!(mode(theirs.path()), before, "their directory was chmod-ed");
    assert!(std::fs::read_dir(theirs.path()).unwrap().next().is_none());
}

/// `app-server stop` signals only a process that is this directory's server:
/// a lock naming some other process is reported, and that process lives.
#[test]
fn stop_signals_only_a_verified_server() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let home = Home::new();
    let mut bystander = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(home.path().join("app-server.lock"))
        .unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    writeln!(lock, "{}", bystander.id()).unwrap();
    let out = home.run(&["app-server", "stop"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not stopping"), "{out:?}");
    assert!(bystander.try_wait().unwrap().is_none(), "stop signalled a process that is not a server");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    drop(lock);

    // A real server is stopped as before.
    let mut server = home.serve(&[]);
    let out = home.run(&["app-server", "stop"]).ok();
    assert!(out.stdout.contains("stopped"), "{out:?}");
    assert!(server.child.wait().unwrap().success());
}

/// Credentials in a URL never reach the shared log, the server's log, or the
/// terminal when config.toml is rejected.
#[test]
fn credentials_in_urls_and_config_stay_hidden() {
    let home = Home::new();
    let url = "http://tandemuser:SECRETPASS@127.0.0.1:1/v1?api_key=SECRETQUERY&x=1";
    let _server = home.serve_env(
        &["--agent", "openai", "--base-url", url, "--request-timeout", "5"],
        &[("OPENAI_API_KEY", "sk-not-a-real-key")],
    );
    let id = home.new_thread();
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "hi", "--server", &home.endpoint()]);
    assert_eq!(out.code, 1, "{out:?}");
    let log = home.run(&["share", "get", "--thread", &id, "--json", "--server", &home.endpoint()]).ok().stdout;
    assert!(log.contains("127.0.0.1:1"), "the error should still name the server: {log}");
    let server_log = std::fs::read_to_string(home.path().join("logs/app-server.log")).unwrap();
    for text in [&log, &out.stdout, &out.stderr, &server_log] {
        assert!(
            !text.contains("SECRETPASS") && !text.contains("SECRETQUERY") && !text.contains("tandemuser"),
            "{text}"
        );
    }

    let other = Home::new();
    std::fs::write(
        other.path().join("config.toml"),
        "agent = \"openai\"\n[openai]\ntimeout_secs = \"sk-SECRETVALUE\"\n",
    )
    .unwrap();
    let out = other.run(&["app-server", "status"]);
    let out2 = other.run(&["app-server", "start"]);
    assert_eq!(out2.code, 2, "{out2:?}");
    assert!(out2.stderr.contains("line 3"), "{out2:?}");
    for o in [&out, &out2] {
        assert!(!o.stderr.contains("SECRETVALUE") && !o.stdout.contains("SECRETVALUE"), "{o:?}");
    }
}

/// A full disk (here: a file size limit) refuses writes with a clear error,
/// holds no thread for a turn that never started, keeps serving reads, and
/// picks up once space is back — with no gap in any thread's seqs.
#[test]
fn a_full_disk_refuses_writes_and_keeps_reads() {
    use std::os::unix::process::CommandExt;
    let home = Home::new();
    let mut cmd = home.tandem();
    cmd.arg("app-server").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 4 << 20, rlim_max: libc::RLIM_INFINITY };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            Ok(())
        });
    }
    let mut server = Server { child: cmd.spawn().unwrap() };
    wait_for("the server", || std::os::unix::net::UnixStream::connect(home.socket()).is_ok());
    let ep = home.endpoint();
    let id = home.new_thread();
    home.run(&["share", "post", "--thread", &id, "--prompt", "before", "--server", &ep]).ok();

    // 3 MiB in 10 KiB words: its start, its deltas and its message pass 4 MiB.
    let word = "x".repeat(10 * 1024);
    let big = vec![word.as_str(); 300].join(" ");
    let first =
        home.run_with_stdin(&["share", "post", "--thread", &id, "--prompt", "-", "--no-wait", "--server", &ep], &big);
    assert!(first.code == 0 || first.stderr.contains("storage unavailable"), "{first:?}");

    // Writes are refused with the reason (or, if the big turn did start, it is
    // the turn named busy, and it is in the log); never a hang or a drop.
    let mut saw_refusal = first.code != 0;
    for _ in 0..20 {
        let out = home.run(&["share", "post", "--thread", &id, "--prompt", "during", "--no-wait", "--server", &ep]);
        match out.code {
            1 => {
                assert!(out.stderr.contains("storage unavailable"), "{out:?}");
                saw_refusal = true;
                break;
            }
            3 => {
                let log = home.run(&["share", "get", "--thread", &id, "--json", "--server", &ep]).ok().stdout;
                let busy_turn = out.stderr.split_whitespace().find(|w| w.len() >= 8 && log.contains(*w));
                assert!(busy_turn.is_some(), "busy names a turn that is not in the log: {out:?}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            0 => panic!("a write went through past the size limit: {out:?}"),
            _ => panic!("{out:?}"),
        }
    }
    assert!(saw_refusal, "no write was refused");
    // Reads go on.
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    assert!(server.child.try_wait().unwrap().is_none(), "the server stopped");

    // Space is back: writes resume, numbered on from the last committed event.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    assert_eq!(unsafe { libc::prlimit(server.pid(), libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) }, 0);
    wait_for("writes to be taken again", || {
        home.run(&["share", "post", "--thread", &id, "--prompt", "after", "--wait-idle", "--server", &ep]).code == 0
    });
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    let last = events.last().unwrap();
    assert_eq!((last["type"].as_str(), last["status"].as_str()), (Some("turn/completed"), Some("completed")));
    assert!(events.iter().any(|e| e["type"] == "turn/started" && e["input"] == "after"));
    assert!(server.terminate().success());
}

/// A clean stop leaves no WAL beside the database.
#[test]
fn a_clean_stop_empties_the_wal() {
    let home = Home::new();
    let mut server = home.serve(&[]);
    let id = home.new_thread();
    let prompt = words(20_000);
    home.run_with_stdin(&["share", "post", "--thread", &id, "--prompt", "-", "--server", &home.endpoint()], &prompt);
    // Keep a reader open to the end, as a follower would be.
    let _tail = Tail::start(&home, &["--thread", &id, "--from", "1"]);
    assert!(server.terminate().success());
    let wal = home.path().join("tandem.db-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size, 0, "{} bytes of WAL left after a clean stop", size);
    // And everything is in the database.
    let _server = home.serve(&[]);
    assert_eq!(home.events(&id).last().unwrap()["type"], "turn/completed");
}
