//! Reconnect pacing: what the last attempt came to decides how long the
//! client waits before the next one (to the next host of the rotation).
//!
//! A module is one of hundreds, so the policy is judged by the fleet: gentle
//! on a cluster that is failing, quick to notice one that healed, and never
//! in step with the other modules that lost their sessions at the same
//! instant.
//!
//! * **Refused** (the TCP connection was refused, or the name does not
//!   resolve): the node is down and trying it cost it nothing, so the next
//!   host is tried at once. Once every host refused in a row, the next round
//!   waits `down_retry` × [1, 1.6]: each host at most once a second with the
//!   default, and a node that comes back is found within 1.6 s.
//! * **Failed** (the node was reached, but the upgrade, the registration or
//!   the rest of the handshake failed: an electing cluster, a node that
//!   accepts and closes): each such attempt costs the cluster an upgrade, a
//!   registration and an error ack. The next attempt waits about `d`, which
//!   is `initial` (0.9 s) until the nodes have been failing for four times
//!   that, then a quarter of how long they have been failing, up to `max`.
//!   The first wait of a failing streak is drawn from [0.75 d, 1.75 d]: a
//!   fleet that failed at the same instant spreads evenly over one whole
//!   period. Later waits are drawn from [0.96 d, 1.04 d], which keeps that
//!   spread and bounds the gap, so a healed node is found within 1.04 d.
//! * **A flap** (a session that became active but ended before the minimum
//!   uptime): the next session starts `initial` × [1.25, 1.75] after this
//!   one became active, at the soonest (at once after a session that was
//!   active longer), and that does not grow: the node registered the
//!   module, so the cluster works. At most one session a second on a node
//!   that drops every module, and a client back within 1.6 s once the
//!   faults stop, however long they lasted.
//! * **A session that lasted**: the next host at once; everything resets.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// What a connection attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The connection was refused or the name did not resolve: the node is
    /// down, and trying it cost it nothing.
    Refused,
    /// The node was reached, but the upgrade or the handshake failed.
    Failed,
    /// The session became active, and ended after this long.
    Ended { active_for: Duration },
}

/// The settings of the policy, from the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PacingSettings {
    /// The wait after a failed attempt while the failure is young; the unit
    /// of the flap delay.
    pub(crate) initial: Duration,
    /// The longest wait after a failed attempt.
    pub(crate) max: Duration,
    /// The unit of the wait after a round in which every host refused.
    pub(crate) down_retry: Duration,
    /// A session active this long lasted: the next host at once.
    pub(crate) min_uptime: Duration,
}

/// The wait after a failed attempt is at least the failure's age divided by
/// this.
const FAILING_AGE_DIVISOR: u32 = 4;

/// The first wait of a failing streak, as factors of `d`: one whole period
/// wide, so that a fleet that failed together is spread evenly.
const FIRST_FAILURE_SPREAD: (f64, f64) = (0.75, 1.75);

/// Later waits of a failing streak, as factors of `d`: narrow, so that the
/// gap (how long a healed node goes unnoticed) stays near `d`.
const FAILURE_JITTER: (f64, f64) = (0.96, 1.04);

/// The wait after a flap, as factors of `initial`.
const FLAP_DELAY: (f64, f64) = (1.25, 1.75);

/// The wait after a round of refusals, as factors of `down_retry`.
const DOWN_ROUND: (f64, f64) = (1.0, 1.6);

/// The pacing state of one client: outcome in, next delay out.
pub(crate) struct Pacing {
    settings: PacingSettings,
    hosts: usize,
    /// Refusals since the last attempt that reached a node.
    refused_in_a_row: usize,
    /// When the current streak of failed attempts (no session active
    /// since) began; refusals neither start nor end it.
    failing_since: Option<Instant>,
    rng: SmallRng,
}

impl Pacing {
    pub(crate) fn new(settings: PacingSettings, hosts: usize) -> Self {
        Self::with_rng(settings, hosts, SmallRng::from_rng(&mut rand::rng()))
    }

    fn with_rng(settings: PacingSettings, hosts: usize, rng: SmallRng) -> Self {
        Self {
            settings,
            hosts: hosts.max(1),
            refused_in_a_row: 0,
            failing_since: None,
            rng,
        }
    }

    /// Whether a session active this long lasted (its end is a failover).
    pub(crate) fn lasted(&self, active_for: Duration) -> bool {
        active_for >= self.settings.min_uptime
    }

    /// New hosts: a fresh start.
    pub(crate) fn reset(&mut self, hosts: usize) {
        self.hosts = hosts.max(1);
        self.refused_in_a_row = 0;
        self.failing_since = None;
    }

