//! `tandem plugin install claude|codex`: puts the share command where the
//! agent looks for it — Claude Code's user commands
//! (`${CLAUDE_CONFIG_DIR:-~/.claude}/commands/share.md`, `/share`; Claude Code
//! substitutes `${CLAUDE_SESSION_ID}` in it and refuses shell expansions in
//! its `!` commands) and a Codex skill
//! (`${CODEX_HOME:-~/.codex}/skills/tandem-share/SKILL.md`, `$tandem-share`:
//! codex 0.169 lists skills from there; it has no custom-prompt directory).
//! Both were checked against the real CLIs. The files are the ones in
//! `plugins/`, built into the binary.

use std::path::PathBuf;

use anyhow::Result;

use crate::exit::{self, Fail};

const CLAUDE_SHARE: &str = include_str!("../../plugins/claude-code/commands/share.md");
const CODEX_SHARE: &str = include_str!("../../plugins/codex/skills/tandem-share/SKILL.md");

/// Which agent to install the command for.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PluginAgent {
    Claude,
    Codex,
}

/// `tandem plugin install AGENT`.
pub fn install(agent: PluginAgent) -> Result<u8> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (dir, name, text, how) = match agent {
        PluginAgent::Claude => (
            var("CLAUDE_CONFIG_DIR").unwrap_or_else(|| home.join(".claude")).join("commands"),
            "share.md",
            CLAUDE_SHARE,
            "in Claude Code, type /share",
        ),
        PluginAgent::Codex => (
            var("CODEX_HOME").unwrap_or_else(|| home.join(".codex")).join("skills/tandem-share"),
            "SKILL.md",
            CODEX_SHARE,
            "in Codex, type $tandem-share or ask it to share this session",
        ),
    };
    let fail = |e: std::io::Error, p: &std::path::Path| Fail::new(exit::FAILURE, format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&dir).map_err(|e| fail(e, &dir))?;
    let file = dir.join(name);
    if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Fail::new(exit::FAILURE, format!("{} is a symbolic link; remove it first", file.display())).into());
    }
    let tmp = dir.join(format!(".{name}.tandem-tmp"));
    std::fs::write(&tmp, text).map_err(|e| fail(e, &tmp))?;
    std::fs::rename(&tmp, &file).map_err(|e| fail(e, &file))?;
    say!("✓ Installed {} ({how})", file.display());
    Ok(0)
}
