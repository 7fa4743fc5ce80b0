//! One module connection: the ETP frame loop and the server side of the
//! handshake (PROTOCOL.md §1, §4, §5).
//!
//! A session is the body of the `101 Switching Protocols` response: the
//! HTTP dispatcher polls it for bytes to write, and each poll reads the
//! module's frames from the request payload, handles them and the commands
//! from the rest of the server, and hands back what to send. When the
//! session ends the body ends, and the dispatcher closes the TCP connection
//! at once (the server is built without a disconnect linger, see
//! `ConfigServerBuilder::start`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::{Decoder, Encoder};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::ws::{CloseCode, CloseReason, Frame, Message, ProtocolError};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::connection::ConnectionSlot;
use super::state::{Answer, Command, SessionId, Shared};
use super::{ClosedSession, ReplyOrder};
use crate::etp::ws::{message_for, FragmentError, LimitedCodec, Reassembler, WireFrame};
use crate::etp::Event;
use crate::events::{ACK_OK, MODULE_READY, MODULE_SEND_CONFIG_SCHEMA, MODULE_SEND_REQUIREMENTS};
use crate::secrets::LogPayload;
use crate::types::{BackendDeclaration, ConfigData, ModuleRequirements};

/// The query parameter naming the connecting module.
const MODULE_NAME_PARAM: &str = "module_name";

/// How much a session encodes before it hands the bytes to the dispatcher,
/// so that a flood of incoming frames is answered in pieces.
const OUT_CHUNK: usize = 64 * 1024;

