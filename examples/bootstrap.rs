//! A module configured only as a Go module of isp-kit is: by its local
//! config file and the environment, no flags (see the README, "From a Go
//! module's config files").
//!
//! ```sh
//! mkdir -p conf
//! cat > conf/config_dev.yml <<'EOF'
//! moduleName: greeter
//! configServiceAddress: {ip: "127.0.0.1", port: "9001"}
//! grpcOuterAddress: {ip: "", port: 9002}      # ip: found toward the config-service
//! grpcInnerAddress: {ip: "127.0.0.1", port: 9002}
//! EOF
//! echo '{"greeting":"hello"}' > conf/default_remote_config.json
//! cargo run --example config_service -- --listen 127.0.0.1:9001 &
//! APP_MODE=dev cargo run --example bootstrap          # MODULENAME=other … overrides moduleName
//! curl -s 127.0.0.1:9003/internal/health              # infraServerPort: inner port + 1
//! ```
//!
//! Stdout has one JSON object per line: `{"event":"started","module":…,
//! "infra":"ip:port","binding":"ip:port"}`, then `{"event":"config",
//! "config":…}` for each remote config. A bad local config prints its error
//! (naming the file and the key) on stderr and exits 1. SIGINT or SIGTERM
//! closes the session with 1000, stops the infra server and exits 0.

use std::io::Write;
use std::process::ExitCode;

use actix::prelude::*;
use isp_cluster::bootstrap::Bootstrap;
use isp_cluster::{ConfigChanged, ReceiverError, TypedConfig};
use serde_json::json;

/// The module's remote config; its schema is registered.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Config {
    /// What the module says.
    #[serde(default)]
    greeting: String,
}

/// Prints one JSON object per line; stdout is flushed after each.
fn emit(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Greeter;

impl Actor for Greeter {
    type Context = Context<Self>;
}

impl Handler<ConfigChanged<Config>> for Greeter {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: ConfigChanged<Config>, _: &mut Context<Self>) -> Self::Result {
        emit(json!({"event": "config", "config": &*msg.new}));
        Ok(())
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    // Read before the System starts: a bad config exits at once.
    let boot = match Bootstrap::from_env::<Config>("1.0.0") {
        Ok(boot) => boot,
        Err(e) => {
            eprintln!("bootstrap: {e}");
            return ExitCode::FAILURE;
        }
    };
    match actix::System::new().block_on(run(boot)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bootstrap: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(boot: Bootstrap) -> Result<(), String> {
    let name = boot.module_info().module_name.clone();
    let typed = TypedConfig::new(Greeter.start().recipient()).start();
    let module = boot
        .start(typed.recipient())
        .await
        .map_err(|e| e.to_string())?;
    emit(json!({
        "event": "started",
        "module": name,
        "infra": module.infra_addr().map(|a| a.to_string()),
        "binding": module.binding_address(),
    }));
    // The application's own server would listen on module.binding_address().
    shutdown_signal().await;
    log::info!("signal received; closing the session");
    module.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            let interrupt = Box::pin(actix_rt::signal::ctrl_c());
            let terminate = Box::pin(async move { term.recv().await });
            futures_util::future::select(interrupt, terminate).await;
            return;
        }
    }
    let _ = actix_rt::signal::ctrl_c().await;
}
