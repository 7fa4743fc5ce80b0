//! The supervisor: one session at a time, host rotation and backoff.
//!
//! Each attempt connects to the next host (round-robin from a random
//! start) within the connect timeout, then hands the connection to a fresh
//! [`Session`] actor. When a session ends the supervisor decides when to try
//! again: at once after a session that had become active, otherwise after an
//! exponential backoff with jitter that only an active session resets.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use backoff::backoff::Backoff;
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder};
use rand::Rng;
use tokio::sync::oneshot;

use super::session::{CloseSession, Session};
use super::{SessionEvent, SessionState, Settings, Shared};

/// Stop for good (the handle's `close()`).
pub(crate) struct Close;

impl Message for Close {
    type Result = ();
}

/// New hosts for the next session.
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

/// A session (or a connection attempt) ended.
pub(crate) struct SessionEnded {
    pub(crate) id: u64,
    pub(crate) reason: String,
    /// It had become active.
    pub(crate) established: bool,
    /// It ended because the client closed it.
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
    backoff: ExponentialBackoff,
    session_seq: u64,
    /// The live session, or the attempt under way.
    current: Option<Current>,
    /// A pending connect or backoff timer.
    pending: Option<SpawnHandle>,
    closing: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
}

struct Current {
    id: u64,
    host: String,
    session: Option<Addr<Session>>,
}

impl Supervisor {
    pub(crate) fn new(settings: Arc<Settings>, hosts: Vec<String>, shared: Arc<Shared>) -> Self {
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_interval(settings.backoff_initial)
            .with_max_interval(settings.backoff_max)
            .with_multiplier(2.0)
            .with_randomization_factor(0.5)
            .with_max_elapsed_time(None)
            .build();
        let next_host = rand::thread_rng().gen_range(0..hosts.len().max(1));
        Self {
            settings,
            shared,
            hosts,
            next_host,
            backoff,
            session_seq: 0,
            current: None,
            pending: None,
            closing: false,
            close_waiters: Vec::new(),
        }
    }

    fn next_delay(&mut self) -> Duration {
        self.backoff
            .next_backoff()
            .unwrap_or(self.settings.backoff_max)
            .min(self.settings.backoff_max)
    }

    fn attempt(&mut self, ctx: &mut Context<Self>) {
        self.pending = None;
        if self.closing {
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
        let connect = Session::connect(settings, host.clone());
        let handle = ctx.spawn(connect.into_actor(self).map(move |result, act, ctx| {
            act.pending = None;
            if act.current.as_ref().map(|c| c.id) != Some(id) {
                return;
            }
            match result {
                Ok(framed) => {
                    let supervisor = ctx.address();
                    let settings = act.settings.clone();
                    let shared = act.shared.clone();
                    let addr = Session::start_with(framed, id, host, settings, shared, supervisor);
                    if let Some(current) = act.current.as_mut() {
                        current.session = Some(addr);
                    }
                }
                Err(reason) => act.ended(id, reason, false, false, ctx),
            }
        }));
        self.pending = Some(handle);
    }

    fn ended(
        &mut self,
        id: u64,
        reason: String,
        established: bool,
        closed_by_us: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(current) = self.current.take_if(|c| c.id == id) else {
            return;
        };
        let host = current.host;
        if self.closing || closed_by_us {
            self.shared.set_state(SessionState::Closed, None);
            log::info!(
                "[module={} session={id} host={host}] closed",
                self.settings.module
            );
            self.finish_close(ctx);
            return;
        }
        let delay = if established {
            self.backoff.reset();
            Duration::ZERO
        } else {
            self.next_delay()
        };
        self.shared.update(|s| {
            s.last_error = Some(reason.clone());
            s.sessions_failed += 1;
        });
        if delay.is_zero() {
            log::warn!(
                "[module={} session={id} host={host}] session ended: {reason}; trying the next host now",
                self.settings.module
            );
        } else {
            log::error!(
                "[module={} session={id} host={host}] {reason}; next attempt in {delay:?}",
                self.settings.module
            );
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
        self.attempt(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared.set_state(SessionState::Closed, None);
    }
}

impl Handler<SessionActive> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionActive, _: &mut Context<Self>) {
        let Some(current) = self.current.as_ref().filter(|c| c.id == msg.id) else {
            return;
        };
        self.backoff.reset();
        self.shared
            .set_state(SessionState::Active, Some(&current.host));
        self.shared.update(|s| s.sessions_established += 1);
    }
}

impl Handler<SessionEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, ctx: &mut Context<Self>) {
        self.ended(msg.id, msg.reason, msg.established, msg.closed_by_us, ctx);
    }
}

impl Handler<UpdateHosts> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: UpdateHosts, _: &mut Context<Self>) {
        if msg.0.is_empty() {
            return;
        }
        log::info!(
            "[module={}] config-service hosts updated: {:?}",
            self.settings.module,
            msg.0
        );
        self.next_host = rand::thread_rng().gen_range(0..msg.0.len());
        self.hosts = msg.0;
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
