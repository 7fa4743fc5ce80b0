//! isp RPC: serving and calling isp modules over isp-kit's gRPC (feature
//! `rpc`).
//!
//! In an isp cluster nearly every request reaches a module as a call of
//! `/isp.BackendService/Request`: the endpoint in the `proxy_method_name`
//! metadata, the JSON body in the `isp.Message`'s `BytesBody`, an error as
//! a status whose detail holds isp-kit's error code, message and details.
//! This module serves such calls ([`Router`], [`RpcServer`]) and makes them
//! ([`RpcClient`]), wire-compatible with isp-kit's Go server and client.
//!
//! | Go (isp-kit) | here |
//! |---|---|
//! | `grpc.Mux`, `Handle(endpoint, handler)` | [`Router`], [`Router::route`] |
//! | `endpoint.Wrapper.Endpoint(func)` (JSON body, `AuthData`) | [`Handler`], [`Json`], [`Identity`], [`RequestId`] |
//! | `grpc.NewServer`, `Upgrade(mux)`, `Shutdown` | [`RpcServer`], [`RpcServer::stop`] |
//! | `apierrors.NewBusinessError`, `NewInternalServiceError`, `New` | [`Error::business`], [`Error::internal`], [`Error::new`] |
//! | `apierrors.FromError` | [`CallError::detail`] |
//! | `grpc/client.Default()`, `RequireModule(name, cli)` | [`RpcClient`], [`require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader) |
//! | `cli.Invoke(endpoint).JsonRequestBody(b).ReadJsonResponse(&r).Do(ctx)` | `cli.call(endpoint).json(&b).send::<R>().await` |
//! | `cluster.EndpointDescriptor` in `MODULE:READY` | [`Router::endpoints`], declared by [`ClusterClientBuilder::rpc`](crate::ClusterClientBuilder::rpc) |
//!
//! A module serves and declares its router, and calls a required module:
//!
//! ```
//! use std::time::Duration;
//! use isp_cluster::rpc::{Error, Json, Router, RpcClient, RpcServer};
//! use isp_cluster::server::ConfigServer;
//! use isp_cluster::{AddressConfiguration, ClusterClient, ConfigData, ModuleInfo};
//!
//! async fn echo(Json(body): Json<serde_json::Value>) -> Result<serde_json::Value, Error> {
//!     Ok(body)
//! }
//!
//! actix::System::new().block_on(async {
//!     let config = ConfigServer::builder().start().await.unwrap();
//!
//!     // The module "echo" serves rpc/echo and declares it.
//!     let server = RpcServer::builder(Router::new().route("rpc/echo", echo))
//!         .bind("127.0.0.1:0")
//!         .unwrap();
//!     let info = ModuleInfo::new("echo", "1.0.0", AddressConfiguration::default());
//!     let echo_module = ClusterClient::builder(info, ConfigData::default())
//!         .hosts([config.addr().to_string()])
//!         .rpc(&server)
//!         .start()
//!         .unwrap();
//!     echo_module.ready(Duration::from_secs(10)).await.unwrap();
//!
//!     // The module "caller" requires it and calls it.
//!     let echo_client = RpcClient::new("echo");
//!     let info = ModuleInfo::new("caller", "1.0.0", AddressConfiguration::default());
//!     let caller = ClusterClient::builder(info, ConfigData::default())
//!         .hosts([config.addr().to_string()])
//!         .require_module_upgrader("echo", echo_client.clone())
//!         .start()
//!         .unwrap();
//!     caller.ready(Duration::from_secs(10)).await.unwrap();
//!     let answer: serde_json::Value =
//!         echo_client.call("rpc/echo").json(&[1, 2]).send().await.unwrap();
//!     assert_eq!(answer, serde_json::json!([1, 2]));
//!
//!     caller.close().await;
//!     echo_module.close().await; // leaves the cluster, then stops the server
//!     server.stopped().await;
//!     config.stop().await;
//! });
//! ```

mod authority;
mod client;
mod codec;
mod error;
mod handler;
mod message;
mod metadata;
mod metrics;
mod router;
mod server;

pub use client::{
    CallBuilder, CallError, RpcClient, RpcClientBuilder, DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
};
pub use error::{BoxError, Code, Error, ErrorDetail, ERROR_CODE_INTERNAL, INTERNAL_SERVICE_ERROR};
pub use handler::{Call, FromRequest, Handler, Json, Request, ERROR_CODE_BAD_REQUEST};
pub use message::{Body, Message, MESSAGE_TYPE_URL};
pub use metadata::*;
pub use metrics::{CLIENT_CALLS, CLIENT_CALL_SECONDS, SERVER_CALLS, SERVER_CALL_SECONDS};
pub use router::{RouteError, Router, DEFAULT_HTTP_METHOD};
pub use server::{
    RpcServer, RpcServerBuilder, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_STOP_GRACE, REQUEST_PATH, REQUEST_STREAM_PATH,
};

tokio::task_local! {
    /// The id of the request whose handler future is running: a call made
    /// from that future sends it (Go: the request id in the context).
    pub(crate) static CURRENT_REQUEST_ID: RequestId;
}

/// At most 128 characters of a peer's text, for a log line.
pub(crate) fn log_text(text: &str) -> &str {
    match text.char_indices().nth(128) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
