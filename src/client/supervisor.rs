//! The supervisor: one session at a time, the host it goes to, and the one
//! owner of the client's status.
//!
//! Which host the next attempt goes to and when is the pacing's answer to
//! what the last attempt came to and whose failure it was (`pacing.rs`):
//! the next host at once after a session that lasted, a node that was down
//! or a node that failed, while that node waits out its own pacing; every
//! host waits after a refusal by the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::cache::CacheWriter;
use super::connect::connect;
use super::delivery::{ensure_running, DeliverCached, Delivery, Drain};
use super::end_reason::{Cause, EndReason};
use super::outage::OutageLog;
use super::pacing::{Next, Outcome, Pacing};
use super::session::{session_tag, CloseSession, Reports, Session, SessionActive, SessionEnded};
use super::{SessionEvent, SessionState, Settings, Shared};

/// Stop for good (the handle's `close()`).
pub(crate) struct Close;

impl Message for Close {
    type Result = ();
}

/// New hosts, applied at once (the same hosts again change nothing).
pub(crate) struct UpdateHosts(pub(crate) Vec<String>);

impl Message for UpdateHosts {
    type Result = ();
}

pub(crate) struct Supervisor {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    /// The hosts, their rotation and their pacing.
    pacing: Pacing,
    session_seq: u64,
    /// The live session, or the attempt under way.
    current: Option<Current>,
    /// A pending connect or backoff timer.
    pending: Option<SpawnHandle>,
    closing: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The receivers' lanes: as long as the client (a new actor takes over
    /// when one stops).
    delivery: Addr<Delivery>,
    /// The cache writer, handed to every delivery actor: one queue of
    /// writes for the client's whole life.
    cache: Option<CacheWriter>,
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

/// What pacing makes of an end: whose failure it was, and whether a session
/// had become active.
fn outcome(end: EndReason, active_for: Option<Duration>) -> Outcome {
    match (active_for, end.cause()) {
        (Some(active_for), _) => Outcome::Ended { active_for },
        (None, Cause::NodeDown) => Outcome::Down,
        (None, Cause::Cluster) => Outcome::ClusterFailed,
        (None, Cause::Node | Cause::Client) => Outcome::NodeFailed,
    }
}

impl Supervisor {
    pub(crate) fn new(settings: Arc<Settings>, hosts: Vec<String>, shared: Arc<Shared>) -> Self {
        let pacing = Pacing::new(settings.pacing(), hosts);
        let cache = settings
            .config_cache
            .clone()
            .map(|path| CacheWriter::new(path, settings.module.clone(), shared.clone()));
        let delivery = Delivery::new(settings.clone(), shared.clone(), cache.clone()).start();
        Self {
            cache,
            outage: OutageLog::new(settings.outage_summary_interval),
            settings,
            shared,
            pacing,
            session_seq: 0,
            current: None,
            pending: None,
            closing: false,
            close_waiters: Vec::new(),
            delivery,
        }
    }

    /// Starts the next attempt now, or once the pacing allows it.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let next = self.pacing.next(Instant::now());
        self.go(next, ctx);
    }

    /// Starts the attempt `next` says, when it says (replacing any pending
    /// one).
    fn go(&mut self, next: Option<Next>, ctx: &mut Context<Self>) {
        if let Some(pending) = self.pending.take() {
            ctx.cancel_future(pending);
        }
        if self.closing {
            return;
        }
        let Some(Next { host, delay }) = next else {
            return;
        };
        if delay.is_zero() {
            self.attempt(host, ctx);
        } else {
            self.shared
                .set_state(SessionState::BackingOff { delay }, None);
            self.pending = Some(ctx.run_later(delay, move |act, ctx| act.attempt(host, ctx)));
        }
    }

