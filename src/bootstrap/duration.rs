//! Go duration strings (`5s`, `1m30s`, `250ms`, `1.5h`), as isp-kit's config
//! decodes `time.Duration` fields with Go's `time.ParseDuration`.
//!
//! The grammar is small enough that a crate would not earn its place: a
//! sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), optionally signed, or the
//! bare `0`. Go's limit holds too: at most `i64::MAX` nanoseconds (about
//! 292 years). A negative duration is refused: no timeout here can be one.

use std::fmt;
use std::time::Duration;

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(&'static str);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (a Go duration such as 5s, 1m30s or 250ms)", self.0)
    }
}

impl std::error::Error for DurationError {}

/// Go's largest duration, in nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// The fraction digits kept; more cannot change a nanosecond count below
/// Go's limit.
const MAX_FRACTION_DIGITS: u32 = 18;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string (Go: `time.ParseDuration`).
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(len)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(DurationError("a number is expected"));
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError("a unit is missing"));
        }
        let unit = unit_nanos(unit).ok_or(DurationError("unknown unit"))?;
        let whole = int_digits.bytes().try_fold(0u128, |acc, d| {
            let acc = acc * 10 + u128::from(d - b'0');
            (acc <= MAX_NANOS).then_some(acc)
        });
        let whole = whole.ok_or(DurationError("too large"))?;
        let mut nanos = whole.checked_mul(unit).filter(|n| *n <= MAX_NANOS);
        if let Some(n) = nanos.as_mut() {
            let kept = &frac_digits[..frac_digits.len().min(MAX_FRACTION_DIGITS as usize)];
            if !kept.is_empty() {
                let fraction: u128 = kept.parse().unwrap_or(0);
                *n += fraction * unit / 10u128.pow(kept.len() as u32);
            }
        }
        total = nanos
            .and_then(|n| total.checked_add(n))
            .filter(|t| *t <= MAX_NANOS)
            .ok_or(DurationError("too large"))?;
        rest = after;
    }
    if negative && total > 0 {
        return Err(DurationError("negative"));
    }
    let secs = (total / 1_000_000_000) as u64;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse_go_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn go_examples() {
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2h45m"), Duration::from_secs(9900));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("1h15m30.918273645s"), Duration::new(4530, 918_273_645));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("10μs"), Duration::from_micros(10));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
    }

    #[test]
    fn the_largest_go_duration_and_one_past_it() {
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            Duration::from_nanos(i64::MAX as u64)
        );
        assert_eq!(
            ok("9223372036854775807ns"),
            Duration::from_nanos(i64::MAX as u64)
        );
        for text in [
            "9223372036854775808ns",
            "2562048h",
            "99999999999999999999999999999s",
        ] {
            assert_eq!(
                parse_go_duration(text),
                Err(DurationError("too large")),
                "{text}"
            );
        }
    }

    #[test]
    fn what_go_refuses_is_refused_with_the_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("-", "empty"),
            ("5", "a unit is missing"),
            ("1m30", "a unit is missing"),
            ("5x", "unknown unit"),
            ("5 s", "unknown unit"),
            ("5S", "unknown unit"),
            ("s", "a number is expected"),
            (".s", "a number is expected"),
            ("1s.", "a number is expected"),
            ("-5s", "negative"),
        ] {
            assert_eq!(
                parse_go_duration(text),
                Err(DurationError(reason)),
                "{text:?}"
            );
        }
        let message = parse_go_duration("5x").unwrap_err().to_string();
        assert_eq!(
            message,
            "unknown unit (a Go duration such as 5s, 1m30s or 250ms)"
        );
    }
}
