//! Warnings about what the server sent, bounded per session: a peer that
//! floods unknown events, stray acks or malformed frames costs a few log
//! lines, not one line per frame.
//!
//! The first [`SHOWN_IN_FULL`] are written at WARN as they come. Later ones
//! are held back (each still at DEBUG); at most one WARN per
//! [`SUMMARY_INTERVAL`] counts them and quotes the newest, and the session's
//! end writes the count still held back.

use std::fmt;
use std::time::{Duration, Instant};

/// How many of a session's warnings about the peer are written in full.
pub(crate) const SHOWN_IN_FULL: u32 = 10;

/// How often, at most, a WARN counts the warnings held back since.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// One session's warnings about its peer.
pub(crate) struct PeerWarnings {
    /// The session's log tag.
    tag: String,
    shown: u32,
    /// Held back since the last summary.
    held_back: u64,
    /// When the last summary was written, or the first one held back.
    since: Option<Instant>,
}

impl PeerWarnings {
    /// For the session whose log lines start with `tag`.
    pub(crate) fn new(tag: String) -> Self {
        Self {
            tag,
            shown: 0,
            held_back: 0,
            since: None,
        }
    }

    /// Logs `message` about the session's peer: at WARN while in the first
    /// [`SHOWN_IN_FULL`], else at DEBUG, with a WARN summary when
    /// [`SUMMARY_INTERVAL`] has passed.
    pub(crate) fn warn(&mut self, message: fmt::Arguments<'_>) {
        self.warn_at(message, Instant::now());
    }

    fn warn_at(&mut self, message: fmt::Arguments<'_>, now: Instant) {
        let tag = &self.tag;
        if self.shown < SHOWN_IN_FULL {
            self.shown += 1;
            log::warn!("{tag} {message}");
            if self.shown == SHOWN_IN_FULL {
                log::warn!(
                    "{tag} {SHOWN_IN_FULL} warnings about what the server sent; further ones \
                     are counted, at most one line every {SUMMARY_INTERVAL:?}"
                );
            }
            return;
        }
        log::debug!("{tag} {message}");
        self.held_back += 1;
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= SUMMARY_INTERVAL {
            log::warn!(
                "{tag} {} more warnings about what the server sent in the last {:?} (the newest: \
                 {message})",
                self.held_back,
                Duration::from_secs(now.saturating_duration_since(since).as_secs())
            );
            self.held_back = 0;
            self.since = Some(now);
        }
    }

    /// How many are held back and not yet counted in a summary.
    #[cfg(test)]
    fn held_back(&self) -> u64 {
        self.held_back
    }

    /// At the session's end: the count still held back, if any.
    pub(crate) fn finish(&mut self) {
        let tag = &self.tag;
        if self.held_back > 0 {
            log::warn!(
                "{tag} {} more warnings about what the server sent before the session ended",
                self.held_back
            );
            self.held_back = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ones_are_shown_then_counted_and_summed_once_an_interval() {
        let mut w = PeerWarnings::new("t".to_owned());
        let start = Instant::now();
        for i in 0..SHOWN_IN_FULL {
            w.warn_at(format_args!("w{i}"), start);
            assert_eq!(w.held_back(), 0);
        }
        for _ in 0..1000 {
            w.warn_at(format_args!("more"), start + Duration::from_secs(1));
        }
        assert_eq!(w.held_back(), 1000);
        // The interval counts from the first one held back.
        w.warn_at(format_args!("more"), start + Duration::from_secs(31));
        assert_eq!(w.held_back(), 0, "summed");
        w.warn_at(format_args!("more"), start + Duration::from_secs(32));
        assert_eq!(w.held_back(), 1);
        w.finish();
        assert_eq!(w.held_back(), 0);
    }
}
