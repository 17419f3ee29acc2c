//! What one peer address may cost the web listener: WebSockets open at once
//! (`Limits::max_connections_per_ip`), and token guesses. A wrong token is a
//! strike; strikes leak away at [`STRIKES_PER_SECOND`], and an address holding
//! [`STRIKE_BURST`] of them is answered 429 before its token is even looked at
//! (so a right guess would not get through either) until enough have leaked.
//!
//! The address is the TCP peer's: behind a reverse proxy every client shares
//! the proxy's, so the connection cap should then be raised to the total.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Wrong tokens an address may present in a burst.
pub const STRIKE_BURST: f64 = 20.0;
/// How fast an address's strikes are forgiven.
pub const STRIKES_PER_SECOND: f64 = 1.0;

#[derive(Default)]
struct Peer {
    sockets: usize,
    strikes: f64,
    at: Option<Instant>,
}

impl Peer {
    /// Forgives what leaked since the last look.
    fn leak(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let gone = now.saturating_duration_since(at).as_secs_f64() * STRIKES_PER_SECOND;
            self.strikes = (self.strikes - gone).max(0.0);
        }
        self.at = Some(now);
    }

    fn idle(&self) -> bool {
        self.sockets == 0 && self.strikes <= 0.0
    }
}

/// Every address's count, shared by the listener's routes.
#[derive(Clone)]
pub struct PerIp {
    peers: Arc<Mutex<HashMap<IpAddr, Peer>>>,
    max_sockets: usize,
}

/// One WebSocket counted against its address until dropped.
pub struct SocketSlot {
    peers: Arc<Mutex<HashMap<IpAddr, Peer>>>,
    ip: IpAddr,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(peer) = peers.get_mut(&self.ip) {
            peer.sockets = peer.sockets.saturating_sub(1);
            peer.leak(Instant::now());
            if peer.idle() {
                peers.remove(&self.ip);
            }
        }
    }
}

impl PerIp {
    pub fn new(max_sockets: usize) -> PerIp {
        PerIp { peers: Arc::default(), max_sockets: max_sockets.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` while `ip` holds a full burst of strikes: how long until
    /// it may try a token again.
    pub fn may_try(&self, ip: IpAddr) -> Result<(), Duration> {
        let mut peers = self.lock();
        let Some(peer) = peers.get_mut(&ip) else { return Ok(()) };
        peer.leak(Instant::now());
        if peer.strikes + 1.0 > STRIKE_BURST {
            let wait = (peer.strikes + 1.0 - STRIKE_BURST) / STRIKES_PER_SECOND;
            return Err(Duration::from_secs_f64(wait.max(0.0)));
        }
        if peer.idle() {
            peers.remove(&ip);
        }
        Ok(())
    }

    /// `ip` presented a token that is not valid here.
    pub fn strike(&self, ip: IpAddr) {
        let mut peers = self.lock();
        let peer = peers.entry(ip).or_default();
        peer.leak(Instant::now());
        peer.strikes += 1.0;
        // Forget addresses that went quiet, so the map cannot grow without end.
        if peers.len() > 4096 {
            let now = Instant::now();
            peers.retain(|_, p| {
                p.leak(now);
                !p.idle()
            });
        }
    }

    /// A WebSocket slot for `ip`, or `None` when it has the most open.
    pub fn socket(&self, ip: IpAddr) -> Option<SocketSlot> {
        let mut peers = self.lock();
        let peer = peers.entry(ip).or_default();
        if peer.sockets >= self.max_sockets {
            return None;
        }
        peer.sockets += 1;
        Some(SocketSlot { peers: Arc::clone(&self.peers), ip })
    }

    pub fn max_sockets(&self) -> usize {
        self.max_sockets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn a_burst_of_wrong_tokens_stops_that_address_only() {
        let per_ip = PerIp::new(4);
        for _ in 0..STRIKE_BURST as usize {
            assert!(per_ip.may_try(IP).is_ok());
            per_ip.strike(IP);
        }
        let wait = per_ip.may_try(IP).unwrap_err();
        assert!(wait <= Duration::from_secs(2), "{wait:?}");
        assert!(per_ip.may_try(OTHER).is_ok());
    }

    #[test]
    fn sockets_are_counted_per_address_and_given_back() {
        let per_ip = PerIp::new(2);
        let a = per_ip.socket(IP).unwrap();
        let _b = per_ip.socket(IP).unwrap();
        assert!(per_ip.socket(IP).is_none());
        assert!(per_ip.socket(OTHER).is_some());
        drop(a);
        assert!(per_ip.socket(IP).is_some());
    }
}
