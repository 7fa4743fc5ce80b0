//! Delivery: the receivers' lanes, in an actor that lives as long as the
//! client, so that its promises hold across sessions (the cache writer it
//! writes through is the supervisor's, and outlives even this actor):
//!
//! * one delivery in flight per receiver and latest wins ([`super::lanes`]):
//!   a session that ends does not cancel a delivery in flight, and the next
//!   session's snapshots wait behind it;
//! * the cache holds the config the receiver accepted last, whichever
//!   session it came from, also one accepted after its session ended, and
//!   one the receiver accepted after its delivery timed out (unless a newer
//!   one was accepted first): a cold start restores the config that runs;
//! * a rejected config is counted in the status and announced;
//! * every session hears back about every event it offered ([`Owed`]),
//!   even when this actor stops: the answer then says the delivery was
//!   lost, and the supervisor starts a new delivery actor
//!   ([`ensure_running`]).
//!
//! Sessions hand their events over ([`Offer`]) and hear back how each went
//! ([`super::answer::Delivered`]), which is what their handshake waits for.
//! What a session offered and is still waiting when it ends goes with it
//! ([`Withdraw`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures_util::future::{self, Either};
use tokio::sync::oneshot;

use super::answer::{Failure, Owed, Why};
use super::cache::{self, CacheWriter, CACHE_FLUSH_TIMEOUT};
use super::handshake::Initial;
use super::held_hosts::HostsGuard;
use super::lanes::{Lane, Snapshot};
use super::{
    ConfigSource, HostsChanged, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent, Settings,
    Shared,
};
use crate::identity::{Identity, Tracker};
use crate::metrics;
use crate::secrets::safe_receiver_error;

/// How many configs whose delivery timed out are still awaited for a late
/// answer at a time; past it the oldest wait is given up. A receiver that
/// hangs for good costs this many waits, not one per config.
pub(crate) const MAX_LATE_CONFIG_WAITS: usize = 16;

/// Where the outcome of a delivery goes.
pub(crate) enum Origin {
    /// The session that offered it.
    Session { id: u64, owed: Owed },
    /// The supervisor's start, waiting for the cached config's answer.
    Start(oneshot::Sender<()>),
}

impl Origin {
    fn is_session(&self, session: u64) -> bool {
        matches!(self, Origin::Session { id, .. } if *id == session)
    }

    /// No answer is owed any more (a newer offer replaced this one, or its
    /// session is gone).
    fn release(self) {
        if let Origin::Session { owed, .. } = self {
            owed.release();
        }
    }
}

/// What a session hands over.
pub(crate) enum Item {
    Config(RemoteConfig),
    Routes(RoutesChanged),
    /// The addresses of the `index`th required module.
    Hosts(usize, HostsChanged),
}

/// Deliver `item` when its receiver is free; a message of the same
/// receiver still waiting is replaced by it (latest wins). `owed` is the
/// session's answer, and names the event.
pub(crate) struct Offer {
    pub(crate) session: u64,
    pub(crate) owed: Owed,
    pub(crate) item: Item,
}

impl Message for Offer {
    type Result = ();
}

/// The session ended: what it offered and is still waiting is dropped (the
/// next session sends its own snapshots); a delivery in flight completes.
pub(crate) struct Withdraw {
    pub(crate) session: u64,
}

impl Message for Withdraw {
    type Result = ();
}

/// Deliver the cached config (if any) and answer once the receiver did.
pub(crate) struct DeliverCached;

impl Message for DeliverCached {
    type Result = ();
}

/// The client is closing: nothing new is delivered; answers once the
/// config delivery in flight (bounded by the config timeout) is answered
/// and the cache write it caused is on disk (bounded by
/// [`CACHE_FLUSH_TIMEOUT`]).
pub(crate) struct Drain;

impl Message for Drain {
    type Result = ();
}

/// `delivery`, or a new delivery actor in its place when it stopped (a
/// panic in it, say): what it held (messages waiting, the answers it
/// awaited) is gone, and every session that waited heard so.
pub(crate) fn ensure_running(
    delivery: &mut Addr<Delivery>,
    settings: &Arc<Settings>,
    shared: &Arc<Shared>,
    cache: &Option<CacheWriter>,
) {
    if delivery.connected() {
        return;
    }
    log::error!(
        "[module={}] the delivery actor stopped; a new one delivers from the next session on",
        settings.module
    );
    *delivery = Delivery::new(settings.clone(), shared.clone(), cache.clone()).start();
}