    /// The delay before the next attempt, after an attempt that came to
    /// `outcome` at `now`.
    pub(crate) fn next_delay(&mut self, outcome: Outcome, now: Instant) -> Duration {
        let PacingSettings {
            initial,
            max,
            down_retry,
            ..
        } = self.settings;
        match outcome {
            Outcome::Refused => {
                self.refused_in_a_row += 1;
                if self.refused_in_a_row < self.hosts {
                    return Duration::ZERO;
                }
                self.refused_in_a_row = 0;
                self.draw(down_retry, DOWN_ROUND)
            }
            Outcome::Failed => {
                self.refused_in_a_row = 0;
                let (since, factors) = match self.failing_since {
                    Some(since) => (since, FAILURE_JITTER),
                    None => {
                        self.failing_since = Some(now);
                        (now, FIRST_FAILURE_SPREAD)
                    }
                };
                let age = now.saturating_duration_since(since);
                let d = (age / FAILING_AGE_DIVISOR).max(initial).min(max);
                self.draw(d, factors).min(max)
            }
            Outcome::Ended { active_for } => {
                self.refused_in_a_row = 0;
                self.failing_since = None;
                if self.lasted(active_for) {
                    Duration::ZERO
                } else {
                    // Sessions are spaced, not delays: a session that
                    // stayed active longer than the spacing is followed at
                    // once.
                    self.draw(initial, FLAP_DELAY)
                        .min(max)
                        .saturating_sub(active_for)
                }
            }
        }
    }

