//! The embedded server's admin API over isp RPC, called over loopback with
//! the crate's RPC client the way a tool written against the real
//! isp-config-service calls it: the real endpoint names, request bodies
//! written by hand in the real service's JSON, answers read by field name.

use std::time::Duration;

use isp_cluster::lb::HostsUpgrader as _;
use isp_cluster::rpc::{CallError, Code, RpcClient};
use isp_cluster::server::admin_api::ModuleInfo;
use isp_cluster::server::ConfigServer;
use isp_cluster::{AddressConfiguration, ClusterClient, ConfigData, ModuleInfo as Info, RawJson};
use serde_json::{json, Value};

mod common;
use common::{wait_until, Recorder};

const WAIT: Duration = Duration::from_secs(10);

/// A client of the server's RPC address, as a tool would hold one.
fn admin_client(server: &ConfigServer) -> RpcClient {
    let client = RpcClient::new("isp-config-service");
    let addr = server.rpc_addr().expect("the server serves rpc");
    client.upgrade(&[addr.to_string()]);
    client
}

/// Calls `endpoint` with a JSON body written by hand; the answer's JSON.
async fn call(client: &RpcClient, endpoint: &str, body: Value) -> Result<Value, CallError> {
    let answer = client
        .call(endpoint)
        .raw_json(body.to_string())
        .send_raw()
        .await?;
    Ok(if answer.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer).expect("the answer is json")
    })
}

/// Object keys, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[actix::test]
async fn a_tool_written_against_the_real_service_works_unchanged() {
    common::init_logs();
    let server = ConfigServer::builder()
        .rpc_listen("127.0.0.1:0")
        .start()
        .await
        .unwrap();
    let (recorder, seen) = Recorder::start_new();
    let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}});
    let module = ClusterClient::builder(
        Info::new(
            "orders",
            "1.0.0",
            AddressConfiguration::new("10.0.0.7", "9100"),
        ),
        ConfigData::new(
            "1.0.0",
            RawJson::from_value(&schema).unwrap(),
            RawJson::from_value(&json!({"port": 1})).unwrap(),
        ),
    )
    .hosts([server.addr().to_string()])
    .remote_config(recorder.recipient())
    .start()
    .unwrap();
    assert!(wait_until(WAIT, || module.healthcheck().is_ok()).await);
    let admin = admin_client(&server);

    // The module list, with its instance; no body, as the real one takes none.
    let modules = call(&admin, "config/module/get_modules_info", Value::Null)
        .await
        .unwrap();
    let orders = &modules[0];
    assert_eq!(
        keys(orders),
        [
            "active",
            "configSchema",
            "createdAt",
            "id",
            "lastConnectedAt",
            "lastDisconnectedAt",
            "name",
            "status"
        ]
    );
    assert_eq!(
        (orders["name"].clone(), orders["active"].clone()),
        (json!("orders"), json!(true))
    );
    assert_eq!(
        orders["status"][0]["address"],
        json!({"ip": "10.0.0.7", "port": "9100"})
    );
    // The crate's types read the same answer.
    let typed: Vec<ModuleInfo> = admin
        .call("config/module/get_modules_info")
        .send()
        .await
        .unwrap();
    assert_eq!(typed[0].id, orders["id"].as_str().unwrap());

    let routes = call(&admin, "config/routing/get_routes", Value::Null)
        .await
        .unwrap();
    assert_eq!(routes, orders["status"]);

    // The active config, by module name.
    let active = call(
        &admin,
        "config/config/get_active_config_by_module_name",
        json!({"moduleName": "orders"}),
    )
    .await
    .unwrap();
    assert_eq!(
        keys(&active),
        [
            "active",
            "createdAt",
            "data",
            "id",
            "moduleId",
            "name",
            "updatedAt",
            "valid",
            "version"
        ]
    );
    assert_eq!(active["data"], json!({"port": 1}));

    // An update that violates the schema: InvalidArgument, 2003, the field.
    let update = |port: Value, version: u64| {
        json!({
            "id": active["id"],
            "name": "orders",
            "moduleId": active["moduleId"],
            "version": version,
            "data": {"port": port},
            "unsafe": false
        })
    };
    let refused = call(
        &admin,
        "config/config/create_update_config",
        update(json!("x"), 1),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    let detail = refused.detail().expect("isp-kit's detail");
    assert_eq!(
        (detail.error_code, detail.error_message.as_str()),
        (2003, "invalid config")
    );
    assert_eq!(detail.details.keys().collect::<Vec<_>>(), ["port"]);

    // A valid one: the next version, answered with isChanged, pushed.
    let updated = call(
        &admin,
        "config/config/create_update_config",
        update(json!(2), 1),
    )
    .await
    .unwrap();
    assert_eq!(
        keys(&updated),
        [
            "active",
            "createdAt",
            "data",
            "id",
            "isChanged",
            "moduleId",
            "name",
            "updatedAt",
            "valid",
            "version"
        ]
    );
    assert_eq!(
        (updated["version"].clone(), updated["isChanged"].clone()),
        (json!(2), json!(true))
    );
    assert!(
        wait_until(WAIT, || seen.configs().last().map(|c| &c.0)
            == Some(&json!({"port": 2})))
        .await
    );

    // Sync answers an empty body, as the real one, and pushes again.
    let pushes = seen.configs().len();
    let synced = admin
        .call("config/config/sync")
        .raw_json(r#"{"moduleName":"orders"}"#)
        .send_raw()
        .await
        .unwrap();
    assert!(synced.is_empty(), "{synced:?}");
    assert!(wait_until(WAIT, || seen.configs().len() == pushes + 1).await);

    // Refusals as the real service words them.
    let unknown = call(
        &admin,
        "config/config/sync",
        json!({"moduleName": "nobody"}),
    )
    .await
    .unwrap_err();
    let detail = unknown.detail().expect("detail");
    assert_eq!(
        (detail.error_code, detail.error_message.as_str()),
        (2001, "module not found")
    );
    let missing = call(
        &admin,
        "config/config/get_active_config_by_module_name",
        json!({}),
    )
    .await
    .unwrap_err();
    let detail = missing.detail().expect("detail");
    assert_eq!(detail.error_code, 400);
    assert_eq!(
        detail.details["moduleName"],
        "ModuleName is a required field"
    );
    let no_endpoint = call(&admin, "config/config/no_such_thing", json!({}))
        .await
        .unwrap_err();
    assert_eq!(no_endpoint.code(), Code::NotFound);

    module.close().await;
    server.stop().await;
}

#[actix::test]
async fn with_an_admin_token_every_call_carries_it() {
    common::init_logs();
    let server = ConfigServer::builder()
        .admin_token("s3cret")
        .rpc_listen("127.0.0.1:0")
        .config("orders", json!({"port": 1}))
        .start()
        .await
        .unwrap();
    let admin = admin_client(&server);
    let refused = admin
        .call("config/module/get_modules_info")
        .send_raw()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let wrong = admin
        .call("config/module/get_modules_info")
        .header("authorization", "Bearer guess")
        .send_raw()
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let modules: Value = admin
        .call("config/module/get_modules_info")
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(modules[0]["name"], "orders");
    server.stop().await;
}

#[actix::test]
async fn beyond_loopback_the_rpc_admin_api_needs_a_token() {
    let refused = ConfigServer::builder()
        .rpc_listen("0.0.0.0:0")
        .start()
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(refused.to_string().contains("admin token"), "{refused}");
}