pub(crate) struct Delivery {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    config: Option<Lane<RemoteConfig, Origin>>,
    routes: Option<Lane<RoutesChanged, Origin>>,
    hosts: Vec<Lane<HostsChanged, Origin>>,
    cache: Option<CacheWriter>,
    /// The config accepted last: the identity of the next one is taken
    /// against it.
    identity: Tracker,
    /// Empty-list protection of the required modules that opted in.
    hosts_guard: HostsGuard,
    closing: bool,
    /// `Drain`s waiting for the config lane to be idle.
    drained: Vec<oneshot::Sender<()>>,
    /// The bound on the ERROR line of a config rejected again and again.
    rejections: super::repeats::Repeats,
    /// Messages sent to receivers so far: each one's number.
    sent: u64,
    /// The number of the newest config the receiver accepted, and of the
    /// newest it rejected.
    newest_accepted: u64,
    newest_rejected: u64,
    /// Configs whose delivery timed out, awaited for a late answer (by
    /// number), oldest first.
    late: VecDeque<(u64, SpawnHandle)>,
}

impl Delivery {
    /// `cache` is the client's one cache writer: it outlives every delivery
    /// actor, so that a write still under way when one stops is ordered
    /// before the writes of the next (a writer per actor could let an
    /// older config land on disk after a newer one).
    pub(crate) fn new(
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        cache: Option<CacheWriter>,
    ) -> Self {
        let config = settings.config_receiver.clone().map(|r| {
            Lane::new(
                "remote config receiver".to_owned(),
                r,
                settings.config_timeout,
            )
        });
        let routes = settings
            .routes_receiver
            .clone()
            .map(|r| Lane::new("routes receiver".to_owned(), r, settings.receiver_timeout));
        let hosts = settings
            .module_receivers
            .iter()
            .map(|(m, r)| {
                Lane::new(
                    format!("hosts receiver of {m:?}"),
                    r.clone(),
                    settings.receiver_timeout,
                )
            })
            .collect();
        Self {
            identity: Tracker::new(settings.module.clone()),
            hosts_guard: HostsGuard::new(settings.keep_last_hosts.iter().copied()),
            settings,
            shared,
            config,
            routes,
            hosts,
            cache,
            closing: false,
            drained: Vec::new(),
            rejections: super::repeats::Repeats::default(),
            sent: 0,
            newest_accepted: 0,
            newest_rejected: 0,
            late: VecDeque::new(),
        }
    }

    fn tag(&self, origin: &Origin) -> String {
        match origin {
            Origin::Session { id, .. } => {
                format!("[module={} session={id}]", self.settings.module)
            }
            Origin::Start(_) => format!("[module={}]", self.settings.module),
        }
    }

    /// Sends the lane's waiting message unless one is in flight; on the
    /// answer, or at the receiver's timeout, records the outcome and sends
    /// the next. A config not answered in time is still awaited
    /// ([`Delivery::await_late`]).
    fn pump<M, F>(&mut self, kind: Initial, lane_of: F, ctx: &mut Context<Self>)
    where
        M: Snapshot + Outcome,
        M::Result: Send + Into<Result<(), ReceiverError>>,
        F: Fn(&mut Delivery) -> Option<&mut Lane<M, Origin>> + Copy + 'static,
    {
        let Some(lane) = lane_of(self) else { return };
        let Some(mut next) = lane.next() else { return };
        let (receiver, recipient, timeout) =
            (lane.name.clone(), lane.recipient.clone(), lane.timeout);
        next.message.identify(&self.identity);
        let facts = next.message.facts();
        // Not bounded by actix's timeout, which would drop the answer: the
        // timer below ends the wait for the session, the answer is still
        // heard.
        let request = Box::pin(recipient.send(next.message));
        let timer = Box::pin(actix::clock::sleep(timeout));
        self.sent += 1;
        let sent = Sent {
            number: self.sent,
            kind,
            receiver,
            facts,
            event: next.event,
            origin: next.origin,
        };
        ctx.spawn(
            future::select(request, timer)
                .into_actor(self)
                .map(move |first, act, ctx| {
                    let waited = lane_of(act).and_then(Lane::done);
                    match first {
                        Either::Left((answer, _)) => {
                            act.delivered(sent, answer.map(Into::into), waited);
                        }
                        Either::Right(((), request)) => {
                            let late = sent.late();
                            act.delivered(sent, Err(MailboxError::Timeout), waited);
                            if let Some(late) = late {
                                act.await_late(late, request, ctx);
                            }
                        }
                    }
                    act.pump(kind, lane_of, ctx);
                }),
        );
    }

