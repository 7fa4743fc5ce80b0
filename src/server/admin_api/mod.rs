//! The admin API of the real isp-config-service (v3.9), on the embedded
//! server: the operations behind its isp RPC endpoints, with its requests,
//! answers and error codes, so that a tool written against the real service
//! works against the embedded one unchanged.
//!
//! | endpoint | operation |
//! |---|---|
//! | `config/module/get_modules_info` | [`AdminApi::get_modules_info`] |
//! | `config/routing/get_routes` | [`AdminApi::get_routes`] |
//! | `config/config/get_active_config_by_module_name` | [`AdminApi::get_active_config_by_module_name`] |
//! | `config/config/get_configs_by_module_id` | [`AdminApi::get_configs_by_module_id`] |
//! | `config/config/get_config_by_id` | [`AdminApi::get_config_by_id`] |
//! | `config/config/create_update_config` | [`AdminApi::create_update_config`] |
//! | `config/config/mark_config_as_active` | [`AdminApi::mark_config_as_active`] |
//! | `config/config/sync` | [`AdminApi::sync_config`] |
//!
//! The operations are plain async functions over the server's state: with
//! the `rpc` feature the server serves them over isp RPC (see
//! `ConfigServerBuilder::rpc_listen`), and a Rust test may call them
//! directly through [`ConfigServer::admin_api`](super::ConfigServer::admin_api).
//!
//! Where the embedded server differs from the real one: it keeps no config
//! history and knows no variables; a config is looked up within the module
//! the request names; and `create_update_config` with `unsafe` for a module
//! it has never heard of answers `module not found` (2001), since it keeps
//! configs by module.

mod error;
#[cfg(feature = "rpc")]
pub(crate) mod rpc;
mod types;

use std::sync::Arc;
use std::time::SystemTime;

use bytestring::ByteString;
use serde_json::value::RawValue;

pub use error::{
    AdminError, ERROR_CODE_CONFIG_NOT_FOUND, ERROR_CODE_CONFIG_VERSION_CONFLICT,
    ERROR_CODE_INVALID_CONFIG, ERROR_CODE_MODULE_NOT_FOUND, ERROR_CODE_SCHEMA_NOT_FOUND,
};
pub use types::{
    Config, Connection, ConnectionEndpoint, CreateUpdateConfigRequest, CreateUpdateConfigResponse,
    GetByModuleIdRequest, GetByModuleNameRequest, IdRequest, ModuleInfo, SyncConfigRequest,
};

use super::configs::StoredConfig;
use super::state::{LiveInstance, Shared};
use crate::time::Utc;
use types::require;

/// `config/module/get_modules_info`: every module with its live instances.
pub const GET_MODULES_INFO: &str = "config/module/get_modules_info";
/// `config/routing/get_routes`: every live instance.
pub const GET_ROUTES: &str = "config/routing/get_routes";
/// `config/config/get_active_config_by_module_name`.
pub const GET_ACTIVE_CONFIG_BY_MODULE_NAME: &str = "config/config/get_active_config_by_module_name";
/// `config/config/get_configs_by_module_id`.
pub const GET_CONFIGS_BY_MODULE_ID: &str = "config/config/get_configs_by_module_id";
/// `config/config/get_config_by_id`.
pub const GET_CONFIG_BY_ID: &str = "config/config/get_config_by_id";
/// `config/config/create_update_config`.
pub const CREATE_UPDATE_CONFIG: &str = "config/config/create_update_config";
/// `config/config/mark_config_as_active`.
pub const MARK_CONFIG_AS_ACTIVE: &str = "config/config/mark_config_as_active";
/// `config/config/sync`: the active config pushed again.
pub const SYNC_CONFIG: &str = "config/config/sync";

/// The embedded server's admin operations (Go: isp-config-service's
/// `controller/api` `Module` and `Config`); a cheap handle, clone it freely.
#[derive(Clone)]
pub struct AdminApi {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").finish_non_exhaustive()
    }
}

