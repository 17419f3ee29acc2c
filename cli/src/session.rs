//! `tandem share session|unshare`: put a Claude Code or Codex session on the
//! allowlist the app-server follows (or take it off). Which session: the id
//! given, else the agent's environment (`$CLAUDE_SESSION_ID`,
//! `$CLAUDE_CODE_SESSION_ID`, `$CODEX_THREAD_ID`), else with `--hook` the
//! JSON a Claude Code hook gets on stdin, else the newest session of the
//! current directory (named before it is shared).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use tandem_app_server::mirror::allowlist::{self, SharedSession};
use tandem_app_server::mirror::convert::{AgentKind, thread_id_for};
use tandem_app_server::mirror::locate::{SessionRoots, claude_project_name};
use tandem_client::ClientError;
use tandem_home::Home;
use tandem_protocol::ids::normalize_uuid;
use tandem_protocol::methods::{
    HubLinkCreate, HubUnlink, LinkCreate, LinkCreateParams, LinkScope, ThreadRead, ThreadReadParams,
};

use crate::conn::ConnArgs;
use crate::exit::{self, Fail};
use crate::repo;

/// How long `share session` waits for the app-server to open the mirror.
const MIRROR_WAIT: Duration = Duration::from_secs(30);

/// Environment variables that name the session an agent runs (in order).
const SESSION_VARS: [&str; 3] = ["CLAUDE_SESSION_ID", "CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID"];

/// A session file found on disk.
struct Session {
    id: String,
    kind: AgentKind,
    file: PathBuf,
    /// The Claude Code session this command runs in, whose file Claude Code
    /// has not written yet (`/share` as a session's first input).
    unwritten: bool,
}

