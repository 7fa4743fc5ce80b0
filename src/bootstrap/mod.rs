//! A module started from a Go module's local config files, as isp-kit's
//! `bootstrap.NewClustered` starts one (feature `bootstrap`).
//!
//! [`Bootstrap::from_env`] reads what a Go deployment ships, unchanged:
//!
//! * the local config: `APP_CONFIG_PATH`, else with `APP_MODE=dev`
//!   `./conf/config_dev.yml`, else `config.yml` beside the binary; every
//!   environment variable overrides the key of its lower-cased name (see
//!   [`LocalConfig`]), only those with the prefix `APP_CONFIG_ENV_PREFIX`
//!   when that is set;
//! * the default remote config: `defaultRemoteConfigPath`, else
//!   `./conf/default_remote_config.json` in dev, else
//!   `default_remote_config.json` beside the binary;
//! * `CLUSTER_MODE=offline`: no config-service, the remote config from
//!   `remoteConfigPath`, else `./conf/config.json` in dev, else
//!   `conf/config.json` beside the binary.
//!
//! It hands back a ready [`ClusterClientBuilder`] (or the
//! [`OfflineClient`]), and [`Bootstrap::start`] starts it with the infra
//! server, so that a module's `main` is a few lines:
//!
//! ```no_run
//! # use actix::prelude::*;
//! # use isp_cluster::{ConfigChanged, ReceiverError, TypedConfig};
//! use isp_cluster::bootstrap::Bootstrap;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Config { limit: u32 }
//! # struct App;
//! # impl Actor for App { type Context = Context<Self>; }
//! # impl Handler<ConfigChanged<Config>> for App {
//! #     type Result = Result<(), ReceiverError>;
//! #     fn handle(&mut self, _: ConfigChanged<Config>, _: &mut Context<Self>) -> Self::Result { Ok(()) }
//! # }
//!
//! #[actix::main]
//! async fn main() -> std::process::ExitCode {
//!     let boot = match Bootstrap::from_env::<Config>(env!("CARGO_PKG_VERSION")) {
//!         Ok(boot) => boot,
//!         Err(e) => {
//!             eprintln!("{e}"); // names the file and the key
//!             return std::process::ExitCode::FAILURE;
//!         }
//!     };
//!     let typed = TypedConfig::new(App.start().recipient()).start();
//!     let module = boot.start(typed.recipient()).await.expect("started");
//!     // serve the application on module.binding_address() …
//!     actix_rt::signal::ctrl_c().await.ok();
//!     module.shutdown().await;
//!     std::process::ExitCode::SUCCESS
//! }
//! ```

mod config_override;
mod duration;
mod environment;
mod error;
mod local_config;
mod module;
#[cfg(feature = "rpc")]
mod rpc;
mod yaml;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Recipient};
use schemars::JsonSchema;

pub use config_override::ConfigOverride;
pub use duration::{parse_go_duration, DurationError};
pub use environment::Environment;
pub use error::BootstrapError;
pub use local_config::{LocalConfig, MetricsAutodiscoveryConfig, ENV_PREFIX_VAR};
pub use module::{Module, StartError};

use crate::client::{ClusterClient, ClusterClientBuilder, RemoteConfig, DEFAULT_CONFIG_TIMEOUT};
use crate::offline::OfflineClient;
use crate::types::{
    AddressConfiguration, ConfigData, EndpointDescriptor, MetricsAutodiscovery, ModuleInfo, RawJson,
};
use local_config::Flat;

/// The cluster side of a module, read from its local config: the Rust
/// counterpart of isp-kit's `bootstrap.NewClustered` (its logger, Sentry,
/// tracing and migrations are left to the application).
#[derive(Debug)]
pub struct Bootstrap {
    local: LocalConfig,
    config_file: PathBuf,
    dev: bool,
    info: ModuleInfo,
    inner_ip: IpAddr,
    mode: Mode,
    checks: HealthChecks,
}

/// A health check of the application: `Err` fails it with that text.
type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The application's health checks, by name, for the infra server.
#[derive(Default)]
struct HealthChecks(Vec<(String, HealthCheck)>);

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

#[derive(Debug)]
enum Mode {
    Cluster {
        hosts: Vec<String>,
        config_data: ConfigData,
    },
    Offline {
        config_path: PathBuf,
    },
}

impl Bootstrap {
    /// Reads this process's local config, as [`Bootstrap::load`] does with
    /// [`Environment::from_process`]. `module_version` is the module's
    /// version; `T` is its remote config, whose schema is registered.
    pub fn from_env<T: JsonSchema>(module_version: &str) -> Result<Self, BootstrapError> {
        let env = Environment::from_process().map_err(BootstrapError::Environment)?;
        Self::load::<T>(module_version, &env)
    }

    /// Reads the local config that `env` points to, with `env`'s variables
    /// laid over it, and checks it; reads the default remote config (not in
    /// offline mode). When `grpcOuterAddress.ip` is empty, finds the local
    /// address the system would use toward the first config-service node
    /// (a UDP socket connected there: no packet is sent).
    pub fn load<T: JsonSchema>(
        module_version: &str,
        env: &Environment,
    ) -> Result<Self, BootstrapError> {
        Self::load_with_schema(module_version, crate::config_schema::<T>(), env)
    }

