//! The embedded config-service, standalone: a binary of the crate behind the
//! `devserver` feature, so that it builds without any dev-dependency.
//!
//! ```text
//! cargo run --features devserver --bin isp-cluster-devserver -- --listen 127.0.0.1:9001 \
//!     [--config NAME=path.json ...] [--read-limit BYTES] [--admin-token TOKEN] [--allow-remote-modules]
//! cargo run --features devserver,rpc --bin isp-cluster-devserver -- [--rpc-listen 127.0.0.1:9002 | --no-rpc]
//! cargo install isp-cluster --features devserver --bin isp-cluster-devserver
//! ```
//!
//! A development and test server, in memory. On loopback (the default) the
//! admin API is open; any other listen address needs `--admin-token`, which
//! the admin API then requires as `Authorization: Bearer TOKEN`, and
//! `--allow-remote-modules`, since the module endpoint itself has no
//! authentication.
//!
//! Modules connect to `ws://127.0.0.1:9001/isp-etp/?module_name=NAME`; the
//! admin API is on the same port, e.g.
//! `curl -X PUT --data @new.json 127.0.0.1:9001/admin/config/NAME`.
//! Built with the `rpc` feature it also serves the real isp-config-service's
//! admin API over isp RPC (`config/module/get_modules_info`,
//! `config/config/create_update_config`, ...), on 127.0.0.1:9002 unless
//! `--rpc-listen` says otherwise (the real service's gRPC port is 9002);
//! `--no-rpc` leaves it off. Logs go to stderr; `RUST_LOG` is one level (`error`, `warn`, `info`, the
//! default, `debug` for frames, `trace` or `off`). Ctrl-C or SIGTERM closes
//! every session with 1000 and exits.

use std::process::ExitCode;

use isp_cluster::server::{ConfigServer, ConfigServerBuilder};

const USAGE: &str =
    "usage: isp-cluster-devserver [--listen ADDR] [--config NAME=path.json ...] [--read-limit BYTES] [--admin-token TOKEN] [--allow-remote-modules]
  --listen ADDR          address to listen on (default 127.0.0.1:9001)
  --config NAME=FILE     initial remote config of module NAME, a JSON file (repeatable)
  --read-limit BYTES     largest message accepted (default 4194304)
  --admin-token TOKEN    require Authorization: Bearer TOKEN on the admin API
                         (required to listen on anything but loopback)
  --allow-remote-modules serve modules on an address other than loopback (also
                         required there: the module endpoint has no authentication)
  --rpc-listen ADDR      (feature rpc) serve the admin API over isp RPC on ADDR
                         (default 127.0.0.1:9002)
  --no-rpc               (feature rpc) do not serve the admin API over isp RPC";

const DEFAULT_LISTEN: &str = "127.0.0.1:9001";

/// Where the admin API over isp RPC listens by default: the real service's
/// gRPC port.
#[cfg(feature = "rpc")]
const DEFAULT_RPC_LISTEN: &str = "127.0.0.1:9002";

/// The command line, parsed into a builder.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<ConfigServerBuilder, String> {
    let mut builder = ConfigServer::builder().listen(DEFAULT_LISTEN);
    #[cfg(feature = "rpc")]
    let mut rpc_listen = Some(DEFAULT_RPC_LISTEN.to_owned());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => builder = builder.listen(value("--listen")?),
            "--admin-token" => builder = builder.admin_token(value("--admin-token")?),
            "--allow-remote-modules" => builder = builder.allow_remote_modules(),
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
            #[cfg(feature = "rpc")]
            "--rpc-listen" => rpc_listen = Some(value("--rpc-listen")?),
            #[cfg(feature = "rpc")]
            "--no-rpc" => rpc_listen = None,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    #[cfg(feature = "rpc")]
    if let Some(addr) = rpc_listen {
        builder = builder.rpc_listen(addr);
    }
    Ok(builder)
}

/// Log lines to stderr at the one level `RUST_LOG` names: what a dev server
/// needs, without a logging crate (a binary cannot use the crate's
/// dev-dependencies, and `cargo install` must not need them).
struct StderrLogger;

impl StderrLogger {
    fn install() {
        let level = match std::env::var("RUST_LOG").as_deref().map(str::trim) {
            Ok("off") => log::LevelFilter::Off,
            Ok("error") => log::LevelFilter::Error,
            Ok("warn") => log::LevelFilter::Warn,
            Ok("debug") => log::LevelFilter::Debug,
            Ok("trace") => log::LevelFilter::Trace,
            _ => log::LevelFilter::Info,
        };
        if log::set_logger(&StderrLogger).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "{:<5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
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
    StderrLogger::install();
    let builder = match parse_args(std::env::args().skip(1)) {
        Ok(builder) => builder,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("isp-cluster-devserver: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("isp-cluster-devserver: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "modules connect to ws://{}/isp-etp/?module_name=NAME; admin API at http://{}/admin/modules",
        server.addr(),
        server.addr()
    );
    #[cfg(feature = "rpc")]
    if let Some(rpc) = server.rpc_addr() {
        log::info!("admin API over isp rpc at {rpc} (config/module/get_modules_info, ...)");
    }
    shutdown_signal().await;
    server.stop().await;
    ExitCode::SUCCESS
}
