//! Reconnect pacing: which host the next attempt goes to, and when, from
//! what the last attempt came to and whose failure it was.
//!
//! A module is one of hundreds, so the policy is judged by the fleet: gentle
//! on a cluster that is failing, quick to notice one that healed, quick to
//! leave a node that failed for one that works, and never in step with the
//! other modules that lost their sessions at the same instant.
//!
//! **The rule**: a failure of one node sends the client to the next host at
//! once, while that node waits out its own pacing (about a second, growing);
//! a refusal by the service itself, or every host failing, makes the client
//! wait.
//!
//! Each host has its own pacing: the earliest instant it may be tried again.
//! The next attempt goes to the first host of the rotation that may be tried
//! soonest: at once when one may be tried now, else when the first one may.
//! So each node sees at most about one attempt per client per second, as
//! from the Go client, and a failing node never holds back a move to a good
//! one. What sets a host's pacing:
//!
//! * **Down** (the TCP connection was refused, or the name does not
//!   resolve): trying it cost the node nothing; it is tried again after
//!   `down_retry` × [1, 1.6]: at most once a second with the default, and
//!   a node that comes back is found within 1.6 s.
//! * **A node's failure** (it was reached, but reset the connection, closed
//!   it, refused or broke the upgrade, or stopped answering before a session
//!   became active): it waits about `d`, which is `initial` (0.9 s) until
//!   it has been failing for four times that, then a quarter of how long it
//!   has been failing, up to `max`. The first wait of its streak is drawn
//!   from [0.75 d, 1.75 d]: a fleet that failed at the same instant spreads
//!   evenly over one whole period. Later waits are drawn from
//!   [0.96 d, 1.04 d], which keeps that spread and bounds the gap, so a
//!   healed node is found within 1.04 d.
//! * **A flap** (a session that became active but ended before the minimum
//!   uptime: the node drops its sessions): the node's next session starts
//!   `initial` × [1.25, 1.75] after this one became active, at the soonest
//!   (at once after a session that was active longer), and that does not
//!   grow: the node registered the module. At most one session a second on
//!   a node that drops every module, and a client back within 1.6 s once
//!   the faults stop, however long they lasted.
//!
//! And the cluster's own pacing, over every host:
//!
//! * **A refusal by the service** (schema, requirements or READY answered
//!   with an error, as during an election; an `ERROR_*` event; an initial
//!   event missing or unusable; a receiver that rejects the config): any
//!   node would answer the same, so no host is tried before about `d` of
//!   the cluster's failing streak (the same `d` and draws as a node's).
//! * **A session that lasted**: the next host at once; everything resets.
//!   A session that became active at all ends the cluster's streak.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// What a connection attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The connection was refused or the name did not resolve: the node is
    /// down, and trying it cost it nothing.
    Down,
    /// The node was reached and failed before a session became active: its
    /// connection, its close frame, its upgrade, its liveness.
    NodeFailed,
    /// The service refused the registration, or answered what any node
    /// would answer.
    ClusterFailed,
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
    /// The unit of the wait before a host that was down is tried again.
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

/// The wait before a host that was down is tried again, as factors of
/// `down_retry`.
const DOWN_DELAY: (f64, f64) = (1.0, 1.6);

/// Where the next attempt goes, and how long before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Next {
    pub(crate) host: String,
    pub(crate) delay: Duration,
}

/// One host and its own pacing.
#[derive(Debug)]
struct Host {
    name: String,
    /// Not tried again before this.
    not_before: Option<Instant>,
    /// When its current streak of failures began; a session that became
    /// active on it ends the streak.
    failing_since: Option<Instant>,
}

impl Host {
    fn new(name: String) -> Self {
        Self {
            name,
            not_before: None,
            failing_since: None,
        }
    }
}

