//! The follower: tails exactly the session files the allowlist names into
//! their mirrored threads. It watches the data directory (for the allowlist)
//! and the directory of each followed file (inotify misses nothing on append
//! but needs the directory for create and rename), waits 100 ms for a burst
//! of changes to settle, then reads each listed file from its offset.
//!
//! What it keeps in `$TANDEM_HOME/session-mirrors.json` per session: the
//! offset of the first byte not yet converted, the converter's state, and the
//! thread's last seq when that offset was reached. Events are made durable
//! before the offset moves, so a crash can only make it read a batch again;
//! the converter is deterministic, so it drops exactly the events the thread
//! already has (counted in the log) and goes on — no gap, no duplicate.
//!
//! It must never open a file that is not listed: it looks at directory events
//! only to know *when* to look, and opens nothing but the listed paths.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tandem_protocol::methods::ThreadEventsParams;
use tandem_protocol::{MAX_PAGE, Position};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::allowlist;
use super::convert::{AgentKind, Converter, thread_id_for};
use super::locate::{PinnedFile, SessionRoots};
use tandem_engine::Engine;
use tandem_home::{Home, fnv1a, write_atomic};
use tandem_rpc::hub_sync::HubSync;

/// How long a burst of file events may settle before the files are read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// A burst that never settles is still read this often.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

/// Files are also looked at this often, in case a watch could not be set
/// (a directory that did not exist yet).
const SAFETY_TICK: Duration = Duration::from_secs(2);

/// The most bytes read from one file at a time; a longer line is skipped.
const MAX_BATCH: usize = 16 * 1024 * 1024;

/// How much of a file's start identifies it when it is replaced.
const PREFIX_LEN: u64 = 4096;

/// A turn whose file has not been written for this long shows `idle`: an
/// agent that crashed (or was killed) never writes its turn's end, and its
/// mirror must not say `running` forever. Claude Code and Codex write a
/// record at least per model reply or tool result; a tool that runs longer
/// silently shows idle until its result comes.
const QUIET: Duration = Duration::from_secs(60);

/// The follower's state file in the data directory.
pub const STATE_FILE: &str = "session-mirrors.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    #[serde(default)]
    sessions: BTreeMap<String, Progress>,
}

/// How far one session has been mirrored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    thread_id: String,
    kind: AgentKind,
    file_path: PathBuf,
    offset: u64,
    last_seq: u64,
    prefix_len: u64,
    prefix_hash: u64,
    converter: Converter,
}

impl Progress {
    fn new(id: &str, kind: AgentKind, file: &Path) -> Progress {
        Progress {
            thread_id: thread_id_for(id),
            kind,
            file_path: file.to_owned(),
            offset: 0,
            last_seq: 1,
            prefix_len: 0,
            prefix_hash: 0,
            converter: Converter::new(kind, id),
        }
    }
}

/// A session being followed now.
struct Following {
    /// Where its file is, pinned when following started: every read opens
    /// it through this, never by the listed path (whose directories could
    /// have been swapped for links since).
    pinned: PinnedFile,
    /// Events still to drop because the thread has them (after a crash).
    skip: u64,
    /// The last problem logged, so a broken file is not logged every tick.
    problem: Option<String>,
    /// When the file was last written (its mtime at the last look).
    written: Option<SystemTime>,
}

/// How often the allowlist is looked at.
const ALLOWLIST_POLL: Duration = Duration::from_millis(100);

/// What changes when the allowlist is written (it is replaced by a rename).
fn allowlist_stamp(path: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// Starts the follower; it stops when `stop` turns true.
pub fn spawn(
    engine: Engine,
    home: Home,
    roots: SessionRoots,
    hub: Option<HubSync>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(engine, home, roots, hub, stop))
}