    fn attempt(&mut self, host: String, ctx: &mut Context<Self>) {
        self.pending = None;
        if self.closing {
            return;
        }
        // A delivery actor that stopped (its sessions heard so) is replaced
        // before the next session offers it anything.
        ensure_running(
            &mut self.delivery,
            &self.settings,
            &self.shared,
            &self.cache,
        );
        self.session_seq += 1;
        let id = self.session_seq;
        self.current = Some(Current {
            id,
            host: host.clone(),
            session: None,
            started: Instant::now(),
        });
        self.shared.set_state(SessionState::Connecting, Some(&host));
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
                    let module = &act.settings.module;
                    crate::metrics::connect_attempt(
                        module,
                        result
                            .as_ref()
                            .map_or_else(|f| f.end.connect_outcome(), |_| "connected"),
                    );
                    act.shared.update(|s| s.connect_attempts += 1);
                    match result {
                        Ok(framed) => {
                            crate::metrics::session_started(module);
                            act.shared.update(|s| s.sessions_started += 1);
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
                        Err(failure) => act.ended(
                            SessionEnded {
                                id,
                                end: failure.end,
                                reason: failure.reason,
                                active_for: None,
                                closed_by_us: false,
                            },
                            ctx,
                        ),
                    }
                }),
        );
        self.pending = Some(handle);
    }

    /// A session or a connection attempt ended.
    fn ended(&mut self, ended: SessionEnded, ctx: &mut Context<Self>) {
        let SessionEnded {
            id,
            end,
            reason,
            active_for,
            closed_by_us,
        } = ended;
        let Some(current) = self.current.take_if(|c| c.id == id) else {
            return;
        };
        let module = &self.settings.module;
        if current.session.is_some() {
            crate::metrics::session_ended(module, end.label());
            if active_for.is_none() && end.cause() != Cause::Client {
                crate::metrics::session_failed(module);
                self.shared.update(|s| s.sessions_failed += 1);
            }
        }
        let host = current.host;
        let tag = session_tag(module, id, &host);
        if self.closing {
            self.shared.set_state(SessionState::Closed, None);
            log::info!("{tag} closed");
            self.finish_close(ctx);
            return;
        }
        if closed_by_us {
            // Its host was removed from the list: go to a current one.
            log::info!("{tag} left a removed host; connecting to the new hosts");
            self.schedule(ctx);
            return;
        }
        let outcome = outcome(end, active_for);
        let now = Instant::now();
        self.pacing.record(&host, outcome, now);
        let next = self.pacing.next(now);
        let delay = next.as_ref().map_or(Duration::ZERO, |next| next.delay);
        match outcome {
            Outcome::Ended { active_for } if !self.pacing.lasted(active_for) => log::warn!(
                "{tag} was active for {active_for:?} only, under the minimum uptime of {:?}: \
                 paced as a flap",
                self.settings.min_uptime
            ),
            _ => {}
        }
        self.shared.update(|s| s.last_error = Some(reason.clone()));
        let lasted =
            matches!(outcome, Outcome::Ended { active_for } if self.pacing.lasted(active_for));
        if lasted {
            self.outage.lasted();
            log::warn!("{tag} session ended: {reason}; trying the next host now");
        } else {
            self.outage.failed(&tag, &reason, delay);
        }
        if let Some(events) = &self.settings.session_events {
            events.do_send(SessionEvent::Inactive {
                host,
                reason,
                retry_in: delay,
            });
        }
        self.go(next, ctx);
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
                    .map(|_, act, ctx| act.schedule(ctx)),
            );
            return;
        }
        self.schedule(ctx);
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
        self.ended(msg, ctx);
    }
}

impl Handler<UpdateHosts> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: UpdateHosts, ctx: &mut Context<Self>) {
        if msg.0.is_empty() || self.closing {
            return;
        }
        let current = self.current.as_ref().map(|c| c.host.as_str());
        if !self.pacing.set_hosts(msg.0.clone(), current) {
            // An application that applies its list from a refresh loop must
            // not cancel the pacing at every call.
            log::debug!(
                "[module={}] config-service hosts unchanged: {:?}",
                self.settings.module,
                msg.0
            );
            return;
        }
        log::info!(
            "[module={}] config-service hosts updated: {:?}",
            self.settings.module,
            msg.0
        );
        let current_host_removed = self
            .current
            .as_ref()
            .is_some_and(|c| !self.pacing.contains(&c.host));
        match self.current.as_ref() {
            // Waiting: the new hosts apply now (new ones may be tried at
            // once; those that stay keep their own pacing).
            None => self.schedule(ctx),
            // A session on a removed host leaves it with a normal close;
            // its end starts the next attempt.
            Some(Current {
                session: Some(session),
                ..
            }) if current_host_removed => session.do_send(CloseSession),
            // Connecting to a removed host: give that attempt up.
            Some(Current { session: None, .. }) if current_host_removed => {
                self.current = None;
                self.schedule(ctx);
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
