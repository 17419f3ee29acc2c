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

/// The fewest characters of an id shown or accepted as its prefix.
pub const MIN_PREFIX: usize = 8;

/// The fewest hex digits a typed prefix may have (like git's 4).
pub const MIN_TYPED_PREFIX: usize = 4;

/// An id as a person typed it: a whole UUID, or the start of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdQuery {
    /// A whole UUID, normalized.
    Full(String),
    /// The start of one: lowercase hex digits, hyphens dropped.
    Prefix(String),
}

impl IdQuery {
    /// Parses a whole id or a prefix of at least [`MIN_TYPED_PREFIX`] hex
    /// digits (hyphens anywhere are ignored); `what` names it in the error.
    pub fn parse(what: &str, s: &str) -> Result<IdQuery, String> {
        let s = s.trim();
        if let Ok(full) = normalize_uuid(what, s) {
            return Ok(IdQuery::Full(full));
        }
        let hex: String = s.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
        if hex.len() >= MIN_TYPED_PREFIX && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(IdQuery::Prefix(hex));
        }
        Err(format!(
            "{what} {s:?} is neither an id nor the start of one; give the whole id \
             (like 0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f) or at least its first {MIN_TYPED_PREFIX} hex digits"
        ))
    }

    /// Whether `id` is what this names.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            IdQuery::Full(full) => id.eq_ignore_ascii_case(full),
            IdQuery::Prefix(hex) => {
                let mut digits = id.chars().filter(|c| *c != '-').map(|c| c.to_ascii_lowercase());
                hex.chars().all(|h| digits.next() == Some(h))
            }
        }
    }
}

impl std::fmt::Display for IdQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdQuery::Full(s) | IdQuery::Prefix(s) => f.write_str(s),
        }
    }
}

/// The shortest start of `id` (at least [`MIN_PREFIX`] characters, never
/// ending on a hyphen) that none of `others` shares, like git's short hashes.
/// UUID v7s begin with their creation time, so ids made close together need
/// a few more characters; `id` itself among `others` is ignored.
pub fn unique_prefix<'a>(id: &'a str, others: impl IntoIterator<Item = &'a str>) -> &'a str {
    // The longest start `id` shares with any other decides the length.
    let shared = others
        .into_iter()
        .filter(|o| *o != id)
        .map(|o| id.bytes().zip(o.bytes()).take_while(|(a, b)| a.eq_ignore_ascii_case(b)).count())
        .max()
        .unwrap_or(0);
    let mut len = (shared + 1).max(MIN_PREFIX).min(id.len());
    while len < id.len() && (id.as_bytes()[len - 1] == b'-' || !id.is_char_boundary(len)) {
        len += 1;
    }
    &id[..len]
}

/// [`unique_prefix`] of every id among `ids`, in the same order, without
/// comparing every pair: the longest start an id shares with another is
/// shared with one of its neighbours in sorted order.
pub fn unique_prefixes<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_unstable();
    ids.iter()
        .map(|id| {
            let i = sorted.binary_search(id).unwrap_or(0);
            let neighbours = [i.checked_sub(1), Some(i + 1)].into_iter().flatten().filter_map(|j| sorted.get(j));
            unique_prefix(id, neighbours.copied())
        })
        .collect()
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
    fn unique_prefixes_grow_only_as_far_as_needed() {
        let a = "01a20853-7b4e-7c1a-9f2d-1a2b3c4d5e6f";
        let b = "01a20853-7c00-7c1a-9f2d-1a2b3c4d5e6f";
        let c = "01a20999-0000-7000-8000-000000000000";
        assert_eq!(unique_prefix(a, [a]), "01a20853");
        assert_eq!(unique_prefix(c, [a, b, c]), "01a20999");
        // The 9th character is a hyphen: never end on it.
        assert_eq!(unique_prefix(a, [a, b, c]), "01a20853-7b");
        assert_eq!(unique_prefix(b, [a, b]), "01a20853-7c");
        assert_eq!(unique_prefix("short", ["shorter"]), "short");
        assert_eq!(
            unique_prefixes(&[c, a, b]),
            [unique_prefix(c, [a, b]), unique_prefix(a, [b, c]), unique_prefix(b, [a, c])]
        );
    }

    #[test]
    fn queries_are_whole_ids_or_hex_prefixes() {
        let id = "01a20853-7b4e-7c1a-9f2d-1a2b3c4d5e6f";
        assert_eq!(IdQuery::parse("--thread", &id.to_uppercase()).unwrap(), IdQuery::Full(id.into()));
        for typed in ["01a2", "01A20853-7b", "01a208537b4e7c"] {
            let q = IdQuery::parse("--thread", typed).unwrap();
            assert!(matches!(q, IdQuery::Prefix(_)), "{typed}");
            assert!(q.matches(id), "{typed}");
        }
        assert!(!IdQuery::parse("--thread", "01a20853-7c").unwrap().matches(id));
        for bad in ["", "01a", "xyz12345", "01a2 0853", "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f0"] {
            let err = IdQuery::parse("--thread", bad).unwrap_err();
            assert!(err.contains("neither an id nor the start of one"), "{bad}: {err}");
        }
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
