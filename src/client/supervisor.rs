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

use super::cache::{deliver_cached, CacheWriter};
use super::connect::connect;
use super::pacing::{Outcome, Pacing};
use super::session::{CloseSession, Session};
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

/// A session's `MODULE:READY` was acknowledged.
pub(crate) struct SessionActive {
    pub(crate) id: u64,
}

impl Message for SessionActive {
    type Result = ();
}

/// The config receiver accepted this config: the last good one, for the
/// cache.
pub(crate) struct ConfigAccepted(pub(crate) bytes::Bytes);

impl Message for ConfigAccepted {
    type Result = ();
}

/// A session (or a connection attempt) ended.
pub(crate) struct SessionEnded {
    pub(crate) id: u64,
    pub(crate) reason: String,
    /// How long it had been active, if it became active.
    pub(crate) active_for: Option<Duration>,
    /// It ended because the client closed it (`close()`, or its host was
    /// removed by `update_hosts`).
    pub(crate) closed_by_us: bool,
}

impl Message for SessionEnded {
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
    /// Writes accepted configs to disk, when a cache file is set.
    cache: Option<CacheWriter>,
}

struct Current {
    id: u64,
    host: String,
    session: Option<Addr<Session>>,
}

impl Supervisor {
    pub(crate) fn new(settings: Arc<Settings>, hosts: Vec<String>, shared: Arc<Shared>) -> Self {
        let pacing = Pacing::new(settings.pacing(), hosts.len());
        let next_host = rand::random_range(0..hosts.len().max(1));
        let cache = settings
            .config_cache
            .clone()
            .map(|path| CacheWriter::new(path, settings.module.clone(), shared.clone()));
        Self {
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
            cache,
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
        });
        self.shared.set_state(SessionState::Connecting, Some(&host));
        self.shared.update(|s| s.sessions_started += 1);
        log::info!(
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
                    match result {
                        Ok(framed) => {
                            act.shared.set_state(SessionState::Handshaking, Some(&host));
                            let addr = Session::start_with(
                                framed,
                                id,
                                host,
                                act.settings.clone(),
                                ctx.address(),
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
        if delay.is_zero() {
            log::warn!("{tag} session ended: {reason}; trying the next host now");
        } else {
            log::error!("{tag} {reason}; next attempt in {delay:?}");
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

    fn finish_close(&mut self, ctx: &mut Context<Self>) {
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
        ctx.stop();
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let cached = self.settings.config_cache.clone();
        let receiver = self.settings.config_receiver.clone();
        if let (Some(path), Some(receiver)) = (cached, receiver) {
            // The cached config goes first, and alone: no message (hosts,
            // close) is handled and no attempt starts until the receiver
            // answered it, so a node's config always follows it and a late
            // cached config can never overwrite a node's.
            let deliver = deliver_cached(
                path,
                self.settings.module.clone(),
                receiver,
                self.settings.config_timeout,
            );
            ctx.wait(
                deliver
                    .into_actor(self)
                    .map(|(), act, ctx| act.attempt(ctx)),
            );
            return;
        }
        self.attempt(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared.set_state(SessionState::Closed, None);
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
        self.shared.update(|s| s.sessions_established += 1);
    }
}

impl Handler<ConfigAccepted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ConfigAccepted, _: &mut Context<Self>) {
        // Whatever session it came from: the receiver applied it.
        if let Some(cache) = &self.cache {
            cache.offer(msg.0);
        }
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
        if !self.closing {
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
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
