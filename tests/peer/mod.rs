//! A scripted ETP peer and a freezing TCP proxy, on loopback, for fault
//! tests. Every reaction of the peer is written by the test: the upgrade (or
//! an HTTP error, or silence), each frame, each ack, the close, a reset.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::ws::{self, CloseCode, CloseReason, Frame, Item};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use isp_cluster::etp::Event;
use isp_cluster::{
    ModuleRequirements, MODULE_READY, MODULE_SEND_CONFIG_SCHEMA, MODULE_SEND_REQUIREMENTS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A listening scripted peer; each accepted connection runs the script.
pub struct ScriptedPeer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Set by [`ScriptedPeer::stop_listening`].
    stopped: Arc<AtomicBool>,
}

impl ScriptedPeer {
    /// Listens on 127.0.0.1:0 and runs `script` for every connection (the
    /// `n`th connection, from 0, is passed as `conn.index`).
    pub async fn start<F, Fut>(script: F) -> ScriptedPeer
    where
        F: Fn(Conn) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        let script = Rc::new(script);
        actix_rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if stop.load(Ordering::SeqCst) {
                    // The listener is dropped: later connections are
                    // refused, as by a node that died.
                    break;
                }
                // As every ETP server does (Go's and the embedded one):
                // without it, a reply of two small frames waits for the
                // client's delayed ACK, 40 ms.
                let _ = stream.set_nodelay(true);
                let index = count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                actix_rt::spawn(async move {
                    script(Conn::new(stream, index)).await;
                });
            }
        });
        ScriptedPeer {
            addr,
            connections,
            stopped,
        }
    }

    /// Stops listening: every later connection is refused. Connections
    /// already accepted run on.
    pub fn stop_listening(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so that it sees the flag and drops the
            // listener (this wake-up is not counted as a connection).
            let _ = std::net::TcpStream::connect(self.addr);
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// What the peer received, control frames included.
#[derive(Debug)]
pub enum Received {
    Event(Event),
    Close(Option<CloseReason>),
    Ping,
    Pong,
    /// The connection ended without a close frame.
    Eof,
}

/// How a connection ended, as the peer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The client sent a close frame (with its code and reason, if any).
    Close(Option<CloseReason>),
    /// The TCP connection ended without a close frame.
    Eof,
}

impl Ending {
    /// The close code, if the client sent a close frame with one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Ending::Close(Some(reason)) => Some(u16::from(reason.code)),
            _ => None,
        }
    }

    /// The close reason's text, if any.
    pub fn reason(&self) -> &str {
        match self {
            Ending::Close(Some(CloseReason {
                description: Some(text),
                ..
            })) => text,
            _ => "",
        }
    }
}

/// One accepted connection.
pub struct Conn {
    pub index: usize,
    stream: Option<TcpStream>,
    framed: Option<Framed<TcpStream, ws::Codec>>,
    /// Answer pings (on by default).
    pub answer_pings: bool,
    /// The module name from the upgrade request.
    pub module: String,
    /// The client's end of the connection.
    pub client_addr: Option<SocketAddr>,
}

impl Conn {
    fn new(stream: TcpStream, index: usize) -> Conn {
        Conn {
            index,
            client_addr: stream.peer_addr().ok(),
            stream: Some(stream),
            framed: None,
            answer_pings: true,
            module: String::new(),
        }
    }