/// `GET /isp-etp/?module_name=<name>`: upgrades to a module session, or —
/// without a module name — to a connection closed at once with 1008.
pub(crate) async fn etp_endpoint(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, actix_web::Error> {
    let mut response = actix_http::ws::handshake(req.head())?;
    let peer = req
        .peer_addr()
        .map_or_else(|| "unknown peer".to_owned(), |a| a.to_string());
    let body = match module_name(req.query_string()) {
        Some(module) => {
            let session = Session::start(shared.into_inner(), module, peer, payload);
            match req.conn_data::<ConnectionSlot>() {
                Some(slot) => slot.hold(session.shared.connection_opened()),
                None => log::debug!("{}: connection not tracked", session.tag()),
            }
            BoxBody::new(session)
        }
        None => {
            log::warn!(
                "etp connection from {peer} refused: {MODULE_NAME_PARAM} is missing or empty"
            );
            refusal(shared.read_limit)
        }
    };
    Ok(HttpResponse::from(response.message_body(body)?))
}

/// The non-empty `module_name` of a query string.
fn module_name(query: &str) -> Option<String> {
    let mut params = web::Query::<HashMap<String, String>>::from_query(query)
        .ok()?
        .into_inner();
    params.remove(MODULE_NAME_PARAM).filter(|m| !m.is_empty())
}

/// The body of a connection without a module name: close frame 1008, then
/// the end (and with it the TCP connection).
fn refusal(read_limit: usize) -> BoxBody {
    let reason = CloseReason {
        code: CloseCode::Policy,
        description: Some(format!(
            "the {MODULE_NAME_PARAM} query parameter is missing or empty"
        )),
    };
    let mut frame = BytesMut::new();
    let mut codec = LimitedCodec::server(read_limit);
    if let Err(e) = codec.encode(Message::Close(Some(reason)), &mut frame) {
        log::error!("cannot encode the refusal's close frame: {e}");
    }
    let frame = Some(frame.freeze());
    BoxBody::new(actix_http::body::BodyStream::new(
        futures_util::stream::iter(frame).map(Ok::<_, Infallible>),
    ))
}

/// How the session ended, for the log line at the end.
enum End {
    Open,
    ClientClosed(Option<CloseReason>),
    ServerClosed(CloseCode, String),
    Aborted,
    Lost,
}

/// One WebSocket connection of a module, as a response body.
pub(crate) struct Session {
    id: SessionId,
    module: String,
    peer: String,
    shared: Arc<Shared>,
    /// The module's frozen flag (see `ConfigServer::set_frozen`).
    frozen: Arc<AtomicBool>,
    /// The module's bytes, as the dispatcher reads them.
    payload: web::Payload,
    /// Read from the payload, not yet decoded.
    read_buf: BytesMut,
    /// Encoded, not yet handed to the dispatcher.
    out: BytesMut,
    codec: LimitedCodec,
    fragments: Reassembler,
    commands: UnboundedReceiver<Command>,
    /// This session's own mailbox, for answers sent late.
    mailbox: UnboundedSender<Command>,
    end: End,
}

impl Session {
    /// A registered session reading `payload`.
    fn start(shared: Arc<Shared>, module: String, peer: String, payload: web::Payload) -> Self {
        let id = shared.next_session_id();
        let (mailbox, commands) = unbounded_channel();
        let frozen = shared.lock().register(id, &module, mailbox.clone());
        let session = Self {
            id,
            module,
            peer,
            frozen,
            payload,
            read_buf: BytesMut::new(),
            out: BytesMut::new(),
            codec: LimitedCodec::server(shared.read_limit),
            fragments: Reassembler::new(shared.read_limit),
            shared,
            commands,
            mailbox,
            end: End::Open,
        };
        log::info!("{}: connected", session.tag());
        session
    }

    fn is_open(&self) -> bool {
        matches!(self.end, End::Open)
    }

    fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Queues a message for the wire.
    fn write(&mut self, message: Message) {
        // Only continuation frames can fail to encode, and a session sends
        // none.
        if let Err(e) = self.codec.encode(message, &mut self.out) {
            log::error!("{}: cannot encode a frame: {e}", self.tag());
        }
    }

    fn send(&mut self, frame: WireFrame) {
        self.write(frame.into_message());
    }

    // ---- from the rest of the server ---------------------------------------

    fn poll_commands(&mut self, cx: &mut Context<'_>) {
        while self.is_open() {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(command)) => self.on_command(command),
                // The session holds a sender itself: never closed.
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send(_) | Command::Answers(_) if self.is_frozen() => {
                log::trace!("{}: frozen, push dropped", self.tag());
            }
            Command::Send(frame) => self.send(frame),
            Command::Answers(answers) => self.send_answers(&answers),
            Command::Close => self.close(CloseCode::Normal, "config server stopping".to_owned()),
            Command::Abort => {
                // The body ends without a close frame; the dispatcher then
                // closes the connection (FIN), as a crashed node's kernel
                // would.
                self.end = End::Aborted;
            }
        }
    }

    // ---- from the module ---------------------------------------------------

    fn poll_incoming(&mut self, cx: &mut Context<'_>) {
        while self.is_open() && self.out.len() < OUT_CHUNK {
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    self.on_frame(frame);
                    continue;
                }
                Ok(None) => {}
                Err(ProtocolError::Overflow) => {
                    self.refuse_too_big();
                    return;
                }
                Err(e) => {
                    self.close(
                        CloseCode::Protocol,
                        format!("websocket protocol error: {e}"),
                    );
                    return;
                }
            }
            match Pin::new(&mut self.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.read_buf.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => {
                    log::debug!("{}: payload ended: {e}", self.tag());
                    self.end = End::Lost;
                }
                Poll::Ready(None) => self.end = End::Lost,
                Poll::Pending => return,
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        if self.is_frozen() {
            log::trace!("{}: frozen, incoming frame ignored", self.tag());
            return;
        }
        match frame {
            Frame::Text(data) | Frame::Binary(data) => {
                // The codec refuses a whole message inside a fragmented one
                // (a protocol error), so nothing is ever dropped here.
                self.fragments.interrupted_by_whole_message();
                self.on_message(data);
            }
            Frame::Continuation(item) => match self.fragments.push(item) {
                Ok(Some(message)) => self.on_message(message),
                Ok(None) => {}
                Err(FragmentError::OverLimit(_)) => self.refuse_too_big(),
                Err(FragmentError::NoFirstFrame) => {
                    log::warn!("{}: continuation without a first frame ignored", self.tag());
                }
            },
            Frame::Ping(payload) => self.write(Message::Pong(payload)),
            Frame::Pong(_) => {}
            Frame::Close(reason) => {
                self.shared.lock().record_close(ClosedSession {
                    module: self.module.clone(),
                    code: reason.as_ref().map(|r| u16::from(r.code)),
                    reason: reason
                        .as_ref()
                        .and_then(|r| r.description.clone())
                        .unwrap_or_default(),
                    at: std::time::Instant::now(),
                });
                // The echo of the module's close frame completes the close
                // handshake; the TCP connection closes right after it.
                self.write(Message::Close(reason.clone()));
                self.end = End::ClientClosed(reason);
            }
        }
    }

    /// One whole message: an ETP frame.
    fn on_message(&mut self, frame: Bytes) {
        let event = match Event::decode(frame) {
            Ok(event) => event,
            Err(e) => {
                log::warn!("{}: {e}; frame ignored", self.tag());
                return;
            }
        };
        if event.is_ack() {
            log::debug!("{}: unexpected ack {} ignored", self.tag(), event.name);
            return;
        }
        log::trace!(
            "{}: received {} (ack id {}, {} bytes)",
            self.tag(),
            event.name,
            event.ack_id,
            event.data.len()
        );
        let failure = self.shared.lock().failure(&self.module, &event.name);
        if let Some(text) = failure {
            log::warn!("{}: {} failed on purpose: {text}", self.tag(), event.name);
            self.ack(&event, text);
            return;
        }
        match &*event.name {
            MODULE_SEND_CONFIG_SCHEMA => self.on_config_schema(&event),
            MODULE_SEND_REQUIREMENTS => self.on_requirements(&event),
            MODULE_READY => self.on_ready(&event),
            other => {
                log::warn!("{}: unknown event {other} ignored", self.tag());
                self.ack(&event, format!("unknown event: {other}"));
            }
        }
    }

    fn on_config_schema(&mut self, event: &Event) {
        let Some(data) = self.parse::<ConfigData>(event) else {
            return;
        };
        log::debug!(
            "{}: config schema of version {:?}: {}",
            self.tag(),
            data.version,
            LogPayload(data.schema.get().as_bytes())
        );
        let answers = self.shared.lock().accept_schema(self.id, &data);
        self.answer(event, answers);
    }

    fn on_requirements(&mut self, event: &Event) {
        let Some(requirements) = self.parse::<ModuleRequirements>(event) else {
            return;
        };
        log::debug!(
            "{}: requires modules {:?}, routes: {}",
            self.tag(),
            requirements.required_modules,
            requirements.require_routes
        );
        let answers = self
            .shared
            .lock()
            .accept_requirements(self.id, &requirements);
        self.answer(event, answers);
    }

    fn on_ready(&mut self, event: &Event) {
        let Some(declaration) = self.parse::<BackendDeclaration>(event) else {
            return;
        };
        log::info!(
            "{}: ready at {} (version {:?})",
            self.tag(),
            declaration.address,
            declaration.version
        );
        // The ack is written before the subscribers are told, so that this
        // session's own routes push comes after it.
        self.ack(event, ACK_OK.to_owned());
        self.shared.lock().accept_ready(self.id, declaration);
    }

    /// Acks a handshake event with `ok` and sends its answers, in the order
    /// the server is set to (see [`ReplyOrder`]).
    fn answer(&mut self, event: &Event, answers: Vec<Answer>) {
        let order = self.shared.lock().reply_order();
        match order {
            ReplyOrder::EventsFirst => {
                self.send_answers(&answers);
                self.ack(event, ACK_OK.to_owned());
            }
            ReplyOrder::AckFirst => {
                self.ack(event, ACK_OK.to_owned());
                self.send_answers(&answers);
            }
            ReplyOrder::EventsLate(delay) => {
                self.ack(event, ACK_OK.to_owned());
                self.send_answers_later(answers, delay);
            }
        }
    }

    fn send_answers(&mut self, answers: &[Answer]) {
        if answers.is_empty() {
            return;
        }
        let events = self.shared.lock().answer_events(self.id, answers);
        for event in events {
            log::debug!(
                "{}: sending {} {}",
                self.tag(),
                event.name,
                LogPayload(&event.data)
            );
            self.write(message_for(event.encode()));
        }
    }

    fn send_answers_later(&self, answers: Vec<Answer>, delay: Duration) {
        if answers.is_empty() {
            return;
        }
        let mailbox = self.mailbox.clone();
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(delay).await;
            // The session may be gone by now; then nobody needs them.
            let _ = mailbox.send(Command::Answers(answers));
        });
    }

    /// The event's data as `T`, or an ack naming the event and the JSON
    /// error (and `None`).
    fn parse<T: DeserializeOwned>(&mut self, event: &Event) -> Option<T> {
        match serde_json::from_slice(&event.data) {
            Ok(value) => Some(value),
            Err(e) => {
                let text = format!("invalid {} payload: {e}", event.name);
                log::warn!("{}: {text}", self.tag());
                self.ack(event, text);
                None
            }
        }
    }

    /// Answers `event` with `text` if it asked for an ack.
    fn ack(&mut self, event: &Event, text: String) {
        if event.wants_ack() {
            self.write(message_for(event.ack(Bytes::from(text)).encode()));
        }
    }

    fn refuse_too_big(&mut self) {
        let reason = format!(
            "message exceeds the read limit of {} bytes",
            self.shared.read_limit
        );
        self.close(CloseCode::Size, reason);
    }

    /// Sends a close frame and ends the session; the TCP connection closes
    /// once the frame is written. The module's answering close frame is not
    /// awaited: after a read error nothing more can be read, and a module
    /// told to go has nothing more to say (RFC 6455 lets the server close
    /// the connection first).
    fn close(&mut self, code: CloseCode, reason: String) {
        self.write(Message::Close(Some(CloseReason {
            code,
            description: Some(reason.clone()),
        })));
        self.end = End::ServerClosed(code, reason);
    }

    /// The prefix of every log line of this session.
    fn tag(&self) -> String {
        format!(
            "etp session {} of module {:?} from {}",
            self.id, self.module, self.peer
        )
    }
}

