//! The isp RPC server: `/isp.BackendService/Request` over h2c, dispatched
//! by `proxy_method_name` to the router's handlers.
//!
//! Go: `isp-kit/grpc.Server` with its `Mux` (`grpc.NewServer`,
//! `Upgrade`, `Shutdown`). Each connection goes through
//! [`authority::GoAuthority`](super::authority) before hyper's HTTP/2 sees
//! it, so that isp-kit's Go client (empty `:authority`) is served.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::authority::GoAuthority;
use super::codec::IspCodec;
use super::error::{Code, Error};
use super::handler::Request;
use super::message::Message;
use super::metadata::{
    Metadata, RequestId, GRPC_TIMEOUT_KEY, PROXY_METHOD_NAME, PROXY_METHOD_NAME_KEY, REQUEST_ID_KEY,
};
use super::metrics::{self, Label};
use super::router::Router;
use super::{log_text, CURRENT_REQUEST_ID};
use crate::types::AddressConfiguration;

/// The largest message received or sent by default: 64 MiB, as isp-kit
/// sets for its gRPC server and client.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// How long, after the module left the cluster, the server still answers
/// new calls by default (callers learn the new routes meanwhile).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(1);
/// How long calls in flight may take to finish once new calls are refused,
/// by default; then their connections are dropped.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a handler may run by default, whatever the caller's deadline
/// (Go's client sends 15 s).
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// The full method name of isp's unary call.
pub const REQUEST_PATH: &str = "/isp.BackendService/Request";
/// The full method name of isp's streaming call (answered `Unimplemented`).
pub const REQUEST_STREAM_PATH: &str = "/isp.BackendService/RequestStream";

/// The label of a call whose endpoint the router does not know: a name a
/// peer sent never becomes a label.
pub(crate) const UNROUTED: &str = "(unrouted)";

/// Where the server is in its stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Serving,
    /// Told to stop: still answers new calls until the grace ends.
    Grace,
    /// Refuses new connections and calls; calls in flight finish.
    Draining,
    Stopped,
}

/// Builds an [`RpcServer`]; see [`RpcServer::builder`].
#[must_use]
pub struct RpcServerBuilder {
    router: Router,
    max_message_size: usize,
    stop_grace: Duration,
    drain_timeout: Duration,
    handler_timeout: Duration,
    outer_address: Option<AddressConfiguration>,
    worker_threads: usize,
}

impl fmt::Debug for RpcServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcServerBuilder")
            .field("router", &self.router)
            .field("max_message_size", &self.max_message_size)
            .field("stop_grace", &self.stop_grace)
            .field("drain_timeout", &self.drain_timeout)
            .field("handler_timeout", &self.handler_timeout)
            .field("outer_address", &self.outer_address)
            .field("worker_threads", &self.worker_threads)
            .finish()
    }
}

impl RpcServerBuilder {
    /// The largest request and response message (default 64 MiB, as Go).
    /// A larger request is answered `ResourceExhausted`.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long the server still answers new calls once told to stop
    /// (default 1 s): the cluster client stops it right after leaving the
    /// cluster, and callers need a moment to learn the new routes.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How long calls in flight may take to finish after the grace, while
    /// new ones are refused (default 10 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The longest a handler runs (default 60 s); a caller's shorter
    /// `grpc-timeout` wins. Its end drops the handler's future and answers
    /// `DeadlineExceeded`.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// The address other modules reach this server at, when it is not the
    /// one it listens on (Go: `grpcOuterAddress`; a container's published
    /// address). The cluster client declares it.
    pub fn outer_address(mut self, address: AddressConfiguration) -> Self {
        self.outer_address = Some(address);
        self
    }

