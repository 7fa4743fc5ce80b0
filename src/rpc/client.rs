//! Calling a required module over isp RPC: round robin over its live
//! hosts, as isp-kit's gRPC client does.
//!
//! Go: `isp-kit/grpc/client` (`client.Default()`, `Invoke(endpoint)
//! .JsonRequestBody(..).ReadJsonResponse(..).Do(ctx)`), registered with
//! `RequireModule(name, cli)` as the module's hosts upgrader.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use http::uri::PathAndQuery;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

use super::codec::IspCodec;
use super::error::{Code, ErrorDetail};
use super::message::Message;
use super::metadata::{Forward, Identity, RequestId, TraceContext, PROXY_METHOD_NAME, REQUEST_ID};
use super::metrics::{self, Label};
use super::server::{DEFAULT_MAX_MESSAGE_SIZE, REQUEST_PATH};
use crate::lb::{HostsUpgrader, NoHostsToBalance, RoundRobin};

/// A call's timeout by default: 15 s, as isp-kit's client.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a connection to one host may take by default before the next
/// host is tried.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How close to a call's deadline a `Cancelled` from tonic's own timer is
/// taken for the deadline passing.
const DEADLINE_SLACK: Duration = Duration::from_millis(20);

/// Why a call failed. [`code`](Self::code) is the gRPC code;
/// [`detail`](Self::detail) isp-kit's error code, message and details when
/// the server sent them.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The module has no live host; nothing was tried (`Unavailable`).
    NoHosts(NoHostsToBalance),
    /// The request could not be made: its body did not serialize, or a
    /// metadata key or value is not valid (`Internal`); nothing was sent.
    InvalidRequest {
        /// The required module.
        module: String,
        /// What was wrong.
        reason: String,
    },
    /// Every host refused or failed the connection (`Unavailable`);
    /// nothing was sent.
    Unreachable {
        /// The required module.
        module: String,
        /// Each host tried and why it was skipped.
        tried: Vec<(String, String)>,
    },
    /// The call's timeout passed (`DeadlineExceeded`).
    Timeout {
        /// The required module.
        module: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server answered with an error status, or the exchange broke
    /// after the request was sent (not retried: the server may have acted).
    Status {
        /// The required module.
        module: String,
        /// The host that answered.
        host: String,
        /// The gRPC code.
        code: Code,
        /// The status message.
        message: String,
        /// isp-kit's error (`apierrors.Error`) from the status detail.
        detail: Option<ErrorDetail>,
    },
    /// The response body is not the JSON of the type asked for (`Internal`).
    Decode {
        /// The required module.
        module: String,
        /// The host that answered.
        host: String,
        /// The parser's error.
        source: serde_json::Error,
    },
}

impl CallError {
    /// The gRPC code of the failure.
    pub fn code(&self) -> Code {
        match self {
            Self::NoHosts(_) | Self::Unreachable { .. } => Code::Unavailable,
            Self::InvalidRequest { .. } | Self::Decode { .. } => Code::Internal,
            Self::Timeout { .. } => Code::DeadlineExceeded,
            Self::Status { code, .. } => *code,
        }
    }

    /// isp-kit's error from the status detail, if the server sent one (Go:
    /// `apierrors.FromError`).
    pub fn detail(&self) -> Option<&ErrorDetail> {
        match self {
            Self::Status { detail, .. } => detail.as_ref(),
            _ => None,
        }
    }

    /// isp-kit's error code, if any.
    pub fn error_code(&self) -> Option<i64> {
        self.detail().map(|d| d.error_code)
    }

