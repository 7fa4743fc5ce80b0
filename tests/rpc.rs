//! isp RPC over real loopback: modules from the builder serve, declare and
//! call each other through the embedded config-service; every error path
//! of the server; Go's empty `:authority`; the stop order on the wire.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use isp_cluster::lb::HostsUpgrader;
use isp_cluster::rpc::{
    Call, CallError, Code, Error, Forward, Identity, Json, Metadata, RequestId, Router, RpcClient,
    RpcServer,
};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, EndpointDescriptor, ModuleInfo,
};
use serde_json::{json, Value};

use common::wait_until;

const EVENTUALLY: Duration = Duration::from_secs(10);

async fn echo(Json(body): Json<Value>) -> Result<Value, Error> {
    Ok(body)
}

async fn whoami(id: RequestId, identity: Identity, metadata: Metadata) -> Result<Value, Error> {
    Ok(json!({
        "requestId": id.as_str(),
        "user": identity.user_id,
        "app": identity.application_name,
        "traceparent": metadata.get("traceparent"),
    }))
}

async fn fail() -> Result<(), Error> {
    let mut details = serde_json::Map::new();
    details.insert("field".into(), "x".into());
    Err(Error::business(400, "bad input").with_details(details))
}

async fn broken() -> Result<(), Error> {
    Err(std::io::Error::other("db password=hunter2 refused").into())
}

async fn panics() -> Result<(), Error> {
    panic!("handler bug");
}

#[derive(serde::Deserialize)]
struct Sleep {
    ms: u64,
}

async fn sleep(Json(s): Json<Sleep>) -> Result<Value, Error> {
    tokio::time::sleep(Duration::from_millis(s.ms)).await;
    Ok(json!({"slept": s.ms}))
}

fn router() -> Router {
    Router::new()
        .route("rpc/echo", echo)
        .route(
            EndpointDescriptor::new("rpc/whoami")
                .inner(true)
                .user_auth_required(true),
            whoami,
        )
        .route("rpc/fail", fail)
        .route("rpc/broken", broken)
        .route("rpc/panics", panics)
        .route("rpc/sleep", sleep)
}

fn server(router: Router) -> RpcServer {
    common::init_logs();
    RpcServer::builder(router)
        .stop_grace(Duration::from_millis(200))
        .drain_timeout(Duration::from_secs(5))
        .bind("127.0.0.1:0")
        .expect("binds")
}

fn module(name: &str, config: &ConfigServer) -> isp_cluster::ClusterClientBuilder {
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new("127.0.0.1", "1"));
    ClusterClient::builder(info, ConfigData::default())
        .hosts([config.addr().to_string()])
        .initial_wait(Duration::from_secs(2))
}

fn client_of(server: &RpcServer) -> RpcClient {
    let client = RpcClient::new("echo");
    client.upgrade(&[server.local_addr().to_string()]);
    client
}

