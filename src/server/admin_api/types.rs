//! The requests and answers of the admin API, in the JSON of
//! isp-config-service v3.9 (its `domain` package, encoded by isp-kit's JSON:
//! every field lowerCamelCase, times as `2006-01-02T15:04:05Z`, raw JSON
//! where the Go type is `json.RawMessage`).
//!
//! Requests are read as isp-kit reads them: lowerCamelCase, and the Go field
//! names as well; a field that is missing takes its Go zero value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::AdminError;
use crate::types::AddressConfiguration;

/// isp-kit's error code of a request that fails its validation.
const ERROR_CODE_BAD_REQUEST: i32 = 400;

/// A module as `config/module/get_modules_info` lists it (Go:
/// `domain.ModuleInfo`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModuleInfo {
    /// The module's id: the hex SHA-256 of its name, as the real service
    /// computes it.
    pub id: String,
    /// The module's name.
    pub name: String,
    /// Whether at least one instance is live (has sent `MODULE:READY` and
    /// is still connected).
    pub active: bool,
    /// When a session of the module last connected, `null` if none has.
    pub last_connected_at: Option<String>,
    /// When a session of the module last ended, `null` if none has.
    pub last_disconnected_at: Option<String>,
    /// The config schema the module sent last, `null` if none.
    pub config_schema: Option<Box<RawValue>>,
    /// The live instances, newest first; `null` when there are none (as Go
    /// encodes an empty slice it never made).
    pub status: Option<Vec<Connection>>,
    /// When the server first heard of the module.
    pub created_at: String,
}

/// A live instance of a module (Go: `domain.Connection`), as
/// `config/routing/get_routes` and [`ModuleInfo::status`] show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Connection {
    /// The id of the instance's connection to the config-service.
    pub id: String,
    /// The module's name, as it declared it.
    pub module_name: String,
    /// The version of its cluster library.
    pub lib_version: String,
    /// The module's version.
    pub version: String,
    /// Where other modules reach it (`{"ip","port"}`).
    pub address: AddressConfiguration,
    /// `grpc` or `http`.
    pub transport: String,
    /// Its endpoints, by path then HTTP method.
    pub endpoints: Vec<ConnectionEndpoint>,
    /// When it declared itself ready.
    pub established_at: String,
}

/// An endpoint of a [`Connection`] (Go: `domain.EndpointDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectionEndpoint {
    /// The HTTP method the gateway serves it under.
    pub http_method: String,
    /// The endpoint's path.
    pub path: String,
    /// Reachable only from inside the cluster.
    pub inner: bool,
}

/// A config of a module (Go: `domain.Config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Config {
    /// The config's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The id of its module.
    pub module_id: String,
    /// Whether it satisfies the module's schema (always `true` where the
    /// real service does not check, as it does not).
    pub valid: bool,
    /// The config itself.
    pub data: Box<RawValue>,
    /// 1 when created, one more at every change.
    pub version: i64,
    /// Whether it is the config pushed to the module.
    pub active: bool,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// The answer of `config/config/create_update_config` (Go:
/// `domain.CreateUpdateConfigResponse`): the config's fields and
/// `isChanged`, in one object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateUpdateConfigResponse {
    /// See [`Config::id`].
    pub id: String,
    /// See [`Config::name`].
    pub name: String,
    /// See [`Config::module_id`].
    pub module_id: String,
    /// See [`Config::valid`].
    pub valid: bool,
    /// See [`Config::data`].
    pub data: Box<RawValue>,
    /// See [`Config::version`].
    pub version: i64,
    /// See [`Config::active`].
    pub active: bool,
    /// See [`Config::created_at`].
    pub created_at: String,
    /// See [`Config::updated_at`].
    pub updated_at: String,
    /// `false` when the request changed nothing (same name, same data).
    pub is_changed: bool,
}

