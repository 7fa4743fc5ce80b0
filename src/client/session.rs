//! One ETP session on one WebSocket connection: frames, acks, the handshake,
//! liveness and ordered delivery to the receivers.
//!
//! The handshake is a small state machine:
//!
//! ```text
//! Registering ──both acks ok──▶ AwaitingInitialState ──all delivered──▶ Declaring ──ack ok──▶ Active
//! ```
//!
//! `MODULE:SEND_CONFIG_SCHEMA` and `MODULE:SEND_REQUIREMENTS` go out together.
//! Initial events count whenever they arrive, also before the acks. Any
//! failure before `Active` (a non-`ok` ack, an ack timeout, a missing initial
//! event, a receiver error, an `ERROR_*` event, invalid JSON) ends the session
//! with a reason that names it; the supervisor then tries again.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_http::ws::{self, CloseCode, CloseReason, Frame, Item};
use awc::BoxedSocket;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, StreamExt};

use super::dispatch::{classify, Incoming};
use super::supervisor::{SessionActive, SessionEnded, Supervisor};
use super::{HostsChanged, RemoteConfig, RoutesChanged, Settings, Shared};
use crate::etp::Event;
use crate::events::*;
use crate::secrets::LogPayload;
use crate::types::RoutingConfig;

type Framed = actix_codec::Framed<BoxedSocket, ws::Codec>;
type Sink = SplitSink<Framed, ws::Message>;

/// Session actors alive in the process, for leak tests.
pub(crate) static LIVE_SESSIONS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// How long `close()` waits for the server to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Ask the session to close with 1000.
pub(crate) struct CloseSession;

impl Message for CloseSession {
    type Result = ();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Registering,
    AwaitingInitialState,
    Declaring,
    Active,
    Closing,
}

/// What a delivery is, for the handshake's bookkeeping and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Routes,
    Hosts(usize),
}

/// One receiver's queue: one message in flight at a time, in arrival order.
struct Lane<M>
where
    M: Message + Send,
    M::Result: Send,
{
    name: String,
    recipient: Recipient<M>,
    timeout: Duration,
    /// Messages waiting, with the name of the event each came from.
    queue: VecDeque<(M, Cow<'static, str>)>,
    busy: bool,
}

impl<M> Lane<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn new(name: String, recipient: Recipient<M>, timeout: Duration) -> Self {
        Self {
            name,
            recipient,
            timeout,
            queue: VecDeque::new(),
            busy: false,
        }
    }
}

/// The handshake's view of one initial event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    NotWanted,
    Pending,
    Arrived,
    Accepted,
}

impl Wait {
    fn done(self) -> bool {
        matches!(self, Wait::NotWanted | Wait::Accepted)
    }
}

struct PendingAck {
    event: &'static str,
    timer: SpawnHandle,
}

pub(crate) struct Session {
    id: u64,
    host: String,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    supervisor: Addr<Supervisor>,
    sink: SinkWrite<ws::Message, Sink>,
    phase: Phase,
    next_ack_id: u64,
    pending: HashMap<u64, PendingAck>,
    registration_acks: usize,
    config_wait: Wait,
    routes_wait: Wait,
    module_waits: Vec<Wait>,
    config_lane: Option<Lane<RemoteConfig>>,
    routes_lane: Option<Lane<RoutesChanged>>,
    module_lanes: Vec<Lane<HostsChanged>>,
    /// A fragmented message being reassembled.
    fragments: Option<BytesMut>,
    /// The number of the last ping sent.
    ping_seq: u64,
    /// The unanswered ping, if any.
    ping_outstanding: Option<u64>,
    end_reason: Option<String>,
    established: bool,
    /// `close()` asked for this end.
    closed_by_us: bool,
}

impl Session {
    /// Connects to `host` and upgrades, within the connect timeout.
    pub(crate) async fn connect(settings: Arc<Settings>, host: String) -> Result<Framed, String> {
        let url = format!(
            "ws://{host}/isp-etp/?module_name={}",
            encode_query(&settings.module)
        );
        let timeout = settings.connect_timeout;
        let client = awc::Client::builder()
            // Our own timeout below bounds connect plus upgrade; awc's must
            // not fire first with a vaguer message.
            .timeout(timeout + Duration::from_secs(1))
            .max_http_version(awc::http::Version::HTTP_11)
            .finish();
        let request = client.ws(url).max_frame_size(settings.read_limit);
        match actix::clock::timeout(timeout, request.connect()).await {
            Ok(Ok((_response, framed))) => Ok(framed),
            Ok(Err(awc::error::WsClientError::InvalidResponseStatus(status))) => Err(format!(
                "cannot connect to {host}: websocket upgrade refused with HTTP {status}"
            )),
            Ok(Err(e)) => Err(format!("cannot connect to {host}: {e}")),
            Err(_) => Err(format!(
                "cannot connect to {host}: no websocket upgrade within {timeout:?}"
            )),
        }
    }