#[actix_rt::test]
async fn a_module_serves_declares_and_is_called_through_the_cluster_with_failover() {
    let config = ConfigServer::builder().start().await.unwrap();
    let first = server(router());
    let second = server(router());
    let a = module("echo", &config).rpc(&first).start().unwrap();
    a.ready(EVENTUALLY).await.unwrap();

    // Declared: exactly the router's endpoints, at the server's address.
    let declared = config.instances("echo");
    assert_eq!(declared.len(), 1);
    assert_eq!(declared[0].transport, "grpc");
    assert_eq!(
        declared[0].address,
        AddressConfiguration::from(first.local_addr())
    );
    assert_eq!(declared[0].endpoints, first.router().endpoints());
    let whoami = declared[0]
        .endpoints
        .iter()
        .find(|e| e.path == "rpc/whoami")
        .unwrap();
    assert!(whoami.inner && whoami.user_auth_required);
    assert_eq!(whoami.http_method, "POST");

    // The caller learns the hosts from the config-service.
    let echo_client = RpcClient::new("echo");
    let caller = module("caller", &config)
        .require_module_upgrader("echo", echo_client.clone())
        .start()
        .unwrap();
    caller.ready(EVENTUALLY).await.unwrap();
    let answer: Value = echo_client
        .call("rpc/echo")
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer, json!({"n": 1}));

    // A second instance: calls spread over both.
    let b = module("echo", &config).rpc(&second).start().unwrap();
    b.ready(EVENTUALLY).await.unwrap();
    assert!(wait_until(EVENTUALLY, || echo_client.hosts().len() == 2).await);
    for _ in 0..20 {
        let _: Value = echo_client.call("rpc/echo").json(&1).send().await.unwrap();
    }

    // The first instance dies without leaving (its server stops at once):
    // every call still succeeds, on the second, before and after the
    // config-service notices.
    first.stop_now();
    first.stopped().await;
    for _ in 0..20 {
        let answer: Value = echo_client.call("rpc/echo").json(&2).send().await.unwrap();
        assert_eq!(answer, json!(2));
    }
    a.close().await;
    assert!(wait_until(EVENTUALLY, || echo_client.hosts().len() == 1).await);

    // The list empties: an immediate, clear error; then refills.
    b.close().await;
    assert!(wait_until(EVENTUALLY, || echo_client.hosts().is_empty()).await);
    second.stopped().await;
    let started = Instant::now();
    let error = echo_client
        .call("rpc/echo")
        .json(&3)
        .send::<Value>()
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::NoHosts(_)), "{error}");
    assert_eq!(error.code(), Code::Unavailable);
    assert!(error.to_string().contains("\"echo\""), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let third = server(router());
    let c = module("echo", &config).rpc(&third).start().unwrap();
    c.ready(EVENTUALLY).await.unwrap();
    assert!(wait_until(EVENTUALLY, || echo_client.hosts().len() == 1).await);
    let answer: Value = echo_client.call("rpc/echo").json(&4).send().await.unwrap();
    assert_eq!(answer, json!(4));

    c.close().await;
    caller.close().await;
    third.stopped().await;
    config.stop().await;
}

