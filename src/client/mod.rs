//! The cluster client: a supervised ETP session delivering typed messages.

mod cache;
mod connect;
mod dispatch;
mod handshake;
mod lanes;
mod liveness;
mod messages;
mod session;
mod supervisor;
#[cfg(feature = "tls")]
pub(crate) mod tls;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::{Actor, Addr, Recipient};
use bytes::Bytes;

#[doc(hidden)]
pub use dispatch::fuzz_frame;
pub use messages::{
    ConfigSource, HostsChanged, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent,
};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};

use crate::types::{ConfigData, ModuleInfo, ModuleRequirements};
use supervisor::{Close, Supervisor, UpdateHosts};

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
/// The first delay after a failed attempt.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The longest delay between failing rounds of attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a session must stay active for its end to count as a failover
/// (the next host at once, backoff reset) rather than a failed attempt: one
/// ping interval.
pub const DEFAULT_MIN_UPTIME: Duration = DEFAULT_PING_INTERVAL;

/// Everything a session needs, fixed at build time.
pub(crate) struct Settings {
    pub(crate) module: String,
    pub(crate) schema_payload: Bytes,
    pub(crate) requirements_payload: Bytes,
    pub(crate) ready_payload: Bytes,
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
    pub(crate) min_uptime: Duration,
    pub(crate) config_receiver: Option<Recipient<RemoteConfig>>,
    /// The last good config on disk (only with a config receiver).
    pub(crate) config_cache: Option<PathBuf>,
    pub(crate) routes_receiver: Option<Recipient<RoutesChanged>>,
    pub(crate) module_receivers: Vec<(String, Recipient<HostsChanged>)>,
    pub(crate) session_events: Option<Recipient<SessionEvent>>,
    /// How `wss://` hosts are checked (the system trust store when unset).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
    /// The rustls configuration, built once, on the first `wss://` attempt
    /// (or at start when `tls` was given).
    #[cfg(feature = "tls")]
    pub(crate) tls_built: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Settings {
    /// The rustls configuration for `wss://` hosts.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls_built
            .get_or_init(|| {
                self.tls
                    .clone()
                    .unwrap_or_default()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

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
    /// Closed for good by [`ClusterClient::close`].
    Closed,
}

/// The client's state, why, and its counters (what Go's bool healthcheck
/// does not say).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// What the client is doing.
    pub state: SessionState,
    /// The node of the current (or last) session.
    pub host: Option<String>,
    /// When the client entered `state`.
    pub since: SystemTime,
    /// Why the last session or attempt ended.
    pub last_error: Option<String>,
    /// Connection attempts started.
    pub sessions_started: u64,
    /// Sessions that became active.
    pub sessions_established: u64,
    /// Sessions and attempts that ended with an error.
    pub sessions_failed: u64,
    /// Writes of the config cache that failed
    /// ([`ClusterClientBuilder::config_cache`]); each is also a warning
    /// naming the file and the error. Never fatal.
    pub cache_writes_failed: u64,
}

/// The client's status, shared by the handle and the supervisor. Only the
/// supervisor writes it (the cache writer adds to its own counter and
/// touches nothing else), and health is read from the same snapshot, so a
/// health answer and the status it carries always agree.
pub(crate) struct Shared {
    status: Mutex<Status>,
}

impl Shared {
    /// A client that has not connected yet.
    pub(crate) fn new() -> Self {
        Self {
            status: Mutex::new(Status {
                state: SessionState::Connecting,
                host: None,
                since: SystemTime::now(),
                last_error: None,
                sessions_started: 0,
                sessions_established: 0,
                sessions_failed: 0,
                cache_writes_failed: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock());
    }

    pub(crate) fn set_state(&self, state: SessionState, host: Option<&str>) {
        self.update(|s| {
            s.state = state;
            if let Some(host) = host {
                s.host = Some(host.to_owned());
            }
            s.since = SystemTime::now();
        });
    }
}

/// A setting of [`ClusterClientBuilder`], named by
/// [`BuildError::InvalidSetting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`ClusterClientBuilder::ack_timeout`]
    AckTimeout,
    /// [`ClusterClientBuilder::config_timeout`]
    ConfigTimeout,
    /// [`ClusterClientBuilder::receiver_timeout`]
    ReceiverTimeout,
    /// The interval of [`ClusterClientBuilder::ping`]
    PingInterval,
    /// The pong timeout of [`ClusterClientBuilder::ping`]
    PingTimeout,
    /// [`ClusterClientBuilder::connect_timeout`]
    ConnectTimeout,
    /// [`ClusterClientBuilder::backoff`]
    Backoff,
    /// [`ClusterClientBuilder::read_limit`]
    ReadLimit,
    /// [`ClusterClientBuilder::config_cache`]
    ConfigCache,
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
            Self::Backoff => "backoff",
            Self::ReadLimit => "read limit",
            Self::ConfigCache => "config cache",
        })
    }
}

