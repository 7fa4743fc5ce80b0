//! Delivery lanes: one per receiver, one message in flight, latest wins.
//!
//! Every event the config-service sends is a full snapshot (the whole
//! config, the whole routing table, the whole address list), so while a
//! receiver is busy a lane keeps only the newest waiting message. Memory stays
//! bounded (at most one waiting message per receiver, however fast the
//! server pushes), order holds, and a slow receiver never applies state
//! older than what it already saw.

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

/// One receiver's lane.
pub(crate) struct Lane<M: Snapshot>
where
    M::Result: Send,
{
    /// The receiver's name for logs and errors.
    pub(crate) name: String,
    pub(crate) recipient: Recipient<M>,
    pub(crate) timeout: Duration,
    /// The newest message not yet sent, with the event it came from.
    waiting: Option<(M, Cow<'static, str>)>,
    busy: bool,
    /// When the waiting message's frame arrived.
    arrived: Option<Instant>,
    /// When the frame of the message in flight arrived.
    in_flight_arrived: Option<Instant>,
}

impl<M: Snapshot> Lane<M>
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

    /// Queues `message`; a message still waiting is replaced by it
    /// (`true` then).
    pub(crate) fn offer(&mut self, mut message: M, event: Cow<'static, str>) -> bool {
        let replaced = match self.waiting.take() {
            Some((older, _)) => {
                message.replaces(older);
                true
            }
            None => false,
        };
        self.waiting = Some((message, event));
        self.arrived = Some(Instant::now());
        replaced
    }

    /// The message to send now, unless one is in flight.
    pub(crate) fn next(&mut self) -> Option<(M, Cow<'static, str>)> {
        if self.busy {
            return None;
        }
        let next = self.waiting.take()?;
        self.busy = true;
        self.in_flight_arrived = self.arrived.take();
        Some(next)
    }

    /// The message in flight was answered (or timed out); returns how long
    /// since its frame arrived (the wait behind a busy receiver included).
    pub(crate) fn done(&mut self) -> Option<Duration> {
        self.busy = false;
        self.in_flight_arrived.take().map(|at| at.elapsed())
    }

    /// Drops the waiting message (the session is closing).
    pub(crate) fn clear(&mut self) {
        self.waiting = None;
        self.arrived = None;
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
        assert!(!lane.offer(RemoteConfig::new(&b"{\"v\":1}"[..], true), "a".into()));
        let (first, _) = lane.next().expect("idle lane sends at once");
        assert_eq!(first.as_bytes(), b"{\"v\":1}");
        assert!(lane.next().is_none(), "nothing waits");
        assert!(!lane.offer(RemoteConfig::new(&b"{\"v\":2}"[..], true), "b".into()));
        assert!(lane.offer(RemoteConfig::new(&b"{\"v\":3}"[..], false), "c".into()));
        assert!(lane.offer(RemoteConfig::new(&b"{\"v\":4}"[..], false), "d".into()));
        assert!(lane.next().is_none(), "one in flight at a time");
        assert!(lane.done().is_some(), "the first frame's arrival is known");
        let (newest, event) = lane.next().expect("the newest waits");
        assert_eq!(newest.as_bytes(), b"{\"v\":4}");
        assert_eq!(event, "d");
        assert!(newest.initial, "a merged initial config stays initial");
        lane.done();
        assert!(lane.next().is_none());
    }
}