#[actix_rt::test]
async fn changing_the_router_at_run_time_declares_again() {
    let config = ConfigServer::builder().start().await.unwrap();
    let rpc = server(Router::new().route("rpc/echo", echo));
    let client = module("echo", &config).rpc(&rpc).start().unwrap();
    client.ready(EVENTUALLY).await.unwrap();
    let paths = || -> Vec<String> {
        let instances = config.instances("echo");
        instances
            .first()
            .map(|i| i.endpoints.iter().map(|e| e.path.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(paths(), ["rpc/echo"]);
    rpc.router().add("rpc/fail", fail).unwrap();
    assert!(
        wait_until(EVENTUALLY, || paths() == ["rpc/echo", "rpc/fail"]).await,
        "{:?}",
        paths()
    );
    assert!(rpc.router().remove("rpc/echo"));
    assert!(
        wait_until(EVENTUALLY, || paths() == ["rpc/fail"]).await,
        "{:?}",
        paths()
    );
    // Served as declared: the removed endpoint is gone, the added one is there.
    let call = client_of(&rpc);
    let gone = call
        .call("rpc/echo")
        .json(&1)
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let added = call
        .call("rpc/fail")
        .json(&1)
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(added.error_code(), Some(400));
    assert_eq!(client.status().sessions_established, 1, "no new session");
    client.close().await;
    config.stop().await;
}

#[actix_rt::test]
async fn errors_are_isp_kits() {
    let rpc = server(router());
    let client = client_of(&rpc);

    let error = client
        .call("rpc/fail")
        .json(&json!({}))
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let detail = error.detail().unwrap();
    assert_eq!(
        (detail.error_code, detail.error_message.as_str()),
        (400, "bad input")
    );
    assert_eq!(detail.details["field"], "x");

    let error = client.call("rpc/broken").send::<Value>().await.unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(error.status_message(), Some("internal service error"));
    assert_eq!(error.error_code(), Some(900));
    assert!(
        !format!("{error:?}").contains("hunter2"),
        "the cause is never sent"
    );

    // A panicking handler is an internal error, and the server serves on.
    let error = client.call("rpc/panics").send::<Value>().await.unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(error.error_code(), Some(900));
    let ok: Value = client.call("rpc/echo").json(&5).send().await.unwrap();
    assert_eq!(ok, json!(5));

    let error = client
        .call("rpc/nope")
        .json(&1)
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(
        error.status_message(),
        Some("handler not found for endpoint rpc/nope")
    );
    assert_eq!(error.detail(), None);

    // An empty body to a JSON endpoint, and one that is not JSON.
    for body in [Bytes::new(), Bytes::from_static(b"{nope")] {
        let error = client
            .call("rpc/echo")
            .raw_json(body)
            .send::<Value>()
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(error.error_code(), Some(400));
    }

    // The caller's deadline cancels the handler's future.
    let started = Instant::now();
    let error = client
        .call("rpc/sleep")
        .json(&json!({"ms": 5000}))
        .timeout(Duration::from_millis(200))
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(3));

    rpc.shutdown().await;
}

#[actix_rt::test]
async fn request_id_identity_and_trace_are_seen_and_forwarded() {
    // "front" forwards to "back" what its caller sent.
    let back = server(router());
    let back_client = client_of(&back);
    let forwarding = back_client.clone();
    let front = server(Router::new().route("front/relay", move |forward: Forward| {
        let back = forwarding.clone();
        async move {
            back.call("rpc/whoami")
                .forward(&forward)
                .send::<Value>()
                .await
                .map_err(Error::internal)
        }
    }));
    let front_client = client_of(&front);
    let identity = {
        let mut metadata = http_like(&[
            ("x-user-identity", "42"),
            ("x-application-name", "bXktYXBw"),
        ]);
        Identity::of(&std::mem::take(&mut metadata))
    };
    let seen: Value = front_client
        .call("front/relay")
        .request_id(RequestId::from_string("req-1"))
        .identity(&identity)
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(seen["requestId"], "req-1");
    assert_eq!(seen["user"], "42");
    assert_eq!(seen["app"], "my-app");
    assert_eq!(
        seen["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );

    // From a handler's own future the request id goes on by itself.
    let relay = back_client.clone();
    let auto = server(Router::new().route("auto/relay", move || {
        let back = relay.clone();
        async move {
            back.call("rpc/whoami")
                .send::<Value>()
                .await
                .map_err(Error::internal)
        }
    }));
    let seen: Value = client_of(&auto)
        .call("auto/relay")
        .request_id(RequestId::from_string("req-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(seen["requestId"], "req-2");
    // With none, a new one: 32 hex digits.
    let seen: Value = back_client.call("rpc/whoami").send().await.unwrap();
    let id = seen["requestId"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    for s in [front, auto, back] {
        s.shutdown().await;
    }
}

/// Metadata from pairs, through a real server: what `Identity::of` reads.
fn http_like(pairs: &[(&str, &str)]) -> Metadata {
    // Metadata is made by the server only; read it back from a handler.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let captured = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = captured.clone();
    let rpc = server(Router::new().route("m", move |m: Metadata| {
        let keep = keep.clone();
        async move {
            *keep.lock().unwrap() = Some(m);
            Ok::<_, Error>(())
        }
    }));
    let client = client_of(&rpc);
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut call = client.call("m");
            for (k, v) in pairs {
                call = call.header(k, v);
            }
            call.send::<Value>().await.unwrap();
            rpc.shutdown().await;
        })
    })
    .join()
    .unwrap();
    let metadata = captured.lock().unwrap().take().unwrap();
    metadata
}

/// An actix actor as an endpoint.
struct Counter(u64);

impl actix::Actor for Counter {
    type Context = actix::Context<Self>;
}

impl actix::Handler<Call<u64, Value>> for Counter {
    type Result = Result<Value, Error>;
    fn handle(&mut self, call: Call<u64, Value>, _: &mut actix::Context<Self>) -> Self::Result {
        if call.body == 0 {
            return Err(Error::business(422, "zero"));
        }
        self.0 += call.body;
        Ok(json!({"total": self.0, "requestId": call.request_id.as_str()}))
    }
}

#[actix_rt::test]
async fn an_actor_is_an_endpoint() {
    use actix::Actor;
    let counter = Counter(0).start();
    let rpc = server(Router::new().actor("count/add", counter.recipient()));
    let client = client_of(&rpc);
    let first: Value = client.call("count/add").json(&2).send().await.unwrap();
    assert_eq!(first["total"], 2);
    let second: Value = client
        .call("count/add")
        .json(&3)
        .request_id(RequestId::from_string("r"))
        .send()
        .await
        .unwrap();
    assert_eq!(second, json!({"total": 5, "requestId": "r"}));
    let error = client
        .call("count/add")
        .json(&0)
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some(422));
    rpc.shutdown().await;
}

/// What follows a module's leaving, in isp-kit's order: the config-service
/// saw close 1000 and dropped the module; the server still answers new
/// calls (on a new connection too) within its grace; then it refuses new
/// connections while `slow`, a call in flight across the whole stop,
/// finishes.
async fn left_first_then_grace_then_refused(
    config: &ConfigServer,
    rpc: &RpcServer,
    slow: tokio::task::JoinHandle<Result<Value, CallError>>,
) {
    assert!(
        wait_until(EVENTUALLY, || config
            .closed_sessions()
            .iter()
            .any(|c| c.module == "echo" && c.code == Some(1000)))
        .await,
        "close 1000 seen: {:?}",
        config.closed_sessions()
    );
    assert!(config.instances("echo").is_empty());
    assert!(
        rpc.is_accepting(),
        "the server answers after the module left"
    );
    let fresh = client_of(rpc);
    let answer: Value = fresh.call("rpc/echo").json(&"late").send().await.unwrap();
    assert_eq!(answer, json!("late"));
    let addr = rpc.local_addr();
    assert!(
        wait_until(EVENTUALLY, || std::net::TcpStream::connect(addr).is_err()).await,
        "refuses after the grace"
    );
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow, json!({"slept": 1500}));
    rpc.stopped().await;
}

/// A call that takes 1.5 s, started now.
fn slow_call(rpc: &RpcServer) -> tokio::task::JoinHandle<Result<Value, CallError>> {
    let client = client_of(rpc);
    tokio::spawn(async move {
        client
            .call("rpc/sleep")
            .json(&json!({"ms": 1500}))
            .send::<Value>()
            .await
    })
}

#[actix_rt::test]
async fn the_module_leaves_first_then_the_server_answers_for_its_grace_then_refuses() {
    let config = ConfigServer::builder().start().await.unwrap();
    let rpc = RpcServer::builder(router())
        .stop_grace(Duration::from_millis(800))
        .bind("127.0.0.1:0")
        .unwrap();
    let module = module("echo", &config).rpc(&rpc).start().unwrap();
    module.ready(EVENTUALLY).await.unwrap();
    let slow = slow_call(&rpc);
    tokio::time::sleep(Duration::from_millis(100)).await;
    module.close().await;
    // close() returned: the module has left already.
    let closed = config.closed_sessions();
    assert!(
        closed
            .iter()
            .any(|c| c.module == "echo" && c.code == Some(1000)),
        "{closed:?}"
    );
    assert!(config.instances("echo").is_empty());
    left_first_then_grace_then_refused(&config, &rpc, slow).await;
    config.stop().await;
}

/// The same order when the module's actix System stops (no `close()`):
/// the supervisor's stop sends close 1000 and starts the server's grace.
#[actix_rt::test]
async fn when_the_system_stops_the_module_leaves_first_then_the_server_answers_for_its_grace() {
    let config = ConfigServer::builder().start().await.unwrap();
    let rpc = RpcServer::builder(router())
        .stop_grace(Duration::from_millis(800))
        .bind("127.0.0.1:0")
        .unwrap();
    // The module runs on an actix System of its own, as a module process.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let module_thread = {
        let rpc = rpc.clone();
        let builder = module("echo", &config);
        std::thread::spawn(move || {
            let system = actix::System::new();
            let module = system.block_on(async move {
                let module = builder.rpc(&rpc).start().unwrap();
                module.ready(EVENTUALLY).await.unwrap();
                module
            });
            started_tx.send(actix::System::current()).unwrap();
            // Runs until stopped from outside; the module is never closed.
            system.run().unwrap();
            drop(module);
        })
    };
    let module_system = tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    let slow = slow_call(&rpc);
    tokio::time::sleep(Duration::from_millis(100)).await;
    module_system.stop();
    left_first_then_grace_then_refused(&config, &rpc, slow).await;
    tokio::task::spawn_blocking(move || module_thread.join().unwrap())
        .await
        .unwrap();
    config.stop().await;
}