/// `tandem share session`.
pub async fn share(id: Option<String>, hook: bool, hub: Option<String>, conn: &ConnArgs) -> Result<u8> {
    let hub = match hub {
        None => None,
        Some(h) => {
            let h = tandem_protocol::hub::normalize_hub_url(&h).map_err(|why| Fail::usage(format!("--hub: {why}")))?;
            if h.starts_with("http://") {
                eprintln!(
                    "warning: {h} is plain http: the session travels unencrypted (use https:// for a hub off this machine)"
                );
            }
            Some(h)
        }
    };
    let dest = hub.clone().unwrap_or_else(|| repo::LOCAL.to_owned());
    let roots = SessionRoots::from_env();
    let session = resolve(&roots, id, hook)?;
    let home = Home::from_env();
    check_repo(&home, &session, &dest)?;

    let list_path = allowlist::path(&home);
    home.ensure().map_err(|e| Fail::new(exit::FAILURE, format!("cannot use {}: {e}", home.dir().display())))?;
    let mut list = allowlist::read(&list_path).map_err(|e| Fail::new(exit::FAILURE, e.to_string()))?;
    let already =
        list.sessions.get(&session.id).is_some_and(|s| s.file_path == session.file && s.servers.contains(&dest));
    if !already {
        // Keep the destinations it already had (sharing with a hub too).
        let mut servers = list.sessions.get(&session.id).map(|s| s.servers.clone()).unwrap_or_default();
        if !servers.contains(&dest) {
            servers.push(dest.clone());
        }
        list.sessions.insert(
            session.id.clone(),
            SharedSession {
                file_path: session.file.clone(),
                servers,
                shared_at: tandem_protocol::time::format_millis(tandem_protocol::time::now_millis()),
            },
        );
        allowlist::write(&list_path, &list).map_err(|e| Fail::new(exit::FAILURE, e.to_string()))?;
    }

    // The app-server is the one that follows: make sure it runs, and wait
    // until the mirror is there to be read.
    let client = crate::conn::connect(conn).await?;
    let thread_id = thread_id_for(&session.id);
    if session.unwritten {
        // Claude Code writes the file once this command has returned: waiting
        // here would wait for ourselves.
        say!("✓ Session shared: {} {} → thread {thread_id}", session.kind.display(), session.id);
        say!("  (Claude Code has not written this session yet; the thread follows it from its first line)");
        if let Some(hub) = &hub {
            say!("  the app-server links it to {hub} then: `tandem share links --thread {thread_id}` shows the URL");
        }
        say!("  follow it: tandem share tail --thread {thread_id} --from 1");
        return Ok(0);
    }
    let deadline = tokio::time::Instant::now() + MIRROR_WAIT;
    loop {
        match client.call::<ThreadRead>(&ThreadReadParams { thread_id: thread_id.clone() }).await {
            Ok(_) => break,
            Err(e) if e.is_transport() => return Err(Fail::from(e).into()),
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => {
                return Err(Fail::new(
                    exit::FAILURE,
                    format!(
                        "timed out waiting for the app-server to mirror the session (see {}/logs/app-server.log); if it was started with other CLAUDE_CONFIG_DIR / CODEX_HOME, restart it: `tandem app-server restart`",
                        home.dir().display()
                    ),
                )
                .into());
            }
        }
    }
    if let Some(hub) = hub {
        let params = tandem_protocol::hub::HubLinkParams {
            thread_id: thread_id.clone(),
            hub: Some(hub),
            expire: None,
            no_redact: false,
        };
        let link = client.call::<HubLinkCreate>(&params).await.map_err(crate::hub_link::hub_fail)?.link;
        say!("✓ Session shared: {}", link.url);
        say!(
            "  ({} {} → thread {thread_id}; `tandem share unshare {}` stops it)",
            session.kind.display(),
            session.id,
            session.id
        );
        return Ok(0);
    }
    // No hub: the link is the app-server's own web viewer, when it has one
    // (a new one only when newly shared: links do not pile up on re-runs).
    let link = if already {
        None
    } else {
        let params = LinkCreateParams { thread_id: thread_id.clone(), scope: Some(LinkScope::Read), expires_in: None };
        match client.call::<LinkCreate>(&params).await {
            Ok(r) => Some(r.url),
            Err(e) if e.is_transport() => return Err(Fail::from(e).into()),
            Err(ClientError::Rpc(rpc)) if rpc.reason() == Some("noHttpListener") => None,
            Err(e) => {
                eprintln!("warning: no link made: {e}");
                None
            }
        }
    };
    let (kind, id) = (session.kind.display(), &session.id);
    match &link {
        Some(url) => {
            say!("✓ Session shared: {url}");
            say!("  ({kind} {id} → thread {thread_id}; a read-only link)");
            say!(
                "  `tandem share revoke --thread {thread_id}` ends the link; `tandem share unshare {id}` stops following"
            );
        }
        None => {
            let state = if already { "already shared" } else { "shared" };
            say!("✓ Session {state}: {kind} {id} → thread {thread_id}");
            say!(
                "  for a link: `tandem share link --thread {thread_id}` (the app-server needs a web listener: `tandem app-server restart --listen http://127.0.0.1:7878`), or share with a hub (--hub URL)"
            );
        }
    }
    say!("  follow it: tandem share tail --thread {thread_id} --from 1");
    Ok(0)
}

/// `tandem share unshare`.
pub async fn unshare(id: Option<String>, delete: bool, conn: &ConnArgs) -> Result<u8> {
    let home = Home::from_env();
    let list_path = allowlist::path(&home);
    let mut list = allowlist::read(&list_path).map_err(|e| Fail::new(exit::FAILURE, e.to_string()))?;
    let id = match given_id(id)? {
        Some(id) => id,
        None => match list.sessions.len() {
            0 => return Err(Fail::new(exit::NOT_FOUND, "no session is shared").into()),
            1 => list.sessions.keys().next().cloned().unwrap_or_default(),
            _ => {
                return Err(Fail::usage(format!(
                    "several sessions are shared; name one: {}",
                    list.sessions.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
                .into());
            }
        },
    };
    if list.sessions.remove(&id).is_none() {
        return Err(Fail::new(exit::NOT_FOUND, format!("session {id} is not shared")).into());
    }
    allowlist::write(&list_path, &list).map_err(|e| Fail::new(exit::FAILURE, e.to_string()))?;
    let thread_id = thread_id_for(&id);
    say!("✓ Stopped sharing session {id}; thread {thread_id} keeps what was mirrored");
    if delete {
        let client = crate::conn::connect(conn).await?;
        let params = tandem_protocol::hub::HubUnlinkParams { thread_id: thread_id.clone(), delete: true };
        let done = client.call::<HubUnlink>(&params).await.map_err(crate::hub_link::hub_fail)?;
        if done.deleted {
            say!("✓ Deleted its copy on the hub");
        } else {
            say!("it was not on a hub: nothing to delete there");
        }
    }
    Ok(0)
}

/// The id from the argument or the agent's environment (an empty one counts
/// as none, so `tandem share session "$CLAUDE_SESSION_ID"` works unset).
fn given_id(id: Option<String>) -> Result<Option<String>, Fail> {
    let id = id
        .filter(|s| !s.trim().is_empty())
        .or_else(|| SESSION_VARS.iter().find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty())));
    match id {
        Some(id) => normalize_uuid("session", id.trim()).map(Some).map_err(Fail::usage),
        None => Ok(None),
    }
}