impl AdminApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// `config/module/get_modules_info`: every module the server knows, by
    /// name, with its schema and live instances (Go: `Module.Status`).
    pub async fn get_modules_info(&self) -> Result<Vec<ModuleInfo>, AdminError> {
        let state = self.shared.lock();
        let live = state.live_instances();
        let infos = state
            .all_modules()
            .map(|(name, module)| {
                let status: Vec<Connection> = live
                    .iter()
                    .filter(|instance| instance.module == name)
                    .map(connection)
                    .collect();
                ModuleInfo {
                    id: module.id.clone(),
                    name: name.to_owned(),
                    active: !status.is_empty(),
                    last_connected_at: module.last_connected_at.map(go_time),
                    last_disconnected_at: module.last_disconnected_at.map(go_time),
                    config_schema: module.schema.as_deref().map(raw_json),
                    status: (!status.is_empty()).then_some(status),
                    created_at: go_time(module.created_at),
                }
            })
            .collect();
        Ok(infos)
    }

    /// `config/routing/get_routes`: every live instance, the newest first
    /// (Go: `Module.Connections`).
    pub async fn get_routes(&self) -> Result<Vec<Connection>, AdminError> {
        let state = self.shared.lock();
        Ok(state.live_instances().iter().map(connection).collect())
    }

    /// `config/config/get_active_config_by_module_name`: the config pushed
    /// to the module. 2001 for an unknown module, 2002 when it has no
    /// active config.
    pub async fn get_active_config_by_module_name(
        &self,
        request: GetByModuleNameRequest,
    ) -> Result<Config, AdminError> {
        require(&[("moduleName", &request.module_name)])?;
        let state = self.shared.lock();
        let module = state
            .module(&request.module_name)
            .ok_or_else(AdminError::module_not_found)?;
        let active = module
            .configs
            .active()
            .ok_or_else(|| AdminError::config_not_found("active config not found"))?;
        Ok(config_dto(active, &module.id, true))
    }

    /// `config/config/get_configs_by_module_id`: the module's configs, the
    /// newest first, each checked against the module's schema (`valid`);
    /// none for an unknown module.
    pub async fn get_configs_by_module_id(
        &self,
        request: GetByModuleIdRequest,
    ) -> Result<Vec<Config>, AdminError> {
        require(&[("moduleId", &request.module_id)])?;
        let mut state = self.shared.lock();
        let Some(name) = state.module_name_by_id(&request.module_id) else {
            return Ok(Vec::new());
        };
        let Some(module) = state.known_module_mut(&name) else {
            return Ok(Vec::new());
        };
        let configs: Vec<StoredConfig> = module.configs.all().iter().rev().cloned().collect();
        Ok(configs
            .iter()
            .map(|config| {
                let valid = module
                    .violations_by_field(&config.data)
                    .is_none_or(|violations| violations.is_empty());
                config_dto(config, &module.id, valid)
            })
            .collect())
    }

    /// `config/config/get_config_by_id`: one config; 2002 if there is none
    /// with that id.
    pub async fn get_config_by_id(&self, request: IdRequest) -> Result<Config, AdminError> {
        require(&[("id", &request.id)])?;
        let state = self.shared.lock();
        let found = state.all_modules().find_map(|(_, module)| {
            let config = module.configs.by_id(&request.id)?;
            Some(config_dto(config, &module.id, true))
        });
        found.ok_or_else(|| AdminError::config_not_found("config not found"))
    }

    /// `config/config/create_update_config`: checks the config against the
    /// module's schema (unless `unsafe`: 2005 when the module sent none,
    /// 2003 with field → reason when it fails), then creates a new inactive
    /// config (no `id`) or updates the config `id` (2002 if there is none,
    /// 2004 if `version` is not its current one). An update of the active
    /// config is pushed to the module's sessions at once. A request that
    /// changes nothing (same name, same data) answers `isChanged: false`.
    pub async fn create_update_config(
        &self,
        request: CreateUpdateConfigRequest,
    ) -> Result<CreateUpdateConfigResponse, AdminError> {
        require(&[("name", &request.name), ("moduleId", &request.module_id)])?;
        let data: &str = request.data.as_deref().map_or("null", RawValue::get);
        let mut state = self.shared.lock();
        let name = state.module_name_by_id(&request.module_id);
        if !request.r#unsafe {
            let violations = name
                .as_deref()
                .and_then(|name| state.known_module_mut(name))
                .and_then(|module| module.violations_by_field(data))
                .ok_or_else(|| {
                    AdminError::new(ERROR_CODE_SCHEMA_NOT_FOUND, "config schema not found")
                })?;
            if !violations.is_empty() {
                return Err(AdminError::new(ERROR_CODE_INVALID_CONFIG, "invalid config")
                    .with_details(violations));
            }
        }
        let name = name.ok_or_else(AdminError::module_not_found)?;
        let Some(module) = state.known_module_mut(&name) else {
            return Err(AdminError::module_not_found());
        };
        let module_id = module.id.clone();
        if request.id.is_empty() {
            let created = module
                .configs
                .insert(request.name.clone(), ByteString::from(data));
            log::info!("admin api: new config {} of module {name:?}", created.id);
            let dto = config_dto(created, &module_id, true);
            return Ok(CreateUpdateConfigResponse::new(dto, true));
        }
        let config = module
            .configs
            .by_id_mut(&request.id)
            .ok_or_else(|| AdminError::config_not_found("config not found"))?;
        if config.name == request.name && same_json(&config.data, data) {
            let dto = config_dto(config, &module_id, true);
            return Ok(CreateUpdateConfigResponse::new(dto, false));
        }
        if config.version != request.version {
            return Err(AdminError::new(
                ERROR_CODE_CONFIG_VERSION_CONFLICT,
                "someone has updated the config",
            ));
        }
        config.name.clone_from(&request.name);
        config.data = ByteString::from(data);
        config.version = request.version + 1;
        config.updated_at = SystemTime::now();
        let dto = config_dto(config, &module_id, true);
        log::info!(
            "admin api: config {} of module {name:?} updated to version {}",
            dto.id,
            dto.version
        );
        if dto.active {
            state.push_active_config(&name);
        }
        Ok(CreateUpdateConfigResponse::new(dto, true))
    }

    /// `config/config/mark_config_as_active`: makes the config `id` its
    /// module's active one and pushes it to the module's sessions; 2002 if
    /// there is no config with that id.
    pub async fn mark_config_as_active(&self, request: IdRequest) -> Result<(), AdminError> {
        require(&[("id", &request.id)])?;
        let mut state = self.shared.lock();
        let owner = state
            .all_modules()
            .find(|(_, module)| module.configs.by_id(&request.id).is_some())
            .map(|(name, _)| name.to_owned())
            .ok_or_else(|| AdminError::config_not_found("config not found"))?;
        if let Some(module) = state.known_module_mut(&owner) {
            module.configs.activate(&request.id);
        }
        log::info!(
            "admin api: config {} of module {owner:?} is now active",
            request.id
        );
        state.push_active_config(&owner);
        Ok(())
    }

    /// `config/config/sync`: pushes the module's active config to its
    /// sessions again; 2001 for an unknown module.
    pub async fn sync_config(&self, request: SyncConfigRequest) -> Result<(), AdminError> {
        require(&[("moduleName", &request.module_name)])?;
        let state = self.shared.lock();
        if state.module(&request.module_name).is_none() {
            return Err(AdminError::module_not_found());
        }
        let sessions = state.push_active_config(&request.module_name);
        log::info!(
            "admin api: config of module {:?} synced to {sessions} sessions",
            request.module_name
        );
        Ok(())
    }
}