    /// The server's own runtime threads (default: the number of CPUs, at
    /// most 4). The server runs on a thread pool of its own, beside the
    /// actix System, so that it can keep answering while that System stops.
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }

    /// Binds `addr` and starts serving. Errors: the address does not
    /// resolve or cannot be bound, or the runtime cannot start.
    pub fn bind(self, addr: impl ToSocketAddrs) -> io::Result<RpcServer> {
        let listener = StdTcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let declared = match self.outer_address {
            Some(outer) => outer,
            None => AddressConfiguration::from(local_addr),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .thread_name("isp-rpc-server")
            .enable_all()
            .build()?;
        let stage = Arc::new(watch::channel(Stage::Serving).0);
        let stages = stage.clone();
        // Subscribed before the thread runs: a stop right after `bind`
        // is not missed.
        let mut stage_rx = stage.subscribe();
        stage_rx.mark_changed();
        let settings = Arc::new(Settings {
            router: self.router.clone(),
            max_message_size: self.max_message_size,
            handler_timeout: self.handler_timeout,
        });
        let timing = (self.stop_grace, self.drain_timeout);
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let thread = std::thread::Builder::new()
            .name("isp-rpc-server".into())
            .spawn(move || {
                runtime.block_on(serve(listener, settings, stages, stage_rx, timing));
                // Tasks left (connections past the drain timeout) end here.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        log::info!("isp rpc server listening on {local_addr}, declared at {declared}");
        Ok(RpcServer {
            inner: Arc::new(Inner {
                router: self.router,
                local_addr,
                declared,
                stop_grace: self.stop_grace,
                stage,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

struct Inner {
    router: Router,
    local_addr: SocketAddr,
    declared: AddressConfiguration,
    stop_grace: Duration,
    stage: Arc<watch::Sender<Stage>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop without grace, and let the thread
        // end on its own.
        self.stage.send_if_modified(|s| advance(s, Stage::Draining));
    }
}

/// A running isp RPC server.
///
/// Go: `grpc.Server` of isp-kit. A handle: clones control the same server,
/// and the last one dropped stops it (without grace). Register it with the
/// cluster client ([`ClusterClientBuilder::rpc`](crate::ClusterClientBuilder::rpc))
/// so that the module declares the router's endpoints at this server's
/// address, and stops in isp-kit's order: the client leaves the cluster
/// first, then this server answers for the [grace](RpcServerBuilder::stop_grace),
/// then refuses new calls and lets those in flight finish.
///
/// ```
/// use isp_cluster::rpc::{Error, Json, Router, RpcServer};
///
/// async fn echo(Json(body): Json<serde_json::Value>) -> Result<serde_json::Value, Error> {
///     Ok(body)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let server = RpcServer::builder(Router::new().route("demo/echo", echo))
///     .bind("127.0.0.1:0")
///     .unwrap();
/// println!("serving at {}", server.local_addr());
/// server.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct RpcServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcServer")
            .field("local_addr", &self.inner.local_addr)
            .field("declared", &self.inner.declared)
            .field("stage", &*self.inner.stage.borrow())
            .finish()
    }
}

impl RpcServer {
    /// A builder serving `router`, with Go's limits.
    pub fn builder(router: Router) -> RpcServerBuilder {
        RpcServerBuilder {
            router,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            stop_grace: DEFAULT_STOP_GRACE,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            outer_address: None,
            worker_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The address declared to the cluster: the
    /// [outer address](RpcServerBuilder::outer_address), else the one it
    /// listens on.
    pub fn declared_address(&self) -> &AddressConfiguration {
        &self.inner.declared
    }

    /// The router it serves.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Begins the stop: new calls are still answered for the grace, then
    /// refused, and calls in flight finish (within the drain timeout).
    /// Returns at once; [`stopped`](Self::stopped) waits. Repeated calls
    /// change nothing.
    pub fn stop(&self) {
        if self
            .inner
            .stage
            .send_if_modified(|s| advance(s, Stage::Grace))
        {
            log::info!(
                "isp rpc server on {}: stopping (answering for {:?} more, then draining)",
                self.inner.local_addr,
                self.inner.stop_grace
            );
        }
    }

    /// Begins the stop without the grace: new calls are refused at once.
    pub fn stop_now(&self) {
        self.inner
            .stage
            .send_if_modified(|s| advance(s, Stage::Draining));
    }

    /// Whether the server still takes new calls (serving or in its grace).
    pub fn is_accepting(&self) -> bool {
        *self.inner.stage.borrow() <= Stage::Grace
    }

    /// Resolves once the server stopped: it refuses connections and no
    /// call is in flight (or the drain timeout passed).
    pub async fn stopped(&self) {
        let mut stage = self.inner.stage.subscribe();
        let _ = stage.wait_for(|s| *s == Stage::Stopped).await;
    }

    /// [`stop`](Self::stop), then [`stopped`](Self::stopped).
    pub async fn shutdown(&self) {
        self.stop();
        self.stopped().await;
    }

    /// Blocks the thread until the server stopped or `timeout` passed;
    /// `true` when it stopped. For a `main` that returns after its actix
    /// System ended (calls in flight then still finish).
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let handle = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return *self.inner.stage.borrow() == Stage::Stopped;
        };
        let deadline = Instant::now() + timeout;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                *self
                    .inner
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(handle);
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = handle.join();
        true
    }
}

/// Moves `stage` forward to `to`; `true` when it moved.
fn advance(stage: &mut Stage, to: Stage) -> bool {
    if *stage < to {
        *stage = to;
        true
    } else {
        false
    }
}

struct Settings {
    router: Router,
    max_message_size: usize,
    handler_timeout: Duration,
}

/// Accepts until the stop, then drains.
async fn serve(
    listener: TcpListener,
    settings: Arc<Settings>,
    stages: Arc<watch::Sender<Stage>>,
    mut stage: watch::Receiver<Stage>,
    (grace, drain_timeout): (Duration, Duration),
) {
    let local = listener.local_addr().ok();
    let (drain, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut grace_end: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let grace_over = async {
            match grace_end.as_mut() {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(tcp, peer, settings.clone(), drain_rx.clone()));
                }
                // Out of descriptors and the like: do not spin.
                Err(e) => {
                    log::warn!("isp rpc server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = stage.changed() => {
                // The sender lives as long as this task: never an error.
                let now = if changed.is_err() { Stage::Draining } else { *stage.borrow_and_update() };
                match now {
                    Stage::Serving => {}
                    Stage::Grace => {
                        if grace_end.is_none() {
                            grace_end = Some(Box::pin(tokio::time::sleep(grace)));
                        }
                    }
                    Stage::Draining | Stage::Stopped => break,
                }
            }
            () = grace_over => break,
        }
    }
    // Refuse: no new connection, GOAWAY on each open one (new streams
    // refused, those in flight finish).
    drop(listener);
    // Ignore a closed channel: the server handle may be gone.
    let _ = drain.send(true);
    let in_flight = connections.len();
    if in_flight > 0 {
        log::debug!("isp rpc server: draining {in_flight} connection(s)");
    }
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log::warn!(
            "isp rpc server: {} connection(s) still busy after {drain_timeout:?}: dropped",
            connections.len()
        );
        connections.abort_all();
    }
    if let Some(local) = local {
        log::info!("isp rpc server on {local}: stopped");
    }
    stages.send_replace(Stage::Stopped);
}

/// One h2c connection, through the `:authority` fix.
async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    settings: Arc<Settings>,
    mut drain: watch::Receiver<bool>,
) {
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2.max_header_list_size(MAX_HEADER_LIST_BYTES);
    let service = Service { settings };
    let conn = http2.serve_connection(TokioIo::new(GoAuthority::new(tcp)), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                log::debug!("isp rpc server: connection from {peer} ended: {e}");
            }
            return;
        }
        _ = drain.wait_for(|d| *d) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        log::debug!("isp rpc server: connection from {peer} ended while draining: {e}");
    }
}

/// The largest header block accepted (Go's default: 16 MiB is far more
/// than a call's metadata needs; this bounds memory per connection).
const MAX_HEADER_LIST_BYTES: u32 = 1024 * 1024;

#[derive(Clone)]
struct Service {
    settings: Arc<Settings>,
}

type BoxResponse =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for Service {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let settings = self.settings.clone();
        Box::pin(async move { Ok(route(settings, request).await) })
    }
}