    /// [`Bootstrap::load`] with the remote config's schema given as JSON.
    pub fn load_with_schema(
        module_version: &str,
        schema: RawJson,
        env: &Environment,
    ) -> Result<Self, BootstrapError> {
        let dev = env.is_dev();
        let offline = env.is_offline();
        let config_file = local_config_path(env, dev);
        let text =
            std::fs::read_to_string(&config_file).map_err(|source| BootstrapError::ReadConfig {
                file: config_file.clone(),
                source,
            })?;
        let leaves =
            yaml::flatten(&text).map_err(|yaml::YamlError(message)| BootstrapError::Yaml {
                file: config_file.clone(),
                message,
            })?;
        let local = LocalConfig::read(&Flat::new(leaves, env, &config_file), offline)?;

        let inner_ip =
            resolve_ip(&local.grpc_inner_address).map_err(|source| BootstrapError::Key {
                file: config_file.clone(),
                key: "grpcInnerAddress.ip",
                variable: None,
                problem: format!("cannot be resolved to a local address: {source}"),
            })?;
        let mut outer = local.grpc_outer_address.clone();
        if outer.ip.is_empty() {
            if let Some(first) = local.config_service.first() {
                let ip =
                    local_address_toward(first).map_err(|source| BootstrapError::LocalAddress {
                        file: config_file.clone(),
                        host: first.host_port(),
                        source,
                    })?;
                outer.ip = ip.to_string();
            }
        }
        let mut info = ModuleInfo::new(&local.module_name, module_version, outer);
        info.metrics_autodiscovery = metrics_autodiscovery(&local, &info.grpc_outer_address);

        let mode = if offline {
            let config_path = match &local.remote_config_path {
                Some(path) => env.resolve(path),
                None if dev => env.resolve("conf/config.json"),
                None => env.executable_dir().join("conf/config.json"),
            };
            Mode::Offline { config_path }
        } else {
            let path = match &local.default_remote_config_path {
                Some(path) => env.resolve(path),
                None if dev => env.resolve("conf/default_remote_config.json"),
                None => env.executable_dir().join("default_remote_config.json"),
            };
            let default = read_default_remote_config(&path)?;
            Mode::Cluster {
                hosts: local.config_service.iter().map(|a| a.host_port()).collect(),
                config_data: ConfigData::new(module_version, schema, default),
            }
        };
        Ok(Self {
            local,
            config_file,
            dev,
            info,
            inner_ip,
            mode,
            checks: HealthChecks::default(),
        })
    }

    /// The endpoints the module declares (Go: `NewClustered`'s
    /// `endpoints`).
    #[must_use]
    pub fn endpoints(mut self, endpoints: Vec<EndpointDescriptor>) -> Self {
        self.info.endpoints = endpoints;
        self
    }

    /// The transport declared (default `grpc`, as isp-kit declares).
    #[must_use]
    pub fn transport(mut self, transport: impl Into<String>) -> Self {
        self.info.transport = transport.into();
        self
    }

    /// Adds the health check `name` to the infra server's
    /// `/internal/health`, beside `configServiceConnection` (Go:
    /// `boot.HealthcheckRegistry.Register(name, checker)`): `Err` fails it
    /// with that text; it runs under `healthcheckHandlerTimeout`.
    #[must_use]
    pub fn check(
        mut self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.checks.0.push((name.into(), Arc::new(check)));
        self
    }

    /// The keys read from the local config.
    pub fn local_config(&self) -> &LocalConfig {
        &self.local
    }

    /// The local config file that was read.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// Whether `APP_MODE=dev`.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// The module as it registers: name, version, outer address (its ip
    /// found when the file leaves it empty), transport, endpoints, metrics
    /// autodiscovery.
    pub fn module_info(&self) -> &ModuleInfo {
        &self.info
    }

    /// The config-service nodes, `host:port` (empty in offline mode).
    pub fn hosts(&self) -> &[String] {
        match &self.mode {
            Mode::Cluster { hosts, .. } => hosts,
            Mode::Offline { .. } => &[],
        }
    }

    /// The version, schema and default remote config registered (`None`
    /// in offline mode).
    pub fn config_data(&self) -> Option<&ConfigData> {
        match &self.mode {
            Mode::Cluster { config_data, .. } => Some(config_data),
            Mode::Offline { .. } => None,
        }
    }

    /// The remote config file in offline mode (`CLUSTER_MODE=offline`),
    /// `None` otherwise.
    pub fn offline_config_path(&self) -> Option<&Path> {
        match &self.mode {
            Mode::Offline { config_path } => Some(config_path),
            Mode::Cluster { .. } => None,
        }
    }

    /// Where the module's own server listens: `grpcInnerAddress` as
    /// `ip:port` (Go: `Bootstrap.BindingAddress`).
    pub fn binding_address(&self) -> String {
        self.local.grpc_inner_address.host_port()
    }

