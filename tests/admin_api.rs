//! The embedded server's admin API of the real isp-config-service (v3.9),
//! through its Rust handle: what modules connected over loopback look like,
//! and configs created, updated, activated and synced the way the real
//! service does it, in its JSON.

use std::time::Duration;

use isp_cluster::server::admin_api::{
    CreateUpdateConfigRequest, GetByModuleIdRequest, GetByModuleNameRequest, IdRequest,
    SyncConfigRequest,
};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, EndpointDescriptor, ModuleInfo, RawJson,
};
use serde_json::{json, value::RawValue, Value};

mod common;
use common::{wait_until, Recorder};

const WAIT: Duration = Duration::from_secs(10);

/// The schema `orders` registers: `port` must be an integer.
fn orders_schema() -> Value {
    json!({"type": "object", "properties": {"port": {"type": "integer"}}})
}

fn raw(value: Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).unwrap()
}

/// Object keys of a JSON value, sorted.
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

async fn start_server() -> ConfigServer {
    common::init_logs();
    ConfigServer::builder()
        .start()
        .await
        .expect("embedded server starts")
}

#[actix::test]
async fn modules_and_routes_are_listed_in_the_real_services_json() {
    let server = start_server().await;
    let mut info = ModuleInfo::new(
        "orders",
        "2.1.0",
        AddressConfiguration::new("10.0.0.7", "9100"),
    );
    info.endpoints = vec![
        EndpointDescriptor::new("orders/list"),
        EndpointDescriptor::new("orders/create"),
    ];
    let schema = RawJson::from_value(&orders_schema()).unwrap();
    let config = RawJson::from_value(&json!({"port": 1})).unwrap();
    let client = ClusterClient::builder(info, ConfigData::new("2.1.0", schema, config))
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let api = server.admin_api();

    let modules = serde_json::to_value(api.get_modules_info().await.unwrap()).unwrap();
    let [orders] = modules.as_array().expect("a list").as_slice() else {
        panic!("one module: {modules}");
    };
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
    assert_eq!(orders["name"], "orders");
    // The real service's id: sha256("orders") in hex.
    assert_eq!(
        orders["id"],
        "1c168adb00d208e42f93314529f1fa9c0427eb63233ceda95a5db52b7012a719"
    );
    assert_eq!(orders["active"], true);
    assert_eq!(orders["configSchema"], orders_schema());
    assert_eq!(orders["lastDisconnectedAt"], Value::Null);
    let connected_at = orders["lastConnectedAt"].as_str().expect("a time");
    assert!(
        connected_at.len() == 20 && connected_at.ends_with('Z') && &connected_at[10..11] == "T",
        "{connected_at}"
    );

    let routes = serde_json::to_value(api.get_routes().await.unwrap()).unwrap();
    assert_eq!(routes, orders["status"], "the same instances");
    let route = &routes[0];
    assert_eq!(
        keys(route),
        [
            "address",
            "endpoints",
            "establishedAt",
            "id",
            "libVersion",
            "moduleName",
            "transport",
            "version"
        ]
    );
    assert_eq!(route["moduleName"], "orders");
    assert_eq!(route["version"], "2.1.0");
    assert_eq!(route["transport"], "grpc");
    assert_eq!(route["address"], json!({"ip": "10.0.0.7", "port": "9100"}));
    // Sorted by path; grpc endpoints get POST, as the real service gives them.
    assert_eq!(
        route["endpoints"],
        json!([
            {"httpMethod": "POST", "path": "orders/create", "inner": false},
            {"httpMethod": "POST", "path": "orders/list", "inner": false},
        ])
    );

    // The instance leaves: the module stays, inactive, with no status.
    client.close().await;
    assert!(wait_until(WAIT, || server.instances("orders").is_empty()).await);
    let modules = serde_json::to_value(api.get_modules_info().await.unwrap()).unwrap();
    assert_eq!(modules[0]["active"], false);
    assert_eq!(modules[0]["status"], Value::Null);
    assert!(modules[0]["lastDisconnectedAt"].is_string());
    assert_eq!(
        serde_json::to_value(api.get_routes().await.unwrap()).unwrap(),
        json!([])
    );
    server.stop().await;
}

