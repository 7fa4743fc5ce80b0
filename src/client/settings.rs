//! The client's settings: the defaults, what a session needs fixed at build
//! time, and the names of the settings a build error can point at.

use std::fmt;
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use bytes::Bytes;

#[cfg(feature = "tls")]
use super::TlsConfig;
use super::{HostsChanged, RemoteConfig, RoutesChanged, SessionEvent};

/// How long the server has to acknowledge an emit.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a config receiver has to handle a config.
pub const DEFAULT_CONFIG_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the routes receiver and each hosts receiver have per event.
pub const DEFAULT_RECEIVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the handshake waits for the initial routes and addresses.
pub const DEFAULT_INITIAL_WAIT: Duration = Duration::from_secs(1);
/// How long the handshake waits for the initial config, on top of the config
/// timeout.
pub const DEFAULT_CONFIG_INITIAL_WAIT: Duration = Duration::from_secs(5);
/// How often the client pings the server.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long a pong may take before the session is declared dead.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a TCP connect plus WebSocket upgrade may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest message accepted from the server (as the Go client).
pub const DEFAULT_READ_LIMIT: usize = 4 * 1024 * 1024;
/// The delay after an attempt that reached a node and failed, while the
/// failure is young (it grows to a quarter of the failure's age); also the
/// unit of the delay after a flap. Go waits 1 s after every attempt.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(900);
/// The longest delay after an attempt that reached a node and failed.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Once every host refused the connection in a row, the next round waits
/// this times [1, 1.6]: each host at most once a second (no Go
/// counterpart: Go waits 1 s after every attempt, refused or not).
pub const DEFAULT_DOWN_RETRY: Duration = Duration::from_secs(1);
/// How long a session must stay active for its end to count as a failover
/// (the next host at once, pacing reset) rather than a flap: one ping
/// interval.
pub const DEFAULT_MIN_UPTIME: Duration = DEFAULT_PING_INTERVAL;

/// Everything a session needs, fixed at build time.
pub(crate) struct Settings {
    pub(crate) module: String,
    pub(crate) schema_payload: Bytes,
    pub(crate) requirements_payload: Bytes,
    /// What `MODULE:READY` carries.
    pub(crate) declaration: super::declaration::Declaration,
    pub(crate) ack_timeout: Duration,
    pub(crate) config_timeout: Duration,
    pub(crate) receiver_timeout: Duration,
    pub(crate) initial_wait: Duration,
    pub(crate) config_initial_wait: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_limit: usize,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) down_retry: Duration,
    pub(crate) min_uptime: Duration,
    pub(crate) outage_summary_interval: Duration,
    pub(crate) config_receiver: Option<Recipient<RemoteConfig>>,
    /// The last good config on disk (only with a config receiver).
    pub(crate) config_cache: Option<PathBuf>,
    pub(crate) routes_receiver: Option<Recipient<RoutesChanged>>,
    pub(crate) module_receivers: Vec<(String, Recipient<HostsChanged>)>,
    pub(crate) session_events: Option<Recipient<SessionEvent>>,
    /// How `wss://` hosts are checked (the system trust store when unset).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
    /// The rustls configuration once built: on the first `wss://` attempt,
    /// on the blocking pool (loading the system trust store reads files).
    /// Only a success is kept; a failure is tried again at the next attempt.
    #[cfg(feature = "tls")]
    pub(crate) tls_built: std::sync::Mutex<Option<Arc<rustls::ClientConfig>>>,
}

impl Settings {
    /// What the reconnect pacing needs.
    pub(crate) fn pacing(&self) -> super::pacing::PacingSettings {
        super::pacing::PacingSettings {
            initial: self.backoff_initial,
            max: self.backoff_max,
            down_retry: self.down_retry,
            min_uptime: self.min_uptime,
        }
    }

    /// The rustls configuration for `wss://` hosts, built off the actix
    /// thread the first time (and after every failure).
    #[cfg(feature = "tls")]
    pub(crate) async fn tls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let cached = self
            .tls_built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(config) = cached {
            return Ok(config);
        }
        let tls = self.tls.clone().unwrap_or_default();
        let built = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || tls.build())
                .await
                .map_err(|e| format!("the task loading the trust store did not finish: {e}"))?,
            Err(_) => tls.build(),
        }
        .map_err(|e| e.to_string())?;
        *self.tls_built.lock().unwrap_or_else(|e| e.into_inner()) = Some(built.clone());
        Ok(built)
    }
}

/// A setting of [`ClusterClientBuilder`](crate::ClusterClientBuilder), named by
/// [`BuildError::InvalidSetting`](crate::BuildError::InvalidSetting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`ClusterClientBuilder::ack_timeout`](crate::ClusterClientBuilder::ack_timeout)
    AckTimeout,
    /// [`ClusterClientBuilder::config_timeout`](crate::ClusterClientBuilder::config_timeout)
    ConfigTimeout,
    /// [`ClusterClientBuilder::receiver_timeout`](crate::ClusterClientBuilder::receiver_timeout)
    ReceiverTimeout,
    /// The interval of [`ClusterClientBuilder::ping`](crate::ClusterClientBuilder::ping)
    PingInterval,
    /// The pong timeout of [`ClusterClientBuilder::ping`](crate::ClusterClientBuilder::ping)
    PingTimeout,
    /// [`ClusterClientBuilder::connect_timeout`](crate::ClusterClientBuilder::connect_timeout)
    ConnectTimeout,
    /// [`ClusterClientBuilder::initial_wait`](crate::ClusterClientBuilder::initial_wait)
    InitialWait,
    /// [`ClusterClientBuilder::backoff`](crate::ClusterClientBuilder::backoff)
    Backoff,
    /// [`ClusterClientBuilder::down_retry`](crate::ClusterClientBuilder::down_retry)
    DownRetry,
    /// [`ClusterClientBuilder::read_limit`](crate::ClusterClientBuilder::read_limit)
    ReadLimit,
    /// [`ClusterClientBuilder::config_cache`](crate::ClusterClientBuilder::config_cache)
    ConfigCache,
    /// [`ClusterClientBuilder::outage_summary_interval`](crate::ClusterClientBuilder::outage_summary_interval)
    OutageSummaryInterval,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AckTimeout => "ack timeout",
            Self::ConfigTimeout => "config timeout",
            Self::ReceiverTimeout => "receiver timeout",
            Self::PingInterval => "ping interval",
            Self::PingTimeout => "ping timeout",
            Self::ConnectTimeout => "connect timeout",
            Self::InitialWait => "initial wait",
            Self::Backoff => "backoff",
            Self::DownRetry => "down retry",
            Self::ReadLimit => "read limit",
            Self::ConfigCache => "config cache",
            Self::OutageSummaryInterval => "outage summary interval",
        })
    }
}

/// The smallest read limit the client and the embedded server accept.
pub const MIN_READ_LIMIT: usize = 1024;

impl Settings {
    /// The module has left the cluster (or its System is ending): what it
    /// served may stop now, in isp-kit's order (the RPC server's grace,
    /// then it refuses new calls). Idempotent.
    pub(crate) fn left_the_cluster(&self) {
        #[cfg(feature = "rpc")]
        if let Some(server) = self.declaration.rpc_server() {
            server.stop();
        }
    }
}
