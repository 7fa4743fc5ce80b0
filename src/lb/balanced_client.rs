//! The balanced HTTP client: each request to the next live host of a
//! required module, over awc, moving on only from hosts that refuse.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use actix_http::{BoxedPayloadStream, Payload};
use awc::error::{ConnectError, SendRequestError};
use awc::http::header::{self, HeaderMap, HeaderValue, TryIntoHeaderPair};
use awc::http::uri::{PathAndQuery, Scheme, Uri};
use awc::http::Method;
use awc::{ClientResponse, Connector};
use bytes::Bytes;
use serde::Serialize;

use super::{NoHostsToBalance, RoundRobin};
use crate::request_id::{new_request_id, REQUEST_ID_HEADER};

/// How long a whole request may take by default, across every host it
/// tries and until the response body is read.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TCP connect to one host may take by default before the next
/// host is tried. Short: on a cluster network a live host answers a connect
/// in well under a millisecond, and the request timeout is for the request.
pub const DEFAULT_HOST_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a host was skipped: nothing of the request reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The host refused the TCP connection (nothing listens there).
    Refused,
    /// The TCP connect did not complete within the connect timeout.
    Timeout,
    /// The address is not `host:port` (so it came from the config-service).
    InvalidAddress,
}

impl ConnectFailure {
    /// The failures that let a request move on: those before any byte of it
    /// was sent.
    fn of(error: &SendRequestError) -> Option<Self> {
        match error {
            SendRequestError::Connect(ConnectError::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                Some(Self::Refused)
            }
            SendRequestError::Connect(ConnectError::Timeout) => Some(Self::Timeout),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Refused => "connection refused",
            Self::Timeout => "connect timed out",
            Self::InvalidAddress => "not a valid address",
        })
    }
}

/// Why a balanced request failed; every variant names the module.
#[derive(Debug)]
#[non_exhaustive]
pub enum BalancedError {
    /// The module has no live instance; nothing was tried.
    NoHosts(NoHostsToBalance),
    /// The request could not be built (a path or header that is not valid
    /// HTTP, a body that does not encode); nothing was tried.
    InvalidRequest {
        /// The required module.
        module: String,
        /// What was wrong.
        reason: String,
    },
    /// No host took the request: each refused the connection, did not
    /// accept it within the connect timeout, or was not an address.
    Unreachable {
        /// The required module.
        module: String,
        /// Each host tried, in order, and why it was skipped.
        tried: Vec<(String, ConnectFailure)>,
    },
    /// The request timeout passed (connect, send, response head or body).
    Timeout {
        /// The required module.
        module: String,
        /// The request timeout.
        timeout: Duration,
        /// The hosts tried, in order; the last one was in progress.
        tried: Vec<String>,
    },
    /// A host accepted the connection and then the exchange failed. Not
    /// retried elsewhere: the host may have acted on the request.
    Send {
        /// The required module.
        module: String,
        /// The host the request went to.
        host: String,
        /// What awc reported.
        source: SendRequestError,
    },
}

impl BalancedError {
    /// Its `outcome` label in [`crate::metrics::LB_REQUESTS`].
    fn outcome(&self) -> &'static str {
        match self {
            Self::NoHosts(_) => "no_hosts",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Send { .. } => "send_error",
        }
    }
}

impl fmt::Display for BalancedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHosts(e) => e.fmt(f),
            Self::InvalidRequest { module, reason } => {
                write!(f, "invalid request to module {module:?}: {reason}")
            }
            Self::Unreachable { module, tried } => {
                write!(f, "no host of module {module:?} accepted the connection: ")?;
                for (i, (host, failure)) in tried.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{host} ({failure})")?;
                }
                Ok(())
            }
            Self::Timeout {
                module,
                timeout,
                tried,
            } => write!(
                f,
                "request to module {module:?} timed out after {timeout:?} (hosts tried: {})",
                tried.join(", ")
            ),
            Self::Send {
                module,
                host,
                source,
            } => write!(f, "request to module {module:?} at {host} failed: {source}"),
        }
    }
}

