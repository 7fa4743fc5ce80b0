//! The keys of isp-kit's `ClusteredLocalConfig` that concern the cluster,
//! read from the flattened file with the environment laid over it, and
//! checked.
//!
//! As in isp-kit, every key is its dotted path, lower-cased, and every
//! environment variable counts: its name lower-cased is a key
//! (`MODULENAME` sets `moduleName`, `GRPCOUTERADDRESS.PORT` sets
//! `grpcOuterAddress.port`). With `APP_CONFIG_ENV_PREFIX` set, only the
//! variables whose name starts with it count, the prefix removed. A variable
//! wins over the file. An empty value is an absent one, as Go's zero values
//! are.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::duration::parse_go_duration;
use super::yaml::Leaf;
use super::{BootstrapError, Environment};
use crate::types::{AddressConfiguration, RawJson};

/// The variable that limits the overriding variables to those with its
/// value as a prefix.
pub const ENV_PREFIX_VAR: &str = "APP_CONFIG_ENV_PREFIX";

/// The keys of a Go module's local config that concern the cluster, read
/// and checked: isp-kit's `bootstrap.ClusteredLocalConfig` (logging,
/// Sentry, tracing and migrations keys are not read here).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LocalConfig {
    /// `moduleName` (required): the name the module registers under.
    pub module_name: String,
    /// `configServiceAddress {ip, port}`: the config-service nodes, from
    /// `;`-separated lists of equal length (empty in offline mode, where
    /// they are not read).
    pub config_service: Vec<AddressConfiguration>,
    /// `grpcOuterAddress {ip, port}` as written: an empty `ip` is resolved
    /// later, to the local address toward the first config-service node.
    pub grpc_outer_address: AddressConfiguration,
    /// `grpcInnerAddress {ip, port}`: where the module's own server listens
    /// (Go's `BindingAddress`); its port may differ from the outer one, the
    /// port announced (NAT, NodePort), as isp-kit accepts since v1.62.
    pub grpc_inner_address: AddressConfiguration,
    /// `defaultRemoteConfigPath`, if set.
    pub default_remote_config_path: Option<String>,
    /// `remoteConfigPath`, if set: the offline mode's config file.
    pub remote_config_path: Option<String>,
    /// `remoteConfigOverride`: a JSON object merged over every remote
    /// config received. Its `Debug` shows the size only.
    pub remote_config_override: Option<RawJson>,
    /// `remoteConfigReceiverTimeout` (a Go duration), if set and not zero.
    pub remote_config_receiver_timeout: Option<Duration>,
    /// `infraServerPort`, or `grpcInnerAddress.port + 1` when unset or 0.
    pub infra_server_port: u16,
    /// `infraServerIp`, if set: the one address the infra server binds.
    /// Not an isp-kit key (Go's infra server listens on every interface,
    /// as this one does without it).
    pub infra_server_ip: Option<IpAddr>,
    /// `metricsAutodiscovery {enable, address, additionalLabels}`.
    pub metrics_autodiscovery: MetricsAutodiscoveryConfig,
    /// `healthcheckHandlerTimeout` (a Go duration), if set and not zero.
    pub healthcheck_handler_timeout: Option<Duration>,
}

/// `metricsAutodiscovery` of the local config (Go: `bootstrap.MetricsAutodiscovery`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsAutodiscoveryConfig {
    /// `enable`: declare the metrics endpoint in the backend declaration.
    pub enable: bool,
    /// `address`, if set; else the outer ip and the infra server's port.
    pub address: Option<String>,
    /// `additionalLabels`, added to `__metrics_path__` and `app`. Their
    /// names are lower-cased, as every key of the file is (isp-kit does
    /// the same).
    pub additional_labels: BTreeMap<String, String>,
}

/// A value and the variable it came from, if it did not come from the file.
struct Entry {
    value: String,
    variable: Option<String>,
}

/// The flattened file with the environment laid over it.
pub(crate) struct Flat<'a> {
    entries: BTreeMap<String, Entry>,
    file: &'a Path,
    prefix: String,
}

impl<'a> Flat<'a> {
    pub(crate) fn new(leaves: Vec<Leaf>, env: &Environment, file: &'a Path) -> Self {
        let mut entries: BTreeMap<String, Entry> = leaves
            .into_iter()
            .map(|(key, value)| {
                let entry = Entry {
                    value,
                    variable: None,
                };
                (key, entry)
            })
            .collect();
        let prefix = env.get(ENV_PREFIX_VAR).unwrap_or_default().to_owned();
        let lower_prefix = prefix.to_lowercase();
        for (name, value) in env.vars() {
            let key = name.to_lowercase();
            // Both lower-cased, so the prefix's length is a char boundary.
            let Some(key) = key.strip_prefix(lower_prefix.as_str()) else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            let entry = Entry {
                value: value.to_owned(),
                variable: Some(name.to_owned()),
            };
            entries.insert(key.to_owned(), entry);
        }
        Self {
            entries,
            file,
            prefix,
        }
    }

