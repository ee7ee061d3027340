//! Times on the command line: RFC 3339 in and out, durations such as `90d` or `1h30m`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tresor::Timestamp;

/// Now, by the system clock (the clock the vault is opened with).
pub fn now() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Timestamp::from_unix(secs)
}

/// A time as RFC 3339 in UTC (`2026-01-31T12:00:00Z`); `@<seconds>` when out of range.
pub fn rfc3339(t: Timestamp) -> String {
    match jiff::Timestamp::from_second(t.unix()) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("@{}", t.unix()),
    }
}

/// A duration: one or more `<number><unit>` with units `s`, `m`, `h`, `d`, `w` (`90d`, `1h30m`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    (any && digits.is_empty()).then_some(Duration::from_secs(total))
}

/// A point in time: RFC 3339 (`2026-01-31T12:00:00Z`, any offset), a date (`2026-01-31`,
/// midnight UTC), or a duration from now (`90d`).
pub fn parse_when(s: &str, now: Timestamp) -> Option<Timestamp> {
    if let Some(d) = parse_duration(s) {
        return Some(now.plus(d));
    }
    if let Ok(ts) = s.trim().parse::<jiff::Timestamp>() {
        return Some(Timestamp::from_unix(ts.as_second()));
    }
    // Only a bare date: jiff would also read the date out of a time without an offset, which
    // is ambiguous and refused.
    let s = s.trim();
    if s.len() != 10 {
        return None;
    }
    let date = s.parse::<jiff::civil::Date>().ok()?;
    let zoned = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(Timestamp::from_unix(zoned.timestamp().as_second()))
}

/// A short "in 3d" / "2h ago" for humans.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = t.unix().saturating_sub(now.unix());
    let abs = delta.unsigned_abs();
    // Rounded to the nearest unit: a purge due in 6 days 23 hours reads "in 7d".
    let round = |unit: u64| (abs + unit / 2) / unit;
    let text = if abs >= 86_400 {
        format!("{}d", round(86_400))
    } else if abs >= 3_600 {
        format!("{}h", round(3_600))
    } else if abs >= 60 {
        format!("{}m", round(60))
    } else {
        format!("{abs}s")
    };
    if delta >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90d"),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
        for bad in ["", "90", "d", "1x", "1.5h", "-1d", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn points_in_time() {
        let now = Timestamp::from_unix(1_000);
        assert_eq!(parse_when("1m", now), Some(Timestamp::from_unix(1_060)));
        assert_eq!(
            parse_when("2026-01-31T12:00:00Z", now),
            Some(Timestamp::from_unix(1_769_860_800))
        );
        assert_eq!(
            parse_when("2026-01-31T13:00:00+01:00", now),
            Some(Timestamp::from_unix(1_769_860_800))
        );
        assert_eq!(
            parse_when("2026-01-31", now),
            Some(Timestamp::from_unix(1_769_817_600))
        );
        assert_eq!(parse_when("tomorrow", now), None);
        assert_eq!(parse_when("2026-01-31T12:00:00", now), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(
            rfc3339(Timestamp::from_unix(1_769_860_800)),
            "2026-01-31T12:00:00Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix(i64::MAX)),
            format!("@{}", i64::MAX)
        );
        let now = Timestamp::from_unix(100_000);
        assert_eq!(
            relative(Timestamp::from_unix(100_000 + 3 * 86_400), now),
            "in 3d"
        );
        assert_eq!(
            relative(Timestamp::from_unix(100_000 - 7_200), now),
            "2h ago"
        );
        let almost_a_week = 7 * 86_400 - 60;
        assert_eq!(
            relative(Timestamp::from_unix(100_000 + almost_a_week), now),
            "in 7d"
        );
        assert_eq!(relative(Timestamp::from_unix(100_000 + 30), now), "in 30s");
    }
}
