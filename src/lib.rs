//! Run an actix application as a module of an isp-config-service cluster.
//!
//! A module process starts a [`ClusterClient`] inside its actix System. The
//! client connects to one of several config-service nodes over ETP (events
//! over WebSocket, see [`etp`]), registers the module (config schema,
//! requirements, backend declaration), and delivers its remote config, the
//! routing table and the live addresses of the modules it depends on as typed
//! actix messages ([`RemoteConfig`], [`RoutesChanged`], [`HostsChanged`]) to
//! `Recipient`s the application registered, each under a mailbox timeout. A
//! supervisor restarts the session on the next node when anything fails. It
//! speaks the same wire protocol as the Go `isp-kit/cluster` client.
//!
//! The `devserver` feature adds `server::ConfigServer`, an embedded
//! config-service for development and tests (off by default: a production
//! build does not compile actix-web; enable it in your `[dev-dependencies]`
//! for your own integration tests). The `tls` feature (on by default) adds
//! `wss://` hosts. The `infra` feature adds `infra::Infra`: the
//! `/internal/metrics`, `/internal/health` and `/internal/status` routes
//! isp-kit modules serve, for actix-web. The `bootstrap` feature adds
//! `bootstrap::Bootstrap`: the client, the offline client and the infra
//! server built from a Go module's local config files and environment, as
//! isp-kit's `bootstrap.NewClustered` builds them. The `rpc` feature adds
//! the `rpc` module: isp-kit's module-to-module gRPC, a router of
//! endpoints served over h2c and a client of a required module (see the
//! README's "isp RPC"). Every metric the crate records
//! goes through the [`metrics`](https://docs.rs/metrics) facade (the
//! README lists every name).
//!
//! # Example
//!
//! A module with a config receiver, against an embedded config-service:
//!
//! ```
//! use std::time::Duration;
//! use actix::prelude::*;
//! use isp_cluster::server::ConfigServer;
//! use isp_cluster::{
//!     AddressConfiguration, ClusterClient, ConfigData, ModuleInfo, RawJson, ReceiverError,
//!     RemoteConfig,
//! };
//!
//! /// The application's actor that applies configs.
//! struct Settings;
//! impl Actor for Settings {
//!     type Context = Context<Self>;
//! }
//! impl Handler<RemoteConfig> for Settings {
//!     type Result = Result<(), ReceiverError>;
//!     fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
//!         let config: serde_json::Value = msg.parse()?; // an Err here rejects the config
//!         println!("limit is now {}", config["limit"]);
//!         Ok(())
//!     }
//! }
//!
//! actix::System::new().block_on(async {
//!     let server = ConfigServer::builder().start().await.unwrap();
//!
//!     let info = ModuleInfo::new("orders", "1.0.0", AddressConfiguration::new("10.0.0.5", "9002"));
//!     let default = RawJson::from_string(r#"{"limit":10}"#.to_owned()).unwrap();
//!     let client = ClusterClient::builder(info, ConfigData::new("1.0.0", RawJson::default(), default))
//!         .hosts([server.addr().to_string()]) // in production: every config-service node
//!         .config_timeout(Duration::from_secs(5))
//!         .remote_config(Settings.start().recipient())
//!         .start()
//!         .expect("valid settings");
//!
//!     while client.healthcheck().is_err() {
//!         actix::clock::sleep(Duration::from_millis(5)).await;
//!     }
//!     server.set_config("orders", serde_json::json!({"limit": 20})).unwrap(); // pushed at once
//!     client.close().await; // close frame 1000, no restart
//!     server.stop().await;
//! });
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "bootstrap")]
#[cfg_attr(docsrs, doc(cfg(feature = "bootstrap")))]
pub mod bootstrap;
mod client;
mod config_file;
mod config_schema;
mod error_chain;
pub mod etp;
mod events;
mod identity;
mod json;
pub mod lb;
pub mod logging;
// Private: a public `metrics` module would shadow the `metrics` crate in
// an application that glob-imports this crate. The README lists the names.
mod metrics;
mod offline;
mod quote;
mod request_id;
mod secrets;
mod time;
mod typed;
mod types;

pub use client::*;
pub use config_schema::{config_schema, ConfigSchema, CONFIG_SCHEMA_TITLE};
pub use error_chain::ErrorChain;
pub use events::*;
pub use identity::{
    AppliedConfig, ConfigChanges, ConfigHash, ParseConfigHashError, CHANGE_PATHS_SHOWN,
    MAX_CHANGE_PATHS, MAX_CHANGE_PATH_LEN,
};
pub use offline::{OfflineClient, OfflineError, OfflineWatch};
pub use secrets::{
    hide_secrets, hide_secrets_in_text, register_secret_substrings, unregister_secret_substrings,
    HideSecretsError, TypedConfigError, MAX_NESTING,
};
pub use typed::{ConfigChanged, TypedConfig};
pub use types::*;

/// The `schemars` this crate derives config schemas with (major version 1),
/// so that an application need not match its version by hand:
/// `#[derive(isp_cluster::schemars::JsonSchema)]` with
/// `#[schemars(crate = "isp_cluster::schemars")]`.
pub use schemars;

/// This crate's version, sent as `libVersion`.
pub const LIB_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(feature = "devserver")]
pub mod server;

#[cfg(feature = "infra")]
pub mod infra;

#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub mod rpc;
