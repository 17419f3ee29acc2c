//! The TUI end to end in a real terminal (tmux): two TUIs and a script on one
//! thread, sharing a LOCAL session and stopping, and the terminal restored on
//! quit and on SIGTERM.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// A private tmux server for one test, killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn new(home: &Home) -> Tmux {
        Tmux { socket: home.path().join("tmux.sock") }
    }

    fn cmd(&self, args: &[&str]) -> String {
        // A detached tmux needs no terminal, but some builds still want a TERM.
        let out = Command::new("tmux")
            .env("TERM", "xterm-256color")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `script` (a shell command line) in a new 100x40 window `name`.
    fn start(&self, name: &str, script: &str) {
        self.cmd(&["new-session", "-d", "-s", name, "-x", "100", "-y", "40", script]);
    }

    fn screen(&self, name: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", name])
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend(keys);
        self.cmd(&args);
    }

    /// Types `text` literally.
    fn type_text(&self, name: &str, text: &str) {
        self.cmd(&["send-keys", "-t", name, "-l", text]);
    }

    fn wait_screen(&self, name: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let last = self.screen(name);
            if cond(&last) {
                return last;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what} on {name}:\n{last}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
    }
}

fn tui_line(home: &Home, args: &str) -> String {
    tui_line_env(home, "", args)
}

/// [`tui_line`] with extra `VAR=value` words for the TUI's environment.
fn tui_line_env(home: &Home, env: &str, args: &str) -> String {
    format!(
        "env TANDEM_HOME={} TERM=xterm-256color {env} {BIN} {args} --server unix:{}; echo EXITED $?; stty -a | grep -o -- '-\\?icanon'; sleep 600",
        home.path().display(),
        home.socket().display()
    )
}

/// Opens `/share` and picks action `digit`.
fn share_action(tmux: &Tmux, name: &str, digit: &str) {
    tmux.type_text(name, "/share");
    tmux.keys(name, &["Enter"]);
    tmux.wait_screen(name, "the share menu", |s| s.contains("Help / About sharing"));
    tmux.keys(name, &[digit]);
}

/// Where `needle` first appears in `screen`, panicking if it does not.
fn at(screen: &str, needle: &str) -> usize {
    screen.find(needle).unwrap_or_else(|| panic!("{needle:?} not on screen:\n{screen}"))
}

#[test]
fn two_tuis_and_a_script_see_the_same_turns_in_the_same_order() {
    let home = Home::new();
    let _server = home.serve(&[]);
    let id = home.new_thread();
    let tmux = Tmux::new(&home);
    tmux.start("a", &tui_line(&home, &format!("--thread {id}")));
    tmux.start("b", &tui_line(&home, &format!("--thread {id}")));
    for w in ["a", "b"] {
        tmux.wait_screen(w, "SHARED", |s| s.contains(&format!("SHARED {}", &id[..8])));
    }

    tmux.type_text("a", "alpha from tui a");
    tmux.keys("a", &["Enter"]);
    for w in ["a", "b"] {
        tmux.wait_screen(w, "the first answer", |s| {
            s.matches("alpha from tui a").count() >= 2 && s.contains("completed")
        });
    }
    tmux.type_text("b", "bravo from tui b");
    tmux.keys("b", &["Enter"]);
    for w in ["a", "b"] {
        tmux.wait_screen(w, "the second answer", |s| s.matches("bravo from tui b").count() >= 2);
    }
    let s = home.socket().display().to_string();
    home.run(&["share", "post", "--thread", &id, "--prompt", "charlie from a script", "--server", &s]).ok();

    for w in ["a", "b"] {
        let screen = tmux.wait_screen(w, "all three turns", |s| {
            s.matches("charlie from a script").count() >= 2 && s.matches("completed").count() >= 3
        });
        let (p1, p2, p3) =
            (at(&screen, "alpha from tui a"), at(&screen, "bravo from tui b"), at(&screen, "charlie from a script"));
        assert!(p1 < p2 && p2 < p3, "out of order on {w}:\n{screen}");
        assert!(screen.contains("tandem-share: charlie from a script"), "{screen}");
    }
    // Each TUI calls its own prompt "you" and the other's by name.
    let a = tmux.screen("a");
    let b = tmux.screen("b");
    assert!(a.contains("you: alpha from tui a") && a.contains("): bravo from tui b"), "{a}");
    assert!(b.contains("you: bravo from tui b") && b.contains("): alpha from tui a"), "{b}");

    // /quit restores the terminal.
    tmux.type_text("b", "/quit");
    tmux.keys("b", &["Enter"]);
    let screen = tmux.wait_screen("b", "exit", |s| s.contains("EXITED") && s.contains("icanon"));
    assert!(screen.contains("EXITED 0") && screen.contains("icanon") && !screen.contains("-icanon"), "{screen}");
}

