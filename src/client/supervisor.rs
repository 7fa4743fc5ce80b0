//! The supervisor: one session at a time, host rotation, backoff, and the
//! one owner of the client's status.
//!
//! Attempts go round the host list (round-robin from a random start). A
//! failed attempt moves to the next host at once; the backoff (exponential,
//! with jitter) applies between full rounds of the list, so a dead node
//! does not delay the live ones. While no session comes up, a round's delay
//! is also kept under the larger of 0.8 s and a quarter of the outage so
//! far, so that a cluster back from a short outage (a Raft election
//! refusing registrations for a few seconds) is noticed within a second or
//! a quarter of the outage. A
//! session that stayed active for the minimum uptime resets the backoff and
//! is followed at once by the next host; a shorter one (a flapping node)
//! counts as a failed attempt, and a round with such a flap waits the full
//! exponential delay: a flap costs the cluster a whole registration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use backoff::backoff::Backoff;
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder};
use tokio::sync::oneshot;

use super::connect::connect;
use super::delivery::{DeliverCached, Delivery, Drain};
use super::outage::OutageLog;
use super::session::{CloseSession, Reports, Session, SessionActive, SessionEnded};
use super::{SessionEvent, SessionState, Settings, Shared};

/// Stop for good (the handle's `close()`).
pub(crate) struct Close;

impl Message for Close {
    type Result = ();
}

/// New hosts, applied at once.
pub(crate) struct UpdateHosts(pub(crate) Vec<String>);

impl Message for UpdateHosts {
    type Result = ();
}

pub(crate) struct Supervisor {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    hosts: Vec<String>,
    next_host: usize,
    /// Failed attempts since the current round of the host list began.
    failed_in_round: usize,
    /// A session of the current round became active but did not last.
    flapped_in_round: bool,
    /// When the client last lost (or had not yet had) a lasting session.
    outage_since: Instant,
    backoff: ExponentialBackoff,
    session_seq: u64,
    /// The live session, or the attempt under way.
    current: Option<Current>,
    /// A pending connect or backoff timer.
    pending: Option<SpawnHandle>,
    closing: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The receivers' lanes and the cache writer: as long as the client.
    delivery: Addr<Delivery>,
    /// One ERROR, WARN summaries and one INFO per outage.
    outage: OutageLog,
}

struct Current {
    id: u64,
    host: String,
    session: Option<Addr<Session>>,
    /// When its connection attempt began, for the time to READY.
    started: Instant,
}

/// How often the supervisor checks whether its arbiter was told to stop
/// (the actix System stopping): the longest a `System::stop` waits for the
/// close to begin while the application runs on.
pub(crate) const SYSTEM_STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// A round's delay stays under this fraction of the outage so far
/// (`outage / OUTAGE_FRACTION`, but at least [`OUTAGE_CAP_FLOOR`]), unless
/// the round had a flap.
const OUTAGE_FRACTION: u32 = 4;

/// The outage cap never goes below this, so that the first rounds of an
/// outage follow the exponential backoff (100, 200, 400 ms…) rather than
/// hammer the nodes.
const OUTAGE_CAP_FLOOR: Duration = Duration::from_millis(800);

/// An exponential backoff whose delays are drawn from `[d/2, d]` around a
/// nominal `d` that doubles from `initial` up to `max` (the `backoff`
/// crate's symmetric jitter, centred at `3d/4` with a third either side).
pub(crate) fn backoff(initial: Duration, max: Duration) -> ExponentialBackoff {
    ExponentialBackoffBuilder::new()
        .with_initial_interval(initial.mul_f64(0.75))
        .with_max_interval(max.mul_f64(0.75))
        .with_multiplier(2.0)
        .with_randomization_factor(1.0 / 3.0)
        .with_max_elapsed_time(None)
        .build()
}

impl Supervisor {
    pub(crate) fn new(settings: Arc<Settings>, hosts: Vec<String>, shared: Arc<Shared>) -> Self {
        let backoff = backoff(settings.backoff_initial, settings.backoff_max);
        let next_host = rand::random_range(0..hosts.len().max(1));
        let delivery = Delivery::new(settings.clone(), shared.clone()).start();
        Self {
            outage: OutageLog::new(settings.outage_summary_interval),
            settings,
            shared,
            hosts,
            next_host,
            failed_in_round: 0,
            flapped_in_round: false,
            outage_since: Instant::now(),
            backoff,
            session_seq: 0,
            current: None,
            pending: None,
            closing: false,
            close_waiters: Vec::new(),
            delivery,
        }
    }

    /// The delay before the next round: the exponential backoff, kept under
    /// a quarter of the outage so far unless a session of the round flapped.
    fn next_delay(&mut self) -> Duration {
        let exponential = self
            .backoff
            .next_backoff()
            .unwrap_or(self.settings.backoff_max)
            .min(self.settings.backoff_max);
        if std::mem::take(&mut self.flapped_in_round) {
            return exponential;
        }
        let cap = (self.outage_since.elapsed() / OUTAGE_FRACTION)
            .max(OUTAGE_CAP_FLOOR)
            .mul_f64(rand::random_range(0.5..=1.0));
        exponential.min(cap)
    }

