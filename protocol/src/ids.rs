//! Thread and turn ids are UUIDs (v7 when the server makes them). The server
//! accepts any UUID in its canonical 8-4-4-4-12 form and stores it lowercase.

/// Checks that `s` is a UUID and returns it lowercase, or says what is accepted.
pub fn normalize_uuid(what: &str, s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let ok = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("{what} {s:?} is not a UUID; expected 36 characters like 0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_and_lowercases() {
        assert_eq!(
            normalize_uuid("thread id", "0192F0C2-7B4E-7C1A-9F2D-1A2B3C4D5E6F").unwrap(),
            "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f"
        );
    }

    #[test]
    fn rejects_others() {
        for bad in [
            "",
            "abc",
            "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6",
            "0192f0c2x7b4e-7c1a-9f2d-1a2b3c4d5e6f",
            "g192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f",
        ] {
            let err = normalize_uuid("thread id", bad).unwrap_err();
            assert!(err.contains("not a UUID"), "{err}");
        }
    }
}
