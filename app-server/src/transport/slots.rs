//! Connection slots, shared by every listener (issue 18.4): at most
//! `Limits::max_connections` connections at once, of which the http
//! listener may hold only its share ([`http_share`]). The rest is the unix
//! socket's reserve: however many web clients connect (or half-connect),
//! the owner's CLI and TUI on the socket still get in — and, since the
//! server fits `max_connections` to the open-file limit, still find a file
//! descriptor to be served with.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections kept for the unix socket, past which http clients are refused.
pub const UNIX_RESERVE: usize = 64;

/// What the http listener may hold of `max` connections: all but
/// [`UNIX_RESERVE`], and at least half (so a small `--max-connections`
/// still leaves both listeners some).
pub fn http_share(max: usize) -> usize {
    max.saturating_sub(UNIX_RESERVE).max(max.div_ceil(2)).max(1)
}

/// Every listener's slots.
#[derive(Clone)]
pub struct Slots {
    all: Arc<Semaphore>,
    http: Arc<Semaphore>,
    max: usize,
}

/// One connection's place, given back when dropped.
pub struct Slot {
    _all: OwnedSemaphorePermit,
    _http: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots { all: Arc::new(Semaphore::new(max)), http: Arc::new(Semaphore::new(http_share(max))), max }
    }

    /// Connections served at once, all listeners together.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The most the http listener may hold.
    pub fn http_max(&self) -> usize {
        http_share(self.max)
    }

    /// A slot for a unix-socket (or stdio) client: any of them.
    pub fn unix(&self) -> Option<Slot> {
        let all = Arc::clone(&self.all).try_acquire_owned().ok()?;
        Some(Slot { _all: all, _http: None })
    }

    /// A slot for an http connection: one of the http share, and one of all.
    pub fn http(&self) -> Option<Slot> {
        let http = Arc::clone(&self.http).try_acquire_owned().ok()?;
        let all = Arc::clone(&self.all).try_acquire_owned().ok()?;
        Some(Slot { _all: all, _http: Some(http) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_never_takes_the_unix_reserve() {
        assert_eq!(http_share(1024), 960);
        assert_eq!(http_share(96), 48);
        assert_eq!(http_share(1), 1);
        let slots = Slots::new(100);
        let held: Vec<Slot> = std::iter::from_fn(|| slots.http()).collect();
        assert_eq!(held.len(), 50);
        let unix: Vec<Slot> = std::iter::from_fn(|| slots.unix()).collect();
        assert_eq!(unix.len(), 50);
        drop(unix);
        // The socket may use what http does not.
        let _u: Vec<Slot> = std::iter::from_fn(|| slots.unix()).collect();
        assert!(slots.http().is_none());
    }
}