    fn attempt(&mut self, ctx: &mut Context<Self>) {
        self.pending = None;
        if self.closing || self.hosts.is_empty() {
            return;
        }
        let host = self.hosts[self.next_host % self.hosts.len()].clone();
        self.next_host = (self.next_host + 1) % self.hosts.len();
        self.session_seq += 1;
        let id = self.session_seq;
        self.current = Some(Current {
            id,
            host: host.clone(),
            session: None,
            started: Instant::now(),
        });
        self.shared.set_state(SessionState::Connecting, Some(&host));
        self.shared.update(|s| s.sessions_started += 1);
        // During an outage each attempt is a DEBUG line: the outage log
        // writes its summary.
        let level = if self.outage.in_outage() {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "[module={} session={id} host={host}] connecting",
            self.settings.module
        );
        let settings = self.settings.clone();
        let connect = async move {
            let result = connect(&settings, &host).await;
            (result, host)
        };
        let handle = ctx.spawn(
            connect
                .into_actor(self)
                .map(move |(result, host), act, ctx| {
                    act.pending = None;
                    if act.current.as_ref().map(|c| c.id) != Some(id) {
                        return;
                    }
                    crate::metrics::connect_attempt(
                        &act.settings.module,
                        result.as_ref().map(|_| ()).map_err(String::as_str),
                    );
                    match result {
                        Ok(framed) => {
                            act.shared.set_state(SessionState::Handshaking, Some(&host));
                            let addr = Session::start_with(
                                framed,
                                id,
                                host,
                                act.settings.clone(),
                                Reports {
                                    active: ctx.address().recipient(),
                                    ended: ctx.address().recipient(),
                                },
                                act.delivery.clone(),
                                act.shared.clone(),
                            );
                            if let Some(current) = act.current.as_mut() {
                                current.session = Some(addr);
                            }
                        }
                        Err(reason) => act.ended(id, reason, None, false, ctx),
                    }
                }),
        );
        self.pending = Some(handle);
    }

    fn ended(
        &mut self,
        id: u64,
        reason: String,
        active_for: Option<Duration>,
        closed_by_us: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(current) = self.current.take_if(|c| c.id == id) else {
            return;
        };
        if current.session.is_some() {
            crate::metrics::session_ended(&self.settings.module, &reason);
        }
        let host = current.host;
        let tag = format!("[module={} session={id} host={host}]", self.settings.module);
        if self.closing {
            self.shared.set_state(SessionState::Closed, None);
            log::info!("{tag} closed");
            self.finish_close(ctx);
            return;
        }
        if closed_by_us {
            // Its host was removed from the list: go to a current one now.
            log::info!("{tag} left a removed host; connecting to the new hosts");
            self.failed_in_round = 0;
            self.attempt(ctx);
            return;
        }
        let long_lived = active_for.is_some_and(|d| d >= self.settings.min_uptime);
        let delay = if long_lived {
            self.backoff.reset();
            self.failed_in_round = 0;
            self.flapped_in_round = false;
            self.outage_since = Instant::now();
            Duration::ZERO
        } else {
            self.flapped_in_round |= active_for.is_some();
            self.failed_in_round += 1;
            if self.failed_in_round >= self.hosts.len() {
                // A whole round failed: wait before the next one.
                self.failed_in_round = 0;
                self.next_delay()
            } else {
                Duration::ZERO
            }
        };
        if let Some(uptime) = active_for.filter(|_| !long_lived) {
            log::warn!(
                "{tag} was active for {uptime:?} only, under the minimum uptime of {:?}: \
                 counted as a failed attempt",
                self.settings.min_uptime
            );
        }
        self.shared.update(|s| {
            s.last_error = Some(reason.clone());
            s.sessions_failed += 1;
        });
        if long_lived {
            self.outage.lasted();
            log::warn!("{tag} session ended: {reason}; trying the next host now");
        } else {
            self.outage.failed(&tag, &reason, delay);
        }
        if !delay.is_zero() {
            self.shared
                .set_state(SessionState::BackingOff { delay }, None);
        }
        if let Some(events) = &self.settings.session_events {
            events.do_send(SessionEvent::Inactive {
                host,
                reason,
                retry_in: delay,
            });
        }
        if delay.is_zero() {
            self.attempt(ctx);
        } else {
            self.pending = Some(ctx.run_later(delay, |act, ctx| act.attempt(ctx)));
        }
    }

    /// Closes (1000, no restart) once the arbiter the client runs on was
    /// told to stop: `System::current().stop()` stops every arbiter, while
    /// an application under `#[actix_web::main]` may run on (actix-web
    /// restarts its workers), so the client would otherwise stay
    /// registered. actix offers no stop hook; the arbiter's command channel
    /// closing is the signal, checked every [`SYSTEM_STOP_CHECK_INTERVAL`].
    fn watch_the_system(&mut self, ctx: &mut Context<Self>) {
        let arbiter = Arbiter::current();
        ctx.run_interval(SYSTEM_STOP_CHECK_INTERVAL, move |act, ctx| {
            if !arbiter.alive() && !act.closing {
                log::info!(
                    "[module={}] the actix System is stopping: closing the session (1000)",
                    act.settings.module
                );
                act.close(ctx);
            }
        });
    }

