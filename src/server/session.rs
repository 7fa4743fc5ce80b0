//! One module connection: the ETP frame loop and the server side of the
//! handshake (PROTOCOL.md §1, §4, §5).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::{Actor, ActorContext, AsyncContext, Handler, Message, StreamHandler};
use actix_http::ws::Item;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, CloseCode, CloseReason, WebsocketContext};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use serde::de::DeserializeOwned;

use super::state::{text_frame, SessionId, Shared};
use super::ClosedSession;
use crate::etp::Event;
use crate::events::{
    ACK_OK, CONFIG_SEND_CONFIG_WHEN_CONNECTED, MODULE_READY, MODULE_SEND_CONFIG_SCHEMA,
    MODULE_SEND_REQUIREMENTS,
};
use crate::secrets::LogPayload;
use crate::types::{BackendDeclaration, ConfigData, ModuleRequirements};

/// The query parameter naming the connecting module.
const MODULE_NAME_PARAM: &str = "module_name";

/// `GET /isp-etp/?module_name=<name>`: upgrades to a module session, or —
/// without a module name — to a connection closed at once with 1008.
pub(crate) async fn etp_endpoint(
    req: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, actix_web::Error> {
    let read_limit = shared.read_limit;
    let peer = req
        .peer_addr()
        .map_or_else(|| "unknown peer".to_owned(), |a| a.to_string());
    match module_name(req.query_string()) {
        Some(module) => {
            let session = Session::new(shared.into_inner(), module, peer);
            ws::WsResponseBuilder::new(session, &req, stream)
                .frame_size(read_limit)
                .start()
        }
        None => {
            log::warn!(
                "etp connection from {peer} refused: {MODULE_NAME_PARAM} is missing or empty"
            );
            ws::WsResponseBuilder::new(Refusal, &req, stream)
                .frame_size(read_limit)
                .start()
        }
    }
}

/// The non-empty `module_name` of a query string.
fn module_name(query: &str) -> Option<String> {
    let mut params = web::Query::<HashMap<String, String>>::from_query(query)
        .ok()?
        .into_inner();
    params.remove(MODULE_NAME_PARAM).filter(|m| !m.is_empty())
}

/// A pushed frame (config changed, addresses, routes), already encoded.
pub(crate) struct Push(pub(crate) ByteString);

impl Message for Push {
    type Result = ();
}

/// The server ends the session.
pub(crate) enum Shutdown {
    /// Close frame 1000, the server is stopping.
    Normal,
    /// No close frame: the TCP connection just ends, as when a node crashes.
    Abort,
}

impl Message for Shutdown {
    type Result = ();
}

/// How the session ended, for the log line at the end.
enum End {
    Open,
    ClientClosed(Option<CloseReason>),
    ServerClosed(CloseCode, String),
    Aborted,
    Lost,
}

/// One WebSocket connection of a module.
pub(crate) struct Session {
    id: SessionId,
    module: String,
    peer: String,
    shared: Arc<Shared>,
    /// The module's frozen flag (see `ConfigServer::set_frozen`).
    frozen: Arc<AtomicBool>,
    /// A fragmented message being reassembled.
    fragments: Option<BytesMut>,
    end: End,
}

impl Session {
    fn new(shared: Arc<Shared>, module: String, peer: String) -> Self {
        Self {
            id: shared.next_session_id(),
            module,
            peer,
            shared,
            frozen: Arc::new(AtomicBool::new(false)),
            fragments: None,
            end: End::Open,
        }
    }

    fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// One whole message: an ETP frame.
    fn on_message(&mut self, frame: Bytes, ctx: &mut WebsocketContext<Self>) {
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
            self.ack(ctx, &event, text);
            return;
        }
        match &*event.name {
            MODULE_SEND_CONFIG_SCHEMA => self.on_config_schema(&event, ctx),
            MODULE_SEND_REQUIREMENTS => self.on_requirements(&event, ctx),
            MODULE_READY => self.on_ready(&event, ctx),
            other => {
                log::warn!("{}: unknown event {other} ignored", self.tag());
                self.ack(ctx, &event, format!("unknown event: {other}"));
            }
        }
    }

    fn on_config_schema(&mut self, event: &Event, ctx: &mut WebsocketContext<Self>) {
        let Some(data) = self.parse::<ConfigData>(event, ctx) else {
            return;
        };
        log::debug!(
            "{}: config schema of version {:?}: {}",
            self.tag(),
            data.version,
            LogPayload(data.schema.get().as_bytes())
        );
        let config = self.shared.lock().accept_schema(self.id, &data);
        log::debug!(
            "{}: sending config {}",
            self.tag(),
            LogPayload(config.as_bytes())
        );
        ctx.text(text_frame(&Event::new(
            CONFIG_SEND_CONFIG_WHEN_CONNECTED,
            0,
            config.into_bytes(),
        )));
        self.ack(ctx, event, ACK_OK.to_owned());
    }

    fn on_requirements(&mut self, event: &Event, ctx: &mut WebsocketContext<Self>) {
        let Some(requirements) = self.parse::<ModuleRequirements>(event, ctx) else {
            return;
        };
        log::debug!(
            "{}: requires modules {:?}, routes: {}",
            self.tag(),
            requirements.required_modules,
            requirements.require_routes
        );
        let frames = self
            .shared
            .lock()
            .accept_requirements(self.id, &requirements);
        for frame in frames {
            ctx.text(frame);
        }
        self.ack(ctx, event, ACK_OK.to_owned());
    }

    fn on_ready(&mut self, event: &Event, ctx: &mut WebsocketContext<Self>) {
        let Some(declaration) = self.parse::<BackendDeclaration>(event, ctx) else {
            return;
        };
        log::info!(
            "{}: ready at {} (version {:?})",
            self.tag(),
            declaration.address,
            declaration.version
        );
        // The ack is queued before the subscribers are told; it is written
        // once this handler returns, after the instance is recorded.
        self.ack(ctx, event, ACK_OK.to_owned());
        self.shared.lock().accept_ready(self.id, declaration);
    }

    /// The event's data as `T`, or an ack naming the event and the JSON
    /// error (and `None`).
    fn parse<T: DeserializeOwned>(
        &self,
        event: &Event,
        ctx: &mut WebsocketContext<Self>,
    ) -> Option<T> {
        match serde_json::from_slice(&event.data) {
            Ok(value) => Some(value),
            Err(e) => {
                let text = format!("invalid {} payload: {e}", event.name);
                log::warn!("{}: {text}", self.tag());
                self.ack(ctx, event, text);
                None
            }
        }
    }

    /// Answers `event` with `text` if it asked for an ack.
    fn ack(&self, ctx: &mut WebsocketContext<Self>, event: &Event, text: String) {
        if event.wants_ack() {
            ctx.text(text_frame(&event.ack(Bytes::from(text))));
        }
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut WebsocketContext<Self>) {
        let (chunk, first, last) = match item {
            Item::FirstText(chunk) | Item::FirstBinary(chunk) => (chunk, true, false),
            Item::Continue(chunk) => (chunk, false, false),
            Item::Last(chunk) => (chunk, false, true),
        };
        if first {
            self.fragments = Some(BytesMut::new());
        }
        let Some(buffer) = self.fragments.as_mut() else {
            log::warn!("{}: continuation without a first frame ignored", self.tag());
            return;
        };
        if buffer.len() + chunk.len() > self.shared.read_limit {
            self.fragments = None;
            self.refuse_too_big(ctx);
            return;
        }
        buffer.extend_from_slice(&chunk);
        if last {
            if let Some(message) = self.fragments.take() {
                self.on_message(message.freeze(), ctx);
            }
        }
    }

    fn refuse_too_big(&mut self, ctx: &mut WebsocketContext<Self>) {
        let reason = format!(
            "message exceeds the read limit of {} bytes",
            self.shared.read_limit
        );
        self.close(ctx, CloseCode::Size, reason);
    }

    /// Sends a close frame and ends the session.
    fn close(&mut self, ctx: &mut WebsocketContext<Self>, code: CloseCode, reason: String) {
        ctx.close(Some(CloseReason {
            code,
            description: Some(reason.clone()),
        }));
        self.end = End::ServerClosed(code, reason);
        ctx.stop();
    }

    /// The prefix of every log line of this session.
    fn tag(&self) -> String {
        format!(
            "etp session {} of module {:?} from {}",
            self.id, self.module, self.peer
        )
    }
}

