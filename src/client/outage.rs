//! The supervisor's log of an outage, fit for operators: while no session
//! comes up, one ERROR when it starts, then at most one WARN summary per
//! interval (attempts so far, the last reason), and one INFO when a session
//! is active again. Each failed attempt on its own is a DEBUG line.
//!
//! A session that becomes active ends the outage in the log at once (the
//! operator learns the cluster answers); one that then ends before the
//! minimum uptime (a flap) resumes the same outage rather than starting a
//! new one, so a flapping node does not write an ERROR per flap.

use std::time::{Duration, Instant};

/// How often, at most, an outage's WARN summary is written.
pub const DEFAULT_OUTAGE_SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// The outage under way, if any.
pub(crate) struct OutageLog {
    summary_interval: Duration,
    current: Option<Outage>,
}

struct Outage {
    since: Instant,
    /// Failed attempts (and flapped sessions) since it began.
    attempts: u64,
    /// When the last ERROR or WARN of it was written.
    reported_at: Instant,
    /// A session came up: the INFO was written; a flap resumes it.
    answered: bool,
}

impl OutageLog {
    pub(crate) fn new(summary_interval: Duration) -> Self {
        Self {
            summary_interval,
            current: None,
        }
    }

    /// Whether an outage is under way (no lasting session since it began).
    pub(crate) fn in_outage(&self) -> bool {
        self.current.as_ref().is_some_and(|o| !o.answered)
    }

    /// An attempt (or a session shorter than the minimum uptime) failed
    /// with `reason`; the next attempt comes in `retry_in`.
    pub(crate) fn failed(&mut self, tag: &str, reason: &str, retry_in: Duration) {
        let now = Instant::now();
        let next = if retry_in.is_zero() {
            "trying the next host now".to_owned()
        } else {
            format!("next attempt in {:?}", Self::rounded(retry_in))
        };
        let interval = self.summary_interval;
        match self.current.as_mut() {
            None => {
                self.current = Some(Outage {
                    since: now,
                    attempts: 1,
                    reported_at: now,
                    answered: false,
                });
                log::error!(
                    "{tag} no session with the config-service: {reason}; {next} \
                     (retrying; a summary every {interval:?} while this lasts)"
                );
            }
            Some(outage) => {
                outage.attempts += 1;
                outage.answered = false;
                if now.duration_since(outage.reported_at) >= interval {
                    outage.reported_at = now;
                    log::warn!(
                        "{tag} still no session with the config-service after {} attempts in {:?}; \
                         last: {reason}; {next}",
                        outage.attempts,
                        Self::rounded(outage.since.elapsed())
                    );
                } else {
                    log::debug!("{tag} attempt failed: {reason}; {next}");
                }
            }
        }
    }

    /// A session became active.
    pub(crate) fn active(&mut self, tag: &str) {
        let Some(outage) = self.current.as_mut().filter(|o| !o.answered) else {
            return;
        };
        outage.answered = true;
        log::info!(
            "{tag} session with the config-service again after {} failed attempts in {:?}",
            outage.attempts,
            Self::rounded(outage.since.elapsed())
        );
    }

    /// A session lasted (the minimum uptime): whatever fails next is a new
    /// outage.
    pub(crate) fn lasted(&mut self) {
        self.current = None;
    }

    fn rounded(d: Duration) -> Duration {
        Duration::from_millis(d.as_millis() as u64)
    }
}
