//! The embedded config-service: an isp-config-service that runs in-process.
//!
//! A development and test server speaking the module protocol of
//! PROTOCOL.md §1–5 on `GET /isp-etp/?module_name=<name>`, with modules,
//! configs, schemas, live instances and routes held in memory. It is what the
//! examples run against and what integration tests — ours and our users' —
//! use as the cluster. Production is the real isp-config-service.
//!
//! ```no_run
//! use isp_cluster::server::ConfigServer;
//!
//! # async fn demo() -> std::io::Result<()> {
//! // Inside a running actix System (e.g. `#[actix::test]`):
//! let server = ConfigServer::builder()
//!     .listen("127.0.0.1:0")
//!     .config("orders", serde_json::json!({"dbPort": 5432}))
//!     .start()
//!     .await?;
//! let host = server.addr().to_string(); // give this to the client
//! // ... the module connects and becomes ready ...
//! server.set_config("orders", serde_json::json!({"dbPort": 5433})).unwrap(); // pushed at once
//! server.stop().await; // every session closed with 1000
//! # let _ = host;
//! # Ok(())
//! # }
//! ```
//!
//! The same listener serves a small JSON admin API:
//!
//! | request | answer |
//! |---|---|
//! | `GET /admin/modules` | every known module with its live instances |
//! | `GET /admin/config/{module}` | the module's active config (404 if none) |
//! | `PUT /admin/config/{module}` | body = new config; checked against the module's schema, stored and pushed (400 with the reason if not JSON or not valid under the schema) |
//! | `GET /admin/schema/{module}` | the schema the module sent (404 if none) |
//! | `GET /admin/routes` | the routing table |
//!
//! With the `rpc` feature, [`ConfigServerBuilder::rpc_listen`] also serves
//! the real isp-config-service's admin API over isp RPC, under its endpoint
//! names and in its JSON (see [`admin_api`]), so that a tool written against
//! the real service works against this one unchanged.

mod admin;
pub mod admin_api;
mod configs;
mod connection;
mod schema;
mod session;
mod state;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use bytestring::ByteString;

use crate::types::{BackendDeclaration, RoutingConfig};
use state::Shared;

/// The read limit of a WebSocket message, as the production service (4 MiB).
pub const DEFAULT_READ_LIMIT: usize = 4 * 1024 * 1024;

/// The address the builder listens on unless told otherwise: loopback, an
/// ephemeral port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The path of the ETP endpoint (the trailing slash is part of it).
pub const ETP_PATH: &str = "/isp-etp/";

/// How long a graceful shutdown (not used by [`ConfigServer::stop`]) lets
/// connections finish, in seconds.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// The longest [`ConfigServer::stop`] waits for the sessions to end after it
/// told them to close; only a session whose module reads nothing, so that
/// its close frame cannot be written, takes that long.
const SESSIONS_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The threads of the admin API's RPC server: a development server's admin
/// calls are few.
#[cfg(feature = "rpc")]
const RPC_WORKER_THREADS: usize = 1;

/// How long admin calls in flight may take to finish at
/// [`ConfigServer::stop`].
#[cfg(feature = "rpc")]
const RPC_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The delay of [`ReplyOrder::EventsLate`] in [`ReplyOrder::EVERY`].
pub const LATE_EVENTS_DELAY: Duration = Duration::from_millis(100);

/// The order in which the server answers the handshake events
/// `MODULE:SEND_CONFIG_SCHEMA` (with `CONFIG:SEND_CONFIG_WHEN_CONNECTED`) and
/// `MODULE:SEND_REQUIREMENTS` (with the `<module>_MODULE_CONNECTED` lists and
/// `CONFIG:SEND_ROUTES_WHEN_CONNECTED`) relative to their acks.
///
/// The production service handles events concurrently, so a module may see
/// each of these (PROTOCOL.md §6); a client must accept every one, and a
/// test can make the server produce each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyOrder {
    /// The answering events, then the ack (the default).
    #[default]
    EventsFirst,
    /// The ack, then the answering events at once.
    AckFirst,
    /// The ack at once, the answering events after this delay, computed from
    /// the state as it is then (so the acks of later events may come first).
    EventsLate(Duration),
}