    /// Every key (lower-cased, dotted), its value and the variable that
    /// set it, if one did: what the application's own config is read from
    /// ([`super::app_config`]).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
        self.entries
            .iter()
            .map(|(key, e)| (key.as_str(), e.value.as_str(), e.variable.as_deref()))
    }

    /// `APP_CONFIG_ENV_PREFIX`, empty when unset.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The entry of `key` (spelt as isp-kit documents it), unless absent
    /// or empty.
    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries
            .get(&key.to_lowercase())
            .filter(|e| !e.value.is_empty())
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).map(|e| e.value.as_str())
    }

    fn wrong(&self, key: &'static str, problem: String) -> BootstrapError {
        BootstrapError::Key {
            file: self.file.to_owned(),
            key,
            variable: self.get(key).and_then(|e| e.variable.clone()),
            problem,
        }
    }

    fn missing(&self, key: &'static str) -> BootstrapError {
        BootstrapError::Key {
            file: self.file.to_owned(),
            key,
            variable: None,
            problem: format!(
                "is required: set it in the file or with the variable {}{}",
                self.prefix,
                key.to_uppercase()
            ),
        }
    }

    fn required(&self, key: &'static str) -> Result<&str, BootstrapError> {
        self.text(key).ok_or_else(|| self.missing(key))
    }

    /// A port, 1 to 65535.
    fn port(&self, key: &'static str) -> Result<Option<u16>, BootstrapError> {
        let Some(text) = self.text(key) else {
            return Ok(None);
        };
        match text.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(self.wrong(key, format!("{text:?} is not a port (1 to 65535)"))),
            Ok(port) => Ok(Some(port)),
        }
    }

    /// Go's `strconv.ParseBool`.
    fn flag(&self, key: &'static str) -> Result<bool, BootstrapError> {
        let Some(text) = self.text(key) else {
            return Ok(false);
        };
        match text.trim() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(self.wrong(key, format!("{text:?} is not true or false"))),
        }
    }

    /// A Go duration; zero is absent (the default applies, as in Go).
    fn duration(&self, key: &'static str) -> Result<Option<Duration>, BootstrapError> {
        let Some(text) = self.text(key) else {
            return Ok(None);
        };
        match parse_go_duration(text.trim()) {
            Ok(d) if d.is_zero() => Ok(None),
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(self.wrong(key, format!("{text:?} is not valid: {e}"))),
        }
    }

    /// Every key under `prefix.`, the rest of the key and the value.
    fn children(&self, prefix: &str) -> BTreeMap<String, String> {
        let prefix = format!("{}.", prefix.to_lowercase());
        self.entries
            .iter()
            .filter_map(|(k, e)| Some((k.strip_prefix(&prefix)?.to_owned(), e.value.clone())))
            .collect()
    }
}

/// Whether `host` can stand for a host in `host:port`: an IP address or a
/// name without spaces, slashes or colons.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && !host.contains(|c: char| c.is_whitespace() || c == '/')
        && (!host.contains(':') || host.parse::<IpAddr>().is_ok())
}

