//! Where Claude Code and Codex keep their sessions, and which files are
//! session files: `${CLAUDE_CONFIG_DIR:-~/.claude}/projects/<cwd>/<uuid>.jsonl`
//! and `${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-…-<uuid>.jsonl`.
//! Finding a session lists directory names only; it never opens a session.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use tandem_protocol::ids::normalize_uuid;

use super::convert::AgentKind;

/// The agents' session directories, as this process's environment says.
#[derive(Debug, Clone)]
pub struct SessionRoots {
    pub claude: PathBuf,
    pub codex: PathBuf,
}

impl SessionRoots {
    pub fn from_env() -> SessionRoots {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        SessionRoots {
            claude: var("CLAUDE_CONFIG_DIR").unwrap_or_else(|| home.join(".claude")).join("projects"),
            codex: var("CODEX_HOME").unwrap_or_else(|| home.join(".codex")).join("sessions"),
        }
    }

    /// Checks that `file` is a session file inside one of the roots (no `..`,
    /// no link out of them) and says whose it is and its session id.
    pub fn validate(&self, file: &Path) -> Result<(AgentKind, String), String> {
        self.pin(file).map(|(kind, id, _)| (kind, id))
    }

    /// [`SessionRoots::validate`], and the file's place pinned: its real
    /// path, resolved now, which every later open walks again without
    /// following any link (a directory swapped for a link later is refused).
    pub fn pin(&self, file: &Path) -> Result<(AgentKind, String, PinnedFile), String> {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (kind, root) = if codex_id(name).is_some() {
            (AgentKind::Codex, &self.codex)
        } else if claude_id(name).is_some() {
            (AgentKind::Claude, &self.claude)
        } else {
            return Err(format!("{} is not a Claude Code or Codex session file", file.display()));
        };
        let outside = || {
            format!(
                "{} is not inside {} (Claude Code) or {} (Codex); only sessions there can be shared",
                file.display(),
                self.claude.display(),
                self.codex.display()
            )
        };
        let dir = file.parent().ok_or_else(outside)?;
        let real_dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
        let real_root = root.canonicalize().map_err(|_| outside())?;
        if !real_dir.starts_with(&real_root) || real_dir == real_root {
            return Err(outside());
        }
        match std::fs::symlink_metadata(file) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{} is a symbolic link; share the session file itself", file.display()));
            }
            _ => {}
        }
        let id = match kind {
            AgentKind::Claude => claude_id(name),
            AgentKind::Codex => codex_id(name),
        }
        .unwrap_or_default();
        let pinned = PinnedFile { dir: real_dir, name: OsString::from(name), root: real_root };
        Ok((kind, id, pinned))
    }

    /// The session file with this id, if either agent has one.
    pub fn find(&self, id: &str) -> Option<(AgentKind, PathBuf)> {
        let id = normalize_uuid("session", id).ok()?;
        for project in read_dirs(&self.claude) {
            let f = project.join(format!("{id}.jsonl"));
            if std::fs::symlink_metadata(&f).is_ok_and(|m| m.is_file()) {
                return Some((AgentKind::Claude, f));
            }
        }
        let suffix = format!("-{id}.jsonl");
        for year in read_dirs(&self.codex) {
            for month in read_dirs(&year) {
                for day in read_dirs(&month) {
                    for entry in std::fs::read_dir(&day).into_iter().flatten().flatten() {
                        let name = entry.file_name();
                        let name = name.to_string_lossy();
                        if name.starts_with("rollout-") && name.to_ascii_lowercase().ends_with(&suffix) {
                            return Some((AgentKind::Codex, entry.path()));
                        }
                    }
                }
            }
        }
        None
    }

    /// The most recently written Claude Code session of directory `cwd`.
    pub fn newest_claude_in(&self, cwd: &Path) -> Option<(String, PathBuf)> {
        let dir = self.claude.join(claude_project_name(cwd));
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let id = claude_id(e.file_name().to_str()?)?;
                let m = std::fs::symlink_metadata(e.path()).ok().filter(|m| m.is_file())?;
                Some((m.modified().ok()?, id, e.path()))
            })
            .max_by_key(|(t, _, _)| *t)
            .map(|(_, id, p)| (id, p))
    }
}

