//! Bounded output: what a session wrote that the peer has not taken yet.
//!
//! actix's `SinkWrite` queues without limit, so a peer that writes and never
//! reads could make the client hold every answer it owes: a pong per ping,
//! an error ack per unknown event. Two rules bound that:
//!
//! * at most one pong waits, the answer to the newest ping (RFC 6455
//!   §5.5.3 allows answering only the most recent one): it is kept here,
//!   outside the queue, and handed to the connection before the next
//!   queued frame as soon as the connection takes one;
//! * the session counts the bytes it queued and the sink counts them out
//!   as the connection takes them; once more than [`MAX_UNSENT_BYTES`] wait,
//!   the session ends with 1008 "peer is not reading", and everything
//!   queued before its close frame is dropped so that the close frame is
//!   the next thing the peer reads.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_http::ws::Message;
use bytes::Bytes;
use futures_util::Sink;

use super::settings::DEFAULT_READ_LIMIT;

/// The most a session lets wait for a peer that does not read: twice the
/// default read limit, room for the largest message a session writes (its
/// schema) and the acks and pings around it.
pub(crate) const MAX_UNSENT_BYTES: usize = 2 * DEFAULT_READ_LIMIT;

/// Shared by the session (which queues) and [`OutboxSink`] (which sees
/// what the connection took). One thread: the session's arbiter.
#[derive(Clone, Default)]
pub(crate) struct Outbox(Rc<RefCell<State>>);

#[derive(Default)]
struct State {
    unsent_bytes: usize,
    pong: Option<Bytes>,
    /// The sink's task, woken when a pong is set.
    waker: Option<Waker>,
    /// Drop everything but close frames (the session gave up on the peer).
    discarding: bool,
}

/// The bytes a message counts for.
fn size(message: &Message) -> usize {
    let payload = match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(reason) => reason
            .as_ref()
            .and_then(|r| r.description.as_ref())
            .map_or(0, String::len),
        Message::Continuation(_) | Message::Nop => 0,
    };
    // The frame header: at most 14 bytes.
    payload + 14
}

impl Outbox {
    /// `message` goes into the queue now.
    pub(crate) fn queued(&self, message: &Message) {
        self.0.borrow_mut().unsent_bytes += size(message);
    }

    /// Bytes queued and not yet taken by the connection.
    pub(crate) fn unsent_bytes(&self) -> usize {
        self.0.borrow().unsent_bytes
    }

    /// The answer to the newest ping; replaces one that still waits.
    pub(crate) fn set_pong(&self, data: Bytes) {
        let mut state = self.0.borrow_mut();
        state.pong = Some(data);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// No pong is owed any more (the session is closing).
    pub(crate) fn clear_pong(&self) {
        self.0.borrow_mut().pong = None;
    }

    /// Drops every queued frame but close frames from here on.
    pub(crate) fn discard_unsent(&self) {
        let mut state = self.0.borrow_mut();
        state.discarding = true;
        state.pong = None;
    }
}

/// The session's sink: hands the waiting pong over first, and counts what
/// the connection takes.
pub(crate) struct OutboxSink<S> {
    inner: S,
    outbox: Outbox,
}

impl<S> OutboxSink<S> {
    pub(crate) fn new(inner: S, outbox: Outbox) -> Self {
        Self { inner, outbox }
    }
}

impl<S: Sink<Message> + Unpin> OutboxSink<S> {
    /// Ready once no pong waits (it went to the connection); pending while
    /// one waits and the connection takes nothing.
    fn hand_over_pong(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let mut state = self.outbox.0.borrow_mut();
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        if state.pong.is_none() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                let data = state.pong.take().unwrap_or_default();
                drop(state);
                Poll::Ready(Pin::new(&mut self.inner).start_send(Message::Pong(data)))
            }
            other => other,
        }
    }
}

impl<S: Sink<Message> + Unpin> Sink<Message> for OutboxSink<S> {
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        match self.hand_over_pong(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_ready(cx),
            other => other,
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), S::Error> {
        let discard = {
            let mut state = self.outbox.0.borrow_mut();
            state.unsent_bytes = state.unsent_bytes.saturating_sub(size(&item));
            state.discarding && !matches!(item, Message::Close(_))
        };
        if discard {
            return Ok(());
        }
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // A flush makes room for a pong that waited for it: try once more.
        for _ in 0..2 {
            let pong = self.hand_over_pong(cx);
            let flushed = Pin::new(&mut self.inner).poll_flush(cx);
            match (pong, flushed) {
                (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => return Poll::Ready(Err(e)),
                (Poll::Ready(Ok(())), flushed) => return flushed,
                (Poll::Pending, Poll::Ready(Ok(()))) => continue,
                (Poll::Pending, Poll::Pending) => return Poll::Pending,
            }
        }
        Poll::Pending
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        match self.hand_over_pong(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_close(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A sink that takes `room` items, then is pending.
    #[derive(Default)]
    struct Slow {
        taken: Vec<Message>,
        room: usize,
    }

    impl Sink<Message> for Slow {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            if self.room > 0 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), ()> {
            self.room -= 1;
            self.taken.push(item);
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn only_the_newest_pong_waits_and_it_goes_first() {
        let outbox = Outbox::default();
        let mut sink = OutboxSink::new(Slow::default(), outbox.clone());
        let mut cx = Context::from_waker(Waker::noop());
        for n in 0..1000u32 {
            outbox.set_pong(Bytes::from(n.to_string()));
        }
        let text = Message::Text("a".into());
        outbox.queued(&text);
        assert!(Pin::new(&mut sink).poll_ready(&mut cx).is_pending());
        sink.inner.room = 2;
        assert!(matches!(
            Pin::new(&mut sink).poll_ready(&mut cx),
            Poll::Ready(Ok(()))
        ));
        Pin::new(&mut sink).start_send(text).unwrap();
        assert_eq!(outbox.unsent_bytes(), 0);
        assert_eq!(sink.inner.taken.len(), 2);
        assert!(matches!(&sink.inner.taken[0], Message::Pong(p) if &p[..] == b"999"));
    }

    #[test]
    fn discarding_keeps_only_close_frames() {
        let outbox = Outbox::default();
        let mut sink = OutboxSink::new(
            Slow {
                room: 10,
                ..Slow::default()
            },
            outbox.clone(),
        );
        let ack = Message::Text("__ack_x||1||unknown".into());
        outbox.queued(&ack);
        outbox.queued(&Message::Close(None));
        outbox.discard_unsent();
        Pin::new(&mut sink).start_send(ack).unwrap();
        Pin::new(&mut sink)
            .start_send(Message::Close(None))
            .unwrap();
        assert_eq!(outbox.unsent_bytes(), 0);
        assert!(matches!(sink.inner.taken[..], [Message::Close(None)]));
    }
}
