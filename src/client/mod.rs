//! The cluster client: a supervised ETP session delivering typed messages.

mod dispatch;
mod messages;
mod session;
mod supervisor;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::{Actor, Addr, Recipient};
use bytes::Bytes;

#[doc(hidden)]
pub use dispatch::fuzz_frame;
pub use messages::{HostsChanged, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent};

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
/// The longest delay between failing attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);

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
    pub(crate) config_receiver: Option<Recipient<RemoteConfig>>,
    pub(crate) routes_receiver: Option<Recipient<RoutesChanged>>,
    pub(crate) module_receivers: Vec<(String, Recipient<HostsChanged>)>,
    pub(crate) session_events: Option<Recipient<SessionEvent>>,
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
}

/// State shared by the handle, the supervisor and the sessions.
pub(crate) struct Shared {
    pub(crate) healthy: AtomicBool,
    pub(crate) status: Mutex<Status>,
}

impl Shared {
    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut status);
    }

    pub(crate) fn set_state(&self, state: SessionState, host: Option<&str>) {
        self.healthy
            .store(state == SessionState::Active, Ordering::Release);
        self.update(|s| {
            s.state = state;
            if let Some(host) = host {
                s.host = Some(host.to_owned());
            }
            s.since = SystemTime::now();
        });
    }
}

/// A mistake in the client's configuration, found at [`ClusterClientBuilder::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No config-service host was given.
    NoHosts,
    /// A host is not `host:port`.
    InvalidHost(String),
    /// The module name is empty.
    NoModuleName,
    /// A module was required twice.
    DuplicateModule(String),
    /// A setting is out of range.
    InvalidSetting(&'static str),
    /// The declaration could not be encoded.
    Encode(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHosts => f.write_str("no config-service hosts given"),
            Self::InvalidHost(h) => write!(f, "config-service host {h:?} is not host:port"),
            Self::NoModuleName => f.write_str("module name is empty"),
            Self::DuplicateModule(m) => write!(f, "module {m:?} is required twice"),
            Self::InvalidSetting(what) => write!(f, "invalid setting: {what}"),
            Self::Encode(e) => write!(f, "cannot encode module declaration: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why [`ClusterClient::healthcheck`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inactive {
    /// The client's status at the time.
    pub status: Status,
}

impl fmt::Display for Inactive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session inactive: {:?}", self.status.state)?;
        if let Some(e) = &self.status.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Inactive {}

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
    config_receiver: Option<Recipient<RemoteConfig>>,
    routes_receiver: Option<Recipient<RoutesChanged>>,
    module_receivers: Vec<(String, Recipient<HostsChanged>)>,
    session_events: Option<Recipient<SessionEvent>>,
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
    /// The config-service nodes, `ip:port` each; tried round-robin from a
    /// random start.
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

    /// The bounds of the exponential backoff between failing attempts
    /// (default 100 ms to 10 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
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
            (self.ack_timeout, "ack timeout is zero"),
            (self.config_timeout, "config timeout is zero"),
            (self.receiver_timeout, "receiver timeout is zero"),
            (self.ping_interval, "ping interval is zero"),
            (self.ping_timeout, "ping timeout is zero"),
            (self.connect_timeout, "connect timeout is zero"),
        ];
        if let Some((_, what)) = positive.iter().find(|(d, _)| d.is_zero()) {
            return Err(BuildError::InvalidSetting(what));
        }
        if self.backoff_initial > self.backoff_max || self.backoff_max.is_zero() {
            return Err(BuildError::InvalidSetting(
                "backoff bounds: need 0 < initial <= max",
            ));
        }
        if self.read_limit < 1024 {
            return Err(BuildError::InvalidSetting("read limit below 1 KiB"));
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
        let encode = |e: serde_json::Error| BuildError::Encode(e.to_string());
        let settings = Settings {
            module: self.info.module_name.clone(),
            schema_payload: serde_json::to_vec(&self.config_data)
                .map_err(encode)?
                .into(),
            requirements_payload: serde_json::to_vec(&requirements).map_err(encode)?.into(),
            ready_payload: serde_json::to_vec(&self.info.backend_declaration(&required))
                .map_err(encode)?
                .into(),
            ack_timeout: self.ack_timeout,
            config_timeout: self.config_timeout,
            receiver_timeout: self.receiver_timeout,
            initial_wait: self.initial_wait,
            config_initial_wait: self.config_initial_wait + self.config_timeout,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            connect_timeout: self.connect_timeout,
            read_limit: self.read_limit,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
            config_receiver: self.config_receiver,
            routes_receiver: self.routes_receiver,
            module_receivers: self.module_receivers,
            session_events: self.session_events,
        };
        Ok((settings, self.hosts))
    }

    /// Starts the client in the current actix System (call it from inside
    /// one). Fails only on a configuration mistake; connection failures are
    /// retried for ever and visible in [`ClusterClient::status`].
    pub fn start(self) -> Result<ClusterClient, BuildError> {
        let (settings, hosts) = self.settings()?;
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(false),
            status: Mutex::new(Status {
                state: SessionState::Connecting,
                host: None,
                since: SystemTime::now(),
                last_error: None,
                sessions_started: 0,
                sessions_established: 0,
                sessions_failed: 0,
            }),
        });
        let addr = Supervisor::new(Arc::new(settings), hosts, shared.clone()).start();
        Ok(ClusterClient { addr, shared })
    }
}

fn validate_hosts(hosts: &[String]) -> Result<(), BuildError> {
    if hosts.is_empty() {
        return Err(BuildError::NoHosts);
    }
    for host in hosts {
        let valid = match host.rsplit_once(':') {
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
            config_receiver: None,
            routes_receiver: None,
            module_receivers: Vec::new(),
            session_events: None,
        }
    }

    /// `Ok` while a session is active (its `MODULE:READY` was acknowledged).
    /// Reads an atomic: no actor round trip, cheap enough for every health
    /// probe.
    pub fn healthcheck(&self) -> Result<(), Inactive> {
        if self.shared.healthy.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Inactive {
                status: self.status(),
            })
        }
    }

    /// The state, its host and since when, the last error and the counters.
    pub fn status(&self) -> Status {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the config-service nodes; the next session uses them.
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
