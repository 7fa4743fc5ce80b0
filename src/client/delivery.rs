//! Delivery: the receivers' lanes and the cache writer, in an actor that
//! lives as long as the client, so that its promises hold across sessions:
//!
//! * one delivery in flight per receiver and latest wins ([`super::lanes`]):
//!   a session that ends does not cancel a delivery in flight, and the next
//!   session's snapshots wait behind it;
//! * the cache holds exactly the last config the receiver accepted,
//!   whichever session it came from, also one accepted after its session
//!   ended;
//! * a rejected config is counted in the status and announced.
//!
//! Sessions hand their events over ([`Offer`]) and hear back how each went
//! ([`Delivered`]), which is what their handshake waits for. What a session
//! offered and is still waiting when it ends goes with it ([`Withdraw`]).

use std::borrow::Cow;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::cache::{self, CacheWriter, CACHE_FLUSH_TIMEOUT};
use super::handshake::Initial;
use super::held_hosts::HostsGuard;
use super::lanes::{Lane, Snapshot};
use super::{
    ConfigSource, HostsChanged, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent, Settings,
    Shared,
};
use crate::identity::{Identity, Tracker};
use crate::secrets::safe_receiver_error;

/// Where the outcome of a delivery goes.
pub(crate) enum Origin {
    /// The session that offered it.
    Session {
        id: u64,
        reply: Recipient<Delivered>,
    },
    /// The supervisor's start, waiting for the cached config's answer.
    Start(oneshot::Sender<()>),
}

impl Origin {
    fn is_session(&self, session: u64) -> bool {
        matches!(self, Origin::Session { id, .. } if *id == session)
    }
}

/// What a session hands over.
pub(crate) enum Item {
    Config(RemoteConfig),
    Routes(RoutesChanged),
    /// The addresses of the `index`th required module.
    Hosts(usize, HostsChanged),
}

/// Deliver `item` (from `event`) when its receiver is free; a message of
/// the same receiver still waiting is replaced by it (latest wins).
pub(crate) struct Offer {
    pub(crate) session: u64,
    pub(crate) reply: Recipient<Delivered>,
    pub(crate) event: Cow<'static, str>,
    pub(crate) item: Item,
}

impl Message for Offer {
    type Result = ();
}

/// How a delivery offered by a session went: `Err` names the receiver, the
/// event and why, in safe text.
pub(crate) struct Delivered {
    pub(crate) kind: Initial,
    pub(crate) outcome: Result<(), String>,
}

impl Message for Delivered {
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
}

impl Delivery {
    pub(crate) fn new(settings: Arc<Settings>, shared: Arc<Shared>) -> Self {
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
        let cache = settings
            .config_cache
            .clone()
            .map(|path| CacheWriter::new(path, settings.module.clone(), shared.clone()));
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
    /// answer records the outcome and sends the next.
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
        let sent = Sent {
            kind,
            receiver,
            facts: next.message.facts(),
            event: next.event,
            origin: next.origin,
        };
        let request = recipient.send(next.message).timeout(timeout);
        ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
            let waited = lane_of(act).and_then(Lane::done);
            act.delivered(sent, result, waited);
            act.pump(kind, lane_of, ctx);
        }));
    }

    /// Records how `sent` went and tells its origin.
    fn delivered<R: Into<Result<(), ReceiverError>>>(
        &mut self,
        sent: Sent,
        result: Result<R, MailboxError>,
        waited: Option<std::time::Duration>,
    ) {
        let Sent {
            kind,
            receiver,
            event,
            origin,
            facts,
        } = sent;
        let tag = self.tag(&origin);
        let result = result.map(Into::into);
        crate::metrics::delivered(
            &self.settings.module,
            kind.metered(),
            facts.config_source.unwrap_or(ConfigSource::Server),
            &result,
            waited,
        );
        let outcome = match result {
            Ok(Ok(())) => {
                if let Some(source) = facts.config_source {
                    self.shared.config_accepted();
                    if let Some(identity) = &facts.identity {
                        let applied = self.identity.accepted(identity, source, &tag);
                        self.shared.update(|s| s.config = Some(applied));
                    }
                    // The receiver applied it, whatever became of its
                    // session: it is the last good config now.
                    if let (Some(cache), Some(data), false) =
                        (&self.cache, facts.config, source == ConfigSource::Cache)
                    {
                        cache.offer(data);
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => {
                let reason = safe_receiver_error(&*e as &(dyn std::error::Error + 'static));
                if let Some(source) = facts.config_source {
                    self.shared.config_rejected(source, reason.clone());
                    if let Some(events) = &self.settings.session_events {
                        events.do_send(SessionEvent::ConfigRejected {
                            source,
                            reason: reason.clone(),
                        });
                    }
                }
                Err(format!("{receiver} rejected {event}: {reason}"))
            }
            Err(MailboxError::Timeout) => Err(format!("{receiver} timed out on {event}")),
            Err(MailboxError::Closed) => Err(format!(
                "{receiver} is stopped (its mailbox is closed); {event} not delivered"
            )),
        };
        if let Err(error) = &outcome {
            match facts.config_source {
                Some(_) => log::error!("{tag} {error}; the last good config stays in force"),
                None => log::error!("{tag} {error}"),
            }
        }
        match origin {
            Origin::Session { reply, .. } => reply.do_send(Delivered { kind, outcome }),
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

    fn offer_config(&mut self, config: RemoteConfig, event: Cow<'static, str>, origin: Origin) {
        let tag = self.tag(&origin);
        let Some(lane) = self.config.as_mut() else {
            return;
        };
        if lane.offer(config, event, origin) {
            log::debug!("{tag} a waiting config was replaced by a newer one (latest wins)");
        }
    }
}

/// A message sent to its receiver, what its answer is recorded with.
struct Sent {
    kind: Initial,
    receiver: String,
    event: Cow<'static, str>,
    origin: Origin,
    facts: Facts,
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
            return;
        }
        let origin = Origin::Session {
            id: msg.session,
            reply: msg.reply,
        };
        match msg.item {
            Item::Config(config) => {
                self.offer_config(config, msg.event, origin);
                self.pump(Initial::Config, |d| d.config.as_mut(), ctx);
            }
            Item::Routes(routes) => {
                let tag = self.tag(&origin);
                let Some(lane) = self.routes.as_mut() else {
                    return;
                };
                if lane.offer(routes, msg.event, origin) {
                    log::debug!("{tag} a waiting routing table was replaced (latest wins)");
                }
                self.pump(Initial::Routes, |d| d.routes.as_mut(), ctx);
            }
            Item::Hosts(index, hosts) => {
                let tag = self.tag(&origin);
                let hosts = self.hosts_guard.filter(index, hosts, &tag, &self.shared);
                let Some(lane) = self.hosts.get_mut(index) else {
                    return;
                };
                if lane.offer(hosts, msg.event, origin) {
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
        let gone = |o: &Origin| o.is_session(msg.session);
        if let Some(lane) = self.config.as_mut() {
            lane.withdraw(gone);
        }
        if let Some(lane) = self.routes.as_mut() {
            lane.withdraw(gone);
        }
        for lane in &mut self.hosts {
            lane.withdraw(gone);
        }
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
        if let Some(lane) = self.config.as_mut() {
            lane.clear();
        }
        if let Some(lane) = self.routes.as_mut() {
            lane.clear();
        }
        for lane in &mut self.hosts {
            lane.clear();
        }
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
