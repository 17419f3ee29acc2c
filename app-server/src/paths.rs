//! Where Tandem keeps things: everything under `$TANDEM_HOME` (default: the
//! platform data dir), created with mode 0700. `TANDEM_HOME` is also how tests
//! isolate themselves.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest socket path we use directly (the OS limit is ~107 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// A Tandem data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// `$TANDEM_HOME`, else `$XDG_DATA_HOME/tandem`, else `~/.local/share/tandem`.
    pub fn from_env() -> Home {
        let dir = match std::env::var_os("TANDEM_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
                Some(d) => PathBuf::from(d).join("tandem"),
                None => {
                    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
                    home.join(".local/share/tandem")
                }
            },
        };
        Home::at(dir)
    }

    /// A data directory at `dir` (made absolute against the current directory).
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        let dir = dir.into();
        let dir = if dir.is_absolute() { dir } else { std::env::current_dir().map(|c| c.join(&dir)).unwrap_or(dir) };
        Home { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (0700) and its `logs/`.
    pub fn ensure(&self) -> io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(self.logs_dir())?;
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("tandem.db")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("app-server.lock")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// The default socket: `app-server.sock` in the data dir, or — when that
    /// path is too long for the OS — a short one under `$XDG_RUNTIME_DIR` (or
    /// `/tmp/tandem-$UID/`) named after a hash of the data dir, so every client
    /// derives the same path.
    pub fn socket_path(&self) -> PathBuf {
        let direct = self.dir.join("app-server.sock");
        if direct.as_os_str().len() <= MAX_SOCKET_PATH {
            return direct;
        }
        self.short_socket_dir().join(format!("{:016x}.sock", fnv1a(self.dir.as_os_str().as_encoded_bytes())))
    }

    /// Where long-path sockets live (create it 0700 before binding).
    pub fn short_socket_dir(&self) -> PathBuf {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d).join("tandem"),
            // SAFETY: getuid has no preconditions and cannot fail.
            None => PathBuf::from(format!("/tmp/tandem-{}", unsafe { libc::getuid() })),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_homes_keep_the_socket_inside() {
        let h = Home::at("/tmp/x");
        assert_eq!(h.socket_path(), PathBuf::from("/tmp/x/app-server.sock"));
    }

    #[test]
    fn long_homes_get_a_short_stable_socket() {
        let long = format!("/tmp/{}", "d".repeat(120));
        let h = Home::at(&long);
        let s = h.socket_path();
        assert!(s.as_os_str().len() <= 107, "{}", s.display());
        assert_eq!(s, Home::at(&long).socket_path());
        assert_ne!(s, Home::at(format!("{long}e")).socket_path());
    }
}
