//! One ETP session on one WebSocket connection: the actor that wires the
//! pieces together. Frames come in through the read-limited codec
//! ([`crate::etp::ws`]), events are classified ([`super::dispatch`]), the
//! handshake decides what is due ([`super::handshake`]), events go to the
//! client's delivery actor ([`super::delivery`]), which outlives the
//! session, and pings and the close handshake follow [`super::liveness`].
//!
//! Any failure before `Active` (a non-`ok` ack, an ack timeout, a missing
//! initial event, a receiver error, an `ERROR_*` event, invalid JSON) ends
//! the session with a reason that names it and a close frame that says so;
//! the supervisor then tries again. Once the session has written its close
//! frame it writes and delivers nothing else.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_http::ws::{self, CloseCode, CloseReason, Frame};
use bytes::Bytes;
use futures_util::stream::{SplitSink, StreamExt};

use super::answer::{Delivered, Owed, Why};
use super::connect::Framed;
use super::declaration::Redeclare;
use super::delivery::{Delivery, Item, Offer, Withdraw};
use super::dispatch::{classify, Incoming};
use super::end_reason::EndReason;
use super::handshake::{Handshake, Initial};
use super::liveness::{close_frame, echo, Closing, FlushOnClose, Heartbeat, CLOSE_GRACE};
use super::outbox::{Outbox, OutboxSink, MAX_UNSENT_BYTES};
use super::peer_lines::PeerLines;
use super::{HostsChanged, RemoteConfig, RoutesChanged, SessionState, Settings, Shared};
use crate::etp::ws::{message_for, FragmentError, Reassembler};
use crate::etp::Event;
use crate::events::*;
use crate::secrets::{Bounded, LogPayload};
use crate::types::RoutingConfig;

type Sink = OutboxSink<FlushOnClose<SplitSink<Framed, ws::Message>>>;

/// Session actors alive in the process, for leak tests.
pub(crate) static LIVE_SESSIONS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// How much of an event name from the peer a log line or an ack carries;
/// no ETP event's name comes near it.
const MAX_EVENT_NAME_SHOWN: usize = 256;

/// How much of a text from the peer (an `ERROR_*` event, a refusing ack) a
/// reason or a log line carries.
const MAX_SERVER_TEXT_SHOWN: usize = 512;

/// Ask the session to close with 1000.
pub(crate) struct CloseSession;

impl Message for CloseSession {
    type Result = ();
}

/// A session's `MODULE:READY` was acknowledged.
pub(crate) struct SessionActive {
    pub(crate) id: u64,
}

impl Message for SessionActive {
    type Result = ();
}

