//! ETP's WebSocket layer, shared by the client and the embedded server: the
//! frame-size check from the frame header, fragment reassembly and the
//! text-or-binary choice for outgoing frames.
//!
//! actix-http's frame parser compares a frame's length with its limit only
//! once the whole frame has been buffered, so a peer announcing a 1 GiB frame
//! makes it buffer up to 1 GiB. [`LimitedCodec`] reads the length from the
//! header first and refuses the frame before any of its payload is kept.

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Item, Message, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// The WebSocket codec with a read limit that bounds memory: a frame whose
/// header announces more than the limit is an [`ProtocolError::Overflow`]
/// before its payload is read.
///
/// After the first decode error the codec discards everything it reads, so
/// that a stream polled again does not report the same error for ever, while
/// the connection stays open for the close handshake and its EOF.
#[derive(Debug)]
pub(crate) struct LimitedCodec {
    inner: Codec,
    limit: usize,
    failed: bool,
}

impl LimitedCodec {
    /// The client side of a connection (frames it sends are masked).
    pub(crate) fn client(limit: usize) -> Self {
        Self {
            inner: Codec::new().max_size(limit).client_mode(),
            limit,
            failed: false,
        }
    }

    /// The server side of a connection.
    #[cfg_attr(not(feature = "devserver"), allow(dead_code))]
    pub(crate) fn server(limit: usize) -> Self {
        Self {
            inner: Codec::new().max_size(limit),
            limit,
            failed: false,
        }
    }
}

/// The payload length a frame header announces, once enough of the header
/// has arrived (2, 4 or 10 bytes; RFC 6455 §5.2).
pub(crate) fn announced_len(header: &[u8]) -> Option<u64> {
    let second = *header.get(1)?;
    match second & 0x7F {
        126 => {
            let bytes: [u8; 2] = header.get(2..4)?.try_into().ok()?;
            Some(u64::from(u16::from_be_bytes(bytes)))
        }
        127 => {
            let bytes: [u8; 8] = header.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        len => Some(u64::from(len)),
    }
}

impl Decoder for LimitedCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.failed {
            src.clear();
            return Ok(None);
        }
        if let Some(len) = announced_len(src) {
            if len > self.limit as u64 {
                self.failed = true;
                src.clear();
                return Err(ProtocolError::Overflow);
            }
        }
        let decoded = self.inner.decode(src);
        if decoded.is_err() {
            self.failed = true;
            src.clear();
        }
        decoded
    }
}

impl Encoder<Message> for LimitedCodec {
    type Error = ProtocolError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.inner.encode(item, dst)
    }
}

/// Why a fragmented message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FragmentError {
    /// The parts add up to more than the read limit.
    OverLimit(usize),
    /// A continuation frame came without a first frame.
    NoFirstFrame,
}

/// Reassembles fragmented messages (a first frame and continuation frames)
/// within the read limit.
#[derive(Debug)]
pub(crate) struct Reassembler {
    limit: usize,
    buf: Option<BytesMut>,
}

impl Reassembler {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, buf: None }
    }

    /// A whole (unfragmented) message arrived. Returns `true` when it
    /// interrupted a fragmented one, which is dropped.
    pub(crate) fn interrupted_by_whole_message(&mut self) -> bool {
        self.buf.take().is_some()
    }

    /// One continuation frame: `Ok(Some(message))` when it completed one.
    pub(crate) fn push(&mut self, item: Item) -> Result<Option<Bytes>, FragmentError> {
        let (chunk, first, last) = match item {
            Item::FirstText(b) | Item::FirstBinary(b) => (b, true, false),
            Item::Continue(b) => (b, false, false),
            Item::Last(b) => (b, false, true),
        };
        if first {
            self.buf = Some(BytesMut::with_capacity(chunk.len().saturating_mul(2)));
        }
        let Some(buf) = self.buf.as_mut() else {
            return Err(FragmentError::NoFirstFrame);
        };
        if buf.len().saturating_add(chunk.len()) > self.limit {
            self.buf = None;
            return Err(FragmentError::OverLimit(self.limit));
        }
        buf.extend_from_slice(&chunk);
        if last {
            Ok(self.buf.take().map(BytesMut::freeze))
        } else {
            Ok(None)
        }
    }
}

/// The WebSocket message for an encoded ETP frame: text, as the Go peers
/// send, or binary when the data is not UTF-8 (the peers parse both alike).
pub(crate) fn message_for(frame: Bytes) -> Message {
    WireFrame::new(frame).into_message()
}

/// An encoded ETP frame with its text-or-binary choice made once: cheap to
/// clone, so one frame pushed to many sessions is checked for UTF-8 once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireFrame {
    /// Sent as a text message.
    Text(ByteString),
    /// Sent as a binary message (the frame is not UTF-8).
    Binary(Bytes),
}