fn resolve(roots: &SessionRoots, id: Option<String>, hook: bool) -> Result<Session, Fail> {
    let not_found = |what: String| {
        Fail::new(
            exit::NOT_FOUND,
            format!(
                "session not found: {what} (looked in {} for Claude Code and {} for Codex; CLAUDE_CONFIG_DIR and CODEX_HOME move them)",
                roots.claude.display(),
                roots.codex.display()
            ),
        )
    };
    if let Some(id) = given_id(id)? {
        let Some((kind, file)) = roots.find(&id) else {
            // Run from inside that very Claude Code session: its file will be
            // where Claude Code keeps this directory's sessions.
            if std::env::var("CLAUDE_CODE_SESSION_ID").is_ok_and(|v| v.trim().eq_ignore_ascii_case(&id)) {
                let cwd = std::env::current_dir()
                    .map_err(|e| Fail::new(exit::FAILURE, format!("no current directory: {e}")))?;
                let file = roots.claude.join(claude_project_name(&cwd)).join(format!("{id}.jsonl"));
                return Ok(Session { id, kind: AgentKind::Claude, file, unwritten: true });
            }
            // A link in the agent's directory is not "no session": it is
            // refused as what it is (2).
            if let Some(link) = claude_link(roots, &format!("{id}.jsonl")) {
                checked(roots, &link)?;
            }
            return Err(not_found(format!("no session {id}")));
        };
        checked(roots, &file)?;
        return Ok(Session { id, kind, file, unwritten: false });
    }
    if hook {
        let mut text = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| Fail::usage(format!("--hook: cannot read stdin: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Fail::usage(format!("--hook: stdin is not the JSON of a Claude Code hook ({e})")))?;
        if let Some(path) = v["transcript_path"].as_str() {
            let file = PathBuf::from(path);
            if std::fs::symlink_metadata(&file).is_err() {
                return Err(not_found(format!("no file {path}")));
            }
            let (kind, id) = checked(roots, &file)?;
            return Ok(Session { id, kind, file, unwritten: false });
        }
        let id = v["session_id"]
            .as_str()
            .ok_or_else(|| Fail::usage("--hook: the JSON on stdin has neither transcript_path nor session_id"))?;
        let id = normalize_uuid("session_id", id).map_err(Fail::usage)?;
        let (kind, file) = roots.find(&id).ok_or_else(|| not_found(format!("no session {id}")))?;
        return Ok(Session { id, kind, file, unwritten: false });
    }
    let cwd = std::env::current_dir().map_err(|e| Fail::new(exit::FAILURE, format!("no current directory: {e}")))?;
    let claude = roots.newest_claude_in(&cwd).and_then(|(id, f)| Some((mtime(&f)?, AgentKind::Claude, id, f)));
    let codex = newest_codex_in(roots, &cwd).and_then(|(id, f)| Some((mtime(&f)?, AgentKind::Codex, id, f)));
    let newest = [claude, codex].into_iter().flatten().max_by_key(|(t, ..)| *t);
    let Some((_, kind, id, file)) = newest else {
        // Only links where the sessions would be: refused as links (2).
        if let Some(link) = links_in(&roots.claude.join(claude_project_name(&cwd))).first() {
            checked(roots, link)?;
        }
        return Err(not_found(format!("no Claude Code or Codex session of {}", cwd.display())));
    };
    checked(roots, &file)?;
    eprintln!("Sharing the newest session of this directory: {} {id} ({})", kind.display(), file.display());
    Ok(Session { id, kind, file, unwritten: false })
}

/// A symbolic link named `name` in one of Claude Code's project directories
/// (which [`SessionRoots::find`] passes over, as it must).
fn claude_link(roots: &SessionRoots, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(&roots.claude)
        .ok()?
        .flatten()
        .map(|project| project.path().join(name))
        .find(|f| std::fs::symlink_metadata(f).is_ok_and(|m| m.file_type().is_symlink()))
}

/// The symbolic links named like sessions among the files of `dir`.
fn links_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .map(|e| e.path())
        .filter(|p| tandem_app_server::mirror::locate::kind_of(p).is_some())
        .collect()
}

fn checked(roots: &SessionRoots, file: &Path) -> Result<(AgentKind, String), Fail> {
    roots.validate(file).map_err(Fail::usage)
}

fn mtime(f: &Path) -> Option<std::time::SystemTime> {
    std::fs::symlink_metadata(f).ok()?.modified().ok()
}

/// Codex keeps no per-directory index: the newest rollouts (by name, which
/// starts with the time) are asked for their `cwd` in their first line.
fn newest_codex_in(roots: &SessionRoots, cwd: &Path) -> Option<(String, PathBuf)> {
    const LOOK_AT: usize = 200;
    let mut files = Vec::new();
    let dirs = |d: &Path| {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        v.sort();
        v.reverse();
        v
    };
    'outer: for y in dirs(&roots.codex) {
        for m in dirs(&y) {
            for d in dirs(&m) {
                let mut names: Vec<PathBuf> = std::fs::read_dir(&d)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("rollout-")))
                    .collect();
                names.sort();
                names.reverse();
                files.extend(names);
                if files.len() >= LOOK_AT {
                    break 'outer;
                }
            }
        }
    }
    files.into_iter().take(LOOK_AT).find_map(|f| {
        let (AgentKind::Codex, id) = tandem_app_server::mirror::locate::kind_of(&f)? else { return None };
        let mut first = String::new();
        std::io::BufReader::new(std::fs::File::open(&f).ok()?.take(1 << 20)).read_line(&mut first).ok()?;
        let meta: serde_json::Value = serde_json::from_str(&first).ok()?;
        (Path::new(meta["payload"]["cwd"].as_str()?) == cwd).then_some((id, f))
    })
}