impl ReplyOrder {
    /// Every order, the late one with [`LATE_EVENTS_DELAY`]: for a test that
    /// runs its handshake in each.
    pub const EVERY: [ReplyOrder; 3] = [
        ReplyOrder::EventsFirst,
        ReplyOrder::AckFirst,
        ReplyOrder::EventsLate(LATE_EVENTS_DELAY),
    ];
}

/// A close frame sent by a client, kept by the server for tests to assert
/// how a module left.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedSession {
    /// The module of the session.
    pub module: String,
    /// The close code the client sent; `None` for a close frame without one.
    pub code: Option<u16>,
    /// The close reason the client sent (empty when none).
    pub reason: String,
    /// When the server read the close frame (tests order it against other
    /// events, such as the module's own listener closing).
    pub at: std::time::Instant,
}

/// Why [`ConfigServer::set_config`] (or the admin API's `PUT
/// /admin/config/{module}`, with 400) refused a config; nothing was stored
/// or pushed. Never quotes a config value.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigRefused {
    /// The text is not one JSON document.
    InvalidJson(serde_json::Error),
    /// The config violates the schema the module registered
    /// (`MODULE:SEND_CONFIG_SCHEMA`), as the real service refuses it.
    SchemaViolation {
        /// The module.
        module: String,
        /// Where the config fails and which keyword of the schema, e.g.
        /// `at /db/port: fails the schema's /properties/db/properties/port/type`.
        violations: Vec<String>,
    },
}

impl fmt::Display for ConfigRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson(e) => write!(f, "the config is not a json document: {e}"),
            Self::SchemaViolation { module, violations } => write!(
                f,
                "the config violates the schema of module {module:?}: {}",
                violations.join("; ")
            ),
        }
    }
}

impl std::error::Error for ConfigRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidJson(e) => Some(e),
            Self::SchemaViolation { .. } => None,
        }
    }
}

/// Configures and starts a [`ConfigServer`].
#[derive(Debug, Clone)]
pub struct ConfigServerBuilder {
    listen: String,
    read_limit: usize,
    workers: usize,
    configs: Vec<(String, ByteString)>,
    reply_order: ReplyOrder,
    admin_token: Option<AdminToken>,
    remote_modules: bool,
    #[cfg(feature = "rpc")]
    rpc_listen: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<ServerTls>,
}

/// The admin API's bearer token; never shown.
#[derive(Clone)]
pub(crate) struct AdminToken(pub(crate) Arc<str>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<hidden>)")
    }
}

/// The server's certificate chain and key (PEM); never shown.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct ServerTls {
    chain: Vec<u8>,
    key: Vec<u8>,
}

#[cfg(feature = "tls")]
impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls(<certificate chain and key>)")
    }
}

