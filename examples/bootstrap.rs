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
//! greeter: {name: world}                      # the application's own key
//! EOF
//! echo '{"greeting":"hello"}' > conf/default_remote_config.json
//! cargo run --features devserver --bin isp-cluster-devserver -- --listen 127.0.0.1:9001 &
//! APP_MODE=dev cargo run --example bootstrap          # MODULENAME=other … overrides moduleName
//! curl -s 127.0.0.1:9002/                             # "hello, world"
//! APP_MODE=dev GREETER.NAME=you cargo run --example bootstrap   # "hello, you"
//! curl -s 127.0.0.1:9003/internal/health              # infraServerPort: inner port + 1
//! ```
//!
//! Stdout has one JSON object per line: `{"event":"started","module":…,
//! "infra":"ip:port","binding":"ip:port","name":…}` (`name`: the
//! application's own key `greeter.name`), then `{"event":"config",
//! "config":…}` for each remote config. The application's HTTP server
//! answers `GET /` on the binding address with the greeting and the name. A
//! bad local config prints its error (naming the file and the key) on
//! stderr and exits 1. SIGINT or SIGTERM stops in isp-kit's order: the
//! session closes with 1000 (the module leaves every caller's routes), then
//! the HTTP server drains, then the infra server stops; exit 0.

use std::io::Write;
use std::process::ExitCode;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, App, HttpServer};
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

/// The application's own keys of the local config (Go:
/// `boot.App.Config().Read(&conf.Local{})`), with the rules a Go team
/// writes as `validate:"required"`.
#[derive(Debug, serde::Deserialize, garde::Validate)]
struct Local {
    #[garde(dive)]
    greeter: GreeterLocal,
}

#[derive(Debug, serde::Deserialize, garde::Validate)]
struct GreeterLocal {
    /// Whom to greet: `greeter.name`, or the variable `GREETER.NAME`.
    #[garde(length(min = 1))]
    name: String,
}

/// Prints one JSON object per line; stdout is flushed after each.
fn emit(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Between leaving the cluster and draining HTTP: time for the callers to
/// take the routes without this instance (a few ms on one machine; isp-kit
/// waits none).
const LEAVE_GRACE: Duration = Duration::from_millis(200);

/// The greeting in force, shared with the HTTP handlers.
type Greeting = Arc<RwLock<String>>;

struct Greeter(Greeting);

impl Actor for Greeter {
    type Context = Context<Self>;
}

impl Handler<ConfigChanged<Config>> for Greeter {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: ConfigChanged<Config>, _: &mut Context<Self>) -> Self::Result {
        emit(json!({"event": "config", "config": &*msg.new}));
        if let Ok(mut greeting) = self.0.write() {
            greeting.clone_from(&msg.new.greeting);
        }
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
    let local: Local = boot.app_config().map_err(|e| e.to_string())?;
    let name = boot.module_info().module_name.clone();
    let greeting = Greeting::default();
    let typed = TypedConfig::new(Greeter(greeting.clone()).start().recipient()).start();
    let module = boot
        .start(typed.recipient())
        .await
        .map_err(|e| e.to_string())?;
    // Serve once a config is applied (from a node or a cache), not with
    // the defaults.
    module
        .config_applied(Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    let whom = local.greeter.name.clone();
    let server = HttpServer::new(move || {
        let greeting = greeting.clone();
        let whom = whom.clone();
        App::new().route(
            "/",
            web::get().to(move || {
                let text = greeting.read().map(|g| g.clone()).unwrap_or_default();
                let whom = whom.clone();
                async move { format!("{text}, {whom}") }
            }),
        )
    })
    .disable_signals() // Module::serve stops it on SIGTERM, after leaving the cluster
    .workers(1)
    .bind(module.binding_address())
    .map_err(|e| format!("cannot listen on {}: {e}", module.binding_address()))?
    .run();
    emit(json!({
        "event": "started",
        "module": name,
        "infra": module.infra_addr().map(|a| a.to_string()),
        "binding": module.binding_address(),
        "name": local.greeter.name,
    }));
    // isp-kit's order on SIGTERM or SIGINT: close 1000, then drain HTTP,
    // then stop the infra server.
    module
        .serve(server, LEAVE_GRACE)
        .await
        .map_err(|e| e.to_string())
}