impl CreateUpdateConfigResponse {
    pub(crate) fn new(config: Config, is_changed: bool) -> Self {
        Self {
            id: config.id,
            name: config.name,
            module_id: config.module_id,
            valid: config.valid,
            data: config.data,
            version: config.version,
            active: config.active,
            created_at: config.created_at,
            updated_at: config.updated_at,
            is_changed,
        }
    }
}

/// The body of `config/config/get_active_config_by_module_name` (Go:
/// `domain.GetByModuleNameRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GetByModuleNameRequest {
    /// The module's name (required).
    #[serde(alias = "ModuleName", default)]
    pub module_name: String,
}

impl GetByModuleNameRequest {
    /// A request for `module_name`.
    pub fn new(module_name: impl Into<String>) -> Self {
        Self {
            module_name: module_name.into(),
        }
    }
}

/// The body of `config/config/sync` (Go: `domain.SyncConfigRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SyncConfigRequest {
    /// The module's name (required).
    #[serde(alias = "ModuleName", default)]
    pub module_name: String,
}

impl SyncConfigRequest {
    /// A request for `module_name`.
    pub fn new(module_name: impl Into<String>) -> Self {
        Self {
            module_name: module_name.into(),
        }
    }
}

/// The body of `config/config/get_configs_by_module_id` (Go:
/// `domain.GetByModuleIdRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GetByModuleIdRequest {
    /// The module's id (required).
    #[serde(alias = "ModuleId", default)]
    pub module_id: String,
}

impl GetByModuleIdRequest {
    /// A request for the module `module_id`.
    pub fn new(module_id: impl Into<String>) -> Self {
        Self {
            module_id: module_id.into(),
        }
    }
}

/// The body of `config/config/get_config_by_id` and
/// `config/config/mark_config_as_active` (Go: `domain.IdRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IdRequest {
    /// The config's id (required).
    #[serde(alias = "Id", default)]
    pub id: String,
}

impl IdRequest {
    /// A request for the config `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

/// The body of `config/config/create_update_config` (Go:
/// `domain.CreateUpdateConfigRequest`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateUpdateConfigRequest {
    /// The config to update; empty to create a new (inactive) one.
    #[serde(alias = "Id", default)]
    pub id: String,
    /// The config's name (required).
    #[serde(alias = "Name", default)]
    pub name: String,
    /// The id of its module (required).
    #[serde(alias = "ModuleId", default)]
    pub module_id: String,
    /// The version the update is based on: the config's current one, or
    /// the update is refused (error code 2004).
    #[serde(alias = "Version", default)]
    pub version: i64,
    /// The config; missing reads as `null`.
    #[serde(alias = "Data", default)]
    pub data: Option<Box<RawValue>>,
    /// Skip the check against the module's schema.
    #[serde(alias = "Unsafe", default)]
    pub r#unsafe: bool,
}

impl CreateUpdateConfigRequest {
    /// A request that creates a config named `name` of the module
    /// `module_id` (an id as [`ModuleInfo::id`]); set
    /// [`id`](Self::id) and [`version`](Self::version) to update one.
    pub fn new(name: impl Into<String>, module_id: impl Into<String>, data: Box<RawValue>) -> Self {
        Self {
            name: name.into(),
            module_id: module_id.into(),
            data: Some(data),
            ..Self::default()
        }
    }
}

/// isp-kit's check of a request's `validate:"required"` fields: each empty
/// one is named in the error's details, as isp-kit's validator names it
/// (`moduleName` → `ModuleName is a required field`).
pub(crate) fn require(fields: &[(&str, &str)]) -> Result<(), AdminError> {
    let details: BTreeMap<String, String> = fields
        .iter()
        .filter(|(_, value)| value.is_empty())
        .map(|(name, _)| {
            let mut go_name = name.to_string();
            if let Some(first) = go_name.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            ((*name).to_owned(), format!("{go_name} is a required field"))
        })
        .collect();
    if details.is_empty() {
        return Ok(());
    }
    Err(AdminError::new(ERROR_CODE_BAD_REQUEST, "invalid request body").with_details(details))
}