#[actix::test]
async fn configs_are_checked_versioned_activated_and_pushed_as_the_real_service_does() {
    let server = start_server().await;
    let (recorder, seen) = Recorder::start_new();
    let info = ModuleInfo::new(
        "orders",
        "1.0.0",
        AddressConfiguration::new("10.0.0.7", "1"),
    );
    let schema = RawJson::from_value(&orders_schema()).unwrap();
    let config = RawJson::from_value(&json!({"port": 1})).unwrap();
    let client = ClusterClient::builder(info, ConfigData::new("1.0.0", schema, config))
        .hosts([server.addr().to_string()])
        .remote_config(recorder.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let api = server.admin_api();

    // The module's default config became its first, active config.
    let active = api
        .get_active_config_by_module_name(GetByModuleNameRequest::new("orders"))
        .await
        .unwrap();
    let as_json = serde_json::to_value(&active).unwrap();
    assert_eq!(
        keys(&as_json),
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
    assert_eq!(
        (
            active.name.as_str(),
            active.version,
            active.active,
            active.valid
        ),
        ("orders", 1, true, true)
    );
    assert_eq!(active.data.get(), r#"{"port":1}"#);
    // The real service's id of a module's first config: sha256(module id).
    assert_eq!(
        active.id,
        "2d56f794953f5113d27afade1a8cf5d458953f260e56ca8484536a53c89902a3"
    );
    let module_id = active.module_id.clone();

    // A config that violates the schema: 2003, the field named, nothing kept.
    let mut update =
        CreateUpdateConfigRequest::new("orders", module_id.clone(), raw(json!({"port": "x"})));
    update.id.clone_from(&active.id);
    update.version = 1;
    let refused = api.create_update_config(update.clone()).await.unwrap_err();
    assert_eq!(refused.error_code, 2003);
    assert_eq!(refused.error_message, "invalid config");
    assert_eq!(
        refused.details.keys().collect::<Vec<_>>(),
        ["port"],
        "{refused}"
    );
    assert!(
        !refused.to_string().contains("\"x\""),
        "no config value in {refused}"
    );

    // A valid update of the active config: the next version, pushed at once.
    update.data = Some(raw(json!({"port": 2})));
    let updated = api.create_update_config(update.clone()).await.unwrap();
    let as_json = serde_json::to_value(&updated).unwrap();
    assert_eq!(as_json["isChanged"], true);
    assert_eq!(
        (as_json["version"].clone(), as_json["active"].clone()),
        (json!(2), json!(true))
    );
    assert!(
        wait_until(WAIT, || seen.configs().last().map(|c| &c.0)
            == Some(&json!({"port": 2})))
        .await
    );

    // The same version again: someone else updated it first (2004).
    update.data = Some(raw(json!({"port": 3})));
    let conflict = api.create_update_config(update.clone()).await.unwrap_err();
    assert_eq!(
        (conflict.error_code, conflict.error_message.as_str()),
        (2004, "someone has updated the config")
    );
    // The same name and data (keys in another order): nothing changes.
    let mut same = update.clone();
    same.data = Some(raw(json!({"port": 2})));
    same.version = 2;
    let unchanged = api.create_update_config(same).await.unwrap();
    assert!(!unchanged.is_changed);
    assert_eq!(unchanged.version, 2);

    // Unsafe skips the schema.
    let mut unsafe_update = update.clone();
    unsafe_update.version = 2;
    unsafe_update.data = Some(raw(json!({"port": "no schema check"})));
    unsafe_update.r#unsafe = true;
    assert_eq!(
        api.create_update_config(unsafe_update)
            .await
            .unwrap()
            .version,
        3
    );

    // A new config is inactive until marked active; then it is pushed.
    let created = api
        .create_update_config(CreateUpdateConfigRequest::new(
            "spare",
            module_id.clone(),
            raw(json!({"port": 9})),
        ))
        .await
        .unwrap();
    assert!(created.is_changed && !created.active && created.version == 1);
    assert_eq!(created.id.len(), 36, "a uuid: {}", created.id);
    let listed = api
        .get_configs_by_module_id(GetByModuleIdRequest::new(module_id.clone()))
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.name.as_str(), c.active, c.valid))
            .collect::<Vec<_>>(),
        [("spare", false, true), ("orders", true, false)],
        "newest first; the unsafe one fails the schema"
    );
    api.mark_config_as_active(IdRequest::new(created.id.clone()))
        .await
        .unwrap();
    assert!(
        wait_until(WAIT, || seen.configs().last().map(|c| &c.0)
            == Some(&json!({"port": 9})))
        .await
    );
    assert_eq!(server.config("orders"), Some(json!({"port": 9})));
    let fetched = api
        .get_config_by_id(IdRequest::new(created.id.clone()))
        .await
        .unwrap();
    assert!(fetched.active);

    // Sync pushes the active config once more.
    let pushes = seen.configs().len();
    api.sync_config(SyncConfigRequest::new("orders"))
        .await
        .unwrap();
    assert!(wait_until(WAIT, || seen.configs().len() == pushes + 1).await);

    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn refusals_carry_the_real_services_codes_and_messages() {
    let server = ConfigServer::builder()
        .config("no-schema", json!({"a": 1}))
        .start()
        .await
        .unwrap();
    let api = server.admin_api();

    let unknown = api
        .get_active_config_by_module_name(GetByModuleNameRequest::new("nobody"))
        .await
        .unwrap_err();
    assert_eq!(
        (unknown.error_code, unknown.error_message.as_str()),
        (2001, "module not found")
    );
    let unknown = api
        .sync_config(SyncConfigRequest::new("nobody"))
        .await
        .unwrap_err();
    assert_eq!(unknown.error_code, 2001);

    let missing = api
        .get_active_config_by_module_name(GetByModuleNameRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (missing.error_code, missing.error_message.as_str()),
        (400, "invalid request body")
    );
    assert_eq!(
        missing.details["moduleName"],
        "ModuleName is a required field"
    );
    let missing = api
        .create_update_config(CreateUpdateConfigRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        missing.details.keys().collect::<Vec<_>>(),
        ["moduleId", "name"]
    );

    // A module that never sent a schema: nothing to check against (2005).
    let modules = api.get_modules_info().await.unwrap();
    let no_schema = modules.iter().find(|m| m.name == "no-schema").unwrap();
    assert!(no_schema.config_schema.is_none() && !no_schema.active);
    let refused = api
        .create_update_config(CreateUpdateConfigRequest::new(
            "x",
            no_schema.id.clone(),
            raw(json!({})),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.error_code, refused.error_message.as_str()),
        (2005, "config schema not found")
    );
    let not_found = api
        .get_config_by_id(IdRequest::new("no such id"))
        .await
        .unwrap_err();
    assert_eq!(
        (not_found.error_code, not_found.error_message.as_str()),
        (2002, "config not found")
    );
    let not_found = api
        .mark_config_as_active(IdRequest::new("no such id"))
        .await
        .unwrap_err();
    assert_eq!(not_found.error_code, 2002);
    assert!(api
        .get_configs_by_module_id(GetByModuleIdRequest::new("no such module"))
        .await
        .unwrap()
        .is_empty());
    server.stop().await;
}
