//! Event timestamps: RFC 3339, UTC, milliseconds (`2026-11-22T11:03:04.123Z`).
//! The fixed width makes text order equal time order, which the store's
//! `(thread, ts)` index relies on. Parsing accepts any offset.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Parses an RFC 3339 timestamp with any offset (`Z`, `+02:00`, …) and optional
/// fraction into milliseconds since the epoch (finer digits are truncated).
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let err = || {
        format!(
            "{s:?} is not an RFC 3339 timestamp; expected e.g. 2026-11-22T11:03:04Z or 2026-11-22T12:03:04.123+01:00"
        )
    };
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &b[r];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
        } else {
            Err(err())
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 60 {
        return Err(err());
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
        let digits = &b[start..i.min(start + 3)];
        millis = digits.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
        for _ in digits.len()..3 {
            millis *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(err());
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return Err(err()),
    };
    let sec = sec.min(59); // a leap second counts as the last second of its minute
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Ok(secs * 1000 + millis)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms (public domain), proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Parses `90s`, `30m`, `12h`, `7d` or `2w` into seconds (at least 1).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let err = || format!("{text:?} is not a duration; use a number and a unit, e.g. 90s, 30m, 12h, 7d or 2w");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!("{text:?}: it must be at least one second")),
        Some(s) if s <= 10 * 365 * 86_400 => Ok(s),
        _ => Err(format!("{text:?} is too long; at most ten years")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(1_795_000_984_123), "2026-11-18T11:23:04.123Z");
        assert_eq!(format_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parse_round_trips_and_honours_offsets() {
        for ms in [0, 1, 999, 1_795_000_984_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&format_millis(ms)).unwrap(), ms);
        }
        assert_eq!(
            parse_rfc3339("2026-11-18T12:23:04.123+01:00").unwrap(),
            parse_rfc3339("2026-11-18T11:23:04.123Z").unwrap()
        );
        assert_eq!(parse_rfc3339("2026-11-18T06:53:04-04:30").unwrap(), parse_rfc3339("2026-11-18T11:23:04Z").unwrap());
        assert_eq!(parse_rfc3339("2026-11-18T11:23:04.1239999Z").unwrap() % 1000, 123);
        assert_eq!(parse_rfc3339("2026-11-18T11:23:04.5Z").unwrap() % 1000, 500);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "yesterday",
            "2026-11-18",
            "2026-11-18T11:23:04",
            "2026-13-18T11:23:04Z",
            "2026-02-29T11:23:04Z",
            "2026-11-31T00:00:00Z",
            "2026-11-18T24:00:00Z",
            "2026-11-18T11:23:04.Z",
            "2026-11-18T11:23:04+0100",
            "2026-11-18T11:23:04Zjunk",
            "2026-1a-18T11:23:04Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "accepted {bad:?}");
        }
    }
}