#[cfg(feature = "tls")]
impl ServerTls {
    /// The rustls configuration: the ring provider, HTTP/1.1 only.
    fn config(&self) -> io::Result<rustls::ServerConfig> {
        use crate::client::tls::{certificates, private_key};
        let invalid = |what: &str, e: &dyn fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("tls {what}: {e}"))
        };
        let chain = certificates(&self.chain, "certificate chain")
            .map_err(|e| invalid("certificate chain", &e))?;
        let key = private_key(&self.key, "key").map_err(|e| invalid("key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("configuration", &e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl Default for ConfigServerBuilder {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            read_limit: DEFAULT_READ_LIMIT,
            workers: 1,
            configs: Vec::new(),
            reply_order: ReplyOrder::default(),
            admin_token: None,
            remote_modules: false,
            #[cfg(feature = "rpc")]
            rpc_listen: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ConfigServerBuilder {
    /// The address to listen on, `ip:port` (default [`DEFAULT_LISTEN`]; port
    /// `0` picks a free one, see [`ConfigServer::addr`]).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// The largest WebSocket message (after reassembly of fragments) and
    /// admin request body accepted, in bytes (default
    /// [`DEFAULT_READ_LIMIT`]). A session sending more is closed with 1009.
    /// Below [`crate::MIN_READ_LIMIT`] (1 KiB), [`start`](Self::start)
    /// fails, as the client's builder does.
    pub fn read_limit(mut self, bytes: usize) -> Self {
        self.read_limit = bytes;
        self
    }

    /// Requires `Authorization: Bearer <token>` on the admin API (compared
    /// in constant time). Without a token the admin API is open, which
    /// [`start`](Self::start) allows only on a loopback address: anyone who
    /// reaches the port could read every config, secrets included, and
    /// replace it.
    ///
    /// The token guards the admin API (`/admin/...`) only. The ETP endpoint
    /// takes none (modules present none, on the real service either): whoever
    /// reaches it can register under any module's name and is sent that
    /// module's config. Beyond loopback that needs
    /// [`allow_remote_modules`](Self::allow_remote_modules) as well.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(AdminToken(Arc::from(token.into())));
        self
    }

    /// Serves modules on a listen address other than loopback. Without it
    /// [`start`](Self::start) refuses such an address, admin token or not:
    /// the ETP endpoint has no authentication, so anyone who reaches the
    /// port can register under a module's name and is sent its config,
    /// secrets included. Use it on a network you trust (a test cluster's
    /// private network), never on one you do not.
    pub fn allow_remote_modules(mut self) -> Self {
        self.remote_modules = true;
        self
    }

    /// Serves TLS (`wss://` for modules, `https://` for the admin API) with
    /// this certificate chain and private key, both PEM. Checked at
    /// [`start`](Self::start).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Self {
        self.tls = Some(ServerTls {
            chain: chain_pem.to_vec(),
            key: key_pem.to_vec(),
        });
        self
    }

    /// Also serves the admin API of the real isp-config-service over isp
    /// RPC (`/isp.BackendService/Request`, h2c) on this address, `ip:port`
    /// (port `0` picks a free one, see [`ConfigServer::rpc_addr`]): the
    /// endpoints of [`admin_api`] under the real service's names. The real
    /// service serves them on its gRPC port, 9002 by default, beside 9001
    /// for modules.
    ///
    /// The same rule as for the REST admin API: an address beyond loopback
    /// needs an [admin token](Self::admin_token), and with a token every
    /// call must carry `authorization: Bearer <token>` metadata.
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    pub fn rpc_listen(mut self, addr: impl Into<String>) -> Self {
        self.rpc_listen = Some(addr.into());
        self
    }

    /// How many worker threads serve connections (default 1; a development
    /// server rarely needs more).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The order of the handshake answers (default
    /// [`ReplyOrder::EventsFirst`]); see also [`ConfigServer::set_reply_order`].
    pub fn reply_order(mut self, order: ReplyOrder) -> Self {
        self.reply_order = order;
        self
    }

    /// A module's initial config, active before the module connects.
    pub fn config(mut self, module: impl Into<String>, config: serde_json::Value) -> Self {
        self.configs
            .push((module.into(), ByteString::from(config.to_string())));
        self
    }

    /// Binds the listener and starts serving. Must be called inside a running
    /// actix System (e.g. `#[actix::main]`, `#[actix::test]`); returns an
    /// error otherwise, or when the address cannot be bound.
    pub async fn start(self) -> io::Result<ConfigServer> {
        if actix::System::try_current().is_none() {
            return Err(io::Error::other(
                "the config server must be started inside a running actix system",
            ));
        }
        if self.read_limit < crate::MIN_READ_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "read limit {} is below the minimum of {} bytes",
                    self.read_limit,
                    crate::MIN_READ_LIMIT
                ),
            ));
        }
        let listen: Vec<SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(self.listen.as_str())?.collect();
        let beyond_loopback = listen.iter().any(|a| !a.ip().is_loopback());
        if beyond_loopback && self.admin_token.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "listening on {} without an admin token would let anyone who reaches it \
                     read and replace every config: set an admin token, or listen on loopback",
                    self.listen
                ),
            ));
        }
        if beyond_loopback && !self.remote_modules {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "listening on {} would let anyone who reaches it register as any module and \
                     be sent its config (the ETP endpoint takes no token): call \
                     allow_remote_modules() on a network you trust, or listen on loopback",
                    self.listen
                ),
            ));
        }
        #[cfg(feature = "rpc")]
        let rpc_listen: Option<Vec<SocketAddr>> = match &self.rpc_listen {
            Some(addr) => {
                let addrs: Vec<SocketAddr> =
                    std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())?.collect();
                if addrs.iter().any(|a| !a.ip().is_loopback()) && self.admin_token.is_none() {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "serving the admin API over rpc on {addr} without an admin token \
                             would let anyone who reaches it read and replace every config: set \
                             an admin token, or listen on loopback"
                        ),
                    ));
                }
                Some(addrs)
            }
            None => None,
        };
        let shared = Arc::new(Shared::new(self.read_limit, self.reply_order));
        {
            let mut state = shared.lock();
            for (module, config) in self.configs {
                // No module has sent a schema yet: nothing to check against.
                let _ = state.set_config(&module, config);
            }
        }
        let data = web::Data::from(Arc::clone(&shared));
        let read_limit = self.read_limit;
        let admin_token = self.admin_token.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(read_limit))
                .route(ETP_PATH, web::get().to(session::etp_endpoint))
                .route("/isp-etp", web::get().to(session::etp_endpoint))
                .service(admin::scope(admin_token.clone()))
        })
        .workers(self.workers)
        .on_connect(connection::ConnectionSlot::insert)
        // A session writes small frames; with Nagle's algorithm on, a frame
        // written while the previous one is unacknowledged waits for the
        // module's delayed ACK (about 40 ms on Linux).
        .tcp_nodelay(true)
        // When a session's response body ends (after its close frame, or at
        // once to drop the connection) the dispatcher would otherwise keep
        // reading the connection for up to this long before closing it; RFC
        // 6455 §7.1.1 wants the server to close the TCP connection at once.
        // The cost: an admin request whose body the server refuses unread
        // (over the read limit) is not drained either, so a client still
        // sending it may see a reset after the 413 (curl on Linux still
        // reports the 413).
        .client_disconnect_timeout(Duration::ZERO)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
        #[cfg(feature = "tls")]
        let server = match &self.tls {
            Some(tls) => server.bind_rustls_0_23(listen.as_slice(), tls.config()?)?,
            None => server.bind(listen.as_slice())?,
        };
        #[cfg(not(feature = "tls"))]
        let server = server.bind(listen.as_slice())?;
        let addr = server.addrs().first().copied().ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "no address was bound")
        })?;
        #[cfg(feature = "rpc")]
        let rpc = match rpc_listen {
            Some(listen) => {
                let api = admin_api::AdminApi::new(Arc::clone(&shared));
                let router = admin_api::rpc::router(api, self.admin_token.clone());
                let rpc = crate::rpc::RpcServer::builder(router)
                    .worker_threads(RPC_WORKER_THREADS)
                    .stop_grace(Duration::ZERO)
                    .drain_timeout(RPC_DRAIN_TIMEOUT)
                    .bind(listen.as_slice())?;
                log::info!(
                    "config server: admin api over isp rpc on {}",
                    rpc.local_addr()
                );
                Some(rpc)
            }
            None => None,
        };
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        log::info!("config server listening on {addr}");
        Ok(ConfigServer {
            shared,
            addr,
            handle,
            #[cfg(feature = "rpc")]
            rpc,
        })
    }
}

