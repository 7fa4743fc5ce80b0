//! The handshake as a pure state machine: no I/O, no timers; the session
//! feeds it what happened and acts on what it answers.
//!
//! ```text
//! Registering ──both acks ok──▶ AwaitingInitialState ──all accepted──▶ Declaring ──ack ok──▶ Active
//! ```
//!
//! `MODULE:SEND_CONFIG_SCHEMA` and `MODULE:SEND_REQUIREMENTS` go out
//! together. An initial event counts whenever it arrives, also before the
//! acks (the real config-service answers in any order). `MODULE:READY` goes
//! out once every wanted initial event was accepted by its receiver.

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Registering,
    AwaitingInitialState,
    Declaring,
    Active,
}

/// An initial event the handshake may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Initial {
    Config,
    Routes,
    /// The addresses of the `n`th required module.
    Hosts(usize),
}

impl Initial {
    /// The receiver kind its deliveries are metered under.
    pub(crate) fn metered(self) -> crate::metrics::Receiver {
        match self {
            Self::Config => crate::metrics::Receiver::Config,
            Self::Routes => crate::metrics::Receiver::Routes,
            Self::Hosts(_) => crate::metrics::Receiver::Hosts,
        }
    }
}

/// The handshake's view of one initial event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    NotWanted,
    Pending,
    Arrived,
    Accepted,
}

impl Wait {
    fn wanted(yes: bool) -> Self {
        if yes {
            Wait::Pending
        } else {
            Wait::NotWanted
        }
    }

    fn done(self) -> bool {
        matches!(self, Wait::NotWanted | Wait::Accepted)
    }
}

/// The handshake of one session.
#[derive(Debug)]
pub(crate) struct Handshake {
    phase: Phase,
    registration_acks: u8,
    config: Wait,
    routes: Wait,
    modules: Vec<Wait>,
}

impl Handshake {
    pub(crate) fn new(config: bool, routes: bool, modules: usize) -> Self {
        Self {
            phase: Phase::Registering,
            registration_acks: 0,
            config: Wait::wanted(config),
            routes: Wait::wanted(routes),
            modules: vec![Wait::Pending; modules],
        }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// One of the two registration emits was acknowledged `ok`. `true` when
    /// both were: the initial-state deadlines start now.
    pub(crate) fn registered(&mut self) -> bool {
        self.registration_acks = self.registration_acks.saturating_add(1);
        if self.registration_acks == 2 && self.phase == Phase::Registering {
            self.phase = Phase::AwaitingInitialState;
            true
        } else {
            false
        }
    }

    fn wait_mut(&mut self, event: Initial) -> Option<&mut Wait> {
        match event {
            Initial::Config => Some(&mut self.config),
            Initial::Routes => Some(&mut self.routes),
            Initial::Hosts(i) => self.modules.get_mut(i),
        }
    }

    /// `event` arrived (it is on its way to the receiver).
    pub(crate) fn arrived(&mut self, event: Initial) {
        if let Some(wait) = self.wait_mut(event) {
            if *wait == Wait::Pending {
                *wait = Wait::Arrived;
            }
        }
    }

    /// The receiver accepted `event`.
    pub(crate) fn accepted(&mut self, event: Initial) {
        if let Some(wait) = self.wait_mut(event) {
            if *wait == Wait::Arrived {
                *wait = Wait::Accepted;
            }
        }
    }

    /// `true` once, when `MODULE:READY` is due: registered and every
    /// wanted initial event accepted.
    pub(crate) fn declare_now(&mut self) -> bool {
        let all_done =
            self.config.done() && self.routes.done() && self.modules.iter().all(|w| w.done());
        if self.phase == Phase::AwaitingInitialState && all_done {
            self.phase = Phase::Declaring;
            true
        } else {
            false
        }
    }

    /// `MODULE:READY` was acknowledged `ok`.
    pub(crate) fn activated(&mut self) {
        self.phase = Phase::Active;
    }

    /// Still waiting for the initial config to arrive.
    pub(crate) fn config_missing(&self) -> bool {
        self.phase == Phase::AwaitingInitialState && self.config == Wait::Pending
    }

    /// The first initial event other than the config that has not arrived,
    /// while the handshake waits for them.
    pub(crate) fn first_missing(&self) -> Option<Initial> {
        if self.phase != Phase::AwaitingInitialState {
            return None;
        }
        if self.routes == Wait::Pending {
            return Some(Initial::Routes);
        }
        self.modules
            .iter()
            .position(|w| *w == Wait::Pending)
            .map(Initial::Hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_waits_for_both_acks_and_every_accepted_initial_event() {
        let mut h = Handshake::new(true, true, 1);
        // Events before the acks count.
        h.arrived(Initial::Routes);
        h.accepted(Initial::Routes);
        assert!(!h.registered());
        assert!(!h.declare_now(), "one ack is not enough");
        assert!(h.registered());
        assert_eq!(h.phase(), Phase::AwaitingInitialState);
        assert!(h.config_missing());
        assert_eq!(h.first_missing(), Some(Initial::Hosts(0)));
        h.arrived(Initial::Config);
        h.arrived(Initial::Hosts(0));
        assert!(!h.config_missing());
        assert_eq!(h.first_missing(), None);
        assert!(!h.declare_now(), "arrived is not accepted");
        h.accepted(Initial::Config);
        h.accepted(Initial::Hosts(0));
        assert!(h.declare_now());
        assert!(!h.declare_now(), "only once");
        h.activated();
        assert!(h.is_active());
    }

    #[test]
    fn nothing_wanted_declares_after_the_acks() {
        let mut h = Handshake::new(false, false, 0);
        h.registered();
        h.registered();
        assert!(h.declare_now());
        // Unknown indices are ignored, not a panic.
        h.arrived(Initial::Hosts(7));
        h.accepted(Initial::Hosts(7));
    }

    #[test]
    fn accepting_without_arriving_does_not_count() {
        let mut h = Handshake::new(true, false, 0);
        h.registered();
        h.registered();
        h.accepted(Initial::Config);
        assert!(!h.declare_now());
    }
}
