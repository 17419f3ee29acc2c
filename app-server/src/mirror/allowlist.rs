//! `$TANDEM_HOME/shared-sessions.json`: the one switch that says which agent
//! sessions are shared (`{version:1, sessions:{uuid:{filePath,servers[],sharedAt}}}`).
//! The CLI writes it (0600, temp + rename); the app-server only reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use tandem_home::{Access, Home, open_private, write_atomic};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "shared-sessions.json";

/// The destination of a session shared with the local app-server only.
pub const LOCAL: &str = "local";

/// What is shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allowlist {
    pub version: u32,
    #[serde(default)]
    pub sessions: BTreeMap<String, SharedSession>,
}

impl Default for Allowlist {
    fn default() -> Self {
        Allowlist { version: 1, sessions: BTreeMap::new() }
    }
}

/// One shared session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedSession {
    pub file_path: PathBuf,
    #[serde(default)]
    pub servers: Vec<String>,
    pub shared_at: String,
}

/// Why the allowlist could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid allowlist ({source}); fix or remove it")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{path} has version {version}; this tandem knows version 1")]
    Version { path: PathBuf, version: u32 },
}

/// Where the allowlist of `home` is.
pub fn path(home: &Home) -> PathBuf {
    home.dir().join(FILE_NAME)
}

/// Reads the allowlist; a missing file is an empty one.
pub fn read(file: &Path) -> Result<Allowlist, AllowlistError> {
    let io = |source| AllowlistError::Io { path: file.to_owned(), source };
    let mut f = match open_private(file, Access::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Allowlist::default()),
        Err(e) => return Err(io(e)),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(io)?;
    let list: Allowlist =
        serde_json::from_str(&text).map_err(|source| AllowlistError::Parse { path: file.to_owned(), source })?;
    if list.version != 1 {
        return Err(AllowlistError::Version { path: file.to_owned(), version: list.version });
    }
    Ok(list)
}

/// Replaces the allowlist atomically (0600).
pub fn write(file: &Path, list: &Allowlist) -> Result<(), AllowlistError> {
    let mut text = serde_json::to_string_pretty(list).expect("the allowlist always serializes");
    text.push('\n');
    write_atomic(file, text.as_bytes()).map_err(|source| AllowlistError::Io { path: file.to_owned(), source })
}