#[actix_rt::test]
async fn a_module_without_rpc_declares_as_before() {
    let config = ConfigServer::builder().start().await.unwrap();
    let mut info = ModuleInfo::new(
        "plain",
        "1.0.0",
        AddressConfiguration::new("10.0.0.9", "8080"),
    );
    info.endpoints.push(EndpointDescriptor::new("/api/x"));
    let client = ClusterClient::builder(info, ConfigData::default())
        .hosts([config.addr().to_string()])
        .start()
        .unwrap();
    client.ready(EVENTUALLY).await.unwrap();
    let declared = config.instances("plain");
    assert_eq!(
        declared[0].address,
        AddressConfiguration::new("10.0.0.9", "8080")
    );
    assert_eq!(declared[0].endpoints.len(), 1);
    assert_eq!(declared[0].endpoints[0].path, "/api/x");
    client.close().await;
    config.stop().await;
}

#[actix_rt::test]
async fn a_module_from_bootstrap_serves_on_the_inner_address_and_declares_the_outer() {
    use isp_cluster::bootstrap::{Bootstrap, Environment};
    let config = ConfigServer::builder().start().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let infra_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = std::env::temp_dir().join(format!("isp-rpc-bootstrap-{}", std::process::id()));
    let conf = root.join("cwd/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config_dev.yml"),
        format!(
            "moduleName: echo\nconfigServiceAddress: {{ip: 127.0.0.1, port: {}}}\n\
             grpcOuterAddress: {{ip: 127.0.0.1, port: {port}}}\n\
             grpcInnerAddress: {{ip: 127.0.0.1, port: {port}}}\ninfraServerPort: {infra_port}\ninfraServerIp: 127.0.0.1\n",
            config.addr().port()
        ),
    )
    .unwrap();
    std::fs::write(conf.join("default_remote_config.json"), "{}").unwrap();
    let env = Environment::new(root.join("cwd"), root.join("bin")).var("APP_MODE", "dev");
    let boot = Bootstrap::load_with_schema("1.0.0", Default::default(), &env).unwrap();
    let rpc = boot.rpc_server(router()).unwrap();
    assert_eq!(rpc.local_addr().to_string(), format!("127.0.0.1:{port}"));
    let (recorder, _) = common::Recorder::start_new();
    let module = boot
        .start_with(recorder.recipient(), |b| b.rpc(&rpc))
        .await
        .unwrap();
    module.client().unwrap().ready(EVENTUALLY).await.unwrap();
    let declared = config.instances("echo");
    assert_eq!(
        declared[0].address,
        AddressConfiguration::new("127.0.0.1", port.to_string())
    );
    assert_eq!(declared[0].endpoints, rpc.router().endpoints());
    let answer: Value = client_of(&rpc)
        .call("rpc/echo")
        .json(&7)
        .send()
        .await
        .unwrap();
    assert_eq!(answer, json!(7));
    module.shutdown().await; // leaves, then the server stops
    rpc.stopped().await;
    config.stop().await;
    let _ = std::fs::remove_dir_all(root);
}

