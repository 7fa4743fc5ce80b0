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

#[actix::test]
async fn no_secret_value_appears_in_any_log_line() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

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
    server.set_config("vault", changed);
    server.set_config("vault", json!("password=raw-string-secret"));
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
    server.set_config("vault", json!({"token": "tok-456-value"}));
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