impl Actor for Session {
    type Context = WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.frozen = self
            .shared
            .lock()
            .register(self.id, &self.module, ctx.address());
        log::info!("{}: connected", self.tag());
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
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

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if self.is_frozen() {
            log::trace!("{}: frozen, incoming frame ignored", self.tag());
            return;
        }
        match msg {
            Ok(ws::Message::Text(text)) => self.on_message(text.into_bytes(), ctx),
            Ok(ws::Message::Binary(data)) => self.on_message(data, ctx),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                self.shared.lock().record_close(ClosedSession {
                    module: self.module.clone(),
                    code: reason.as_ref().map(|r| u16::from(r.code)),
                    reason: reason
                        .as_ref()
                        .and_then(|r| r.description.clone())
                        .unwrap_or_default(),
                });
                self.end = End::ClientClosed(reason.clone());
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => self.refuse_too_big(ctx),
            Err(e) => self.close(
                ctx,
                CloseCode::Protocol,
                format!("websocket protocol error: {e}"),
            ),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if matches!(self.end, End::Open) {
            self.end = End::Lost;
        }
        ctx.stop();
    }
}

impl Handler<Push> for Session {
    type Result = ();

    fn handle(&mut self, Push(frame): Push, ctx: &mut Self::Context) {
        if self.is_frozen() {
            log::trace!("{}: frozen, push dropped", self.tag());
            return;
        }
        ctx.text(frame);
    }
}

impl Handler<Shutdown> for Session {
    type Result = ();

    fn handle(&mut self, shutdown: Shutdown, ctx: &mut Self::Context) {
        match shutdown {
            Shutdown::Normal => {
                self.close(ctx, CloseCode::Normal, "config server stopping".to_owned())
            }
            Shutdown::Abort => {
                self.end = End::Aborted;
                // Ending the actor alone ends the response stream cleanly, and
                // actix-http then lingers up to a second draining the socket
                // before it closes it. A frame the codec refuses to encode
                // (a continuation that never started) fails the stream
                // instead, and the dispatcher drops the connection at once —
                // as a crashed node would. actix-http logs that failure.
                ctx.write_raw(ws::Message::Continuation(Item::Last(Bytes::new())));
                ctx.stop();
            }
        }
    }
}

/// A connection without a module name: closed at once with 1008.
struct Refusal;

impl Actor for Refusal {
    type Context = WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.close(Some(CloseReason {
            code: CloseCode::Policy,
            description: Some(format!(
                "the {MODULE_NAME_PARAM} query parameter is missing or empty"
            )),
        }));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Refusal {
    fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
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
