//! One module with every receiver wired, as a contract for scripts: exactly
//! one JSON object per line on stdout, logs on stderr.
//!
//! ```sh
//! cargo run --example module -- --hosts 127.0.0.1:9001[,H2…] --name NAME \
//!     [--require A,B] [--routes] [--config-file default.json] [--address IP:PORT] \
//!     [--ca-file ca.pem] [--cache-file last-good.json] [--infra IP:PORT] [--rpc IP:PORT]
//! ```
//!
//! Hosts may be `host:port`, `ws://host:port` or `wss://host:port`;
//! `--ca-file` adds a PEM CA certificate to the system trust store for the
//! `wss://` ones. `--cache-file` keeps the last good config on disk: a later
//! run delivers it at once, even while every node is down. `--infra`
//! serves `/internal/metrics`, `/internal/health` and `/internal/status` on
//! that address (port 0: a free one), as isp-kit's infra server does.
//! `--rpc` (feature `rpc`) serves `rpc/echo` over isp RPC on that address
//! and declares it, as a Go module serving its endpoints does.
//!
//! Lines: `{"event":"active","host":…}`, `{"event":"inactive","reason":…}`,
//! `{"event":"config","config":…,"source":"server"|"cache"}`,
//! `{"event":"routes","routes":…}`,
//! `{"event":"hosts","module":…,"hosts":[…]}`, and with `--infra` first
//! `{"event":"infra","address":"IP:PORT"}`. SIGINT or SIGTERM closes the
//! session with 1000 and exits 0.

use std::io::Write;
use std::process::ExitCode;

use actix::prelude::*;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, ErrorChain, HostsChanged, ModuleInfo, RawJson,
    ReceiverError, RemoteConfig, RoutesChanged, SessionEvent,
};
use serde_json::json;

struct Args {
    hosts: Vec<String>,
    name: String,
    require: Vec<String>,
    routes: bool,
    config_file: Option<String>,
    address: String,
    ca_file: Option<String>,
    cache_file: Option<String>,
    infra: Option<std::net::SocketAddr>,
    rpc: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        hosts: Vec::new(),
        name: String::new(),
        require: Vec::new(),
        routes: false,
        config_file: None,
        address: "127.0.0.1:9000".to_owned(),
        ca_file: None,
        cache_file: None,
        infra: None,
        rpc: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--hosts" => args.hosts = split(&value()?),
            "--name" => args.name = value()?,
            "--require" => args.require = split(&value()?),
            "--routes" => args.routes = true,
            "--config-file" => args.config_file = Some(value()?),
            "--address" => args.address = value()?,
            "--ca-file" => args.ca_file = Some(value()?),
            "--cache-file" => args.cache_file = Some(value()?),
            "--infra" => {
                let addr = value()?;
                let parsed = addr
                    .parse()
                    .map_err(|_| format!("--infra {addr:?} is not IP:PORT"))?;
                args.infra = Some(parsed);
            }
            #[cfg(feature = "rpc")]
            "--rpc" => args.rpc = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.hosts.is_empty() || args.name.is_empty() {
        return Err("--hosts and --name are required".to_owned());
    }
    Ok(args)
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Prints one JSON object per line; stdout is flushed after each.
fn emit(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Printer;

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Printer {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let config: serde_json::Value = msg.parse()?;
        let source = msg.source().as_str();
        emit(json!({"event": "config", "config": config, "source": source}));
        Ok(())
    }
}

impl Handler<RoutesChanged> for Printer {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RoutesChanged, _: &mut Context<Self>) -> Self::Result {
        emit(json!({"event": "routes", "routes": msg.0}));
        Ok(())
    }
}

impl Handler<HostsChanged> for Printer {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        emit(json!({"event": "hosts", "module": msg.module, "hosts": msg.hosts}));
        Ok(())
    }
}

impl Handler<SessionEvent> for Printer {
    type Result = ();

    fn handle(&mut self, msg: SessionEvent, _: &mut Context<Self>) {
        match msg {
            SessionEvent::Active { host } => emit(json!({"event": "active", "host": host})),
            SessionEvent::Inactive { host, reason, .. } => {
                emit(json!({"event": "inactive", "host": host, "reason": reason}))
            }
            // Events added in later versions.
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("module: {e}");
            return ExitCode::from(2);
        }
    };
    let system = actix::System::new();
    let result = system.block_on(run(args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("module: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let default_config = match &args.config_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            RawJson::from_string(text).map_err(|e| format!("{path} is not valid json: {e}"))?
        }
        None => RawJson::empty_object(),
    };
    let address = AddressConfiguration::parse(&args.address)
        .ok_or_else(|| format!("--address {:?} is not IP:PORT", args.address))?;
    let info = ModuleInfo::new(&args.name, "1.0.0", address);
    let schema = RawJson::from_value(&json!({"title": "Remote config", "type": "object"}))
        .map_err(|e| e.to_string())?;
    let printer = Printer.start();
    let mut builder =
        ClusterClient::builder(info, ConfigData::new("1.0.0", schema, default_config))
            .hosts(args.hosts)
            .remote_config(printer.clone().recipient())
            .session_events(printer.clone().recipient());
    if let Some(path) = &args.cache_file {
        builder = builder.config_cache(path);
    }
    if args.routes {
        builder = builder.routes(printer.clone().recipient());
    }
    for module in &args.require {
        builder = builder.require_module(module, printer.clone().recipient());
    }
    if let Some(ca_file) = &args.ca_file {
        let tls = isp_cluster::TlsConfig::new()
            .add_ca_file(ca_file)
            .map_err(|e| ErrorChain(&e).to_string())?;
        builder = builder.tls(tls);
    }
    if args.infra.is_some() {
        // Before the client starts, so that its first attempt is counted.
        isp_cluster::infra::install_recorder()?;
    }
    #[cfg(feature = "rpc")]
    if let Some(addr) = &args.rpc {
        let echo = |isp_cluster::rpc::Json(body): isp_cluster::rpc::Json<serde_json::Value>| async move {
            Ok::<_, isp_cluster::rpc::Error>(body)
        };
        let router = isp_cluster::rpc::Router::new().route("rpc/echo", echo);
        let server = isp_cluster::rpc::RpcServer::builder(router)
            .bind(addr.as_str())
            .map_err(|e| format!("cannot serve --rpc on {addr}: {e}"))?;
        builder = builder.rpc(&server);
    }
    let client = builder.start().map_err(|e| ErrorChain(&e).to_string())?;
    let infra = match args.infra {
        Some(addr) => {
            let server = isp_cluster::infra::Infra::new(client.clone())
                .serve(addr)
                .await
                .map_err(|e| format!("cannot serve --infra on {addr}: {e}"))?;
            emit(json!({"event": "infra", "address": server.addr().to_string()}));
            Some(server)
        }
        None => None,
    };
    shutdown_signal().await;
    log::info!("signal received; closing the session");
    client.close().await;
    if let Some(infra) = infra {
        infra.stop().await;
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio_select(actix_rt::signal::ctrl_c(), async move {
                    term.recv().await;
                })
                .await
            }
            Err(_) => {
                let _ = actix_rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_rt::signal::ctrl_c().await;
    }
}

/// Waits for the first of two futures.
async fn tokio_select<A: std::future::Future, B: std::future::Future>(a: A, b: B) {
    futures_util::future::select(Box::pin(a), Box::pin(b)).await;
}