    /// Reads the HTTP request head.
    async fn read_head(&mut self) -> String {
        let stream = self.stream.as_mut().expect("before the upgrade");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// Completes the WebSocket upgrade; returns the module name.
    pub async fn upgrade(&mut self) -> String {
        let head = self.read_head().await;
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("a websocket upgrade request");
        self.module = head
            .split_once("module_name=")
            .map(|(_, rest)| rest.split([' ', '&']).next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let accept = ws::hash_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            std::str::from_utf8(&accept).unwrap()
        );
        let mut stream = self.stream.take().unwrap();
        stream.write_all(response.as_bytes()).await.unwrap();
        let codec = ws::Codec::new().max_size(64 * 1024 * 1024);
        self.framed = Some(Framed::new(stream, codec));
        self.module.clone()
    }

    /// Answers the upgrade request with an HTTP error.
    pub async fn refuse(&mut self, status: &str) {
        self.read_head().await;
        let stream = self.stream.as_mut().unwrap();
        let response = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.flush().await;
    }

    /// Reads the request and then says nothing, for as long as the client
    /// stays.
    pub async fn never_upgrade(mut self) {
        self.read_head().await;
        let mut buf = [0u8; 1024];
        let stream = self.stream.as_mut().unwrap();
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    }

    fn framed(&mut self) -> &mut Framed<TcpStream, ws::Codec> {
        self.framed.as_mut().expect("upgrade first")
    }

    /// The next frame, answering pings unless told not to. Reassembles
    /// nothing: the client sends whole messages.
    pub async fn recv(&mut self) -> Received {
        let next = self.framed().next().await;
        match next {
            Some(Ok(Frame::Text(data))) | Some(Ok(Frame::Binary(data))) => {
                Received::Event(Event::decode(data).expect("client frames decode"))
            }
            Some(Ok(Frame::Ping(data))) => {
                if self.answer_pings {
                    let _ = self.framed().send(ws::Message::Pong(data)).await;
                }
                Received::Ping
            }
            Some(Ok(Frame::Pong(_))) => Received::Pong,
            Some(Ok(Frame::Close(reason))) => Received::Close(reason),
            Some(Ok(Frame::Continuation(_))) => panic!("client sent a fragment"),
            Some(Err(_)) | None => Received::Eof,
        }
    }

    /// The next ETP event, skipping pings and pongs; `None` at close or EOF.
    pub async fn recv_event(&mut self) -> Option<Event> {
        loop {
            match self.recv().await {
                Received::Event(e) => return Some(e),
                Received::Ping | Received::Pong => continue,
                Received::Close(_) | Received::Eof => return None,
            }
        }
    }

    /// The next event, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> Event {
        let event = self
            .recv_event()
            .await
            .unwrap_or_else(|| panic!("connection ended before {name}"));
        assert_eq!(&*event.name, name, "expected {name}");
        event
    }

    /// Waits until the client closes or goes away, answering pings. A close
    /// frame is answered with the echo a server sends (RFC 6455 §5.5.1) and
    /// followed by the TCP close; EOF is told apart from a close frame.
    pub async fn until_closed(&mut self) -> Ending {
        loop {
            match self.recv().await {
                Received::Close(reason) => {
                    let echo = reason.as_ref().map(|r| CloseReason {
                        code: r.code,
                        description: None,
                    });
                    self.send(ws::Message::Close(echo)).await;
                    let _ = self.framed().close().await;
                    return Ending::Close(reason);
                }
                Received::Eof => return Ending::Eof,
                _ => continue,
            }
        }
    }