    /// Stops for good: the session (if any) closes with 1000.
    fn close(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        if let Some(pending) = self.pending.take() {
            ctx.cancel_future(pending);
        }
        match self.current.as_ref().and_then(|c| c.session.clone()) {
            Some(session) => session.do_send(CloseSession),
            None => {
                self.current = None;
                self.shared.set_state(SessionState::Closed, None);
                self.finish_close(ctx);
            }
        }
    }

    /// The session is closed: once a config delivery in flight was
    /// answered and the cache write it caused is on disk (both bounded),
    /// `close()` returns and the supervisor stops.
    fn finish_close(&mut self, ctx: &mut Context<Self>) {
        ctx.wait(
            self.delivery
                .send(Drain)
                .into_actor(self)
                .map(|_, act, ctx| {
                    for waiter in act.close_waiters.drain(..) {
                        let _ = waiter.send(());
                    }
                    ctx.stop();
                }),
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.watch_the_system(ctx);
        if self.settings.config_cache.is_some() {
            // The cached config goes first, and alone: no message (hosts,
            // close) is handled and no attempt starts until the receiver
            // answered it, so a node's config always follows it and a late
            // cached config can never overwrite a node's.
            ctx.wait(
                self.delivery
                    .send(DeliverCached)
                    .into_actor(self)
                    .map(|_, act, ctx| act.attempt(ctx)),
            );
            return;
        }
        self.attempt(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // With a session still live (the runtime is being dropped), the
        // session says how it ended: `Closed` only once its close frame is
        // out.
        if self.current.as_ref().is_none_or(|c| c.session.is_none()) {
            self.shared.set_state(SessionState::Closed, None);
        }
    }
}

impl Handler<SessionActive> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionActive, _: &mut Context<Self>) {
        // A session that ended already (its `SessionEnded` is processed
        // after this) or an old one is not the current one.
        let Some(current) = self.current.as_ref().filter(|c| c.id == msg.id) else {
            return;
        };
        if self.closing {
            return;
        }
        self.shared
            .set_state(SessionState::Active, Some(&current.host));
        let tag = format!(
            "[module={} session={} host={}]",
            self.settings.module, current.id, current.host
        );
        self.outage.active(&tag);
        crate::metrics::session_established(&self.settings.module, current.started.elapsed());
        // Why the previous session ended is history now, not a fault.
        self.shared.update(|s| {
            s.sessions_established += 1;
            s.last_error = None;
        });
    }
}

impl Handler<SessionEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, ctx: &mut Context<Self>) {
        self.ended(msg.id, msg.reason, msg.active_for, msg.closed_by_us, ctx);
    }
}

impl Handler<UpdateHosts> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: UpdateHosts, ctx: &mut Context<Self>) {
        if msg.0.is_empty() || self.closing {
            return;
        }
        log::info!(
            "[module={}] config-service hosts updated: {:?}",
            self.settings.module,
            msg.0
        );
        // Carry on after the current host if it stays; else a random start.
        self.next_host = match self
            .current
            .as_ref()
            .and_then(|c| msg.0.iter().position(|h| *h == c.host))
        {
            Some(i) => (i + 1) % msg.0.len(),
            None => rand::random_range(0..msg.0.len()),
        };
        self.hosts = msg.0;
        self.failed_in_round = 0;
        let current_host_removed = self
            .current
            .as_ref()
            .is_some_and(|c| !self.hosts.contains(&c.host));
        match self.current.as_ref() {
            // Waiting out a backoff: the new hosts apply now.
            None => {
                if let Some(pending) = self.pending.take() {
                    ctx.cancel_future(pending);
                }
                self.backoff.reset();
                self.attempt(ctx);
            }
            // A session on a removed host leaves it with a normal close;
            // its end starts the next attempt.
            Some(Current {
                session: Some(session),
                ..
            }) if current_host_removed => session.do_send(CloseSession),
            // Connecting to a removed host: give that attempt up.
            Some(Current { session: None, .. }) if current_host_removed => {
                if let Some(pending) = self.pending.take() {
                    ctx.cancel_future(pending);
                }
                self.current = None;
                self.attempt(ctx);
            }
            Some(_) => {}
        }
    }
}

impl Handler<Close> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.close_waiters.push(tx);
        self.close(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_stay_within_half_to_full_nominal() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for _ in 0..200 {
            let mut b = backoff(initial, max);
            let mut nominal = initial;
            for _ in 0..12 {
                let d = b.next_backoff().unwrap();
                let lo = nominal
                    .mul_f64(0.5)
                    .saturating_sub(Duration::from_millis(1));
                let hi = nominal + Duration::from_millis(1);
                assert!(d >= lo && d <= hi, "{d:?} outside [{lo:?}, {hi:?}]");
                nominal = (nominal * 2).min(max);
            }
        }
    }
}