/// The pacing state of one client: the hosts in their rotation, each one's
/// pacing and the cluster's; outcome in, next host and delay out.
pub(crate) struct Pacing {
    settings: PacingSettings,
    hosts: Vec<Host>,
    /// Where the rotation goes on: the host after the last one chosen.
    next: usize,
    /// When the cluster's streak of refusals (no session active since)
    /// began; a node's failures and downs neither start nor end it.
    cluster_failing_since: Option<Instant>,
    /// No host is tried before this: the service refused.
    cluster_not_before: Option<Instant>,
    rng: SmallRng,
}

impl Pacing {
    /// Pacing over `hosts` (duplicates dropped), the rotation starting at a
    /// random one.
    pub(crate) fn new(settings: PacingSettings, hosts: Vec<String>) -> Self {
        Self::with_rng(settings, hosts, SmallRng::from_rng(&mut rand::rng()))
    }

    fn with_rng(settings: PacingSettings, hosts: Vec<String>, mut rng: SmallRng) -> Self {
        let hosts: Vec<Host> = distinct(hosts).into_iter().map(Host::new).collect();
        let next = rng.random_range(0..hosts.len().max(1));
        Self {
            settings,
            hosts,
            next,
            cluster_failing_since: None,
            cluster_not_before: None,
            rng,
        }
    }

    /// Whether `host` is one of the hosts.
    pub(crate) fn contains(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.name == host)
    }

    /// Whether a session active this long lasted (its end is a failover).
    pub(crate) fn lasted(&self, active_for: Duration) -> bool {
        active_for >= self.settings.min_uptime
    }

    /// Replaces the hosts; `false`, changing nothing at all, when they are
    /// the same ones (in any order). Hosts that stay keep their own pacing,
    /// new ones may be tried at once, and the cluster's wait ends (its
    /// streak keeps its age). The rotation goes on after `current` if it
    /// stays, else from a random host.
    pub(crate) fn set_hosts(&mut self, hosts: Vec<String>, current: Option<&str>) -> bool {
        let new = distinct(hosts);
        let mut old: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut sorted: Vec<&str> = new.iter().map(String::as_str).collect();
        old.sort_unstable();
        sorted.sort_unstable();
        if old == sorted {
            return false;
        }
        let mut kept = std::mem::take(&mut self.hosts);
        self.hosts = new
            .into_iter()
            .map(|name| match kept.iter().position(|h| h.name == name) {
                Some(i) => kept.swap_remove(i),
                None => Host::new(name),
            })
            .collect();
        self.next = match current.and_then(|c| self.hosts.iter().position(|h| h.name == c)) {
            Some(i) => (i + 1) % self.hosts.len(),
            None => self.rng.random_range(0..self.hosts.len().max(1)),
        };
        self.cluster_not_before = None;
        true
    }

    /// Records what an attempt at `host`, ended at `now`, came to.
    pub(crate) fn record(&mut self, host: &str, outcome: Outcome, now: Instant) {
        let PacingSettings {
            initial,
            max,
            down_retry,
            ..
        } = self.settings;
        let Some(i) = self.hosts.iter().position(|h| h.name == host) else {
            // Removed since the attempt began: nothing to pace.
            return;
        };
        match outcome {
            Outcome::Down => {
                let wait = draw(&mut self.rng, down_retry, DOWN_DELAY);
                self.hosts[i].not_before = Some(after(now, wait));
            }
            Outcome::NodeFailed => {
                let wait = self.streak_wait(Streak::Host(i), now);
                self.hosts[i].not_before = Some(after(now, wait));
            }
            Outcome::ClusterFailed => {
                let at = after(now, self.streak_wait(Streak::Cluster, now));
                self.cluster_not_before = Some(at);
                let host = &mut self.hosts[i];
                host.not_before = Some(host.not_before.map_or(at, |t| t.max(at)));
            }
            Outcome::Ended { active_for } => {
                // The service registered the module: the cluster works.
                self.cluster_failing_since = None;
                self.cluster_not_before = None;
                if self.lasted(active_for) {
                    for host in &mut self.hosts {
                        host.not_before = None;
                        host.failing_since = None;
                    }
                } else {
                    // Sessions are spaced, not delays: a session that stayed
                    // active longer than the spacing is followed at once.
                    let wait = draw(&mut self.rng, initial, FLAP_DELAY)
                        .min(max)
                        .saturating_sub(active_for);
                    let host = &mut self.hosts[i];
                    host.failing_since = None;
                    host.not_before = Some(after(now, wait));
                }
            }
        }
    }

    /// Where the next attempt goes and when: the first host of the rotation
    /// that may be tried soonest. The rotation goes on after it.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Next> {
        let n = self.hosts.len();
        let ready = |host: &Host| {
            [host.not_before, self.cluster_not_before]
                .into_iter()
                .flatten()
                .fold(now, Instant::max)
        };
        let (i, at) = (0..n)
            .map(|k| (self.next + k) % n)
            .map(|i| (i, ready(&self.hosts[i])))
            // The first of the earliest: `min_by_key` keeps the last.
            .reduce(|best, this| if this.1 < best.1 { this } else { best })?;
        self.next = (i + 1) % n;
        Some(Next {
            host: self.hosts[i].name.clone(),
            delay: at.saturating_duration_since(now),
        })
    }

    /// The wait after a failure of a streak (a host's or the cluster's):
    /// about `d`, drawn wide for its first failure and narrow after.
    fn streak_wait(&mut self, streak: Streak, now: Instant) -> Duration {
        let PacingSettings { initial, max, .. } = self.settings;
        let since = match streak {
            Streak::Host(i) => &mut self.hosts[i].failing_since,
            Streak::Cluster => &mut self.cluster_failing_since,
        };
        let (since, factors) = match *since {
            Some(since) => (since, FAILURE_JITTER),
            None => {
                *since = Some(now);
                (now, FIRST_FAILURE_SPREAD)
            }
        };
        let age = now.saturating_duration_since(since);
        let d = (age / FAILING_AGE_DIVISOR).max(initial).min(max);
        draw(&mut self.rng, d, factors).min(max)
    }
}

