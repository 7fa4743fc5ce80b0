//! The typed messages the client delivers to the application's actors.

use std::fmt;
use std::time::Duration;

use actix::Message;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::types::RoutingConfig;

/// What a receiver answers: `Err` rejects the event. During the handshake a
/// rejection fails the session (as in the Go client); after it, the error is
/// logged with the receiver named.
pub type ReceiverError = Box<dyn std::error::Error + Send + Sync>;

/// The module's remote config, as the config-service sent it (valid JSON;
/// the client never delivers a payload that does not parse).
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The config JSON, byte for byte as received.
    pub data: Bytes,
    /// Whether this is the config of a new session
    /// (`CONFIG:SEND_CONFIG_WHEN_CONNECTED`) rather than a change.
    pub initial: bool,
}

impl RemoteConfig {
    /// A config from its JSON text.
    pub fn new(data: impl Into<Bytes>, initial: bool) -> Self {
        Self {
            data: data.into(),
            initial,
        }
    }

    /// Parses the config into the application's type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }

    /// The config JSON.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}

impl fmt::Debug for RemoteConfig {
    /// Shows the size only: a config holds secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("bytes", &self.data.len())
            .field("initial", &self.initial)
            .finish()
    }
}

impl Message for RemoteConfig {
    type Result = Result<(), ReceiverError>;
}

/// The full routing table, after the session started or after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutesChanged(pub RoutingConfig);

impl Message for RoutesChanged {
    type Result = Result<(), ReceiverError>;
}

/// The complete list of live addresses of a required module (empty: no live
/// instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsChanged {
    /// The required module.
    pub module: String,
    /// `host:port` of each live instance, IPv6 addresses in brackets.
    pub hosts: Vec<String>,
}

impl Message for HostsChanged {
    type Result = Result<(), ReceiverError>;
}

/// A change of the client's session, for applications and scripts that
/// want to follow it (see [`crate::ClusterClientBuilder::session_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The module is registered and ready on `host`.
    Active {
        /// The config-service node.
        host: String,
    },
    /// A session or a connection attempt ended.
    Inactive {
        /// The config-service node.
        host: String,
        /// Why it ended.
        reason: String,
        /// How long until the next attempt.
        retry_in: Duration,
    },
}

impl Message for SessionEvent {
    type Result = ();
}
