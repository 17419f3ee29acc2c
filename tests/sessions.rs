//! Sharing a Claude Code or Codex session (DESIGN §8): the app-server follows
//! exactly the session files listed in `$TANDEM_HOME/shared-sessions.json`
//! into mirrored threads. Session files are grown line by line from the
//! recorded fixtures; agents' directories live in the test's temp dir.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/sessions");
const CLAUDE_ID: &str = "c82a5d42-829f-4ee0-99c7-a5a4cd0fd679";
const CLAUDE_OTHER: &str = "6a4ba966-9327-422b-96ef-0af468d52559";
const CODEX_ID: &str = "01a208ed-6c51-7b12-90ed-4822e021b6a5";
const CODEX_FILE: &str = "rollout-2026-11-23T15-01-47-01a208ed-6c51-7b12-90ed-4822e021b6a5.jsonl";

/// A test's world: a Tandem home plus Claude Code's and Codex's directories.
struct World {
    home: Home,
    agents: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World { home: Home::new(), agents: tempfile::tempdir_in("/tmp").unwrap() }
    }
    fn claude_dir(&self) -> PathBuf {
        self.agents.path().join("claude")
    }
    fn codex_dir(&self) -> PathBuf {
        self.agents.path().join("codex")
    }
    /// The project directory Claude Code uses for `cwd`.
    fn claude_project(&self, cwd: &Path) -> PathBuf {
        let name: String =
            cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let dir = self.claude_dir().join("projects").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
    fn claude_file(&self, id: &str) -> PathBuf {
        self.claude_project(Path::new("/work/proj")).join(format!("{id}.jsonl"))
    }
    fn codex_file(&self) -> PathBuf {
        let dir = self.codex_dir().join("sessions/2026/11/23");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(CODEX_FILE)
    }
    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("CLAUDE_CONFIG_DIR", self.claude_dir().display().to_string()),
            ("CODEX_HOME", self.codex_dir().display().to_string()),
        ]
    }
    fn serve(&self) -> Server {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.home.serve_env(&[], &env)
    }
    /// Lists sessions in the allowlist, as `tandem share session` does.
    fn allow(&self, sessions: &[(&str, &Path)]) {
        let mut map = serde_json::Map::new();
        for (id, file) in sessions {
            map.insert(
                (*id).to_owned(),
                json!({"filePath": file, "servers": ["local"], "sharedAt": "2026-11-23T15:00:00Z"}),
            );
        }
        let path = self.home.path().join("shared-sessions.json");
        let tmp = self.home.path().join("shared-sessions.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&json!({"version": 1, "sessions": map})).unwrap()).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }
    fn thread_of(&self, session: &str) -> Option<String> {
        let out = self.home.run(&["share", "list", "--json", "--server", &self.home.endpoint()]).ok();
        let title = format!("session {}", &session[..8]);
        out.json_lines()
            .into_iter()
            .find(|t| t["title"].as_str().is_some_and(|s| s.contains(&title)))
            .map(|t| t["id"].as_str().unwrap().to_owned())
    }
    fn wait_thread(&self, session: &str) -> String {
        let mut id = None;
        wait_for("the mirrored thread", || {
            id = self.thread_of(session);
            id.is_some()
        });
        id.unwrap()
    }
}

fn fixture_lines(rel: &str) -> Vec<String> {
    std::fs::read_to_string(format!("{FIXTURES}/{rel}")).unwrap().split_inclusive('\n').map(str::to_owned).collect()
}

/// Appends `line` in two writes, a moment apart, so the follower may see
/// the first half without its newline.
fn append_in_halves(file: &Path, line: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(file).unwrap();
    let mid = line.len() / 2;
    let mid = (mid..line.len()).find(|i| line.is_char_boundary(*i)).unwrap();
    f.write_all(&line.as_bytes()[..mid]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    f.write_all(&line.as_bytes()[mid..]).unwrap();
}

/// One readable line per event of a mirrored thread (after `thread/started`).
fn outline(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .skip(1)
        .map(|e| match e["type"].as_str().unwrap() {
            "turn/started" => format!("turn {}", e["input"].as_str().unwrap()),
            "turn/completed" => format!("end {}", e["status"].as_str().unwrap()),
            "item/started" => format!("start {}", e["item"]["type"].as_str().unwrap()),
            "item/completed" => match e["item"]["type"].as_str().unwrap() {
                "agentMessage" => format!("text {}", e["item"]["text"].as_str().unwrap()),
                t => format!("item {t}"),
            },
            t => t.to_owned(),
        })
        .collect()
}

const CLAUDE_OUTLINE: &[&str] = &[
    "turn say hello",
    "text Hello from the mock.",
    "end completed",
    "turn please run cmd",
    "start commandExecution",
    "item commandExecution",
    "text Ran it.",
    "end completed",
    "turn edit the notes file",
    "start fileChange",
    "item fileChange",
    "text Ran it.",
    "end completed",
    "turn /compact",
    "item status",
    "text Compacted",
    "end completed",
    "turn after compaction hello",
    "text Hello from the mock.",
    "end completed",
];

const CODEX_OUTLINE: &[&str] = &[
    "turn say hello",
    "text Hello from the mock.",
    "end completed",
    "turn please run cmd",
    "item commandExecution",
    "text Ran it.",
    "end completed",
    "turn edit the notes file",
    "item fileChange",
    "text Ran it.",
    "end completed",
    "turn bigctx talk",
    "text Hello from the mock.",
    "end completed",
    "turn after compaction hello",
    "item status",
    "text Hello from the mock.",
    "end completed",
];

/// Waits until the thread's outline is `want` (it only ever grows, so a
/// wrong event — a duplicate, a gap — shows as a mismatch that never heals).
fn wait_outline(home: &Home, thread: &str, want: &[&str]) -> Vec<Value> {
    let mut events = Vec::new();
    wait_for(&format!("the thread to show {} events", want.len()), || {
        events = home.events(thread);
        outline(&events).len() >= want.len()
    });
    assert_contiguous(&events, 1);
    assert_eq!(outline(&events), want, "{events:#?}");
    events
}

/// Opens of a file, seen through inotify: a sound way to prove that no
/// process opened it (the test itself does not, after arming the watch).
struct OpenWatch {
    fd: i32,
}

impl OpenWatch {
    fn arm(path: &Path) -> OpenWatch {
        OpenWatch::arm_for(path, libc::IN_OPEN | libc::IN_ACCESS)
    }
    fn arm_for(path: &Path, mask: u32) -> OpenWatch {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain syscalls on a descriptor we own and a valid C string.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            assert!(fd >= 0);
            assert!(libc::inotify_add_watch(fd, c.as_ptr(), mask) >= 0);
            OpenWatch { fd }
        }
    }
    /// How many opens/reads happened since `arm`.
    fn count(&self) -> usize {
        let mut buf = [0u8; 4096];
        let mut n = 0;
        loop {
            // SAFETY: reading into a buffer we own.
            let r = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                return n;
            }
            let mut at = 0;
            while at < r as usize {
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                n += 1;
                at += 16 + len;
            }
        }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor we own.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn a_listed_claude_session_is_followed_line_by_line_and_an_unlisted_one_never_opened() {
    let w = World::new();
    let file = w.claude_file(CLAUDE_ID);
    let other = w.claude_file(CLAUDE_OTHER);
    std::fs::copy(format!("{FIXTURES}/claude/{CLAUDE_OTHER}.jsonl"), &other).unwrap();
    let other_opens = OpenWatch::arm(&other);
    std::fs::write(&file, "").unwrap();
    let listed_opens = OpenWatch::arm(&file);
    let _server = w.serve();
    w.allow(&[(CLAUDE_ID, &file)]);
    let thread = w.wait_thread(CLAUDE_ID);
    for line in fixture_lines(&format!("claude/{CLAUDE_ID}.jsonl")) {
        append_in_halves(&file, &line);
    }
    let events = wait_outline(&w.home, &thread, CLAUDE_OUTLINE);
    assert_eq!(events[0]["title"], format!("Claude Code session {}", &CLAUDE_ID[..8]), "{:?}", events[0]);
    assert_eq!(events[1]["client"]["name"], "claude-code");
    assert_eq!(events[1]["imported"], true);
    assert!(events[1]["originalTs"].as_str().unwrap().starts_with("2026-11-23T15:02:01"));
    // The control: the watch does see the follower open the listed file...
    assert!(listed_opens.count() > 0);
    // ...and nothing ever opened the unlisted one in the same directory.
    assert_eq!(other_opens.count(), 0);
    assert!(w.thread_of(CLAUDE_OTHER).is_none());

    // Posting into a mirror is refused: it is the agent's conversation.
    let out = w.home.run(&["share", "post", "--thread", &thread, "--prompt", "hi", "--server", &w.home.endpoint()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("post in Claude Code"), "{out:?}");
    let mut raw = w.home.raw();
    let r = raw.request("turn/start", json!({"threadId": thread, "input": "hi"}));
    assert_eq!(r["error"]["code"], -32005, "{r}");
    assert_eq!(r["error"]["data"]["reason"], "mirrored", "{r}");
}

#[test]
fn a_codex_session_is_followed_and_resumes_without_duplicates_after_restarts() {
    let w = World::new();
    let file = w.codex_file();
    let lines = fixture_lines(&format!("codex/{CODEX_FILE}"));
    let (first, rest) = lines.split_at(30);
    for l in first {
        append_in_halves(&file, l);
    }
    let mut server = w.serve();
    w.allow(&[(CODEX_ID, &file)]);
    let thread = w.wait_thread(CODEX_ID);
    wait_outline(&w.home, &thread, &CODEX_OUTLINE[..7]);

    // A clean stop mid-file, more lines meanwhile, then a start: it goes on.
    server.terminate();
    let (second, third) = rest.split_at(20);
    for l in second {
        append_in_halves(&file, l);
    }
    let mut server = w.serve();
    wait_outline(&w.home, &thread, &CODEX_OUTLINE[..13]);

    // A crash (kill -9) mid-file: no event lost, none repeated.
    server.kill9();
    for l in third {
        append_in_halves(&file, l);
    }
    let _server = w.serve();
    let events = wait_outline(&w.home, &thread, CODEX_OUTLINE);
    assert_eq!(events[0]["title"], format!("Codex session {} in proj", &CODEX_ID[..8]));
    assert_eq!(events[1]["agent"]["kind"], "codex");
}

#[test]
fn removing_the_entry_stops_following_and_resharing_resumes_the_same_thread() {
    let w = World::new();
    let file = w.claude_file(CLAUDE_ID);
    let lines = fixture_lines(&format!("claude/{CLAUDE_ID}.jsonl"));
    let (first, rest) = lines.split_at(8);
    for l in first {
        append_in_halves(&file, l);
    }
    // A second, codex session stays shared throughout: its progress shows
    // the follower has looked at the files again.
    let codex = w.codex_file();
    let codex_lines = fixture_lines(&format!("codex/{CODEX_FILE}"));
    std::fs::write(&codex, codex_lines[..14].concat()).unwrap();
    let _server = w.serve();
    w.allow(&[(CLAUDE_ID, &file), (CODEX_ID, &codex)]);
    let thread = w.wait_thread(CLAUDE_ID);
    let codex_thread = w.wait_thread(CODEX_ID);
    wait_outline(&w.home, &thread, &CLAUDE_OUTLINE[..3]);

    w.allow(&[(CODEX_ID, &codex)]);
    let log = w.home.path().join("logs/app-server.log");
    wait_for("the follower to drop the session", || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("no longer following")
    });
    // The test's own appends open the file, so: no read at all while it
    // grows, and no open once it is written.
    let reads = OpenWatch::arm_for(&file, libc::IN_ACCESS);
    for l in rest {
        append_in_halves(&file, l);
    }
    let opens = OpenWatch::arm(&file);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&codex)
        .unwrap()
        .write_all(codex_lines[14..].concat().as_bytes())
        .unwrap();
    wait_outline(&w.home, &codex_thread, CODEX_OUTLINE);
    assert_eq!(reads.count(), 0, "the unshared file was read");
    assert_eq!(opens.count(), 0, "the unshared file was opened");
    assert_eq!(outline(&w.home.events(&thread)), &CLAUDE_OUTLINE[..3]);

    // Unshared, it is still a mirror: nobody posts into it.
    let mut raw = w.home.raw();
    let r = raw.request("turn/start", json!({"threadId": thread, "input": "hi"}));
    assert_eq!(r["error"]["data"]["reason"], "mirrored", "{r}");
    let r = raw.request("thread/append", json!({"threadId": thread, "turns": [{"input": "a", "response": "b"}]}));
    assert_eq!(r["error"]["data"]["reason"], "mirrored", "{r}");

    // Sharing it again resumes the same thread where it stopped.
    w.allow(&[(CLAUDE_ID, &file), (CODEX_ID, &codex)]);
    wait_outline(&w.home, &thread, CLAUDE_OUTLINE);
    assert_eq!(w.thread_of(CLAUDE_ID).unwrap(), thread);
}

/// A git repository for the session's working directory, and `tandem` run
/// in it with the world's directories.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(origin: &str) -> Repo {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        for args in [&["init", "-q"][..], &["remote", "add", "origin", origin][..]] {
            let ok = std::process::Command::new("git").args(args).current_dir(dir.path()).status().unwrap();
            assert!(ok.success());
        }
        Repo { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl World {
    fn cli(&self, cwd: &Path, args: &[&str]) -> Out {
        self.cli_stdin(cwd, args, "")
    }
    fn cli_stdin(&self, cwd: &Path, args: &[&str], input: &str) -> Out {
        let mut cmd = self.home.tandem();
        cmd.args(args)
            .current_dir(cwd)
            .env_remove("CLAUDE_SESSION_ID")
            .env_remove("CLAUDE_CODE_SESSION_ID")
            .env_remove("CODEX_THREAD_ID")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// A fixture's lines as if recorded in `cwd`.
    fn lines_in(&self, rel: &str, cwd: &Path) -> Vec<String> {
        fixture_lines(rel)
            .into_iter()
            .map(|l| l.replace("/tmp/sessrec/work/proj", &cwd.display().to_string()))
            .collect()
    }
}

#[test]
fn share_session_asks_for_the_repo_then_mirrors_live_and_unshare_stops() {
    let w = World::new();
    let repo = Repo::new("git@github.com:Acme/Widgets.git");
    let file = w.claude_project(repo.path()).join(format!("{CLAUDE_ID}.jsonl"));
    let lines = w.lines_in(&format!("claude/{CLAUDE_ID}.jsonl"), repo.path());
    std::fs::write(&file, lines[..3].concat()).unwrap();
    let _stop = StopOnDrop(&w.home);

    // Not allowed, no terminal: exit 2 naming the way out, nothing shared.
    let out = w.cli(repo.path(), &["share", "session", CLAUDE_ID]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("tandem repo allow github.com/acme/widgets"), "{out:?}");
    assert!(!w.home.path().join("shared-sessions.json").exists());

    w.cli(repo.path(), &["repo", "allow"]).ok();
    let listed = w.cli(repo.path(), &["repo", "list"]).ok();
    assert_eq!(listed.stdout, "local\tgithub.com/acme/widgets\n");
    let config = std::fs::read_to_string(w.home.path().join("config.toml")).unwrap();
    assert!(config.contains("[hubs.\"local\"]"), "{config}");

    // No id: the newest session of this directory, named before it is shared.
    let out = w.cli(repo.path(), &["share", "session"]).ok();
    assert!(out.stderr.contains(&format!("Claude Code {CLAUDE_ID}")), "{out:?}");
    let thread = out.stdout.split("thread ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    assert!(out.stdout.contains(&format!("tandem share tail --thread {thread} --from 1")), "{out:?}");
    // The autostarted server has no web listener: say how to get a link.
    assert!(out.stdout.contains("--listen http://127.0.0.1:7878"), "{out:?}");
    let list = std::fs::read_to_string(w.home.path().join("shared-sessions.json")).unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["version"], 1);
    assert_eq!(list["sessions"][CLAUDE_ID]["filePath"], file.display().to_string());
    assert_eq!(list["sessions"][CLAUDE_ID]["servers"], json!(["local"]));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.home.path().join("shared-sessions.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // `share tail` follows the mirror live while the agent writes.
    let mut tail = Tail::start(&w.home, &["--thread", &thread, "--from", "1"]);
    for l in &lines[3..] {
        append_in_halves(&file, l);
    }
    let seen = tail.until(|e| e["type"] == "turn/started" && e["input"] == "after compaction hello");
    assert_eq!(outline(&seen)[..5], CLAUDE_OUTLINE[..5]);
    wait_outline(&w.home, &thread, CLAUDE_OUTLINE);

    // Sharing it again changes nothing: the same thread.
    let again = w.cli(repo.path(), &["share", "session", CLAUDE_ID]).ok();
    assert!(again.stdout.contains("already shared") && again.stdout.contains(&thread), "{again:?}");

    let out = w.cli(repo.path(), &["share", "unshare", CLAUDE_ID]).ok();
    assert!(out.stdout.contains(&thread), "{out:?}");
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(w.home.path().join("shared-sessions.json")).unwrap()).unwrap();
    assert_eq!(list["sessions"], json!({}));
    assert_eq!(w.cli(repo.path(), &["share", "unshare", CLAUDE_ID]).code, 4);
}

#[test]
fn share_session_errors_have_their_exit_codes() {
    let w = World::new();
    let repo = Repo::new("https://github.com/acme/widgets");
    let _stop = StopOnDrop(&w.home);
    let dir = repo.path();
    // Unknown session: 4; not a UUID: 2; a hub URL that is not http(s): 2; nothing here: 4.
    assert_eq!(w.cli(dir, &["share", "session", "00000000-0000-0000-0000-000000000000"]).code, 4);
    assert_eq!(w.cli(dir, &["share", "session", "nope"]).code, 2);
    let out = w.cli(dir, &["share", "session", "00000000-0000-0000-0000-000000000000", "--hub", "ftp://hub.example"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("http://"), "{out:?}");
    assert_eq!(w.cli(dir, &["share", "session"]).code, 4);

    // A hook's JSON naming a file outside the agents' directories: refused.
    let outside = w.agents.path().join(format!("{CLAUDE_ID}.jsonl"));
    std::fs::write(&outside, "").unwrap();
    let hook = json!({"session_id": CLAUDE_ID, "transcript_path": outside}).to_string();
    let out = w.cli_stdin(dir, &["share", "session", "--hook"], &hook);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not inside"), "{out:?}");
    assert_eq!(w.cli_stdin(dir, &["share", "session", "--hook"], "{not json").code, 2);

    // A Codex session from a hook's session id, with the app-server unreachable: 5.
    let codex = w.codex_file();
    std::fs::write(&codex, w.lines_in(&format!("codex/{CODEX_FILE}"), dir)[..3].concat()).unwrap();
    w.cli(dir, &["repo", "allow", "github.com/acme/widgets"]).ok();
    let hook = json!({"session_id": CODEX_ID}).to_string();
    let out = w.cli_stdin(dir, &["share", "session", "--hook", "--server", "unix:/nonexistent/tandem.sock"], &hook);
    assert_eq!(out.code, 5, "{out:?}");
    // ...and shared once it is: a Codex mirror.
    let out = w.cli_stdin(dir, &["share", "session", "--hook"], &hook).ok();
    assert!(out.stdout.contains(&format!("Codex {CODEX_ID}")), "{out:?}");

    // Nothing shared left after unsharing the only one without naming it.
    w.cli(dir, &["share", "unshare"]).ok();
    assert_eq!(w.cli(dir, &["share", "unshare"]).code, 4);
}

/// A session file that is a symbolic link is refused as a bad path (2, as
/// the README says), however it is named: by id, as this directory's
/// newest, or by a hook — never "not found" (4). Nothing is shared.
#[test]
fn a_symlinked_session_file_is_refused_with_exit_2() {
    let w = World::new();
    let repo = Repo::new("https://github.com/acme/widgets");
    let _stop = StopOnDrop(&w.home);
    let dir = repo.path();
    w.cli(dir, &["repo", "allow", "github.com/acme/widgets"]).ok();
    let real = w.agents.path().join("elsewhere.jsonl");
    std::fs::write(&real, w.lines_in(&format!("claude/{CLAUDE_ID}.jsonl"), dir)[..3].concat()).unwrap();
    let link = w.claude_project(dir).join(format!("{CLAUDE_ID}.jsonl"));
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let hook = json!({"session_id": CLAUDE_ID, "transcript_path": link}).to_string();
    for out in [
        w.cli(dir, &["share", "session", CLAUDE_ID]),
        w.cli(dir, &["share", "session"]),
        w.cli_stdin(dir, &["share", "session", "--hook"], &hook),
    ] {
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("is a symbolic link; share the session file itself"), "{out:?}");
    }
    assert!(!w.home.path().join("shared-sessions.json").exists());
}

#[test]
fn plugin_install_puts_share_commands_where_the_agents_look() {
    let w = World::new();
    let dir = w.agents.path();
    w.cli(dir, &["plugin", "install", "claude"]).ok();
    w.cli(dir, &["plugin", "install", "codex"]).ok();
    let claude = std::fs::read_to_string(w.claude_dir().join("commands/share.md")).unwrap();
    assert!(claude.contains("!`tandem share session \"${CLAUDE_SESSION_ID}\"`"), "{claude}");
    assert!(claude.starts_with("---\ndescription:"), "{claude}");
    let codex = std::fs::read_to_string(w.codex_dir().join("skills/tandem-share/SKILL.md")).unwrap();
    assert!(codex.starts_with("---\nname: tandem-share\ndescription:"), "{codex}");
    assert!(codex.contains("tandem share session \"$CODEX_THREAD_ID\""), "{codex}");
    assert_eq!(w.cli(dir, &["plugin", "install", "vim"]).code, 2);
}

/// On a terminal, a repository that is not allowed is asked about: `n`
/// declines (exit 2, nothing shared), `y` allows it and shares.
#[test]
fn on_a_terminal_the_repo_is_asked_about() {
    let w = World::new();
    let repo = Repo::new("https://github.com/acme/gadgets.git");
    let file = w.claude_project(repo.path()).join(format!("{CLAUDE_ID}.jsonl"));
    std::fs::write(&file, w.lines_in(&format!("claude/{CLAUDE_ID}.jsonl"), repo.path())[..3].concat()).unwrap();
    let _stop = StopOnDrop(&w.home);
    let socket = w.home.path().join("tmux.sock");
    let _kill = KillTmux(socket.clone());
    let tmux = |args: &[&str]| {
        let out = std::process::Command::new("tmux")
            .env("TERM", "xterm-256color")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux is installed");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let env: String = w.env().iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let line = format!(
        "cd {} && env -u CLAUDE_CODE_SESSION_ID -u CLAUDE_SESSION_ID -u CODEX_THREAD_ID TANDEM_HOME={} {env} {BIN} share session {CLAUDE_ID}; echo EXITED $?; sleep 600",
        repo.path().display(),
        w.home.path().display()
    );
    let wait_screen = |name: &str, what: &str| {
        let mut screen = String::new();
        wait_for(what, || {
            screen = tmux(&["capture-pane", "-p", "-t", name]);
            screen.contains(what)
        });
        screen
    };
    tmux(&["new-session", "-d", "-s", "no", "-x", "150", "-y", "20", &line]);
    wait_screen("no", "Allow it? [y/N]");
    tmux(&["send-keys", "-t", "no", "n", "Enter"]);
    let screen = wait_screen("no", "EXITED");
    assert!(screen.contains("EXITED 2") && screen.contains("tandem repo allow"), "{screen}");
    assert!(!w.home.path().join("shared-sessions.json").exists());

    tmux(&["new-session", "-d", "-s", "yes", "-x", "150", "-y", "20", &line]);
    wait_screen("yes", "Allow it? [y/N]");
    tmux(&["send-keys", "-t", "yes", "y", "Enter"]);
    let screen = wait_screen("yes", "EXITED");
    assert!(screen.contains("✓ Repository allowed") && screen.contains("EXITED 0"), "{screen}");
    assert!(screen.contains("✓ Session shared"), "{screen}");
    assert_eq!(w.cli(repo.path(), &["repo", "list"]).ok().stdout, "local\tgithub.com/acme/gadgets\n");
}

/// Kills a test's private tmux server, also when the test fails.
struct KillTmux(PathBuf);

impl Drop for KillTmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").arg("-S").arg(&self.0).arg("kill-server").output();
    }
}