async fn route(
    settings: Arc<Settings>,
    request: http::Request<Incoming>,
) -> http::Response<tonic::body::Body> {
    match request.uri().path() {
        REQUEST_PATH => unary(settings, request).await,
        REQUEST_STREAM_PATH => {
            tonic::Status::unimplemented("service does not support streaming RPC").into_http()
        }
        other => {
            tonic::Status::unimplemented(format!("unknown method {}", log_text(other))).into_http()
        }
    }
}

async fn unary(
    settings: Arc<Settings>,
    request: http::Request<Incoming>,
) -> http::Response<tonic::body::Body> {
    let started = Instant::now();
    let ran = Arc::new(AtomicBool::new(false));
    let limit = settings.max_message_size;
    // For the log line and label of a call refused before its handler (a
    // body over the limit, bytes that are not a message): the values only,
    // looked at when that happens.
    let name = request.headers().get(&PROXY_METHOD_NAME_KEY).cloned();
    let request_id = request.headers().get(&REQUEST_ID_KEY).cloned();
    let mut grpc = tonic::server::Grpc::new(IspCodec::SERVER)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let mut response = grpc
        .unary(
            Dispatch {
                settings: settings.clone(),
                ran: ran.clone(),
                started,
            },
            request,
        )
        .await;
    if !ran.load(Ordering::Acquire) {
        // Refused by the framing: the status is in the response head.
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32);
        let code = if code == Code::OutOfRange {
            // tonic says OutOfRange; Go (and isp-kit's callers) say
            // ResourceExhausted for a request over the limit.
            response = tonic::Status::resource_exhausted(format!(
                "grpc: received message larger than max (limit {limit} bytes)"
            ))
            .into_http();
            Code::ResourceExhausted
        } else {
            code
        };
        let label = name
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|name| settings.router.lookup(name))
            .map_or(Label::const_str(UNROUTED), |route| {
                Label::from(route.name.clone())
            });
        log::warn!(
            "[endpoint={label}] [requestId={}] rpc call refused: {code}",
            request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map_or("-", log_text)
        );
        metrics::server_call(&label, code, started.elapsed());
    }
    response
}