/// A session file at the real path it had when it was shared. Opening it
/// walks that path from `/` one directory at a time with `O_NOFOLLOW`, so a
/// directory replaced by a symbolic link afterwards (to a place outside the
/// agents' directories) makes the open fail instead of reading what the link
/// points at; checking the path first and opening it after would leave a
/// window for the swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFile {
    /// The file's directory, canonical when pinned (no `..`, no link).
    dir: PathBuf,
    name: OsString,
    /// The agent's root, canonical: named in refusals.
    root: PathBuf,
}

/// How a directory of the pinned path is opened: never through a link.
/// `O_PATH` (Linux) needs no read permission and reads nothing.
#[cfg(target_os = "linux")]
const DIR_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
#[cfg(not(target_os = "linux"))]
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

impl PinnedFile {
    /// Opens the file for reading, refusing a link anywhere on its path
    /// (`ErrorKind::NotFound` when it or a directory does not exist).
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        let mut dir = open_at(None, Path::new("/").as_os_str().as_bytes(), DIR_FLAGS)?;
        for part in self.dir.components() {
            match part {
                Component::RootDir => {}
                Component::Normal(name) => {
                    dir = open_at(Some(&dir), name.as_bytes(), DIR_FLAGS).map_err(|e| self.refusal(e, name))?;
                }
                // Canonical paths have neither; refuse rather than guess.
                _ => return Err(std::io::Error::other(format!("{} is not a canonical path", self.dir.display()))),
            }
        }
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let file = open_at(Some(&dir), self.name.as_bytes(), flags).map_err(|e| self.refusal(e, &self.name))?;
        Ok(std::fs::File::from(file))
    }

    /// A link met on the way (`ELOOP`) or a file turned into something else
    /// (`ENOTDIR`) says the path was swapped: name it, and the root.
    fn refusal(&self, e: std::io::Error, name: &std::ffi::OsStr) -> std::io::Error {
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => std::io::Error::other(format!(
                "{} was replaced by a link (or something else) on the way to {}; refusing to read outside {}",
                name.to_string_lossy(),
                self.dir.join(&self.name).display(),
                self.root.display()
            )),
            _ => e,
        }
    }
}