async fn run(engine: Engine, home: Home, roots: SessionRoots, hub: Option<HubSync>, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            let _ = tx.send(event.paths);
        }
    });
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files; shared sessions are looked at every 2 s instead");
            None
        }
    };
    // The allowlist is looked at (one stat) every ALLOWLIST_POLL rather than
    // watched: it shares the data directory with the event log, whose every
    // commit would wake a directory watch.
    let list_path = allowlist::path(&home);
    let mut list_seen = allowlist_stamp(&list_path);
    let mut list_tick = tokio::time::interval(ALLOWLIST_POLL);
    // A look at everything now and then, whatever the watches said.
    let mut safety = tokio::time::Instant::now();
    list_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mirrors = Mirrors::load(engine, home, roots, watcher);
    mirrors.hub = hub;
    mirrors.sync().await;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = list_tick.tick() => {
                let stamp = allowlist_stamp(&list_path);
                if stamp != list_seen || safety.elapsed() >= SAFETY_TICK {
                    list_seen = stamp;
                    safety = tokio::time::Instant::now();
                    mirrors.sync().await;
                }
            }
            Some(paths) = rx.recv() => {
                // A watched directory holds other files too: only the
                // followed files count.
                if !mirrors.concerns(&paths) {
                    continue;
                }
                let until = tokio::time::Instant::now() + MAX_DEBOUNCE;
                while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    if tokio::time::Instant::now() >= until {
                        break;
                    }
                }
                mirrors.sync().await;
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    tracing::debug!("session follower stopped");
}

struct Mirrors {
    engine: Engine,
    home: Home,
    roots: SessionRoots,
    state: StateFile,
    following: BTreeMap<String, Following>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    allowlist_problem: Option<String>,
    /// Why a listed session could not be followed yet (logged once each).
    start_problems: BTreeMap<String, String>,
    /// Syncs mirrored threads to the hubs their entries list (`servers`).
    hub: Option<HubSync>,
    /// How long a followed file may be quiet before its open turn shows idle.
    quiet: Duration,
    /// (session, hub) pairs linked already, or whose failure was logged.
    hub_linked: BTreeSet<(String, String)>,
    hub_problems: BTreeSet<(String, String)>,
}

impl Mirrors {
    fn load(engine: Engine, home: Home, roots: SessionRoots, watcher: Option<notify::RecommendedWatcher>) -> Mirrors {
        let path = home.dir().join(STATE_FILE);
        let state = match tandem_home::open_private(&path, tandem_home::Access::Read) {
            Ok(mut f) => {
                let mut text = String::new();
                let parsed = f
                    .read_to_string(&mut text)
                    .map_err(|e| e.to_string())
                    .and_then(|_| serde_json::from_str::<StateFile>(&text).map_err(|e| e.to_string()));
                parsed.unwrap_or_else(|e| {
                    tracing::error!(file = %path.display(), error = %e, "unreadable session-mirror state; starting over");
                    StateFile::default()
                })
            }
            Err(_) => StateFile::default(),
        };
        // A mirrored thread stays one after its session is unshared.
        for p in state.sessions.values() {
            engine.set_external(&p.thread_id, p.kind.display());
        }
        Mirrors {
            engine,
            home,
            roots,
            state,
            following: BTreeMap::new(),
            watcher,
            watched: BTreeSet::new(),
            allowlist_problem: None,
            start_problems: BTreeMap::new(),
            hub: None,
            quiet: QUIET,
            hub_linked: BTreeSet::new(),
            hub_problems: BTreeSet::new(),
        }
    }

    /// Links a followed session's thread to every hub its entry lists (the
    /// hub link keeps it synced from then on; linking again is a no-op).
    async fn link_to_hubs(&mut self, id: &str, servers: &[String]) {
        let Some(hub) = self.hub.clone() else { return };
        let Some(thread_id) = self.state.sessions.get(id).map(|p| p.thread_id.clone()) else { return };
        for url in servers.iter().filter(|s| s.starts_with("http://") || s.starts_with("https://")) {
            let key = (id.to_owned(), url.clone());
            if self.hub_linked.contains(&key) {
                continue;
            }
            let params = tandem_protocol::hub::HubLinkParams {
                thread_id: thread_id.clone(),
                hub: Some(url.clone()),
                expire: None,
                no_redact: false,
            };
            match hub.link(params).await {
                Ok(done) => {
                    tracing::info!(session = %id, url = %done.link.url, "shared session linked to its hub");
                    self.hub_linked.insert(key);
                }
                Err(e) => {
                    if self.hub_problems.insert(key) {
                        tracing::warn!(session = %id, error = %e, "cannot link a shared session to its hub yet");
                    }
                }
            }
        }
    }

