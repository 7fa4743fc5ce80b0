//! What the client is doing: the state, the status with its counters and
//! the last rejected config, and the one shared copy of it.
//!
//! `Status` serializes to JSON with stable camelCase names, so that a
//! diagnostics endpoint is one `serde_json::to_string(&client.status())`:
//!
//! ```json
//! {"state":"active","retryInMs":null,"host":"10.0.0.1:9001",
//!  "since":"2026-12-01T09:28:23.123Z","lastError":null,
//!  "connectAttempts":4,"sessionsStarted":3,"sessionsEstablished":2,
//!  "sessionsFailed":1,
//!  "cacheWritesFailed":0,"configsRejected":1,"newestConfigRejected":true,
//!  "lastRejection":{"at":"2026-12-01T09:30:00.000Z","source":"server",
//!                   "reason":"port must be positive"},
//!  "configSource":"server",
//!  "config":{"hash":"3f9a1c2b7e01","appliedAt":"2026-12-01T09:29:00.000Z",
//!            "source":"server","previousHash":"9c0d1e2f3a4b",
//!            "changes":{"added":[],"removed":[],"changed":["limit"],"omitted":0}},
//!  "heldHosts":[]}
//! ```

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::ser::{Serialize, SerializeStruct, Serializer};
use tokio::sync::watch;

use super::{ConfigSource, HeldHosts};
use crate::identity::AppliedConfig;
use crate::time::rfc3339;

/// What the client is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Connecting to a node (TCP and WebSocket upgrade).
    Connecting,
    /// Connected; registering the module.
    Handshaking,
    /// Registered and ready (`MODULE:READY` acknowledged).
    Active,
    /// Waiting before the next attempt after failures.
    BackingOff {
        /// The delay before the next attempt.
        delay: Duration,
    },
    /// Closed for good with close 1000: by [`ClusterClient::close`](super::ClusterClient::close), or
    /// because the actix System ended.
    Closed,
    /// The actix System ended and took the connection with it before the
    /// close frame could be flushed: the server saw an abnormal disconnect.
    /// Final, like `Closed`.
    Aborted,
}

impl SessionState {
    /// The state's name in JSON: `"connecting"`, `"handshaking"`,
    /// `"active"`, `"backingOff"`, `"closed"` or `"aborted"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Handshaking => "handshaking",
            Self::Active => "active",
            Self::BackingOff { .. } => "backingOff",
            Self::Closed => "closed",
            Self::Aborted => "aborted",
        }
    }

    /// `Closed` or `Aborted`: the client will not connect again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Closed | Self::Aborted)
    }

    /// The state as its metric's label knows it.
    pub(crate) fn metered(&self) -> crate::metrics::State {
        use crate::metrics::State;
        match self {
            Self::Connecting => State::Connecting,
            Self::Handshaking => State::Handshaking,
            Self::Active => State::Active,
            Self::BackingOff { .. } => State::BackingOff,
            Self::Closed => State::Closed,
            Self::Aborted => State::Aborted,
        }
    }
}

/// A phrase for sentences: "connecting", "waiting 315 ms before the next
/// attempt", …
impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Handshaking => f.write_str("registering the module"),
            Self::Active => f.write_str("active"),
            Self::BackingOff { delay } => {
                write!(f, "waiting {} before the next attempt", Millis(*delay))
            }
            Self::Closed => f.write_str("closed"),
            Self::Aborted => f.write_str("ended without a close frame"),
        }
    }
}

impl Serialize for SessionState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A duration for people: "315 ms", "2.5 s".
pub(crate) struct Millis(pub(crate) Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < Duration::from_secs(1) {
            write!(f, "{} ms", self.0.as_millis())
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

/// The last config the receiver rejected (answered `Err`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// When the receiver answered.
    pub at: SystemTime,
    /// Where the config came from: a node or the cache on disk.
    pub source: ConfigSource,
    /// The receiver's error, made safe (bounded, never a config value).
    pub reason: String,
}

impl Serialize for Rejection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Rejection", 3)?;
        s.serialize_field("at", &rfc3339(self.at))?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("reason", &self.reason)?;
        s.end()
    }
}

