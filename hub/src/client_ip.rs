//! Which client a request comes from, for the per-client limit on creating
//! shares. It is the TCP peer, unless the peer is a reverse proxy this hub
//! was told to trust (`--trusted-proxy`); then it is the right-most address
//! of `X-Forwarded-For` that is not itself a trusted proxy. Each proxy
//! appends the address it got the request from, so that entry is the last
//! one a trusted party wrote; whatever lies left of it the client may have
//! made up. A header from a peer that is not trusted is ignored: anyone can
//! send one.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An address or a network: `10.0.0.0/8`, `fd00::/8`, `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

/// Why a `--trusted-proxy` value is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCidr {
    #[error("{0:?} is not an IP address (expected e.g. 10.0.0.1, 10.0.0.0/8 or fd00::/8)")]
    Address(String),
    #[error("{0:?} is not a prefix length for this address (IPv4: 0 to 32, IPv6: 0 to 128)")]
    Prefix(String),
}

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(text: &str) -> Result<Cidr, BadCidr> {
        let text = text.trim();
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let net = IpAddr::from_str(addr).map_err(|_| BadCidr::Address(addr.to_owned()))?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b.parse::<u8>().ok().filter(|&b| b <= max).ok_or_else(|| BadCidr::Prefix(b.to_owned()))?,
        };
        Ok(Cidr { net, bits })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix(u32::from(net).into(), u32::from(ip).into(), self.bits, 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix(u128::from(net), u128::from(ip), self.bits, 128),
            _ => false,
        }
    }
}

/// Whether the first `bits` of `a` and `b` (numbers of `width` bits) agree.
fn prefix(a: u128, b: u128, bits: u8, width: u8) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = u32::from(width - bits);
    (a >> shift) == (b >> shift)
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(proxies: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(proxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request from `peer` whose `X-Forwarded-For` header
    /// lines are `forwarded`, in the order received.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = forwarded.flat_map(|line| line.split(',')).map(str::trim).collect();
        for hop in hops.into_iter().rev() {
            // Something that is not an address was written by the client or
            // a broken proxy: the last trusted hop is all that is known.
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = IpAddr::from_str(hop).ok().or_else(|| SocketAddr::from_str(hop).ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert_eq!("192.168.1.0/24".parse::<Cidr>().unwrap().to_string(), "192.168.1.0/24");
    }

    #[test]
    fn bad_networks_say_why() {
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(BadCidr::Prefix("33".into())));
        assert_eq!("::/129".parse::<Cidr>(), Err(BadCidr::Prefix("129".into())));
        assert_eq!("300.1.1.1".parse::<Cidr>(), Err(BadCidr::Address("300.1.1.1".into())));
        assert_eq!("proxy.local".parse::<Cidr>(), Err(BadCidr::Address("proxy.local".into())));
        assert_eq!("10.0.0.0/x".parse::<Cidr>(), Err(BadCidr::Prefix("x".into())));
        assert!("".parse::<Cidr>().is_err());
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("203.0.113.5"), ["1.2.3.4"].into_iter()), ip("203.0.113.5"));
        let t = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(t.client(ip("203.0.113.5"), ["1.2.3.4"].into_iter()), ip("203.0.113.5"), "peer not trusted");
        assert_eq!(t.client(ip("127.0.0.1"), ["1.2.3.4"].into_iter()), ip("1.2.3.4"));
        assert_eq!(t.client(ip("::ffff:127.0.0.1"), ["1.2.3.4"].into_iter()), ip("1.2.3.4"));
        assert_eq!(t.client(ip("127.0.0.1"), std::iter::empty()), ip("127.0.0.1"), "no header: the proxy itself");
    }

    #[test]
    fn the_right_most_address_not_trusted_is_the_client() {
        let t = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // What the client wrote (left) does not count past a proxy's entry.
        assert_eq!(t.client(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.9"].into_iter()), ip("198.51.100.9"));
        assert_eq!(t.client(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.9, 10.1.1.1"].into_iter()), ip("198.51.100.9"));
        assert_eq!(t.client(ip("127.0.0.1"), ["6.6.6.6", "198.51.100.9 , 10.1.1.1"].into_iter()), ip("198.51.100.9"));
        assert_eq!(t.client(ip("127.0.0.1"), ["10.2.2.2, 10.1.1.1"].into_iter()), ip("10.2.2.2"), "all trusted");
        assert_eq!(t.client(ip("127.0.0.1"), ["[2001:db8::1]:443, 198.51.100.9:5000"].into_iter()), ip("198.51.100.9"));
        assert_eq!(t.client(ip("127.0.0.1"), ["2001:db8::1"].into_iter()), ip("2001:db8::1"));
        assert_eq!(
            t.client(ip("127.0.0.1"), ["junk, 10.1.1.1"].into_iter()),
            ip("10.1.1.1"),
            "junk: the last known hop"
        );
        assert_eq!(t.client(ip("127.0.0.1"), [""].into_iter()), ip("127.0.0.1"));
    }
}
