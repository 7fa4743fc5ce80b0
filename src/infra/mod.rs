//! The operator's HTTP scope of a module, as isp-kit's `bootstrap` serves
//! it on a Go module's infra server (feature `infra`):
//!
//! | route | what | Go counterpart |
//! |---|---|---|
//! | `/internal/metrics` | every metric of the process in Prometheus' text format, with `# HELP` lines and the `process_*` series; gzip when asked | `metrics.Registry.MetricsHandler` |
//! | `/internal/metrics/descriptions` | what each metric of the crate means, in isp-kit's text | `metrics.Registry.MetricsDescriptionHandler` |
//! | `/internal/health` | the named checks in isp-kit's `application/health+json`, 200 or 500 | `healthcheck.Registry.Handler` |
//! | `GET /internal/status` | the client's [`Status`](crate::Status) as JSON | (none: Go has a bool only) |
//!
//! The first three answer any method, as Go's `http.ServeMux` routes do:
//! load balancers probe with `HEAD` (answered without a body).
//!
//! The cluster client is registered as the check `configServiceConnection`
//! (as `bootstrap` registers Go's client); add the application's own with
//! [`Infra::check`]. A module without a cluster client (isp-kit's offline
//! mode) serves the scope of [`Infra::standalone`]: the metrics and its own
//! checks, no status route. Mount the scope on the application's own actix-web
//! server with [`Infra::configure`], or serve it on a port of its own with
//! [`Infra::serve`] (isp-kit's `infraServerPort`).
//!
//! ```no_run
//! # async fn run(client: isp_cluster::ClusterClient) -> std::io::Result<()> {
//! use isp_cluster::infra::Infra;
//!
//! let infra = Infra::new(client.clone()).check("database", || Ok(()));
//! let server = infra.serve("127.0.0.1:9091".parse().unwrap()).await?;
//! println!("metrics at http://{}/internal/metrics", server.addr());
//! // … on shutdown:
//! server.stop().await;
//! # Ok(()) }
//! ```

mod descriptions;
mod health;
mod listener;
mod process;
mod prometheus;
mod scrape;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
pub use metrics_exporter_prometheus::PrometheusHandle;

pub use health::{CACHE_TIME as HEALTH_CACHE_TIME, CONTENT_TYPE as HEALTH_CONTENT_TYPE};
pub use prometheus::{
    builder as prometheus_builder, install_recorder, CONTENT_TYPE as METRICS_CONTENT_TYPE,
};

use crate::ClusterClient;
use health::{Check, Registry};

/// The path of the metrics route.
pub const METRICS_PATH: &str = "/internal/metrics";
/// The path of the route that says what each metric means (isp-kit's).
pub const METRICS_DESCRIPTIONS_PATH: &str = "/internal/metrics/descriptions";
/// The path of the health route.
pub const HEALTH_PATH: &str = "/internal/health";
/// The path of the status route.
pub const STATUS_PATH: &str = "/internal/status";
/// The name the cluster client's check is registered under, as in isp-kit.
pub const CLIENT_CHECK: &str = "configServiceConnection";
/// How long each health check may take: isp-kit's
/// `healthcheckHandlerTimeout` default.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The infra scope: metrics, health and status routes for actix-web. Go's
/// counterpart is what isp-kit's `bootstrap` builds: the infra server with
/// a `healthcheck.Registry` and the metrics registry.
///
/// Cheap to clone; every clone (one per actix-web worker) shares the health
/// cache.
#[derive(Clone)]
pub struct Infra {
    /// `None` for [`Infra::standalone`].
    client: Option<ClusterClient>,
    health_timeout: Duration,
    checks: BTreeMap<String, Check>,
    metrics: Option<PrometheusHandle>,
    /// Built on first use, then shared by every worker.
    registry: Arc<std::sync::OnceLock<Arc<Registry>>>,
}