impl std::error::Error for BalancedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NoHosts(e) => Some(e),
            Self::Send { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<NoHostsToBalance> for BalancedError {
    fn from(e: NoHostsToBalance) -> Self {
        Self::NoHosts(e)
    }
}

/// Builds a [`BalancedClient`]; see [`BalancedClient::builder`].
#[must_use]
pub struct BalancedClientBuilder {
    pool: RoundRobin,
    https: bool,
    timeout: Duration,
    connect_timeout: Duration,
    client: Option<awc::Client>,
}

impl fmt::Debug for BalancedClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedClientBuilder")
            .field("module", &self.pool.module())
            .field("https", &self.https)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("own_client", &self.client.is_some())
            .finish()
    }
}

impl BalancedClientBuilder {
    /// Sends to `https://` instead of `http://`. awc needs a TLS feature for
    /// it (`rustls-0_23` or `openssl` in your own `awc` dependency; features
    /// unify), else every request fails with "SSL is not supported".
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// The bound on a whole request, across the hosts it tries, until the
    /// response body is read (default 5 s); each request may override it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on one TCP connect before the next host is tried (default
    /// 1 s). Keep it below the request timeout, else a host that does not
    /// answer uses up the whole request.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sends through this awc client (its connector: TLS, pool limits, its
    /// own connect timeout, which then replaces
    /// [`connect_timeout`](Self::connect_timeout)).
    pub fn client(mut self, client: awc::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The client.
    pub fn build(self) -> BalancedClient {
        let connect_timeout = self.connect_timeout;
        let awc = self.client.unwrap_or_else(|| {
            awc::Client::builder()
                .connector(Connector::new().timeout(connect_timeout))
                // Every request sets its own, from the balanced deadline.
                .disable_timeout()
                .finish()
        });
        BalancedClient {
            pool: self.pool,
            awc,
            scheme: if self.https {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            timeout: self.timeout,
        }
    }
}

/// An HTTP client that sends each request to the next live host of a
/// required module.
///
/// Go: `httpclix.ClientBalancer`. The addresses come from a [`RoundRobin`]
/// pool, which is the upgrader registered with the cluster client; the
/// client itself holds an awc client, which lives on one thread, so make
/// one per actix-web worker from a clone of the shared pool.
///
/// A request goes to `http://{next host}{path}`. When that host refuses the
/// connection or does not accept it within the connect timeout — nothing of
/// the request was sent — the request moves on to the following host of
/// the same list, each host at most once, and when all have failed returns
/// one [`BalancedError::Unreachable`] naming the module and every host
/// tried. Any later failure is returned at once: the host may have acted
/// on the request. An update of the pool does not touch requests in
/// flight: each keeps the list it started with.
///
/// ```no_run
/// use isp_cluster::lb::{BalancedClient, RoundRobin};
///
/// # async fn call(auth: RoundRobin) -> Result<(), Box<dyn std::error::Error>> {
/// let client = BalancedClient::new(auth); // auth: registered with require_module_upgrader
/// let mut response = client.post("/api/token").send_body("user=ann").await?;
/// let body = response.body().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BalancedClient {
    pool: RoundRobin,
    awc: awc::Client,
    scheme: Scheme,
    timeout: Duration,
}

impl fmt::Debug for BalancedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedClient")
            .field("pool", &self.pool)
            .field("scheme", &self.scheme)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BalancedClient {
    /// A client over `pool` with the defaults: `http://`, 5 s per request,
    /// 1 s per connect.
    pub fn new(pool: RoundRobin) -> Self {
        Self::builder(pool).build()
    }

    /// A builder for a client over `pool`.
    pub fn builder(pool: RoundRobin) -> BalancedClientBuilder {
        BalancedClientBuilder {
            pool,
            https: false,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_HOST_CONNECT_TIMEOUT,
            client: None,
        }
    }

    /// The pool this client balances over.
    pub fn pool(&self) -> &RoundRobin {
        &self.pool
    }

    /// A request with `method` to `path` (with its query, starting with `/`).
    pub fn request(&self, method: Method, path: &str) -> BalancedRequest<'_> {
        let (path, invalid) = match PathAndQuery::from_str(path) {
            Ok(parsed) if path.starts_with('/') => (parsed, None),
            Ok(_) => (
                PathAndQuery::from_static("/"),
                Some(format!("path {path:?} does not start with /")),
            ),
            Err(e) => (
                PathAndQuery::from_static("/"),
                Some(format!("path {path:?} is not valid: {e}")),
            ),
        };
        BalancedRequest {
            client: self,
            method,
            path,
            headers: HeaderMap::new(),
            timeout: self.timeout,
            invalid,
        }
    }

