//! ETP, the event transport of isp-config-service: a pure codec.
//!
//! One WebSocket message carries one frame:
//!
//! ```text
//! <eventName>||<ackId>||<eventData>
//! ```
//!
//! The frame is split on the first two `||` only, so the data may contain
//! `||`. An `ackId` of `0` asks for no acknowledgement. When the data is empty
//! the sender writes `<eventName>||<ackId>` with no trailing delimiter; a
//! receiver accepts both forms. An acknowledgement is a frame named
//! `__ack_<eventName>` carrying the same ack id.
//!
//! This module knows nothing about sockets: it turns bytes into [`Event`]s
//! and back, without copying the event data out of the received message.
//!
//! ```
//! use isp_cluster::etp::Event;
//!
//! let event = Event::decode(&b"__ack_MODULE:READY||3||ok"[..]).unwrap();
//! assert!(event.is_ack());
//! assert_eq!(event.acked_event(), Some("MODULE:READY"));
//! assert_eq!(event.ack_id, 3);
//! assert_eq!(&event.data[..], b"ok");
//! assert_eq!(&event.encode()[..], b"__ack_MODULE:READY||3||ok");
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

pub(crate) mod ws;

/// The delimiter between the parts of a frame.
pub const DELIMITER: &[u8] = b"||";

/// The prefix of an acknowledgement's event name.
pub const ACK_PREFIX: &str = "__ack_";

/// How many bytes of a malformed frame a [`DecodeError`] shows.
pub const ERROR_PREVIEW_LEN: usize = 64;

/// One ETP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event name, e.g. `MODULE:READY` or `__ack_MODULE:READY`.
    pub name: ByteString,
    /// The acknowledgement id; `0` means no acknowledgement is wanted.
    pub ack_id: u64,
    /// The event data, opaque to ETP (JSON in practice). A slice of the
    /// received message, never a copy.
    pub data: Bytes,
}

impl Event {
    /// An event with the given name, ack id and data.
    pub fn new(name: impl Into<ByteString>, ack_id: u64, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            ack_id,
            data: data.into(),
        }
    }

    /// The acknowledgement of this event carrying `data` (e.g. `ok`).
    pub fn ack(&self, data: impl Into<Bytes>) -> Event {
        Event {
            name: ack_name(&self.name).into(),
            ack_id: self.ack_id,
            data: data.into(),
        }
    }

    /// Whether this frame is an acknowledgement (its name starts with
    /// [`ACK_PREFIX`]). Acknowledgements are never dispatched to handlers.
    pub fn is_ack(&self) -> bool {
        is_ack_name(&self.name)
    }

    /// For an acknowledgement, the name of the event it acknowledges.
    pub fn acked_event(&self) -> Option<&str> {
        self.name.strip_prefix(ACK_PREFIX)
    }

    /// Whether the sender asks for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack_id != 0 && !self.is_ack()
    }

    /// Parses one frame. The name is validated as UTF-8; the data is a
    /// zero-copy slice of `frame`.
    pub fn decode(frame: impl Into<Bytes>) -> Result<Event, DecodeError> {
        let frame: Bytes = frame.into();
        let Some(first) = find_delimiter(&frame, 0) else {
            return Err(DecodeError::new(DecodeErrorKind::NoDelimiter, &frame));
        };
        let ack_start = first + DELIMITER.len();
        let (ack_end, data_start) = match find_delimiter(&frame, ack_start) {
            Some(second) => (second, second + DELIMITER.len()),
            None => (frame.len(), frame.len()),
        };
        let ack_id = parse_ack_id(&frame[ack_start..ack_end])
            .map_err(|kind| DecodeError::new(kind, &frame))?;
        let name = ByteString::try_from(frame.slice(..first))
            .map_err(|_| DecodeError::new(DecodeErrorKind::NameNotUtf8, &frame))?;
        Ok(Event {
            name,
            ack_id,
            data: frame.slice(data_start..),
        })
    }

    /// The frame's length once encoded.
    pub fn encoded_len(&self) -> usize {
        let data = if self.data.is_empty() {
            0
        } else {
            DELIMITER.len() + self.data.len()
        };
        self.name.len() + DELIMITER.len() + decimal_len(self.ack_id) + data
    }

    /// Encodes the frame; no trailing delimiter when the data is empty.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_to(&mut buf);
        buf.freeze()
    }

    /// Appends the encoded frame to `buf`.
    pub fn encode_to(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_slice(self.name.as_bytes());
        buf.put_slice(DELIMITER);
        let mut digits = [0u8; 20];
        buf.put_slice(format_decimal(self.ack_id, &mut digits));
        if !self.data.is_empty() {
            buf.put_slice(DELIMITER);
            buf.put_slice(&self.data);
        }
    }
}

