//! A bound on a log line that repeats: the same text again within
//! [`REPEAT_INTERVAL`] is held back (logged at debug), and the next line
//! shown says how many were.
//!
//! A config the receiver rejects during the handshake fails the session,
//! and every retry brings the same config and the same rejection: without
//! a bound, a module with a bad config logs one ERROR line per attempt.

use std::time::{Duration, Instant};

/// How long an identical line stays held back after it was shown.
pub(crate) const REPEAT_INTERVAL: Duration = Duration::from_secs(60);

/// The last line shown and how many identical ones were held back since.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    last: Option<(String, Instant)>,
    held_back: u64,
}

impl Repeats {
    /// `Some(n)` when `text` is to be shown now, `n` identical lines having
    /// been held back since it was last shown; `None` when it repeats the
    /// last line shown less than [`REPEAT_INTERVAL`] ago.
    pub(crate) fn admit(&mut self, text: &str, now: Instant) -> Option<u64> {
        if let Some((last, shown_at)) = &self.last {
            if last == text && now.saturating_duration_since(*shown_at) < REPEAT_INTERVAL {
                self.held_back += 1;
                return None;
            }
        }
        let held_back = std::mem::take(&mut self.held_back);
        self.last = Some((text.to_owned(), now));
        Some(held_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_held_back_until_the_interval_passed_then_counted() {
        let mut repeats = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(repeats.admit("bad port", t0), Some(0));
        assert_eq!(repeats.admit("bad port", t0 + Duration::from_secs(1)), None);
        assert_eq!(
            repeats.admit("bad port", t0 + Duration::from_secs(59)),
            None
        );
        assert_eq!(repeats.admit("bad port", t0 + REPEAT_INTERVAL), Some(2));
        // Another text is shown at once; the count starts afresh.
        let t1 = t0 + REPEAT_INTERVAL + Duration::from_secs(1);
        assert_eq!(repeats.admit("bad host", t1), Some(0));
        assert_eq!(repeats.admit("bad port", t1), Some(0));
    }
}