impl MessageBody for Session {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        this.poll_commands(cx);
        this.poll_incoming(cx);
        if !this.out.is_empty() {
            return Poll::Ready(Some(Ok(this.out.split().freeze())));
        }
        if this.is_open() {
            Poll::Pending
        } else {
            // The end of the body: the dispatcher flushes what it has and
            // closes the connection.
            Poll::Ready(None)
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.lock().unregister(self.id);
        let tag = self.tag();
        match &self.end {
            End::ClientClosed(Some(reason)) if reason.code == CloseCode::Normal => {
                log::info!("{tag}: disconnected (close 1000)");
            }
            End::ClientClosed(Some(reason)) => log::warn!(
                "{tag}: module unexpectedly disconnected (close {}: {:?})",
                u16::from(reason.code),
                reason.description.as_deref().unwrap_or("")
            ),
            End::ClientClosed(None) => {
                log::warn!("{tag}: module unexpectedly disconnected (close without a code)")
            }
            End::ServerClosed(CloseCode::Normal, reason) => {
                log::info!("{tag}: closed by the server (close 1000: {reason})")
            }
            End::ServerClosed(code, reason) => log::warn!(
                "{tag}: closed by the server (close {}: {reason})",
                u16::from(*code)
            ),
            End::Aborted => log::warn!("{tag}: connection dropped by the server (no close frame)"),
            End::Lost | End::Open => {
                log::warn!("{tag}: module unexpectedly disconnected (no close frame)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::module_name;

    #[test]
    fn module_name_from_the_query() {
        assert_eq!(module_name("module_name=b").as_deref(), Some("b"));
        assert_eq!(
            module_name("x=1&module_name=auth%2Dservice").as_deref(),
            Some("auth-service")
        );
        assert_eq!(module_name("module_name="), None);
        assert_eq!(module_name(""), None);
        assert_eq!(module_name("name=b"), None);
    }
}
