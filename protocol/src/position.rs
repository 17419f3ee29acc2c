//! `from`: where in a thread's log to start reading — a seq or a point in time.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::time::parse_rfc3339;

/// A place in a thread's log: a seq (≥ 1, inclusive) or the first event at or
/// after an RFC 3339 instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Seq(u64),
    /// The instant as given and as milliseconds since the epoch (UTC).
    Time {
        text: String,
        millis: i64,
    },
}

/// The largest seq there can be (the store keeps seqs as SQLite integers).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// What `from` accepts, for error messages.
pub const POSITION_ACCEPTED: &str = "a seq (an integer >= 1) or an RFC 3339 timestamp such as 2026-11-22T11:03:04Z";

impl Position {
    /// Parses what a user typed: digits are a seq, anything else a timestamp.
    pub fn parse(s: &str) -> Result<Position, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u64>() {
                Ok(0) | Err(_) => Err(format!("from {s:?} is out of range; expected {POSITION_ACCEPTED}")),
                Ok(n) if n > MAX_SEQ => Err(format!("from {s:?} is out of range; expected {POSITION_ACCEPTED}")),
                Ok(n) => Ok(Position::Seq(n)),
            };
        }
        match parse_rfc3339(s) {
            Ok(millis) => Ok(Position::Time { text: s.to_owned(), millis }),
            Err(_) => Err(format!("from {s:?} is not valid; expected {POSITION_ACCEPTED}")),
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Seq(n) => write!(f, "{n}"),
            Position::Time { text, .. } => f.write_str(text),
        }
    }
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Position::Seq(n) => s.serialize_u64(*n),
            Position::Time { text, .. } => s.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Position;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(POSITION_ACCEPTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Position, E> {
                if n == 0 || n > MAX_SEQ {
                    Err(E::custom(format!("from {n} is out of range; expected {POSITION_ACCEPTED}")))
                } else {
                    Ok(Position::Seq(n))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Position, E> {
                if n < 1 {
                    Err(E::custom(format!("from {n} is out of range; expected {POSITION_ACCEPTED}")))
                } else {
                    self.visit_u64(n as u64)
                }
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Position, E> {
                Err(E::custom(format!("from {n} is not valid; expected {POSITION_ACCEPTED}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Position, E> {
                match parse_rfc3339(s) {
                    Ok(millis) => Ok(Position::Time { text: s.to_owned(), millis }),
                    Err(_) => Err(E::custom(format!("from {s:?} is not valid; expected {POSITION_ACCEPTED}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_text() {
        assert_eq!(Position::parse("42").unwrap(), Position::Seq(42));
        assert!(matches!(Position::parse("2026-11-22T11:03:04Z").unwrap(), Position::Time { .. }));
        for bad in ["0", "-3", "1.5", "soon", "", "99999999999999999999999", "9223372036854775808"] {
            assert!(Position::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn deserializes_json() {
        let p: Position = serde_json::from_str("7").unwrap();
        assert_eq!(p, Position::Seq(7));
        let p: Position = serde_json::from_str("\"2026-11-22T12:03:04+01:00\"").unwrap();
        assert!(
            matches!(p, Position::Time { millis, .. } if millis == crate::time::parse_rfc3339("2026-11-22T11:03:04Z").unwrap())
        );
        for bad in ["0", "-1", "1.5", "\"x\"", "true", "null", "[1]", "18446744073709551615"] {
            let err = serde_json::from_str::<Position>(bad).unwrap_err().to_string();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }
}