#[test]
fn share_a_local_session_then_stop_and_resume() {
    let home = Home::new();
    let server = home.serve(&["--echo-delay-ms", "1"]);
    let s = home.socket().display().to_string();
    let tmux = Tmux::new(&home);
    tmux.start("t", &tui_line(&home, ""));
    tmux.wait_screen("t", "LOCAL", |s| s.contains("LOCAL"));
    tmux.type_text("t", "private words");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the local answer", |s| s.contains("completed"));
    assert_eq!(
        home.run(&["share", "list", "--json", "--server", &s]).ok().stdout,
        "",
        "LOCAL must not touch the server"
    );

    tmux.type_text("t", "/share");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the share menu", |s| s.contains("Start sharing this session"));
    tmux.keys("t", &["1"]);
    let screen = tmux.wait_screen("t", "sharing", |s| s.contains("Sharing thread "));
    let start = at(&screen, "Sharing thread ") + "Sharing thread ".len();
    let id: String = screen[start..start + 36].to_owned();
    assert!(screen.contains(&format!("tandem share post --thread {id} --prompt")), "{screen}");
    tmux.keys("t", &["Escape"]);

    // The script sees the imported turn and posts; the TUI shows it live.
    let events = home.events(&id);
    assert_eq!(events[1]["input"], "private words");
    assert_eq!(events[1]["imported"], true);
    home.run(&["share", "post", "--thread", &id, "--prompt", "hello from outside", "--server", &s]).ok();
    tmux.wait_screen("t", "the script's turn", |s| s.contains("tandem-share: hello from outside"));

    // Stop sharing: back to LOCAL with the history; a local turn stays local.
    tmux.type_text("t", "/share");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the share menu", |s| s.contains("Stop sharing"));
    tmux.keys("t", &["3"]);
    tmux.wait_screen("t", "LOCAL again", |s| s.contains("Tandem  LOCAL") && s.contains("hello from outside"));
    tmux.type_text("t", "offline thought");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the offline answer", |s| s.matches("offline thought").count() >= 2);
    let before = home.events(&id).len();
    assert!(!home.events(&id).iter().any(|e| e["input"] == "offline thought"));

    // Share again: the same thread, with what was done meanwhile appended once.
    tmux.type_text("t", "/share");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the share menu", |s| s.contains("Start sharing"));
    tmux.keys("t", &["1"]);
    tmux.wait_screen("t", "sharing again", |s| s.contains(&format!("SHARED {}", &id[..8])));
    let events = home.events(&id);
    assert_contiguous(&events, 1);
    let inputs: Vec<&str> =
        events.iter().filter(|e| e["type"] == "turn/started").map(|e| e["input"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["private words", "hello from outside", "offline thought"]);
    assert!(events.len() > before);
    let lists = home.run(&["share", "list", "--json", "--server", &s]).ok();
    assert_eq!(lists.json_lines().len(), 1, "resuming must not make a second thread");

    // SIGTERM restores the terminal too.
    let pid = Command::new("pgrep").args(["-f", &format!("{BIN} --server unix:{s}")]).output().unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).lines().next().unwrap_or_default().trim().to_owned();
    assert!(!pid.is_empty(), "TUI process not found");
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let screen = tmux.wait_screen("t", "exit", |s| s.contains("EXITED") && s.contains("icanon"));
    assert!(screen.contains("EXITED 0") && !screen.contains("-icanon"), "{screen}");
    drop(server);
}

#[test]
fn the_tui_survives_a_server_restart_without_gaps_or_repeats() {
    let home = Home::new();
    let mut server = home.serve(&[]);
    let s = home.socket().display().to_string();
    let id = home.new_thread();
    home.run(&["share", "post", "--thread", &id, "--prompt", "before the crash", "--server", &s]).ok();
    let tmux = Tmux::new(&home);
    tmux.start("t", &tui_line(&home, &format!("--thread {id}")));
    tmux.wait_screen("t", "the first turn", |s| s.matches("before the crash").count() >= 2);
    tmux.type_text("t", "typed while it is down");

    server.kill9();
    let screen = tmux.wait_screen("t", "the outage notice", |s| s.contains("connection lost"));
    assert!(screen.contains(&format!("unix:{s}")), "the notice names the endpoint:\n{screen}");
    // Sending now is refused and the text stays.
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the refusal", |s| s.contains("not connected") && s.contains("typed while it is down"));

    let _server = home.serve(&[]);
    tmux.wait_screen("t", "the reconnection", |s| s.contains("reconnected"));
    home.run(&["share", "post", "--thread", &id, "--prompt", "after the restart", "--server", &s]).ok();
    let screen = tmux.wait_screen("t", "the new turn", |s| s.matches("after the restart").count() >= 2);
    assert_eq!(screen.matches("› tandem-share: before the crash").count(), 1, "a turn was repeated:\n{screen}");
    assert!(screen.contains("typed while it is down"), "{screen}");
    // And what was typed can be sent now.
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the kept prompt's answer", |s| {
        s.matches("typed while it is down").count() >= 2 && s.contains("you: typed")
    });
    let events = home.events(&id);
    assert_contiguous(&events, 1);
}

