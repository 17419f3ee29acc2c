//! What one peer address may cost the web listener: WebSockets open at once
//! (`Limits::max_connections_per_ip`), and wrong tokens. A wrong token is a
//! strike; strikes leak away at [`STRIKES_PER_SECOND`], and an address holding
//! [`STRIKE_BURST`] of them has its wrong tokens answered 429 until enough
//! have leaked. A valid token always gets in: tokens are 256 random bits, so
//! the throttle is there to bound the work and the log lines a guesser costs,
//! not to make guessing feasible-but-slow — and so that clients behind one
//! proxy address (or stale tabs with a revoked link) never lock the owner out.
//!
//! The address is the TCP peer's, an IPv6 one by its /64 (what one host is
//! usually given). Behind a reverse proxy on this machine (`--public-url`)
//! every client has the proxy's address: the web door then does not cap
//! sockets per address (see `web::rpc`).

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
    /// The map's size past which the next strike sweeps idle addresses out
    /// (doubled after each sweep, so sweeping stays amortised O(1)).
    sweep_at: Arc<std::sync::atomic::AtomicUsize>,
}

/// Addresses tracked at the most: past it, new addresses' strikes are not
/// recorded (their wrong tokens are still refused, 403).
const MAX_PEERS: usize = 1 << 16;
const FIRST_SWEEP: usize = 4096;

/// What an address is counted as: itself, or its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
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
        PerIp {
            peers: Arc::default(),
            max_sockets: max_sockets.max(1),
            sweep_at: Arc::new(std::sync::atomic::AtomicUsize::new(FIRST_SWEEP)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `ip` presented a token that is not valid here: one more strike, or
    /// `Err(wait)` when it already holds a full burst (how long until it may
    /// be told 403 again; the strike is not added).
    pub fn strike(&self, ip: IpAddr) -> Result<(), Duration> {
        use std::sync::atomic::Ordering;
        let ip = key(ip);
        let now = Instant::now();
        let mut peers = self.lock();
        // Forget addresses that went quiet, so the map cannot grow without
        // end; sweep again only once it has doubled.
        if peers.len() >= self.sweep_at.load(Ordering::Relaxed) {
            peers.retain(|_, p| {
                p.leak(now);
                !p.idle()
            });
            self.sweep_at.store((peers.len() * 2).max(FIRST_SWEEP), Ordering::Relaxed);
        }
        if peers.len() >= MAX_PEERS && !peers.contains_key(&ip) {
            return Ok(());
        }
        let peer = peers.entry(ip).or_default();
        peer.leak(now);
        if peer.strikes + 1.0 > STRIKE_BURST {
            let wait = (peer.strikes + 1.0 - STRIKE_BURST) / STRIKES_PER_SECOND;
            return Err(Duration::from_secs_f64(wait.max(0.0)));
        }
        peer.strikes += 1.0;
        Ok(())
    }

    /// A WebSocket slot for `ip`, or `None` when it has the most open.
    pub fn socket(&self, ip: IpAddr) -> Option<SocketSlot> {
        let ip = key(ip);
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
            assert!(per_ip.strike(IP).is_ok());
        }
        let wait = per_ip.strike(IP).unwrap_err();
        assert!(wait <= Duration::from_secs(2), "{wait:?}");
        assert!(per_ip.strike(OTHER).is_ok());
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let per_ip = PerIp::new(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _slot = per_ip.socket(a).unwrap();
        assert!(per_ip.socket(b).is_none());
        assert!(per_ip.socket(other).is_some());
    }

    #[test]
    fn the_map_of_addresses_stays_bounded() {
        let per_ip = PerIp::new(1);
        for i in 0..(MAX_PEERS as u32 + 10_000) {
            let _ = per_ip.strike(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert!(per_ip.lock().len() <= MAX_PEERS);
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