/// A session ended (the supervisor makes one for a connection attempt that
/// failed, too).
pub(crate) struct SessionEnded {
    pub(crate) id: u64,
    /// Why, as a type: what the metrics and the pacing read.
    pub(crate) end: EndReason,
    /// Why, in words (naming hosts, perhaps quoting the server).
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

/// Where a session reports how it goes.
pub(crate) struct Reports {
    pub(crate) active: Recipient<SessionActive>,
    pub(crate) ended: Recipient<SessionEnded>,
}

struct PendingAck {
    event: &'static str,
    timer: SpawnHandle,
}

pub(crate) struct Session {
    id: u64,
    host: String,
    settings: Arc<Settings>,
    /// Where the session reports (the supervisor).
    reports: Reports,
    sink: SinkWrite<ws::Message, Sink>,
    /// What the sink holds that the peer has not taken, and the one pong
    /// owed.
    outbox: Outbox,
    handshake: Handshake,
    next_ack_id: u64,
    pending: HashMap<u64, PendingAck>,
    /// The client's delivery actor: the receivers' lanes.
    delivery: Addr<Delivery>,
    fragments: Reassembler,
    /// Warnings about what the peer sent: a few in full, then counted.
    peer_warnings: PeerLines,
    /// The INFO lines with each required module's addresses, bounded the
    /// same way (by index in the settings' module receivers).
    address_lines: Vec<PeerLines>,
    heartbeat: Heartbeat,
    /// Set once our close frame is written: nothing is written or delivered
    /// after it.
    closing: Option<Closing>,
    /// Why the session ends, once that is known (the first one wins).
    end_reason: Option<(EndReason, String)>,
    /// When `MODULE:READY` was acknowledged.
    active_since: Option<Instant>,
    /// The endpoints changed before this session was active: declare again
    /// once its READY is acknowledged.
    redeclare: bool,
    /// `close()` asked for this end.
    closed_by_us: bool,
    /// The status, written here only when the session outlives its
    /// supervisor: its runtime is being dropped (see [`Actor::stopping`]).
    shared: Arc<Shared>,
    /// The session is being dropped with its runtime: no timer can be set
    /// any more, and the status says how it ended.
    teardown: bool,
    /// The session itself asked to stop (see [`Session::stop_now`]).
    stop_requested: bool,
}

/// How a session's log lines begin: `[module=… session=… host=…]`.
pub(crate) fn session_tag(module: &str, id: u64, host: &str) -> String {
    format!("[module={module} session={id} host={host}]")
}

impl Session {
    /// Starts the session actor on an upgraded connection.
    pub(crate) fn start_with(
        framed: Framed,
        id: u64,
        host: String,
        settings: Arc<Settings>,
        reports: Reports,
        delivery: Addr<Delivery>,
        shared: Arc<Shared>,
    ) -> Addr<Session> {
        let (sink, stream) = framed.split();
        let tag = session_tag(&settings.module, id, &host);
        let peer_warnings = PeerLines::warnings(tag.clone());
        let address_lines = settings
            .module_receivers
            .iter()
            .map(|(module, _)| PeerLines::addresses(tag.clone(), module))
            .collect();
        Session::create(move |ctx| {
            // The sink is polled before the stream, so that a reset while a
            // large write is under way shows as the write error it is.
            let outbox = Outbox::default();
            let sink = SinkWrite::new(OutboxSink::new(FlushOnClose(sink), outbox.clone()), ctx);
            ctx.add_stream(stream);
            Session {
                id,
                host,
                sink,
                outbox,
                handshake: Handshake::new(
                    settings.config_receiver.is_some(),
                    settings.routes_receiver.is_some(),
                    settings.module_receivers.len(),
                ),
                next_ack_id: 1,
                pending: HashMap::new(),
                delivery,
                fragments: Reassembler::new(settings.read_limit),
                peer_warnings,
                address_lines,
                heartbeat: Heartbeat::default(),
                closing: None,
                end_reason: None,
                active_since: None,
                redeclare: false,
                closed_by_us: false,
                shared,
                teardown: false,
                stop_requested: false,
                settings,
                reports,
            }
        })
    }

    fn tag(&self) -> String {
        session_tag(&self.settings.module, self.id, &self.host)
    }

    // ---- ending -------------------------------------------------------------

    /// Gives the session up: `end` and `reason` are reported (the first
    /// one given wins) and the peer is told with a close frame of `code`.
    fn fail(&mut self, end: EndReason, reason: String, code: CloseCode, ctx: &mut Context<Self>) {
        let frame = close_frame(code, &reason);
        self.fail_telling(end, reason, frame, ctx);
    }

    /// Gives the session up: `end` and `reason` are reported (the first
    /// one given wins), the peer gets `frame` (a close frame that says less).
    fn fail_telling(
        &mut self,
        end: EndReason,
        reason: String,
        frame: ws::Message,
        ctx: &mut Context<Self>,
    ) {
        if self.closing.is_some() {
            return;
        }
        self.end_reason.get_or_insert((end, reason));
        self.begin_close(frame, true, ctx);
    }

    /// Writes `frame` (a close frame), closes the sink and stops once that is
    /// flushed (and, with `wait_for_peer`, once the peer
    /// answered), within [`CLOSE_GRACE`]. From here on nothing else is
    /// written or delivered.
    fn begin_close(&mut self, frame: ws::Message, wait_for_peer: bool, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(Closing::new(wait_for_peer));
        for (_, pending) in self.pending.drain() {
            ctx.cancel_future(pending.timer);
        }
        // What waits for a receiver goes with the session; what is in
        // flight completes.
        self.delivery.do_send(Withdraw { session: self.id });
        self.outbox.clear_pong();
        self.outbox.queued(&frame);
        if self.sink.write(frame).is_err() {
            // The sink is already closing: nothing more can be said.
            self.stop_now(ctx);
            return;
        }
        self.sink.close();
        if self.teardown {
            // No timer without a runtime: the sink is polled once more as
            // the context is dropped, and that is all the time there is.
            return;
        }
        ctx.run_later(CLOSE_GRACE, |act, ctx| {
            log::debug!(
                "{} close handshake not done within {CLOSE_GRACE:?}",
                act.tag()
            );
            act.stop_now(ctx);
        });
    }

