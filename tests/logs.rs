//! No secret reaches a log line, at any level, from the client or the
//! embedded server; errors name the event they are about.

use std::sync::Mutex;
use std::time::Duration;

use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, ModuleInfo, RawJson,
    CONFIG_SEND_CONFIG_CHANGED, CONFIG_SEND_ROUTES_CHANGED,
};
use serde_json::json;

mod common;
mod peer;
use common::{wait_until, Recorder};
use peer::ScriptedPeer;

/// Every record at every level, formatted as a line.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

const SECRETS: [&str; 7] = [
    "pw-123-value",
    "tok-456-value",
    "cred-789-value",
    "sk-000-value",
    "schema-default-pw",
    "raw-string-secret",
    "unparseable-secret",
];

fn lines() -> Vec<String> {
    CAPTURE.0.lock().unwrap().clone()
}

/// Whether an error line containing `text` was logged.
fn error_line_with(text: &'static str) -> impl Fn() -> bool {
    move || {
        lines()
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains(text))
    }
}

fn vault() -> ModuleInfo {
    ModuleInfo::new(
        "vault",
        "1.0.0",
        AddressConfiguration::new("10.0.0.7", "9007"),
    )
}

/// Installs the capturing logger once for the whole binary.
fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

#[actix::test]
async fn no_secret_value_appears_in_any_log_line() {
    capture_logs();

    let secret_config = json!({
        "db": {"host": "db.local", "password": "pw-123-value"},
        "apiToken": "tok-456-value",
        "upstream": {"credentials": {"user": "svc", "key": "cred-789-value"}},
        "keys": [{"secretKey": "sk-000-value"}],
    });
    let server = ConfigServer::builder()
        .config("vault", secret_config.clone())
        .start()
        .await
        .unwrap();
    let info = vault();
    let schema = RawJson::from_value(&json!({
        "title": "Remote config",
        "properties": {"password": {"type": "string", "default": "schema-default-pw"}},
    }))
    .unwrap();
    let default = RawJson::from_value(&json!({"password": "pw-123-value"})).unwrap();
    let (rec, seen) = Recorder::start_new();
    let client = ClusterClient::builder(info, ConfigData::new("1.0.0", schema, default))
        .hosts([server.addr().to_string()])
        .remote_config(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);

    // A change, then a config that is not an object at all.
    let mut changed = secret_config.clone();
    changed["apiToken"] = json!("tok-456-value");
    server.set_config("vault", changed).unwrap();
    server
        .set_config("vault", json!("password=raw-string-secret"))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || seen.configs().len() == 3).await);
    assert_eq!(seen.configs()[2].0, json!("password=raw-string-secret"));
    client.close().await;
    server.stop().await;

    // A peer that sends an unparseable config and bad routes after READY.
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.handshake(r#"{"token":"tok-456-value"}"#).await;
        conn.send_event(
            CONFIG_SEND_CONFIG_CHANGED,
            r#"{"password":"unparseable-secret""#,
        )
        .await;
        conn.send_event(CONFIG_SEND_ROUTES_CHANGED, r#"[{"moduleName":"#)
            .await;
        conn.until_closed().await;
    })
    .await;
    let (rec, _) = Recorder::start_new();
    let info = vault();
    let client = ClusterClient::builder(info, ConfigData::default())
        .hosts([peer.host()])
        .remote_config(rec.clone().recipient())
        .routes(rec.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(
            Duration::from_secs(5),
            error_line_with(CONFIG_SEND_ROUTES_CHANGED)
        )
        .await
    );
    assert!(error_line_with(CONFIG_SEND_CONFIG_CHANGED)());
    client.close().await;

    // A receiver that stopped after READY: an error naming it and the event.
    let server = ConfigServer::builder().start().await.unwrap();
    let (rec, _) = Recorder::start_new();
    let info = vault();
    let client = ClusterClient::builder(info, ConfigData::default())
        .hosts([server.addr().to_string()])
        .remote_config(rec.clone().recipient())
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    rec.send(common::Stop).await.unwrap();
    server
        .set_config("vault", json!({"token": "tok-456-value"}))
        .unwrap();
    let stopped = "remote config receiver is stopped (its mailbox is closed); \
                   CONFIG:SEND_CONFIG_CHANGED not delivered";
    assert!(wait_until(Duration::from_secs(5), error_line_with(stopped)).await);
    client.close().await;
    server.stop().await;

    let lines = lines();
    for secret in SECRETS {
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked: {leaks:#?}");
    }
    // The payload path was exercised: masked payloads were logged at debug.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("DEBUG") && l.contains(r#""password":"***""#)),
        "no masked payload logged"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("bytes hidden: not a json object")));
    // Payloads only at debug or below.
    for line in &lines {
        if line.starts_with("INFO") || line.starts_with("WARN") || line.starts_with("ERROR") {
            assert!(!line.contains("db.local"), "payload above debug: {line}");
        }
    }
}

