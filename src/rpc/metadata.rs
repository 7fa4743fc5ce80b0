//! What a call carries beside its body: the metadata keys isp modules use,
//! and typed views of them (request id, identities, trace context).
//!
//! Go: `isp-kit/grpc` (`ProxyMethodNameHeader`, `RequestIdHeader`,
//! `auth_data.go`), `isp-kit/requestid`.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderMap, HeaderName};

/// The endpoint a call is for, without a leading slash (Go:
/// `grpc.ProxyMethodNameHeader`).
pub const PROXY_METHOD_NAME: &str = "proxy_method_name";
/// The request id (Go: `requestid.Header`).
pub const REQUEST_ID: &str = crate::request_id::REQUEST_ID_HEADER;
/// W3C Trace Context.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context.
pub const TRACESTATE: &str = "tracestate";
/// Go: `grpc.ApplicationIdHeader`.
pub const APPLICATION_IDENTITY: &str = "x-application-identity";
/// Go: `grpc.ApplicationNameHeader`; base64 on the wire since isp-kit
/// v1.64.7.
pub const APPLICATION_NAME: &str = "x-application-name";
/// Go: `grpc.UserIdHeader`.
pub const USER_IDENTITY: &str = "x-user-identity";
/// Go: `grpc.DeviceIdHeader`.
pub const DEVICE_IDENTITY: &str = "x-device-identity";
/// Go: `grpc.ServiceIdHeader`.
pub const SERVICE_IDENTITY: &str = "x-service-identity";
/// Go: `grpc.DomainIdHeader`.
pub const DOMAIN_IDENTITY: &str = "x-domain-identity";
/// Go: `grpc.SystemIdHeader`.
pub const SYSTEM_IDENTITY: &str = "x-system-identity";
/// Go: `grpc.UserTokenHeader`.
pub const USER_TOKEN: &str = "x-user-token";
/// Go: `grpc.DeviceTokenHeader`.
pub const DEVICE_TOKEN: &str = "x-device-token";
/// The admin's id, as the gateway sets it for admin endpoints.
pub const ADMIN_ID: &str = "x-admin-id";

/// The keys every call is read or written with, made once.
pub(crate) static PROXY_METHOD_NAME_KEY: HeaderName = HeaderName::from_static(PROXY_METHOD_NAME);
pub(crate) static REQUEST_ID_KEY: HeaderName = HeaderName::from_static(REQUEST_ID);
pub(crate) static GRPC_TIMEOUT_KEY: HeaderName = HeaderName::from_static("grpc-timeout");

/// The metadata of a request as received: every key lower case, binary
/// (`-bin`) keys left out of the text views.
#[derive(Clone, Default)]
pub struct Metadata {
    headers: HeaderMap,
}

impl Metadata {
    pub(crate) fn from_headers(headers: HeaderMap) -> Self {
        Self { headers }
    }

    /// The first value of `key` as text (a Go caller that sets a key twice
    /// sends two values; servers use the first), or `None` when absent or
    /// not text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// [`get`](Self::get) with a key made once.
    pub(crate) fn get_key(&self, key: &HeaderName) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// Every value of `key`, as text.
    pub fn get_all<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(key)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
    }

    /// Each text key with its first value, in no particular order; binary
    /// (`-bin`) keys and HTTP/2 pseudo-headers are left out.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers.keys().filter_map(move |k| {
            let key = k.as_str();
            if key.ends_with("-bin") {
                return None;
            }
            self.get(key).map(|v| (key, v))
        })
    }
}

impl fmt::Debug for Metadata {
    /// The keys only: values may be tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.headers.keys()).finish()
    }
}

