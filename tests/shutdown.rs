//! Shutdown the actix way: an application that ends its actix System
//! without calling `close()` still leaves the config-service with close
//! 1000, measured on the wire by the embedded server, each way of ending in
//! a child process of its own (this very binary, run again with
//! `SHUTDOWN_CHILD=<mode>`):
//!
//! * `stop` — `#[actix_web::main]`, an HTTP handler calls
//!   `System::current().stop()`;
//! * `return` — `#[actix_web::main]`, the HTTP server is stopped and `main`
//!   returns after `server.await`, no `close()`;
//! * `sigterm` — `#[actix_web::main]`, actix-web's own SIGTERM handling
//!   stops the server and `main` returns, no `close()`;
//! * `runner` — `System::new()` + `run()`, a task calls
//!   `System::current().stop()`;
//! * `bootstrap` — a module started by `Bootstrap` serving its HTTP app
//!   with `Module::serve`: on SIGTERM it leaves the cluster first (close
//!   1000, gone from a peer's routes) and drains HTTP after, isp-kit's
//!   order; checked on the wire (the close reaches the config-service
//!   before the module's HTTP listener closes) and timed;
//! * `return-wss` — `return` over `wss://`: the close frame goes through
//!   TLS. (Before the session kept its socket open `TEARDOWN_LINGER` after
//!   the flush, actix-web's server read the TLS stream's end in the same
//!   read as the frame in about 4 runs of 10 and dropped both.)
//!
//! A plain `main` (no test harness): the child modes must own their
//! process, and `#[actix_web::main]` must be the real macro.
#![cfg(unix)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, ModuleInfo, RawJson, TlsConfig,
};

mod common;

