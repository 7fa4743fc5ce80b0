//! The last good config on disk: written when the receiver accepted it,
//! delivered at the next start before any session, replaced by the node's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use actix::prelude::*;
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, BuildError, ClusterClient, ClusterClientBuilder, ConfigChanged,
    ConfigData, ConfigSource, ModuleInfo, RawJson, ReceiverError, RemoteConfig, SessionState,
    Setting, TypedConfig,
};
use serde_json::{json, Value};

mod common;
use common::wait_until;

const WAIT: Duration = Duration::from_secs(5);

// ---- support -----------------------------------------------------------------

/// Every warning and error line of this test binary.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The warning lines that mention `text`.
fn warnings_about(text: &str) -> Vec<String> {
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("WARN") && l.contains(text))
        .cloned()
        .collect()
}

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "isp-cluster-cache-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file's JSON, if it holds one.
fn file_json(path: &Path) -> Option<Value> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[derive(Clone, Debug)]
struct Seen {
    config: Value,
    source: ConfigSource,
    initial: bool,
    at: Instant,
}

#[derive(Clone, Default)]
struct Log {
    accepted: Arc<Mutex<Vec<Seen>>>,
    rejected: Arc<Mutex<Vec<Value>>>,
}

impl Log {
    fn accepted(&self) -> Vec<Seen> {
        self.accepted.lock().unwrap().clone()
    }
    fn configs(&self) -> Vec<(Value, ConfigSource)> {
        self.accepted()
            .into_iter()
            .map(|s| (s.config, s.source))
            .collect()
    }
    fn rejected(&self) -> Vec<Value> {
        self.rejected.lock().unwrap().clone()
    }
}

/// A config receiver that rejects every config with `"reject": true`.
struct Receiver(Log);

impl Receiver {
    fn start_new() -> (Addr<Receiver>, Log) {
        let log = Log::default();
        (Receiver(log.clone()).start(), log)
    }
}

impl Actor for Receiver {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Receiver {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let at = Instant::now();
        let config: Value = msg.parse()?;
        if config["reject"] == true {
            self.0.rejected.lock().unwrap().push(config);
            return Err("rejected by the test".into());
        }
        self.0.accepted.lock().unwrap().push(Seen {
            config,
            source: msg.source(),
            initial: msg.initial,
            at,
        });
        Ok(())
    }
}

fn module(name: &str) -> ClusterClientBuilder {
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new("10.0.0.9", "9009"));
    let schema = RawJson::from_value(&json!({"title": "Remote config", "type": "object"})).unwrap();
    ClusterClient::builder(
        info,
        ConfigData::new("1.0.0", schema, RawJson::empty_object()),
    )
    .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn server(module: &str, config: Value) -> ConfigServer {
    ConfigServer::builder()
        .listen("127.0.0.1:0")
        .config(module, config)
        .start()
        .await
        .expect("embedded server starts")
}

// ---- scenarios ---------------------------------------------------------------