/// Dispatches one decoded request to its handler.
struct Dispatch {
    settings: Arc<Settings>,
    ran: Arc<AtomicBool>,
    started: Instant,
}

impl tonic::server::UnaryService<Message> for Dispatch {
    type Response = Message;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<Message>, tonic::Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<Message>) -> Self::Future {
        self.ran.store(true, Ordering::Release);
        let settings = self.settings.clone();
        let started = self.started;
        Box::pin(async move {
            let (metadata, _, message) = request.into_parts();
            let headers = metadata.into_headers();
            let deadline = headers
                .get(&GRPC_TIMEOUT_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout);
            let metadata = Metadata::from_headers(headers);
            let request_id = RequestId::of(&metadata);
            let unrouted = Label::const_str(UNROUTED);
            let route = match metadata.get_key(&PROXY_METHOD_NAME_KEY) {
                None => {
                    let error = Error::status(
                        Code::Unknown,
                        format!("'{PROXY_METHOD_NAME}' is expected in metadata"),
                    );
                    return Err(finish(&unrouted, &request_id, error, started));
                }
                Some(name) => match settings.router.lookup(name) {
                    Some(route) => route,
                    None => {
                        let error = Error::status(
                            Code::NotFound,
                            format!("handler not found for endpoint {name}"),
                        );
                        return Err(finish(&unrouted, &request_id, error, started));
                    }
                },
            };
            let label = Label::from(route.name.clone());
            let request = Request {
                endpoint: route.name.clone(),
                request_id: request_id.clone(),
                metadata,
                body: message.into_json(),
            };
            let budget = match deadline {
                Some(d) => d.min(settings.handler_timeout),
                None => settings.handler_timeout,
            };
            let handler = AssertUnwindSafe((route.handler)(request)).catch_unwind();
            let handler = std::pin::pin!(CURRENT_REQUEST_ID.scope(request_id.clone(), handler));
            let outcome = match (Bounded {
                future: handler,
                deadline: started + budget,
                timer: None,
            })
            .await
            {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(Error::internal(Panicked(panic_text(&*panic)))),
                Err(Elapsed) => Err(Error::status(
                    Code::DeadlineExceeded,
                    "context deadline exceeded",
                )
                .with_cause(TimedOut(budget))),
            };
            match outcome {
                Ok(body) => {
                    metrics::server_call(&label, Code::Ok, started.elapsed());
                    Ok(tonic::Response::new(Message::json(body)))
                }
                Err(error) => Err(finish(&label, &request_id, error, started)),
            }
        })
    }
}