const CHILD_ENV: &str = "SHUTDOWN_CHILD";
const MODULE: &str = "shutdown-app";
/// How long the parent waits for each step of a child.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the parent waits for a child to exit once it closed (under
/// `#[actix_web::main]`, `System::stop` leaves actix-web running).
const EXIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Ample time for the HTTP server's first poll after `server.await`.
const SIGNALS_INSTALLED: Duration = Duration::from_millis(100);

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        let hosts = std::env::var("SHUTDOWN_HOSTS").expect("hosts for the child");
        match mode.as_str() {
            "stop" => child_stop(hosts),
            "return" => child_return(hosts),
            "sigterm" => child_sigterm(hosts),
            "runner" => child_runner(hosts),
            "return-wss" => child_return(hosts),
            "bootstrap" => child_bootstrap(hosts),
            other => panic!("unknown child mode {other}"),
        }
        return;
    }
    // Words name cases (as a test filter would); flags of the test
    // harness and their numbers are not filters.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<u64>().is_err())
        .collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut failed = Vec::new();
    for mode in [
        "stop",
        "return",
        "sigterm",
        "runner",
        "return-wss",
        "bootstrap",
    ] {
        if !filter.is_empty() && !filter.iter().any(|f| mode.contains(f.as_str())) {
            continue;
        }
        let outcome = actix_rt::System::new().block_on(run_case(mode));
        match outcome {
            Ok(report) => println!("shutdown {mode}: ok — {report}"),
            Err(e) => {
                println!("shutdown {mode}: FAILED — {e}");
                failed.push(mode);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

// ---- the parent -------------------------------------------------------------

/// Runs one child to its end and checks what the server saw.
async fn run_case(mode: &str) -> Result<String, String> {
    let (server, hosts, ca) = if mode.ends_with("-wss") {
        let ca = common::test_ca();
        let (chain, key) = common::server_cert(&ca, &["127.0.0.1"], false);
        let ca = ca.pem();
        let server = ConfigServer::builder()
            .tls(chain.as_bytes(), key.as_bytes())
            .start()
            .await
            .map_err(|e| e.to_string())?;
        let hosts = format!("wss://{}", server.addr());
        (server, hosts, ca)
    } else {
        let server = ConfigServer::builder()
            .start()
            .await
            .map_err(|e| e.to_string())?;
        let hosts = server.addr().to_string();
        (server, hosts, String::new())
    };
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(CHILD_ENV, mode)
        .env("SHUTDOWN_HOSTS", hosts)
        .env("SHUTDOWN_CA_PEM", ca)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let lines = common::stdout_lines(&mut child);
    let result = if mode == "bootstrap" {
        drive_bootstrap(&server, &mut child, &lines).await
    } else {
        drive(mode, &server, &mut child, &lines).await
    };
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    server.stop().await;
    result
}

async fn drive(
    mode: &str,
    server: &ConfigServer,
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
) -> Result<String, String> {
    let ready = next_line(lines, "ready").await?;
    if server.instances(MODULE).len() != 1 {
        return Err("the child said ready but is not registered".into());
    }
    let trigger = Instant::now();
    match mode {
        "stop" => {
            let url = format!("http://{}/stop", ready.trim_start_matches("ready "));
            let _ = awc::Client::new().get(url).send().await;
        }
        "sigterm" => {
            // SAFETY: kill(2) with the pid of a child this process spawned.
            let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            if rc != 0 {
                return Err("kill failed".into());
            }
        }
        _ => {
            let stdin = child.stdin.as_mut().ok_or("no stdin")?;
            writeln!(stdin, "end").map_err(|e| e.to_string())?;
        }
    }
    // What the server saw: close 1000, or a connection gone without it.
    let mut closed_after = None;
    let mut gone_after = None;
    while trigger.elapsed() < STEP_TIMEOUT && closed_after.is_none() {
        if closed_after.is_none()
            && server
                .closed_sessions()
                .iter()
                .any(|c| c.module == MODULE && c.code == Some(1000))
        {
            closed_after = Some(trigger.elapsed());
        }
        if gone_after.is_none() && server.instances(MODULE).is_empty() {
            gone_after = Some(trigger.elapsed());
            if closed_after.is_none() {
                // Let a close frame that raced the disconnect be recorded.
                actix::clock::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        if gone_after.is_some() && closed_after.is_none() {
            break;
        }
        actix::clock::sleep(Duration::from_millis(2)).await;
    }
    // When the process ended, if it did.
    let mut exited_after = None;
    while trigger.elapsed() < EXIT_TIMEOUT {
        if let Ok(Some(_)) = child.try_wait() {
            exited_after = Some(trigger.elapsed());
            break;
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    let status_line = lines
        .recv_timeout(Duration::from_millis(200))
        .unwrap_or_default();
    let exit = match exited_after {
        Some(d) => format!("process exited {} ms after the trigger", d.as_millis()),
        None => format!("process still running {} s after", EXIT_TIMEOUT.as_secs()),
    };
    let Some(closed) = closed_after else {
        return Err(format!(
            "the server saw no close 1000 (connection gone after {:?}; {exit}; {status_line})",
            gone_after
        ));
    };
    if status_line.starts_with("status ") && !status_line.contains("Closed") {
        return Err(format!("after 1000 the status reads {status_line}"));
    }
    Ok(format!(
        "close 1000 seen {:.1} ms after the trigger; {exit}{}",
        closed.as_secs_f64() * 1000.0,
        if status_line.is_empty() {
            String::new()
        } else {
            format!("; child {status_line}")
        }
    ))
}

/// SIGTERM to a module started by `Bootstrap` and served by
/// `Module::serve`: its close 1000 must reach the config-service before its
/// HTTP listener closes, and a peer must see it leave the routes. Times
/// each from the signal.
async fn drive_bootstrap(
    server: &ConfigServer,
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
) -> Result<String, String> {
    // A peer that follows the routes: when does the module leave them?
    let left_routes: std::sync::Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
    let in_routes = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer = {
        let left_routes = left_routes.clone();
        let in_routes = in_routes.clone();
        let info = ModuleInfo::new("peer", "1.0.0", AddressConfiguration::new("127.0.0.1", "2"));
        let schema = RawJson::from_value(&serde_json::json!({"type": "object"})).unwrap();
        ClusterClient::builder(
            info,
            ConfigData::new("1.0.0", schema, RawJson::empty_object()),
        )
        .hosts([server.addr().to_string()])
        .routes_fn(move |routes| {
            let present = routes.0.iter().any(|b| b.module_name == MODULE);
            if present {
                in_routes.store(true, std::sync::atomic::Ordering::SeqCst);
            } else if in_routes.load(std::sync::atomic::Ordering::SeqCst) {
                left_routes.lock().unwrap().get_or_insert_with(Instant::now);
            }
            Ok::<(), String>(())
        })
        .start()
        .map_err(|e| e.to_string())?
    };
    let ready = next_line(lines, "ready").await?;
    let http: std::net::SocketAddr = ready
        .trim_start_matches("ready ")
        .parse()
        .map_err(|e| format!("{ready:?}: {e}"))?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !in_routes.load(std::sync::atomic::Ordering::SeqCst) {
        if Instant::now() > deadline {
            return Err("the peer never saw the module in its routes".into());
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    // Probes the module's HTTP listener from a thread of its own: the
    // first refused connection is when it stopped accepting.
    let (probe_tx, probe_rx) = mpsc::channel();
    let trigger = Instant::now();
    std::thread::spawn(move || {
        let end = Instant::now() + STEP_TIMEOUT;
        while Instant::now() < end {
            if std::net::TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_err() {
                let _ = probe_tx.send(Instant::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    // SAFETY: kill(2) with the pid of a child this process spawned.
    if unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) } != 0 {
        return Err("kill failed".into());
    }
    let refused_at = loop {
        match probe_rx.try_recv() {
            Ok(at) => break at,
            Err(mpsc::TryRecvError::Empty) if trigger.elapsed() < STEP_TIMEOUT => {
                actix::clock::sleep(Duration::from_millis(2)).await
            }
            Err(_) => return Err("the HTTP listener never stopped accepting".into()),
        }
    };
    let closed_at = server
        .closed_sessions()
        .iter()
        .find(|c| c.module == MODULE && c.code == Some(1000))
        .map(|c| c.at)
        .ok_or_else(|| {
            let status = child.try_wait().ok().flatten();
            format!("no close 1000 before the HTTP listener closed (child: {status:?})")
        })?;
    if closed_at > refused_at {
        return Err(format!(
            "the HTTP listener closed {:.1} ms before the close 1000 reached the server",
            (closed_at - refused_at).as_secs_f64() * 1000.0
        ));
    }
    let deadline = Instant::now() + STEP_TIMEOUT;
    let left_at = loop {
        if let Some(at) = *left_routes.lock().unwrap() {
            break at;
        }
        if Instant::now() > deadline {
            return Err("the peer never saw the module leave its routes".into());
        }
        actix::clock::sleep(Duration::from_millis(2)).await;
    };
    let mut exited_after = None;
    while trigger.elapsed() < STEP_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            if !status.success() {
                return Err(format!("the child exited with {status}"));
            }
            exited_after = Some(trigger.elapsed());
            break;
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    peer.close().await;
    let ms = |at: Instant| (at - trigger).as_secs_f64() * 1000.0;
    Ok(format!(
        "SIGTERM → close 1000 at the server {:.1} ms, → gone from the peer's routes {:.1} ms, \
         → HTTP refuses {:.1} ms; exited after {}",
        ms(closed_at),
        ms(left_at),
        ms(refused_at),
        exited_after.map_or("(still running)".to_owned(), |d| format!(
            "{} ms",
            d.as_millis()
        ))
    ))
}

async fn next_line(lines: &mpsc::Receiver<String>, prefix: &str) -> Result<String, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        match lines.try_recv() {
            Ok(line) if line.starts_with(prefix) => return Ok(line),
            Ok(_) => {}
            Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {
                actix::clock::sleep(Duration::from_millis(5)).await
            }
            Err(e) => return Err(format!("the child never said {prefix:?}: {e}")),
        }
    }
}

// ---- the children ---------------------------------------------------------------

fn init_logs() {
    let _ = env_logger::builder().try_init();
}

fn client(hosts: String) -> ClusterClient {
    let info = ModuleInfo::new(MODULE, "1.0.0", AddressConfiguration::new("127.0.0.1", "1"));
    let schema = RawJson::from_value(&serde_json::json!({"type": "object"})).unwrap();
    let mut builder = ClusterClient::builder(
        info,
        ConfigData::new("1.0.0", schema, RawJson::empty_object()),
    )
    .hosts([hosts]);
    let ca = std::env::var("SHUTDOWN_CA_PEM").unwrap_or_default();
    if !ca.is_empty() {
        let tls = TlsConfig::new()
            .without_os_roots()
            .add_ca_pem(ca.as_bytes())
            .expect("the test CA");
        builder = builder.tls(tls);
    }
    builder.start().expect("a valid client")
}

/// Waits until the module is registered.
async fn registered(client: &ClusterClient) {
    client.ready(STEP_TIMEOUT).await.expect("registered");
}

/// A line on stdin, as a future on the actix thread.
fn stdin_line() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    rx
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `#[actix_web::main]`; `GET /stop` calls `System::current().stop()`.
#[actix_web::main]
async fn child_stop(hosts: String) {
    init_logs();
    let client = client(hosts);
    registered(&client).await;
    let server = HttpServer::new(|| {
        App::new().route(
            "/stop",
            web::get().to(|| async {
                actix_web::rt::System::current().stop();
                HttpResponse::Ok().finish()
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    // The application runs on after the stop: it can read how the client
    // ended.
    let watched = client.clone();
    actix_web::rt::spawn(async move {
        while !watched.status().state.is_final() {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        say(&format!("status {:?}", watched.status().state));
    });
    say(&format!("ready {addr}"));
    let _ = server.await;
    drop(client);
}

/// `#[actix_web::main]`; a line on stdin stops the HTTP server and `main`
/// returns after `server.await` without `close()`.
#[actix_web::main]
async fn child_return(hosts: String) {
    init_logs();
    let client = client(hosts);
    registered(&client).await;
    let server = HttpServer::new(App::new)
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind")
        .run();
    let handle = server.handle();
    let end = stdin_line();
    actix_web::rt::spawn(async move {
        let _ = end.await;
        handle.stop(true).await;
    });
    say("ready");
    let _ = server.await;
    drop(client);
}

/// `#[actix_web::main]`; actix-web's own SIGTERM handling stops the server
/// and `main` returns without `close()`.
#[actix_web::main]
async fn child_sigterm(hosts: String) {
    init_logs();
    let client = client(hosts);
    registered(&client).await;
    let server = HttpServer::new(App::new)
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind")
        .run();
    // actix-server installs its signal handlers when `server` is first
    // polled: until then SIGTERM would kill the process outright.
    actix_web::rt::spawn(async {
        actix_web::rt::time::sleep(SIGNALS_INSTALLED).await;
        say("ready");
    });
    let _ = server.await;
    drop(client);
}

/// `System::new()` + `run()`; a task calls `System::current().stop()` on a
/// line on stdin.
fn child_runner(hosts: String) {
    init_logs();
    let system = actix_rt::System::new();
    let client = system.block_on(async move {
        let client = client(hosts);
        let watched = client.clone();
        actix_rt::spawn(async move {
            registered(&watched).await;
            say("ready");
            let _ = stdin_line().await;
            actix_rt::System::current().stop();
        });
        client
    });
    let _ = system.run();
    // The runtime is gone: the status says how the session ended.
    say(&format!("status {:?}", client.status().state));
}

/// A module as `Bootstrap` starts it from a `config.yml`, its HTTP app
/// served by `Module::serve` (which handles SIGTERM in isp-kit's order).
#[actix_web::main]
async fn child_bootstrap(hosts: String) {
    use isp_cluster::bootstrap::{Bootstrap, Environment};
    init_logs();
    let (ip, port) = hosts.rsplit_once(':').expect("host:port");
    let free_port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let (http_port, infra_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("isp-cluster-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let config = format!(
        "moduleName: {MODULE}\nconfigServiceAddress: {{ip: {ip}, port: {port}}}\n\
         grpcOuterAddress: {{ip: 127.0.0.1, port: {http_port}}}\n\
         grpcInnerAddress: {{ip: 127.0.0.1, port: {http_port}}}\n\
         infraServerPort: {infra_port}\ninfraServerIp: 127.0.0.1\ndefaultRemoteConfigPath: {}\n",
        dir.join("default.json").display()
    );
    std::fs::write(dir.join("config.yml"), config).expect("config.yml");
    std::fs::write(dir.join("default.json"), "{}").expect("default.json");
    let env = Environment::new(&dir, &dir).var("APP_CONFIG_PATH", "config.yml");
    let schema = RawJson::from_value(&serde_json::json!({"type": "object"})).unwrap();
    let boot = Bootstrap::load_with_schema("1.0.0", schema, &env).expect("the local config");
    let _ = std::fs::remove_dir_all(&dir);
    let module = boot
        .start(actix::Actor::start(Accept).recipient())
        .await
        .expect("started");
    module.ready(STEP_TIMEOUT).await.expect("registered");
    let binding = module.binding_address().to_owned();
    let server = HttpServer::new(App::new)
        .disable_signals()
        .workers(1)
        .bind(&binding)
        .expect("bind")
        .run();
    // `serve` listens to SIGTERM from its first poll: until then the
    // signal would end the process outright.
    actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(SIGNALS_INSTALLED).await;
        say(&format!("ready {binding}"));
    });
    module
        .serve(server, Duration::ZERO)
        .await
        .expect("served until SIGTERM");
}

/// Accepts every remote config.
struct Accept;

impl actix::Actor for Accept {
    type Context = actix::Context<Self>;
}

impl actix::Handler<isp_cluster::RemoteConfig> for Accept {
    type Result = Result<(), isp_cluster::ReceiverError>;

    fn handle(&mut self, _: isp_cluster::RemoteConfig, _: &mut Self::Context) -> Self::Result {
        Ok(())
    }
}