/// `__ack_` + `event`.
pub fn ack_name(event: &str) -> String {
    let mut name = String::with_capacity(ACK_PREFIX.len() + event.len());
    name.push_str(ACK_PREFIX);
    name.push_str(event);
    name
}

/// Whether `name` is the name of an acknowledgement.
pub fn is_ack_name(name: &str) -> bool {
    name.starts_with(ACK_PREFIX)
}

/// Which rule of the frame grammar a malformed frame broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame has no `||` at all.
    NoDelimiter,
    /// The ack id is empty or has a character that is not a decimal digit.
    AckIdNotANumber,
    /// The ack id is a number greater than `u64::MAX`.
    AckIdOutOfRange,
    /// The event name is not valid UTF-8.
    NameNotUtf8,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeErrorKind::NoDelimiter => "no `||` delimiter",
            DecodeErrorKind::AckIdNotANumber => "ack id is not a decimal number",
            DecodeErrorKind::AckIdOutOfRange => "ack id is out of the u64 range",
            DecodeErrorKind::NameNotUtf8 => "event name is not valid utf-8",
        })
    }
}

/// A frame that is not `<name>||<ackId>[||<data>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    len: usize,
    preview: String,
}

impl DecodeError {
    fn new(kind: DecodeErrorKind, frame: &[u8]) -> Self {
        let shown = &frame[..frame.len().min(ERROR_PREVIEW_LEN)];
        Self {
            kind,
            len: frame.len(),
            preview: String::from_utf8_lossy(shown).into_owned(),
        }
    }

    /// The rule the frame broke.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The length of the whole malformed frame in bytes.
    pub fn frame_len(&self) -> usize {
        self.len
    }