    /// A `GET` request to `path`.
    pub fn get(&self, path: &str) -> BalancedRequest<'_> {
        self.request(Method::GET, path)
    }

    /// A `POST` request to `path`.
    pub fn post(&self, path: &str) -> BalancedRequest<'_> {
        self.request(Method::POST, path)
    }

    /// A `PUT` request to `path`.
    pub fn put(&self, path: &str) -> BalancedRequest<'_> {
        self.request(Method::PUT, path)
    }

    /// A `DELETE` request to `path`.
    pub fn delete(&self, path: &str) -> BalancedRequest<'_> {
        self.request(Method::DELETE, path)
    }
}

/// One request of a [`BalancedClient`], sent by one of the `send` methods.
/// Its body is bytes (not a stream), so that it can go to another host
/// after a refusal.
#[must_use = "a request does nothing until sent"]
pub struct BalancedRequest<'a> {
    client: &'a BalancedClient,
    method: Method,
    path: PathAndQuery,
    headers: HeaderMap,
    timeout: Duration,
    invalid: Option<String>,
}

impl fmt::Debug for BalancedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedRequest")
            .field("module", &self.client.pool.module())
            .field("method", &self.method)
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BalancedRequest<'_> {
    /// Sets a header, replacing any of the same name.
    pub fn insert_header(mut self, header: impl TryIntoHeaderPair) -> Self {
        match header.try_into_pair() {
            Ok((name, value)) => {
                self.headers.insert(name, value);
            }
            Err(e) => {
                let e: awc::error::HttpError = e.into();
                self.invalid
                    .get_or_insert_with(|| format!("invalid header: {e}"));
            }
        }
        self
    }

    /// This request's timeout, instead of the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `x-request-id` to send: pass on the id of the request being
    /// handled (an HTTP request's header, an isp RPC handler's
    /// `rpc::RequestId`). Without one (and no such
    /// header set), a new one is sent: 16 random bytes as 32 hex digits,
    /// as isp-kit's clients do.
    pub fn request_id(self, id: &str) -> Self {
        self.insert_header((REQUEST_ID_HEADER, id))
    }

    /// Sends the request without a body.
    pub async fn send(self) -> Result<ClientResponse, BalancedError> {
        self.dispatch(None).await
    }

    /// Sends the request with `body`.
    pub async fn send_body(self, body: impl Into<Bytes>) -> Result<ClientResponse, BalancedError> {
        self.dispatch(Some(body.into())).await
    }

    /// Sends `value` as JSON (`Content-Type: application/json` unless set).
    pub async fn send_json<T: Serialize + ?Sized>(
        mut self,
        value: &T,
    ) -> Result<ClientResponse, BalancedError> {
        let body = match serde_json::to_vec(value) {
            Ok(body) => body,
            Err(e) => {
                return Err(BalancedError::InvalidRequest {
                    module: self.client.pool.module().to_owned(),
                    reason: format!("the body does not encode as JSON: {e}"),
                })
            }
        };
        if !self.headers.contains_key(header::CONTENT_TYPE) {
            self.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        self.dispatch(Some(body.into())).await
    }

    async fn dispatch(mut self, body: Option<Bytes>) -> Result<ClientResponse, BalancedError> {
        if !self.headers.contains_key(REQUEST_ID_HEADER) {
            if let Ok(id) = HeaderValue::from_str(&new_request_id()) {
                self.headers
                    .insert(header::HeaderName::from_static(REQUEST_ID_HEADER), id);
            }
        }
        let module = self.client.pool.module();
        let result = self.try_hosts(body).await;
        crate::metrics::lb_request(
            module,
            result
                .as_ref()
                .map_or_else(BalancedError::outcome, |_| "ok"),
        );
        result
    }

    async fn try_hosts(self, body: Option<Bytes>) -> Result<ClientResponse, BalancedError> {
        let client = self.client;
        let module = || client.pool.module().to_owned();
        if let Some(reason) = self.invalid {
            return Err(BalancedError::InvalidRequest {
                module: module(),
                reason,
            });
        }
        let (hosts, start) = client.pool.pick()?;
        // A timeout too large for the clock is no deadline at all.
        let deadline = Instant::now().checked_add(self.timeout);
        let mut skipped: Vec<(String, ConnectFailure)> = Vec::new();
        let timed_out =
            |skipped: &[(String, ConnectFailure)], host: Option<&str>| BalancedError::Timeout {
                module: module(),
                timeout: self.timeout,
                tried: skipped
                    .iter()
                    .map(|(h, _)| h.as_str())
                    .chain(host)
                    .map(str::to_owned)
                    .collect(),
            };
        for i in 0..hosts.len() {
            let host = &hosts[(start + i) % hosts.len()];
            // Built from parts: parsing one URL string per request costs
            // more than the rest of the balancing together.
            let uri = Uri::builder()
                .scheme(client.scheme.clone())
                .authority(&**host)
                .path_and_query(self.path.clone())
                .build();
            let uri = match uri {
                Ok(uri) => uri,
                Err(e) => {
                    // From the config-service, not the caller: nothing was
                    // sent, so the next host may serve.
                    log::warn!(
                        "module {:?}: host {host:?} is not an address: {e}",
                        client.pool.module()
                    );
                    crate::metrics::lb_host_skipped(client.pool.module());
                    skipped.push((host.to_string(), ConnectFailure::InvalidAddress));
                    continue;
                }
            };
            let mut request = client.awc.request(self.method.clone(), uri);
            if let Some(deadline) = deadline {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(timed_out(&skipped, None));
                }
                request = request.timeout(remaining);
            }
            for (name, value) in &self.headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            let sent = match &body {
                Some(body) => request.send_body(body.clone()).await,
                None => request.send().await,
            };
            match sent {
                Ok(response) => return Ok(with_boxed_body(response)),
                Err(SendRequestError::Timeout) => return Err(timed_out(&skipped, Some(host))),
                Err(error) => match ConnectFailure::of(&error) {
                    Some(failure) => {
                        crate::metrics::lb_host_skipped(client.pool.module());
                        skipped.push((host.to_string(), failure));
                    }
                    None => {
                        return Err(BalancedError::Send {
                            module: module(),
                            host: host.to_string(),
                            source: error,
                        })
                    }
                },
            }
        }
        Err(BalancedError::Unreachable {
            module: module(),
            tried: skipped,
        })
    }
}

/// awc's response body type depends on its compression features, which an
/// application may turn on for its own awc; boxing it gives one type to name
/// whatever the features.
fn with_boxed_body<S>(response: ClientResponse<S>) -> ClientResponse
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + 'static,
{
    response.map_body(|_, payload| {
        let boxed: BoxedPayloadStream = Box::pin(payload);
        Payload::Stream { payload: boxed }
    })
}
