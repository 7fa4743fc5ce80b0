//! Delivery lanes: one per receiver, one message in flight, latest wins.
//!
//! Every event the config-service sends is a full snapshot (the whole
//! config, the whole routing table, the whole address list), so while a
//! receiver is busy a lane keeps only the newest waiting message. Memory stays
//! bounded (at most one waiting message per receiver, however fast the
//! server pushes), order holds, and a slow receiver never applies state
//! older than what it already saw.
//!
//! The lanes are owned by the delivery actor ([`super::delivery`]), which
//! lives as long as the client: these rules hold across sessions.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use actix::{Message, Recipient};

use super::{HostsChanged, RemoteConfig, RoutesChanged};

/// A message that replaces an older one of its kind.
pub(crate) trait Snapshot: Message + Send + 'static
where
    Self::Result: Send,
{
    /// Takes over what must survive from the `older` message it replaces.
    fn replaces(&mut self, older: Self);

    /// What to keep once the receiver accepted this message: the config
    /// for the cache on disk; nothing for the other kinds.
    fn kept_when_accepted(&self) -> Option<bytes::Bytes> {
        None
    }
}

impl Snapshot for RemoteConfig {
    fn replaces(&mut self, older: Self) {
        // A receiver that has not seen the session's first config yet must
        // still learn that this one starts a session.
        self.initial |= older.initial;
    }

    fn kept_when_accepted(&self) -> Option<bytes::Bytes> {
        Some(self.data.clone())
    }
}

impl Snapshot for RoutesChanged {
    fn replaces(&mut self, _older: Self) {}
}

impl Snapshot for HostsChanged {
    fn replaces(&mut self, _older: Self) {}
}

/// A message waiting in a lane, with the event it came from and where its
/// outcome goes.
pub(crate) struct Waiting<M, O> {
    pub(crate) message: M,
    pub(crate) event: Cow<'static, str>,
    pub(crate) origin: O,
}

/// One receiver's lane. `O` says where an outcome goes (the session that
/// offered the message); the lane only keeps it with its message.
pub(crate) struct Lane<M: Snapshot, O>
where
    M::Result: Send,
{
    /// The receiver's name for logs and errors.
    pub(crate) name: String,
    pub(crate) recipient: Recipient<M>,
    pub(crate) timeout: Duration,
    /// The newest message not yet sent.
    waiting: Option<Waiting<M, O>>,
    busy: bool,
    /// When the waiting message's frame arrived.
    arrived: Option<Instant>,
    /// When the frame of the message in flight arrived.
    in_flight_arrived: Option<Instant>,
}

impl<M: Snapshot, O> Lane<M, O>
where
    M::Result: Send,
{
    pub(crate) fn new(name: String, recipient: Recipient<M>, timeout: Duration) -> Self {
        Self {
            name,
            recipient,
            timeout,
            waiting: None,
            busy: false,
            arrived: None,
            in_flight_arrived: None,
        }
    }

    /// Queues `message`; a message still waiting is replaced by it, and
    /// the origin of the replaced one is returned.
    pub(crate) fn offer(
        &mut self,
        mut message: M,
        event: Cow<'static, str>,
        origin: O,
    ) -> Option<O> {
        let replaced = self.waiting.take().map(|older| {
            message.replaces(older.message);
            older.origin
        });
        self.waiting = Some(Waiting {
            message,
            event,
            origin,
        });
        self.arrived = Some(Instant::now());
        replaced
    }

    /// The message to send now, unless one is in flight.
    pub(crate) fn next(&mut self) -> Option<Waiting<M, O>> {
        if self.busy {
            return None;
        }
        let next = self.waiting.take()?;
        self.busy = true;
        self.in_flight_arrived = self.arrived.take();
        Some(next)
    }

    /// Whether a message is in flight.
    pub(crate) fn busy(&self) -> bool {
        self.busy
    }

    /// The message in flight was answered (or timed out); returns how long
    /// since its frame arrived (the wait behind a busy receiver included).
    pub(crate) fn done(&mut self) -> Option<Duration> {
        self.busy = false;
        self.in_flight_arrived.take().map(|at| at.elapsed())
    }

    /// Drops the waiting message if `gone` says its origin is gone; returns
    /// that origin.
    pub(crate) fn withdraw(&mut self, gone: impl Fn(&O) -> bool) -> Option<O> {
        if !self.waiting.as_ref().is_some_and(|w| gone(&w.origin)) {
            return None;
        }
        self.clear()
    }

    /// Drops the waiting message (the client is closing); returns its
    /// origin.
    pub(crate) fn clear(&mut self) -> Option<O> {
        self.arrived = None;
        self.waiting.take().map(|w| w.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<RemoteConfig> for Sink {
        type Result = Result<(), super::super::ReceiverError>;
        fn handle(&mut self, _: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
            Ok(())
        }
    }

    #[actix::test]
    async fn latest_wins_and_keeps_initial_while_one_is_in_flight() {
        let mut lane = Lane::new("r".into(), Sink.start().recipient(), Duration::from_secs(1));
        assert!(lane
            .offer(RemoteConfig::new(&b"{\"v\":1}"[..], true), "a".into(), 1)
            .is_none());
        let first = lane.next().expect("idle lane sends at once");
        assert_eq!(first.message.as_bytes(), b"{\"v\":1}");
        assert!(lane.next().is_none(), "nothing waits");
        let offer = |lane: &mut Lane<RemoteConfig, i32>, v: i32, initial, event: &str, origin| {
            let data = format!("{{\"v\":{v}}}");
            lane.offer(
                RemoteConfig::new(data.into_bytes(), initial),
                event.to_owned().into(),
                origin,
            )
        };
        assert_eq!(offer(&mut lane, 2, true, "b", 1), None);
        assert_eq!(
            offer(&mut lane, 3, false, "c", 2),
            Some(1),
            "v2's origin is handed back"
        );
        assert_eq!(offer(&mut lane, 4, false, "d", 3), Some(2));
        assert!(lane.next().is_none(), "one in flight at a time");
        assert!(lane.done().is_some(), "the first frame's arrival is known");
        let newest = lane.next().expect("the newest waits");
        assert_eq!(newest.message.as_bytes(), b"{\"v\":4}");
        assert_eq!(newest.event, "d");
        assert_eq!(
            newest.origin, 3,
            "the outcome goes to the newest offer's origin"
        );
        assert!(
            newest.message.initial,
            "a merged initial config stays initial"
        );
        lane.done();
        assert!(lane.next().is_none());
    }

    #[actix::test]
    async fn a_withdrawn_origin_loses_its_waiting_message_not_the_one_in_flight() {
        let mut lane = Lane::new("r".into(), Sink.start().recipient(), Duration::from_secs(1));
        lane.offer(RemoteConfig::new(&b"{}"[..], true), "a".into(), 1);
        let _in_flight = lane.next().expect("sent");
        lane.offer(RemoteConfig::new(&b"{}"[..], false), "b".into(), 1);
        assert_eq!(lane.withdraw(|o| *o == 2), None);
        assert!(lane.busy());
        assert_eq!(lane.withdraw(|o| *o == 1), Some(1));
        lane.done();
        assert!(
            lane.next().is_none(),
            "session 1's waiting config went with it"
        );
    }
}
