//! The JSON payloads of the module protocol (PROTOCOL.md §4).
//!
//! Field names are lowerCamelCase as the Go peers write them; every list and
//! map accepts `null` as empty, because Go marshals nil slices and maps as
//! `null`. The Go peers read field names case-insensitively; these types also
//! accept the PascalCase spelling of Go's own field names (what Go's standard
//! encoder writes), and are written in lowerCamelCase.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::events::REQUIRED_ADMIN_PERMISSION;

/// Deserializes `null` as `T::default()`.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// A JSON document kept as its raw text, embedded verbatim when serialized
/// (the `schema` and `config` of [`ConfigData`]).
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Checks that `json` is one valid JSON document and keeps its text.
    pub fn from_string(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(Self)
    }

    /// Like [`RawJson::from_string`], from bytes.
    pub fn from_slice(json: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: &RawValue = serde_json::from_slice(json)?;
        Ok(Self(raw.to_owned()))
    }

    /// Serializes `value` to JSON.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The empty object `{}`.
    pub fn empty_object() -> Self {
        Self::from_string("{}".to_owned()).expect("`{}` is valid json")
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses the text into `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl Default for RawJson {
    fn default() -> Self {
        Self::empty_object()
    }
}

impl fmt::Debug for RawJson {
    /// Shows the size only: a config may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({} bytes)", self.0.get().len())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for RawJson {}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(de).map(Self)
    }
}

impl std::str::FromStr for RawJson {
    type Err = serde_json::Error;

    /// Checks that `json` is one valid JSON document and keeps its text.
    fn from_str(json: &str) -> Result<Self, serde_json::Error> {
        Self::from_string(json.to_owned())
    }
}

impl TryFrom<String> for RawJson {
    type Error = serde_json::Error;

    /// Checks that `json` is one valid JSON document and keeps its text
    /// (without copying it).
    fn try_from(json: String) -> Result<Self, serde_json::Error> {
        Self::from_string(json)
    }
}

/// An `ip` and a `port` (a string on the wire), as the Go peers write them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddressConfiguration {
    /// IP address or host name.
    #[serde(alias = "IP", alias = "Ip", default)]
    pub ip: String,
    /// Port, as a decimal string.
    #[serde(alias = "Port", default)]
    pub port: String,
}

impl From<std::net::SocketAddr> for AddressConfiguration {
    /// The address's IP (without brackets) and port.
    fn from(addr: std::net::SocketAddr) -> Self {
        Self::new(addr.ip().to_string(), addr.port().to_string())
    }
}

impl AddressConfiguration {
    /// An address from its parts.
    pub fn new(ip: impl Into<String>, port: impl Into<String>) -> Self {
        Self {
            ip: ip.into(),
            port: port.into(),
        }
    }

    /// `ip:port`, with an IPv6 address in brackets (as Go's
    /// `net.JoinHostPort`).
    pub fn host_port(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }

    /// Parses `ip:port` or `[ipv6]:port`.
    pub fn parse(host_port: &str) -> Option<Self> {
        let (host, port) = host_port.rsplit_once(':')?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let host = match host.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']')?,
            None if host.contains(':') => return None,
            None => host,
        };
        if host.is_empty() {
            return None;
        }
        if host.contains(':') && host.parse::<IpAddr>().is_err() {
            return None;
        }
        Some(Self::new(host, port))
    }
}

impl fmt::Display for AddressConfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host_port())
    }
}

/// Where a metrics scraper finds the module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsAutodiscovery {
    /// `host:port/path` of the metrics endpoint.
    #[serde(alias = "Address", default)]
    pub address: String,
    /// Labels for the scraped series.
    #[serde(alias = "Labels", default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

impl MetricsAutodiscovery {
    /// The path isp-kit's infra server serves metrics on, the label
    /// `__metrics_path__` tells Prometheus.
    pub const METRICS_PATH: &'static str = "/internal/metrics";

    /// What isp-kit's `bootstrap` declares for `module` (Go's
    /// `metricsServiceDiscovery`): `address` (`host:port` of the infra
    /// server), the labels `__metrics_path__: /internal/metrics` and
    /// `app: <module>`, then `extra_labels` (isp-kit's `additionalLabels`),
    /// which win over those two.
    pub fn for_module<I, K, V>(module: &str, address: impl Into<String>, extra_labels: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut labels = BTreeMap::from([
            ("__metrics_path__".to_owned(), Self::METRICS_PATH.to_owned()),
            ("app".to_owned(), module.to_owned()),
        ]);
        labels.extend(extra_labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        Self {
            address: address.into(),
            labels,
        }
    }
}

/// One endpoint the module serves. The Go handler is never sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointDescriptor {
    /// Path, e.g. `/api/foo`.
    #[serde(alias = "Path", default)]
    pub path: String,
    /// Reachable only from inside the cluster.
    #[serde(alias = "Inner", default)]
    pub inner: bool,
    /// Needs an authenticated user.
    #[serde(alias = "UserAuthRequired", default)]
    pub user_auth_required: bool,
    /// HTTP method; the server makes an empty one `POST` for grpc.
    #[serde(alias = "HttpMethod", default)]
    pub http_method: String,
    /// Free-form metadata, e.g. `{"reqAdminPerm":"write"}`.
    #[serde(alias = "Extra", default, deserialize_with = "null_as_default")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl EndpointDescriptor {
    /// An endpoint at `path` with everything else empty.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// The admin permission this endpoint requires, if any.
    pub fn required_admin_permission(&self) -> Option<&str> {
        required_admin_permission(self)
    }

    /// Sets [`inner`](Self::inner): reachable only from inside the cluster.
    pub fn inner(mut self, inner: bool) -> Self {
        self.inner = inner;
        self
    }

    /// Sets [`user_auth_required`](Self::user_auth_required).
    pub fn user_auth_required(mut self, required: bool) -> Self {
        self.user_auth_required = required;
        self
    }

    /// Sets [`http_method`](Self::http_method).
    pub fn http_method(mut self, method: impl Into<String>) -> Self {
        self.http_method = method.into();
        self
    }

    /// Sets [`extra`](Self::extra), e.g. [`require_admin_permission`].
    pub fn extra(mut self, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra = extra;
        self
    }
}

impl From<&str> for EndpointDescriptor {
    /// An endpoint at this path with everything else empty.
    fn from(path: &str) -> Self {
        Self::new(path)
    }
}

impl From<String> for EndpointDescriptor {
    /// An endpoint at this path with everything else empty.
    fn from(path: String) -> Self {
        Self::new(path)
    }
}

/// `{"reqAdminPerm": perm}`, for [`EndpointDescriptor::extra`].
pub fn require_admin_permission(perm: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    extra.insert(REQUIRED_ADMIN_PERMISSION.to_owned(), perm.into());
    extra
}

/// The admin permission an endpoint requires: `extra["reqAdminPerm"]` when it
/// is a string.
pub fn required_admin_permission(endpoint: &EndpointDescriptor) -> Option<&str> {
    endpoint
        .extra
        .get(REQUIRED_ADMIN_PERMISSION)
        .and_then(|v| v.as_str())
}

/// A module this module depends on, as declared at `MODULE:READY`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleDependency {
    /// The module's name.
    #[serde(alias = "Name", default)]
    pub name: String,
    /// Whether it is required (the Go client always says `true`).
    #[serde(alias = "Required", default)]
    pub required: bool,
}

/// `MODULE:SEND_REQUIREMENTS`: what the module subscribes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleRequirements {
    /// Modules whose live addresses the module wants.
    #[serde(
        alias = "RequiredModules",
        default,
        deserialize_with = "null_as_default"
    )]
    pub required_modules: Vec<String>,
    /// Whether the module wants the routing table.
    #[serde(alias = "RequireRoutes", default)]
    pub require_routes: bool,
}

/// `MODULE:SEND_CONFIG_SCHEMA`: the schema and the default remote config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigData {
    /// The module's version.
    #[serde(alias = "Version", default)]
    pub version: String,
    /// The JSON schema of the remote config, embedded raw.
    #[serde(alias = "Schema", default)]
    pub schema: RawJson,
    /// The default remote config, embedded raw; the server takes it when the
    /// module has no config yet.
    #[serde(alias = "Config", default)]
    pub config: RawJson,
}

impl ConfigData {
    /// Config data from a version, a schema and a default config.
    pub fn new(version: impl Into<String>, schema: RawJson, config: RawJson) -> Self {
        Self {
            version: version.into(),
            schema,
            config,
        }
    }
}

/// `MODULE:READY`: the module's backend declaration. Also one entry of a
/// [`RoutingConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendDeclaration {
    /// The module's name.
    #[serde(alias = "ModuleName", default)]
    pub module_name: String,
    /// The module's version.
    #[serde(alias = "Version", default)]
    pub version: String,
    /// The version of the client library.
    #[serde(alias = "LibVersion", default)]
    pub lib_version: String,
    /// `grpc`, `http` or `empty`; the server makes an empty one `grpc`.
    #[serde(alias = "Transport", default)]
    pub transport: String,
    /// The endpoints the module serves.
    #[serde(alias = "Endpoints", default, deserialize_with = "null_as_default")]
    pub endpoints: Vec<EndpointDescriptor>,
    /// The modules it depends on.
    #[serde(
        alias = "RequiredModules",
        default,
        deserialize_with = "null_as_default"
    )]
    pub required_modules: Vec<ModuleDependency>,
    /// Where other modules reach it.
    #[serde(alias = "Address", default)]
    pub address: AddressConfiguration,
    /// Metrics autodiscovery, or `null`.
    #[serde(alias = "MetricsAutodiscovery", default)]
    pub metrics_autodiscovery: Option<MetricsAutodiscovery>,
}

