//! The typed config layer: parse, validate, keep the last good, (new, previous).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    config_schema, AddressConfiguration, ClusterClient, ConfigChanged, ConfigData, ModuleInfo,
    RawJson, ReceiverError, RemoteConfig, TypedConfig,
};
use serde::Deserialize;

mod common;
use common::{assert_last_error_within, wait_until};

#[derive(Debug, Deserialize, schemars::JsonSchema, PartialEq)]
struct Limits {
    /// Requests per second.
    rps: u32,
    #[serde(default)]
    burst: Option<u32>,
}

type Seen = Arc<Mutex<Vec<(u32, Option<u32>)>>>;

struct App {
    seen: Seen,
    reject_rps: Option<u32>,
}

impl Actor for App {
    type Context = Context<Self>;
}

impl Handler<ConfigChanged<Limits>> for App {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: ConfigChanged<Limits>, _: &mut Context<Self>) -> Self::Result {
        if Some(msg.new.rps) == self.reject_rps {
            return Err(format!("cannot apply rps {}", msg.new.rps).into());
        }
        let previous = msg.previous.map(|p| p.rps);
        self.seen.lock().unwrap().push((msg.new.rps, previous));
        Ok(())
    }
}

fn typed(seen: &Seen, reject_rps: Option<u32>) -> Addr<TypedConfig<Limits>> {
    let app = App {
        seen: seen.clone(),
        reject_rps,
    }
    .start();
    TypedConfig::new(app.recipient())
        .validate(|c: &Limits| {
            if c.rps == 0 {
                Err("rps must be positive".to_owned())
            } else {
                Ok(())
            }
        })
        .start()
}

fn config(json: &str) -> RemoteConfig {
    RemoteConfig::new(json.as_bytes().to_vec(), false)
}