/// A request id: 32 lower-case hex digits when made here (Go: 16 random
/// bytes, `requestid.Next`), any text when received.
///
/// Cheap to clone: a call's handler, its log lines and the calls it makes
/// share one text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A new random id (16 random bytes, 32 hex digits).
    pub fn new() -> Self {
        let digits = crate::request_id::new_request_id_digits();
        // Hex digits are ASCII.
        Self(Arc::from(std::str::from_utf8(&digits).unwrap_or_default()))
    }

    /// An id as received or given.
    pub fn from_string(id: impl Into<String>) -> Self {
        Self(Arc::from(id.into()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The request's id, or a new one when it carried none (as isp-kit's
    /// server middleware does).
    pub fn of(metadata: &Metadata) -> Self {
        match metadata.get_key(&REQUEST_ID_KEY) {
            Some(id) if !id.is_empty() => Self(Arc::from(id)),
            _ => Self::new(),
        }
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a call is for, as the gateway and isp-kit set it (Go:
/// `grpc.AuthData`). Each field is the first value of its key, as text;
/// `application_name` is decoded from base64 when it is base64 (isp-kit
/// v1.64.7 and later), else taken as it is.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// `x-application-identity`
    pub application_id: Option<String>,
    /// `x-application-name`
    pub application_name: Option<String>,
    /// `x-user-identity`
    pub user_id: Option<String>,
    /// `x-device-identity`
    pub device_id: Option<String>,
    /// `x-service-identity`
    pub service_id: Option<String>,
    /// `x-domain-identity`
    pub domain_id: Option<String>,
    /// `x-system-identity`
    pub system_id: Option<String>,
    /// `x-user-token`
    pub user_token: Option<String>,
    /// `x-device-token`
    pub device_token: Option<String>,
    /// `x-admin-id`
    pub admin_id: Option<String>,
}

impl Identity {
    /// The identity keys of `metadata`.
    pub fn of(metadata: &Metadata) -> Self {
        let get = |key| metadata.get(key).map(str::to_owned);
        Self {
            application_id: get(APPLICATION_IDENTITY),
            application_name: metadata.get(APPLICATION_NAME).map(decode_name),
            user_id: get(USER_IDENTITY),
            device_id: get(DEVICE_IDENTITY),
            service_id: get(SERVICE_IDENTITY),
            domain_id: get(DOMAIN_IDENTITY),
            system_id: get(SYSTEM_IDENTITY),
            user_token: get(USER_TOKEN),
            device_token: get(DEVICE_TOKEN),
            admin_id: get(ADMIN_ID),
        }
    }

    /// The keys and their wire values (`application_name` base64-encoded),
    /// for a call that forwards this identity.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let mut put = |key, value: &Option<String>| {
            if let Some(v) = value {
                pairs.push((key, v.clone()));
            }
        };
        put(APPLICATION_IDENTITY, &self.application_id);
        put(USER_IDENTITY, &self.user_id);
        put(DEVICE_IDENTITY, &self.device_id);
        put(SERVICE_IDENTITY, &self.service_id);
        put(DOMAIN_IDENTITY, &self.domain_id);
        put(SYSTEM_IDENTITY, &self.system_id);
        put(USER_TOKEN, &self.user_token);
        put(DEVICE_TOKEN, &self.device_token);
        put(ADMIN_ID, &self.admin_id);
        if let Some(name) = &self.application_name {
            pairs.push((
                APPLICATION_NAME,
                base64::engine::general_purpose::STANDARD.encode(name),
            ));
        }
        pairs
    }
}

impl fmt::Debug for Identity {
    /// Tokens are shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "***");
        f.debug_struct("Identity")
            .field("application_id", &self.application_id)
            .field("application_name", &self.application_name)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("service_id", &self.service_id)
            .field("domain_id", &self.domain_id)
            .field("system_id", &self.system_id)
            .field("user_token", &hidden(&self.user_token))
            .field("device_token", &hidden(&self.device_token))
            .field("admin_id", &self.admin_id)
            .finish()
    }
}

fn decode_name(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// W3C Trace Context of a call (`traceparent`, `tracestate`), to forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`
    pub traceparent: Option<String>,
    /// `tracestate`
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The trace context of `metadata`.
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            traceparent: metadata.get(TRACEPARENT).map(str::to_owned),
            tracestate: metadata.get(TRACESTATE).map(str::to_owned),
        }
    }
}

/// What one call forwards from the request being handled to the next:
/// its request id, identity keys and trace context. Take it as a handler
/// argument and hand it to [`Call::forward`](super::Call::forward).
#[derive(Debug, Clone, Default)]
pub struct Forward {
    /// The request id.
    pub request_id: Option<RequestId>,
    /// The identity keys.
    pub identity: Identity,
    /// The trace context.
    pub trace: TraceContext,
}

impl Forward {
    /// What `metadata` forwards.
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            request_id: metadata
                .get(REQUEST_ID)
                .filter(|id| !id.is_empty())
                .map(RequestId::from_string),
            identity: Identity::of(metadata),
            trace: TraceContext::of(metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &[u8; 16] = b"0123456789abcdef";

    fn metadata(pairs: &[(&'static str, &str)]) -> Metadata {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, v.parse().unwrap());
        }
        Metadata::from_headers(headers)
    }

    #[test]
    fn a_new_request_id_is_32_hex_digits() {
        let a = RequestId::new();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|b| HEX.contains(&b)));
        assert_ne!(a, RequestId::new());
        let given = metadata(&[(REQUEST_ID, "abc"), (REQUEST_ID, "def")]);
        assert_eq!(RequestId::of(&given).as_str(), "abc", "the first value");
        assert_eq!(RequestId::of(&metadata(&[])).as_str().len(), 32);
    }

    #[test]
    fn identity_reads_every_key_and_round_trips_the_name() {
        let md = metadata(&[
            (APPLICATION_IDENTITY, "7"),
            (APPLICATION_NAME, "bXktYXBw"), // "my-app"
            (USER_IDENTITY, "42"),
            (USER_TOKEN, "secret-token"),
            (ADMIN_ID, "1"),
        ]);
        let identity = Identity::of(&md);
        assert_eq!(identity.application_id.as_deref(), Some("7"));
        assert_eq!(identity.application_name.as_deref(), Some("my-app"));
        assert_eq!(identity.user_id.as_deref(), Some("42"));
        assert_eq!(identity.admin_id.as_deref(), Some("1"));
        assert!(!format!("{identity:?}").contains("secret-token"));
        let pairs = identity.pairs();
        assert!(pairs.contains(&(APPLICATION_NAME, "bXktYXBw".to_owned())));
        assert!(pairs.contains(&(USER_TOKEN, "secret-token".to_owned())));
        let plain = Identity::of(&metadata(&[(APPLICATION_NAME, "not base64!")]));
        assert_eq!(plain.application_name.as_deref(), Some("not base64!"));
    }

    #[test]
    fn iter_leaves_out_binary_keys() {
        let md = metadata(&[("a", "1"), ("grpc-status-details-bin", "AAAA")]);
        let keys: Vec<_> = md.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a"]);
    }
}