#[actix::test]
async fn a_cache_from_one_run_is_delivered_by_the_next_within_100_ms_while_every_node_is_down() {
    capture_logs();
    let dir = TempDir::new("next-run");
    let path = dir.file("orders.json");
    let first_config = json!({"limit": 1, "db": {"password": "pw-cache-1"}});
    let server = server("orders", first_config.clone()).await;
    let host = server.addr().to_string();

    // Run 1: the node's config is accepted, so it is cached.
    let (receiver, _) = Receiver::start_new();
    let client = module("orders")
        .hosts([host.clone()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || file_json(&path) == Some(first_config.clone())).await);
    #[cfg(unix)]
    assert_eq!(
        format!("{:o}", mode(&path)),
        "600",
        "configs hold secrets: owner only"
    );
    client.close().await;
    server.stop().await;

    // Run 2, every node down (the node's port is closed): the cached config
    // arrives at once, marked as such, and the module is not healthy.
    let (receiver, seen) = Receiver::start_new();
    let started = Instant::now();
    let client = module("orders")
        .hosts([host.clone()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !seen.accepted().is_empty()).await);
    let cached = seen.accepted()[0].clone();
    let latency = cached.at - started;
    assert!(latency < Duration::from_millis(100), "{latency:?}");
    assert_eq!(cached.config, first_config);
    assert_eq!(cached.source, ConfigSource::Cache);
    assert!(cached.initial, "the first config of the process");
    assert!(wait_until(WAIT, || client.status().connect_attempts >= 2).await);
    let status = client.healthcheck().unwrap_err().status;
    assert_ne!(status.state, SessionState::Active);
    assert_eq!(status.sessions_established, 0);

    // The node comes back with a newer config: it replaces the cached one,
    // in the receiver and on disk.
    let second_config = json!({"limit": 2, "db": {"password": "pw-cache-2"}});
    let server = ConfigServer::builder()
        .listen(host.clone())
        .config("orders", second_config.clone())
        .start()
        .await
        .expect("the node's port is free again");
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let seen_now = seen.accepted();
    assert_eq!(
        seen.configs(),
        [
            (first_config, ConfigSource::Cache),
            (second_config.clone(), ConfigSource::Server)
        ]
    );
    assert!(seen_now[1].initial);
    assert!(wait_until(WAIT, || file_json(&path) == Some(second_config.clone())).await);
    #[cfg(unix)]
    assert_eq!(format!("{:o}", mode(&path)), "600");
    assert_eq!(client.status().cache_writes_failed, 0);
    let lines = CAPTURE.0.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.contains("pw-cache-")),
        "no config in any log line: {lines:?}"
    );
    client.close().await;
    server.stop().await;
}

