//! The embedded config-service, standalone.
//!
//! ```text
//! cargo run --example config_service -- --listen 127.0.0.1:9001 \
//!     [--config NAME=path.json ...] [--read-limit BYTES] [--admin-token TOKEN]
//! ```
//!
//! A development and test server, in memory. On loopback (the default) the
//! admin API is open; any other listen address needs `--admin-token`, which
//! the admin API then requires as `Authorization: Bearer TOKEN`.
//!
//! Modules connect to `ws://127.0.0.1:9001/isp-etp/?module_name=NAME`; the
//! admin API is on the same port, e.g.
//! `curl -X PUT --data @new.json 127.0.0.1:9001/admin/config/NAME`.
//! Logs go to stderr (`RUST_LOG=debug` for frames). Ctrl-C or SIGTERM closes
//! every session with 1000 and exits.

use std::process::ExitCode;

use isp_cluster::server::{ConfigServer, ConfigServerBuilder};

const USAGE: &str =
    "usage: config_service [--listen ADDR] [--config NAME=path.json ...] [--read-limit BYTES] [--admin-token TOKEN]
  --listen ADDR          address to listen on (default 127.0.0.1:9001)
  --config NAME=FILE     initial remote config of module NAME, a JSON file (repeatable)
  --read-limit BYTES     largest message accepted (default 4194304)
  --admin-token TOKEN    require Authorization: Bearer TOKEN on the admin API
                         (required to listen on anything but loopback)";

const DEFAULT_LISTEN: &str = "127.0.0.1:9001";

/// The command line, parsed into a builder.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<ConfigServerBuilder, String> {
    let mut builder = ConfigServer::builder().listen(DEFAULT_LISTEN);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => builder = builder.listen(value("--listen")?),
            "--admin-token" => builder = builder.admin_token(value("--admin-token")?),
            "--read-limit" => {
                let limit = value("--read-limit")?;
                let limit = limit
                    .parse()
                    .map_err(|e| format!("--read-limit {limit:?}: {e}"))?;
                builder = builder.read_limit(limit);
            }
            "--config" => {
                let spec = value("--config")?;
                let (module, path) = spec
                    .split_once('=')
                    .filter(|(module, path)| !module.is_empty() && !path.is_empty())
                    .ok_or_else(|| format!("--config {spec:?}: expected NAME=path.json"))?;
                let text = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
                let config: serde_json::Value =
                    serde_json::from_slice(&text).map_err(|e| format!("{path}: {e}"))?;
                builder = builder.config(module, config);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(builder)
}

/// Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    use actix_web::rt::signal;
    use futures_util::future::{select, Either};

    let ctrl_c = Box::pin(signal::ctrl_c());
    #[cfg(unix)]
    {
        match signal::unix::signal(signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                let term = Box::pin(async move { term.recv().await });
                match select(ctrl_c, term).await {
                    Either::Left(_) => log::info!("ctrl-c received"),
                    Either::Right(_) => log::info!("SIGTERM received"),
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[actix::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let builder = match parse_args(std::env::args().skip(1)) {
        Ok(builder) => builder,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("config_service: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("config_service: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "modules connect to ws://{}/isp-etp/?module_name=NAME; admin API at http://{}/admin/modules",
        server.addr(),
        server.addr()
    );
    shutdown_signal().await;
    server.stop().await;
    ExitCode::SUCCESS
}