/// A live instance as the real service shows it.
fn connection(instance: &LiveInstance<'_>) -> Connection {
    let declaration = instance.declaration;
    let mut endpoints: Vec<ConnectionEndpoint> = declaration
        .endpoints
        .iter()
        .map(|endpoint| ConnectionEndpoint {
            http_method: endpoint.http_method.clone(),
            path: endpoint.path.clone(),
            inner: endpoint.inner,
        })
        .collect();
    endpoints.sort_by(|a, b| (&a.path, &a.http_method).cmp(&(&b.path, &b.http_method)));
    Connection {
        id: instance.session.to_string(),
        module_name: declaration.module_name.clone(),
        lib_version: declaration.lib_version.clone(),
        version: declaration.version.clone(),
        address: declaration.address.clone(),
        transport: declaration.transport.clone(),
        endpoints,
        established_at: go_time(instance.ready_at),
    }
}

fn config_dto(config: &StoredConfig, module_id: &str, valid: bool) -> Config {
    Config {
        id: config.id.clone(),
        name: config.name.clone(),
        module_id: module_id.to_owned(),
        valid,
        data: raw_json(&config.data),
        version: config.version,
        active: config.active,
        created_at: go_time(config.created_at),
        updated_at: go_time(config.updated_at),
    }
}

/// Stored JSON text (checked when it was stored) as raw JSON.
fn raw_json(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap_or_else(|_| {
        // Unreachable: every stored text was checked to be JSON.
        log::error!("admin api: a stored document is not json; answering null");
        RawValue::NULL.to_owned()
    })
}

/// Two JSON texts with the same value (the real service compares them
/// decoded, so key order and spacing do not count).
fn same_json(a: &str, b: &str) -> bool {
    let decode = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    matches!((decode(a), decode(b)), (Some(a), Some(b)) if a == b)
}

/// A time as the real service answers it: stored to the second, written by
/// isp-kit's JSON as `2006-01-02T15:04:05Z`.
fn go_time(time: SystemTime) -> String {
    format!("{}Z", Utc::of(time).date_time())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn times_and_json_as_the_real_service_writes_them() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_765_128_745_678);
        assert_eq!(go_time(time), "2025-12-07T17:32:25Z");
        assert!(same_json(r#"{"a":1,"b":[2]}"#, r#"{ "b":[2], "a":1 }"#));
        assert!(!same_json(r#"{"a":1}"#, r#"{"a":2}"#));
        assert_eq!(raw_json(r#"{"a":1}"#).get(), r#"{"a":1}"#);
    }

    #[test]
    fn required_fields_are_named_as_isp_kit_names_them() {
        let error = require(&[("moduleName", ""), ("id", "x")]).unwrap_err();
        assert_eq!(error.error_code, 400);
        assert_eq!(error.error_message, "invalid request body");
        assert_eq!(
            error.details,
            BTreeMap::from([(
                "moduleName".to_owned(),
                "ModuleName is a required field".to_owned()
            )])
        );
        assert_eq!(require(&[("moduleName", "orders")]), Ok(()));
    }
}
