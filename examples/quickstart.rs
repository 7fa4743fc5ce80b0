//! Quickstart: four modules and an embedded config-service, in one process.
//!
//! ```sh
//! cargo run --example quickstart                 # the story on stdout
//! RUST_LOG=isp_cluster=info cargo run --example quickstart   # plus the library's logs
//! ```
//!
//! `auth` registers; `echo` registers and serves `POST /echo` on loopback;
//! `prices` serves `prices/quote` over isp RPC (isp-kit's gRPC) and declares
//! it; `gateway` requires all three, wants the routing table and has a typed
//! config. It follows `auth`'s addresses with an actor, calls `echo` through
//! the balanced HTTP client, fed by a round-robin pool, and calls `prices`
//! through the RPC client, which follows `prices`' hosts as they come from
//! the config-service. The story: registration, the initial config, calls
//! to echo and prices, a config change pushed and applied, a second instance
//! of auth, echo and prices appearing (calls spread over both) and leaving
//! (calls stay on the first; the calls to prices made while its second
//! instance leaves all answered), and a graceful shutdown.
//! The gateway serves its infra routes (`/internal/metrics`, `/internal/health`,
//! `/internal/status`) on a port of its own; the story says where, and ends
//! with what its metrics counted.

use std::error::Error;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use isp_cluster::infra::Infra;
use isp_cluster::lb::{BalancedClient, HostsUpgrader, RoundRobin};
use isp_cluster::rpc::{self, Json, Router, RpcClient, RpcServer};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    config_schema, hide_secrets, AddressConfiguration, BuildError, ClusterClient, ConfigChanged,
    ConfigData, ErrorChain, HostsChanged, ModuleInfo, RawJson, ReceiverError, RoutesChanged,
    SessionEvent, TypedConfig,
};
use serde::{Deserialize, Serialize};

/// The gateway's remote config.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct GatewayConfig {
    /// Requests per second per client.
    rate_limit: u32,
    /// How the gateway reaches auth.
    auth: AuthClient,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AuthClient {
    timeout_ms: u64,
    /// A secret: never printed in clear.
    token: String,
}

/// What the gateway has seen, for the story to wait on.
#[derive(Default)]
struct Seen {
    config: Option<Arc<GatewayConfig>>,
    auth_hosts: Vec<String>,
    routes: usize,
    active: bool,
}

/// The gateway's receiver: prints each event as a line of the story.
struct Gateway {
    seen: Arc<Mutex<Seen>>,
}

impl Actor for Gateway {
    type Context = Context<Self>;
}

impl Handler<ConfigChanged<GatewayConfig>> for Gateway {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: ConfigChanged<GatewayConfig>, _: &mut Context<Self>) -> Self::Result {
        let shown = hide_secrets(&serde_json::to_vec(&*msg.new)?)?;
        match &msg.previous {
            None => say(format!(
                "gateway: initial config {}",
                String::from_utf8_lossy(&shown)
            )),
            Some(previous) => say(format!(
                "gateway: config changed, rate limit {} -> {}",
                previous.rate_limit, msg.new.rate_limit
            )),
        }
        self.seen.lock().unwrap().config = Some(msg.new);
        Ok(())
    }
}

impl Handler<HostsChanged> for Gateway {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        say(format!("gateway: {} is at {:?}", msg.module, msg.hosts));
        self.seen.lock().unwrap().auth_hosts = msg.hosts;
        Ok(())
    }
}

impl Handler<RoutesChanged> for Gateway {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RoutesChanged, _: &mut Context<Self>) -> Self::Result {
        let mut names: Vec<&str> = msg.0.iter().map(|b| b.module_name.as_str()).collect();
        names.sort_unstable();
        say(format!("gateway: routing table now lists {names:?}"));
        self.seen.lock().unwrap().routes = msg.0.len();
        Ok(())
    }
}

impl Handler<SessionEvent> for Gateway {
    type Result = ();

    fn handle(&mut self, msg: SessionEvent, _: &mut Context<Self>) {
        match msg {
            SessionEvent::Active { host } => {
                say(format!("gateway: registered and ready on {host}"));
                self.seen.lock().unwrap().active = true;
            }
            SessionEvent::Inactive { reason, .. } => say(format!("gateway: inactive: {reason}")),
            _ => {}
        }
    }
}