/// The routing table: one declaration per live instance of every module.
pub type RoutingConfig = Vec<BackendDeclaration>;

/// Who this module is; the declaration at `MODULE:READY` is built from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInfo {
    /// The module's name, also the `module_name` of the connection.
    #[serde(alias = "ModuleName", default)]
    pub module_name: String,
    /// The module's version.
    #[serde(alias = "ModuleVersion", default)]
    pub module_version: String,
    /// The version of the client library.
    #[serde(alias = "LibVersion", default)]
    pub lib_version: String,
    /// `grpc` (the default), `http` or `empty`.
    #[serde(alias = "Transport", default)]
    pub transport: String,
    /// The address other modules reach this one at.
    #[serde(alias = "GrpcOuterAddress", default)]
    pub grpc_outer_address: AddressConfiguration,
    /// The endpoints the module serves.
    #[serde(alias = "Endpoints", default, deserialize_with = "null_as_default")]
    pub endpoints: Vec<EndpointDescriptor>,
    /// Metrics autodiscovery, if any.
    #[serde(alias = "MetricsAutodiscovery", default)]
    pub metrics_autodiscovery: Option<MetricsAutodiscovery>,
}

impl ModuleInfo {
    /// A module called `name` at `version`, transport `grpc`, declared at
    /// `address`, with this crate's version as lib version.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        address: AddressConfiguration,
    ) -> Self {
        Self {
            module_name: name.into(),
            module_version: version.into(),
            lib_version: crate::LIB_VERSION.to_owned(),
            transport: crate::events::TRANSPORT_GRPC.to_owned(),
            grpc_outer_address: address,
            endpoints: Vec::new(),
            metrics_autodiscovery: None,
        }
    }

    /// The declaration sent at `MODULE:READY`: every required module is
    /// listed with `required: true`.
    pub fn backend_declaration(&self, required_modules: &[String]) -> BackendDeclaration {
        BackendDeclaration {
            module_name: self.module_name.clone(),
            version: self.module_version.clone(),
            lib_version: self.lib_version.clone(),
            transport: self.transport.clone(),
            endpoints: self.endpoints.clone(),
            required_modules: required_modules
                .iter()
                .map(|name| ModuleDependency {
                    name: name.clone(),
                    required: true,
                })
                .collect(),
            address: self.grpc_outer_address.clone(),
            metrics_autodiscovery: self.metrics_autodiscovery.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conversions_from_std_and_strings() {
        let v6: std::net::SocketAddr = "[::1]:9001".parse().unwrap();
        let address = AddressConfiguration::from(v6);
        assert_eq!(address, AddressConfiguration::new("::1", "9001"));
        assert_eq!(address.host_port(), "[::1]:9001");
        let json: RawJson = r#"{"a":1}"#.parse().unwrap();
        assert_eq!(json.get(), r#"{"a":1}"#);
        assert!("{".parse::<RawJson>().is_err());
        assert!(RawJson::try_from("[1,2]".to_owned()).is_ok());
    }

    use super::*;
    use serde_json::{json, Value};

    fn reencodes<T: Serialize + for<'a> Deserialize<'a>>(text: &str) -> T {
        let decoded: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let original: Value = serde_json::from_str(text).unwrap();
        let again = serde_json::to_value(&decoded).unwrap();
        assert_eq!(again, original, "re-encoding {text}");
        decoded
    }

    #[test]
    fn config_data_embeds_schema_and_config_raw() {
        let text = r#"{"version":"1.0.0","schema":{"type":"object","title":"Remote config"},"config":{"a":"x||y"}}"#;
        let data: ConfigData = reencodes(text);
        assert_eq!(data.version, "1.0.0");
        assert_eq!(data.config.get(), r#"{"a":"x||y"}"#);
        assert_eq!(serde_json::to_string(&data).unwrap(), text, "byte for byte");
    }

    #[test]
    fn requirements_example() {
        let req: ModuleRequirements =
            reencodes(r#"{"requiredModules":["auth-service"],"requireRoutes":true}"#);
        assert_eq!(req.required_modules, ["auth-service"]);
        assert!(req.require_routes);
        let null: ModuleRequirements =
            serde_json::from_str(r#"{"requiredModules":null,"requireRoutes":false}"#).unwrap();
        assert!(null.required_modules.is_empty());
    }

    #[test]
    fn addresses_example() {
        let list: Vec<AddressConfiguration> =
            reencodes(r#"[{"ip":"10.2.9.1","port":"9999"},{"ip":"10.2.9.2","port":"9999"}]"#);
        assert_eq!(list[0].host_port(), "10.2.9.1:9999");
        assert_eq!(list[1], AddressConfiguration::new("10.2.9.2", "9999"));
        assert_eq!(
            AddressConfiguration::new("::1", "80").host_port(),
            "[::1]:80"
        );
    }

    #[test]
    fn address_parsing() {
        assert_eq!(
            AddressConfiguration::parse("10.0.0.5:9002"),
            Some(AddressConfiguration::new("10.0.0.5", "9002"))
        );
        assert_eq!(
            AddressConfiguration::parse("[fe80::1]:9002"),
            Some(AddressConfiguration::new("fe80::1", "9002"))
        );
        assert_eq!(
            AddressConfiguration::parse("name:1"),
            Some(AddressConfiguration::new("name", "1"))
        );
        for bad in ["", "x", ":1", "a:", "a:b", "::1:80", "[x:y]:1", "[::1]"] {
            assert_eq!(AddressConfiguration::parse(bad), None, "{bad}");
        }
    }

    const READY: &str = r#"{"moduleName":"b","version":"1.0.0","libVersion":"1.67.0","transport":"grpc",
 "endpoints":[{"path":"/api/foo","inner":false,"userAuthRequired":false,
               "httpMethod":"POST","extra":{"reqAdminPerm":"write"}}],
 "requiredModules":[{"name":"auth-service","required":true}],
 "address":{"ip":"10.0.0.5","port":"9002"},
 "metricsAutodiscovery":{"address":"10.0.0.5:9003/metrics","labels":{"team":"a"}}}"#;

    #[test]
    fn backend_declaration_example() {
        let decl: BackendDeclaration = reencodes(READY);
        assert_eq!(decl.module_name, "b");
        assert_eq!(decl.endpoints[0].required_admin_permission(), Some("write"));
        assert_eq!(decl.required_modules[0].name, "auth-service");
        assert_eq!(decl.address.port, "9002");
        assert_eq!(decl.metrics_autodiscovery.unwrap().labels["team"], "a");
    }

    #[test]
    fn routes_with_nulls_extra_and_metrics_decode() {
        let text = json!([
            {"moduleName":"a","version":"1","libVersion":"1.67.0","transport":"grpc",
             "endpoints":null,"requiredModules":null,
             "address":{"ip":"10.0.0.1","port":"1"},"metricsAutodiscovery":null},
            {"moduleName":"b","version":"1","libVersion":"1.67.0","transport":"http",
             "endpoints":[{"path":"/x","inner":true,"userAuthRequired":true,
                           "httpMethod":"GET","extra":null},
                          {"path":"/y","inner":false,"userAuthRequired":false,
                           "httpMethod":"POST","extra":{"reqAdminPerm":"read","n":[1,2]}}],
             "requiredModules":[{"name":"a","required":true}],
             "address":{"ip":"10.0.0.2","port":"2"},
             "metricsAutodiscovery":{"address":"10.0.0.2:3/metrics","labels":null}}
        ])
        .to_string();
        let routes: RoutingConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(routes.len(), 2);
        assert!(routes[0].endpoints.is_empty());
        assert!(routes[0].metrics_autodiscovery.is_none());
        assert!(routes[1].endpoints[0].extra.is_empty());
        assert_eq!(
            routes[1].endpoints[1].required_admin_permission(),
            Some("read")
        );
        assert_eq!(routes[1].endpoints[1].extra["n"], json!([1, 2]));
        assert!(routes[1]
            .metrics_autodiscovery
            .as_ref()
            .unwrap()
            .labels
            .is_empty());
        let routes: RoutingConfig = serde_json::from_str("[]").unwrap();
        assert!(routes.is_empty());
    }

    #[test]
    fn go_field_names_are_accepted_too() {
        let decl: BackendDeclaration = serde_json::from_str(
            r#"{"ModuleName":"b","Version":"1","LibVersion":"1.67.0","Transport":"http",
                "Endpoints":[{"Path":"/x","HttpMethod":"GET","UserAuthRequired":true,"Extra":null}],
                "RequiredModules":[{"Name":"a","Required":true}],
                "Address":{"IP":"10.0.0.1","Port":"1"},"MetricsAutodiscovery":null}"#,
        )
        .unwrap();
        assert_eq!(decl.module_name, "b");
        assert_eq!(decl.endpoints[0].http_method, "GET");
        assert!(decl.endpoints[0].user_auth_required);
        assert_eq!(decl.required_modules[0].name, "a");
        assert_eq!(decl.address.host_port(), "10.0.0.1:1");
        let json = serde_json::to_value(&decl).unwrap();
        assert_eq!(json["moduleName"], "b", "written in lowerCamelCase");
    }

    #[test]
    fn admin_permission_helpers() {
        let mut endpoint = EndpointDescriptor::new("/x");
        assert_eq!(required_admin_permission(&endpoint), None);
        endpoint.extra = require_admin_permission("write");
        assert_eq!(required_admin_permission(&endpoint), Some("write"));
        endpoint.extra.insert("reqAdminPerm".into(), json!(5));
        assert_eq!(required_admin_permission(&endpoint), None, "not a string");
    }

    #[test]
    fn declaration_from_module_info() {
        let mut info = ModuleInfo::new("b", "1.0.0", AddressConfiguration::new("10.0.0.5", "9002"));
        info.endpoints.push(EndpointDescriptor::new("/api/foo"));
        let decl = info.backend_declaration(&["auth-service".to_owned()]);
        assert_eq!(decl.module_name, "b");
        assert_eq!(decl.transport, "grpc");
        assert_eq!(decl.lib_version, crate::LIB_VERSION);
        assert_eq!(
            decl.required_modules,
            [ModuleDependency {
                name: "auth-service".into(),
                required: true
            }]
        );
        let json = serde_json::to_value(&decl).unwrap();
        assert_eq!(json["metricsAutodiscovery"], Value::Null, "null as in Go");
        assert_eq!(json["address"], json!({"ip":"10.0.0.5","port":"9002"}));
    }
}