/// `/share` as the first input of a new Claude Code session: the command
/// runs (with `CLAUDE_CODE_SESSION_ID`) before Claude Code writes the file,
/// even before its project directory exists. It is shared all the same, and
/// the mirror follows the file from its first line once it appears.
#[test]
fn a_claude_session_shared_before_its_file_exists_is_followed_once_written() {
    let w = World::new();
    let repo = Repo::new("https://github.com/acme/widgets");
    let _stop = StopOnDrop(&w.home);
    w.cli(repo.path(), &["repo", "allow"]).ok();
    std::fs::create_dir_all(w.claude_dir().join("projects")).unwrap();
    let mut cmd = w.home.tandem();
    cmd.args(["share", "session", CLAUDE_ID]).current_dir(repo.path()).env("CLAUDE_CODE_SESSION_ID", CLAUDE_ID);
    for (k, v) in w.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("has not written this session yet"), "{stdout}");
    // Another id that does not exist is still not found.
    assert_eq!(w.cli(repo.path(), &["share", "session", CLAUDE_OTHER]).code, 4);

    let dir = w.claude_project(repo.path());
    let file = dir.join(format!("{CLAUDE_ID}.jsonl"));
    for line in w.lines_in(&format!("claude/{CLAUDE_ID}.jsonl"), repo.path()) {
        append_in_halves(&file, &line);
    }
    let thread = w.wait_thread(CLAUDE_ID);
    wait_outline(&w.home, &thread, CLAUDE_OUTLINE);
}