// ---- receiver errors: typed, offline, cache --------------------------------

/// Every value here is a secret that a receiver's error could quote.
const RECEIVER_SECRETS: [&str; 6] = [
    "hunter2-typed",
    "hunter2-changed",
    "hunter2-validated",
    "hunter2-offline",
    "hunter2-serde",
    "hunter2-cached",
];

#[derive(Debug, serde::Deserialize)]
struct Db {
    #[allow(dead_code)]
    host: String,
    password: String,
}

#[derive(Debug, serde::Deserialize)]
struct OrdersConfig {
    /// Under a secret path, so that the payload logged at debug is masked:
    /// only the receiver's error could leak it.
    #[serde(rename = "dbSecret")]
    db: Db,
}

/// Accepts every typed config.
struct OrdersApp;

impl actix::Actor for OrdersApp {
    type Context = actix::Context<Self>;
}

impl actix::Handler<isp_cluster::ConfigChanged<OrdersConfig>> for OrdersApp {
    type Result = Result<(), isp_cluster::ReceiverError>;
    fn handle(
        &mut self,
        _: isp_cluster::ConfigChanged<OrdersConfig>,
        _: &mut Self::Context,
    ) -> Self::Result {
        Ok(())
    }
}

fn typed_orders() -> actix::Addr<isp_cluster::TypedConfig<OrdersConfig>> {
    use actix::Actor;
    isp_cluster::TypedConfig::new(OrdersApp.start().recipient())
        .validate(|c: &OrdersConfig| {
            if c.db.password.len() < 40 {
                // A careless validator that quotes the value.
                Err(format!("db password {} is too short", c.db.password))
            } else {
                Ok(())
            }
        })
        .start()
}

/// A plain receiver that hands serde's own error back.
struct SerdeReceiver;

impl actix::Actor for SerdeReceiver {
    type Context = actix::Context<Self>;
}

impl actix::Handler<isp_cluster::RemoteConfig> for SerdeReceiver {
    type Result = Result<(), isp_cluster::ReceiverError>;
    fn handle(&mut self, msg: isp_cluster::RemoteConfig, _: &mut Self::Context) -> Self::Result {
        serde_json::from_slice::<OrdersConfig>(&msg.data)?;
        Ok(())
    }
}