    /// Stops the actor on purpose: [`Actor::stopping`] then lets it go.
    fn stop_now(&mut self, ctx: &mut Context<Self>) {
        self.stop_requested = true;
        ctx.stop();
    }

    /// Writes a frame unless the session is closing. A peer that has left
    /// more than [`MAX_UNSENT_BYTES`] (plus the registration's emits) unread
    /// ends the session with 1008:
    /// what waits for it is dropped and the close frame goes next.
    fn write(&mut self, message: ws::Message, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        let unsent = self.outbox.unsent_bytes();
        // Room for the registration's own emits (a schema can be large)
        // on top of the bound.
        let limit = MAX_UNSENT_BYTES
            .saturating_add(self.settings.schema_payload.len())
            .saturating_add(self.settings.requirements_payload.len())
            .saturating_add(self.settings.declaration.len());
        if unsent > limit {
            self.outbox.discard_unsent();
            let reason =
                format!("peer is not reading: over {limit} bytes written and not taken ({unsent})");
            self.fail(EndReason::PeerNotReading, reason, CloseCode::Policy, ctx);
            return;
        }
        self.outbox.queued(&message);
        if self.sink.write(message).is_err() {
            log::debug!("{} frame dropped: the connection is closing", self.tag());
        }
    }

    // ---- emits and acks -------------------------------------------------

    fn send_event(&mut self, event: &Event, ctx: &mut Context<Self>) {
        self.write(message_for(event.encode()), ctx);
    }

    fn emit_with_ack(&mut self, event: &'static str, data: Bytes, ctx: &mut Context<Self>) {
        let ack_id = self.next_ack_id;
        self.next_ack_id += 1;
        // The schema payload goes through the masker; others by size only.
        match event {
            MODULE_SEND_CONFIG_SCHEMA => log::debug!(
                "{} emit {event} #{ack_id}: {}",
                self.tag(),
                LogPayload(&data)
            ),
            _ => log::debug!(
                "{} emit {event} #{ack_id} ({} bytes)",
                self.tag(),
                data.len()
            ),
        }
        self.send_event(&Event::new(event, ack_id, data), ctx);
        let timeout = self.settings.ack_timeout;
        let timer = ctx.run_later(timeout, move |act, ctx| {
            if act.pending.remove(&ack_id).is_some() {
                crate::metrics::ack_timeout(&act.settings.module, event);
                let reason = format!("no ack for {event} within {timeout:?}");
                act.fail(EndReason::AckTimeout, reason, CloseCode::Error, ctx);
            }
        });
        self.pending.insert(ack_id, PendingAck { event, timer });
    }

    fn on_ack(&mut self, name: &str, ack_id: u64, text: &[u8], ctx: &mut Context<Self>) {
        let Some(pending) = self.pending.remove(&ack_id) else {
            self.peer_warnings.line(format_args!(
                "ignoring {} #{ack_id}: no emit awaits it (late or unknown)",
                Bounded(name, MAX_EVENT_NAME_SHOWN)
            ));
            return;
        };
        ctx.cancel_future(pending.timer);
        let text = String::from_utf8_lossy(text);
        if text != ACK_OK {
            let reason = format!(
                "server refused {}: {}",
                pending.event,
                Bounded(&text, MAX_SERVER_TEXT_SHOWN)
            );
            self.fail(EndReason::AckRefused, reason, CloseCode::Error, ctx);
            return;
        }
        log::debug!("{} ack {} ok", self.tag(), pending.event);
        match pending.event {
            MODULE_SEND_CONFIG_SCHEMA | MODULE_SEND_REQUIREMENTS if self.handshake.registered() => {
                self.start_initial_deadlines(ctx);
                self.maybe_declare(ctx);
            }
            MODULE_READY if self.active_since.is_some() => {
                log::info!("{} declared again (the endpoints changed)", self.tag());
            }
            MODULE_READY => {
                self.handshake.activated();
                self.active_since = Some(Instant::now());
                log::info!("{} active", self.tag());
                self.reports.active.do_send(SessionActive { id: self.id });
                // Sent from here, not from the supervisor, so that it reaches
                // an actor that also receives configs before any later event.
                if let Some(events) = &self.settings.session_events {
                    events.do_send(super::SessionEvent::Active {
                        host: self.host.clone(),
                    });
                }
                if std::mem::take(&mut self.redeclare) {
                    let payload = self.settings.declaration.payload();
                    self.emit_with_ack(MODULE_READY, payload, ctx);
                }
            }
            _ => {}
        }
    }