/// A handler's future with its deadline. The timer is set only when the
/// handler does not finish at its first poll: one that answers at once
/// (most do) costs no timer; the deadline counts from the request's
/// arrival either way.
struct Bounded<F> {
    future: F,
    deadline: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The deadline of a [`Bounded`] future passed.
struct Elapsed;

impl<F: Future + Unpin> Future for Bounded<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        if let std::task::Poll::Ready(output) = Pin::new(&mut this.future).poll(cx) {
            return std::task::Poll::Ready(Ok(output));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        timer.as_mut().poll(cx).map(|()| Err(Elapsed))
    }
}

/// Logs a failed call (one line, with the request id; the cause stays
/// here), records it, and makes its status.
fn finish(
    endpoint: &Label,
    request_id: &RequestId,
    error: Error,
    started: Instant,
) -> tonic::Status {
    let code = error.code();
    metrics::server_call(endpoint, code, started.elapsed());
    let id = log_text(request_id.as_str());
    match code {
        Code::InvalidArgument | Code::NotFound => {
            log::warn!("[endpoint={endpoint}] [requestId={id}] rpc call failed: {error}")
        }
        _ => log::error!("[endpoint={endpoint}] [requestId={id}] rpc call failed: {error}"),
    }
    error.to_status()
}

#[derive(Debug)]
struct Panicked(String);

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the handler panicked: {}", self.0)
    }
}

impl std::error::Error for Panicked {}

#[derive(Debug)]
struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the handler ran past its deadline ({:?})", self.0)
    }
}

impl std::error::Error for TimedOut {}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// A `grpc-timeout` value as Go writes it (`encodeTimeout`): the finest
/// unit whose count fits in 8 digits, rounded up.
pub(crate) fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    if nanos == 0 {
        return "0n".to_owned();
    }
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (size, unit) in units {
        let count = nanos.div_ceil(size);
        if count <= MAX {
            return format!("{count}{unit}");
        }
    }
    format!("{MAX}H")
}

/// `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`).
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_go_writes_them() {
        assert_eq!(parse_grpc_timeout("15S"), Some(Duration::from_secs(15)));
        assert_eq!(
            parse_grpc_timeout("14999916u"),
            Some(Duration::from_micros(14999916))
        );
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "S", "15", "15x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn grpc_timeouts_are_written_as_go_writes_them() {
        // Go's encodeTimeout: the finest unit within 8 digits, rounded up.
        let cases = [
            (Duration::ZERO, "0n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_millis(100), "100000u"),
            (Duration::from_secs(15), "15000000u"),
            (Duration::from_nanos(14_999_916_001), "14999917u"),
            (Duration::from_secs(3600), "3600000m"),
            (Duration::from_secs(200_000), "200000S"),
        ];
        for (timeout, text) in cases {
            assert_eq!(format_grpc_timeout(timeout), text, "{timeout:?}");
            let back = parse_grpc_timeout(text).unwrap();
            assert!(
                back >= timeout && back - timeout < Duration::from_micros(1),
                "{text}"
            );
        }
    }
}