/// How long each module may take to register with the embedded server.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

fn say(line: String) {
    println!("{line}");
}

/// Waits until `cond` holds (at most 5 s).
async fn until(seen: &Arc<Mutex<Seen>>, what: &str, cond: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond(&seen.lock().unwrap()) {
        if Instant::now() > deadline {
            panic!("quickstart: no {what} within 5 s");
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

fn auth_module(ip: &str, host: &str) -> Result<ClusterClient, BuildError> {
    let info = ModuleInfo::new("auth", "1.0.0", AddressConfiguration::new(ip, "9001"));
    ClusterClient::builder(info, ConfigData::default())
        .hosts([host])
        .start()
}

/// An `echo` instance: a module registered at the address its HTTP server
/// listens on.
struct Echo {
    addr: String,
    cluster: ClusterClient,
    http: ServerHandle,
}

/// `POST /echo`: the body back, and who answered.
async fn echo(body: String, me: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{body:?} from {}", me.get_ref()))
}

async fn echo_module(config_service: &str) -> Result<Echo, Box<dyn Error>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let local = listener.local_addr()?;
    let addr = local.to_string();
    let me = web::Data::new(addr.clone());
    let http = HttpServer::new(move || {
        App::new()
            .app_data(me.clone())
            .route("/echo", web::post().to(echo))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = http.handle();
    actix::spawn(http);
    let address = AddressConfiguration::new(local.ip().to_string(), local.port().to_string());
    let info = ModuleInfo::new("echo", "1.0.0", address);
    let cluster = ClusterClient::builder(info, ConfigData::default())
        .hosts([config_service])
        .start()?;
    Ok(Echo {
        addr,
        cluster,
        http: handle,
    })
}

impl Echo {
    /// Leaves the cluster first, so that callers stop choosing it, then
    /// stops serving.
    async fn stop(self) {
        self.cluster.close().await;
        self.http.stop(true).await;
    }
}

/// A `prices` instance: a module serving `prices/quote` over isp RPC,
/// declared at the address its RPC server listens on.
struct Prices {
    cluster: ClusterClient,
    server: RpcServer,
}

/// What `prices/quote` is asked.
#[derive(Serialize, Deserialize)]
struct Quote {
    item: String,
}

/// What `prices/quote` answers, and which instance answered.
#[derive(Serialize, Deserialize)]
struct Price {
    item: String,
    cents: u32,
    from: String,
}

async fn prices_module(config_service: &str, instance: &str) -> Result<Prices, Box<dyn Error>> {
    let me = instance.to_owned();
    let quote = move |Json(quote): Json<Quote>| {
        let from = me.clone();
        async move {
            if quote.item.is_empty() {
                return Err(rpc::Error::business(400, "no item"));
            }
            let cents = 100 + 10 * u32::try_from(quote.item.len()).unwrap_or(0);
            Ok(Price {
                item: quote.item,
                cents,
                from,
            })
        }
    };
    let server = RpcServer::builder(Router::new().route("prices/quote", quote))
        // The time callers have to learn that an instance left, while it
        // still answers (isp-kit's modules wait as long).
        .stop_grace(PRICES_STOP_GRACE)
        .bind("127.0.0.1:0")?;
    let info = ModuleInfo::new("prices", "1.0.0", AddressConfiguration::default());
    let cluster = ClusterClient::builder(info, ConfigData::default())
        .hosts([config_service])
        // Declares prices/quote at the server's address, and stops the
        // server after the module left the cluster.
        .rpc(&server)
        .start()?;
    Ok(Prices { cluster, server })
}

/// How long a leaving prices instance still answers new calls.
const PRICES_STOP_GRACE: Duration = Duration::from_millis(500);

impl Prices {
    /// Leaves the cluster, then answers for the grace, then stops.
    async fn stop(self) {
        self.cluster.close().await;
        self.server.stopped().await;
    }
}

/// One call of `prices/quote`: the instance that answered, or the error.
async fn quote(client: &RpcClient, item: &str) -> Result<String, rpc::CallError> {
    let price: Price = client
        .call("prices/quote")
        .json(&Quote {
            item: item.to_owned(),
        })
        .send()
        .await?;
    Ok(price.from)
}

/// The gateway calls prices `times` times; says who answered how often.
async fn call_prices(client: &RpcClient, times: usize) {
    let mut answered: std::collections::BTreeMap<String, usize> = Default::default();
    for i in 0..times {
        let from = match quote(client, ["tea", "coffee"][i % 2]).await {
            Ok(from) => from,
            Err(e) => format!("an error: {e}"),
        };
        *answered.entry(from).or_default() += 1;
    }
    say(format!(
        "gateway: {times} calls to prices/quote answered by {answered:?}"
    ));
}

/// The gateway calls echo `times` times; each answer is a line.
async fn call_echo(client: &BalancedClient, times: usize) {
    for i in 1..=times {
        let answer = match client.post("/echo").send_body(format!("hello {i}")).await {
            Ok(mut response) => match response.body().await {
                Ok(body) => String::from_utf8_lossy(&body).into_owned(),
                Err(e) => format!("no body: {e}"),
            },
            Err(e) => format!("failed: {e}"),
        };
        say(format!("gateway: echo answered {answer}"));
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).init();
    match actix::System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // By Display with its causes, never a Debug dump.
            eprintln!("quickstart: {}", ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    // Every module of this process records into it from the start.
    isp_cluster::infra::install_recorder()?;

    let server = ConfigServer::builder()
        .listen("127.0.0.1:0")
        .start()
        .await?;
    let host = server.addr().to_string();
    say(format!("config-service: listening on {host}"));

    let auth = auth_module("10.0.0.11", &host)?;
    auth.ready(READY_TIMEOUT).await?;
    say("auth: registered at 10.0.0.11:9001".to_owned());
    let echo1 = echo_module(&host).await?;
    echo1.cluster.ready(READY_TIMEOUT).await?;
    say(format!(
        "echo: registered at {}, serving POST /echo",
        echo1.addr
    ));

    let prices1 = prices_module(&host, "prices#1").await?;
    prices1.cluster.ready(READY_TIMEOUT).await?;
    say(format!(
        "prices: prices#1 registered, serving prices/quote over isp rpc at {}",
        prices1.server.local_addr()
    ));

    let seen = Arc::new(Mutex::new(Seen::default()));
    let gateway_actor = Gateway { seen: seen.clone() }.start();
    let typed = TypedConfig::new(gateway_actor.clone().recipient())
        .validate(|c: &GatewayConfig| match c.rate_limit {
            0 => Err("rate limit must be positive".to_owned()),
            _ => Ok(()),
        })
        .start();
    let default_config = RawJson::from_value(&GatewayConfig {
        rate_limit: 10,
        auth: AuthClient {
            timeout_ms: 500,
            token: "s3cr3t-token".to_owned(),
        },
    })?;
    let info = ModuleInfo::new(
        "gateway",
        "1.0.0",
        AddressConfiguration::new("10.0.0.21", "8080"),
    );
    let echo_pool = RoundRobin::new("echo");
    let echo_client = BalancedClient::new(echo_pool.clone());
    let prices_client = RpcClient::new("prices");
    let gateway = ClusterClient::builder(
        info,
        ConfigData::new("1.0.0", config_schema::<GatewayConfig>(), default_config),
    )
    .hosts([host.clone()])
    .remote_config(typed.recipient())
    .routes(gateway_actor.clone().recipient())
    .require_module("auth", gateway_actor.clone().recipient())
    // Any Fn(&[String]) is an upgrader: this one tells the story, then
    // hands the list to the pool the balanced client reads.
    .require_module_upgrader("echo", {
        let pool = echo_pool.clone();
        move |hosts: &[String]| {
            say(format!("gateway: echo is at {hosts:?}"));
            pool.upgrade(hosts);
        }
    })
    // The RPC client is an upgrader itself; this one tells the story too.
    .require_module_upgrader("prices", {
        let client = prices_client.clone();
        move |hosts: &[String]| {
            say(format!("gateway: prices is at {hosts:?}"));
            client.upgrade(hosts);
        }
    })
    .session_events(gateway_actor.recipient())
    .start()?;
    // The story waits for the gateway's own event, so that its line comes
    // first; `ready()` is the way without an event receiver.
    until(&seen, "registration", |s| s.active).await;
    say(format!(
        "gateway: healthcheck {:?}",
        gateway.healthcheck().map_err(|e| e.to_string())
    ));
    let infra = Infra::new(gateway.clone())
        .serve(([127, 0, 0, 1], 0).into())
        .await?;
    let metrics_url = format!("http://{}/internal/metrics", infra.addr());
    say(format!(
        "gateway: metrics at {metrics_url} (and /internal/health, /internal/status)"
    ));

    call_echo(&echo_client, 2).await;
    call_prices(&prices_client, 2).await;

    say("operator: raising gateway's rate limit to 20".to_owned());
    let mut config = server
        .config("gateway")
        .ok_or("the config-service holds no config of gateway")?;
    config["rateLimit"] = 20.into();
    server.set_config("gateway", config).unwrap();
    until(&seen, "config change", |s| {
        s.config.as_ref().is_some_and(|c| c.rate_limit == 20)
    })
    .await;

    say("operator: starting a second instance of auth, echo and prices".to_owned());
    let auth2 = auth_module("10.0.0.12", &host)?;
    let echo2 = echo_module(&host).await?;
    let prices2 = prices_module(&host, "prices#2").await?;
    until(&seen, "second auth instance", |s| s.auth_hosts.len() == 2).await;
    until(&seen, "second echo instance", |_| {
        echo_pool.hosts().len() == 2
    })
    .await;
    until(&seen, "second prices instance", |_| {
        prices_client.hosts().len() == 2
    })
    .await;
    call_echo(&echo_client, 4).await; // round-robin: two answers from each
    call_prices(&prices_client, 4).await; // the same
    say("operator: stopping them again, while the gateway keeps calling prices".to_owned());
    // Calls every few milliseconds for as long as the second prices
    // instance takes to leave, and a little after.
    let calling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let caller = actix::spawn({
        let (client, calling) = (prices_client.clone(), calling.clone());
        async move {
            let (mut made, mut lost) = (0, 0);
            while calling.load(std::sync::atomic::Ordering::Relaxed) {
                made += 1;
                if let Err(e) = quote(&client, "tea").await {
                    lost += 1;
                    say(format!("gateway: a call to prices failed: {e}"));
                }
                actix::clock::sleep(Duration::from_millis(5)).await;
            }
            (made, lost)
        }
    });
    auth2.close().await;
    echo2.stop().await;
    prices2.stop().await;
    until(&seen, "prices instance leaving", |_| {
        prices_client.hosts().len() == 1
    })
    .await;
    actix::clock::sleep(Duration::from_millis(50)).await;
    calling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (made, lost) = caller.await?;
    say(format!(
        "gateway: prices kept answering while an instance left: {} of {made} calls answered, {lost} lost",
        made - lost
    ));
    until(&seen, "auth instance leaving", |s| s.auth_hosts.len() == 1).await;
    until(&seen, "echo instance leaving", |_| {
        echo_pool.hosts().len() == 1
    })
    .await;
    call_echo(&echo_client, 2).await; // both from the first
    call_prices(&prices_client, 2).await; // the same

    match awc::Client::new().get(&metrics_url).send().await {
        Ok(mut response) => {
            let text = response.body().await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let counted = text.lines().filter(|l| {
                l.starts_with(r#"isp_cluster_configs_delivered_total{module="gateway""#)
                    || l.starts_with(r#"isp_cluster_sessions_established_total{module="gateway""#)
            });
            for line in counted {
                say(format!("gateway metrics: {line}"));
            }
        }
        Err(e) => say(format!("gateway: cannot read its metrics: {e}")),
    }
    infra.stop().await;

    say("shutting down: closing sessions with 1000".to_owned());
    gateway.close().await;
    auth.close().await;
    echo1.stop().await;
    prices1.stop().await;
    server.stop().await;
    say(format!("done in {} ms", started.elapsed().as_millis()));
    Ok(())
}