    // ---- the handshake ----------------------------------------------------

    fn start_initial_deadlines(&mut self, ctx: &mut Context<Self>) {
        let wait = self.settings.config_initial_wait;
        ctx.run_later(wait, move |act, ctx| {
            if act.handshake.config_missing() {
                let reason = format!("no {CONFIG_SEND_CONFIG_WHEN_CONNECTED} within {wait:?}");
                act.fail(EndReason::InitialTimeout, reason, CloseCode::Error, ctx);
            }
        });
        let wait = self.settings.initial_wait;
        ctx.run_later(wait, move |act, ctx| {
            let event = match act.handshake.first_missing() {
                None => return,
                Some(Initial::Routes) => CONFIG_SEND_ROUTES_WHEN_CONNECTED.to_owned(),
                Some(Initial::Hosts(i)) => {
                    module_connected_event(&act.settings.module_receivers[i].0)
                }
                Some(Initial::Config) => CONFIG_SEND_CONFIG_WHEN_CONNECTED.to_owned(),
            };
            let reason = format!("no {event} within {wait:?}");
            act.fail(EndReason::InitialTimeout, reason, CloseCode::Error, ctx);
        });
    }

    fn maybe_declare(&mut self, ctx: &mut Context<Self>) {
        if self.closing.is_none() && self.handshake.declare_now() {
            let payload = self.settings.declaration.payload();
            self.emit_with_ack(MODULE_READY, payload, ctx);
        }
    }

    /// A delivery this session offered was answered.
    fn delivered(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        match msg.outcome {
            Ok(()) => {
                self.handshake.accepted(msg.kind);
                self.maybe_declare(ctx);
            }
            // Logged by delivery; after the handshake a receiver's failure
            // changes nothing. A lost delivery does: the delivery actor
            // stopped, and this session could deliver nothing more. Its
            // end lets the supervisor start a new one and register again.
            Err(failure) if self.handshake.is_active() && failure.why != Why::Lost => {}
            // The receiver's words stay here: the config-service is told
            // what failed.
            Err(failure) => {
                if self.handshake.is_active() {
                    log::error!("{} {}; registering again", self.tag(), failure.reason());
                }
                let frame = close_frame(CloseCode::Error, failure.told());
                self.fail_telling(EndReason::ReceiverError, failure.reason(), frame, ctx);
            }
        }
    }

    /// Hands `item` to the delivery actor; its answer is owed to this
    /// session whatever becomes of that actor ([`Owed`]).
    fn offer(&self, event: Cow<'static, str>, item: Item, ctx: &mut Context<Self>) {
        let kind = match &item {
            Item::Config(_) => Initial::Config,
            Item::Routes(_) => Initial::Routes,
            Item::Hosts(index, _) => Initial::Hosts(*index),
        };
        self.delivery.do_send(Offer {
            session: self.id,
            owed: Owed::new(kind, event, ctx.address().recipient()),
            item,
        });
    }

    // ---- incoming events --------------------------------------------------

