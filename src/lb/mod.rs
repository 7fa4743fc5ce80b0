//! Calling required modules: host upgraders, a round-robin pool and a
//! balanced HTTP client.
//!
//! | Go (isp-kit) | here |
//! |---|---|
//! | `cluster.HostsUpgrader` (`Upgrade(hosts []string)`) | [`HostsUpgrader`] |
//! | `RequireModule(name, upgrader)` | [`ClusterClientBuilder::require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader) |
//! | `lb.RoundRobin`, `lb.ErrNoHostsToBalance` | [`RoundRobin`], [`NoHostsToBalance`] |
//! | `httpclix.ClientBalancer` | [`BalancedClient`] |
//!
//! The cluster client delivers a required module's complete address list
//! whenever it changes; an upgrader takes it. A [`RoundRobin`] pool is the
//! usual upgrader: register a clone with the client, and read the same pool
//! from every thread, directly ([`RoundRobin::next`]) or through a
//! [`BalancedClient`] per actix-web worker:
//!
//! ```
//! use std::time::Duration;
//! use isp_cluster::lb::{BalancedClient, RoundRobin};
//! use isp_cluster::server::ConfigServer;
//! use isp_cluster::{AddressConfiguration, ClusterClient, ConfigData, ModuleInfo};
//!
//! actix::System::new().block_on(async {
//!     let server = ConfigServer::builder().start().await.unwrap();
//!     let auth = RoundRobin::new("auth");
//!     let info = ModuleInfo::new("gateway", "1.0.0", AddressConfiguration::new("10.0.0.5", "8080"));
//!     let client = ClusterClient::builder(info, ConfigData::default())
//!         .hosts([server.addr().to_string()])
//!         .require_module_upgrader("auth", auth.clone())
//!         .start()
//!         .expect("valid settings");
//!
//!     // In a handler: the next live `auth`, or a clear error naming it.
//!     let http = BalancedClient::builder(auth.clone())
//!         .timeout(Duration::from_secs(2))
//!         .build();
//!     let error = http.get("/api/check").send().await.unwrap_err();
//!     assert!(error.to_string().contains("\"auth\""), "{error}"); // no auth instance runs
//!
//!     client.close().await;
//!     server.stop().await;
//! });
//! ```
//!
//! # Other clients
//!
//! Any `Fn(&[String])` is an upgrader, so another library's balancer plugs
//! in with a few lines. A tonic channel, for example, balances over
//! endpoints it is told about through a channel of `Change`s:
//!
//! ```ignore
//! use std::collections::HashSet;
//! use std::sync::Mutex;
//! use tonic::transport::{Channel, Endpoint};
//! use tower::discover::Change;
//!
//! let (channel, changes) = Channel::balance_channel::<String>(16);
//! let known = Mutex::new(HashSet::<String>::new());
//! let upgrader = move |hosts: &[String]| {
//!     let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
//!     let fresh: HashSet<String> = hosts.iter().cloned().collect();
//!     for gone in known.difference(&fresh) {
//!         let _ = changes.try_send(Change::Remove(gone.clone()));
//!     }
//!     for new in fresh.difference(&known) {
//!         if let Ok(endpoint) = Endpoint::from_shared(format!("http://{new}")) {
//!             let _ = changes.try_send(Change::Insert(new.clone(), endpoint));
//!         }
//!     }
//!     *known = fresh;
//! };
//! let client = ClusterClient::builder(info, data)
//!     .require_module_upgrader("auth", upgrader)
//!     // …
//! # ;
//! let auth = AuthClient::new(channel); // the generated tonic client
//! ```

mod balanced_client;
mod round_robin;
mod upgrader;

pub use balanced_client::{
    BalancedClient, BalancedClientBuilder, BalancedError, BalancedRequest, ConnectFailure,
    DEFAULT_HOST_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
pub use round_robin::{NoHostsToBalance, RoundRobin};
pub(crate) use upgrader::boxed_upgrader_recipient;
pub use upgrader::{upgrader_recipient, HostsUpgrader, UpgraderActor};