    /// Where the infra server listens: `infraServerPort` on the address of
    /// `grpcInnerAddress.ip`, where the module listens. Go listens on
    /// `:port`, every interface: the same for the usual inner ip `0.0.0.0`.
    pub fn infra_addr(&self) -> SocketAddr {
        SocketAddr::new(self.inner_ip, self.local.infra_server_port)
    }

    /// `healthcheckHandlerTimeout`, if set.
    pub fn health_timeout(&self) -> Option<Duration> {
        self.local.healthcheck_handler_timeout
    }

    /// The config receiver's timeout: `remoteConfigReceiverTimeout`, else
    /// the client's default (5 s).
    pub fn config_timeout(&self) -> Duration {
        self.local
            .remote_config_receiver_timeout
            .unwrap_or(DEFAULT_CONFIG_TIMEOUT)
    }

    /// `receiver` behind the `remoteConfigOverride` layer when the local
    /// config has one ([`ConfigOverride`], started in the current actix
    /// System), else `receiver` itself.
    pub fn remote_config_receiver(
        &self,
        receiver: Recipient<RemoteConfig>,
    ) -> Recipient<RemoteConfig> {
        match self
            .local
            .remote_config_override
            .as_ref()
            .and_then(|overlay| ConfigOverride::new(overlay, receiver.clone()))
        {
            Some(layer) => layer.start().recipient(),
            None => receiver,
        }
    }

    /// The client builder, ready: module info, config data, hosts, config
    /// timeout, and `receiver` behind the override layer. Add routes,
    /// required modules or a config cache, then `start()` it. `None` in
    /// offline mode. Call it inside the actix System.
    pub fn client_builder(
        &self,
        receiver: Recipient<RemoteConfig>,
    ) -> Option<ClusterClientBuilder> {
        let Mode::Cluster { hosts, config_data } = &self.mode else {
            return None;
        };
        let builder = ClusterClient::builder(self.info.clone(), config_data.clone())
            .hosts(hosts.iter().cloned())
            .config_timeout(self.config_timeout())
            .remote_config(self.remote_config_receiver(receiver));
        Some(builder)
    }

    /// The offline client, reading the remote config file of
    /// [`offline_config_path`](Self::offline_config_path) for `receiver`
    /// (behind the override layer) under the config timeout. `None` unless
    /// `CLUSTER_MODE=offline`. Call it inside the actix System.
    pub fn offline_client(&self, receiver: Recipient<RemoteConfig>) -> Option<OfflineClient> {
        let path = self.offline_config_path()?;
        let client = OfflineClient::new(path, self.remote_config_receiver(receiver))
            .config_timeout(self.config_timeout());
        Some(client)
    }
}

fn local_config_path(env: &Environment, dev: bool) -> PathBuf {
    match env.get("APP_CONFIG_PATH").filter(|p| !p.is_empty()) {
        Some(path) => env.resolve(path),
        None if dev => env.resolve("conf/config_dev.yml"),
        None => env.executable_dir().join("config.yml"),
    }
}

fn read_default_remote_config(path: &Path) -> Result<RawJson, BootstrapError> {
    let data = std::fs::read(path).map_err(|source| BootstrapError::ReadDefaultRemoteConfig {
        file: path.to_owned(),
        source,
    })?;
    let invalid = |source| BootstrapError::DefaultRemoteConfigJson {
        file: path.to_owned(),
        source,
    };
    let text = crate::json::json_text(&data).map_err(|e| invalid(e.into_serde()))?;
    RawJson::from_string(text.to_owned()).map_err(invalid)
}

/// The IP address of `address`'s ip: itself, or the first address of the
/// name (`localhost`).
fn resolve_ip(address: &AddressConfiguration) -> io::Result<IpAddr> {
    if let Ok(ip) = address.ip.parse() {
        return Ok(ip);
    }
    (address.ip.as_str(), 0)
        .to_socket_addrs()?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name has no address"))
}

/// The local address the system would send from toward `host`: a UDP
/// socket "connected" there picks its route and source address without
/// sending anything (Go: `net.Dial("udp", host)` and its `LocalAddr`).
fn local_address_toward(host: &AddressConfiguration) -> io::Result<IpAddr> {
    let port: u16 = host
        .port
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the port is not a number"))?;
    let target = (host.ip.as_str(), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address"))?;
    let any: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((any, 0))?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

/// isp-kit's `metricsServiceDiscovery`: when enabled, the scraper's address
/// (the outer ip and the infra port unless set) and labels
/// (`__metrics_path__`, `app`, then the additional ones, which win).
fn metrics_autodiscovery(
    local: &LocalConfig,
    outer: &AddressConfiguration,
) -> Option<MetricsAutodiscovery> {
    let config = &local.metrics_autodiscovery;
    if !config.enable {
        return None;
    }
    let address = config.address.clone().unwrap_or_else(|| {
        AddressConfiguration::new(outer.ip.clone(), local.infra_server_port.to_string()).host_port()
    });
    Some(MetricsAutodiscovery::for_module(
        &local.module_name,
        address,
        config.additional_labels.clone(),
    ))
}