    /// Whether a file event touched the allowlist or a followed file.
    fn concerns(&self, paths: &[PathBuf]) -> bool {
        let list = allowlist::path(&self.home);
        paths.iter().any(|p| {
            *p == list || self.following.keys().any(|id| self.state.sessions.get(id).is_some_and(|s| s.file_path == *p))
        })
    }

    /// Follows what the allowlist lists now, and reads what the files gained.
    async fn sync(&mut self) {
        let list = match allowlist::read(&allowlist::path(&self.home)) {
            Ok(list) => {
                self.allowlist_problem = None;
                list
            }
            Err(e) => {
                // Unreadable: share nothing until it is fixed.
                let why = e.to_string();
                if self.allowlist_problem.as_ref() != Some(&why) {
                    tracing::error!(error = %why, "cannot read the shared-sessions allowlist; following nothing");
                    self.allowlist_problem = Some(why);
                }
                allowlist::Allowlist::default()
            }
        };
        let gone: Vec<String> = self.following.keys().filter(|id| !list.sessions.contains_key(*id)).cloned().collect();
        for id in gone {
            self.following.remove(&id);
            self.report_activity(&id);
            // Shared again later, it is linked again (the link may be gone).
            self.hub_linked.retain(|(s, _)| *s != id);
            self.hub_problems.retain(|(s, _)| *s != id);
            tracing::info!(session = %id, "session unshared; no longer following it");
        }
        for (id, entry) in &list.sessions {
            // Listed again with another file (it moved): follow that one.
            if self.following.contains_key(id)
                && self.state.sessions.get(id).is_some_and(|p| p.file_path != entry.file_path)
            {
                self.following.remove(id);
            }
            if !self.following.contains_key(id) {
                // A session shared before its agent wrote it starts once it
                // exists: retried on every look, logged once.
                if let Err(why) = self.start(id, &entry.file_path).await {
                    if self.start_problems.get(id) != Some(&why) {
                        tracing::warn!(session = %id, file = %entry.file_path.display(), error = %why, "cannot follow a shared session yet");
                        self.start_problems.insert(id.clone(), why);
                    }
                    continue;
                }
                self.start_problems.remove(id);
            }
            self.link_to_hubs(id, &entry.servers).await;
            loop {
                match self.poll(id).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(why) => {
                        let f = self.following.get_mut(id).expect("followed");
                        if f.problem.as_ref() != Some(&why) {
                            tracing::warn!(session = %id, error = %why, "cannot read a shared session file (will retry)");
                            f.problem = Some(why);
                        }
                        break;
                    }
                }
            }
            self.report_activity(id);
        }
        self.rewatch();
    }

    /// Tells the engine whether a session's agent is at work, which its
    /// mirror's `status` / `activeTurn` show: a turn open (its prompt seen,
    /// its end not yet) in a followed file written within `quiet`.
    fn report_activity(&self, id: &str) {
        let Some(progress) = self.state.sessions.get(id) else { return };
        let recent = self
            .following
            .get(id)
            .and_then(|f| f.written)
            // A time in the future (a clock step) counts as now.
            .is_some_and(|t| t.elapsed().map_or(true, |age| age < self.quiet));
        let active = if recent { progress.converter.active() } else { None };
        self.engine.set_external_activity(&progress.thread_id, active);
    }

    async fn start(&mut self, id: &str, file: &Path) -> Result<(), String> {
        let (kind, file_id, pinned) = self.roots.pin(file)?;
        if !file_id.eq_ignore_ascii_case(id) {
            return Err(format!("the file is session {file_id}, not {id}"));
        }
        let mut progress = self.state.sessions.get(id).cloned().unwrap_or_else(|| Progress::new(id, kind, file));
        progress.file_path = file.to_owned();
        self.engine.set_external(&progress.thread_id, kind.display());
        let title = title_for(kind, id, &pinned);
        let last = self.engine.append_external(&progress.thread_id, &title, Vec::new()).await.map_err(|e| e.message)?;
        let skip = if last < progress.last_seq {
            // The thread lost events (a different database): mirror it anew.
            tracing::warn!(session = %id, "the mirrored thread is behind its saved offset; mirroring the session again");
            progress = Progress::new(id, kind, file);
            progress.last_seq = last;
            0
        } else {
            self.events_since(&progress.thread_id, progress.last_seq).await?
        };
        if skip > 0 {
            tracing::info!(session = %id, events = skip, "resuming after an unclean stop; the thread already has these");
        }
        self.state.sessions.insert(id.to_owned(), progress);
        self.following.insert(id.to_owned(), Following { pinned, skip, problem: None, written: None });
        // Saved now, so the thread is known as a mirror after a restart
        // even before the session has a line.
        self.save();
        tracing::info!(session = %id, file = %file.display(), "following a shared session");
        Ok(())
    }

    /// How many events the follower wrote to a thread after `seq` (others,
    /// such as a `thread/updated`, are not its own).
    async fn events_since(&self, thread_id: &str, seq: u64) -> Result<u64, String> {
        let mut from = seq + 1;
        let mut count = 0;
        loop {
            let page = self
                .engine
                .thread_events(ThreadEventsParams {
                    thread_id: thread_id.to_owned(),
                    from: Some(Position::Seq(from)),
                    limit: Some(MAX_PAGE),
                })
                .await
                .map_err(|e| e.message)?;
            for e in &page.events {
                if !e.get().contains(r#""type":"thread/updated""#) {
                    count += 1;
                }
            }
            match page.next {
                Some(n) => from = n,
                None => return Ok(count),
            }
        }
    }

    /// Reads what a followed file gained since its offset into its thread,
    /// one batch; `true` when there is more to read.
    async fn poll(&mut self, id: &str) -> Result<bool, String> {
        let progress = self.state.sessions.get_mut(id).expect("started");
        let path = progress.file_path.clone();
        let mut file = match self.following.get(id).expect("followed").pinned.open() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        self.following.get_mut(id).expect("followed").written = meta.modified().ok();
        let size = meta.len();
        // Appended to, it still starts with the bytes already mirrored;
        // truncated, rewritten in place or replaced, it may not (checked on
        // every look: a rewrite that outgrew the offset changes no size).
        if progress.offset > 0 {
            let same_start = size >= progress.offset
                && read_prefix(&mut file, progress.prefix_len).is_ok_and(|p| fnv1a(&p) == progress.prefix_hash);
            if !same_start {
                tracing::warn!(session = %id, file = %path.display(), "the session file was truncated or replaced; following it from its start");
                let kind = progress.kind;
                progress.offset = 0;
                progress.prefix_len = 0;
                progress.converter = Converter::new(kind, id);
                if let Some(f) = self.following.get_mut(id) {
                    f.skip = 0;
                }
            }
        }
        if size <= progress.offset {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(progress.offset)).map_err(|e| e.to_string())?;
        let want = ((size - progress.offset) as usize).min(MAX_BATCH);
        let mut buf = Vec::with_capacity(want);
        (&mut file).take(want as u64).read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let complete = match buf.iter().rposition(|b| *b == b'\n') {
            Some(end) => end + 1,
            // A line longer than a batch: leave it out, counted.
            None if buf.len() == MAX_BATCH => {
                progress.converter.skipped += 1;
                buf.len()
            }
            // A half-written last line waits for its newline.
            None => return Ok(false),
        };
        let skipped_before = progress.converter.skipped;
        let mut events = Vec::new();
        let mut at = progress.offset;
        if buf[..complete].ends_with(b"\n") {
            for line in buf[..complete].split_inclusive(|b| *b == b'\n') {
                events.extend(progress.converter.line(at, &String::from_utf8_lossy(line)));
                at += line.len() as u64;
            }
        }
        let new_offset = progress.offset + complete as u64;
        if progress.converter.skipped > skipped_before {
            tracing::info!(
                session = %id,
                skipped = progress.converter.skipped - skipped_before,
                total = progress.converter.skipped,
                "left out session lines that are not JSON objects (or too long)"
            );
        }
        let following = self.following.get_mut(id).expect("followed");
        let dup = (following.skip as usize).min(events.len());
        events.drain(..dup);
        following.skip -= dup as u64;
        following.problem = None;
        // The thread exists since `start`: the title is not used.
        let title = format!("{} session {}", progress.kind.display(), &id[..8]);
        let thread_id = progress.thread_id.clone();
        let last = if events.is_empty() {
            self.engine.last_seq(&thread_id).unwrap_or(progress.last_seq)
        } else {
            self.engine.append_external(&thread_id, &title, events).await.map_err(|e| e.message)?
        };
        let progress = self.state.sessions.get_mut(id).expect("started");
        progress.offset = new_offset;
        progress.last_seq = last;
        if progress.prefix_len < PREFIX_LEN.min(new_offset) {
            progress.prefix_len = PREFIX_LEN.min(new_offset);
            progress.prefix_hash = read_prefix(&mut file, progress.prefix_len).map(|p| fnv1a(&p)).unwrap_or(0);
        }
        self.save();
        Ok(new_offset < size)
    }

    fn save(&mut self) {
        self.state.version = 1;
        let text = serde_json::to_vec(&self.state).expect("state always serializes");
        let path = self.home.dir().join(STATE_FILE);
        if let Err(e) = write_atomic(&path, &text) {
            tracing::error!(file = %path.display(), error = %e, "cannot save the session-mirror offsets");
        }
    }

    /// Watches the directories of the followed files, and no others.
    fn rewatch(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        let want: BTreeSet<PathBuf> = self
            .following
            .keys()
            .filter_map(|id| self.state.sessions.get(id)?.file_path.parent().map(Path::to_path_buf))
            .collect();
        for dir in self.watched.difference(&want) {
            let _ = watcher.unwatch(dir);
        }
        let mut watched = BTreeSet::new();
        for dir in want {
            if self.watched.contains(&dir) || watcher.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
                watched.insert(dir);
            }
        }
        self.watched = watched;
    }
}

