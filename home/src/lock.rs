//! One server per data directory: an exclusive `flock` on `app-server.lock`,
//! held for the server's life, with the holder's pid written inside. The kernel
//! drops the lock when the process dies, so a kill -9 never leaves it stuck.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another app-server{} is already running for this data directory (lock {path})", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { pid: Option<u32>, path: String },
    #[error("cannot open lock file {path}: {source}")]
    Io { path: String, source: io::Error },
}

impl DataLock {
    /// Takes the lock without waiting and records our pid in it.
    pub fn acquire(path: &Path) -> Result<DataLock, LockError> {
        let io_err = |source| LockError::Io { path: path.display().to_string(), source };
        let mut file = crate::open_private(path, crate::Access::ReadWrite).map_err(io_err)?;
        // `holder` probes with a brief shared lock; a few quick retries keep
        // such a probe from passing for a running server.
        let mut tries = 0;
        loop {
            // SAFETY: flock on a file descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io_err(err));
            }
            tries += 1;
            if tries == 5 {
                return Err(LockError::Held { pid: read_pid(&mut file), path: path.display().to_string() });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        file.flush().map_err(io_err)?;
        Ok(DataLock { _file: file })
    }

    /// The pid recorded by the server holding the lock, if one holds it now.
    pub fn holder(path: &Path) -> Option<u32> {
        let mut file = crate::open_private(path, crate::Access::Read).ok()?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        if rc == 0 {
            // We could lock it: nobody holds it.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return None;
        }
        read_pid(&mut file)
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app-server.lock");
        let held = DataLock::acquire(&path).unwrap();
        assert_eq!(DataLock::holder(&path), Some(std::process::id()));
        // flock locks belong to the open file description, so a second open in
        // the same process conflicts just as another process would.
        match DataLock::acquire(&path) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(held);
        assert_eq!(DataLock::holder(&path), None);
        DataLock::acquire(&path).unwrap();
    }
}
