//! Transports and server management: stdio, proxy, autostart, start/stop/
//! status, one server per data dir, stale sockets, long paths, permissions.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::Value;

#[test]
fn stdio_transport_serves_a_spawning_client() {
    let home = Home::new();
    let ep = format!("stdio:{BIN} app-server --listen stdio");
    let id = home.run(&["share", "new", "--title", "via stdio", "--server", &ep]).ok().stdout.trim().to_owned();
    // Each command spawns its own server over stdio; the log is shared through the data dir.
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "over pipes", "--server", &ep]).ok();
    assert!(out.stdout.contains("over pipes"), "{out:?}");
    let out = home.run(&["share", "get", "--thread", &id, "--json", "--server", &ep]).ok();
    let events = out.json_lines();
    assert_contiguous(&events, 1);
    assert_eq!(events.last().unwrap()["status"], "completed");
    assert!(!home.socket().exists(), "a stdio-only server must not listen on the socket");
}

#[test]
fn a_stdio_server_still_holds_the_lock() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let ep = format!("stdio:{BIN} app-server --listen stdio");
    let out = home.run(&["share", "list", "--server", &ep]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("already running"), "{out:?}");
}

#[test]
fn proxy_bridges_stdio_to_the_socket() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let ep = format!("stdio:{BIN} app-server proxy");
    let out =
        home.run(&["share", "post", "--thread", &id, "--prompt", "through the proxy", "--json", "--server", &ep]).ok();
    let events = out.json_lines();
    assert_eq!(events.last().unwrap()["type"], "turn/completed");
    assert_eq!(home.events(&id)[1..], events[..]);
    let sock = format!("unix:{}", home.socket().display());
    let ep = format!("stdio:{BIN} app-server proxy --server {sock}");
    let out = home.run(&["share", "list", "--json", "--server", &ep]).ok();
    assert_eq!(out.json_lines()[0]["id"], id.as_str());
}

#[test]
fn a_second_server_on_the_same_home_names_the_first() {
    let home = Home::new();
    let server = home.serve(&[]);
    let out = home.run(&["app-server"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already running") && out.stderr.contains(&format!("pid {}", server.pid())), "{out:?}");
    // The first one is untouched.
    home.new_thread();
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_never_stolen() {
    let home = Home::new();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A socket file nobody listens on, as kill -9 leaves behind.
    drop(std::os::unix::net::UnixListener::bind(home.socket()).unwrap());
    assert!(home.socket().exists());
    let _server = home.serve(&[]);
    home.new_thread();
    let mode = std::fs::metadata(home.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let mode = std::fs::metadata(home.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "data dir mode {mode:o}");

    // Another data dir pointed at the live socket: refused, socket intact.
    let other = Home::new();
    let sock = home.socket().display().to_string();
    let out = other.run(&["app-server", "--listen", &format!("unix:{sock}")]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already listening"), "{out:?}");
    home.new_thread();
}

#[test]
fn autostart_status_stop_start_restart() {
    let home = Home::new();
    let _stop = StopOnDrop(&home);
    let out = home.run(&["app-server", "status"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stdout.contains("not running"), "{out:?}");

    // No --server: the default server is started in the background.
    let id = home.run(&["share", "new", "--title", "auto"]).ok().stdout.trim().to_owned();
    let status: Value = serde_json::from_str(home.run(&["app-server", "status", "--json"]).ok().stdout.trim()).unwrap();
    assert_eq!(status["running"], true);
    assert_eq!(status["agent"]["kind"], "echo");
    assert_eq!(status["protocolVersion"], 2);
    assert_eq!(status["socket"], home.socket().display().to_string());
    let pid = status["pid"].as_u64().unwrap();
    let log = std::fs::read_to_string(home.path().join("logs/app-server.log")).unwrap();
    assert!(log.contains("listening") && log.contains("thread started"), "{log}");

    let out = home.run(&["app-server", "start"]).ok();
    assert!(out.stdout.contains("already running") && out.stdout.contains(&pid.to_string()), "{out:?}");

    let out = home.run(&["app-server", "restart", "--echo-delay-ms", "1"]).ok();
    assert!(out.stdout.contains("stopped") && out.stdout.contains("started"), "{out:?}");
    let status: Value = serde_json::from_str(home.run(&["app-server", "status", "--json"]).ok().stdout.trim()).unwrap();
    assert_ne!(status["pid"].as_u64().unwrap(), pid);
    // The thread survived the restart.
    let out = home.run(&["share", "post", "--thread", &id, "--prompt", "after restart"]).ok();
    assert!(out.stdout.contains("after restart"));

    home.run(&["app-server", "stop"]).ok();
    let out = home.run(&["app-server", "status", "--json"]);
    assert_eq!(out.code, 5);
    let status: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["running"], false);
    let out = home.run(&["app-server", "stop"]).ok();
    assert!(out.stdout.contains("not running"), "{out:?}");
}

#[test]
fn race_of_autostarts_from_scratch() {
    let home = Home::new();
    let _stop = StopOnDrop(&home);
    let procs: Vec<_> = (0..8)
        .map(|i| {
            home.tandem()
                .args(["share", "new", "--title", &format!("r{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(home.run(&["share", "list", "--json"]).ok().json_lines().len(), 8);
}

#[test]
fn a_long_data_dir_gets_a_short_socket() {
    let base = Home::new();
    let runtime = Home::new();
    let long = base.path().join("a".repeat(60)).join("b".repeat(60));
    let run = |args: &[&str]| {
        let out =
            base.tandem().env("TANDEM_HOME", &long).env("XDG_RUNTIME_DIR", runtime.path()).args(args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, id, err) = run(&["share", "new"]);
    assert_eq!(code, 0, "{err}");
    let (code, status, _) = run(&["app-server", "status", "--json"]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    let sock = status["socket"].as_str().unwrap().to_owned();
    assert!(sock.starts_with(runtime.path().to_str().unwrap()), "{sock}");
    assert!(sock.len() < 108);
    let (code, out, _) = run(&["share", "get", "--thread", id.trim(), "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    let (code, _, _) = run(&["app-server", "stop"]);
    assert_eq!(code, 0);
}

#[test]
fn a_server_of_another_protocol_version_is_named_with_the_fix() {
    use std::io::{BufRead, BufReader, Write};
    let home = Home::new();
    let sock = home.path().join("old.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // A pretend server from another release: it answers initialize only.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            if BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let req: Value = serde_json::from_str(&line).unwrap();
            let resp = serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": {
                "serverInfo": {"name": "tandem-app-server", "version": "9.0.0"}, "protocolVersion": 99}});
            let _ = writeln!(stream, "{resp}");
        }
    });
    let out = home.run(&["share", "list", "--server", &format!("unix:{}", sock.display())]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("protocol version 99") && out.stderr.contains("tandem app-server restart"), "{out:?}");
}

#[test]
fn a_client_through_the_proxy_sees_the_server_go_away() {
    let home = Home::new();
    let mut server = home.serve(&[]);
    let id = home.new_thread();
    let ep = format!("stdio:{BIN} app-server proxy --server {}", home.endpoint());
    let mut tail = home
        .tandem()
        .args(["share", "tail", "--thread", &id, "--from", "1", "--no-reconnect", "--server", &ep])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(tail.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("thread started"), "{line}");
    server.terminate();
    wait_for("tail to notice", || tail.try_wait().unwrap().is_some());
    assert_eq!(tail.wait().unwrap().code(), Some(5));
}