/// The smallest read limit the client and the embedded server accept.
pub const MIN_READ_LIMIT: usize = 1024;

/// A mistake in the client's configuration, found at [`ClusterClientBuilder::start`].
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// No config-service host was given.
    NoHosts,
    /// A host is not `host:port`, `ws://host:port` or `wss://host:port`.
    InvalidHost(String),
    /// A `wss://` host, but the crate was built without the `tls` feature.
    TlsUnavailable(String),
    /// The TLS configuration is unusable.
    #[cfg(feature = "tls")]
    Tls(TlsError),
    /// The module name is empty.
    NoModuleName,
    /// A module was required twice.
    DuplicateModule(String),
    /// A setting is out of range.
    InvalidSetting {
        /// Which setting.
        setting: Setting,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A registration payload could not be encoded as JSON.
    Encode {
        /// Which payload.
        payload: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// `start()` was called outside a running actix System.
    NoSystem,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHosts => f.write_str("no config-service hosts given"),
            Self::InvalidHost(h) => write!(
                f,
                "config-service host {h:?} is not host:port, ws://host:port or wss://host:port"
            ),
            Self::TlsUnavailable(h) => write!(
                f,
                "config-service host {h:?} needs TLS: build with the `tls` feature"
            ),
            #[cfg(feature = "tls")]
            Self::Tls(e) => write!(f, "tls: {e}"),
            Self::NoModuleName => f.write_str("module name is empty"),
            Self::DuplicateModule(m) => write!(f, "module {m:?} is required twice"),
            Self::InvalidSetting { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            Self::Encode { payload, source } => write!(f, "cannot encode the {payload}: {source}"),
            Self::NoSystem => f.write_str(
                "the client must be started inside a running actix system (e.g. #[actix::main])",
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "tls")]
            Self::Tls(e) => Some(e),
            Self::Encode { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why [`ClusterClient::healthcheck`] failed: no session is active. Go's
/// `Healthcheck` answers "session inactive"; this also carries the status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthcheckError {
    /// The client's status at the time.
    pub status: Status,
}

/// The former name of [`HealthcheckError`].
#[deprecated(since = "0.2.0", note = "renamed to HealthcheckError")]
pub type Inactive = HealthcheckError;

impl fmt::Display for HealthcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session inactive: {:?}", self.status.state)?;
        if let Some(e) = &self.status.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for HealthcheckError {}

/// Builds a [`ClusterClient`]; see [`ClusterClient::builder`].
#[must_use]
pub struct ClusterClientBuilder {
    info: ModuleInfo,
    config_data: ConfigData,
    hosts: Vec<String>,
    ack_timeout: Duration,
    config_timeout: Duration,
    receiver_timeout: Duration,
    initial_wait: Duration,
    config_initial_wait: Duration,
    ping_interval: Duration,
    ping_timeout: Duration,
    connect_timeout: Duration,
    read_limit: usize,
    backoff_initial: Duration,
    backoff_max: Duration,
    min_uptime: Duration,
    config_receiver: Option<Recipient<RemoteConfig>>,
    config_cache: Option<PathBuf>,
    routes_receiver: Option<Recipient<RoutesChanged>>,
    module_receivers: Vec<(String, Recipient<HostsChanged>)>,
    session_events: Option<Recipient<SessionEvent>>,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl fmt::Debug for ClusterClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClientBuilder")
            .field("module", &self.info.module_name)
            .field("hosts", &self.hosts)
            .field(
                "required_modules",
                &self
                    .module_receivers
                    .iter()
                    .map(|(m, _)| m)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ClusterClientBuilder {
    /// The config-service nodes, tried round-robin from a random start:
    /// `host:port` (plain `ws://`, as the Go client), `ws://host:port`, or
    /// `wss://host:port` for TLS (feature `tls`, on by default; never
    /// downgraded to `ws://`). Mixed lists are fine.
    pub fn hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// The receiver of the remote config. The handshake waits for the first
    /// config and for this receiver to accept it.
    pub fn remote_config(mut self, receiver: Recipient<RemoteConfig>) -> Self {
        self.config_receiver = Some(receiver);
        self
    }

    /// Keeps the last good config in the file at `path`, so that the module
    /// can start while every config-service node is down (the Go client
    /// cannot; no counterpart). Needs a [`remote_config`](Self::remote_config)
    /// receiver.
    ///
    /// Every config the receiver accepted is written there: atomically (a
    /// temporary file in the same directory, fsync, rename, fsync of the
    /// directory), owner-only (mode 0600 on Unix, set when the file is
    /// created: configs hold secrets), off the actix thread, one write at a
    /// time, the newest config winning over one still waiting. A rejected
    /// config is never written. A failed write is a warning naming the file
    /// and is counted in [`Status::cache_writes_failed`]; it never fails the
    /// client. The file holds the config JSON byte for byte, the format
    /// [`crate::OfflineClient`] reads.
    ///
    /// At start, when the file holds valid JSON, that config is delivered to
    /// the receiver at once, marked [`ConfigSource::Cache`] (and `initial`),
    /// and the first connection attempt starts once the receiver answered
    /// it (within the config timeout), so the node's config always comes
    /// after it and replaces it. [`ClusterClient::healthcheck`] stays `Err`
    /// until a session is active: a cached config is not a registered module.
    /// A missing file is a first run; an unreadable or damaged one is a
    /// warning naming the path and the fault, and is not delivered.
    pub fn config_cache(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_cache = Some(path.into());
        self
    }

    /// The receiver of the routing table; setting it subscribes to routes.
    pub fn routes(mut self, receiver: Recipient<RoutesChanged>) -> Self {
        self.routes_receiver = Some(receiver);
        self
    }

    /// Requires `module`: its live addresses go to `receiver`.
    pub fn require_module(
        mut self,
        module: impl Into<String>,
        receiver: Recipient<HostsChanged>,
    ) -> Self {
        self.module_receivers.push((module.into(), receiver));
        self
    }

    /// Requires `module`: its live addresses go to `upgrader` (Go:
    /// `RequireModule(name, upgrader)`), through an
    /// [`UpgraderActor`](crate::lb::UpgraderActor) that applies them in
    /// order under the receiver timeout. Starts that actor, so call it inside
    /// the actix System, as [`start`](Self::start).
    pub fn require_module_upgrader(
        self,
        module: impl Into<String>,
        upgrader: impl crate::lb::HostsUpgrader,
    ) -> Self {
        self.require_module(module, crate::lb::upgrader_recipient(upgrader))
    }

    /// Where session changes (active, inactive and why) are sent.
    pub fn session_events(mut self, receiver: Recipient<SessionEvent>) -> Self {
        self.session_events = Some(receiver);
        self
    }

    /// How long the server has to acknowledge each emit (default 1 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long the config receiver has per config (default 5 s).
    pub fn config_timeout(mut self, timeout: Duration) -> Self {
        self.config_timeout = timeout;
        self
    }

    /// How long the routes and hosts receivers have per event (default 5 s).
    pub fn receiver_timeout(mut self, timeout: Duration) -> Self {
        self.receiver_timeout = timeout;
        self
    }

    /// How long the handshake waits for the initial routes and each required
    /// module's addresses (default 1 s).
    pub fn initial_wait(mut self, wait: Duration) -> Self {
        self.initial_wait = wait;
        self
    }

    /// How long the handshake waits for the initial config, on top of the
    /// config timeout (default 5 s).
    pub fn config_initial_wait(mut self, wait: Duration) -> Self {
        self.config_initial_wait = wait;
        self
    }

    /// Ping interval and pong timeout (default 5 s and 3 s). A missing pong
    /// ends the session.
    pub fn ping(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
        self
    }

    /// The bound on TCP connect plus WebSocket upgrade (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest message accepted from the server (default 4 MiB).
    pub fn read_limit(mut self, bytes: usize) -> Self {
        self.read_limit = bytes;
        self
    }

    /// The bounds of the exponential backoff between failing rounds of
    /// attempts (default 100 ms to 10 s). A failed attempt moves to the next
    /// host at once; the delay applies once every host of the list failed,
    /// doubling per round, each delay drawn from `[d/2, d]`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// How `wss://` hosts are checked, and the client certificate for mTLS
    /// (default: the operating system's trust store, no client
    /// certificate). Certificate and host name checks are always on.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// How long a session must stay active for its end to be a failover
    /// (the next host at once, backoff reset) rather than a failed attempt
    /// (default: one ping interval, 5 s). A node that accepts the module and
    /// drops it moments later is thus retried at the backoff's pace, not at
    /// handshake speed.
    pub fn min_uptime(mut self, uptime: Duration) -> Self {
        self.min_uptime = uptime;
        self
    }

    fn settings(self) -> Result<(Settings, Vec<String>), BuildError> {
        if self.info.module_name.is_empty() {
            return Err(BuildError::NoModuleName);
        }
        validate_hosts(&self.hosts)?;
        for (i, (name, _)) in self.module_receivers.iter().enumerate() {
            if self.module_receivers[..i].iter().any(|(n, _)| n == name) {
                return Err(BuildError::DuplicateModule(name.clone()));
            }
        }
        let positive = [
            (self.ack_timeout, Setting::AckTimeout),
            (self.config_timeout, Setting::ConfigTimeout),
            (self.receiver_timeout, Setting::ReceiverTimeout),
            (self.ping_interval, Setting::PingInterval),
            (self.ping_timeout, Setting::PingTimeout),
            (self.connect_timeout, Setting::ConnectTimeout),
        ];
        if let Some((_, setting)) = positive.iter().find(|(d, _)| d.is_zero()) {
            return Err(BuildError::InvalidSetting {
                setting: *setting,
                reason: "it is zero",
            });
        }
        if self.backoff_initial > self.backoff_max || self.backoff_max.is_zero() {
            return Err(BuildError::InvalidSetting {
                setting: Setting::Backoff,
                reason: "need 0 < initial <= max",
            });
        }
        if self.read_limit < MIN_READ_LIMIT {
            return Err(BuildError::InvalidSetting {
                setting: Setting::ReadLimit,
                reason: "below 1 KiB",
            });
        }
        if let Some(path) = &self.config_cache {
            if path.file_name().is_none() {
                return Err(BuildError::InvalidSetting {
                    setting: Setting::ConfigCache,
                    reason: "the path names no file",
                });
            }
            if self.config_receiver.is_none() {
                return Err(BuildError::InvalidSetting {
                    setting: Setting::ConfigCache,
                    reason: "it needs a remote config receiver",
                });
            }
        }
        let required: Vec<String> = self
            .module_receivers
            .iter()
            .map(|(m, _)| m.clone())
            .collect();
        let requirements = ModuleRequirements {
            required_modules: required.clone(),
            require_routes: self.routes_receiver.is_some(),
        };
        let encode = |payload| move |source| BuildError::Encode { payload, source };
        let settings = Settings {
            module: self.info.module_name.clone(),
            schema_payload: serde_json::to_vec(&self.config_data)
                .map_err(encode("config schema"))?
                .into(),
            requirements_payload: serde_json::to_vec(&requirements)
                .map_err(encode("module requirements"))?
                .into(),
            ready_payload: serde_json::to_vec(&self.info.backend_declaration(&required))
                .map_err(encode("backend declaration"))?
                .into(),
            ack_timeout: self.ack_timeout,
            config_timeout: self.config_timeout,
            receiver_timeout: self.receiver_timeout,
            initial_wait: self.initial_wait,
            config_initial_wait: self.config_initial_wait.saturating_add(self.config_timeout),
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            connect_timeout: self.connect_timeout,
            read_limit: self.read_limit,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
            min_uptime: self.min_uptime,
            config_receiver: self.config_receiver,
            config_cache: self.config_cache,
            routes_receiver: self.routes_receiver,
            module_receivers: self.module_receivers,
            session_events: self.session_events,
            #[cfg(feature = "tls")]
            tls: self.tls,
            #[cfg(feature = "tls")]
            tls_built: std::sync::OnceLock::new(),
        };
        // A configuration given explicitly is checked now, not at the first
        // `wss://` attempt.
        #[cfg(feature = "tls")]
        if let Some(tls) = &settings.tls {
            let built = tls.build().map_err(BuildError::Tls)?;
            let _ = settings.tls_built.set(Ok(built));
        }
        Ok((settings, self.hosts))
    }

    /// Starts the client in the current actix System (call it from inside
    /// one). Fails only on a configuration mistake; connection failures are
    /// retried for ever and visible in [`ClusterClient::status`].
    pub fn start(self) -> Result<ClusterClient, BuildError> {
        if actix::System::try_current().is_none() {
            return Err(BuildError::NoSystem);
        }
        let (settings, hosts) = self.settings()?;
        let shared = Arc::new(Shared::new());
        let addr = Supervisor::new(Arc::new(settings), hosts, shared.clone()).start();
        Ok(ClusterClient { addr, shared })
    }
}

fn validate_hosts(hosts: &[String]) -> Result<(), BuildError> {
    if hosts.is_empty() {
        return Err(BuildError::NoHosts);
    }
    for host in hosts {
        let Some(endpoint) = connect::Endpoint::parse(host) else {
            return Err(BuildError::InvalidHost(host.clone()));
        };
        if endpoint.secure && !cfg!(feature = "tls") {
            return Err(BuildError::TlsUnavailable(host.clone()));
        }
        let valid = match endpoint.authority.rsplit_once(':') {
            Some((name, port)) => {
                !name.is_empty()
                    && !name.contains('/')
                    && !name.contains(char::is_whitespace)
                    && port.parse::<u16>().is_ok()
            }
            None => false,
        };
        if !valid {
            return Err(BuildError::InvalidHost(host.clone()));
        }
    }
    Ok(())
}

/// The number of session actors alive in this process (all clients). A
/// diagnostic for leak tests: at most one per running client.
///
/// Not part of the API: hidden from the docs and outside semver, kept
/// public only because the crate's own leak test (an integration test, so
/// outside the crate) needs it.
#[doc(hidden)]
pub fn live_sessions() -> usize {
    session::LIVE_SESSIONS.load(Ordering::Relaxed)
}

/// A running cluster client: the Rust counterpart of Go's `cluster.Client`.
///
/// Cheap to clone; every clone controls the same client. Like the Go client,
/// it runs until [`ClusterClient::close`]: dropping every handle does not stop
/// it. Call `close().await` on shutdown so that the config-service sees a
/// normal closure (1000); when the actix System simply stops, the connection
/// goes with its runtime and no close frame is sent.
#[derive(Clone)]
pub struct ClusterClient {
    addr: Addr<Supervisor>,
    shared: Arc<Shared>,
}

impl fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClient")
            .field("status", &self.status())
            .finish()
    }
}

impl ClusterClient {
    /// A builder for the module `info` that registers `config_data` (schema
    /// and default config).
    pub fn builder(info: ModuleInfo, config_data: ConfigData) -> ClusterClientBuilder {
        ClusterClientBuilder {
            info,
            config_data,
            hosts: Vec::new(),
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            config_timeout: DEFAULT_CONFIG_TIMEOUT,
            receiver_timeout: DEFAULT_RECEIVER_TIMEOUT,
            initial_wait: DEFAULT_INITIAL_WAIT,
            config_initial_wait: DEFAULT_CONFIG_INITIAL_WAIT,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_limit: DEFAULT_READ_LIMIT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            min_uptime: DEFAULT_MIN_UPTIME,
            config_receiver: None,
            config_cache: None,
            routes_receiver: None,
            module_receivers: Vec::new(),
            session_events: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// `Ok` while a session is active (its `MODULE:READY` was acknowledged);
    /// Go's `Client.Healthcheck`. No actor round trip: it reads the status
    /// under a short lock, cheap enough for every health probe, and an `Err`
    /// carries the very status the answer was taken from.
    pub fn healthcheck(&self) -> Result<(), HealthcheckError> {
        let status = self.shared.lock();
        if status.state == SessionState::Active {
            Ok(())
        } else {
            Err(HealthcheckError {
                status: status.clone(),
            })
        }
    }

    /// The state, its host and since when, the last error and the counters.
    pub fn status(&self) -> Status {
        self.shared.lock().clone()
    }

    /// Replaces the config-service nodes, at once: a pending backoff delay
    /// is cancelled and the next attempt uses the new list; a session on a
    /// host that is no longer listed leaves it with a normal close (1000) and
    /// moves to a listed one.
    pub fn update_hosts<I, S>(&self, hosts: I) -> Result<(), BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let hosts: Vec<String> = hosts.into_iter().map(Into::into).collect();
        validate_hosts(&hosts)?;
        self.addr.do_send(UpdateHosts(hosts));
        Ok(())
    }

    /// Closes the session with close code 1000 and stops for good. Resolves
    /// when the close frame was sent (or the connection was already gone).
    pub async fn close(&self) {
        // An error means the supervisor is gone already: closed.
        let _ = self.addr.send(Close).await;
    }
}