/// A running embedded config-service; a cheap handle, clone it freely.
///
/// Every method but [`ConfigServer::stop`] is synchronous and may be called
/// from any thread.
#[derive(Clone)]
pub struct ConfigServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    handle: ServerHandle,
    #[cfg(feature = "rpc")]
    rpc: Option<crate::rpc::RpcServer>,
}

impl fmt::Debug for ConfigServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigServer")
            .field("addr", &self.addr)
            .field("sessions", &self.shared.lock().total_sessions())
            .finish_non_exhaustive()
    }
}

impl ConfigServer {
    /// A builder with the defaults.
    pub fn builder() -> ConfigServerBuilder {
        ConfigServerBuilder::default()
    }

    /// The address the server listens on (with the real port when the
    /// builder asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stores `config` as the module's active config and pushes
    /// `CONFIG:SEND_CONFIG_CHANGED` to every session of the module that has
    /// sent its schema. A config that violates the schema the module
    /// registered is refused, as the real service refuses it: nothing is
    /// stored or pushed.
    pub fn set_config(&self, module: &str, config: serde_json::Value) -> Result<(), ConfigRefused> {
        self.store_config(module, ByteString::from(config.to_string()))
    }

    /// Like [`ConfigServer::set_config`], from JSON text, which is stored and
    /// pushed byte for byte. Invalid JSON is refused and changes nothing.
    pub fn set_config_raw(
        &self,
        module: &str,
        config: impl AsRef<[u8]>,
    ) -> Result<(), ConfigRefused> {
        let text = crate::json::json_text(config.as_ref())
            .map_err(|e| ConfigRefused::InvalidJson(e.into_serde()))?;
        self.store_config(module, ByteString::from(text))
    }

