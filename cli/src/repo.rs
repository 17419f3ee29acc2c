//! `tandem repo allow|deny|list`: which repositories' sessions may be shared
//! with which destination, kept in `config.toml` as
//! `[hubs."DEST"] allowed_repos = ["host/org/repo", …]` (`local` is this
//! machine's app-server). A repository is named by its `origin` remote,
//! normalized to `host/org/repo`, so every clone of it is the same one.

use std::path::Path;

use anyhow::Result;
use tandem_engine::config::{FileConfig, config_path};
use tandem_home::Home;

use crate::exit::{self, Fail};

/// The destination of sessions shared with the local app-server only.
pub const LOCAL: &str = "local";

/// `host/org/repo` from a git remote URL (scp-like, ssh://, https://, with
/// or without credentials, port or `.git`); `None` if it is not one.
pub fn normalize(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = if let Some((_, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?;
        let host = host.split(':').next()?;
        (host, path)
    } else if let Some((left, path)) = url.split_once(':') {
        // scp-like: [user@]host:org/repo
        if left.contains('/') {
            return None;
        }
        (left.rsplit('@').next()?, path)
    } else {
        // Already normalized (host/org/repo).
        let (host, path) = url.split_once('/')?;
        (host, path)
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if host.is_empty() || path.is_empty() || !path.contains('/') || path.split('/').any(|s| s.is_empty() || s == "..") {
        return None;
    }
    // Hosts, and the big forges' org and repo names, ignore case: one repository, one id.
    Some(format!("{host}/{path}").to_ascii_lowercase())
}

/// The repository a directory belongs to: its `origin`, normalized.
pub fn repo_of(dir: &Path) -> Result<String, Fail> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["remote", "get-url", "origin"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let url = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => {
            return Err(Fail::usage(format!(
                "{} is not in a git repository with an `origin` remote; only sessions of a repository can be shared (see `tandem repo allow`)",
                dir.display()
            )));
        }
    };
    normalize(&url).ok_or_else(|| Fail::usage(format!("cannot read the origin remote {url:?} as host/org/repo")))
}

/// The repositories allowed for `dest`.
pub fn allowed(home: &Home, dest: &str) -> Result<Vec<String>, Fail> {
    let cfg = FileConfig::read(&config_path(home)).map_err(|e| Fail::new(exit::FAILURE, e.to_string()))?;
    Ok(cfg.hubs.and_then(|mut h| h.remove(dest)).and_then(|h| h.allowed_repos).unwrap_or_default())
}

/// Replaces the `[hubs."DEST"]` table of config.toml (the rest of the file,
/// comments included, is kept), checked and written atomically, 0600.
pub fn set_allowed(home: &Home, dest: &str, repos: &[String]) -> Result<(), Fail> {
    let path = config_path(home);
    let fail = |m: String| Fail::new(exit::FAILURE, m);
    home.ensure().map_err(|e| fail(format!("cannot use {}: {e}", home.dir().display())))?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
    };
    FileConfig::read(&path).map_err(|e| fail(format!("{e}; fix it before changing the repository allowlist")))?;
    let header = format!("[hubs.{}]", quote(dest));
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skipping = t.replace(' ', "") == header.replace(' ', "");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !repos.is_empty() {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        let list: Vec<String> = repos.iter().map(|r| quote(r)).collect();
        out.push_str(&format!("{header}\nallowed_repos = [{}]\n", list.join(", ")));
    }
    FileConfig::parse(&path, &out).map_err(|e| fail(format!("internal: the new config.toml would not parse: {e}")))?;
    tandem_home::write_atomic(&path, out.as_bytes()).map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

/// A TOML basic string (JSON's escapes are TOML's).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The destination a `--hub` flag names.
pub fn destination(hub: Option<&str>) -> String {
    hub.map(|h| h.trim_end_matches('/').to_owned()).unwrap_or_else(|| LOCAL.to_owned())
}

/// `tandem repo allow|deny|list`.
pub fn run(cmd: crate::RepoCommand) -> Result<u8> {
    let home = Home::from_env();
    match cmd {
        crate::RepoCommand::Allow { repo, hub } => {
            let dest = destination(hub.as_deref());
            let repo = named(repo)?;
            let mut repos = allowed(&home, &dest)?;
            if repos.contains(&repo) {
                say!("{repo} is already allowed for {dest}");
            } else {
                repos.push(repo.clone());
                set_allowed(&home, &dest, &repos)?;
                say!("✓ {repo} allowed for {dest}");
            }
        }
        crate::RepoCommand::Deny { repo, hub } => {
            let dest = destination(hub.as_deref());
            let repo = named(repo)?;
            let mut repos = allowed(&home, &dest)?;
            let before = repos.len();
            repos.retain(|r| *r != repo);
            if repos.len() == before {
                say!("{repo} was not allowed for {dest}");
            } else {
                set_allowed(&home, &dest, &repos)?;
                say!(
                    "✓ {repo} no longer allowed for {dest} (sessions shared already stay shared: `tandem share unshare`)"
                );
            }
        }
        crate::RepoCommand::List { hub } => {
            let cfg = FileConfig::read(&config_path(&home)).map_err(|e| Fail::new(exit::FAILURE, e.to_string()))?;
            let want = hub.as_deref().map(|h| destination(Some(h)));
            for (dest, h) in cfg.hubs.unwrap_or_default() {
                if want.as_ref().is_some_and(|w| *w != dest) {
                    continue;
                }
                for repo in h.allowed_repos.unwrap_or_default() {
                    say!("{dest}\t{repo}");
                }
            }
        }
    }
    Ok(0)
}

/// The repository given, normalized, or the current directory's.
fn named(repo: Option<String>) -> Result<String, Fail> {
    match repo {
        Some(r) => normalize(&r)
            .ok_or_else(|| Fail::usage(format!("{r:?} is not a repository; give host/org/repo or a git remote URL"))),
        None => repo_of(
            &std::env::current_dir().map_err(|e| Fail::new(exit::FAILURE, format!("no current directory: {e}")))?,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn remotes_normalize_to_host_org_repo() {
        for url in [
            "git@github.com:acme/widgets.git",
            "https://github.com/acme/widgets",
            "https://user:secret@GitHub.com/acme/widgets.git/",
            "ssh://git@github.com:22/acme/widgets.git",
            "github.com/acme/widgets",
        ] {
            assert_eq!(normalize(url).as_deref(), Some("github.com/acme/widgets"), "{url}");
        }
        assert_eq!(normalize("https://gitlab.example/G/sub/r.git").as_deref(), Some("gitlab.example/g/sub/r"));
        for bad in ["", "widgets", "/local/path", "https://github.com/", "github.com/../x", "C:/x"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