/// The client's state, why, and its counters (what Go's bool healthcheck
/// does not say). Serializes with the camelCase names of its fields (see
/// the module docs), `since` and `at` as RFC 3339 UTC, and the backoff
/// delay as `retryInMs` (`null` unless backing off).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// What the client is doing.
    pub state: SessionState,
    /// The node of the current (or last) session.
    pub host: Option<String>,
    /// When the client entered `state`.
    pub since: SystemTime,
    /// Why the last session or attempt ended, while no session is active:
    /// cleared when a session becomes active, so that it never reads as a
    /// current fault (the reason of each end stays in the log and in
    /// [`SessionEvent::Inactive`](super::SessionEvent::Inactive)).
    pub last_error: Option<String>,
    /// Connection attempts (TCP, TLS, WebSocket upgrade) that came to an
    /// outcome, connected or failed: the sum of
    /// `isp_cluster_connect_attempts_total` over its outcomes. Go's client
    /// keeps no such count.
    pub connect_attempts: u64,
    /// Sessions started: connections upgraded, whose handshake began
    /// (`isp_cluster_sessions_started_total`).
    pub sessions_started: u64,
    /// Sessions established: their `MODULE:READY` was acknowledged
    /// (`isp_cluster_sessions_established_total`).
    pub sessions_established: u64,
    /// Sessions that started and ended before they were established, other
    /// than by the client's own close: the handshakes that failed
    /// (`isp_cluster_sessions_failed_total`). A session that ends after it
    /// was established (a normal close, a lasting session's failover, a
    /// flap) is not one; nor is a connection attempt that failed (counted
    /// by `connect_attempts` only). So `sessions_started` is
    /// `sessions_established + sessions_failed`, plus one while a handshake
    /// is under way or was closed by the client.
    pub sessions_failed: u64,
    /// Writes of the config cache that failed
    /// ([`ClusterClientBuilder::config_cache`](super::ClusterClientBuilder::config_cache)); each is also a warning
    /// naming the file and the error. Never fatal.
    pub cache_writes_failed: u64,
    /// Configs the config receiver rejected (answered `Err`), from a node
    /// or from the cache, since the client started.
    pub configs_rejected: u64,
    /// The newest config delivered was rejected: the module runs on the
    /// last config it accepted (or on its defaults). `false` again once a
    /// config is accepted. While active, [`ClusterClient::healthcheck`](super::ClusterClient::healthcheck)
    /// stays `Ok`: the module is registered and working on its last good
    /// config.
    pub newest_config_rejected: bool,
    /// The last rejection: when, from where, and the receiver's reason.
    pub last_rejection: Option<Rejection>,
    /// Where the config in force came from: the source of the last config
    /// the receiver accepted, `None` until one is (the module runs on its
    /// defaults). [`ClusterClient::config_applied`](super::ClusterClient::config_applied)
    /// waits for it. Always the same as `config`'s `source`: both are set
    /// by one update.
    pub config_source: Option<ConfigSource>,
    /// The config in force: its hash, since when, from where, and what
    /// changed from the one before (`None` until the receiver accepts one).
    pub config: Option<AppliedConfig>,
    /// The required modules whose last non-empty address list is kept
    /// while the config-service sends an empty one
    /// ([`ClusterClientBuilder::keep_last_hosts`](super::ClusterClientBuilder::keep_last_hosts)).
    pub held_hosts: Vec<HeldHosts>,
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let retry_in_ms = match self.state {
            SessionState::BackingOff { delay } => {
                Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        let mut s = serializer.serialize_struct("Status", 15)?;
        s.serialize_field("state", &self.state)?;
        s.serialize_field("retryInMs", &retry_in_ms)?;
        s.serialize_field("host", &self.host)?;
        s.serialize_field("since", &rfc3339(self.since))?;
        s.serialize_field("lastError", &self.last_error)?;
        s.serialize_field("connectAttempts", &self.connect_attempts)?;
        s.serialize_field("sessionsStarted", &self.sessions_started)?;
        s.serialize_field("sessionsEstablished", &self.sessions_established)?;
        s.serialize_field("sessionsFailed", &self.sessions_failed)?;
        s.serialize_field("cacheWritesFailed", &self.cache_writes_failed)?;
        s.serialize_field("configsRejected", &self.configs_rejected)?;
        s.serialize_field("newestConfigRejected", &self.newest_config_rejected)?;
        s.serialize_field("lastRejection", &self.last_rejection)?;
        s.serialize_field("configSource", &self.config_source)?;
        s.serialize_field("config", &self.config)?;
        s.serialize_field("heldHosts", &self.held_hosts)?;
        s.end()
    }
}