    fn store_config(&self, module: &str, text: ByteString) -> Result<(), ConfigRefused> {
        self.shared
            .lock()
            .set_config(module, text)
            .map(drop)
            .map_err(|violations| ConfigRefused::SchemaViolation {
                module: module.to_owned(),
                violations,
            })
    }

    /// The address the admin API over isp RPC listens on, when the builder
    /// asked for it ([`ConfigServerBuilder::rpc_listen`]).
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref().map(crate::rpc::RpcServer::local_addr)
    }

    /// The admin API of the real service (`config/...`), for a Rust test
    /// that calls its operations directly; the same operations are served
    /// over isp RPC.
    pub fn admin_api(&self) -> admin_api::AdminApi {
        admin_api::AdminApi::new(Arc::clone(&self.shared))
    }

    /// The module's active config.
    pub fn config(&self, module: &str) -> Option<serde_json::Value> {
        let text = self.shared.lock().config(module)?;
        serde_json::from_str(&text).ok()
    }

    /// The config schema the module sent last.
    pub fn schema(&self, module: &str) -> Option<serde_json::Value> {
        let text = self.shared.lock().schema(module)?;
        serde_json::from_str(&text).ok()
    }

    /// The live (ready) instances of a module, in connection order.
    pub fn instances(&self, module: &str) -> Vec<BackendDeclaration> {
        self.shared.lock().instances(module)
    }

    /// The routing table: every live instance of every module.
    pub fn routes(&self) -> RoutingConfig {
        self.shared.lock().routes()
    }

    /// How many WebSocket sessions of the module are open, ready or not.
    pub fn session_count(&self, module: &str) -> usize {
        self.shared.lock().session_count(module)
    }

    /// Ends every session of the module abruptly: the TCP connection is
    /// closed without a close frame, as when a node crashes.
    pub fn drop_sessions(&self, module: &str) {
        self.shared.lock().abort_sessions(Some(module));
    }

    /// Ends every session abruptly, see [`ConfigServer::drop_sessions`].
    pub fn drop_all_sessions(&self) {
        self.shared.lock().abort_sessions(None);
    }

    /// While frozen, the module's sessions ignore every incoming frame, pings
    /// and close frames included, and send nothing: a half-open connection,
    /// for liveness tests. Applies to sessions that connect later too.
    pub fn set_frozen(&self, module: &str, frozen: bool) {
        self.shared.lock().set_frozen(module, frozen);
    }

    /// While set, the server answers `event` from `module` with the ack text
    /// `error` instead of `ok` and does not apply it (e.g. `"missing variables
    /// in initial config: [x]"`). `None` clears it.
    pub fn fail_event(&self, module: &str, event: &str, error: Option<&str>) {
        self.shared.lock().fail_event(module, event, error);
    }

    /// Sets the order of the handshake answers for the events that arrive
    /// from now on (see [`ReplyOrder`]).
    pub fn set_reply_order(&self, order: ReplyOrder) {
        self.shared.lock().set_reply_order(order);
    }

    /// Every close frame a client has sent so far, oldest first.
    pub fn closed_sessions(&self) -> Vec<ClosedSession> {
        self.shared.lock().closed_sessions()
    }

    /// Closes every session with close frame 1000 and stops the listener.
    ///
    /// Returns once every session's connection is closed (or, for a module
    /// that reads nothing, after at most a second) and the listener stopped.
    pub async fn stop(&self) {
        // Accept no new connection first: a client told to go would
        // otherwise reconnect at once and be served again.
        self.handle.pause().await;
        let mut open = self.shared.watch_open_connections();
        self.shared.lock().close_sessions();
        // Counted down as each connection is closed, its close frame written:
        // the stop below drops what is still open, and a process that exits
        // right after it would cut off a frame still being written.
        let all_closed = async move {
            while *open.borrow_and_update() > 0 {
                if open.changed().await.is_err() {
                    break;
                }
            }
        };
        if actix_web::rt::time::timeout(SESSIONS_CLOSE_WAIT, all_closed)
            .await
            .is_err()
        {
            log::warn!(
                "config server on {}: sessions still open {SESSIONS_CLOSE_WAIT:?} after their \
                 close frame; dropping them",
                self.addr
            );
        }
        self.handle.stop(false).await;
        #[cfg(feature = "rpc")]
        if let Some(rpc) = &self.rpc {
            rpc.shutdown().await;
        }
        log::info!("config server on {} stopped", self.addr);
    }
}