#[test]
fn a_running_turn_is_never_lost_by_starting_or_stopping_to_share() {
    let home = Home::new();
    let _server = home.serve(&["--echo-delay-ms", "400"]);
    let s = home.socket().display().to_string();
    let tmux = Tmux::new(&home);
    // The LOCAL engine's echo is slow too, so its turn is still running when
    // sharing is asked for.
    tmux.start("t", &tui_line_env(&home, "TANDEM_ECHO_DELAY_MS=150", ""));
    tmux.wait_screen("t", "LOCAL", |s| s.contains("LOCAL"));
    let local_prompt = format!("local {}", words(60));
    tmux.type_text("t", &local_prompt);
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the local turn running", |s| s.contains("running · echo"));
    share_action(&tmux, "t", "1");
    tmux.wait_screen("t", "the wait being announced", |s| s.contains("sharing starts when turn"));
    let screen = tmux.wait_screen("t", "sharing", |s| s.contains("Sharing thread "));
    let start = at(&screen, "Sharing thread ") + "Sharing thread ".len();
    let id: String = screen[start..start + 36].to_owned();
    tmux.keys("t", &["Escape"]);
    // The turn is on the shared thread whole: prompt, full answer, true end.
    let events = home.events(&id);
    assert_eq!(events[1]["input"], local_prompt.as_str());
    assert_eq!(events[1]["agent"]["kind"], "echo");
    assert_eq!(events[2]["item"]["text"], local_prompt.as_str());
    assert_eq!(events[3]["type"], "turn/completed");
    assert_eq!(events[3]["status"], "completed");

    // Someone else's long turn is running when this TUI stops sharing: the
    // local copy keeps it, with the answer so far, and says how it was cut.
    let long = format!("remote {}", words(60));
    home.run(&["share", "post", "--thread", &id, "--prompt", &long, "--no-wait", "--server", &s]).ok();
    tmux.wait_screen("t", "the remote turn streaming", |s| s.contains("running · echo") && s.contains("remote w0"));
    share_action(&tmux, "t", "3");
    let screen = tmux.wait_screen("t", "LOCAL with the cut turn", |s| {
        s.contains("Tandem  LOCAL") && s.contains("still running on the shared thread")
    });
    assert!(screen.contains("tandem-share (imported): remote w0"), "{screen}");
    assert!(screen.contains("interrupted"), "{screen}");

    // Sharing again appends only what was done meanwhile; the remote turn is
    // there once, whole, as the server ran it.
    tmux.type_text("t", "offline thought");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the offline answer", |s| s.matches("offline thought").count() >= 2);
    home.run(&["share", "interrupt", "--thread", &id, "--server", &s]).ok();
    wait_for("the remote turn to end", || {
        home.events(&id).iter().filter(|e| e["type"] == "turn/completed").count() == 2
    });
    share_action(&tmux, "t", "1");
    tmux.wait_screen("t", "shared again", |s| s.contains("Sharing thread "));
    let events = home.events(&id);
    let inputs: Vec<&str> =
        events.iter().filter(|e| e["type"] == "turn/started").map(|e| e["input"].as_str().unwrap()).collect();
    assert_eq!(inputs, [local_prompt.as_str(), long.as_str(), "offline thought"]);
}

