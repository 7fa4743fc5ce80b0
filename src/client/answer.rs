//! What a session is owed for each event it hands to the delivery actor:
//! one answer, whatever becomes of that actor.
//!
//! An [`Owed`] travels with the offer, in the delivery actor's mailbox
//! and then in its lane, and is answered once ([`Owed::answer`]). If it is
//! dropped unanswered, its drop answers that the delivery was lost: the
//! delivery actor stopped (a panic in it drops its lanes and its mailbox,
//! with every offer in them), or the offer never reached it. So a session
//! that waits for a receiver always hears back, and ends rather than wait
//! for ever; the supervisor starts a new delivery actor for the next one.
//! An offer that a newer one of the same kind replaced (latest wins) is
//! released ([`Owed::release`]): the answer to the newer one counts.
//!
//! The answer's text has two readers. The status, the session's events and
//! the log get the receiver's error, masked and bounded ([`Failure::reason`]).
//! The config-service gets a fixed reason that says what failed, never the
//! receiver's words ([`Failure::told`]), as the Go client keeps a
//! receiver's error in its own log.

use std::borrow::Cow;

use actix::prelude::*;

use super::handshake::Initial;

/// How a delivery a session offered went.
pub(crate) struct Delivered {
    pub(crate) kind: Initial,
    pub(crate) outcome: Result<(), Failure>,
}

impl Message for Delivered {
    type Result = ();
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// The receiver answered `Err`: its error as safe text.
    Rejected(String),
    /// No answer within the receiver's timeout.
    TimedOut,
    /// The receiver's mailbox is closed.
    Stopped,
    /// The delivery actor stopped before the receiver answered.
    Lost,
}

/// A failed delivery: what failed, to whom it is said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: Initial,
    pub(crate) why: Why,
    /// The receiver's name for logs ("remote config receiver", …).
    pub(crate) receiver: String,
    pub(crate) event: Cow<'static, str>,
}

impl Failure {
    /// For the status, the session's events and the log: names the
    /// receiver and the event, and quotes the receiver's error (safe text).
    pub(crate) fn reason(&self) -> String {
        let Failure {
            receiver, event, ..
        } = self;
        match &self.why {
            Why::Rejected(error) => format!("{receiver} rejected {event}: {error}"),
            Why::TimedOut => format!("{receiver} timed out on {event}"),
            Why::Stopped => {
                format!("{receiver} is stopped (its mailbox is closed); {event} not delivered")
            }
            Why::Lost => format!(
                "{event} was not delivered to the {receiver}: the client's delivery actor stopped"
            ),
        }
    }

    /// For the close frame to the config-service: a fixed text per kind and
    /// failure, never the receiver's words.
    pub(crate) fn told(&self) -> &'static str {
        match (self.kind, &self.why) {
            (Initial::Config, Why::Rejected(_)) => "config receiver rejected the config",
            (Initial::Config, Why::TimedOut) => "config receiver did not answer in time",
            (Initial::Config, Why::Stopped) => "config receiver is stopped",
            (Initial::Config, Why::Lost) => "the client failed to deliver the config",
            (Initial::Routes, Why::Rejected(_)) => "routes receiver rejected the routing table",
            (Initial::Routes, Why::TimedOut) => "routes receiver did not answer in time",
            (Initial::Routes, Why::Stopped) => "routes receiver is stopped",
            (Initial::Routes, Why::Lost) => "the client failed to deliver the routing table",
            (Initial::Hosts(_), Why::Rejected(_)) => "hosts receiver rejected the addresses",
            (Initial::Hosts(_), Why::TimedOut) => "hosts receiver did not answer in time",
            (Initial::Hosts(_), Why::Stopped) => "hosts receiver is stopped",
            (Initial::Hosts(_), Why::Lost) => "the client failed to deliver the addresses",
        }
    }
}

/// The answer owed to a session for one offered event.
pub(crate) struct Owed {
    kind: Initial,
    event: Cow<'static, str>,
    /// The receiver's name, for the text of a lost delivery.
    receiver: &'static str,
    /// `None` once answered or released.
    reply: Option<Recipient<Delivered>>,
}

impl Owed {
    pub(crate) fn new(
        kind: Initial,
        event: Cow<'static, str>,
        reply: Recipient<Delivered>,
    ) -> Self {
        let receiver = match kind {
            Initial::Config => "remote config receiver",
            Initial::Routes => "routes receiver",
            Initial::Hosts(_) => "hosts receiver",
        };
        Self {
            kind,
            event,
            receiver,
            reply: Some(reply),
        }
    }

    pub(crate) fn event(&self) -> &Cow<'static, str> {
        &self.event
    }

    /// Tells the session how its delivery went.
    pub(crate) fn answer(mut self, outcome: Result<(), Failure>) {
        if let Some(reply) = self.reply.take() {
            reply.do_send(Delivered {
                kind: self.kind,
                outcome,
            });
        }
    }

    /// No answer is owed any more: a newer offer of the same kind took its
    /// place, or its session is gone.
    pub(crate) fn release(mut self) {
        self.reply = None;
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        reply.do_send(Delivered {
            kind: self.kind,
            outcome: Err(Failure {
                kind: self.kind,
                why: Why::Lost,
                receiver: self.receiver.to_owned(),
                event: std::mem::take(&mut self.event),
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records the answers it gets.
    struct Session(Arc<Mutex<Vec<Result<(), Failure>>>>);

    impl Actor for Session {
        type Context = Context<Self>;
    }

    impl Handler<Delivered> for Session {
        type Result = ();
        fn handle(&mut self, msg: Delivered, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.outcome);
        }
    }

    #[actix::test]
    async fn an_owed_answer_is_sent_once_and_a_dropped_one_says_lost() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let session = Session(seen.clone()).start().recipient();
        Owed::new(Initial::Config, "CONFIG:A".into(), session.clone()).answer(Ok(()));
        Owed::new(Initial::Config, "CONFIG:B".into(), session.clone()).release();
        drop(Owed::new(Initial::Routes, "ROUTES".into(), session));
        actix::clock::sleep(std::time::Duration::from_millis(20)).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], Ok(()));
        let lost = seen[1].clone().unwrap_err();
        assert_eq!(lost.why, Why::Lost);
        assert_eq!(
            lost.reason(),
            "ROUTES was not delivered to the routes receiver: the client's delivery actor stopped"
        );
        assert_eq!(
            lost.told(),
            "the client failed to deliver the routing table"
        );
    }

    #[test]
    fn the_config_service_is_told_what_failed_never_the_receivers_words() {
        let failure = Failure {
            kind: Initial::Config,
            why: Why::Rejected("cannot connect to postgres://app:***@db".into()),
            receiver: "remote config receiver".into(),
            event: "CONFIG:SEND_CONFIG_CHANGED".into(),
        };
        assert_eq!(failure.told(), "config receiver rejected the config");
        assert_eq!(
            failure.reason(),
            "remote config receiver rejected CONFIG:SEND_CONFIG_CHANGED: \
             cannot connect to postgres://app:***@db"
        );
    }
}
