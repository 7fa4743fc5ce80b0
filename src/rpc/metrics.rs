//! The RPC metrics, through the `metrics` facade as the rest of the crate.
//! Endpoint labels come only from the router's own names (server) or the
//! caller's code (client), never from a name a peer sent.

use std::time::Duration;

use metrics::{counter, histogram};

use super::error::Code;

/// `isp_cluster_rpc_server_calls_total{endpoint,code}`: calls served, by the
/// router's endpoint name (`(unrouted)` for a name it does not know) and
/// gRPC code name (`OK`, `InvalidArgument`, …).
pub const SERVER_CALLS: &str = "isp_cluster_rpc_server_calls_total";
/// `isp_cluster_rpc_server_call_duration_seconds{endpoint}`: from the
/// request's arrival to its answer.
pub const SERVER_CALL_SECONDS: &str = "isp_cluster_rpc_server_call_duration_seconds";
/// `isp_cluster_rpc_client_calls_total{module,endpoint,code}`: calls made,
/// by required module, endpoint (as the calling code named it) and code.
pub const CLIENT_CALLS: &str = "isp_cluster_rpc_client_calls_total";
/// `isp_cluster_rpc_client_call_duration_seconds{module,endpoint}`: from
/// `send` to the answer (hosts skipped included).
pub const CLIENT_CALL_SECONDS: &str = "isp_cluster_rpc_client_call_duration_seconds";

pub(crate) fn server_call(endpoint: &str, code: Code, took: Duration) {
    counter!(SERVER_CALLS, "endpoint" => endpoint.to_owned(), "code" => code.name()).increment(1);
    histogram!(SERVER_CALL_SECONDS, "endpoint" => endpoint.to_owned()).record(took.as_secs_f64());
}

pub(crate) fn client_call(module: &str, endpoint: &str, code: Code, took: Duration) {
    counter!(
        CLIENT_CALLS,
        "module" => module.to_owned(),
        "endpoint" => endpoint.to_owned(),
        "code" => code.name()
    )
    .increment(1);
    histogram!(
        CLIENT_CALL_SECONDS,
        "module" => module.to_owned(),
        "endpoint" => endpoint.to_owned()
    )
    .record(took.as_secs_f64());
}