impl WireFrame {
    pub(crate) fn new(frame: Bytes) -> Self {
        match ByteString::try_from(frame.clone()) {
            Ok(text) => WireFrame::Text(text),
            Err(_) => WireFrame::Binary(frame),
        }
    }

    pub(crate) fn into_message(self) -> Message {
        match self {
            WireFrame::Text(text) => Message::Text(text),
            WireFrame::Binary(data) => Message::Binary(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(len: u64) -> BytesMut {
        // An unmasked binary frame header, as a server sends it.
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0x82]);
        if len < 126 {
            b.extend_from_slice(&[len as u8]);
        } else if len <= u64::from(u16::MAX) {
            b.extend_from_slice(&[126]);
            b.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            b.extend_from_slice(&[127]);
            b.extend_from_slice(&len.to_be_bytes());
        }
        b
    }

    #[test]
    fn announced_length_is_read_from_each_header_form() {
        assert_eq!(announced_len(&[0x81]), None);
        assert_eq!(announced_len(&[0x81, 5]), Some(5));
        assert_eq!(announced_len(&[0x81, 126, 1]), None);
        assert_eq!(announced_len(&[0x81, 126, 1, 0]), Some(256));
        assert_eq!(announced_len(&client_frame(1 << 30)), Some(1 << 30));
        // The mask bit does not change the length.
        assert_eq!(announced_len(&[0x81, 0x80 | 7]), Some(7));
    }

    #[test]
    fn a_frame_announced_over_the_limit_fails_before_its_payload() {
        let mut codec = LimitedCodec::client(1024);
        let mut src = client_frame(1 << 30);
        assert!(matches!(
            codec.decode(&mut src),
            Err(ProtocolError::Overflow)
        ));
        assert!(src.is_empty(), "nothing kept");
        // Polled again: no second error, input discarded.
        src.extend_from_slice(b"more bytes");
        assert!(matches!(codec.decode(&mut src), Ok(None)));
        assert!(src.is_empty());
    }

    #[test]
    fn frames_within_the_limit_decode_as_before() {
        let mut codec = LimitedCodec::client(1024);
        let mut src = client_frame(3);
        src.extend_from_slice(b"a||");
        // Partial header: wait.
        let mut partial = BytesMut::from(&src[..1]);
        assert!(matches!(codec.decode(&mut partial), Ok(None)));
        match codec.decode(&mut src) {
            Ok(Some(Frame::Binary(data))) => assert_eq!(&data[..], b"a||"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_masked_frame_from_the_server_is_a_protocol_error_and_latches() {
        let mut codec = LimitedCodec::client(1024);
        let mut src = BytesMut::from(&[0x81u8, 0x81, 1, 2, 3, 4, b'x'][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(ProtocolError::MaskedFrame)
        ));
        assert!(matches!(codec.decode(&mut src), Ok(None)));
    }

    #[test]
    fn fragments_reassemble_within_the_limit() {
        let mut r = Reassembler::new(8);
        assert_eq!(r.push(Item::FirstText(Bytes::from_static(b"ab"))), Ok(None));
        assert_eq!(r.push(Item::Continue(Bytes::from_static(b"cd"))), Ok(None));
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(b"ef"))),
            Ok(Some(Bytes::from_static(b"abcdef")))
        );
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(b"x"))),
            Err(FragmentError::NoFirstFrame)
        );
        r.push(Item::FirstBinary(Bytes::from_static(b"12345")))
            .unwrap();
        assert_eq!(
            r.push(Item::Continue(Bytes::from_static(b"6789"))),
            Err(FragmentError::OverLimit(8))
        );
        r.push(Item::FirstText(Bytes::from_static(b"a"))).unwrap();
        assert!(r.interrupted_by_whole_message());
        assert!(!r.interrupted_by_whole_message());
    }

    #[test]
    fn a_wire_frame_makes_the_choice_once_for_every_clone() {
        let text = WireFrame::new(Bytes::from_static(b"E||0||{}"));
        assert_eq!(
            text.clone().into_message(),
            Message::Text("E||0||{}".into())
        );
        assert_eq!(text, WireFrame::Text("E||0||{}".into()));
        let binary = WireFrame::new(Bytes::from_static(b"E||0||\xff"));
        assert_eq!(
            binary.into_message(),
            Message::Binary(Bytes::from_static(b"E||0||\xff"))
        );
    }

    #[test]
    fn text_unless_the_frame_is_not_utf8() {
        assert!(matches!(
            message_for(Bytes::from_static(b"E||0||{}")),
            Message::Text(_)
        ));
        assert!(matches!(
            message_for(Bytes::from_static(b"E||0||\xff")),
            Message::Binary(_)
        ));
    }
}