#[actix_rt::test]
async fn the_balanced_http_client_sends_the_request_id_as_the_rpc_client_does() {
    use actix_web::{web, App, HttpRequest, HttpServer};
    use isp_cluster::lb::{BalancedClient, RoundRobin};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let keep = seen.clone();
    let http = HttpServer::new(move || {
        let keep = keep.clone();
        App::new().route(
            "/id",
            web::get().to(move |request: HttpRequest| {
                let keep = keep.clone();
                async move {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    keep.lock().unwrap().push(id);
                    "ok"
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = http.addrs()[0];
    let http = http.run();
    let handle = http.handle();
    actix_rt::spawn(http);

    let pool = RoundRobin::with_hosts("web", [addr.to_string()]);
    let client = BalancedClient::new(pool);
    client.get("/id").send().await.unwrap();
    client
        .get("/id")
        .request_id("given-1")
        .send()
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].len(), 32, "a new one: {seen:?}");
    assert!(seen[0].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(&seen[1..], ["given-1"]);
    handle.stop(true).await;
}

#[actix_rt::test]
async fn a_host_update_drops_no_call_in_flight_and_a_stop_right_after_bind_is_kept() {
    let rpc = server(router());
    let client = client_of(&rpc);
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call("rpc/sleep")
                .json(&json!({"ms": 500}))
                .send::<Value>()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.upgrade(&[]); // the host leaves the list mid-call
    let other = server(router());
    client.upgrade(&[other.local_addr().to_string()]);
    assert_eq!(slow.await.unwrap().unwrap(), json!({"slept": 500}));
    let next: Value = client.call("rpc/echo").json(&1).send().await.unwrap();
    assert_eq!(next, json!(1));
    // Stopped at once after bind: not lost to the server thread's start.
    let quick = server(router());
    tokio::time::timeout(EVENTUALLY, quick.shutdown())
        .await
        .expect("stops");
    for s in [rpc, other] {
        s.shutdown().await;
    }
}

/// Counts its drops: a handler's future that holds one was dropped when the
/// count moves.
struct DropCount(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[actix_rt::test]
async fn a_handler_is_dropped_at_the_callers_deadline_and_at_the_servers_own_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let dropped = Arc::new(AtomicUsize::new(0));
    let hang = {
        let dropped = dropped.clone();
        move |_: Json<Value>| {
            let guard = DropCount(dropped.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<Value, Error>(Value::Null)
            }
        }
    };
    common::init_logs();
    let rpc = RpcServer::builder(Router::new().route("rpc/hang", hang))
        .handler_timeout(Duration::from_millis(300))
        .bind("127.0.0.1:0")
        .expect("binds");
    let client = client_of(&rpc);

    // The caller's deadline (grpc-timeout) is the shorter one.
    let started = Instant::now();
    let error = client
        .call("rpc/hang")
        .json(&1)
        .timeout(Duration::from_millis(100))
        .send::<Value>()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(
        wait_until(EVENTUALLY, || dropped.load(Ordering::SeqCst) == 1).await,
        "the handler's future was dropped at the caller's deadline"
    );
    assert!(
        started.elapsed() < Duration::from_millis(290),
        "dropped at the caller's 100 ms, not at the server's 300 ms: {:?}",
        started.elapsed()
    );

    // The server's own bound: the caller waits longer, the server answers
    // DeadlineExceeded itself and drops the future.
    let started = Instant::now();
    let error = client
        .call("rpc/hang")
        .json(&1)
        .timeout(Duration::from_secs(10))
        .send::<Value>()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Status {
                code: Code::DeadlineExceeded,
                ..
            }
        ),
        "the server's answer: {error:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        wait_until(EVENTUALLY, || dropped.load(Ordering::SeqCst) == 2).await,
        "the handler's future was dropped at the server's bound"
    );
    rpc.shutdown().await;
}

#[actix_rt::test]
async fn a_burst_of_calls_to_a_new_host_makes_one_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let rpc = server(router());
    // A counting relay in front of the server.
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let target = rpc.local_addr();
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let client = RpcClient::new("echo");
    client.upgrade(&[relay_addr.to_string()]);
    let calls = (0..32).map(|i| {
        let client = client.clone();
        async move { client.call("rpc/echo").json(&i).send::<Value>().await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), json!(i));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for the burst"
    );
    // And the next call uses it too.
    let next: Value = client.call("rpc/echo").json(&"again").send().await.unwrap();
    assert_eq!(next, json!("again"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    rpc.shutdown().await;
}
