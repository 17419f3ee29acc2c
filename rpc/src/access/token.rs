//! Secrets: made from the OS's random source, kept only as SHA-256 hashes,
//! compared in constant time. Nothing here logs or formats a secret.

use std::io::Read;

use sha2::{Digest, Sha256};

/// Bytes of randomness in a secret (256 bits).
const SECRET_BYTES: usize = 32;

/// A fresh secret as lowercase hex (64 characters: safe in a URL fragment, a
/// header, and a WebSocket subprotocol name).
pub fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// A short random id (for links: 16 hex characters).
pub fn new_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// The SHA-256 of a secret, as hex: what is stored instead of it.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored`, without an early exit on the first
/// differing byte.
pub fn matches(secret: &str, stored: &str) -> bool {
    let h = hash(secret);
    let (a, b) = (h.as_bytes(), stored.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_only_their_hash_matches() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let stored = hash(&a);
        assert_ne!(stored, a);
        assert!(matches(&a, &stored));
        assert!(!matches(&b, &stored));
        assert!(!matches("", &stored));
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
