//! The builder: what the module registers, where and how it connects, and
//! who receives what.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Recipient};

use super::connect;
use super::outage::DEFAULT_OUTAGE_SUMMARY_INTERVAL;
use super::settings::*;
use super::status::Shared;
use super::supervisor::Supervisor;
#[cfg(feature = "tls")]
use super::TlsConfig;
use super::{
    BuildError, ClusterClient, HostsChanged, ReceiverError, RemoteConfig, RoutesChanged,
    SessionEvent,
};
use crate::types::{ConfigData, MetricsAutodiscovery, ModuleInfo, ModuleRequirements};

/// The smallest initial backoff: below it the jittered delay rounds to
/// nothing and a failing client reconnects in a hot loop.
const MIN_BACKOFF_INITIAL: Duration = Duration::from_millis(1);

/// Who receives a required module's addresses.
enum ModuleReceiver {
    Recipient(Recipient<HostsChanged>),
    /// Wrapped in its actor by `start()`, inside the System it checked.
    Upgrader(Box<dyn crate::lb::HostsUpgrader>),
}

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
    down_retry: Duration,
    min_uptime: Duration,
    outage_summary_interval: Duration,
    config_receiver: Option<Recipient<RemoteConfig>>,
    config_cache: Option<PathBuf>,
    routes_receiver: Option<Recipient<RoutesChanged>>,
    module_receivers: Vec<(String, ModuleReceiver)>,
    session_events: Option<Recipient<SessionEvent>>,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
    #[cfg(feature = "rpc")]
    rpc: Option<crate::rpc::RpcServer>,
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
    /// A builder with every default; [`ClusterClient::builder`] is the way in.
    pub(super) fn new(info: ModuleInfo, config_data: ConfigData) -> Self {
        Self {
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
            down_retry: DEFAULT_DOWN_RETRY,
            min_uptime: DEFAULT_MIN_UPTIME,
            outage_summary_interval: DEFAULT_OUTAGE_SUMMARY_INTERVAL,
            config_receiver: None,
            config_cache: None,
            routes_receiver: None,
            module_receivers: Vec::new(),
            session_events: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "rpc")]
            rpc: None,
        }
    }

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
    /// and is counted in [`Status::cache_writes_failed`](crate::Status::cache_writes_failed); it never fails the
    /// client. The file holds the config JSON byte for byte, the format
    /// [`crate::OfflineClient`] reads.
    ///
    /// At start, when the file holds valid JSON, that config is delivered to
    /// the receiver at once, marked [`ConfigSource::Cache`](crate::ConfigSource::Cache) (and `initial`),
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

    /// A closure as the receiver of the remote config, for applications
    /// that need no actor (Go: a `RemoteConfigReceiver`'s
    /// `ReceiveConfig`). It runs on the actix thread this is called on
    /// (call it inside the actix System, as [`start`](Self::start)), one
    /// config at a time, under the config timeout; an `Err` rejects the
    /// config as an actor's would. The timeout bounds the wait, not the
    /// closure: it should swap state, not block.
    ///
    /// ```no_run
    /// # use isp_cluster::{ClusterClient, ConfigData, ModuleInfo, AddressConfiguration, RawJson};
    /// # fn f(builder: isp_cluster::ClusterClientBuilder) {
    /// let builder = builder.remote_config_fn(|config| {
    ///     let parsed: serde_json::Value = config.parse()?;
    ///     println!("config with {} keys", parsed.as_object().map_or(0, |o| o.len()));
    ///     Ok::<(), serde_json::Error>(())
    /// });
    /// # }
    /// ```
    pub fn remote_config_fn<F, E>(self, receive: F) -> Self
    where
        F: Fn(&RemoteConfig) -> Result<(), E> + 'static,
        E: Into<ReceiverError>,
    {
        self.remote_config(super::receivers::config_recipient(receive))
    }

    /// A closure as the receiver of the routing table (Go: a
    /// `RoutesReceiver`'s `ReceiveRoutes`); subscribes to routes. Runs as
    /// [`remote_config_fn`](Self::remote_config_fn) does, under the
    /// receiver timeout.
    pub fn routes_fn<F, E>(self, receive: F) -> Self
    where
        F: Fn(&RoutesChanged) -> Result<(), E> + 'static,
        E: Into<ReceiverError>,
    {
        self.routes(super::receivers::routes_recipient(receive))
    }

    /// Requires `module`: its live addresses go to `receiver`.
    pub fn require_module(
        mut self,
        module: impl Into<String>,
        receiver: Recipient<HostsChanged>,
    ) -> Self {
        self.module_receivers
            .push((module.into(), ModuleReceiver::Recipient(receiver)));
        self
    }

    /// Requires `module`: its live addresses go to `upgrader` (Go:
    /// `RequireModule(name, upgrader)`), through an
    /// [`UpgraderActor`](crate::lb::UpgraderActor) that applies them in
    /// order under the receiver timeout. [`start`](Self::start) starts that
    /// actor, once it found the actix System running.
    pub fn require_module_upgrader(
        mut self,
        module: impl Into<String>,
        upgrader: impl crate::lb::HostsUpgrader,
    ) -> Self {
        self.module_receivers
            .push((module.into(), ModuleReceiver::Upgrader(Box::new(upgrader))));
        self
    }

    /// The module serves isp RPC with `server`: `MODULE:READY` declares
    /// exactly its router's endpoints, at the server's
    /// [declared address](crate::rpc::RpcServer::declared_address) (its
    /// outer address, else the one it listens on; on an unspecified
    /// `0.0.0.0` the module's own address with the server's port), with
    /// transport `grpc`, instead of [`ModuleInfo`]'s endpoints and address.
    /// Each READY is made afresh, and a router change while a session is
    /// active sends `MODULE:READY` again with the new list.
    ///
    /// Stopping follows isp-kit: on [`ClusterClient::close`] and when the
    /// actix System stops, the module leaves the cluster first (close
    /// 1000, so callers stop being sent here), then the server is
    /// [stopped](crate::rpc::RpcServer::stop): it answers for its grace,
    /// then refuses new calls while those in flight finish.
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    pub fn rpc(mut self, server: &crate::rpc::RpcServer) -> Self {
        self.rpc = Some(server.clone());
        self
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

    /// The pace at nodes that accept connections but fail (the upgrade, the
    /// registration or the rest of the handshake: an electing cluster), by
    /// default 0.9 s to 10 s; Go waits 1 s after every attempt.
    ///
    /// After such an attempt the next one (on the next host) waits about
    /// `d`: `initial` while the failure is young, then a quarter of how long
    /// the nodes have been failing, up to `max`. The first wait of a failing
    /// streak is drawn from `[0.75 d, 1.75 d]`, so that modules that failed
    /// at the same instant spread over one whole period; later ones from
    /// `[0.96 d, 1.04 d]`, so that a healed node is found within 1.04 `d`.
    /// A session that became active but ended before the
    /// [`min_uptime`](Self::min_uptime) waits `initial` × `[1.25, 1.75]`,
    /// however many came before. Hosts that refuse connections are paced by
    /// [`down_retry`](Self::down_retry). Needs `0 < initial <= max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// How often hosts that refuse the connection are tried again (default
    /// 1 s; no Go counterpart). A refused connection (or a name that does
    /// not resolve) costs the node nothing, so the next host is tried at
    /// once; once every host refused in a row, the next round waits
    /// `interval` × `[1, 1.6]`: each host at most once per `interval`, and a
    /// node that comes back is found within 1.6 `interval`, however long the
    /// outage. Zero is refused.
    pub fn down_retry(mut self, interval: Duration) -> Self {
        self.down_retry = interval;
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
    /// (the next host at once, pacing reset) rather than a flap (default:
    /// one ping interval, 5 s). After a flap the next session starts
    /// `initial` × `[1.25, 1.75]` (see [`backoff`](Self::backoff)) after
    /// this one became active, at the soonest: a node that accepts the
    /// module and drops it moments later gets about one session a second,
    /// not one per handshake.
    pub fn min_uptime(mut self, uptime: Duration) -> Self {
        self.min_uptime = uptime;
        self
    }

    /// While no session comes up, how often at most the client writes a
    /// WARN summary of the outage (attempts so far, the last reason);
    /// default 30 s. The outage's start is one ERROR and its end one INFO;
    /// each attempt in between is a DEBUG line.
    pub fn outage_summary_interval(mut self, interval: Duration) -> Self {
        self.outage_summary_interval = interval;
        self
    }

    /// Declares `MetricsAutodiscovery` in `MODULE:READY`, so that Prometheus
    /// finds the module through the config-service: `address` is where the
    /// infra server's `/internal/metrics` is (`host:port`), with isp-kit's
    /// labels (`__metrics_path__`, `app`) and `extra_labels` over them. Go
    /// sets it from `metricsAutodiscovery` in the local config
    /// (`bootstrap.metricsServiceDiscovery`); see
    /// [`MetricsAutodiscovery::for_module`].
    pub fn metrics_autodiscovery<I, K, V>(
        mut self,
        address: impl Into<String>,
        extra_labels: I,
    ) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.info.metrics_autodiscovery = Some(MetricsAutodiscovery::for_module(
            &self.info.module_name,
            address,
            extra_labels,
        ));
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
            (self.outage_summary_interval, Setting::OutageSummaryInterval),
            // Zero fails every handshake that waits for routes or addresses.
            (self.initial_wait, Setting::InitialWait),
            // Zero would retry refusing hosts in a busy loop.
            (self.down_retry, Setting::DownRetry),
        ];
        if let Some((_, setting)) = positive.iter().find(|(d, _)| d.is_zero()) {
            return Err(BuildError::InvalidSetting {
                setting: *setting,
                reason: "it is zero",
            });
        }
        // The others checked for the same trap: the config initial wait
        // may be zero (the config timeout is added to it), the minimum
        // uptime may be zero (every session end is then a failover, paced by
        // the handshake itself), and any of them may be `Duration::MAX`.
        if self.backoff_initial < MIN_BACKOFF_INITIAL {
            return Err(BuildError::InvalidSetting {
                setting: Setting::Backoff,
                reason: "the initial delay is below 1 ms: a failing client would reconnect in a hot loop",
            });
        }
        if self.backoff_initial > self.backoff_max {
            return Err(BuildError::InvalidSetting {
                setting: Setting::Backoff,
                reason: "the initial delay is over the maximum",
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
        // Validation is done and the System is running: start upgraders.
        let module_receivers = self
            .module_receivers
            .into_iter()
            .map(|(module, receiver)| match receiver {
                ModuleReceiver::Recipient(r) => (module, r),
                ModuleReceiver::Upgrader(u) => (module, crate::lb::boxed_upgrader_recipient(u)),
            })
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
            declaration: super::declaration::Declaration::new(
                self.info.backend_declaration(&required),
                #[cfg(feature = "rpc")]
                self.rpc,
            )
            .map_err(encode("backend declaration"))?,
            ack_timeout: self.ack_timeout,
            outage_summary_interval: self.outage_summary_interval,
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
            down_retry: self.down_retry,
            min_uptime: self.min_uptime,
            config_receiver: self.config_receiver,
            config_cache: self.config_cache,
            routes_receiver: self.routes_receiver,
            module_receivers,
            session_events: self.session_events,
            #[cfg(feature = "tls")]
            tls: self.tls,
            #[cfg(feature = "tls")]
            tls_built: std::sync::Mutex::new(None),
        };
        // A configuration given explicitly is checked now, not at the first
        // `wss://` attempt; the system trust store is left to that attempt,
        // which loads it off the actix thread.
        #[cfg(feature = "tls")]
        if let Some(tls) = &settings.tls {
            tls.check().map_err(BuildError::Tls)?;
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
        let shared = Arc::new(Shared::for_module(settings.module.clone()));
        let addr = Supervisor::new(Arc::new(settings), hosts, shared.clone()).start();
        Ok(ClusterClient { addr, shared })
    }
}

pub(super) fn validate_hosts(hosts: &[String]) -> Result<(), BuildError> {
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