    /// The status message the server sent, if it answered.
    pub fn status_message(&self) -> Option<&str> {
        match self {
            Self::Status { message, .. } => Some(message),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHosts(e) => e.fmt(f),
            Self::InvalidRequest { module, reason } => {
                write!(f, "invalid call to module {module:?}: {reason}")
            }
            Self::Unreachable { module, tried } => {
                write!(f, "no host of module {module:?} took the call: ")?;
                for (i, (host, why)) in tried.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{host} ({why})")?;
                }
                Ok(())
            }
            Self::Timeout { module, timeout } => {
                write!(f, "call to module {module:?} timed out after {timeout:?}")
            }
            Self::Status {
                module,
                host,
                code,
                message,
                detail,
            } => {
                write!(f, "module {module:?} at {host} answered {code}: {message}")?;
                if let Some(d) = detail {
                    write!(f, " (error code {})", d.error_code)?;
                }
                Ok(())
            }
            Self::Decode { module, host, .. } => write!(
                f,
                "the response of module {module:?} at {host} is not the JSON expected"
            ),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NoHosts(e) => Some(e),
            Self::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Builds an [`RpcClient`]; see [`RpcClient::builder`].
#[must_use]
#[derive(Debug)]
pub struct RpcClientBuilder {
    module: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_message_size: usize,
}

impl RpcClientBuilder {
    /// The default timeout of a call (15 s, as Go).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a connection to one host may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest request and response message (default 64 MiB, as Go).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The client, with no host until the cluster client delivers them.
    pub fn build(self) -> RpcClient {
        RpcClient {
            inner: Arc::new(Inner {
                label: Label::from(Arc::<str>::from(self.module.as_str())),
                pool: RoundRobin::new(self.module),
                channels: Mutex::new(HashMap::new()),
                timeout: self.timeout,
                timeout_value: grpc_timeout_value(self.timeout),
                connect_timeout: self.connect_timeout,
                max_message_size: self.max_message_size,
            }),
        }
    }
}

struct Inner {
    pool: RoundRobin,
    /// The module's name as a metric label.
    label: Label,
    /// One channel per thread and host: a channel's connection task lives
    /// on the runtime that made it, and each actix-web worker has its own.
    channels: Mutex<HashMap<(ThreadId, Arc<str>), Slot>>,
    timeout: Duration,
    /// `grpc-timeout` for `timeout`, written once.
    timeout_value: AsciiMetadataValue,
    connect_timeout: Duration,
    max_message_size: usize,
}

/// The isp RPC client of one required module.
///
/// Go: `grpc/client.Client` (`client.Default()`). Register it as the
/// module's hosts upgrader ([`require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader));
/// clones share the hosts and connections. Each call goes to the next live
/// host, round robin; a host that refuses the connection is skipped and the
/// next one tried (nothing was sent to it); with no live host a call fails
/// at once with [`CallError::NoHosts`]. A host list update never drops a
/// call in flight: the call keeps its connection.
///
/// Calls are futures to run on a tokio runtime (any actix System is one).
///
/// ```no_run
/// use isp_cluster::rpc::{CallError, RpcClient};
///
/// # async fn f(auth: RpcClient) -> Result<(), CallError> {
/// #[derive(serde::Serialize)]
/// struct Check<'a> { token: &'a str }
/// #[derive(serde::Deserialize)]
/// struct Verdict { ok: bool }
///
/// let verdict: Verdict = auth.call("auth/token/check").json(&Check { token: "t" }).send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("module", &self.module())
            .field("hosts", &self.hosts())
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl RpcClient {
    /// A client of `module` with Go's defaults.
    pub fn new(module: impl Into<String>) -> Self {
        Self::builder(module).build()
    }

    /// A builder for a client of `module`.
    pub fn builder(module: impl Into<String>) -> RpcClientBuilder {
        RpcClientBuilder {
            module: module.into(),
            timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// The required module.
    pub fn module(&self) -> &str {
        self.inner.pool.module()
    }

    /// The module's live hosts, as last delivered.
    pub fn hosts(&self) -> Arc<[String]> {
        self.inner.pool.hosts()
    }

    /// A call of `endpoint` (without a leading slash, e.g.
    /// `auth/token/check`).
    pub fn call(&self, endpoint: impl Into<String>) -> CallBuilder {
        CallBuilder {
            client: self.clone(),
            endpoint: endpoint.into(),
            body: Ok(Bytes::new()),
            timeout: self.inner.timeout,
            request_id: None,
            headers: Vec::new(),
        }
    }

    /// The channel to `host` on this thread, connecting when there is
    /// none. Calls that find a connection being made wait for it (and
    /// share its failure) instead of dialling again: a burst of calls
    /// makes one connection, not one each.
    /// The channel to `host` on this thread, if it is made.
    fn ready_channel(&self, host: &Arc<str>) -> Option<Channel> {
        let key = (std::thread::current().id(), host.clone());
        match self.lock().get(&key) {
            Some(Slot::Ready(channel)) => Some(channel.clone()),
            _ => None,
        }
    }

    async fn channel(&self, host: &Arc<str>) -> Result<Channel, String> {
        let key = (std::thread::current().id(), host.clone());
        let connecting = {
            let mut channels = self.lock();
            match channels.get(&key) {
                Some(Slot::Ready(channel)) => return Ok(channel.clone()),
                Some(Slot::Connecting(connecting)) => connecting.clone(),
                None => {
                    let connecting = self.connect(host).boxed().shared();
                    channels.insert(key.clone(), Slot::Connecting(connecting.clone()));
                    connecting
                }
            }
        };
        let result = connecting.clone().await;
        // The first caller back settles the slot, unless an update dropped
        // the host meanwhile (its slot is gone) or replaced the slot.
        let listed = self.hosts().iter().any(|h| **h == **host);
        let mut channels = self.lock();
        if let Some(Slot::Connecting(slot)) = channels.get(&key) {
            if slot.ptr_eq(&connecting) {
                match &result {
                    Ok(channel) if listed => {
                        channels.insert(key, Slot::Ready(channel.clone()));
                    }
                    _ => {
                        channels.remove(&key);
                    }
                }
            }
        }
        result
    }

    fn connect(
        &self,
        host: &Arc<str>,
    ) -> impl Future<Output = Result<Channel, String>> + Send + 'static {
        let endpoint = Endpoint::from_shared(format!("http://{host}")).map(|e| {
            e.connect_timeout(self.inner.connect_timeout)
                .tcp_nodelay(true)
        });
        async move {
            let endpoint = endpoint.map_err(|_| "not a valid address".to_owned())?;
            endpoint
                .connect()
                .await
                .map_err(|e| crate::ErrorChain(&e).to_string())
        }
    }

    fn forget(&self, host: &Arc<str>) {
        let key = (std::thread::current().id(), host.clone());
        self.lock().remove(&key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(ThreadId, Arc<str>), Slot>> {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A host's connection on one thread: made, or being made.
enum Slot {
    Ready(Channel),
    Connecting(Shared<BoxFuture<'static, Result<Channel, String>>>),
}

impl HostsUpgrader for RpcClient {
    /// Replaces the hosts; connections to hosts no longer listed are
    /// dropped once the calls using them finish. Go: `(*Client).Upgrade`.
    fn upgrade(&self, hosts: &[String]) {
        self.inner.pool.upgrade(hosts);
        let gone: Vec<Slot> = {
            let mut channels = self.lock();
            let keys: Vec<_> = channels
                .keys()
                .filter(|(_, h)| !hosts.iter().any(|listed| **listed == **h))
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| channels.remove(&k))
                .collect()
        };
        drop(gone); // after the lock
    }
}

/// One call being made; see [`RpcClient::call`].
#[must_use = "a call does nothing until `send`"]
pub struct CallBuilder {
    client: RpcClient,
    endpoint: String,
    body: Result<Bytes, String>,
    timeout: Duration,
    request_id: Option<RequestId>,
    headers: Vec<(String, String)>,
}

impl fmt::Debug for CallBuilder {
    /// Never the body or the metadata values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallBuilder")
            .field("module", &self.client.module())
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CallBuilder {
    /// The request body, as JSON (Go: `JsonRequestBody`).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|e| format!("the body does not serialize: {e}"));
        self
    }

    /// The request body as JSON text already made.
    pub fn raw_json(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Ok(body.into());
        self
    }

    /// This call's timeout (default: the client's, 15 s), sent as
    /// `grpc-timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The request id to send. Without one, the id of the request being
    /// handled (when called from a handler's own future) is sent, else a
    /// new one.
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Adds a metadata key and value (Go: `AppendMetadata`).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// Sends these identity keys.
    pub fn identity(mut self, identity: &Identity) -> Self {
        self.headers
            .extend(identity.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)));
        self
    }

    /// Sends this trace context.
    pub fn trace(mut self, trace: &TraceContext) -> Self {
        if let Some(v) = &trace.traceparent {
            self.headers
                .push((super::metadata::TRACEPARENT.to_owned(), v.clone()));
        }
        if let Some(v) = &trace.tracestate {
            self.headers
                .push((super::metadata::TRACESTATE.to_owned(), v.clone()));
        }
        self
    }

    /// Forwards the request id, identity keys and trace context of the
    /// request being handled.
    pub fn forward(mut self, forward: &Forward) -> Self {
        if let Some(id) = &forward.request_id {
            self.request_id = Some(id.clone());
        }
        self.identity(&forward.identity).trace(&forward.trace)
    }

    /// Sends the call and reads the JSON response as `R` (Go:
    /// `ReadJsonResponse`). An empty response reads as JSON `null`.
    pub async fn send<R: DeserializeOwned>(self) -> Result<R, CallError> {
        let client = self.client.clone();
        let (host, body) = self.exchange().await?;
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        serde_json::from_slice(body).map_err(|source| CallError::Decode {
            module: client.module().to_owned(),
            host: host.to_string(),
            source,
        })
    }

    /// Sends the call and returns the response body as it came (JSON or
    /// empty).
    pub async fn send_raw(self) -> Result<Bytes, CallError> {
        self.exchange().await.map(|(_, body)| body)
    }

    async fn exchange(self) -> Result<(Arc<str>, Bytes), CallError> {
        let started = Instant::now();
        let CallBuilder {
            client,
            endpoint,
            body,
            timeout,
            request_id,
            headers,
        } = self;
        let request_id = request_id
            .or_else(|| super::CURRENT_REQUEST_ID.try_with(Clone::clone).ok())
            .unwrap_or_default();
        let request = Outgoing {
            endpoint: &endpoint,
            request_id: &request_id,
            headers: &headers,
        };
        let result = match request.metadata().and_then(|m| body.map(|b| (m, b))) {
            Err(reason) => Err(CallError::InvalidRequest {
                module: client.module().to_owned(),
                reason,
            }),
            Ok((metadata, body)) => {
                let attempts = client.attempts(&request, metadata, body, (started, timeout));
                match tokio::time::timeout(timeout, attempts).await {
                    Ok(result) => result,
                    Err(_) => Err(CallError::Timeout {
                        module: client.module().to_owned(),
                        timeout,
                    }),
                }
            }
        };
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        };
        if let Err(e) = &result {
            log::warn!(
                "[module={}] [endpoint={endpoint}] [requestId={request_id}] rpc call failed: {e}",
                client.module()
            );
        }
        let endpoint = Label::from(endpoint);
        metrics::client_call(&client.inner.label, &endpoint, code, started.elapsed());
        result
    }
}

/// What a call sends beside its body.
struct Outgoing<'a> {
    endpoint: &'a str,
    request_id: &'a RequestId,
    headers: &'a [(String, String)],
}

impl Outgoing<'_> {
    fn metadata(&self) -> Result<MetadataMap, String> {
        // Room for what tonic adds (grpc-timeout, te, content-type, user-agent).
        let mut map = MetadataMap::with_capacity(8 + self.headers.len());
        let value = |key: &str, value: &str| {
            AsciiMetadataValue::try_from(value)
                .map_err(|_| format!("the value of metadata key {key:?} is not valid text"))
        };
        map.insert(
            AsciiMetadataKey::from_static(PROXY_METHOD_NAME),
            value(PROXY_METHOD_NAME, self.endpoint)?,
        );
        // New with every call: never worth a place in HPACK's table, where
        // it would push out the keys that repeat.
        let mut id = value(REQUEST_ID, self.request_id.as_str())?;
        id.set_sensitive(true);
        map.insert(AsciiMetadataKey::from_static(REQUEST_ID), id);
        for (k, v) in self.headers {
            if k.eq_ignore_ascii_case(REQUEST_ID) || k.eq_ignore_ascii_case(PROXY_METHOD_NAME) {
                continue;
            }
            let key = AsciiMetadataKey::from_bytes(k.as_bytes())
                .map_err(|_| format!("metadata key {k:?} is not valid"))?;
            map.append(key, value(k, v)?);
        }
        Ok(map)
    }
}

impl RpcClient {
    /// Tries the hosts from the next one on, moving past those that refuse.
    async fn attempts(
        &self,
        request: &Outgoing<'_>,
        metadata: MetadataMap,
        body: Bytes,
        (started, timeout): (Instant, Duration),
    ) -> Result<(Arc<str>, Bytes), CallError> {
        let module = || self.module().to_owned();
        let (hosts, start) = self.inner.pool.pick().map_err(CallError::NoHosts)?;
        let deadline = started + timeout;
        let mut tried = Vec::new();
        let mut metadata = Some(metadata);
        for i in 0..hosts.len() {
            let host = &hosts[(start + i) % hosts.len()];
            let (channel, connected) = match self.ready_channel(host) {
                Some(channel) => (channel, false),
                None => match self.channel(host).await {
                    Ok(channel) => (channel, true),
                    Err(why) => {
                        tried.push((host.to_string(), why));
                        continue;
                    }
                },
            };
            let mut call = tonic::Request::new(Message::json(body.clone()));
            let mut sent = match metadata.take() {
                Some(metadata) => metadata,
                // Made again for a later host: it was valid the first time.
                None => request.metadata().unwrap_or_default(),
            };
            // The call's timeout as set when nothing was waited for before
            // this host (the usual case), else the time left: a value that
            // repeats costs HPACK one byte once indexed, the time left a new
            // literal with every call. The timer here keeps the exact
            // deadline either way.
            let value = if connected || i > 0 {
                grpc_timeout_value(deadline.saturating_duration_since(Instant::now()))
            } else if timeout == self.inner.timeout {
                self.inner.timeout_value.clone()
            } else {
                grpc_timeout_value(timeout)
            };
            sent.insert(AsciiMetadataKey::from_static("grpc-timeout"), value);
            *call.metadata_mut() = sent;
            let limit = self.inner.max_message_size;
            let mut grpc = tonic::client::Grpc::new(channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit);
            let outcome = async {
                grpc.ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(crate::ErrorChain(&e).to_string()))?;
                grpc.unary(
                    call,
                    PathAndQuery::from_static(REQUEST_PATH),
                    IspCodec::CLIENT,
                )
                .await
            }
            .await;
            match outcome {
                Ok(response) => return Ok((host.clone(), response.into_inner().into_json())),
                Err(status) => {
                    // tonic's own timer on the same deadline says Cancelled.
                    if status.code() == tonic::Code::Cancelled
                        && Instant::now() + DEADLINE_SLACK >= deadline
                    {
                        return Err(CallError::Timeout {
                            module: module(),
                            timeout,
                        });
                    }
                    if refused(&status) {
                        // Nothing reached the host: the next one may take it.
                        self.forget(host);
                        tried.push((host.to_string(), status.message().to_owned()));
                        continue;
                    }
                    if status.code() == tonic::Code::Unavailable
                        || status.code() == tonic::Code::Unknown
                    {
                        // A broken connection: dial afresh next time.
                        self.forget(host);
                    }
                    return Err(CallError::Status {
                        module: module(),
                        host: host.to_string(),
                        code: Code::from_tonic(status.code()),
                        message: status.message().to_owned(),
                        detail: ErrorDetail::from_status_details(status.details()),
                    });
                }
            }
        }
        Err(CallError::Unreachable {
            module: module(),
            tried,
        })
    }
}

/// A `grpc-timeout` value, written as Go writes it.
fn grpc_timeout_value(timeout: Duration) -> AsciiMetadataValue {
    let text = super::server::format_grpc_timeout(timeout);
    // Digits and a unit letter: always a valid value.
    AsciiMetadataValue::try_from(text.as_str())
        .unwrap_or_else(|_| AsciiMetadataValue::from_static("0n"))
}

/// Whether a failed call never reached the host: its connection was
/// refused (a cached connection whose host went away).
fn refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = error.source();
    }
    false
}