/// The client's status, shared by the handle, the supervisor, the delivery
/// actor and the cache writer. The supervisor writes the state and the
/// session counters; delivery adds rejections and the cache writer its
/// failures, touching nothing else; a session writes it only when it
/// outlives its supervisor (its runtime being dropped). Health is read
/// from the same snapshot, so a health answer and the status it carries
/// always agree. Every change wakes [`Shared::subscribe`]rs.
pub(crate) struct Shared {
    status: Mutex<Status>,
    /// The module, for the state gauge (empty: not metered).
    module: String,
    changed: watch::Sender<()>,
}

impl Shared {
    /// A client that has not connected yet, not metered.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::for_module(String::new())
    }

    /// A client of `module` that has not connected yet; its state is
    /// metered ([`crate::metrics::SESSION_STATE`]).
    pub(crate) fn for_module(module: String) -> Self {
        if !module.is_empty() {
            crate::metrics::session_state(&module, SessionState::Connecting.metered());
        }
        Self {
            module,
            status: Mutex::new(Status {
                state: SessionState::Connecting,
                host: None,
                since: SystemTime::now(),
                last_error: None,
                connect_attempts: 0,
                sessions_started: 0,
                sessions_established: 0,
                sessions_failed: 0,
                cache_writes_failed: 0,
                configs_rejected: 0,
                newest_config_rejected: false,
                last_rejection: None,
                config_source: None,
                config: None,
                held_hosts: Vec::new(),
            }),
            changed: watch::Sender::new(()),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Woken after every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock());
        self.changed.send_replace(());
    }

    pub(crate) fn set_state(&self, state: SessionState, host: Option<&str>) {
        if !self.module.is_empty() {
            crate::metrics::session_state(&self.module, state.metered());
        }
        self.update(|s| {
            s.state = state;
            if let Some(host) = host {
                s.host = Some(host.to_owned());
            }
            s.since = SystemTime::now();
        });
    }

    /// The receiver rejected a config from `source` with `reason` (safe
    /// text already).
    pub(crate) fn config_rejected(&self, source: ConfigSource, reason: String) {
        self.update(|s| {
            s.configs_rejected += 1;
            s.newest_config_rejected = true;
            s.last_rejection = Some(Rejection {
                at: SystemTime::now(),
                source,
                reason,
            });
        });
    }

    /// The receiver accepted a config from `source`, shown as `applied`:
    /// the config in force, whose source and identity are set together so
    /// that `config_source` and `config.source` never disagree. `newest`:
    /// no newer config was rejected before this answer (a late answer to
    /// an older one leaves the rejection standing).
    pub(crate) fn config_accepted(
        &self,
        source: ConfigSource,
        applied: Option<AppliedConfig>,
        newest: bool,
    ) {
        self.update(|s| {
            if newest {
                s.newest_config_rejected = false;
            }
            s.config_source = Some(source);
            s.config = applied;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_has_stable_camel_case_names() {
        let shared = Shared::new();
        shared.config_rejected(ConfigSource::Server, "port must be positive".into());
        shared.set_state(
            SessionState::BackingOff {
                delay: Duration::from_millis(315),
            },
            Some("10.0.0.1:9001"),
        );
        let json = serde_json::to_value(&*shared.lock()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut expected = vec![
            "state",
            "retryInMs",
            "host",
            "since",
            "lastError",
            "connectAttempts",
            "sessionsStarted",
            "sessionsEstablished",
            "sessionsFailed",
            "cacheWritesFailed",
            "configsRejected",
            "newestConfigRejected",
            "lastRejection",
            "configSource",
            "config",
            "heldHosts",
        ];
        let mut keys = keys;
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["state"], "backingOff");
        assert_eq!(json["retryInMs"], 315);
        assert_eq!(json["configsRejected"], 1);
        assert_eq!(json["newestConfigRejected"], true);
        assert_eq!(json["lastRejection"]["source"], "server");
        assert_eq!(json["lastRejection"]["reason"], "port must be positive");
        assert_eq!(json["configSource"], serde_json::Value::Null);
        // A late answer to an older config: in force now, the rejection of
        // the newer one stands.
        shared.config_accepted(ConfigSource::Server, None, false);
        let json = serde_json::to_value(&*shared.lock()).unwrap();
        assert_eq!(json["configSource"], "server");
        assert_eq!(json["newestConfigRejected"], true);
        shared.config_accepted(ConfigSource::Cache, None, true);
        let json = serde_json::to_value(&*shared.lock()).unwrap();
        assert_eq!(json["configSource"], "cache");
        assert_eq!(json["newestConfigRejected"], false);
    }
}