/// `openat(2)` of one name (no `/` in it) relative to `dir`, or `/` itself.
fn open_at(dir: Option<&OwnedFd>, name: &[u8], flags: libc::c_int) -> std::io::Result<OwnedFd> {
    if dir.is_some() && (name.contains(&b'/') || name.is_empty()) {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let name = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let at = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: `name` is a valid NUL-terminated string and `at` is either
    // AT_FDCWD or a descriptor `dir` owns and keeps open during the call.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat, is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Claude Code's directory name for a working directory: every character
/// other than a letter or digit becomes `-`.
pub fn claude_project_name(cwd: &Path) -> String {
    cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// `<uuid>.jsonl` → the uuid.
fn claude_id(name: &str) -> Option<String> {
    normalize_uuid("session", name.strip_suffix(".jsonl")?).ok()
}

/// `rollout-…-<uuid>.jsonl` → the uuid.
fn codex_id(name: &str) -> Option<String> {
    let stem = name.strip_prefix("rollout-")?.strip_suffix(".jsonl")?;
    let id = stem.get(stem.len().checked_sub(36)?..)?;
    normalize_uuid("session", id).ok()
}

/// Which agent a listed file belongs to, by its name.
pub fn kind_of(file: &Path) -> Option<(AgentKind, String)> {
    let name = file.file_name()?.to_str()?;
    if let Some(id) = codex_id(name) {
        return Some((AgentKind::Codex, id));
    }
    claude_id(name).map(|id| (AgentKind::Claude, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_are_recognized_and_confined_to_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let roots =
            SessionRoots { claude: dir.path().join("claude/projects"), codex: dir.path().join("codex/sessions") };
        let id = "c82a5d42-829f-4ee0-99c7-a5a4cd0fd679";
        let proj = roots.claude.join(claude_project_name(Path::new("/w/my.proj")));
        std::fs::create_dir_all(&proj).unwrap();
        assert!(proj.ends_with("-w-my-proj"));
        std::fs::write(proj.join(format!("{id}.jsonl")), "").unwrap();
        let day = roots.codex.join("2026/11/23");
        std::fs::create_dir_all(&day).unwrap();
        let cid = "01a208ed-6c51-7b12-90ed-4822e021b6a5";
        std::fs::write(day.join(format!("rollout-2026-11-23T15-01-47-{cid}.jsonl")), "").unwrap();

        assert_eq!(roots.find(id).unwrap(), (AgentKind::Claude, proj.join(format!("{id}.jsonl"))));
        let (kind, codex) = roots.find(cid).unwrap();
        assert_eq!(kind, AgentKind::Codex);
        assert_eq!(roots.validate(&codex).unwrap(), (AgentKind::Codex, cid.to_owned()));
        assert!(roots.find("00000000-0000-0000-0000-000000000000").is_none());
        assert_eq!(roots.newest_claude_in(Path::new("/w/my.proj")).unwrap().0, id);

        // Outside the roots, through `..`, or not a session name: refused.
        let outside = dir.path().join(format!("{id}.jsonl"));
        std::fs::write(&outside, "").unwrap();
        assert!(roots.validate(&outside).unwrap_err().contains("not inside"));
        let dotdot = proj.join(format!("../../../{id}.jsonl"));
        assert!(roots.validate(&dotdot).unwrap_err().contains("not inside"));
        assert!(roots.validate(&proj.join("notes.txt")).unwrap_err().contains("not a Claude Code or Codex"));
        let link = proj.join("11111111-1111-1111-1111-111111111111.jsonl");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(roots.validate(&link).unwrap_err().contains("symbolic link"));
    }

    /// Shared, then its directory swapped for a link to one outside the
    /// roots holding a file of the same name: the pinned open refuses it
    /// (Claude Code's project directory, and each of Codex's YYYY/MM/DD).
    #[test]
    fn a_directory_swapped_for_a_link_after_pinning_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let roots =
            SessionRoots { claude: dir.path().join("claude/projects"), codex: dir.path().join("codex/sessions") };
        let id = "c82a5d42-829f-4ee0-99c7-a5a4cd0fd679";
        let cid = "01a208ed-6c51-7b12-90ed-4822e021b6a5";
        let claude = roots.claude.join("-w").join(format!("{id}.jsonl"));
        let codex = roots.codex.join("2026/11/23").join(format!("rollout-2026-11-23T15-01-47-{cid}.jsonl"));
        let outside = dir.path().join("outside");
        for (file, swap) in [(&claude, 1), (&codex, 1), (&codex, 2), (&codex, 3)] {
            let _ = std::fs::remove_dir_all(&outside);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, "inside\n").unwrap();
            let (_, _, pinned) = roots.pin(file).unwrap();
            assert_eq!(std::io::read_to_string(pinned.open().unwrap()).unwrap(), "inside\n");

            // The directory `swap` levels up is moved away and a link to a
            // copy outside, with other content, takes its place.
            let swapped = file.ancestors().nth(swap).unwrap().to_path_buf();
            let moved = swapped.with_extension("moved");
            std::fs::rename(&swapped, &moved).unwrap();
            let relative = file.strip_prefix(&swapped).unwrap();
            std::fs::create_dir_all(outside.join(relative).parent().unwrap()).unwrap();
            std::fs::write(outside.join(relative), "MARKER outside\n").unwrap();
            std::os::unix::fs::symlink(&outside, &swapped).unwrap();
            assert_eq!(
                std::fs::read_to_string(file).unwrap(),
                "MARKER outside\n",
                "the link is followed by a path open"
            );
            let err = pinned.open().unwrap_err();
            assert!(err.to_string().contains("replaced by a link"), "{err}");

            // Put back: read again.
            std::fs::remove_file(&swapped).unwrap();
            std::fs::rename(&moved, &swapped).unwrap();
            assert_eq!(std::io::read_to_string(pinned.open().unwrap()).unwrap(), "inside\n");
        }
        // A missing file is "not found", as before it is written.
        std::fs::remove_file(&claude).unwrap();
        let (_, _, pinned) = roots.pin(&claude).unwrap();
        assert_eq!(pinned.open().unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
}
