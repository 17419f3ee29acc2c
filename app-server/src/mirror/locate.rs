//! Where Claude Code and Codex keep their sessions, and which files are
//! session files: `${CLAUDE_CONFIG_DIR:-~/.claude}/projects/<cwd>/<uuid>.jsonl`
//! and `${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-…-<uuid>.jsonl`.
//! Finding a session lists directory names only; it never opens a session.

use std::path::{Path, PathBuf};

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
        Ok((kind, id))
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
}
