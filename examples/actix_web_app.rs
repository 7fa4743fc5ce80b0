//! An actix-web service that is a module of the cluster.
//!
//! ```sh
//! cargo run --example actix_web_app                        # embedded config-service
//! cargo run --example actix_web_app -- --hosts 10.0.0.1:9001,10.0.0.2:9001 --listen 0.0.0.0:8080
//! ```
//!
//! * `GET /hello` answers from the current typed config (hot-applied).
//! * `GET /health` answers from `ClusterClient::healthcheck()`: 200 or 503.
//! * `GET /config` shows the config with secrets masked.
//! * `GET /echo?msg=hi` answers `hi from <this instance's address>`.
//! * `GET /relay?msg=hi` calls `GET /echo?msg=hi` on the next live instance
//!   of `web-app` — this one or another copy; the app requires its own
//!   module — through the balanced HTTP client. Start a second copy with the
//!   same `--hosts` and relays spread over both; stop it and they stay on
//!   the first.
//! * `GET /internal/metrics`, `/internal/health` (isp-kit's health+json)
//!   and `/internal/status`: the infra scope (feature `infra`), mounted on
//!   the same server.
//!
//! SIGINT or SIGTERM stops in isp-kit's order: the cluster session closes
//! with 1000 (this instance leaves every caller's routes), then the HTTP
//! server drains.

use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use isp_cluster::infra::Infra;
use isp_cluster::lb::{BalancedClient, BalancedError, RoundRobin};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    config_schema, hide_secrets, AddressConfiguration, ClusterClient, ConfigChanged, ConfigData,
    EndpointDescriptor, ErrorChain, ModuleInfo, RawJson, ReceiverError, TypedConfig,
    TRANSPORT_HTTP,
};
use serde::{Deserialize, Serialize};

/// The service's remote config.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Config {
    /// What `/hello` says.
    greeting: String,
    /// Credentials of the database (masked in `/config`).
    database: Database,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Database {
    url: String,
    password: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "hello".to_owned(),
            database: Database {
                url: "postgres://db:5432/app".to_owned(),
                password: "change-me".to_owned(),
            },
        }
    }
}

/// What `/health` reads.
struct Shared {
    cluster: ClusterClient,
}

/// Receives typed configs and publishes them to the handlers, which read
/// the config in force from a shared `RwLock<Arc<Config>>` swapped whole.
struct ConfigSink {
    current: Arc<RwLock<Arc<Config>>>,
}

impl Actor for ConfigSink {
    type Context = Context<Self>;
}

impl Handler<ConfigChanged<Config>> for ConfigSink {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: ConfigChanged<Config>, _: &mut Context<Self>) -> Self::Result {
        *self.current.write().map_err(|_| "config lock poisoned")? = msg.new;
        log::info!("config applied");
        Ok(())
    }
}

async fn hello(current: web::Data<RwLock<Arc<Config>>>) -> HttpResponse {
    let config = current.read().map(|c| c.clone()).unwrap_or_default();
    HttpResponse::Ok().body(format!("{}\n", config.greeting))
}

async fn health(shared: web::Data<Shared>) -> HttpResponse {
    match shared.cluster.healthcheck() {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(inactive) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "inactive", "reason": inactive.to_string()})),
    }
}

async fn config(current: web::Data<RwLock<Arc<Config>>>) -> HttpResponse {
    let config = current.read().map(|c| c.clone()).unwrap_or_default();
    let masked = serde_json::to_vec(&*config)
        .map_err(|e| e.to_string())
        .and_then(|json| hide_secrets(&json).map_err(|e| e.to_string()));
    match masked {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}

/// This instance's address, as the cluster knows it.
struct Me(String);

#[derive(Deserialize)]
struct EchoQuery {
    msg: String,
}

async fn echo(query: web::Query<EchoQuery>, me: web::Data<Me>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} from {}\n", query.msg, me.0))
}

/// Calls `/echo` with the same query on the next live instance of the app.
async fn relay(request: HttpRequest, instances: web::Data<BalancedClient>) -> HttpResponse {
    let path = match request.query_string() {
        "" => "/echo".to_owned(),
        query => format!("/echo?{query}"),
    };
    match instances.get(&path).send().await {
        Ok(mut response) => match response.body().await {
            Ok(body) => HttpResponse::build(response.status()).body(body),
            Err(e) => HttpResponse::BadGateway().body(format!("{e}\n")),
        },
        Err(e @ BalancedError::NoHosts(_)) => {
            HttpResponse::ServiceUnavailable().body(format!("{e}\n"))
        }
        Err(e @ BalancedError::InvalidRequest { .. }) => {
            HttpResponse::BadRequest().body(format!("{e}\n"))
        }
        Err(e) => HttpResponse::BadGateway().body(format!("{e}\n")),
    }
}

