//! A started module: the cluster client (or the offline client) and the
//! infra server, and how they stop.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;

use super::Bootstrap;
use crate::client::{
    BuildError, ClusterClient, ClusterClientBuilder, ConfigSource, ReadyError, RemoteConfig,
};
use crate::infra::{Infra, InfraServer};
use crate::offline::{OfflineClient, OfflineError};

/// Why [`Bootstrap::start`] could not start the module.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The client refused its settings.
    Build(BuildError),
    /// Offline mode: the remote config file could not be applied.
    Offline(OfflineError),
    /// The infra server could not listen.
    Infra {
        /// Its address (`infraServerPort`).
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => write!(f, "cluster client: {e}"),
            Self::Offline(e) => write!(f, "offline mode: {e}"),
            Self::Infra { addr, source } => write!(
                f,
                "infra server cannot listen on {addr} (infraServerPort): {source}"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Offline(e) => Some(e),
            Self::Infra { source, .. } => Some(source),
        }
    }
}

/// A module started by [`Bootstrap::start`] (Go: `ClusteredBootstrap`):
/// its cluster client, or in offline mode its offline client, and its infra
/// server.
pub struct Module {
    pub(super) client: Option<ClusterClient>,
    offline: Option<OfflineClient>,
    pub(super) infra: Option<InfraServer>,
    binding_address: String,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("client", &self.client)
            .field("offline", &self.offline)
            .field("infra_addr", &self.infra_addr())
            .field("binding_address", &self.binding_address)
            .finish()
    }
}

impl Module {
    /// The cluster client (`None` in offline mode).
    pub fn client(&self) -> Option<&ClusterClient> {
        self.client.as_ref()
    }

    /// The offline client (`None` unless `CLUSTER_MODE=offline`); call its
    /// `run()` again to re-read the file, e.g. on SIGHUP.
    pub fn offline(&self) -> Option<&OfflineClient> {
        self.offline.as_ref()
    }

    /// Where the infra server listens, if one runs.
    pub fn infra_addr(&self) -> Option<SocketAddr> {
        self.infra.as_ref().map(InfraServer::addr)
    }

    /// The infra server, if one runs: in offline mode too, with the
    /// metrics and the application's checks
    /// ([`Bootstrap::standalone_infra`]).
    pub fn infra(&self) -> Option<&InfraServer> {
        self.infra.as_ref()
    }

    /// Where the module's own server is to listen (`grpcInnerAddress`).
    pub fn binding_address(&self) -> &str {
        &self.binding_address
    }

    /// Resolves once the module is registered ([`ClusterClient::ready`]);
    /// at once in offline mode, where there is nothing to register with.
    #[allow(clippy::result_large_err)]
    pub async fn ready(&self, timeout: Duration) -> Result<(), ReadyError> {
        match &self.client {
            Some(client) => client.ready(timeout).await,
            None => Ok(()),
        }
    }

    /// Resolves once a config is applied, from any source, the cache
    /// included ([`ClusterClient::config_applied`]); in offline mode at
    /// once with [`ConfigSource::File`]: [`Bootstrap::start`] applied the
    /// file before it returned.
    #[allow(clippy::result_large_err)]
    pub async fn config_applied(&self, timeout: Duration) -> Result<ConfigSource, ReadyError> {
        match &self.client {
            Some(client) => client.config_applied(timeout).await,
            None => Ok(ConfigSource::File),
        }
    }

    /// Leaves the cluster (close 1000; no session in offline mode), then
    /// stops the infra server: isp-kit's order for a module without a
    /// server of its own (see [`shutdown_with`](Self::shutdown_with) and
    /// [`serve`](Self::serve) for one with).
    pub async fn shutdown(self) {
        self.shutdown_with(Duration::ZERO, async {}).await;
    }
}

impl Bootstrap {
    /// The infra routes for `client` (metrics, health with the client as
    /// `configServiceConnection` and the checks of [`check`](Self::check),
    /// status), with `healthcheckHandlerTimeout` when set: to serve on [`infra_addr`](Self::infra_addr), or to mount
    /// on the application's own server with [`Infra::configure`].
    pub fn infra(&self, client: ClusterClient) -> Infra {
        self.with_checks(Infra::new(client))
    }

    /// The infra routes of a module in offline mode ([`Infra::standalone`]:
    /// metrics, and health with only the checks of
    /// [`check`](Self::check)), with `healthcheckHandlerTimeout` when set;
    /// as isp-kit's offline bootstrap serves them.
    pub fn standalone_infra(&self) -> Infra {
        self.with_checks(Infra::standalone())
    }

    /// `infra` with the health timeout and the application's checks.
    fn with_checks(&self, mut infra: Infra) -> Infra {
        if let Some(timeout) = self.health_timeout() {
            infra = infra.health_timeout(timeout);
        }
        for (name, check) in &self.checks.0 {
            let check = Arc::clone(check);
            infra = infra.check(name.clone(), move || check());
        }
        infra
    }

    /// Starts the module: the cluster client (or, with
    /// `CLUSTER_MODE=offline`, the offline client, which delivers the file
    /// once before this returns) with `receiver` behind the override layer,
    /// and the infra server on `infraServerPort`. Call it inside the actix
    /// System.
    pub async fn start(self, receiver: Recipient<RemoteConfig>) -> Result<Module, StartError> {
        self.start_with(receiver, |builder| builder).await
    }

    /// [`start`](Self::start), letting `customize` add to the client
    /// builder first (routes, required modules, a config cache, TLS); it is
    /// not called in offline mode.
    pub async fn start_with(
        self,
        receiver: Recipient<RemoteConfig>,
        customize: impl FnOnce(ClusterClientBuilder) -> ClusterClientBuilder,
    ) -> Result<Module, StartError> {
        let binding_address = self.binding_address();
        let addr = self.infra_addr();
        let Some(builder) = self.client_builder(receiver.clone()) else {
            let offline = self.offline_client(receiver);
            if let Some(offline) = &offline {
                offline.run().await.map_err(StartError::Offline)?;
            }
            let infra = self
                .standalone_infra()
                .serve(addr)
                .await
                .map_err(|source| StartError::Infra { addr, source })?;
            return Ok(Module {
                client: None,
                offline,
                infra: Some(infra),
                binding_address,
            });
        };
        let client = customize(builder).start().map_err(StartError::Build)?;
        let infra = match self.infra(client.clone()).serve(addr).await {
            Ok(infra) => infra,
            Err(source) => {
                // Nothing half-started is left behind.
                client.close().await;
                return Err(StartError::Infra { addr, source });
            }
        };
        Ok(Module {
            client: Some(client),
            offline: None,
            infra: Some(infra),
            binding_address,
        })
    }
}