    /// Records how `sent` went and tells its origin.
    fn delivered(
        &mut self,
        sent: Sent,
        result: Result<Result<(), ReceiverError>, MailboxError>,
        waited: Option<std::time::Duration>,
    ) {
        let Sent {
            number,
            kind,
            receiver,
            event,
            origin,
            facts,
        } = sent;
        let tag = self.tag(&origin);
        let answer = match &result {
            Ok(Ok(())) => metrics::Answer::Accepted,
            Ok(Err(_)) => metrics::Answer::Rejected,
            Err(MailboxError::Timeout) => metrics::Answer::TimedOut,
            Err(MailboxError::Closed) => metrics::Answer::Stopped,
        };
        let source = match facts.config_source {
            Some(ConfigSource::Cache) => metrics::Source::Cache,
            _ => metrics::Source::Server,
        };
        metrics::delivered(
            &self.settings.module,
            kind.metered(),
            source,
            answer,
            waited,
        );
        let why = match result {
            Ok(Ok(())) => {
                if let Some(source) = facts.config_source {
                    self.config_accepted(number, source, facts.config, facts.identity, &tag);
                }
                None
            }
            Ok(Err(e)) => {
                let reason = safe_receiver_error(&*e as &(dyn std::error::Error + 'static));
                if let Some(source) = facts.config_source {
                    self.newest_rejected = number;
                    self.shared.config_rejected(source, reason.clone());
                    if let Some(events) = &self.settings.session_events {
                        events.do_send(SessionEvent::ConfigRejected {
                            source,
                            reason: reason.clone(),
                        });
                    }
                }
                Some(Why::Rejected(reason))
            }
            Err(MailboxError::Timeout) => Some(Why::TimedOut),
            Err(MailboxError::Closed) => Some(Why::Stopped),
        };
        let outcome = match why {
            None => Ok(()),
            Some(why) => Err(Failure {
                kind,
                why,
                receiver,
                event,
            }),
        };
        if let Err(failure) = &outcome {
            let reason = failure.reason();
            match facts.config_source {
                Some(_) => {
                    // Said of the config in force now, which a rejection
                    // never changes: none yet, or the last one accepted.
                    let in_force = if self.shared.lock().config_source.is_some() {
                        "the last good config stays in force"
                    } else {
                        "no config has been applied yet"
                    };
                    let line = format!("{reason}; {in_force}");
                    match self.rejections.admit(&line, std::time::Instant::now()) {
                        Some(0) => log::error!("{tag} {line}"),
                        Some(held_back) => log::error!(
                            "{tag} {line} (and {held_back} time(s) more in the last {} s, \
                             logged at debug)",
                            super::repeats::REPEAT_INTERVAL.as_secs()
                        ),
                        None => log::debug!("{tag} {line} (again)"),
                    }
                }
                None => log::error!("{tag} {reason}"),
            }
        }
        match origin {
            Origin::Session { owed, .. } => owed.answer(outcome),
            Origin::Start(done) => {
                let _ = done.send(());
            }
        }
        if matches!(kind, Initial::Config) && !self.config.as_ref().is_some_and(|l| l.busy()) {
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// The receiver accepted config `number`: unless a newer one was
    /// accepted first, it is the last good config now, whatever became of
    /// its session, and a node's goes to the cache.
    fn config_accepted(
        &mut self,
        number: u64,
        source: ConfigSource,
        data: Option<bytes::Bytes>,
        identity: Option<Arc<Identity>>,
        tag: &str,
    ) {
        if number < self.newest_accepted {
            return;
        }
        self.newest_accepted = number;
        let applied = identity.map(|identity| self.identity.accepted(&identity, source, tag));
        self.shared
            .config_accepted(source, applied, number > self.newest_rejected);
        if let (Some(cache), Some(data), false) = (&self.cache, data, source == ConfigSource::Cache)
        {
            cache.offer(data);
        }
    }

    /// Hears the answer to a config whose delivery timed out: the receiver
    /// may still apply it.
    fn await_late<M>(
        &mut self,
        late: Late,
        request: std::pin::Pin<Box<RecipientRequest<M>>>,
        ctx: &mut Context<Self>,
    ) where
        M: Message + Send + 'static,
        M::Result: Send + Into<Result<(), ReceiverError>>,
    {
        if self.late.len() >= MAX_LATE_CONFIG_WAITS {
            if let Some((_, oldest)) = self.late.pop_front() {
                ctx.cancel_future(oldest);
            }
        }
        let number = late.number;
        let handle = ctx.spawn(request.into_actor(self).map(move |answer, act, _| {
            act.late.retain(|(n, _)| *n != number);
            act.late_answer(late, answer.map(Into::into));
        }));
        self.late.push_back((number, handle));
    }

    fn late_answer(&mut self, late: Late, answer: Result<Result<(), ReceiverError>, MailboxError>) {
        let Late {
            number,
            receiver,
            event,
            data,
            identity,
            timed_out_at,
        } = late;
        let tag = format!("[module={}]", self.settings.module);
        let after = timed_out_at.elapsed();
        match answer {
            Ok(Ok(())) if number < self.newest_accepted => log::info!(
                "{tag} the {receiver} accepted {event} {after:?} after its timeout; a newer \
                 config was accepted first and stays the last good one"
            ),
            Ok(Ok(())) => {
                log::info!(
                    "{tag} the {receiver} accepted {event} {after:?} after its timeout: it is the \
                     last good config now"
                );
                self.config_accepted(number, ConfigSource::Server, Some(data), identity, &tag);
            }
            Ok(Err(e)) => {
                let reason = safe_receiver_error(&*e as &(dyn std::error::Error + 'static));
                log::warn!(
                    "{tag} the {receiver} rejected {event} {after:?} after its timeout: {reason}"
                );
            }
            Err(_) => {}
        }
    }

    fn offer_config(&mut self, config: RemoteConfig, event: Cow<'static, str>, origin: Origin) {
        let tag = self.tag(&origin);
        let Some(lane) = self.config.as_mut() else {
            origin.release();
            return;
        };
        if let Some(replaced) = lane.offer(config, event, origin) {
            replaced.release();
            log::debug!("{tag} a waiting config was replaced by a newer one (latest wins)");
        }
    }

    /// Drops the waiting messages whose origin is `gone`: no answer is owed
    /// for them.
    fn release_waiting(&mut self, gone: impl Fn(&Origin) -> bool + Copy) {
        let released = self
            .config
            .as_mut()
            .and_then(|l| l.withdraw(gone))
            .into_iter()
            .chain(self.routes.as_mut().and_then(|l| l.withdraw(gone)))
            .chain(self.hosts.iter_mut().filter_map(|l| l.withdraw(gone)))
            .collect::<Vec<_>>();
        released.into_iter().for_each(Origin::release);
    }
}

/// A message sent to its receiver, what its answer is recorded with.
struct Sent {
    /// Its number among the messages sent.
    number: u64,
    kind: Initial,
    receiver: String,
    event: Cow<'static, str>,
    origin: Origin,
    facts: Facts,
}

impl Sent {
    /// What a late answer to it is heard with: for a node's config only
    /// (a late answer to anything else changes nothing).
    fn late(&self) -> Option<Late> {
        match (self.facts.config_source, &self.facts.config) {
            (Some(ConfigSource::Server), Some(data)) => Some(Late {
                number: self.number,
                receiver: self.receiver.clone(),
                event: self.event.clone(),
                data: data.clone(),
                identity: self.facts.identity.clone(),
                timed_out_at: Instant::now(),
            }),
            _ => None,
        }
    }
}

/// A config whose delivery timed out, awaited for the receiver's answer.
struct Late {
    number: u64,
    receiver: String,
    event: Cow<'static, str>,
    data: bytes::Bytes,
    /// Its hash and change summary.
    identity: Option<Arc<Identity>>,
    timed_out_at: Instant,
}

/// What to remember about a message after it was sent.
#[derive(Default)]
struct Facts {
    /// For a config: where it came from.
    config_source: Option<ConfigSource>,
    /// For a config: its bytes, for the cache once accepted.
    config: Option<bytes::Bytes>,
    /// For a config: its hash and change summary.
    identity: Option<Arc<Identity>>,
}

trait Outcome {
    /// Takes what the message shows of itself against the config accepted
    /// last (a config's identity), just before it is sent.
    fn identify(&mut self, _accepted: &Tracker) {}

    fn facts(&self) -> Facts {
        Facts::default()
    }
}

impl Outcome for RemoteConfig {
    fn identify(&mut self, accepted: &Tracker) {
        self.set_identity(accepted.identify(&self.data));
    }

    fn facts(&self) -> Facts {
        Facts {
            config_source: Some(self.source),
            config: self.kept_when_accepted(),
            identity: self.identity().cloned(),
        }
    }
}

impl Outcome for RoutesChanged {}
impl Outcome for HostsChanged {}

impl Actor for Delivery {
    type Context = Context<Self>;
}

impl Handler<Offer> for Delivery {
    type Result = ();

    fn handle(&mut self, msg: Offer, ctx: &mut Context<Self>) {
        if self.closing {
            // The client is closing: so is the session, which no longer
            // waits.
            msg.owed.release();
            return;
        }
        let event = msg.owed.event().clone();
        let origin = Origin::Session {
            id: msg.session,
            owed: msg.owed,
        };
        let tag = self.tag(&origin);
        match msg.item {
            Item::Config(config) => {
                self.offer_config(config, event, origin);
                self.pump(Initial::Config, |d| d.config.as_mut(), ctx);
            }
            Item::Routes(routes) => {
                let Some(lane) = self.routes.as_mut() else {
                    origin.release();
                    return;
                };
                if let Some(replaced) = lane.offer(routes, event, origin) {
                    replaced.release();
                    log::debug!("{tag} a waiting routing table was replaced (latest wins)");
                }
                self.pump(Initial::Routes, |d| d.routes.as_mut(), ctx);
            }
            Item::Hosts(index, hosts) => {
                let tag = self.tag(&origin);
                let hosts = self.hosts_guard.filter(index, hosts, &tag, &self.shared);
                let Some(lane) = self.hosts.get_mut(index) else {
                    origin.release();
                    return;
                };
                if let Some(replaced) = lane.offer(hosts, event, origin) {
                    replaced.release();
                    log::debug!("{tag} waiting addresses replaced (latest wins)");
                }
                self.pump(Initial::Hosts(index), move |d| d.hosts.get_mut(index), ctx);
            }
        }
    }
}

impl Handler<Withdraw> for Delivery {
    type Result = ();

    fn handle(&mut self, msg: Withdraw, _: &mut Context<Self>) {
        self.release_waiting(|o| o.is_session(msg.session));
    }
}

impl Handler<DeliverCached> for Delivery {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: DeliverCached, _: &mut Context<Self>) -> Self::Result {
        let path = self.settings.config_cache.clone();
        let module = self.settings.module.clone();
        Box::pin(
            async move {
                match path {
                    Some(path) => cache::read(path, &module).await,
                    None => None,
                }
            }
            .into_actor(self)
            .then(|config, act, ctx| {
                let (done, answered) = oneshot::channel();
                match config {
                    Some(config) if act.config.is_some() && !act.closing => {
                        act.offer_config(config, "config cache".into(), Origin::Start(done));
                        act.pump(Initial::Config, |d| d.config.as_mut(), ctx);
                    }
                    _ => drop(done),
                }
                async move {
                    let _ = answered.await;
                }
                .into_actor(act)
            }),
        )
    }
}

impl Handler<Drain> for Delivery {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.closing = true;
        self.release_waiting(|_| true);
        let (done, idle) = oneshot::channel();
        if self.config.as_ref().is_some_and(|l| l.busy()) {
            self.drained.push(done);
        } else {
            let _ = done.send(());
        }
        let cache = self.cache.clone();
        let module = self.settings.module.clone();
        Box::pin(
            async move {
                let _ = idle.await;
                if let Some(cache) = cache {
                    if actix::clock::timeout(CACHE_FLUSH_TIMEOUT, cache.idle())
                        .await
                        .is_err()
                    {
                        log::warn!(
                            "[module={module}] the config cache was not written within \
                             {CACHE_FLUSH_TIMEOUT:?} of close(); closing without waiting"
                        );
                    }
                }
            }
            .into_actor(self),
        )
    }
}