fn assert_no_receiver_secret(what: &str, text: &str) {
    for secret in RECEIVER_SECRETS {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("isp-cluster-logs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[actix::test]
async fn no_receiver_error_quotes_a_config_value_anywhere() {
    use actix::Actor;
    capture_logs();
    let (endings_tx, endings_rx) = std::sync::mpsc::channel::<peer::Ending>();
    let peer = ScriptedPeer::start(move |mut conn| {
        let endings = endings_tx.clone();
        async move {
            conn.upgrade().await;
            if conn.index == 0 {
                // The initial config does not match the type: the session
                // fails, and the close frame says why.
                conn.register(r#"{"dbSecret":"postgres://app:hunter2-typed@db/orders"}"#)
                    .await;
                let (ending, _) = conn.until_ending().await;
                let _ = endings.send(ending);
                return;
            }
            let good = format!(
                r#"{{"dbSecret":{{"host":"db","password":"{}"}}}}"#,
                "x".repeat(40)
            );
            conn.handshake(&good).await;
            conn.send_event(
                CONFIG_SEND_CONFIG_CHANGED,
                r#"{"dbSecret":{"host":"db","password":["hunter2-changed"]}}"#,
            )
            .await;
            conn.send_event(
                CONFIG_SEND_CONFIG_CHANGED,
                r#"{"dbSecret":{"host":"db","password":"hunter2-validated"}}"#,
            )
            .await;
            conn.until_closed().await;
        }
    })
    .await;
    let (events, seen) = common::Recorder::start_new();
    let client = ClusterClient::builder(vault(), ConfigData::default())
        .hosts([peer.host()])
        .remote_config(typed_orders().recipient())
        .session_events(events.recipient())
        .backoff(Duration::from_millis(50), Duration::from_millis(100))
        .start()
        .unwrap();
    // The first session ends on the typed error; capture what it said
    // before the next session replaces the status.
    let ending = loop {
        if let Ok(ending) = endings_rx.try_recv() {
            break ending;
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(ending.code(), Some(1011), "{ending:?}");
    assert_no_receiver_secret("the close frame", ending.reason());
    // The config-service is told what failed, not the receiver's words.
    assert_eq!(ending.reason(), "config receiver rejected the config");
    assert!(
        wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await,
        "{:?}",
        client.status()
    );
    let inactive: Vec<String> = seen
        .events()
        .iter()
        .filter_map(|e| match e {
            isp_cluster::SessionEvent::Inactive { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(inactive.len(), 1, "{inactive:?}");
    assert_no_receiver_secret("SessionEvent::Inactive", &inactive[0]);
    // Safe, and still says what is wrong and where.
    assert!(
        inactive[0].contains("json data error at dbSecret (line 1 column")
            && inactive[0].contains("expected struct"),
        "{}",
        inactive[0]
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            let lines = lines();
            lines
                .iter()
                .any(|l| l.starts_with("ERROR") && l.contains("at dbSecret.password"))
                && lines
                    .iter()
                    .any(|l| l.starts_with("ERROR") && l.contains("config is invalid"))
        })
        .await
    );

    // The status, its Debug, the client's Debug and the healthcheck error
    // while the last error is a typed one.
    let status = client.status();
    let texts = [
        format!("{status:?}"),
        format!("{client:?}"),
        status.last_error.clone().unwrap_or_default(),
    ];
    for text in &texts {
        assert_no_receiver_secret("the status", text);
    }
    client.close().await;
    let failed = client.healthcheck().unwrap_err();
    assert_no_receiver_secret("HealthcheckError", &failed.to_string());
    assert_no_receiver_secret("HealthcheckError", &format!("{failed:?}"));

    // A plain receiver that hands serde's error back, in the handshake: its
    // text would reach the close frame within its 123 bytes.
    let (serde_endings_tx, serde_endings_rx) = std::sync::mpsc::channel::<peer::Ending>();
    let serde_peer = ScriptedPeer::start(move |mut conn| {
        let endings = serde_endings_tx.clone();
        async move {
            conn.upgrade().await;
            conn.register(r#"{"dbSecret":"hunter2-serde"}"#).await;
            let (ending, _) = conn.until_ending().await;
            let _ = endings.send(ending);
        }
    })
    .await;
    let serde_client = ClusterClient::builder(vault(), ConfigData::default())
        .hosts([serde_peer.host()])
        .remote_config(SerdeReceiver.start().recipient())
        .start()
        .unwrap();
    let mut ending = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            ending = serde_endings_rx.try_recv().ok();
            ending.is_some()
        })
        .await
    );
    let ending = ending.unwrap();
    assert_no_receiver_secret("the close frame", ending.reason());
    assert_eq!(ending.reason(), "config receiver rejected the config");
    serde_client.close().await;

    // Offline: a typed receiver and one that returns serde's error.
    let dir = scratch_dir("offline");
    let path = dir.join("remote.json");
    std::fs::write(&path, r#"{"dbSecret":"postgres://app:hunter2-offline@db"}"#).unwrap();
    let offline = isp_cluster::OfflineClient::new(&path, typed_orders().recipient());
    let err = offline.run().await.unwrap_err();
    assert_no_receiver_secret("OfflineError", &err.to_string());
    assert_no_receiver_secret("OfflineError", &format!("{err:?}"));
    assert!(err.to_string().contains("expected struct"), "{err}");
    std::fs::write(&path, r#"{"dbSecret":"postgres://app:hunter2-serde@db"}"#).unwrap();
    let offline = isp_cluster::OfflineClient::new(&path, SerdeReceiver.start().recipient());
    let err = offline.run().await.unwrap_err();
    assert_no_receiver_secret("OfflineError from serde", &err.to_string());
    assert_no_receiver_secret("OfflineError from serde", &format!("{err:?}"));
    assert!(
        err.to_string().contains("json data error at line 1 column"),
        "{err}"
    );

    // The cache: a cached config the receiver refuses.
    let cache = dir.join("cache.json");
    std::fs::write(&cache, r#"{"dbSecret":"postgres://app:hunter2-cached@db"}"#).unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = ClusterClient::builder(vault(), ConfigData::default())
        .hosts([closed_port.to_string()])
        .remote_config(typed_orders().recipient())
        .config_cache(&cache)
        .start()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || lines()
            .iter()
            .any(|l| l.contains("rejected config cache")))
        .await
    );
    let status = client.status();
    let rejection = status
        .last_rejection
        .as_ref()
        .expect("the rejection is kept");
    assert_eq!(rejection.source, isp_cluster::ConfigSource::Cache);
    assert_no_receiver_secret("Status of a cached rejection", &format!("{status:?}"));
    assert_no_receiver_secret(
        "Status JSON",
        &serde_json::to_string(&status).expect("Status serializes"),
    );
    client.close().await;
    std::fs::remove_dir_all(&dir).unwrap();

    for line in lines() {
        assert_no_receiver_secret("a log line", &line);
    }
}