    /// Reads frames until the client's close frame or EOF, without answering
    /// the close; returns how it ended and every event that came before it.
    pub async fn until_ending(&mut self) -> (Ending, Vec<Received>) {
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                Received::Close(reason) => return (Ending::Close(reason), before),
                Received::Eof => return (Ending::Eof, before),
                other => before.push(other),
            }
        }
    }

    /// Writes raw bytes to the socket, past the WebSocket codec.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let framed = self.framed();
        framed.flush().await.ok();
        let io = framed.io_mut();
        io.write_all(bytes).await?;
        io.flush().await
    }

    /// Queues `message`, writing to the socket only when the codec's
    /// buffer is full: as fast as the socket takes frames.
    pub async fn send_buffered(&mut self, message: ws::Message) {
        let _ = self.framed().feed(message).await;
    }

    pub async fn send(&mut self, message: ws::Message) {
        let _ = self.framed().send(message).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send(ws::Message::Text(text.into())).await;
    }

    pub async fn send_event(&mut self, name: &str, data: &str) {
        let frame =
            Event::new(name.to_owned(), 0, Bytes::copy_from_slice(data.as_bytes())).encode();
        self.send(ws::Message::Text(frame.try_into().unwrap()))
            .await;
    }

    pub async fn ack(&mut self, event: &Event, text: &str) {
        let frame = event.ack(Bytes::copy_from_slice(text.as_bytes())).encode();
        self.send(ws::Message::Text(frame.try_into().unwrap()))
            .await;
    }

    /// Sends `text` as a fragmented message of `parts` frames.
    pub async fn send_fragmented(&mut self, text: &str, parts: usize) {
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let size = bytes.len().div_ceil(parts);
        let chunks: Vec<Bytes> = (0..parts)
            .map(|i| bytes.slice((i * size).min(bytes.len())..((i + 1) * size).min(bytes.len())))
            .collect();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let item = match i {
                0 => Item::FirstText(chunk),
                i if i == parts - 1 => Item::Last(chunk),
                _ => Item::Continue(chunk),
            };
            self.send(ws::Message::Continuation(item)).await;
        }
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let reason = CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
        };
        self.send(ws::Message::Close(Some(reason))).await;
        let _ = self.framed().close().await;
    }

    /// Resets the TCP connection (RST, as a killed process's kernel would).
    pub fn reset(mut self) {
        let stream = match self.framed.take() {
            Some(framed) => framed.into_parts().io,
            None => self.stream.take().unwrap(),
        };
        // SO_LINGER 0: close() sends RST instead of FIN. The socket is
        // non-blocking, so the drop does not block.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        drop(stream);
    }

    /// Keeps the connection open, answering nothing (not even pings), until
    /// the client goes away.
    pub async fn hold(mut self) -> Ending {
        self.answer_pings = false;
        loop {
            match self.recv().await {
                Received::Eof => return Ending::Eof,
                Received::Close(reason) => return Ending::Close(reason),
                _ => {}
            }
        }
    }

    /// Upgrades and plays the whole handshake (an empty config): `true` on
    /// the first connection, the one a script's fault is for. On every
    /// later one it serves until the client leaves and returns `false`.
    pub async fn first_session(&mut self) -> bool {
        self.upgrade().await;
        self.handshake("{}").await;
        if self.index == 0 {
            return true;
        }
        self.until_closed().await;
        false
    }

    /// Plays the server's side of the registration: sends `config` and
    /// empty addresses and routes as asked, acks both emits `ok`. Returns
    /// the two client events (schema, requirements).
    pub async fn register(&mut self, config: &str) -> [Event; 2] {
        let schema = self.expect(MODULE_SEND_CONFIG_SCHEMA).await;
        self.send_event("CONFIG:SEND_CONFIG_WHEN_CONNECTED", config)
            .await;
        self.ack(&schema, "ok").await;
        let requirements = self.expect(MODULE_SEND_REQUIREMENTS).await;
        let wanted: ModuleRequirements = serde_json::from_slice(&requirements.data).unwrap();
        for module in &wanted.required_modules {
            self.send_event(&isp_cluster::module_connected_event(module), "[]")
                .await;
        }
        if wanted.require_routes {
            self.send_event("CONFIG:SEND_ROUTES_WHEN_CONNECTED", "[]")
                .await;
        }
        self.ack(&requirements, "ok").await;
        [schema, requirements]
    }

    /// Plays the server's side of a whole, good handshake: stores nothing,
    /// sends `config` and empty addresses and routes as asked, acks `ok`.
    /// Returns the three client events (schema, requirements, ready).
    pub async fn handshake(&mut self, config: &str) -> [Event; 3] {
        let [schema, requirements] = self.register(config).await;
        let ready = self.expect(MODULE_READY).await;
        self.ack(&ready, "ok").await;
        [schema, requirements, ready]
    }
}

/// A TCP proxy that forwards both ways until frozen, then holds every
/// connection open and forwards nothing: a true half-open link.
pub struct FreezingProxy {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
}

impl FreezingProxy {
    pub async fn start(upstream: SocketAddr) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        actix_rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                actix_rt::spawn(pump(cr, sw, flag.clone()));
                actix_rt::spawn(pump(sr, cw, flag.clone()));
            }
        });
        FreezingProxy { addr, frozen }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if frozen.load(Ordering::SeqCst) {
            // Hold both halves open; forward nothing, read nothing.
            loop {
                actix_rt::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        let read = actix_rt::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await;
        match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if frozen.load(Ordering::SeqCst) {
                    continue; // dropped on the floor, as by a dead link
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