    /// Starts the session actor on an upgraded connection.
    pub(crate) fn start_with(
        framed: Framed,
        id: u64,
        host: String,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        supervisor: Addr<Supervisor>,
    ) -> Addr<Session> {
        let (sink, stream) = framed.split();
        Session::create(move |ctx| {
            ctx.add_stream(stream);
            let config_lane = settings.config_receiver.clone().map(|r| {
                Lane::new(
                    "remote config receiver".to_owned(),
                    r,
                    settings.config_timeout,
                )
            });
            let routes_lane = settings
                .routes_receiver
                .clone()
                .map(|r| Lane::new("routes receiver".to_owned(), r, settings.receiver_timeout));
            let module_lanes = settings
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
            Session {
                id,
                host,
                sink: SinkWrite::new(sink, ctx),
                phase: Phase::Registering,
                next_ack_id: 1,
                pending: HashMap::new(),
                registration_acks: 0,
                config_wait: if config_lane.is_some() {
                    Wait::Pending
                } else {
                    Wait::NotWanted
                },
                routes_wait: if routes_lane.is_some() {
                    Wait::Pending
                } else {
                    Wait::NotWanted
                },
                module_waits: vec![Wait::Pending; settings.module_receivers.len()],
                config_lane,
                routes_lane,
                module_lanes,
                fragments: None,
                ping_seq: 0,
                ping_outstanding: None,
                end_reason: None,
                established: false,
                closed_by_us: false,
                settings,
                shared,
                supervisor,
            }
        })
    }

    fn tag(&self) -> String {
        format!(
            "[module={} session={} host={}]",
            self.settings.module, self.id, self.host
        )
    }