    /// At most the first [`ERROR_PREVIEW_LEN`] bytes of the frame (lossy
    /// UTF-8).
    pub fn preview(&self) -> &str {
        &self.preview
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed etp frame: {} (", self.kind)?;
        if self.len > ERROR_PREVIEW_LEN {
            write!(
                f,
                "first {ERROR_PREVIEW_LEN} of {} bytes: {:?})",
                self.len, self.preview
            )
        } else {
            write!(f, "{} bytes: {:?})", self.len, self.preview)
        }
    }
}

impl std::error::Error for DecodeError {}

fn find_delimiter(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(DELIMITER.len())
        .position(|w| w == DELIMITER)
        .map(|pos| pos + from)
}

fn parse_ack_id(digits: &[u8]) -> Result<u64, DecodeErrorKind> {
    if digits.is_empty() {
        return Err(DecodeErrorKind::AckIdNotANumber);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(DecodeErrorKind::AckIdNotANumber);
        }
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        Err(DecodeErrorKind::AckIdOutOfRange)
    } else {
        Ok(value)
    }
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frame: &str) -> Event {
        let event = Event::decode(Bytes::copy_from_slice(frame.as_bytes()))
            .unwrap_or_else(|e| panic!("{frame}: {e}"));
        assert_eq!(event.encode(), frame.as_bytes(), "re-encoding {frame}");
        assert_eq!(event.encoded_len(), frame.len());
        event
    }

    #[test]
    fn every_frame_of_the_protocol_session_roundtrips() {
        let session = [
            r#"MODULE:SEND_CONFIG_SCHEMA||1||{"version":"1.0.0","schema":{},"config":{}}"#,
            r#"CONFIG:SEND_CONFIG_WHEN_CONNECTED||0||{"someString":"value"}"#,
            "__ack_MODULE:SEND_CONFIG_SCHEMA||1||ok",
            r#"MODULE:SEND_REQUIREMENTS||2||{"requiredModules":["a"],"requireRoutes":true}"#,
            r#"a_MODULE_CONNECTED||0||[{"ip":"10.2.9.1","port":"9999"}]"#,
            r#"CONFIG:SEND_ROUTES_WHEN_CONNECTED||0||[{},{}]"#,
            "__ack_MODULE:SEND_REQUIREMENTS||2||ok",
            r#"MODULE:READY||3||{"moduleName":"b"}"#,
            "__ack_MODULE:READY||3||ok",
            r#"CONFIG:SEND_CONFIG_CHANGED||0||{"a":1}"#,
            "CONFIG:SEND_ROUTES_CHANGED||0||[]",
            "a_MODULE_CONNECTED||0||[]",
        ];
        for frame in session {
            roundtrip(frame);
        }
        let ready = roundtrip("__ack_MODULE:READY||3||ok");
        assert!(ready.is_ack());
        assert!(!ready.wants_ack());
        assert_eq!(ready.acked_event(), Some("MODULE:READY"));
        let schema = roundtrip(r#"MODULE:SEND_CONFIG_SCHEMA||1||{"version":"1.0.0"}"#);
        assert_eq!(&*schema.name, "MODULE:SEND_CONFIG_SCHEMA");
        assert_eq!(schema.ack_id, 1);
        assert!(schema.wants_ack());
        assert_eq!(&schema.data[..], br#"{"version":"1.0.0"}"#);
    }

    #[test]
    fn empty_data_with_and_without_trailing_delimiter() {
        let short = Event::decode(&b"name||7"[..]).unwrap();
        let long = Event::decode(&b"name||7||"[..]).unwrap();
        assert_eq!(short, long);
        assert_eq!(&*short.name, "name");
        assert_eq!(short.ack_id, 7);
        assert!(short.data.is_empty());
        assert_eq!(&long.encode()[..], b"name||7", "no trailing delimiter");
    }

    #[test]
    fn data_may_contain_the_delimiter() {
        let event = roundtrip(r#"CONFIG:SEND_CONFIG_CHANGED||0||{"a":"x||y"}||||"#);
        assert_eq!(&event.data[..], br#"{"a":"x||y"}||||"#);
        let event = roundtrip("e||0||||");
        assert_eq!(&event.data[..], b"||");
    }

    #[test]
    fn empty_name_is_accepted() {
        let event = roundtrip("||5||x");
        assert_eq!(&*event.name, "");
        assert_eq!(event.ack_id, 5);
    }

    #[test]
    fn ack_id_extremes() {
        let max = roundtrip(&format!("e||{}||d", u64::MAX));
        assert_eq!(max.ack_id, u64::MAX);
        assert_eq!(roundtrip("e||0").ack_id, 0);
        // Leading zeros parse (the Go peer uses strconv.ParseUint) but do not
        // survive re-encoding.
        assert_eq!(Event::decode(&b"e||007"[..]).unwrap().ack_id, 7);
        let err = Event::decode(&b"e||18446744073709551616||d"[..]).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::AckIdOutOfRange);
        let err = Event::decode(&b"e||99999999999999999999999999"[..]).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::AckIdOutOfRange);
    }

    #[test]
    fn every_malformed_shape_names_its_rule() {
        use DecodeErrorKind::*;
        let cases: &[(&[u8], DecodeErrorKind)] = &[
            (b"", NoDelimiter),
            (b"name", NoDelimiter),
            (b"name|0|data", NoDelimiter),
            (b"|", NoDelimiter),
            (b"name||", AckIdNotANumber),
            (b"name||||data", AckIdNotANumber),
            (b"name||x||data", AckIdNotANumber),
            (b"name||-1||data", AckIdNotANumber),
            (b"name||+1||data", AckIdNotANumber),
            (b"name|| 1||data", AckIdNotANumber),
            (b"name||1 ||data", AckIdNotANumber),
            (b"name||1|data", AckIdNotANumber),
            (b"name||0x10", AckIdNotANumber),
            (b"\xff\xfe||1||data", NameNotUtf8),
        ];
        for (frame, kind) in cases {
            let err = Event::decode(Bytes::copy_from_slice(frame)).unwrap_err();
            assert_eq!(err.kind(), *kind, "{:?}", String::from_utf8_lossy(frame));
            assert_eq!(err.frame_len(), frame.len());
            assert!(err.to_string().contains(&kind.to_string()), "{err}");
        }
    }

    #[test]
    fn decode_error_shows_at_most_64_bytes() {
        let frame = "x".repeat(1000);
        let err = Event::decode(frame.into_bytes()).unwrap_err();
        assert_eq!(err.preview().len(), ERROR_PREVIEW_LEN);
        let text = err.to_string();
        assert!(text.contains("first 64 of 1000 bytes"), "{text}");
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn decode_does_not_copy_data() {
        let frame = Bytes::from_static(b"CONFIG:SEND_CONFIG_CHANGED||0||{\"a\":1}");
        let event = Event::decode(frame.clone()).unwrap();
        let offset = event.data.as_ptr() as usize - frame.as_ptr() as usize;
        assert_eq!(offset, "CONFIG:SEND_CONFIG_CHANGED||0||".len());
        assert_eq!(
            event.name.as_bytes().as_ptr(),
            frame.as_ptr(),
            "name shares the frame too"
        );
    }

    #[test]
    fn ack_helpers() {
        let emit = Event::new("MODULE:READY", 3, Bytes::from_static(b"{}"));
        let ack = emit.ack("ok");
        assert_eq!(&ack.encode()[..], b"__ack_MODULE:READY||3||ok");
        assert!(ack.is_ack());
        assert_eq!(ack_name("X"), "__ack_X");
        assert!(is_ack_name("__ack_X"));
        assert!(!is_ack_name("_ack_X"));
        let empty = emit.ack(Bytes::new());
        assert_eq!(&empty.encode()[..], b"__ack_MODULE:READY||3");
    }

    #[test]
    fn encode_to_appends() {
        let mut buf = BytesMut::from(&b"prefix:"[..]);
        Event::new("a", 12, "b").encode_to(&mut buf);
        assert_eq!(&buf[..], b"prefix:a||12||b");
    }
}
