//! What `MODULE:READY` declares: fixed at build time, or, with an RPC
//! server, made afresh from its router at every READY (as isp-kit v1.73
//! resolves its endpoints at every READY), and sent again on the live
//! session whenever the router changes.

use bytes::Bytes;

use crate::types::BackendDeclaration;

/// The source of a session's `MODULE:READY` payload.
pub(crate) struct Declaration {
    /// The declaration as built (endpoints and address from `ModuleInfo`).
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    base: BackendDeclaration,
    /// Its JSON, for a module without an RPC server.
    fixed: Bytes,
    /// The RPC server whose router and address are declared.
    #[cfg(feature = "rpc")]
    rpc: Option<crate::rpc::RpcServer>,
}

impl Declaration {
    pub(crate) fn new(
        base: BackendDeclaration,
        #[cfg(feature = "rpc")] rpc: Option<crate::rpc::RpcServer>,
    ) -> Result<Self, serde_json::Error> {
        #[cfg(feature = "rpc")]
        let base = match &rpc {
            Some(server) => served(base, server),
            None => base,
        };
        Ok(Self {
            fixed: serde_json::to_vec(&base)?.into(),
            base,
            #[cfg(feature = "rpc")]
            rpc,
        })
    }

    /// The payload of the next `MODULE:READY`.
    pub(crate) fn payload(&self) -> Bytes {
        #[cfg(feature = "rpc")]
        if let Some(server) = &self.rpc {
            let declaration = served(self.base.clone(), server);
            // A declaration of strings and JSON maps always serializes.
            if let Ok(json) = serde_json::to_vec(&declaration) {
                return json.into();
            }
        }
        self.fixed.clone()
    }

    /// The size of the payload as built (the bound on unsent bytes makes
    /// room for it).
    pub(crate) fn len(&self) -> usize {
        self.fixed.len()
    }

    /// A stream that yields whenever the declared endpoints change.
    #[cfg(feature = "rpc")]
    pub(crate) fn changes(&self) -> Option<impl futures_util::Stream<Item = Redeclare> + 'static> {
        let mut changes = self.rpc.as_ref()?.router().subscribe();
        changes.borrow_and_update();
        Some(futures_util::stream::unfold(
            changes,
            |mut changes| async move {
                changes.changed().await.ok()?;
                Some((Redeclare, changes))
            },
        ))
    }

    /// The RPC server to stop once the module has left the cluster.
    #[cfg(feature = "rpc")]
    pub(crate) fn rpc_server(&self) -> Option<&crate::rpc::RpcServer> {
        self.rpc.as_ref()
    }
}

/// `base` serving `server`: its router's endpoints at its declared address,
/// over gRPC.
#[cfg(feature = "rpc")]
fn served(mut base: BackendDeclaration, server: &crate::rpc::RpcServer) -> BackendDeclaration {
    base.endpoints = server.router().endpoints();
    let mut address = server.declared_address().clone();
    // Listening on every interface: the module's own address, the
    // server's port.
    let unspecified = address
        .ip
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if unspecified && !base.address.ip.is_empty() {
        address.ip = base.address.ip.clone();
    }
    base.address = address;
    base.transport = crate::events::TRANSPORT_GRPC.to_owned();
    base
}

/// The declared endpoints changed (an RPC router changed at run time): a
/// session sends `MODULE:READY` again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Redeclare;

impl actix::Message for Redeclare {
    type Result = ();
}