    /// Ends the session: the first reason given is the one reported.
    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.end_reason.is_none() {
            self.end_reason = Some(reason);
        }
        self.start_closing();
        ctx.stop();
    }

    /// Enters `Closing` and writes the close frame (1000), once.
    fn start_closing(&mut self) {
        if self.phase != Phase::Closing {
            self.phase = Phase::Closing;
            // Best effort: the connection may already be gone.
            let _ = self.sink.write(ws::Message::Close(Some(CloseReason {
                code: CloseCode::Normal,
                description: None,
            })));
        }
    }

    // ---- emits and acks -------------------------------------------------

    fn send_frame(&mut self, event: &Event) {
        let frame = event.encode();
        // Text as the Go peers send; binary only for data that is not UTF-8
        // (the peers parse both the same way).
        let message = match bytestring::ByteString::try_from(frame.clone()) {
            Ok(text) => ws::Message::Text(text),
            Err(_) => ws::Message::Binary(frame),
        };
        if self.sink.write(message).is_err() {
            log::warn!(
                "{} cannot write {}: connection closing",
                self.tag(),
                event.name
            );
        }
    }

    fn emit_with_ack(&mut self, event: &'static str, data: Bytes, ctx: &mut Context<Self>) {
        let ack_id = self.next_ack_id;
        self.next_ack_id += 1;
        // The schema payload goes through the masker; others by size only.
        // (`log::debug!` formats nothing unless debug is on.)
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
        self.send_frame(&Event::new(event, ack_id, data));
        let timeout = self.settings.ack_timeout;
        let timer = ctx.run_later(timeout, move |act, ctx| {
            if act.pending.remove(&ack_id).is_some() {
                act.fail(format!("no ack for {event} within {timeout:?}"), ctx);
            }
        });
        self.pending.insert(ack_id, PendingAck { event, timer });
    }

    fn on_ack(&mut self, name: &str, ack_id: u64, text: &[u8], ctx: &mut Context<Self>) {
        let Some(pending) = self.pending.remove(&ack_id) else {
            log::warn!(
                "{} ignoring {name} #{ack_id}: no emit awaits it (late or unknown)",
                self.tag()
            );
            return;
        };
        ctx.cancel_future(pending.timer);
        let text = String::from_utf8_lossy(text);
        if text != ACK_OK {
            self.fail(format!("server refused {}: {text}", pending.event), ctx);
            return;
        }
        log::debug!("{} ack {} ok", self.tag(), pending.event);
        match pending.event {
            MODULE_SEND_CONFIG_SCHEMA | MODULE_SEND_REQUIREMENTS => {
                self.registration_acks += 1;
                if self.registration_acks == 2 && self.phase == Phase::Registering {
                    self.phase = Phase::AwaitingInitialState;
                    self.start_initial_deadlines(ctx);
                    self.maybe_declare(ctx);
                }
            }
            MODULE_READY => {
                self.phase = Phase::Active;
                self.established = true;
                log::info!("{} active", self.tag());
                self.supervisor.do_send(SessionActive { id: self.id });
                // Sent from here, not from the supervisor, so that it reaches
                // an actor that also receives configs before any later event.
                if let Some(events) = &self.settings.session_events {
                    events.do_send(super::SessionEvent::Active {
                        host: self.host.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    // ---- the handshake ----------------------------------------------------

    fn start_initial_deadlines(&mut self, ctx: &mut Context<Self>) {
        if self.config_wait == Wait::Pending {
            let wait = self.settings.config_initial_wait;
            ctx.run_later(wait, move |act, ctx| {
                if act.config_wait == Wait::Pending && act.phase == Phase::AwaitingInitialState {
                    act.fail(
                        format!("no {CONFIG_SEND_CONFIG_WHEN_CONNECTED} within {wait:?}"),
                        ctx,
                    );
                }
            });
        }
        let wait = self.settings.initial_wait;
        ctx.run_later(wait, move |act, ctx| {
            if act.phase != Phase::AwaitingInitialState {
                return;
            }
            if act.routes_wait == Wait::Pending {
                act.fail(
                    format!("no {CONFIG_SEND_ROUTES_WHEN_CONNECTED} within {wait:?}"),
                    ctx,
                );
            } else if let Some(i) = act.module_waits.iter().position(|w| *w == Wait::Pending) {
                let module = &act.settings.module_receivers[i].0;
                act.fail(
                    format!("no {} within {wait:?}", module_connected_event(module)),
                    ctx,
                );
            }
        });
    }

    fn maybe_declare(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::AwaitingInitialState {
            return;
        }
        let all_done = self.config_wait.done()
            && self.routes_wait.done()
            && self.module_waits.iter().all(|w| w.done());
        if all_done {
            self.phase = Phase::Declaring;
            let payload = self.settings.ready_payload.clone();
            self.emit_with_ack(MODULE_READY, payload, ctx);
        }
    }

    fn wait_mut(&mut self, kind: Kind) -> &mut Wait {
        match kind {
            Kind::Config => &mut self.config_wait,
            Kind::Routes => &mut self.routes_wait,
            Kind::Hosts(i) => &mut self.module_waits[i],
        }
    }

    fn arrived(&mut self, kind: Kind) {
        let wait = self.wait_mut(kind);
        if *wait == Wait::Pending {
            *wait = Wait::Arrived;
        }
    }

    fn delivered(
        &mut self,
        kind: Kind,
        receiver: &str,
        event: &str,
        result: Result<Result<(), super::ReceiverError>, MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{receiver} rejected {event}: {e}")),
            Err(MailboxError::Timeout) => Some(format!("{receiver} timed out on {event}")),
            Err(MailboxError::Closed) => Some(format!(
                "{receiver} is stopped (its mailbox is closed); {event} not delivered"
            )),
        };
        match error {
            None => {
                let wait = self.wait_mut(kind);
                if *wait == Wait::Arrived {
                    *wait = Wait::Accepted;
                }
                self.maybe_declare(ctx);
            }
            Some(error) if self.phase == Phase::Active || self.phase == Phase::Closing => {
                log::error!("{} {error}", self.tag());
            }
            Some(error) => self.fail(error, ctx),
        }
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
                log::warn!("{} {e}; ignored", self.tag());
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
                Err(error) => self.bad_payload(error, ctx),
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
                if self.phase == Phase::Active {
                    log::error!("{} server sent {name}: {text}", self.tag());
                } else {
                    self.fail(format!("server sent {name}: {text}"), ctx);
                    return;
                }
            }
            Incoming::Unknown => {
                log::warn!(
                    "{} unknown event {} ({} bytes) ignored",
                    self.tag(),
                    event.name,
                    event.data.len()
                );
                if event.wants_ack() {
                    let text = format!("unknown event {}", event.name);
                    self.send_frame(&event.ack(text));
                }
                return;
            }
        }
        if event.wants_ack() {
            self.send_frame(&event.ack(Bytes::new()));
        }
    }

    /// A payload that does not parse is never delivered: during the
    /// handshake it fails the session, after it the last good state stays.
    fn bad_payload(&mut self, error: String, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Active | Phase::Closing => {
                log::error!("{} {error}; the last good state stays in force", self.tag())
            }
            _ => self.fail(error, ctx),
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
        let Some(lane) = self.config_lane.as_mut() else {
            log::debug!("{} no config receiver; {event} dropped", self.tag());
            return;
        };
        lane.queue
            .push_back((RemoteConfig { data, initial }, event.into()));
        self.arrived(Kind::Config);
        self.pump_config(ctx);
    }

    fn on_routes(&mut self, event: &'static str, routes: RoutingConfig, ctx: &mut Context<Self>) {
        log::debug!("{} {event}: {} backends", self.tag(), routes.len());
        let Some(lane) = self.routes_lane.as_mut() else {
            return;
        };
        lane.queue.push_back((RoutesChanged(routes), event.into()));
        self.arrived(Kind::Routes);
        self.pump_routes(ctx);
    }

    fn on_hosts(&mut self, index: usize, hosts: Vec<String>, ctx: &mut Context<Self>) {
        let module = self.settings.module_receivers[index].0.clone();
        log::debug!("{} hosts of {module}: {hosts:?}", self.tag());
        let event = module_connected_event(&module);
        self.module_lanes[index]
            .queue
            .push_back((HostsChanged { module, hosts }, event.into()));
        self.arrived(Kind::Hosts(index));
        self.pump_hosts(index, ctx);
    }

    // ---- ordered delivery -------------------------------------------------

    fn pump_config(&mut self, ctx: &mut Context<Self>) {
        self.pump(Kind::Config, |s| s.config_lane.as_mut(), ctx);
    }

    fn pump_routes(&mut self, ctx: &mut Context<Self>) {
        self.pump(Kind::Routes, |s| s.routes_lane.as_mut(), ctx);
    }

    fn pump_hosts(&mut self, index: usize, ctx: &mut Context<Self>) {
        self.pump(
            Kind::Hosts(index),
            move |s| s.module_lanes.get_mut(index),
            ctx,
        );
    }

    /// Sends the lane's next message unless one is in flight; on completion
    /// records the outcome and sends the next.
    fn pump<M, F>(&mut self, kind: Kind, lane_of: F, ctx: &mut Context<Self>)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        M::Result: Into<Result<(), super::ReceiverError>>,
        F: Fn(&mut Session) -> Option<&mut Lane<M>> + Copy + 'static,
    {
        let Some(lane) = lane_of(self) else { return };
        if lane.busy {
            return;
        }
        let Some((message, event)) = lane.queue.pop_front() else {
            return;
        };
        lane.busy = true;
        let receiver = lane.name.clone();
        let request = lane.recipient.send(message).timeout(lane.timeout);
        ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
            if let Some(lane) = lane_of(act) {
                lane.busy = false;
            }
            act.delivered(kind, &receiver, &event, result.map(Into::into), ctx);
            act.pump(kind, lane_of, ctx);
        }));
    }

    // ---- liveness -----------------------------------------------------------

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let interval = self.settings.ping_interval;
        let timeout = self.settings.ping_timeout;
        ctx.run_interval(interval, move |act, ctx| {
            if act.ping_outstanding.is_some() {
                return;
            }
            act.ping_seq += 1;
            let seq = act.ping_seq;
            act.ping_outstanding = Some(seq);
            if act.sink.write(ws::Message::Ping(Bytes::new())).is_err() {
                return;
            }
            ctx.run_later(timeout, move |act, ctx| {
                if act.ping_outstanding == Some(seq) {
                    act.fail(format!("no pong within {timeout:?}: connection lost"), ctx);
                }
            });
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        LIVE_SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared
            .set_state(super::SessionState::Handshaking, Some(&self.host));
        log::info!("{} connected; registering", self.tag());
        self.heartbeat(ctx);
        let schema = self.settings.schema_payload.clone();
        let requirements = self.settings.requirements_payload.clone();
        self.emit_with_ack(MODULE_SEND_CONFIG_SCHEMA, schema, ctx);
        self.emit_with_ack(MODULE_SEND_REQUIREMENTS, requirements, ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        LIVE_SESSIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.shared
            .healthy
            .store(false, std::sync::atomic::Ordering::Release);
        // The pending acks fail with the session, at once.
        self.pending.clear();
        let reason = match (self.closed_by_us, self.end_reason.take()) {
            (true, _) => "closed by the client".to_owned(),
            (false, Some(reason)) => reason,
            (false, None) => "session stopped".to_owned(),
        };
        self.supervisor.do_send(SessionEnded {
            id: self.id,
            reason,
            established: self.established,
            closed_by_us: self.closed_by_us,
        });
    }
}

impl WriteHandler<ws::ProtocolError> for Session {
    fn error(&mut self, err: ws::ProtocolError, ctx: &mut Context<Self>) -> Running {
        self.fail(format!("cannot write to the connection: {err}"), ctx);
        Running::Stop
    }
}

impl StreamHandler<Result<Frame, ws::ProtocolError>> for Session {
    fn handle(&mut self, frame: Result<Frame, ws::ProtocolError>, ctx: &mut Context<Self>) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(ws::ProtocolError::Overflow) => {
                let limit = self.settings.read_limit;
                self.fail(format!("message over the read limit of {limit} bytes"), ctx);
                return;
            }
            Err(ws::ProtocolError::Io(e)) => {
                let reason = format!("connection lost: {e}{}", self.pending_note());
                self.fail(reason, ctx);
                return;
            }
            Err(e) => {
                self.fail(format!("websocket protocol error: {e}"), ctx);
                return;
            }
        };
        match frame {
            Frame::Text(data) | Frame::Binary(data) => {
                if self.fragments.take().is_some() {
                    log::warn!("{} fragmented message interrupted; dropped", self.tag());
                }
                self.on_message(data, ctx);
            }
            Frame::Continuation(item) => self.on_continuation(item, ctx),
            Frame::Ping(data) => {
                let _ = self.sink.write(ws::Message::Pong(data));
            }
            Frame::Pong(_) => self.ping_outstanding = None,
            Frame::Close(reason) => self.on_close(reason, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.end_reason.is_none() {
            let reason = format!(
                "connection lost: closed without a close frame{}",
                self.pending_note()
            );
            self.end_reason = Some(reason);
        }
        ctx.stop();
    }
}

impl Session {
    /// Names the emits whose acks will now never come.
    fn pending_note(&self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let mut events: Vec<&str> = self.pending.values().map(|p| p.event).collect();
        events.sort_unstable();
        format!(" (while awaiting the ack of {})", events.join(", "))
    }

    fn on_continuation(&mut self, item: Item, ctx: &mut Context<Self>) {
        let limit = self.settings.read_limit;
        let (chunk, first, last) = match item {
            Item::FirstText(b) | Item::FirstBinary(b) => (b, true, false),
            Item::Continue(b) => (b, false, false),
            Item::Last(b) => (b, false, true),
        };
        if first {
            self.fragments = Some(BytesMut::with_capacity(chunk.len() * 2));
        }
        let Some(buf) = self.fragments.as_mut() else {
            log::warn!(
                "{} continuation frame without a first frame; dropped",
                self.tag()
            );
            return;
        };
        if buf.len() + chunk.len() > limit {
            self.fragments = None;
            self.fail(
                format!("fragmented message over the read limit of {limit} bytes"),
                ctx,
            );
            return;
        }
        buf.extend_from_slice(&chunk);
        if last {
            if let Some(buf) = self.fragments.take() {
                self.on_message(buf.freeze(), ctx);
            }
        }
    }

    fn on_close(&mut self, reason: Option<CloseReason>, ctx: &mut Context<Self>) {
        if self.phase == Phase::Closing {
            ctx.stop();
            return;
        }
        let (code, text) = match &reason {
            Some(r) => (u16::from(r.code), r.description.clone().unwrap_or_default()),
            None => (1005, String::new()),
        };
        let note = self.pending_note();
        let reason = if code == 1000 {
            log::info!("{} server closed the session (1000) {text}", self.tag());
            format!("server closed the session normally (1000) {text}{note}")
        } else {
            log::error!(
                "{} server closed the session with {code}: {text}",
                self.tag()
            );
            format!("server closed the session with {code}: {text}{note}")
        };
        self.fail(reason.trim_end().to_owned(), ctx);
    }
}

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, _: CloseSession, ctx: &mut Context<Self>) {
        log::info!("{} closing (1000)", self.tag());
        self.closed_by_us = true;
        self.start_closing();
        // Wait for the server's close frame, but not for ever.
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_query;

    #[test]
    fn module_names_are_url_encoded() {
        assert_eq!(encode_query("auth-service"), "auth-service");
        assert_eq!(encode_query("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