/// How long the app waits for its first config before it gives up.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

struct Args {
    hosts: Vec<String>,
    listen: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        hosts: Vec::new(),
        listen: "127.0.0.1:8080".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--hosts" => args.hosts = value.split(',').map(|h| h.trim().to_owned()).collect(),
            "--listen" => args.listen = value,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("actix_web_app: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // By Display with its causes, never a Debug dump.
            eprintln!("actix_web_app: {}", ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // No hosts: run against an embedded config-service.
    let embedded = if args.hosts.is_empty() {
        let server = ConfigServer::builder().start().await?;
        log::info!("no --hosts: embedded config-service on {}", server.addr());
        Some(server)
    } else {
        None
    };
    let hosts = match &embedded {
        Some(server) => vec![server.addr().to_string()],
        None => args.hosts,
    };

    let listener = std::net::TcpListener::bind(&args.listen)?;
    let local = listener.local_addr()?;
    let address = AddressConfiguration::new(local.ip().to_string(), local.port().to_string());
    let mut info = ModuleInfo::new("web-app", env!("CARGO_PKG_VERSION"), address);
    info.transport = TRANSPORT_HTTP.to_owned();
    for path in ["/hello", "/health", "/config", "/echo", "/relay"] {
        let mut endpoint = EndpointDescriptor::new(path);
        endpoint.http_method = "GET".to_owned();
        info.endpoints.push(endpoint);
    }

    let current = Arc::new(RwLock::new(Arc::new(Config::default())));
    let sink = ConfigSink {
        current: current.clone(),
    }
    .start();
    let typed = TypedConfig::new(sink.recipient()).start();
    let default_config = RawJson::from_value(&Config::default())?;
    let instances = RoundRobin::new("web-app");
    // Before the client starts, so that its first attempt is counted.
    isp_cluster::infra::install_recorder().map_err(std::io::Error::other)?;
    let cluster = ClusterClient::builder(
        info,
        ConfigData::new("1.0.0", config_schema::<Config>(), default_config),
    )
    .hosts(hosts)
    .remote_config(typed.recipient())
    // Its own module: every live copy of this app, this one included.
    .require_module_upgrader("web-app", instances.clone())
    .start()?;
    // Serve only once the first remote config is applied: a handler never
    // answers from the default config.
    cluster.ready(READY_TIMEOUT).await?;

    let shared = web::Data::new(Shared {
        cluster: cluster.clone(),
    });
    let current = web::Data::from(current);
    let me = web::Data::new(Me(local.to_string()));
    let infra = Infra::new(cluster.clone());
    let server = HttpServer::new(move || {
        let infra = infra.clone();
        // One balanced client per worker (awc lives on one thread), all
        // over the one shared pool.
        let relay_client = BalancedClient::new(instances.clone());
        App::new()
            .app_data(shared.clone())
            .app_data(current.clone())
            .app_data(me.clone())
            .app_data(web::Data::new(relay_client))
            .route("/hello", web::get().to(hello))
            .route("/health", web::get().to(health))
            .route("/config", web::get().to(config))
            .route("/echo", web::get().to(echo))
            .route("/relay", web::get().to(relay))
            .configure(move |cfg| infra.configure(cfg))
    })
    .workers(1)
    // SIGTERM and SIGINT are handled below, in isp-kit's order.
    .disable_signals()
    .listen(listener)?
    .run();
    log::info!("http on http://{local}");
    log::info!("metrics at http://{local}/internal/metrics, health at /internal/health");

    // isp-kit's order: leave the cluster first (close 1000: the
    // config-service drops this instance from every caller's routes), then
    // drain HTTP. actix-web's own handling would drain first and keep the
    // instance in the routes while it refuses calls.
    let handle = server.handle();
    let served = actix_web::rt::spawn(server);
    let signal = terminated().await;
    log::info!("{signal}: leaving the cluster, then draining http");
    cluster.close().await;
    handle.stop(true).await;
    served.await.map_err(std::io::Error::other)??;
    if let Some(server) = embedded {
        server.stop().await;
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT, with its name.
async fn terminated() -> &'static str {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            let terminate = std::pin::pin!(term.recv());
            let interrupt = std::pin::pin!(actix_web::rt::signal::ctrl_c());
            return match futures_util::future::select(terminate, interrupt).await {
                futures_util::future::Either::Left(_) => "SIGTERM",
                futures_util::future::Either::Right(_) => "SIGINT",
            };
        }
    }
    let _ = actix_web::rt::signal::ctrl_c().await;
    "SIGINT"
}