#[test]
fn the_tui_shows_ids_that_are_unique_and_takes_any_unique_prefix() {
    let home = Home::new();
    let _server = home.serve(&[]);
    // Two threads whose ids start alike, as UUID v7s made in one minute do.
    let a = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f";
    let b = "0192f0c2-7b4e-7c1a-af00-000000000001";
    let mut raw = home.raw();
    for (id, title) in [(a, "first"), (b, "second")] {
        raw.call("thread/start", serde_json::json!({"threadId": id, "title": title}));
    }
    let tmux = Tmux::new(&home);

    // An ambiguous --thread: exit 2, naming both.
    tmux.start("x", &tui_line(&home, "--thread 0192f0c2"));
    let screen = tmux.wait_screen("x", "the refusal", |s| s.contains("EXITED"));
    assert!(screen.contains("EXITED 2") && screen.contains("is the start of 2 thread ids"), "{screen}");
    assert!(screen.contains(a) && screen.contains(b), "{screen}");

    // A unique prefix (hyphens optional) opens the thread; the header shows
    // as much of the id as tells it apart.
    tmux.start("t", &tui_line(&home, "--thread 0192f0c27b4e7c1a9"));
    tmux.wait_screen("t", "the first thread", |s| s.contains("SHARED 0192f0c2-7b4e-7c1a-9 ") && s.contains("first"));

    // The join popup: an ambiguous start lists the candidates and changes nothing.
    share_action(&tmux, "t", "2");
    tmux.wait_screen("t", "the thread list", |s| s.contains("second") && s.contains("0192f0c2-7b4e-7c1a-a "));
    tmux.type_text("t", "0192f0c2");
    tmux.keys("t", &["Enter"]);
    let screen = tmux.wait_screen("t", "the candidates", |s| s.contains("is the start of 2 thread ids"));
    assert!(screen.contains("SHARED 0192f0c2-7b4e-7c1a-9 "), "nothing changed:\n{screen}");
    // Ctrl-U clears what was typed; a unique start joins.
    tmux.keys("t", &["C-u"]);
    tmux.type_text("t", "0192f0c2-7b4e-7c1a-a");
    tmux.keys("t", &["Enter"]);
    let screen = tmux.wait_screen("t", "the second thread", |s| s.contains("SHARED 0192f0c2-7b4e-7c1a-a "));
    assert!(!screen.contains("is the start of"), "the failed join's error is gone:\n{screen}");
}

#[test]
fn a_tui_that_started_the_server_says_on_quit_that_it_keeps_running() {
    let home = Home::new();
    let _stop = StopOnDrop(&home);
    let tmux = Tmux::new(&home);
    let line =
        format!("env TANDEM_HOME={} TERM=xterm-256color {BIN}; echo EXITED $?; sleep 600", home.path().display());
    tmux.start("t", &line);
    tmux.wait_screen("t", "LOCAL", |s| s.contains("LOCAL"));
    share_action(&tmux, "t", "1");
    tmux.wait_screen("t", "sharing", |s| s.contains("Sharing thread "));
    tmux.keys("t", &["Escape"]);
    tmux.type_text("t", "/quit");
    tmux.keys("t", &["Enter"]);
    let screen = tmux.wait_screen("t", "exit", |s| s.contains("EXITED"));
    assert!(screen.contains("EXITED 0"), "{screen}");
    assert!(screen.contains("the app-server this session started is still running"), "{screen}");
    assert!(screen.contains("tandem app-server stop"), "{screen}");
    // And it is.
    let status = home.run(&["app-server", "status"]);
    assert!(status.code == 0 && status.stdout.contains("app-server running"), "{status:?}");
}

#[test]
fn sharing_turns_the_flag_on_and_shows_a_web_link_stopping_turns_it_off() {
    let home = Home::new();
    let web = common::web::WebServer::start(&home, &[]);
    let tmux = Tmux::new(&home);
    tmux.start("t", &tui_line(&home, ""));
    tmux.wait_screen("t", "LOCAL", |s| s.contains("LOCAL"));
    tmux.type_text("t", "private words");
    tmux.keys("t", &["Enter"]);
    tmux.wait_screen("t", "the local answer", |s| s.contains("completed"));

    // Start sharing: the thread is shared and the box shows a read link.
    share_action(&tmux, "t", "1");
    let link_start = format!("{}/t/", web.url);
    let screen = tmux.wait_screen("t", "the web link", |s| s.contains("Sharing thread ") && s.contains(&link_start));
    let start = at(&screen, "Sharing thread ") + "Sharing thread ".len();
    let id: String = screen[start..start + 36].to_owned();
    assert!(screen.contains(&format!("{link_start}{id}#k=")), "{screen}");
    assert!(screen.contains("read-only link"), "{screen}");
    let mut raw = home.raw();
    let shared =
        |raw: &mut Raw| raw.call("thread/read", serde_json::json!({"threadId": id}))["thread"]["shared"].clone();
    assert_eq!(shared(&mut raw), true);
    let links = raw.call("link/list", serde_json::json!({"threadId": id}));
    let links = links["data"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["scope"], "read");
    tmux.keys("t", &["Escape"]);

    // Stop sharing: the flag goes off (link viewers lose access), and it says so.
    share_action(&tmux, "t", "3");
    tmux.wait_screen("t", "LOCAL again", |s| s.contains("Tandem  LOCAL") && s.contains("link viewers lost access"));
    assert_eq!(shared(&mut raw), false);
    let got = home.run(&["share", "get", "--thread", &id, "--json", "--server", &home.endpoint()]).ok();
    assert!(got.stdout.contains("private words"), "the thread keeps its turns: {got:?}");

    // Sharing again resumes the thread with the flag on.
    share_action(&tmux, "t", "1");
    tmux.wait_screen("t", "shared again", |s| s.contains(&format!("SHARED {}", &id[..8])) && s.contains(&link_start));
    assert_eq!(shared(&mut raw), true);
}