impl fmt::Debug for Infra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Infra")
            .field("health_timeout", &self.health_timeout)
            .field("checks", &self.checks.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Infra {
    /// The scope for `client`, registered as the health check
    /// `configServiceConnection` (Go's `cluster.Client` registered by
    /// `bootstrap`). When mounted or served it installs the Prometheus
    /// recorder ([`install_recorder`]) unless [`Infra::metrics_handle`]
    /// gave one; call [`install_recorder`] before starting the client to
    /// count from its first attempt.
    pub fn new(client: ClusterClient) -> Self {
        let check_client = client.clone();
        let mut checks: BTreeMap<String, Check> = BTreeMap::new();
        checks.insert(
            CLIENT_CHECK.to_owned(),
            Arc::new(move || check_client.healthcheck().map_err(|e| e.to_string())),
        );
        Self {
            client: Some(client),
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            checks,
            metrics: None,
            registry: Arc::default(),
        }
    }

    /// The scope of a module without a cluster client, as isp-kit's
    /// `bootstrap` serves it in offline mode (`CLUSTER_MODE=offline`) and
    /// for `bootstrap.NewStandalone` (the infra server of its base
    /// bootstrap, no `configServiceConnection` registered): the
    /// metrics route, and the health route with only the checks added by
    /// [`Infra::check`] (no `configServiceConnection`; none at all passes,
    /// as Go's empty registry does). There is no status route: the status
    /// is a cluster client's.
    pub fn standalone() -> Self {
        Self {
            client: None,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            checks: BTreeMap::new(),
            metrics: None,
            registry: Arc::default(),
        }
    }

    /// How long each health check may take before it counts as failed:
    /// isp-kit's `healthcheckHandlerTimeout` (default 1 s). Go bounds the
    /// whole handler with it; here each check has it, and they run at once.
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self.registry = Arc::default();
        self
    }

    /// Adds the health check `name` (Go's `healthcheck.Registry.Register`):
    /// `Err` fails it with that text as its `output`. A second check of the
    /// same name replaces the first, as in Go. It runs on the blocking pool,
    /// at most once a second (answers are cached), under the health timeout,
    /// one call at a time: while a call that outlived the timeout has not
    /// returned, probes fail the check at once, saying it is late, instead
    /// of taking another blocking thread.
    pub fn check(
        mut self,
        name: impl Into<String>,
        f: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.checks.insert(name.into(), Arc::new(f));
        self.registry = Arc::default();
        self
    }

    /// Serves this recorder's metrics instead of the one
    /// [`install_recorder`] installs: for an application that installed its
    /// own Prometheus recorder (build it with [`prometheus_builder`] to get
    /// this crate's histogram buckets).
    pub fn metrics_handle(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    fn registry(&self) -> Arc<Registry> {
        self.registry
            .get_or_init(|| Arc::new(Registry::new(self.checks.clone(), self.health_timeout)))
            .clone()
    }

    /// Mounts the four routes (three for [`Infra::standalone`]) on an
    /// existing `App`:
    /// `App::new().configure(|cfg| infra.configure(cfg))`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let metrics = match &self.metrics {
            Some(handle) => Ok(handle.clone()),
            None => install_recorder(),
        };
        match &metrics {
            // The help texts go to whichever recorder is installed.
            Ok(_) => crate::metrics::describe(),
            Err(e) => log::warn!(
                "{METRICS_PATH} serves nothing: {e}; pass its handle to Infra::metrics_handle"
            ),
        }
        let registry = self.registry();
        cfg.route(
            METRICS_PATH,
            web::route().to(move |request: HttpRequest| {
                let metrics = metrics.clone();
                async move {
                    match metrics {
                        Ok(handle) => {
                            let mut body = handle.render();
                            // Outside the recorder: its old series are removed.
                            crate::identity::info_metric::render(&mut body);
                            scrape::respond(&request, body)
                        }
                        Err(e) => HttpResponse::ServiceUnavailable()
                            .content_type(ContentType::plaintext())
                            .body(e),
                    }
                }
            }),
        )
        .route(
            METRICS_DESCRIPTIONS_PATH,
            web::route().to(|| async {
                HttpResponse::Ok()
                    .content_type(descriptions::CONTENT_TYPE)
                    .body(descriptions::render())
            }),
        )
        .route(
            HEALTH_PATH,
            web::route().to(move || {
                let registry = Arc::clone(&registry);
                async move {
                    let answer = registry.answer().await;
                    HttpResponse::build(answer.status)
                        .content_type(HEALTH_CONTENT_TYPE)
                        .body(answer.body)
                }
            }),
        );
        if let Some(client) = self.client.clone() {
            cfg.route(
                STATUS_PATH,
                web::get().to(move || {
                    let status = client.status();
                    async move {
                        HttpResponse::Ok()
                            .insert_header(CacheControl(vec![CacheDirective::NoStore]))
                            .json(status)
                    }
                }),
            );
        }
    }

    /// Serves the routes of [`Infra::configure`] on `addr` (isp-kit's infra server on
    /// `infraServerPort`), one worker, in the current actix System. Port 0
    /// picks a free port: [`InfraServer::addr`] says which. `[::]:port`
    /// listens on every interface for IPv4 and IPv6 at once, as Go's
    /// `:port` does (IPv4 only on a host without IPv6).
    pub async fn serve(self, addr: SocketAddr) -> io::Result<InfraServer> {
        let with_status = self.client.is_some();
        let infra = self;
        let server = HttpServer::new(move || {
            let infra = infra.clone();
            App::new().configure(move |cfg| infra.configure(cfg))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener::listen(addr)?)?;
        let addr = server.addrs().first().copied().ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "no address was bound")
        })?;
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        if with_status {
            log::info!(
                "infra server listening on {addr} ({METRICS_PATH}, {METRICS_DESCRIPTIONS_PATH}, \
                 {HEALTH_PATH}, {STATUS_PATH})"
            );
        } else {
            log::info!(
                "infra server listening on {addr} ({METRICS_PATH}, {METRICS_DESCRIPTIONS_PATH}, \
                 {HEALTH_PATH})"
            );
        }
        Ok(InfraServer { addr, handle })
    }
}

/// A running infra server ([`Infra::serve`]).
#[derive(Clone)]
pub struct InfraServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl fmt::Debug for InfraServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfraServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl InfraServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it: no new connection, requests under way get a second.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}