#[actix::test]
async fn delivers_new_and_previous_and_keeps_the_last_good_value() {
    let seen = Seen::default();
    let typed = typed(&seen, Some(7));
    typed.send(config(r#"{"rps":10}"#)).await.unwrap().unwrap();
    typed
        .send(config(r#"{"rps":20,"burst":5}"#))
        .await
        .unwrap()
        .unwrap();

    let err = typed
        .send(config(r#"{"rps":"fast"}"#))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("config does not match"),
        "{err}"
    );
    let err = typed
        .send(config(r#"{"rps":0}"#))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "config is invalid: rps must be positive");
    let err = typed
        .send(config(r#"{"rps":7}"#))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot apply rps 7");

    // After three failures, the previous is still the last good one.
    typed.send(config(r#"{"rps":30}"#)).await.unwrap().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(10, None), (20, Some(10)), (30, Some(20))]
    );
}

#[actix::test]
async fn schema_is_titled_and_describes_the_type() {
    let schema: serde_json::Value = config_schema::<Limits>().parse().unwrap();
    assert_eq!(schema["title"], "Remote config");
    assert_eq!(schema["properties"]["rps"]["type"], "integer");
    assert_eq!(
        schema["properties"]["rps"]["description"],
        "Requests per second."
    );
    assert_eq!(schema["required"], serde_json::json!(["rps"]));
}

/// A nested config as a Go team writes it (`schema:"Title,Description"`,
/// `validate:"required,min=1"`), for the exact shape isp-kit's `rc`
/// generator gives it: every struct inline, titles and descriptions from
/// the attributes and doc comments, required fields from the rules, no
/// defaults, an `Option` as its inner type, no `$schema`, `$defs` or
/// `$ref`.
#[allow(dead_code)]
#[derive(serde::Deserialize, isp_cluster::schemars::JsonSchema)]
#[schemars(crate = "isp_cluster::schemars")]
#[serde(rename_all = "camelCase")]
struct Gateway {
    /// # Database
    /// Where the orders are kept.
    database: Database,
    /// # Rate limit
    #[serde(default)]
    #[garde(range(min = 1))]
    rate_limit: u32,
    #[schemars(title = "Upstreams", description = "Modules called in turn.")]
    #[garde(length(min = 1))]
    upstreams: Vec<String>,
    #[garde(required)]
    token: Option<String>,
    comment: Option<String>,
}

#[allow(dead_code)]
#[derive(serde::Deserialize, isp_cluster::schemars::JsonSchema)]
#[schemars(crate = "isp_cluster::schemars")]
struct Database {
    /// # Host
    #[garde(length(min = 1))]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    tls: Option<Tls>,
}

#[allow(dead_code)]
#[derive(serde::Deserialize, isp_cluster::schemars::JsonSchema)]
#[schemars(crate = "isp_cluster::schemars")]
struct Tls {
    verify: bool,
}

fn default_port() -> u16 {
    5432
}

#[test]
fn a_nested_schema_has_the_shape_of_isp_kits() {
    let schema: serde_json::Value = config_schema::<Gateway>().parse().unwrap();
    let want = serde_json::json!({
        "title": "Remote config",
        "type": "object",
        "properties": {
            "database": {
                "title": "Database",
                "description": "Where the orders are kept.",
                "type": "object",
                "properties": {
                    "host": {"title": "Host", "type": "string", "minLength": 1},
                    "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                    "tls": {
                        "type": "object",
                        "properties": {"verify": {"type": "boolean"}},
                        "required": ["verify"]
                    }
                },
                "required": ["host"]
            },
            "rateLimit": {"title": "Rate limit", "type": "integer", "minimum": 1},
            "upstreams": {
                "title": "Upstreams",
                "description": "Modules called in turn.",
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1
            },
            "token": {"type": "string"},
            "comment": {"type": "string"}
        },
        "required": ["database", "upstreams", "token"]
    });
    assert_eq!(schema, want, "{schema:#}");

    let titled: serde_json::Value = isp_cluster::ConfigSchema::new()
        .title("Gateway")
        .keep_defaults()
        .of::<Gateway>()
        .parse()
        .unwrap();
    assert_eq!(titled["title"], "Gateway");
    assert_eq!(titled["properties"]["rateLimit"]["default"], 0);
    assert_eq!(
        titled["properties"]["database"]["properties"]["port"]["default"],
        5432
    );
}

#[actix::test]
async fn a_typed_module_against_the_embedded_server() {
    let server = ConfigServer::builder()
        .config("limiter", serde_json::json!({"rps": 0}))
        .start()
        .await
        .unwrap();
    let seen = Seen::default();
    let typed = typed(&seen, None);
    let info = ModuleInfo::new(
        "limiter",
        "1.0.0",
        AddressConfiguration::new("10.0.0.1", "1"),
    );
    let data = ConfigData::new("1.0.0", config_schema::<Limits>(), RawJson::empty_object());
    let client = ClusterClient::builder(info, data)
        .hosts([server.addr().to_string()])
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .remote_config(typed.recipient())
        .start()
        .unwrap();
    // The stored config fails validation: the handshake cannot finish.
    assert_last_error_within(&client, Duration::from_secs(5), "rps must be positive").await;
    assert!(client.healthcheck().is_err());
    server
        .set_config("limiter", serde_json::json!({"rps": 5}))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    server
        .set_config("limiter", serde_json::json!({"rps": 6}))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || seen.lock().unwrap().len() == 2).await);
    assert_eq!(*seen.lock().unwrap(), [(5, None), (6, Some(5))]);
    assert_eq!(server.schema("limiter").unwrap()["title"], "Remote config");
    client.close().await;
    server.stop().await;
}

/// Takes 200 ms per config, recording (new, previous) as each arrives.
struct SlowApp(Seen);

impl Actor for SlowApp {
    type Context = Context<Self>;
}

impl Handler<ConfigChanged<Limits>> for SlowApp {
    type Result = ResponseActFuture<Self, Result<(), ReceiverError>>;

    fn handle(&mut self, msg: ConfigChanged<Limits>, _: &mut Context<Self>) -> Self::Result {
        self.0
            .lock()
            .unwrap()
            .push((msg.new.rps, msg.previous.map(|p| p.rps)));
        Box::pin(
            actix::clock::sleep(Duration::from_millis(200))
                .into_actor(self)
                .map(|_, _, _| Ok(())),
        )
    }
}

#[actix::test]
async fn deliveries_are_one_at_a_time_so_previous_is_never_stale() {
    let seen = Seen::default();
    let typed = TypedConfig::new(SlowApp(seen.clone()).start().recipient()).start();
    // The first config times out at the sender (as a client's config
    // timeout would) while the target is still applying it; the next one
    // must wait for it and see it as `previous`.
    let first = typed
        .send(RemoteConfig::new(&br#"{"rps":1}"#[..], true))
        .timeout(Duration::from_millis(50))
        .await;
    assert!(matches!(first, Err(MailboxError::Timeout)));
    typed
        .send(RemoteConfig::new(&br#"{"rps":2}"#[..], false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [(1, None), (2, Some(1))]);
}
