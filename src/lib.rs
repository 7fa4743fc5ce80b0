//! Run an actix application as a module of an isp-config-service cluster.
#![warn(missing_docs)]

mod client;
pub mod etp;
pub mod events;
mod offline;
mod secrets;
mod typed;
mod types;

pub use client::*;
pub use events::*;
pub use offline::{OfflineClient, OfflineError};
pub use secrets::{
    hide_secrets, register_secret_substrings, unregister_secret_substrings, HideSecretsError,
    MAX_NESTING,
};
pub use typed::{config_schema, ConfigChanged, TypedConfig, CONFIG_SCHEMA_TITLE};
pub use types::*;

/// This crate's version, sent as `libVersion`.
pub const LIB_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(feature = "devserver")]
pub mod server;