impl LocalConfig {
    /// Reads and checks the keys; `offline` leaves `configServiceAddress`
    /// unread (the offline mode has no config-service).
    pub(crate) fn read(flat: &Flat<'_>, offline: bool) -> Result<Self, BootstrapError> {
        let module_name = flat.required("moduleName")?.trim().to_owned();
        let config_service = if offline {
            Vec::new()
        } else {
            config_service(flat)?
        };

        let outer_ip = flat.text("grpcOuterAddress.ip").unwrap_or_default().trim();
        if !outer_ip.is_empty() && !plausible_host(outer_ip) {
            let problem = format!("{outer_ip:?} is not an address");
            return Err(flat.wrong("grpcOuterAddress.ip", problem));
        }
        let outer_port = flat
            .port("grpcOuterAddress.port")?
            .ok_or_else(|| flat.missing("grpcOuterAddress.port"))?;
        let inner_ip = flat.required("grpcInnerAddress.ip")?.trim();
        if !plausible_host(inner_ip) {
            let problem = format!("{inner_ip:?} is not an address");
            return Err(flat.wrong("grpcInnerAddress.ip", problem));
        }
        let inner_port = flat
            .port("grpcInnerAddress.port")?
            .ok_or_else(|| flat.missing("grpcInnerAddress.port"))?;
        // The inner port may differ from the outer one (NAT, a NodePort
        // service): isp-kit refused that up to v1.61 and accepts it since
        // v1.62, when the clustered and standalone bootstraps were split.

        let remote_config_override = remote_config_override(flat)?;
        let remote_config_receiver_timeout = flat.duration("remoteConfigReceiverTimeout")?;
        let healthcheck_handler_timeout = flat.duration("healthcheckHandlerTimeout")?;

        let infra_server_port = match flat.port_or_zero("infraServerPort")? {
            Some(port) => port,
            None => inner_port.checked_add(1).ok_or_else(|| {
                let problem = "is unset and grpcInnerAddress.port + 1 is not a port".to_owned();
                flat.wrong("infraServerPort", problem)
            })?,
        };

        let infra_server_ip = match flat.text("infraServerIp").map(str::trim) {
            None => None,
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
                flat.wrong("infraServerIp", format!("{ip:?} is not an IP address"))
            })?),
        };

        let metrics_autodiscovery = MetricsAutodiscoveryConfig {
            enable: flat.flag("metricsAutodiscovery.enable")?,
            address: flat
                .text("metricsAutodiscovery.address")
                .map(|a| a.trim().to_owned()),
            additional_labels: flat.children("metricsAutodiscovery.additionalLabels"),
        };

        Ok(Self {
            module_name,
            config_service,
            grpc_outer_address: AddressConfiguration::new(outer_ip, outer_port.to_string()),
            grpc_inner_address: AddressConfiguration::new(inner_ip, inner_port.to_string()),
            default_remote_config_path: flat.text("defaultRemoteConfigPath").map(str::to_owned),
            remote_config_path: flat.text("remoteConfigPath").map(str::to_owned),
            remote_config_override,
            remote_config_receiver_timeout,
            infra_server_port,
            infra_server_ip,
            metrics_autodiscovery,
            healthcheck_handler_timeout,
        })
    }
}

impl Flat<'_> {
    /// A port where 0 means unset (Go's zero value picks the default).
    fn port_or_zero(&self, key: &'static str) -> Result<Option<u16>, BootstrapError> {
        match self.text(key).map(str::trim) {
            Some("0") | None => Ok(None),
            Some(_) => self.port(key),
        }
    }
}

/// `configServiceAddress`: `ip` and `port` lists split at `;`, paired.
fn config_service(flat: &Flat<'_>) -> Result<Vec<AddressConfiguration>, BootstrapError> {
    let ips: Vec<&str> = flat
        .required("configServiceAddress.ip")?
        .split(';')
        .map(str::trim)
        .collect();
    let ports_text = flat.required("configServiceAddress.port")?;
    let ports: Vec<&str> = ports_text.split(';').map(str::trim).collect();
    if ips.len() != ports.len() {
        let problem = format!(
            "lists {} port(s) and configServiceAddress.ip {} address(es): \
             the `;`-separated lists must be of equal length",
            ports.len(),
            ips.len()
        );
        return Err(flat.wrong("configServiceAddress.port", problem));
    }
    let mut hosts = Vec::with_capacity(ips.len());
    for (ip, port) in ips.into_iter().zip(ports) {
        if !plausible_host(ip) {
            let problem = format!("has {ip:?}, which is not an address");
            return Err(flat.wrong("configServiceAddress.ip", problem));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => hosts.push(AddressConfiguration::new(ip, p.to_string())),
            _ => {
                let problem = format!("has {port:?}, which is not a port (1 to 65535)");
                return Err(flat.wrong("configServiceAddress.port", problem));
            }
        }
    }
    Ok(hosts)
}

/// `remoteConfigOverride`: a JSON object, as text.
fn remote_config_override(flat: &Flat<'_>) -> Result<Option<RawJson>, BootstrapError> {
    const KEY: &str = "remoteConfigOverride";
    if !flat.children(KEY).is_empty() {
        let problem = "must be a string holding a JSON object \
                       (e.g. '{\"db\":{\"port\":5433}}'), not a YAML mapping"
            .to_owned();
        return Err(flat.wrong(KEY, problem));
    }
    let Some(text) = flat.text(KEY) else {
        return Ok(None);
    };
    // Parsed as a value first: serde_json's syntax errors give a line and
    // a column, never the content (an override may hold a password).
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| flat.wrong(KEY, format!("is not valid json: {e}")))?;
    if !value.is_object() {
        return Err(flat.wrong(KEY, "is not a JSON object".to_owned()));
    }
    RawJson::from_string(text.to_owned())
        .map(Some)
        .map_err(|e| flat.wrong(KEY, format!("is not valid json: {e}")))
}
