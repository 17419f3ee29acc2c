//! Share ids and secrets: drawn from the OS's random source, secrets 256-bit
//! and kept only as SHA-256 hashes (a random 256-bit secret needs no slow
//! hash: there is nothing to guess), compared in constant time.

use ring::rand::{SecureRandom, SystemRandom};

/// Characters of share ids: lowercase base32 without look-alikes' confusion
/// mattering, since ids are copied, not typed.
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Characters in a share id: 60 bits, so ids (which are also read links)
/// cannot be enumerated.
pub const ID_LEN: usize = 12;

/// Why randomness failed (the OS refused; nothing to retry).
#[derive(Debug, thiserror::Error)]
#[error("the system's random source failed")]
pub struct RandomError;

fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf).map_err(|_| RandomError)?;
    Ok(buf)
}

/// A new share id.
pub fn new_id() -> Result<String, RandomError> {
    Ok(random::<ID_LEN>()?.iter().map(|b| ID_ALPHABET[usize::from(b & 31)] as char).collect())
}

/// Whether `id` could be a share id (checked before touching the store).
pub fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b))
}

/// A new secret: 32 random bytes as 64 hex digits.
pub fn new_secret() -> Result<String, RandomError> {
    Ok(random::<32>()?.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the store keeps of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// Whether `secret` hashes to `stored`, in time that does not depend on
/// where they differ.
pub fn matches(secret: &str, stored: &[u8]) -> bool {
    let given = hash(secret);
    if stored.len() != given.len() {
        return false;
    }
    given.iter().zip(stored).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets() {
        let a = new_id().unwrap();
        assert!(is_id(&a), "{a}");
        assert_ne!(a, new_id().unwrap());
        assert!(!is_id("short") && !is_id("ABCDEFGHIJKL") && !is_id("abcdefghijk/"));
        let s = new_secret().unwrap();
        assert_eq!(s.len(), 64);
        let h = hash(&s);
        assert!(matches(&s, &h));
        assert!(!matches(&format!("{s}0"), &h));
        assert!(!matches(&s, &[]), "a purged share's empty hash matches nothing");
    }
}