    /// `d` times a factor drawn from `[lo, hi]`, saturating.
    fn draw(&mut self, d: Duration, (lo, hi): (f64, f64)) -> Duration {
        let factor = self.rng.random_range(lo..=hi);
        Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn defaults() -> PacingSettings {
        PacingSettings {
            initial: Duration::from_millis(900),
            max: Duration::from_secs(10),
            down_retry: Duration::from_secs(1),
            min_uptime: Duration::from_secs(5),
        }
    }

    fn pacing(hosts: usize, seed: u64) -> Pacing {
        Pacing::with_rng(defaults(), hosts, SmallRng::seed_from_u64(seed))
    }

    fn within(d: Duration, lo_ms: u32, hi_ms: u32) -> bool {
        d >= lo_ms * MS && d <= hi_ms * MS
    }

    #[test]
    fn refused_hosts_are_skipped_at_once_until_a_whole_round_refused() {
        for seed in 0..100 {
            let mut p = pacing(3, seed);
            let now = Instant::now();
            for round in 0..5 {
                assert_eq!(p.next_delay(Outcome::Refused, now), Duration::ZERO);
                assert_eq!(p.next_delay(Outcome::Refused, now), Duration::ZERO);
                let wait = p.next_delay(Outcome::Refused, now);
                // Each host at most once a second, a returning one found
                // within 1.6 s; the same however long the outage.
                assert!(within(wait, 1000, 1600), "round {round}: {wait:?}");
            }
        }
    }

    #[test]
    fn one_refusing_host_is_a_whole_round() {
        let mut p = pacing(1, 7);
        let wait = p.next_delay(Outcome::Refused, Instant::now());
        assert!(within(wait, 1000, 1600), "{wait:?}");
    }

    #[test]
    fn a_refused_host_between_failing_ones_costs_no_time() {
        let mut p = pacing(3, 1);
        let start = Instant::now();
        assert!(!p.next_delay(Outcome::Failed, start).is_zero());
        assert!(!p.next_delay(Outcome::Failed, start + 900 * MS).is_zero());
        // Two refusals after failures are not a round of refusals.
        assert_eq!(
            p.next_delay(Outcome::Refused, start + 1800 * MS),
            Duration::ZERO
        );
        assert!(!p.next_delay(Outcome::Failed, start + 1801 * MS).is_zero());
        assert_eq!(
            p.next_delay(Outcome::Refused, start + 2700 * MS),
            Duration::ZERO
        );
        assert_eq!(
            p.next_delay(Outcome::Refused, start + 2701 * MS),
            Duration::ZERO
        );
    }

    #[test]
    fn the_first_failure_spreads_a_fleet_over_one_whole_period() {
        let now = Instant::now();
        let mut buckets = [0usize; 10];
        for seed in 0..2000 {
            let wait = pacing(3, seed).next_delay(Outcome::Failed, now);
            assert!(within(wait, 675, 1575), "{wait:?}");
            let bucket = ((wait.as_secs_f64() - 0.675) / 0.09) as usize;
            buckets[bucket.min(9)] += 1;
        }
        // Even: each tenth of the period holds about a tenth of the fleet.
        assert!(
            buckets.iter().all(|&n| (140..=260).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn failures_wait_about_initial_then_a_quarter_of_their_age_up_to_max() {
        for seed in 0..100 {
            let mut p = pacing(3, seed);
            let start = Instant::now();
            p.next_delay(Outcome::Failed, start);
            // Young failures: 0.9 s, within 4 %: a heal is found within
            // 0.94 s.
            for at in [700, 1600, 2500, 3400] {
                let wait = p.next_delay(Outcome::Failed, start + at * MS);
                assert!(within(wait, 864, 936), "at {at} ms: {wait:?}");
            }
            // Then a quarter of the age.
            let wait = p.next_delay(Outcome::Failed, start + 8000 * MS);
            assert!(within(wait, 1920, 2080), "{wait:?}");
            let wait = p.next_delay(Outcome::Failed, start + 30_000 * MS);
            assert!(within(wait, 7200, 7800), "{wait:?}");
            // Never above max.
            let wait = p.next_delay(Outcome::Failed, start + 3_600_000 * MS);
            assert!(within(wait, 9600, 10_000), "{wait:?}");
        }
    }

    #[test]
    fn refusals_neither_start_nor_end_a_failing_streak() {
        let mut p = pacing(2, 3);
        let start = Instant::now();
        // A long all-down outage, then nodes that fail: the failure is
        // young, whatever the outage's age.
        for i in 0..60 {
            p.next_delay(Outcome::Refused, start + i * 1000 * MS);
        }
        let wait = p.next_delay(Outcome::Failed, start + 60_000 * MS);
        assert!(within(wait, 675, 1575), "{wait:?}");
        // A refusal inside the streak keeps its age.
        p.next_delay(Outcome::Refused, start + 70_000 * MS);
        let wait = p.next_delay(Outcome::Failed, start + 80_000 * MS);
        assert!(within(wait, 4800, 5200), "{wait:?}");
    }

    #[test]
    fn a_flap_waits_about_a_second_and_a_half_and_never_grows() {
        for seed in 0..100 {
            let mut p = pacing(3, seed);
            let start = Instant::now();
            for i in 0..600 {
                let at = start + i * 1500 * MS;
                let short = Outcome::Ended {
                    active_for: 20 * MS,
                };
                let wait = p.next_delay(short, at);
                // 1.125 s to 1.575 s from the activation.
                assert!(within(wait, 1105, 1555), "flap {i}: {wait:?}");
                // A failure after a flap starts a new, young streak.
                if i % 7 == 0 {
                    let wait = p.next_delay(Outcome::Failed, at + 1500 * MS);
                    assert!(within(wait, 675, 1575), "{wait:?}");
                }
            }
        }
    }

    #[test]
    fn a_flap_longer_than_the_spacing_is_followed_at_once() {
        let mut p = pacing(3, 9);
        let three_s = Outcome::Ended {
            active_for: Duration::from_secs(3),
        };
        assert_eq!(p.next_delay(three_s, Instant::now()), Duration::ZERO);
        let one_s = Outcome::Ended {
            active_for: Duration::from_secs(1),
        };
        let wait = p.next_delay(one_s, Instant::now());
        assert!(within(wait, 125, 575), "{wait:?}");
    }

    #[test]
    fn a_session_that_lasted_is_followed_at_once_and_resets_the_streak() {
        let mut p = pacing(3, 5);
        let start = Instant::now();
        p.next_delay(Outcome::Failed, start);
        p.next_delay(Outcome::Failed, start + 60_000 * MS);
        let lasted = Outcome::Ended {
            active_for: Duration::from_secs(5),
        };
        assert_eq!(p.next_delay(lasted, start + 70_000 * MS), Duration::ZERO);
        let wait = p.next_delay(Outcome::Failed, start + 70_001 * MS);
        assert!(within(wait, 675, 1575), "{wait:?}");
    }

    #[test]
    fn huge_settings_saturate_instead_of_overflowing() {
        let settings = PacingSettings {
            initial: Duration::MAX,
            max: Duration::MAX,
            down_retry: Duration::MAX,
            min_uptime: Duration::MAX,
        };
        let mut p = Pacing::with_rng(settings, 2, SmallRng::seed_from_u64(0));
        let now = Instant::now();
        assert_eq!(p.next_delay(Outcome::Failed, now), Duration::MAX);
        assert_eq!(p.next_delay(Outcome::Refused, now), Duration::ZERO);
        assert_eq!(p.next_delay(Outcome::Refused, now), Duration::MAX);
        let flap = Outcome::Ended { active_for: MS };
        assert_eq!(p.next_delay(flap, now), Duration::MAX - MS);
    }
}
