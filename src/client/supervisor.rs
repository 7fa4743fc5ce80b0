//! The supervisor: one session at a time, host rotation, and the one owner
//! of the client's status.
//!
//! Attempts go round the host list (round-robin from a random start), one
//! host per attempt. How long to wait before the next one is the pacing
//! policy's answer to what the last attempt came to (`pacing.rs`): at once
//! after a session that lasted or a refused connection, about a second
//! after an attempt that reached a failing node or a session that flapped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::connect::connect;
use super::delivery::{DeliverCached, Delivery, Drain};
use super::outage::OutageLog;
use super::pacing::{Outcome, Pacing};
use super::session::{session_tag, CloseSession, Reports, Session, SessionActive, SessionEnded};
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
    pacing: Pacing,
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
/// close to begin while the application runs on. Each check wakes the
/// thread, and an idle client does little else: checked every 100 ms, the
/// `module` example used 1.5 ms of CPU a second idle (20 wakeups a second)
/// against 0.06 ms without the check (1 wakeup), so once a second.
pub(crate) const SYSTEM_STOP_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Supervisor {
    pub(crate) fn new(settings: Arc<Settings>, hosts: Vec<String>, shared: Arc<Shared>) -> Self {
        let pacing = Pacing::new(settings.pacing(), hosts.len());
        let next_host = rand::random_range(0..hosts.len().max(1));
        let delivery = Delivery::new(settings.clone(), shared.clone()).start();
        Self {
            outage: OutageLog::new(settings.outage_summary_interval),
            settings,
            shared,
            hosts,
            next_host,
            pacing,
            session_seq: 0,
            current: None,
            pending: None,
            closing: false,
            close_waiters: Vec::new(),
            delivery,
        }
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
            "{} connecting",
            session_tag(&self.settings.module, id, &host)
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
                        result.as_ref().map(|_| ()).map_err(|f| f.reason.as_str()),
                    );
                    match result {
                        Ok(framed) => {
                            act.shared.set_state(SessionState::Handshaking, Some(&host));
                            log::log!(
                                level,
                                "{} connected; registering",
                                session_tag(&act.settings.module, id, &host)
                            );
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
                        Err(failure) => {
                            let outcome = if failure.refused {
                                Outcome::Refused
                            } else {
                                Outcome::Failed
                            };
                            act.ended(id, failure.reason, outcome, false, ctx)
                        }
                    }
                }),
        );
        self.pending = Some(handle);
    }

    fn ended(
        &mut self,
        id: u64,
        reason: String,
        outcome: Outcome,
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
        let tag = session_tag(&self.settings.module, id, &host);
        if self.closing {
            self.shared.set_state(SessionState::Closed, None);
            log::info!("{tag} closed");
            self.finish_close(ctx);
            return;
        }
        if closed_by_us {
            // Its host was removed from the list: go to a current one now.
            log::info!("{tag} left a removed host; connecting to the new hosts");
            self.attempt(ctx);
            return;
        }
        let delay = self.pacing.next_delay(outcome, Instant::now());
        match outcome {
            Outcome::Ended { active_for } if !self.pacing.lasted(active_for) => log::warn!(
                "{tag} was active for {active_for:?} only, under the minimum uptime of {:?}: \
                 paced as a flap",
                self.settings.min_uptime
            ),
            _ => {}
        }
        self.shared.update(|s| {
            s.last_error = Some(reason.clone());
            s.sessions_failed += 1;
        });
        let lasted =
            matches!(outcome, Outcome::Ended { active_for } if self.pacing.lasted(active_for));
        if lasted {
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
                    act.settings.left_the_cluster();
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
        // The System is ending (or the client closed): the session's close
        // frame is out or being flushed now; the RPC server may stop.
        self.settings.left_the_cluster();
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
        let tag = session_tag(&self.settings.module, current.id, &current.host);
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
        let outcome = match msg.active_for {
            Some(active_for) => Outcome::Ended { active_for },
            None => Outcome::Failed,
        };
        self.ended(msg.id, msg.reason, outcome, msg.closed_by_us, ctx);
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
        self.pacing.reset(self.hosts.len());
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
