//! Where Tandem keeps things: everything under `$TANDEM_HOME` (default: the
//! platform data dir), created with mode 0700. `TANDEM_HOME` is also how tests
//! isolate themselves.
//!
//! Nothing here trusts what it finds: a directory must belong to the user and
//! not be writable by every user; files are opened without following
//! symlinks, must belong to the user, and are created (or narrowed to) 0600
//! whatever the umask. A server run as root must not be turned against
//! another user's files (or its own) by a link planted in a data directory.

pub mod lock;
pub mod logging;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

    /// Creates the directory (0700) and its `logs/`, or checks the ones that
    /// exist (see [`private_dir`]).
    pub fn ensure(&self) -> io::Result<()> {
        private_dir(&self.dir, true)?;
        private_dir(&self.logs_dir(), false)
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

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("refusing to use {}: {why}", path.display()))
}

/// Makes sure `dir` is a directory of ours that only we can use: creates it
/// (0700, parents too) if missing; refuses one owned by another user or
/// writable by every user, and (unless `follow` allows it, as for a data
/// directory the user linked elsewhere on purpose) one that is a symlink;
/// narrows a group-accessible one of ours to 0700.
pub fn private_dir(dir: &Path, follow: bool) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_symlink() && !follow => {
            return Err(refuse(dir, "it is a symbolic link; remove it (or point TANDEM_HOME elsewhere)"));
        }
        Ok(_) => {}
    }
    let m = std::fs::metadata(dir)?;
    if !m.is_dir() {
        return Err(refuse(dir, "it is not a directory"));
    }
    if m.uid() != euid() {
        return Err(refuse(
            dir,
            format!("it belongs to user {} and this is user {}; use a directory of your own", m.uid(), euid()),
        ));
    }
    if m.mode() & 0o002 != 0 {
        return Err(refuse(
            dir,
            format!(
                "every user can write to it (mode {:o}); run `chmod 700 {}` or use another directory",
                m.mode() & 0o7777,
                dir.display()
            ),
        ));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// How [`open_private`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write, created if missing, kept as it is.
    ReadWrite,
    /// Appended to, created if missing.
    Append,
    /// Only read; must exist.
    Read,
}

/// Opens a file of a data directory: never through a symlink, only if it is
/// ours, created 0600 and narrowed to 0600 if it was wider.
pub fn open_private(path: &Path, access: Access) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    match access {
        Access::ReadWrite => opts.read(true).write(true).create(true),
        Access::Append => opts.append(true).create(true),
        Access::Read => opts.read(true),
    };
    let file = opts.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refuse(path, "it is a symbolic link; remove it, Tandem does not follow links in its data directory")
        } else {
            e
        }
    })?;
    let m = file.metadata()?;
    if !m.is_file() {
        return Err(refuse(path, "it is not a regular file"));
    }
    if m.uid() != euid() {
        return Err(refuse(path, format!("it belongs to user {}, not to this user ({})", m.uid(), euid())));
    }
    if access != Access::Read && m.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Replaces a data-directory file at once: writes a 0600 temporary file
/// beside it (never through a link), syncs it, and renames it over `path`, so
/// a reader sees the old content or the new, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(name);
    let result = (|| {
        let mut file = open_private(&tmp, Access::ReadWrite)?;
        file.set_len(0)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A 64-bit FNV-1a hash: short stable names derived from paths (not for secrets).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_wide_modes_are_refused_or_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_private(&link, Access::Append).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

        let wide = dir.path().join("wide");
        std::fs::write(&wide, "").unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o666)).unwrap();
        open_private(&wide, Access::ReadWrite).unwrap();
        assert_eq!(std::fs::metadata(&wide).unwrap().mode() & 0o777, 0o600);

        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&open, true).unwrap_err();
        assert!(e.to_string().contains("every user can write"), "{e}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o750)).unwrap();
        private_dir(&open, true).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o700);
        let dlink = dir.path().join("dlink");
        std::os::unix::fs::symlink(&open, &dlink).unwrap();
        assert!(private_dir(&dlink, false).is_err());
        private_dir(&dlink, true).unwrap();
    }

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
