//! Mistakes in the client's configuration, found at start.

use std::fmt;

use super::Setting;
#[cfg(feature = "tls")]
use super::TlsError;

/// A mistake in the client's configuration, found at [`ClusterClientBuilder::start`](crate::ClusterClientBuilder::start).
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
    /// The module declares the `http` transport and an endpoint without an
    /// HTTP method: the config-service could not route it (isp-kit refuses
    /// such a declaration at start-up too).
    EndpointWithoutMethod {
        /// The endpoint's path.
        path: String,
    },
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
            Self::EndpointWithoutMethod { path } => write!(
                f,
                "endpoint {path:?} has no HTTP method, which the http transport needs \
                 (set EndpointDescriptor::http_method, e.g. \"POST\")"
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