/// Refuses a session whose repository is not allowed for this machine,
/// asking on a terminal.
fn check_repo(home: &Home, session: &Session, dest: &str) -> Result<(), Fail> {
    let dir =
        session_cwd(session).filter(|d| d.is_dir()).unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let repo = repo::repo_of(&dir)?;
    let hub_flag = if dest == repo::LOCAL { String::new() } else { format!(" --hub {dest}") };
    if repo::allowed(home, dest)?.contains(&repo) {
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        return Err(Fail::usage(format!(
            "this repository ({repo}) hasn't been allowed for sharing with {dest}; allow it with `tandem repo allow {repo}{hub_flag}`"
        )));
    }
    eprint!("This repository ({repo}) hasn't been allowed for sharing with {dest}. Allow it? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        return Err(Fail::usage(format!(
            "not shared: {repo} is not allowed (`tandem repo allow {repo}{hub_flag}` allows it)"
        )));
    }
    let mut repos = repo::allowed(home, dest)?;
    repos.push(repo);
    repo::set_allowed(home, dest, &repos)?;
    eprintln!("✓ Repository allowed");
    Ok(())
}

/// The directory the session ran in, from its first records.
fn session_cwd(session: &Session) -> Option<PathBuf> {
    let f = std::fs::File::open(&session.file).ok()?;
    for line in std::io::BufReader::new(f.take(4 << 20)).lines().take(50) {
        let v: serde_json::Value = serde_json::from_str(&line.ok()?).ok()?;
        let cwd = match session.kind {
            AgentKind::Claude => v["cwd"].as_str(),
            AgentKind::Codex => v["payload"]["cwd"].as_str(),
        };
        if let Some(cwd) = cwd {
            return Some(PathBuf::from(cwd));
        }
    }
    None
}
