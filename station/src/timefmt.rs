//! Wall-clock times as the station stores and shows them.
//!
//! The store keeps Unix milliseconds (integers sort and compare cheaply in SQLite); people see RFC 3339 UTC with
//! milliseconds. `--since` accepts an RFC 3339 time or a duration back from now (`10m`, `2h 30m`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub fn to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// `2026-11-22T10:00:00.123Z`.
pub fn format_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(from_ms(ms)).to_string()
}

/// Human duration, rounded to seconds: `3m 12s`.
pub fn format_age(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// Parses `--since`: RFC 3339 (`2026-11-22T10:00:00Z`, `2026-11-22 10:00:00`), a duration ago (`10m`, `1h`), or
/// Unix seconds. Returns Unix milliseconds.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(to_ms(time));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = text.parse().map_err(|_| format!("{text:?} is too large"))?;
        return secs.checked_mul(1000).ok_or_else(|| format!("{text:?} is too large"));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(now_ms.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err(format!(
            "{text:?} is not a time: give an RFC 3339 time (2026-11-22T10:00:00Z), Unix seconds, or a duration \
             back from now (10m, 2h)"
        )),
    }
}

/// Parses a duration flag such as `5s`, `500ms`, `1m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); use e.g. 5s, 500ms or 1m"))?;
    if duration.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        let ms = 1_795_000_000_123;
        assert_eq!(parse_since(&format_ms(ms), 0), Ok(ms));
    }

    #[test]
    fn since_forms() {
        let now = 10_000_000;
        assert_eq!(parse_since("10s", now), Ok(now - 10_000));
        assert_eq!(parse_since("1m 5s", now), Ok(now - 65_000));
        assert_eq!(parse_since("1700000000", now), Ok(1_700_000_000_000));
        assert_eq!(parse_since("1970-01-01 00:00:01", now), Ok(1000));
        assert!(parse_since("yesterday-ish", now).is_err());
        assert!(parse_since("", now).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert_eq!(format_age(65_400), "1m 5s");
    }
}