/// With every node down, `config_applied()` resolves once the cached
/// config is applied (answering `Cache`) while `ready()` (registered) times
/// out; once a node is up, the source reads `Server`. A client with no
/// cache and no node waits in vain and says why.
#[actix::test]
async fn config_applied_sees_a_cached_config_while_every_node_is_down() {
    capture_logs();
    let dir = TempDir::new("config-applied");
    let path = dir.file("orders.json");
    let cached = json!({"limit": 7});
    std::fs::write(&path, cached.to_string()).unwrap();
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };

    let (receiver, seen) = Receiver::start_new();
    let client = module("orders")
        .hosts([dead.clone()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    let source = client
        .config_applied(WAIT)
        .await
        .expect("the cached config");
    assert_eq!(source, ConfigSource::Cache);
    assert_eq!(seen.configs(), [(cached, ConfigSource::Cache)]);
    assert_eq!(client.status().config_source, Some(ConfigSource::Cache));
    let json = serde_json::to_value(client.status()).unwrap();
    assert_eq!(json["configSource"], "cache");
    let not_registered = client.ready(Duration::from_millis(300)).await.unwrap_err();
    assert!(
        not_registered
            .to_string()
            .contains("not ready within 300 ms"),
        "{not_registered}"
    );
    client.close().await;

    // The same with a node up: the node's config replaces the cached one.
    let server = server("orders", json!({"limit": 8})).await;
    let (receiver, seen) = Receiver::start_new();
    let client = module("orders")
        .hosts([server.addr().to_string()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    client.ready(WAIT).await.expect("registered");
    assert_eq!(
        client.config_applied(WAIT).await.unwrap(),
        ConfigSource::Server
    );
    assert_eq!(seen.configs().last().unwrap().1, ConfigSource::Server);
    client.close().await;
    server.stop().await;

    // No cache, no node: nothing is applied, and the error says so.
    let (receiver, _) = Receiver::start_new();
    let client = module("orders")
        .hosts([dead])
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    let waited = client
        .config_applied(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        waited.to_string().contains("not ready within 200 ms"),
        "{waited}"
    );
    client.close().await;
    let closed = client.config_applied(WAIT).await.unwrap_err();
    assert!(closed.to_string().contains("closed"), "{closed}");
}

#[actix::test]
async fn with_a_node_up_at_start_the_cached_config_goes_first_and_typed_config_passes_the_source_on(
) {
    #[derive(serde::Deserialize)]
    struct Limits {
        limit: u32,
    }
    type Changes = Arc<Mutex<Vec<(u32, Option<u32>, ConfigSource)>>>;
    struct App(Changes);
    impl Actor for App {
        type Context = Context<Self>;
    }
    impl Handler<ConfigChanged<Limits>> for App {
        type Result = Result<(), ReceiverError>;
        fn handle(&mut self, msg: ConfigChanged<Limits>, _: &mut Context<Self>) -> Self::Result {
            let previous = msg.previous.map(|p| p.limit);
            self.0
                .lock()
                .unwrap()
                .push((msg.new.limit, previous, msg.source));
            Ok(())
        }
    }

    let dir = TempDir::new("node-up");
    let path = dir.file("billing.json");
    std::fs::write(&path, r#"{"limit":0}"#).unwrap();
    let server = server("billing", json!({"limit": 3})).await;
    let changes = Changes::default();
    let typed = TypedConfig::new(App(changes.clone()).start().recipient()).start();
    let client = module("billing")
        .hosts([server.addr().to_string()])
        .config_cache(&path)
        .remote_config(typed.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert_eq!(
        *changes.lock().unwrap(),
        [
            (0, None, ConfigSource::Cache),
            (3, Some(0), ConfigSource::Server)
        ]
    );
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_damaged_or_unreadable_cache_is_a_warning_naming_it_and_is_never_delivered() {
    capture_logs();
    let dir = TempDir::new("damaged");
    let server = server("audit", json!({"limit": 4})).await;

    // Half a config (a crash of a writer that was not atomic).
    let damaged = dir.file("damaged.json");
    std::fs::write(&damaged, r#"{"limit":4, "password":"pw-dam"#).unwrap();
    let (receiver, seen) = Receiver::start_new();
    let client = module("audit")
        .hosts([server.addr().to_string()])
        .config_cache(&damaged)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert_eq!(
        seen.configs(),
        [(json!({"limit": 4}), ConfigSource::Server)]
    );
    let warnings = warnings_about(&damaged.display().to_string());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("is damaged (not valid json:"),
        "{warnings:?}"
    );
    assert!(!warnings[0].contains("pw-dam"), "{warnings:?}");
    // The node's config, accepted, takes its place.
    assert!(wait_until(WAIT, || file_json(&damaged) == Some(json!({"limit": 4}))).await);
    client.close().await;

    // A directory where the file should be: unreadable, and unwritable.
    let unreadable = dir.file("unreadable.json");
    std::fs::create_dir(&unreadable).unwrap();
    let (receiver, seen) = Receiver::start_new();
    let client = module("audit")
        .hosts([server.addr().to_string()])
        .config_cache(&unreadable)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert_eq!(
        seen.configs(),
        [(json!({"limit": 4}), ConfigSource::Server)]
    );
    let shown = unreadable.display().to_string();
    assert!(
        warnings_about(&shown)
            .iter()
            .any(|l| l.contains("cannot read the config cache")),
        "{:?}",
        warnings_about(&shown)
    );
    assert!(wait_until(WAIT, || client.status().cache_writes_failed == 1).await);
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_rejected_config_is_never_written() {
    let dir = TempDir::new("rejected");
    // Rejected in the handshake: the session fails, again and again, and
    // nothing reaches the disk.
    let path = dir.file("handshake.json");
    let server = server("quota", json!({"reject": true})).await;
    let (receiver, seen) = Receiver::start_new();
    let client = module("quota")
        .hosts([server.addr().to_string()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || seen.rejected().len() >= 2).await);
    actix::clock::sleep(Duration::from_millis(50)).await;
    assert!(!path.exists(), "a rejected config was cached");
    client.close().await;

    // Rejected after READY: the last accepted config stays on disk.
    let path = dir.file("active.json");
    server.set_config("quota", json!({"limit": 1})).unwrap();
    let (receiver, seen) = Receiver::start_new();
    let client = module("quota")
        .hosts([server.addr().to_string()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || file_json(&path) == Some(json!({"limit": 1}))).await);
    server
        .set_config("quota", json!({"limit": 13, "reject": true}))
        .unwrap();
    assert!(wait_until(WAIT, || seen.rejected().len() == 1).await);
    actix::clock::sleep(Duration::from_millis(100)).await;
    assert_eq!(file_json(&path), Some(json!({"limit": 1})));
    server.set_config("quota", json!({"limit": 2})).unwrap();
    assert!(wait_until(WAIT, || file_json(&path) == Some(json!({"limit": 2}))).await);
    assert!(client.healthcheck().is_ok());
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_failed_write_is_a_counted_warning_and_never_fatal() {
    capture_logs();
    let dir = TempDir::new("unwritable");
    let path = dir.file("no-such-directory").join("ledger.json");
    let server = server("ledger", json!({"limit": 1, "password": "pw-unwritten"})).await;
    let (receiver, seen) = Receiver::start_new();
    let client = module("ledger")
        .hosts([server.addr().to_string()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.status().cache_writes_failed == 1).await);
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    server.set_config("ledger", json!({"limit": 2})).unwrap();
    assert!(wait_until(WAIT, || client.status().cache_writes_failed == 2).await);
    assert!(client.healthcheck().is_ok(), "still registered");
    assert_eq!(seen.configs().len(), 2, "both configs were delivered");
    let warnings = warnings_about(&path.display().to_string());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("cannot write the config cache"),
        "{warnings:?}"
    );
    assert!(!warnings[0].contains("pw-unwritten"), "{warnings:?}");
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_cache_without_a_receiver_or_a_file_name_is_a_build_error() {
    let err = module("x")
        .hosts(["127.0.0.1:1"])
        .config_cache("cache.json")
        .start()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::InvalidSetting {
                setting: Setting::ConfigCache,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "invalid config cache: it needs a remote config receiver"
    );
    let (receiver, _) = Receiver::start_new();
    let err = module("x")
        .hosts(["127.0.0.1:1"])
        .config_cache("")
        .remote_config(receiver.recipient())
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config cache: the path names no file"
    );
}

/// A crash between writing and renaming leaves `.<name>.<pid>.<seq>.tmp`
/// files that hold a config: opening the cache removes those of a writer
/// that is gone, or that are too old to be a write under way, and nothing
/// else.
#[actix::test]
async fn stale_temporary_files_are_removed_when_the_cache_is_opened() {
    let dir = TempDir::new("stale-temps");
    let path = dir.file("orders.json");
    std::fs::write(&path, r#"{"limit":1}"#).unwrap();
    let secret = r#"{"db":{"password":"pw-left-behind"}}"#;
    // A writer that died (no such process).
    let dead = dir.file(".orders.json.999999999.0.tmp");
    // A live process (init), but written long ago: no write takes minutes.
    let old = dir.file(".orders.json.1.7.tmp");
    // A live process writing right now: kept.
    let fresh = dir.file(".orders.json.1.8.tmp");
    // Not ours.
    let unrelated = [
        dir.file(".orders.json.notes.tmp"),
        dir.file(".other.json.999999999.0.tmp"),
        dir.file("orders.json.bak"),
    ];
    for file in [&dead, &old, &fresh].into_iter().chain(&unrelated) {
        std::fs::write(file, secret).unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (receiver, log) = Receiver::start_new();
    let client = module("orders")
        .hosts([down.to_string()])
        .config_cache(&path)
        .remote_config(receiver.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !log.configs().is_empty()).await);
    #[cfg(target_os = "linux")]
    assert!(!dead.exists(), "a dead writer's temporary file stays");
    assert!(!old.exists(), "an old temporary file stays");
    assert!(fresh.exists(), "a live writer's temporary file was removed");
    for file in &unrelated {
        assert!(file.exists(), "{} was removed", file.display());
    }
    client.close().await;
}