    fn on_message(&mut self, message: Bytes, ctx: &mut Context<Self>) {
        let required = self
            .settings
            .module_receivers
            .iter()
            .map(|(m, _)| m.as_str());
        let (event, incoming) = match classify(message, required) {
            Ok(classified) => classified,
            Err(e) => {
                self.peer_warnings.line(format_args!("{e}; ignored"));
                return;
            }
        };
        match incoming {
            Incoming::Ack { ack_id, text } => {
                self.on_ack(&event.name, ack_id, &text, ctx);
                return;
            }
            Incoming::Config {
                event: name,
                initial,
                config,
            } => match config {
                Ok(data) => self.on_config(name, initial, data, ctx),
                Err(error) => {
                    crate::metrics::config_invalid(&self.settings.module);
                    self.bad_payload(error, ctx)
                }
            },
            Incoming::Routes {
                event: name,
                routes,
            } => match routes {
                Ok(routes) => self.on_routes(name, routes, ctx),
                Err(error) => self.bad_payload(error, ctx),
            },
            Incoming::Hosts { index, hosts } => match hosts {
                Ok(hosts) => self.on_hosts(index, hosts, ctx),
                Err(error) => self.bad_payload(error, ctx),
            },
            Incoming::ServerError { event: name, text } => {
                let text = Bounded(&text, MAX_SERVER_TEXT_SHOWN);
                if self.handshake.is_active() {
                    log::error!("{} server sent {name}: {text}", self.tag());
                } else {
                    let reason = format!("server sent {name}: {text}");
                    self.fail(EndReason::ServerError, reason, CloseCode::Error, ctx);
                    return;
                }
            }
            Incoming::Unknown => {
                let shown = Bounded(&event.name, MAX_EVENT_NAME_SHOWN);
                self.peer_warnings.line(format_args!(
                    "unknown event {shown} ({} bytes) ignored",
                    event.data.len()
                ));
                // An ack repeats the event's name: one longer than any ETP
                // event's is not answered, so an ack stays small.
                if event.wants_ack() && event.name.len() <= MAX_EVENT_NAME_SHOWN {
                    let text = format!("unknown event {shown}");
                    self.send_event(&event.ack(text), ctx);
                }
                return;
            }
        }
        if event.wants_ack() {
            self.send_event(&event.ack(Bytes::new()), ctx);
        }
    }

    /// A payload that does not parse is never delivered: during the
    /// handshake it fails the session, after it the last good state stays.
    fn bad_payload(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.handshake.is_active() {
            log::error!("{} {error}; the last good state stays in force", self.tag());
        } else {
            self.fail(EndReason::BadPayload, error, CloseCode::Error, ctx);
        }
    }

    fn on_config(
        &mut self,
        event: &'static str,
        initial: bool,
        data: Bytes,
        ctx: &mut Context<Self>,
    ) {
        log::debug!("{} {event}: {}", self.tag(), LogPayload(&data));
        if self.settings.config_receiver.is_none() {
            log::debug!("{} no config receiver; {event} dropped", self.tag());
            return;
        }
        let config = RemoteConfig::new(data, initial);
        self.offer(event.into(), Item::Config(config), ctx);
        self.handshake.arrived(Initial::Config);
    }

    fn on_routes(&mut self, event: &'static str, routes: RoutingConfig, ctx: &mut Context<Self>) {
        log::debug!("{} {event}: {} backends", self.tag(), routes.len());
        if self.settings.routes_receiver.is_none() {
            return;
        }
        self.offer(event.into(), Item::Routes(RoutesChanged(routes)), ctx);
        self.handshake.arrived(Initial::Routes);
    }

    fn on_hosts(&mut self, index: usize, hosts: Vec<String>, ctx: &mut Context<Self>) {
        let Some((module, _)) = self.settings.module_receivers.get(index) else {
            return;
        };
        let module = module.clone();
        if let Some(lines) = self.address_lines.get_mut(index) {
            lines.line(format_args!(
                "addresses of {module}: {}",
                super::messages::ShownHosts(&hosts)
            ));
        }
        crate::metrics::required_module_hosts(&self.settings.module, &module, hosts.len());
        let event: Cow<'static, str> = module_connected_event(&module).into();
        self.offer(
            event,
            Item::Hosts(index, HostsChanged { module, hosts }),
            ctx,
        );
        self.handshake.arrived(Initial::Hosts(index));
    }

    // ---- liveness -----------------------------------------------------------

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let interval = self.settings.ping_interval;
        let timeout = self.settings.ping_timeout;
        ctx.run_interval(interval, move |act, ctx| {
            if act.closing.is_some() {
                return;
            }
            let Some(seq) = act.heartbeat.ping() else {
                return;
            };
            let payload = act.heartbeat.payload(seq);
            act.write(ws::Message::Ping(payload), ctx);
            ctx.run_later(timeout, move |act, ctx| {
                if act.heartbeat.missed(seq) && act.closing.is_none() {
                    // The link is presumed dead: say so, but do not wait
                    // for an answer that will not come.
                    let reason = format!("no pong within {timeout:?}: connection lost");
                    let frame = close_frame(CloseCode::Error, &reason);
                    act.end_reason
                        .get_or_insert((EndReason::PongTimeout, reason));
                    act.begin_close(frame, false, ctx);
                }
            });
        });
    }

    /// Names the emits whose acks will now never come.
    fn pending_note(&self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let mut events: Vec<&str> = self.pending.values().map(|p| p.event).collect();
        events.sort_unstable();
        format!(" (while awaiting the ack of {})", events.join(", "))
    }