/// Whose failing streak.
#[derive(Clone, Copy)]
enum Streak {
    Host(usize),
    Cluster,
}

/// `hosts` without repeats, in their first order.
fn distinct(hosts: Vec<String>) -> Vec<String> {
    let mut seen = Vec::with_capacity(hosts.len());
    for host in hosts {
        if !seen.contains(&host) {
            seen.push(host);
        }
    }
    seen
}

/// `now + wait`, or the farthest instant the clock can hold.
fn after(now: Instant, wait: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    [wait, 100 * YEAR, YEAR]
        .into_iter()
        .find_map(|d| now.checked_add(d))
        .unwrap_or(now)
}

/// `d` times a factor drawn from `[lo, hi]`, saturating.
fn draw(rng: &mut SmallRng, d: Duration, (lo, hi): (f64, f64)) -> Duration {
    let factor = rng.random_range(lo..=hi);
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
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

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("h{i}:1")).collect()
    }

    fn pacing(hosts: usize, seed: u64) -> Pacing {
        Pacing::with_rng(defaults(), names(hosts), SmallRng::seed_from_u64(seed))
    }

    fn within(d: Duration, lo_ms: u32, hi_ms: u32) -> bool {
        d >= lo_ms * MS && d <= hi_ms * MS
    }

    /// Records `outcome` for the host `next` chose, and asks for the next.
    fn after_attempt(p: &mut Pacing, host: &str, outcome: Outcome, at: Instant) -> Next {
        p.record(host, outcome, at);
        p.next(at).unwrap()
    }

    #[test]
    fn a_node_failure_moves_to_the_next_host_at_once() {
        for outcome in [
            Outcome::NodeFailed,
            Outcome::Ended {
                active_for: 100 * MS,
            },
        ] {
            for seed in 0..50 {
                let mut p = pacing(3, seed);
                let now = Instant::now();
                let first = p.next(now).unwrap();
                assert_eq!(first.delay, Duration::ZERO);
                let second = after_attempt(&mut p, &first.host, outcome, now);
                assert_ne!(second.host, first.host);
                assert_eq!(second.delay, Duration::ZERO, "{outcome:?}");
                let third = after_attempt(&mut p, &second.host, outcome, now);
                assert!(third.host != first.host && third.host != second.host);
                assert_eq!(third.delay, Duration::ZERO, "{outcome:?}");
                // Every host failed: the one whose own pacing ends first,
                // when it ends.
                let fourth = after_attempt(&mut p, &third.host, outcome, now);
                assert!(within(fourth.delay, 675, 1575), "{outcome:?}: {fourth:?}");
            }
        }
    }

    #[test]
    fn a_refusal_by_the_service_holds_every_host() {
        for seed in 0..100 {
            let mut p = pacing(3, seed);
            let now = Instant::now();
            let first = p.next(now).unwrap();
            let next = after_attempt(&mut p, &first.host, Outcome::ClusterFailed, now);
            // Another host, but not sooner than the cluster's wait.
            assert_ne!(next.host, first.host);
            assert!(within(next.delay, 675, 1575), "{next:?}");
            let at = now + next.delay;
            let then = after_attempt(&mut p, &next.host, Outcome::ClusterFailed, at);
            assert!(within(then.delay, 864, 936), "{then:?}");
        }
    }

    #[test]
    fn a_node_that_fails_is_tried_about_once_a_second_growing_with_its_age() {
        for seed in 0..100 {
            let mut p = pacing(1, seed);
            let start = Instant::now();
            let host = p.next(start).unwrap().host;
            let first = after_attempt(&mut p, &host, Outcome::NodeFailed, start);
            assert!(within(first.delay, 675, 1575), "{first:?}");
            // Young failures: 0.9 s, within 4 %: a heal is found within
            // 0.94 s.
            for at in [700, 1600, 2500, 3400] {
                let next = after_attempt(&mut p, &host, Outcome::NodeFailed, start + at * MS);
                assert!(within(next.delay, 864, 936), "at {at} ms: {next:?}");
            }
            // Then a quarter of the age.
            let next = after_attempt(&mut p, &host, Outcome::NodeFailed, start + 8000 * MS);
            assert!(within(next.delay, 1920, 2080), "{next:?}");
            let next = after_attempt(&mut p, &host, Outcome::NodeFailed, start + 30_000 * MS);
            assert!(within(next.delay, 7200, 7800), "{next:?}");
            // Never above max.
            let at = start + 3_600_000 * MS;
            let next = after_attempt(&mut p, &host, Outcome::NodeFailed, at);
            assert!(within(next.delay, 9600, 10_000), "{next:?}");
        }
    }

    #[test]
    fn each_failing_node_keeps_its_own_pace_so_both_see_one_attempt_a_period() {
        // Two nodes that accept and close: each is tried at its own pace,
        // the other in between.
        for seed in 0..50 {
            let mut p = pacing(2, seed);
            let start = Instant::now();
            let mut now = start;
            let mut tried: Vec<(String, Instant)> = Vec::new();
            let mut next = p.next(now).unwrap();
            while now < start + 10_000 * MS {
                now += next.delay;
                tried.push((next.host.clone(), now));
                next = after_attempt(&mut p, &next.host, Outcome::NodeFailed, now);
            }
            for host in names(2) {
                let times: Vec<Instant> = tried
                    .iter()
                    .filter(|(h, _)| *h == host)
                    .map(|(_, t)| *t)
                    .collect();
                assert!(times.len() <= 12, "{}", times.len());
                let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
                assert!(gaps.iter().all(|g| *g >= 675 * MS), "{gaps:?}");
                // After the first (spreading) gap, never shorter than the
                // one before by more than the jitter.
                for w in gaps.windows(2).skip(1) {
                    assert!(w[1].as_secs_f64() >= w[0].as_secs_f64() * 0.92, "{gaps:?}");
                }
            }
        }
    }

    #[test]
    fn down_hosts_are_skipped_at_once_and_each_tried_once_per_down_retry() {
        for seed in 0..100 {
            let mut p = pacing(3, seed);
            let start = Instant::now();
            let mut now = start;
            let mut tried: Vec<(String, Instant)> = Vec::new();
            let mut next = p.next(now).unwrap();
            for _ in 0..30 {
                now += next.delay;
                tried.push((next.host.clone(), now));
                next = after_attempt(&mut p, &next.host, Outcome::Down, now);
            }
            // The first three go at once.
            assert!(tried[..3].iter().all(|(_, t)| *t == start));
            for host in names(3) {
                let times: Vec<Instant> = tried
                    .iter()
                    .filter(|(h, _)| *h == host)
                    .map(|(_, t)| *t)
                    .collect();
                // Each host at most once a second, a returning one found
                // within 1.6 s; the same however long the outage.
                for w in times.windows(2) {
                    assert!(within(w[1] - w[0], 1000, 1600), "{host}: {times:?}");
                }
            }
        }
    }

    #[test]
    fn one_down_host_waits_down_retry() {
        let mut p = pacing(1, 7);
        let now = Instant::now();
        let host = p.next(now).unwrap().host;
        let next = after_attempt(&mut p, &host, Outcome::Down, now);
        assert!(within(next.delay, 1000, 1600), "{next:?}");
    }

    #[test]
    fn the_first_failure_spreads_a_fleet_over_one_whole_period() {
        let now = Instant::now();
        let mut buckets = [0usize; 10];
        for seed in 0..2000 {
            let mut p = pacing(1, seed);
            let host = p.next(now).unwrap().host;
            let wait = after_attempt(&mut p, &host, Outcome::ClusterFailed, now).delay;
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
    fn downs_and_node_failures_neither_start_nor_end_the_cluster_s_streak() {
        let mut p = pacing(2, 3);
        let start = Instant::now();
        let [a, b] = [names(2)[0].clone(), names(2)[1].clone()];
        // A long all-down outage, then a refusing service: its failure is
        // young, whatever the outage's age.
        for i in 0..60 {
            p.record(&a, Outcome::Down, start + i * 1000 * MS);
        }
        p.record(&a, Outcome::NodeFailed, start + 59_000 * MS);
        p.record(&b, Outcome::ClusterFailed, start + 60_000 * MS);
        let wait = p.next(start + 60_000 * MS).unwrap().delay;
        assert!(within(wait, 675, 1575), "{wait:?}");
        // A down and a node failure inside the streak keep its age.
        p.record(&a, Outcome::Down, start + 70_000 * MS);
        p.record(&b, Outcome::NodeFailed, start + 75_000 * MS);
        p.record(&a, Outcome::ClusterFailed, start + 80_000 * MS);
        let wait = p.next(start + 80_000 * MS).unwrap().delay;
        assert!(within(wait, 4800, 5200), "{wait:?}");
    }

    #[test]
    fn a_flap_waits_about_a_second_and_a_half_and_never_grows() {
        for seed in 0..100 {
            let mut p = pacing(1, seed);
            let start = Instant::now();
            let host = p.next(start).unwrap().host;
            for i in 0..600 {
                let at = start + i * 1500 * MS;
                let short = Outcome::Ended {
                    active_for: 20 * MS,
                };
                let wait = after_attempt(&mut p, &host, short, at).delay;
                // 1.125 s to 1.575 s from the activation.
                assert!(within(wait, 1105, 1555), "flap {i}: {wait:?}");
                // A failure after a flap starts a new, young streak.
                if i % 7 == 0 {
                    let at = at + 1500 * MS;
                    let wait = after_attempt(&mut p, &host, Outcome::NodeFailed, at).delay;
                    assert!(within(wait, 675, 1575), "{wait:?}");
                }
            }
        }
    }

    #[test]
    fn a_flapping_node_does_not_hold_back_a_move_to_another() {
        let mut p = pacing(2, 4);
        let now = Instant::now();
        let first = p.next(now).unwrap();
        let flap = Outcome::Ended {
            active_for: 20 * MS,
        };
        let next = after_attempt(&mut p, &first.host, flap, now);
        assert_ne!(next.host, first.host);
        assert_eq!(next.delay, Duration::ZERO);
    }

    #[test]
    fn a_flap_longer_than_the_spacing_is_followed_at_once() {
        let mut p = pacing(1, 9);
        let now = Instant::now();
        let host = p.next(now).unwrap().host;
        let three_s = Outcome::Ended {
            active_for: Duration::from_secs(3),
        };
        assert_eq!(
            after_attempt(&mut p, &host, three_s, now).delay,
            Duration::ZERO
        );
        let one_s = Outcome::Ended {
            active_for: Duration::from_secs(1),
        };
        let wait = after_attempt(&mut p, &host, one_s, now).delay;
        assert!(within(wait, 125, 575), "{wait:?}");
    }

    #[test]
    fn a_session_that_lasted_is_followed_at_once_and_resets_every_streak() {
        let mut p = pacing(2, 5);
        let start = Instant::now();
        let [a, b] = [names(2)[0].clone(), names(2)[1].clone()];
        p.record(&a, Outcome::NodeFailed, start);
        p.record(&a, Outcome::NodeFailed, start + 60_000 * MS);
        p.record(&b, Outcome::ClusterFailed, start + 60_000 * MS);
        let lasted = Outcome::Ended {
            active_for: Duration::from_secs(5),
        };
        let next = after_attempt(&mut p, &b, lasted, start + 70_000 * MS);
        assert_eq!(next.host, a);
        assert_eq!(next.delay, Duration::ZERO);
        // Both streaks are young again.
        let at = start + 70_001 * MS;
        p.record(&a, Outcome::NodeFailed, at);
        p.record(&b, Outcome::NodeFailed, at);
        let wait = p.next(at).unwrap().delay;
        assert!(within(wait, 675, 1575), "{wait:?}");
    }

    #[test]
    fn the_same_hosts_again_change_nothing() {
        let mut p = pacing(2, 6);
        let now = Instant::now();
        let first = p.next(now).unwrap();
        let failed = after_attempt(&mut p, &first.host, Outcome::ClusterFailed, now);
        let mut same = names(2);
        same.reverse();
        same.push(same[0].clone());
        assert!(!p.set_hosts(same, None));
        assert_eq!(p.next(now).unwrap().delay, failed.delay);
    }

    #[test]
    fn new_hosts_apply_at_once_and_the_hosts_that_stay_keep_their_pace() {
        let mut p = pacing(1, 8);
        let now = Instant::now();
        let old = p.next(now).unwrap().host;
        p.record(&old, Outcome::NodeFailed, now);
        p.record(&old, Outcome::ClusterFailed, now);
        assert!(p.set_hosts(vec![old.clone(), "new:1".into()], Some(&old)));
        let next = p.next(now).unwrap();
        assert_eq!(
            next,
            Next {
                host: "new:1".into(),
                delay: Duration::ZERO
            }
        );
        p.record("new:1", Outcome::NodeFailed, now);
        // Both failed now: the old one kept its pace, the new one has its
        // own.
        let next = p.next(now).unwrap();
        assert!(!next.delay.is_zero(), "{next:?}");
        // An attempt at a host that was removed meanwhile is not paced.
        p.record("gone:1", Outcome::NodeFailed, now);
    }

    #[test]
    fn huge_settings_saturate_instead_of_overflowing() {
        let settings = PacingSettings {
            initial: Duration::MAX,
            max: Duration::MAX,
            down_retry: Duration::MAX,
            min_uptime: Duration::MAX,
        };
        let mut p = Pacing::with_rng(settings, names(2), SmallRng::seed_from_u64(0));
        let now = Instant::now();
        let year = Duration::from_secs(365 * 24 * 3600);
        let first = p.next(now).unwrap();
        let next = after_attempt(&mut p, &first.host, Outcome::ClusterFailed, now);
        assert!(next.delay >= year, "{next:?}");
        let next = after_attempt(&mut p, &next.host, Outcome::Down, now);
        assert!(next.delay >= year, "{next:?}");
        let flap = Outcome::Ended { active_for: MS };
        let next = after_attempt(&mut p, &next.host, flap, now);
        assert!(next.delay >= year, "{next:?}");
    }
}
