//! Lines about what the server sent, bounded per session: a peer that
//! floods unknown events, stray acks or malformed frames, or repeats a
//! required module's addresses, costs a few log lines, not one line per
//! frame.
//!
//! Each kind of line has its own budget. The first [`SHOWN_IN_FULL`] are
//! written at the kind's level as they come. Later ones are held back (each
//! still at DEBUG); at most one line per [`SUMMARY_INTERVAL`] counts them
//! and quotes the newest, and the session's end writes the count still held
//! back.

use std::fmt;
use std::time::{Duration, Instant};

use log::Level;

/// How many of a session's lines of one kind are written in full.
pub(crate) const SHOWN_IN_FULL: u32 = 10;

/// How often, at most, a line counts the lines held back since.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// One session's lines of one kind about its peer.
pub(crate) struct PeerLines {
    /// The session's log tag.
    tag: String,
    level: Level,
    /// What the lines are, in the plural ("warnings about what the server
    /// sent").
    what: String,
    shown: u32,
    /// Held back since the last summary.
    held_back: u64,
    /// When the last summary was written, or the first one held back.
    since: Option<Instant>,
}

impl PeerLines {
    /// Warnings about what the peer sent: unknown events, stray acks,
    /// malformed frames, broken fragmentation.
    pub(crate) fn warnings(tag: String) -> Self {
        Self::new(tag, Level::Warn, "warnings about what the server sent")
    }

    /// The INFO lines that show the addresses of the required module
    /// `module` (its `<module>_MODULE_CONNECTED` events).
    pub(crate) fn addresses(tag: String, module: &str) -> Self {
        Self::new(tag, Level::Info, &format!("address updates of {module}"))
    }

    fn new(tag: String, level: Level, what: &str) -> Self {
        Self {
            tag,
            level,
            what: what.to_owned(),
            shown: 0,
            held_back: 0,
            since: None,
        }
    }

    /// Logs `message` about the session's peer: at the kind's level while
    /// in the first [`SHOWN_IN_FULL`], else at DEBUG, with a summary at the
    /// kind's level when [`SUMMARY_INTERVAL`] has passed.
    pub(crate) fn line(&mut self, message: fmt::Arguments<'_>) {
        self.line_at(message, Instant::now());
    }

    fn line_at(&mut self, message: fmt::Arguments<'_>, now: Instant) {
        let (tag, level, what) = (&self.tag, self.level, &self.what);
        if self.shown < SHOWN_IN_FULL {
            self.shown += 1;
            log::log!(level, "{tag} {message}");
            if self.shown == SHOWN_IN_FULL {
                log::log!(
                    level,
                    "{tag} {SHOWN_IN_FULL} {what}; further ones are counted, at most one line \
                     every {SUMMARY_INTERVAL:?}"
                );
            }
            return;
        }
        log::debug!("{tag} {message}");
        self.held_back += 1;
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= SUMMARY_INTERVAL {
            log::log!(
                level,
                "{tag} {} more {what} in the last {:?} (the newest: {message})",
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
        if self.held_back > 0 {
            log::log!(
                self.level,
                "{} {} more {} before the session ended",
                self.tag,
                self.held_back,
                self.what
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
        for mut lines in [
            PeerLines::warnings("t".to_owned()),
            PeerLines::addresses("t".to_owned(), "auth"),
        ] {
            let start = Instant::now();
            for i in 0..SHOWN_IN_FULL {
                lines.line_at(format_args!("w{i}"), start);
                assert_eq!(lines.held_back(), 0);
            }
            for _ in 0..1000 {
                lines.line_at(format_args!("more"), start + Duration::from_secs(1));
            }
            assert_eq!(lines.held_back(), 1000);
            // The interval counts from the first one held back.
            lines.line_at(format_args!("more"), start + Duration::from_secs(31));
            assert_eq!(lines.held_back(), 0, "summed");
            lines.line_at(format_args!("more"), start + Duration::from_secs(32));
            assert_eq!(lines.held_back(), 1);
            lines.finish();
            assert_eq!(lines.held_back(), 0);
        }
    }
}