/// With `--hub`, the mirror is linked on the hub (the repository must be
/// allowed for that hub, not just locally): the URL is printed, and what the
/// agent writes reaches the hub live.
#[test]
fn a_session_shared_on_a_hub_reaches_it_live() {
    let w = World::new();
    let hub_home = Home::new();
    let hub = common::hub::Hub::start(&hub_home, &[]);
    let repo = Repo::new("git@github.com:Acme/Widgets.git");
    let file = w.claude_project(repo.path()).join(format!("{CLAUDE_ID}.jsonl"));
    let lines = w.lines_in(&format!("claude/{CLAUDE_ID}.jsonl"), repo.path());
    std::fs::write(&file, lines[..3].concat()).unwrap();
    let _stop = StopOnDrop(&w.home);

    w.cli(repo.path(), &["repo", "allow"]).ok();
    let out = w.cli(repo.path(), &["share", "session", CLAUDE_ID, "--hub", &hub.url()]);
    assert_eq!(out.code, 2, "allowed locally is not allowed on a hub: {out:?}");
    assert!(out.stderr.contains(&format!("tandem repo allow github.com/acme/widgets --hub {}", hub.url())), "{out:?}");

    w.cli(repo.path(), &["repo", "allow", "--hub", &hub.url()]).ok();
    let out = w.cli(repo.path(), &["share", "session", CLAUDE_ID, "--hub", &hub.url()]).ok();
    let url = out.stdout.lines().find_map(|l| l.strip_prefix("✓ Session shared: ")).expect("a URL").trim().to_owned();
    assert!(url.starts_with(&hub.url()) && url.contains("/s/"), "{out:?}");
    let id = url.rsplit('/').next().unwrap().to_owned();

    for l in &lines[3..] {
        append_in_halves(&file, l);
    }
    let mut poll = hub.poll(&id);
    let seen = poll.until(|item| {
        item["type"] == "event"
            && item["event"]["type"] == "turn/started"
            && item["event"]["input"] == "after compaction hello"
    });
    assert!(seen.iter().any(|i| i["type"] == "event" && i["event"]["type"] == "item/completed"), "{seen:?}");

    // Unsharing with --delete removes the hub's copy: the link is gone.
    let out = w.cli(repo.path(), &["share", "unshare", CLAUDE_ID, "--delete"]).ok();
    assert!(out.stdout.contains("Deleted its copy on the hub"), "{out:?}");
    assert_eq!(hub.poll_status(&id), 404);
}

