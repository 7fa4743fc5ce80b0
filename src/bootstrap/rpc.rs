//! The module's isp RPC server where its local config says (feature
//! `rpc`): it listens on `grpcInnerAddress` and `grpcOuterAddress` is
//! declared, as isp-kit's bootstrap serves its gRPC server.

use super::Bootstrap;
use crate::rpc::{Router, RpcServer, RpcServerBuilder};

impl Bootstrap {
    /// An RPC server builder for `router` that declares `grpcOuterAddress`
    /// (its ip found as for the registration when the file leaves it
    /// empty); bind it to [`binding_address`](Self::binding_address), or
    /// use [`rpc_server`](Self::rpc_server).
    pub fn rpc_server_builder(&self, router: Router) -> RpcServerBuilder {
        RpcServer::builder(router).outer_address(self.module_info().grpc_outer_address.clone())
    }

    /// Starts the RPC server for `router` on `grpcInnerAddress`, declaring
    /// `grpcOuterAddress` (Go: `boot.BindingAddress` given to
    /// `grpc.Server.ListenAndServe`). Register it with the client in
    /// [`start_with`](Self::start_with): `|b| b.rpc(&server)`, so that the
    /// module declares its endpoints there and leaves the cluster before
    /// the server stops.
    pub fn rpc_server(&self, router: Router) -> std::io::Result<RpcServer> {
        self.rpc_server_builder(router)
            .bind(self.binding_address().as_str())
    }
}