/// "Claude Code session c82a5d42 in widgets": the agent, the session, and
/// the directory it runs in when its first records say (a listed file only).
fn title_for(kind: AgentKind, id: &str, file: &PinnedFile) -> String {
    let base = format!("{} session {}", kind.display(), &id[..8]);
    let cwd = file.open().ok().and_then(|f| {
        let mut head = Vec::new();
        f.take(64 * 1024).read_to_end(&mut head).ok()?;
        String::from_utf8_lossy(&head).lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let cwd = v.get("cwd").or_else(|| v.get("payload")?.get("cwd"))?.as_str()?;
            Path::new(cwd).file_name().map(|n| n.to_string_lossy().into_owned())
        })
    });
    match cwd {
        Some(dir) => format!("{base} in {dir}"),
        None => base,
    }
}

fn read_prefix(file: &mut std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;
    use tandem_protocol::methods::ThreadUpdateParams;

    use super::*;
    use tandem_engine::Durability;
    use tandem_engine::agent::EchoAgent;

    const ID: &str = "c82a5d42-829f-4ee0-99c7-a5a4cd0fd679";
    const OTHER: &str = "6a4ba966-9327-422b-96ef-0af468d52559";

    fn lines(id: &str) -> Vec<String> {
        let path = format!("{}/../tests/fixtures/sessions/claude/{id}.jsonl", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().split_inclusive('\n').map(str::to_owned).collect()
    }

    struct Setup {
        _dir: tempfile::TempDir,
        home: Home,
        roots: SessionRoots,
        file: PathBuf,
        engine: Engine,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        home.ensure().unwrap();
        let roots =
            SessionRoots { claude: dir.path().join("claude/projects"), codex: dir.path().join("codex/sessions") };
        let project = roots.claude.join("-w");
        std::fs::create_dir_all(&project).unwrap();
        let file = project.join(format!("{ID}.jsonl"));
        std::fs::write(&file, "").unwrap();
        let mut list = allowlist::Allowlist::default();
        list.sessions.insert(
            ID.into(),
            allowlist::SharedSession { file_path: file.clone(), servers: vec!["local".into()], shared_at: "x".into() },
        );
        allowlist::write(&allowlist::path(&home), &list).unwrap();
        let engine = Engine::open(&home.db_path(), Durability::Normal, Arc::new(EchoAgent::default())).await.unwrap();
        Setup { _dir: dir, home, roots, file, engine }
    }

    impl Setup {
        fn mirrors(&self) -> Mirrors {
            Mirrors::load(self.engine.clone(), self.home.clone(), self.roots.clone(), None)
        }
        fn append(&self, lines: &[String]) {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&self.file).unwrap();
            f.write_all(lines.concat().as_bytes()).unwrap();
        }
        /// The mirrored thread's events after `thread/started`, as (type, ids).
        async fn events(&self) -> Vec<(String, String)> {
            let page = self
                .engine
                .thread_events(ThreadEventsParams { thread_id: thread_id_for(ID), from: None, limit: None })
                .await
                .unwrap();
            page.events
                .iter()
                .skip(1)
                .map(|e| {
                    let v: Value = serde_json::from_str(e.get()).unwrap();
                    (v["type"].as_str().unwrap().to_owned(), format!("{}{}", v["turnId"], v["item"]["id"]))
                })
                .collect()
        }
    }

    /// What converting the lines in one go gives.
    fn reference(lines: &[String]) -> Vec<(String, String)> {
        let mut conv = Converter::new(AgentKind::Claude, ID);
        let mut at = 0;
        let mut out = Vec::new();
        for l in lines {
            for (body, _) in conv.line(at, l) {
                let v = serde_json::to_value(&body).unwrap();
                out.push((v["type"].as_str().unwrap().to_owned(), format!("{}{}", v["turnId"], v["item"]["id"])));
            }
            at += l.len() as u64;
        }
        out
    }

    /// A crash after a batch was written but before its offset was saved:
    /// the batch is read again and exactly the events the thread has are
    /// dropped (a rename in between is not mistaken for one of them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_read_again_after_a_crash_adds_no_duplicate() {
        let s = setup().await;
        let all = lines(ID);
        s.append(&all[..12]);
        s.mirrors().sync().await;
        let state = s.home.dir().join(STATE_FILE);
        let saved = std::fs::read(&state).unwrap();
        s.append(&all[12..25]);
        s.mirrors().sync().await;
        assert_eq!(s.events().await, reference(&all[..25]));
        s.engine
            .thread_update(ThreadUpdateParams {
                thread_id: thread_id_for(ID),
                title: Some("renamed".into()),
                shared: None,
            })
            .await
            .unwrap();
        std::fs::write(&state, saved).unwrap();

        let mut m = s.mirrors();
        m.sync().await;
        let mut want = reference(&all[..25]);
        want.push(("thread/updated".into(), "nullnull".into()));
        assert_eq!(s.events().await, want);
        s.append(&all[25..]);
        m.sync().await;
        let got: Vec<_> = s.events().await.into_iter().filter(|e| e.0 != "thread/updated").collect();
        assert_eq!(got, reference(&all));
    }

    /// A file replaced by one that starts the same goes on where it was; one
    /// truncated (or replaced by other content) is followed from its start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replaced_and_truncated_files_are_told_apart() {
        let s = setup().await;
        let all = lines(ID);
        s.append(&all[..12]);
        let mut m = s.mirrors();
        m.sync().await;
        // Rewritten by rename with more lines: no duplicate.
        let tmp = s.file.with_extension("tmp");
        std::fs::write(&tmp, all[..20].concat()).unwrap();
        std::fs::rename(&tmp, &s.file).unwrap();
        m.sync().await;
        assert_eq!(s.events().await, reference(&all[..20]));
        // Rewritten in place with other content longer than what was read
        // (no size ever below the offset between two looks): noticed too.
        let mut other = lines(OTHER).concat();
        other.push_str(&" ".repeat(all[..20].concat().len()));
        other.push('\n');
        std::fs::write(&s.file, other).unwrap();
        m.sync().await;
        let page = s
            .engine
            .thread_events(ThreadEventsParams { thread_id: thread_id_for(ID), from: None, limit: None })
            .await
            .unwrap();
        let last_turn = page.events.iter().rev().find(|e| e.get().contains("\"turn/started\"")).unwrap();
        assert!(last_turn.get().contains("second session hello"), "{}", last_turn.get());
        assert_eq!(s.events().await[..reference(&all[..20]).len()], reference(&all[..20])[..]);
    }

    /// Listed again at another path (the file moved): followed there, where
    /// it was, without repeating anything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_moved_file_listed_again_goes_on_where_it_was() {
        let s = setup().await;
        let all = lines(ID);
        s.append(&all[..12]);
        let mut m = s.mirrors();
        m.sync().await;
        let moved_dir = s.roots.claude.join("-w2");
        std::fs::create_dir_all(&moved_dir).unwrap();
        let moved = moved_dir.join(format!("{ID}.jsonl"));
        std::fs::rename(&s.file, &moved).unwrap();
        {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&moved).unwrap();
            f.write_all(all[12..].concat().as_bytes()).unwrap();
        }
        let mut list = allowlist::read(&allowlist::path(&s.home)).unwrap();
        list.sessions.get_mut(ID).unwrap().file_path = moved;
        allowlist::write(&allowlist::path(&s.home), &list).unwrap();
        m.sync().await;
        assert_eq!(s.events().await, reference(&all));
    }

    /// A mirror reads `running` from a prompt to its turn's end, and `idle`
    /// once its file has been quiet too long (an agent that died mid-turn).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mirror_runs_while_its_turn_is_open_and_not_past_a_quiet_file() {
        use tandem_protocol::ThreadStatus;
        use tandem_protocol::methods::ThreadReadParams;
        let s = setup().await;
        let all = lines(ID);
        let read = || s.engine.thread_read(ThreadReadParams { thread_id: thread_id_for(ID) }).unwrap();
        let mut m = s.mirrors();
        // Up to "say hello" (line 3): its answer has not come.
        s.append(&all[..3]);
        m.sync().await;
        let t = read();
        assert_eq!(t.status, ThreadStatus::Running);
        let active = t.active_turn.unwrap();
        assert_eq!(active.client.name, "claude-code");
        assert_eq!(s.events().await[0], ("turn/started".to_owned(), format!("\"{}\"null", active.id)));

        // The file goes quiet longer than allowed: idle, though still open.
        let old = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options().append(true).open(&s.file).unwrap().set_modified(old).unwrap();
        m.sync().await;
        assert_eq!(read().status, ThreadStatus::Idle);
        assert!(read().active_turn.is_none());

        // Written again: running again; the answer ends the turn: idle.
        s.append(&all[3..5]);
        m.sync().await;
        assert_eq!(read().status, ThreadStatus::Running);
        s.append(&all[5..7]);
        m.sync().await;
        assert_eq!(read().status, ThreadStatus::Idle);
        s.append(&all[7..10]);
        m.sync().await;
        assert_eq!(read().status, ThreadStatus::Running);

        // Unshared: not followed, not running.
        allowlist::write(&allowlist::path(&s.home), &allowlist::Allowlist::default()).unwrap();
        m.sync().await;
        assert_eq!(read().status, ThreadStatus::Idle);
    }
}
