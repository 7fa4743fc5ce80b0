//! Wall-clock times as the text that leaves the process (the status JSON,
//! the health report), without a date crate: one conversion from
//! `SystemTime` to the UTC calendar, which both formats build on.

use std::time::{SystemTime, UNIX_EPOCH};

/// A `SystemTime` in UTC, to the millisecond (times before 1970 read as
/// 1970-01-01T00:00:00Z).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u64,
    pub(crate) minute: u64,
    pub(crate) second: u64,
    pub(crate) millis: u32,
}

impl Utc {
    pub(crate) fn of(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
        Self {
            year,
            month,
            day,
            hour: rem / 3_600,
            minute: rem % 3_600 / 60,
            second: rem % 60,
            millis: since.subsec_millis(),
        }
    }

    /// `2026-12-01T09:28:23` (no fraction, no zone).
    pub(crate) fn date_time(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-01T09:28:23.123Z`):
/// the status JSON's and the health report's times (as isp-kit writes
/// them) and the JSON log's `ts` (zap's `ISO8601TimeEncoder`, the same
/// text).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let utc = Utc::of(time);
    format!("{}.{:03}Z", utc.date_time(), utc.millis)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        let at = |secs: u64, ms: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_117_303, 123), "2026-12-01T09:28:23.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    use std::time::Duration;

    #[test]
    fn known_instants() {
        let at = |secs: u64, ms: u64| Utc::of(UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms));
        assert_eq!(at(0, 0).date_time(), "1970-01-01T00:00:00");
        assert_eq!(at(951_782_400, 999).date_time(), "2000-02-29T00:00:00");
        assert_eq!(at(951_782_400, 999).millis, 999);
        assert_eq!(at(1_796_117_303, 120).date_time(), "2026-12-01T09:28:23");
    }
}
