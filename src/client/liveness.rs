//! Liveness and the close handshake: ping/pong bookkeeping, and when a
//! closing session may stop.
//!
//! A close frame exists only once it is flushed: a session that closes
//! writes its close frame, closes its sink ([`FlushOnClose`]: a flush, the
//! socket stays open) and stops only when the sink reports that done, and,
//! where it waits for the peer, when the peer's close frame or EOF came too
//! (RFC 6455 §5.5.1, §7.1.1). A grace period bounds the wait. The TCP
//! connection closes when the session stops.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_http::ws::{CloseCode, CloseReason, Message};
use bytes::Bytes;
use futures_util::Sink;

/// How long a closing session waits for its close frame to be flushed and,
/// where it waits, for the peer's answer.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long a session dropped with its runtime (the application ended its
/// actix System without `close()`) keeps the socket open after its close
/// frame was flushed, blocking the thread that drops it (sessions dropped
/// together flush in the same last poll and so share one wait). Without it the
/// connection's end (FIN, or over `wss://` the end of the TLS stream) can
/// reach the server in the same read as the close frame, and a server may
/// drop the bytes it read with the end: actix-web's does, so the embedded
/// config-service missed the close frame in about 4 of 10 `wss://`
/// shutdowns. Only that path waits; `close()` waits for the server's echo
/// instead.
pub(crate) const TEARDOWN_LINGER: Duration = Duration::from_millis(20);

/// The longest reason a close frame carries (125 bytes of payload less the
/// two-byte code, RFC 6455 §5.5).
const MAX_CLOSE_REASON: usize = 123;

/// The ping that awaits its pong.
///
/// Only a pong that echoes the outstanding ping's payload counts: an
/// unsolicited pong (RFC 6455 §5.5.3 allows them as a one-way heartbeat)
/// says the peer writes, not that it reads what we write, and a peer that
/// sends pongs and reads nothing must not keep a session whose output goes
/// nowhere alive. The payload carries a per-session random value, so that
/// only a peer that read our ping can echo it.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    seq: u64,
    outstanding: Option<u64>,
    nonce: u64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            seq: 0,
            outstanding: None,
            nonce: rand::random(),
        }
    }
}

impl Heartbeat {
    /// The payload of ping `seq`.
    pub(crate) fn payload(&self, seq: u64) -> Bytes {
        Bytes::copy_from_slice(&(seq ^ self.nonce).to_be_bytes())
    }

    /// A new ping's number, unless one is still unanswered.
    pub(crate) fn ping(&mut self) -> Option<u64> {
        if self.outstanding.is_some() {
            return None;
        }
        self.seq += 1;
        self.outstanding = Some(self.seq);
        Some(self.seq)
    }

    /// A pong arrived: `true` when it answers the outstanding ping.
    pub(crate) fn pong(&mut self, data: &[u8]) -> bool {
        match self.outstanding {
            Some(seq) if self.payload(seq)[..] == *data => {
                self.outstanding = None;
                true
            }
            _ => false,
        }
    }

    /// Whether ping `seq` is still unanswered.
    pub(crate) fn missed(&self, seq: u64) -> bool {
        self.outstanding == Some(seq)
    }
}

/// A session that has written its close frame.
#[derive(Debug)]
pub(crate) struct Closing {
    /// Wait for the peer's close frame or EOF, not only for the flush.
    wait_for_peer: bool,
    /// When our close frame was on the wire.
    flushed_at: Option<Instant>,
    peer_done: bool,
}

impl Closing {
    pub(crate) fn new(wait_for_peer: bool) -> Self {
        Self {
            wait_for_peer,
            flushed_at: None,
            peer_done: false,
        }
    }

    /// Our close frame is on the wire. `true`: stop now.
    pub(crate) fn flushed(&mut self) -> bool {
        self.flushed_at.get_or_insert_with(Instant::now);
        self.peer_done || !self.wait_for_peer
    }

    /// Whether our close frame is on the wire.
    pub(crate) fn is_flushed(&self) -> bool {
        self.flushed_at.is_some()
    }

    /// How long is left of [`TEARDOWN_LINGER`] since our close frame was
    /// on the wire (zero if it is not): sessions dropped together, each
    /// flushed in the same last poll, wait about one linger in all.
    pub(crate) fn linger_left(&self) -> Duration {
        self.flushed_at.map_or(Duration::ZERO, |at| {
            TEARDOWN_LINGER.saturating_sub(at.elapsed())
        })
    }

    /// The peer answered with its close frame. `true`: stop now.
    pub(crate) fn peer_closed(&mut self) -> bool {
        self.peer_done = true;
        self.is_flushed()
    }
}

/// A close frame with `code` and `reason`, cut to what a close frame holds
/// (on a character boundary).
pub(crate) fn close_frame(code: CloseCode, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let description = (!reason.is_empty()).then(|| reason[..end].to_owned());
    Message::Close(Some(CloseReason { code, description }))
}

/// The echo of a peer's close frame: the same code, no reason (a close
/// frame without a code is echoed without one).
pub(crate) fn echo(reason: Option<&CloseReason>) -> Message {
    Message::Close(reason.map(|r| CloseReason {
        code: r.code,
        description: None,
    }))
}

/// A sink whose `close` only flushes: the session learns when its close
/// frame is on the wire without half-closing TCP, which some servers read as
/// an abort before they read the close frame before it.
pub(crate) struct FlushOnClose<S>(pub(crate) S);

impl<S: Sink<I> + Unpin, I> Sink<I> for FlushOnClose<S> {
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.0).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: I) -> Result<(), S::Error> {
        Pin::new(&mut self.0).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_at_a_time() {
        let mut hb = Heartbeat::default();
        assert_eq!(hb.ping(), Some(1));
        assert_eq!(hb.ping(), None);
        assert!(hb.missed(1));
        assert!(!hb.pong(b""), "an unsolicited pong does not count");
        assert!(!hb.pong(&hb.payload(2)));
        assert!(hb.missed(1));
        assert!(hb.pong(&hb.payload(1)));
        assert!(!hb.missed(1));
        assert_eq!(hb.ping(), Some(2));
    }

    #[test]
    fn closing_stops_when_flushed_and_answered_as_asked() {
        let mut c = Closing::new(true);
        assert!(!c.flushed());
        assert!(c.peer_closed());
        let mut c = Closing::new(true);
        assert!(!c.peer_closed());
        assert!(c.flushed());
        let mut c = Closing::new(false);
        assert_eq!(
            c.linger_left(),
            Duration::ZERO,
            "nothing flushed, nothing to wait for"
        );
        assert!(c.flushed());
        let left = c.linger_left();
        assert!(left > Duration::ZERO && left <= TEARDOWN_LINGER, "{left:?}");
        std::thread::sleep(TEARDOWN_LINGER);
        assert_eq!(c.linger_left(), Duration::ZERO, "a linger already spent");
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let Message::Close(Some(reason)) = close_frame(CloseCode::Error, &long) else {
            panic!("a close frame");
        };
        let text = reason.description.unwrap();
        assert!(text.len() <= MAX_CLOSE_REASON);
        assert_eq!(text.len(), 122, "cut on a character boundary");
        let Message::Close(Some(reason)) = close_frame(CloseCode::Normal, "") else {
            panic!("a close frame");
        };
        assert_eq!(reason.description, None);
        assert!(matches!(echo(None), Message::Close(None)));
    }
}