/// Without a hub, the link is the app-server's own web viewer when it has
/// one: a read-only link whose page reads the mirrored thread.
#[test]
fn a_session_shared_without_a_hub_gets_a_link_to_the_local_viewer() {
    let w = World::new();
    let repo = Repo::new("git@github.com:Acme/Widgets.git");
    let file = w.claude_project(repo.path()).join(format!("{CLAUDE_ID}.jsonl"));
    let lines = w.lines_in(&format!("claude/{CLAUDE_ID}.jsonl"), repo.path());
    std::fs::write(&file, lines.concat()).unwrap();
    let env = w.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = w.home.serve_env(&["--listen", "unix", "--listen", "http://127.0.0.1:0"], &env);

    w.cli(repo.path(), &["repo", "allow"]).ok();
    let out = w.cli(repo.path(), &["share", "session", CLAUDE_ID]).ok();
    let url = out.stdout.lines().find_map(|l| l.strip_prefix("✓ Session shared: ")).expect("a URL").trim().to_owned();
    let (page, token) = url.split_once("#k=").unwrap_or_else(|| panic!("no token in {url}"));
    let rest = page.strip_prefix("http://127.0.0.1:").unwrap_or_else(|| panic!("not the local listener: {url}"));
    let (port, thread) = rest.split_once("/t/").unwrap_or_else(|| panic!("not a viewer page: {url}"));
    assert!(out.stdout.contains(&format!("thread {thread}")), "{out:?}");

    let web = common::web::WebServer { server, url: format!("http://127.0.0.1:{port}") };
    let access = common::web::http_get(web.host(), "/api/access", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(access.status, 200, "{access:?}");
    assert_eq!(access.json()["link"]["scope"], "read", "{access:?}");
    let mut viewer = common::web::WsRpc::connect(&web, token);
    let read = viewer.call("thread/read", json!({"threadId": thread}));
    assert!(read["thread"]["title"].as_str().unwrap().contains(&CLAUDE_ID[..8]), "{read}");
    assert_forbidden_post(&mut viewer, thread);
    // Sharing it again makes no second link; revoking ends the one there is.
    let again = w.cli(repo.path(), &["share", "session", CLAUDE_ID]).ok();
    assert!(again.stdout.contains("already shared") && !again.stdout.contains("#k="), "{again:?}");
    assert!(again.stdout.contains(&format!("tandem share link --thread {thread}")), "{again:?}");
    w.home.run(&["share", "revoke", "--thread", thread, "--server", &w.home.endpoint()]).ok();
    let revoked = common::web::http_get(web.host(), "/api/access", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(revoked.status, 403, "{revoked:?}");
    w.cli(repo.path(), &["share", "unshare", CLAUDE_ID]).ok();
}

/// A read link cannot post into a mirror.
fn assert_forbidden_post(viewer: &mut common::web::WsRpc, thread: &str) {
    let r = viewer.request("turn/start", json!({"threadId": thread, "input": "hi"}));
    assert_eq!(r["error"]["code"], -32004, "{r}");
}

/// Shared, then its project directory swapped for a link to a directory
/// outside `~/.claude/projects` that holds a file of the same name (with a
/// marker) which then grows: the follower refuses to read through the link
/// and says so in its log; nothing from outside reaches the thread. Put
/// back, the session is followed on from where it was.
#[test]
fn a_project_directory_swapped_for_a_link_is_not_followed_out_of_the_root() {
    let w = World::new();
    let file = w.claude_file(CLAUDE_ID);
    let lines = fixture_lines(&format!("claude/{CLAUDE_ID}.jsonl"));
    std::fs::write(&file, lines[..8].concat()).unwrap();
    let _server = w.serve();
    w.allow(&[(CLAUDE_ID, &file)]);
    let thread = w.wait_thread(CLAUDE_ID);
    wait_outline(&w.home, &thread, &CLAUDE_OUTLINE[..3]);

    let project = file.parent().unwrap().to_path_buf();
    let moved = w.agents.path().join("moved-away");
    let outside = w.agents.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let planted = outside.join(file.file_name().unwrap());
    let marked: Vec<String> = lines.iter().map(|l| l.replace("say hello", "MARKER-FROM-OUTSIDE")).collect();
    std::fs::write(&planted, marked[..8].concat()).unwrap();
    std::fs::rename(&project, &moved).unwrap();
    std::os::unix::fs::symlink(&outside, &project).unwrap();
    for l in &marked[8..12] {
        append_in_halves(&planted, l);
    }
    let log = w.home.path().join("logs/app-server.log");
    let marker_in = |events: &[Value]| events.iter().any(|e| e.to_string().contains("MARKER"));
    wait_for("the follower to refuse the swapped directory (or to read through it)", || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("replaced by a link")
            || marker_in(&w.home.events(&thread))
    });
    assert!(!marker_in(&w.home.events(&thread)), "a file outside the root was mirrored");

    // Put back, and written on: followed from where it stopped.
    std::fs::remove_file(&project).unwrap();
    std::fs::rename(&moved, &project).unwrap();
    for l in &lines[8..] {
        append_in_halves(&file, l);
    }
    let events = wait_outline(&w.home, &thread, CLAUDE_OUTLINE);
    assert!(!marker_in(&events), "a file outside the root was mirrored");
}

/// A mirror reads `running` (`thread/read`, `share list`) while its
/// session has a turn open — the prompt written, its end not yet — and
/// `idle` once the turn's end is written.
#[test]
fn a_mirrored_thread_shows_running_while_its_session_has_an_open_turn() {
    let w = World::new();
    let file = w.claude_file(CLAUDE_ID);
    let lines = fixture_lines(&format!("claude/{CLAUDE_ID}.jsonl"));
    // Up to the prompt "say hello"; the answer has not come.
    std::fs::write(&file, lines[..3].concat()).unwrap();
    let _server = w.serve();
    w.allow(&[(CLAUDE_ID, &file)]);
    let thread = w.wait_thread(CLAUDE_ID);
    let mut raw = w.home.raw();
    let mut read = || raw.request("thread/read", json!({"threadId": thread}))["result"]["thread"].clone();
    let mut t = Value::Null;
    wait_for("the mirror to show running", || {
        t = read();
        t["status"] == "running"
    });
    assert_eq!(t["activeTurn"]["client"]["name"], "claude-code", "{t}");
    let turn = &w.home.events(&thread)[1];
    assert_eq!(turn["type"], "turn/started");
    assert_eq!(t["activeTurn"]["id"], turn["turnId"], "{t}");
    let list = w.home.run(&["share", "list", "--server", &w.home.endpoint()]).ok().stdout;
    let row = list.lines().find(|l| l.contains(&CLAUDE_ID[..8])).unwrap();
    assert!(row.contains("running") && row.contains("(turn by claude-code)"), "{list}");

    // The answer, with its end: idle.
    for l in &lines[3..7] {
        append_in_halves(&file, l);
    }
    wait_for("the mirror to show idle", || {
        t = read();
        t["status"] == "idle"
    });
    assert!(t.get("activeTurn").is_none(), "{t}");
    assert_eq!(outline(&w.home.events(&thread)), CLAUDE_OUTLINE[..3]);
    let list = w.home.run(&["share", "list", "--server", &w.home.endpoint()]).ok().stdout;
    let row = list.lines().find(|l| l.contains(&CLAUDE_ID[..8])).unwrap();
    assert!(row.contains("idle"), "{list}");
}