    fn on_close(&mut self, reason: Option<CloseReason>, ctx: &mut Context<Self>) {
        if let Some(closing) = self.closing.as_mut() {
            if closing.peer_closed() {
                self.stop_now(ctx);
            }
            return;
        }
        let (code, text) = match &reason {
            Some(r) => (u16::from(r.code), r.description.clone().unwrap_or_default()),
            None => (1005, String::new()),
        };
        let note = self.pending_note();
        let (end, why) = if code == 1000 {
            log::info!("{} server closed the session (1000) {text}", self.tag());
            (
                EndReason::ServerClosedNormally,
                format!("server closed the session normally (1000) {text}{note}"),
            )
        } else {
            log::error!(
                "{} server closed the session with {code}: {text}",
                self.tag()
            );
            (
                EndReason::ServerClosed,
                format!("server closed the session with {code}: {text}{note}"),
            )
        };
        self.end_reason
            .get_or_insert_with(|| (end, why.trim_end().to_owned()));
        // Echo it (RFC 6455 §5.5.1); the server closes TCP after that, so
        // stop once the echo is flushed.
        self.begin_close(echo(reason.as_ref()), false, ctx);
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        LIVE_SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.heartbeat(ctx);
        let schema = self.settings.schema_payload.clone();
        let requirements = self.settings.requirements_payload.clone();
        self.emit_with_ack(MODULE_SEND_CONFIG_SCHEMA, schema, ctx);
        self.emit_with_ack(MODULE_SEND_REQUIREMENTS, requirements, ctx);
        #[cfg(feature = "rpc")]
        if let Some(changes) = self.settings.declaration.changes() {
            ctx.add_message_stream(changes);
        }
    }

    /// Stopped from outside before it closed: its System is stopping, or
    /// its runtime is being dropped (`#[actix_web::main]` returning,
    /// `SystemRunner::run` returning after `System::stop`), and actix stops
    /// the context and polls it once more. The close frame (1000) is written
    /// now and the actor keeps running for that poll, in which the sink
    /// flushes it: the config-service sees a normal closure.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.closing.is_some() || self.stop_requested {
            return Running::Stop;
        }
        // A runtime being dropped has left its context: no timer, no spawn.
        self.teardown = tokio::runtime::Handle::try_current().is_err();
        log::info!(
            "{} stopped from outside (the actix System is ending): closing (1000)",
            self.tag()
        );
        self.closed_by_us = true;
        self.begin_close(close_frame(CloseCode::Normal, ""), !self.teardown, ctx);
        Running::Continue
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        LIVE_SESSIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.peer_warnings.finish();
        self.address_lines.iter_mut().for_each(PeerLines::finish);
        self.delivery.do_send(Withdraw { session: self.id });
        let (end, reason) = match (self.closed_by_us, self.end_reason.take()) {
            (true, _) => (EndReason::ClosedByClient, "closed by the client".to_owned()),
            (false, Some(end)) => end,
            (false, None) => (EndReason::Stopped, "session stopped".to_owned()),
        };
        self.reports.ended.do_send(SessionEnded {
            id: self.id,
            end,
            reason,
            active_for: self.active_since.map(|since| since.elapsed()),
            closed_by_us: self.closed_by_us,
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.teardown {
            return;
        }
        // The supervisor may be gone already: the session says how the
        // client ended, and never `Closed` when no close frame went out.
        let flushed = self.closing.as_ref().is_some_and(Closing::is_flushed);
        log::debug!(
            "{} dropped with its runtime; close frame flushed: {flushed}",
            self.tag()
        );
        if flushed {
            // The socket closes when this returns; give the server the
            // moment to read the close frame on its own first.
            if let Some(closing) = &self.closing {
                std::thread::sleep(closing.linger_left());
            }
            self.shared.set_state(SessionState::Closed, None);
        } else {
            let reason = "the actix System ended before the close frame was flushed: \
                          the server saw an abnormal disconnect";
            log::warn!("{} {reason}", self.tag());
            self.shared
                .update(|s| s.last_error = Some(reason.to_owned()));
            self.shared.set_state(SessionState::Aborted, None);
        }
    }
}

