//! The typed messages the client delivers to the application's actors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::identity::{ConfigChanges, ConfigHash, Identity};
use crate::types::RoutingConfig;

/// What a receiver answers: `Err` rejects the event. During the handshake a
/// rejection fails the session (as in the Go client); after it, the error is
/// logged with the receiver named.
pub type ReceiverError = Box<dyn std::error::Error + Send + Sync>;

/// Where a [`RemoteConfig`] came from. The Go client has no counterpart: it
/// has no config cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ConfigSource {
    /// A config-service node, in this process's current session.
    Server,
    /// The last good config on disk
    /// ([`crate::ClusterClientBuilder::config_cache`]), delivered at start-up
    /// before any session: what a node sent in an earlier run, possibly
    /// stale. A config from a node replaces it as soon as a session is up.
    Cache,
    /// A config file read by [`crate::OfflineClient`].
    File,
}

impl ConfigSource {
    /// `"server"`, `"cache"` or `"file"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Cache => "cache",
            Self::File => "file",
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The module's remote config (valid JSON; the client never delivers a
/// payload that does not parse): what Go hands to
/// `RemoteConfigReceiver.ReceiveConfig`, plus where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The config JSON, byte for byte as the config-service sent it (for a
    /// cached config: as it sent it in an earlier run).
    pub data: Bytes,
    /// Whether this is the config of a new session
    /// (`CONFIG:SEND_CONFIG_WHEN_CONNECTED`) rather than a change. A cached
    /// config is initial too: it is the first config of the process.
    pub initial: bool,
    /// Where it came from: a node, the cache on disk, or an offline file.
    pub source: ConfigSource,
    /// Its hash and what changed since the config accepted before it, set
    /// by the client as it sends the config.
    identity: Option<Arc<Identity>>,
}

impl RemoteConfig {
    /// A config from its JSON text, from a config-service node.
    pub fn new(data: impl Into<Bytes>, initial: bool) -> Self {
        Self {
            data: data.into(),
            initial,
            source: ConfigSource::Server,
            identity: None,
        }
    }

    /// The same config with its identity against the config accepted
    /// before it.
    pub(crate) fn set_identity(&mut self, identity: Arc<Identity>) {
        self.identity = Some(identity);
    }

    /// Its identity, as the client set it.
    pub(crate) fn identity(&self) -> Option<&Arc<Identity>> {
        self.identity.as_ref()
    }

    /// The config's identity: a short hash of its canonical JSON, the same
    /// whatever the key order and whitespace (see [`ConfigHash`]); what the
    /// status, the INFO line and the `isp_cluster_config_info` series show
    /// once the receiver accepts it. Computed once by the client (here
    /// again for a config made with [`RemoteConfig::new`]).
    pub fn hash(&self) -> ConfigHash {
        match &self.identity {
            Some(identity) => identity.hash,
            None => Identity::of(&self.data).hash,
        }
    }

    /// What changed since the config the receiver accepted before this one
    /// (the JSON paths added, removed and changed, never a value); empty
    /// for the same config again. `None` for the first config of the
    /// process (the cached one, at a cold start with a cache), for a
    /// config made with [`RemoteConfig::new`], and when either config
    /// cannot be compared as JSON values (a number beyond `f64`).
    ///
    /// ```
    /// # use isp_cluster::{RemoteConfig, ReceiverError};
    /// fn apply(config: &RemoteConfig) -> Result<(), ReceiverError> {
    ///     let restart_pool = config
    ///         .changes()
    ///         .is_none_or(|c| c.paths().any(|(_, path)| path == "db" || path.starts_with("db.")));
    ///     // …
    ///     # let _ = restart_pool;
    ///     Ok(())
    /// }
    /// ```
    pub fn changes(&self) -> Option<&ConfigChanges> {
        self.identity.as_ref()?.changes.as_deref()
    }

    /// The same config, marked as coming from `source`.
    #[must_use]
    pub fn with_source(mut self, source: ConfigSource) -> Self {
        self.source = source;
        self
    }

    /// Where it came from: [`ConfigSource::Cache`] for the last good config
    /// read from disk at start-up, [`ConfigSource::Server`] for a node's.
    pub fn source(&self) -> ConfigSource {
        self.source
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
            .field("source", &self.source)
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

/// An address list for an INFO line: the count and at most
/// [`ShownHosts::MAX`] addresses, so that a module of hundreds of instances
/// does not write a line of kilobytes at every change.
pub(crate) struct ShownHosts<'a>(pub(crate) &'a [String]);

impl ShownHosts<'_> {
    const MAX: usize = 8;
}

impl fmt::Display for ShownHosts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts = self.0;
        if hosts.is_empty() {
            return f.write_str("none (no live instance)");
        }
        write!(f, "{} [", hosts.len())?;
        for (i, host) in hosts.iter().take(Self::MAX).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(host)?;
        }
        if hosts.len() > Self::MAX {
            write!(f, ", … {} more", hosts.len() - Self::MAX)?;
        }
        f.write_str("]")
    }
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
    /// The config receiver rejected a config (answered `Err`): the module
    /// runs on its last good config. During a handshake the session fails
    /// too (an `Inactive` follows), as in Go; every new session fails the
    /// same way while the server holds that config.
    ConfigRejected {
        /// Where the config came from: a node or the cache on disk.
        source: ConfigSource,
        /// The receiver's error, made safe (bounded, never a config value).
        reason: String,
    },
}

impl Message for SessionEvent {
    type Result = ();
}