/// Called from inside the sink's own poll: the sink must not be touched
/// here (its state is borrowed), so these only record and stop.
impl WriteHandler<ws::ProtocolError> for Session {
    fn error(&mut self, err: ws::ProtocolError, _: &mut Context<Self>) -> Running {
        let reason = format!("cannot write to the connection: {err}");
        log::debug!("{} {reason}", self.tag());
        self.end_reason
            .get_or_insert((EndReason::ConnectionLost, reason));
        // Nothing can be written any more; `finished` follows and stops.
        self.closing.get_or_insert_with(|| Closing::new(false));
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The sink is closed: our close frame is on the wire (or the
        // connection broke).
        let stop = match self.closing.as_mut() {
            Some(closing) => closing.flushed(),
            None => true,
        };
        if stop {
            self.stop_now(ctx);
        }
    }
}

impl StreamHandler<Result<Frame, ws::ProtocolError>> for Session {
    fn handle(&mut self, frame: Result<Frame, ws::ProtocolError>, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            // After our close frame only the peer's close frame matters.
            if let Ok(Frame::Close(reason)) = frame {
                self.on_close(reason, ctx);
            }
            return;
        }
        let frame = match frame {
            Ok(frame) => frame,
            Err(ws::ProtocolError::Overflow) => {
                let limit = self.settings.read_limit;
                let reason = format!("message over the read limit of {limit} bytes");
                self.fail(EndReason::ReadLimit, reason, CloseCode::Size, ctx);
                return;
            }
            Err(ws::ProtocolError::Io(e)) => {
                // The connection is gone: there is nobody to say goodbye to.
                let reason = format!("connection lost: {e}{}", self.pending_note());
                self.end_reason
                    .get_or_insert((EndReason::ConnectionLost, reason));
                self.stop_now(ctx);
                return;
            }
            Err(e) => {
                self.fail(
                    EndReason::ProtocolError,
                    format!("websocket protocol error: {e}"),
                    CloseCode::Protocol,
                    ctx,
                );
                return;
            }
        };
        match frame {
            Frame::Text(data) | Frame::Binary(data) => {
                if self.fragments.interrupted_by_whole_message() {
                    self.peer_warnings
                        .line(format_args!("fragmented message interrupted; dropped"));
                }
                self.on_message(data, ctx);
            }
            Frame::Continuation(item) => match self.fragments.push(item) {
                Ok(Some(message)) => self.on_message(message, ctx),
                Ok(None) => {}
                Err(FragmentError::NoFirstFrame) => {
                    self.peer_warnings.line(format_args!(
                        "continuation frame without a first frame; dropped"
                    ));
                }
                Err(FragmentError::OverLimit(limit)) => self.fail(
                    EndReason::ReadLimit,
                    format!("fragmented message over the read limit of {limit} bytes"),
                    CloseCode::Size,
                    ctx,
                ),
            },
            // Only the newest ping is answered: at most one pong waits.
            Frame::Ping(data) => self.outbox.set_pong(data),
            Frame::Pong(data) => {
                if !self.heartbeat.pong(&data) {
                    log::trace!("{} unsolicited pong ignored", self.tag());
                }
            }
            Frame::Close(reason) => self.on_close(reason, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if let Some(closing) = self.closing.as_mut() {
            // The peer is done; stop once our close frame is flushed too.
            if closing.peer_closed() {
                self.stop_now(ctx);
            }
            return;
        }
        if self.end_reason.is_none() {
            let reason = format!(
                "connection lost: closed without a close frame{}",
                self.pending_note()
            );
            self.end_reason = Some((EndReason::ConnectionLost, reason));
        }
        self.stop_now(ctx);
    }
}

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, _: CloseSession, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        log::info!("{} closing (1000)", self.tag());
        self.closed_by_us = true;
        // Wait for the server's close frame, but not for ever.
        self.begin_close(close_frame(CloseCode::Normal, ""), true, ctx);
    }
}

impl Handler<Delivered> for Session {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        self.delivered(msg, ctx);
    }
}

impl Handler<Redeclare> for Session {
    type Result = ();

    /// Sends `MODULE:READY` again with the new endpoints once this session
    /// is active; before that, the READY still to come carries them.
    fn handle(&mut self, _: Redeclare, ctx: &mut Context<Self>) {
        if self.active_since.is_none() {
            self.redeclare = true;
        } else if self.closing.is_none() {
            let payload = self.settings.declaration.payload();
            self.emit_with_ack(MODULE_READY, payload, ctx);
        }
    }
}
