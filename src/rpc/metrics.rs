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

/// The RPC metrics in the crate's one list (`# HELP` lines and
/// `/internal/metrics/descriptions`).
#[cfg(any(feature = "infra", test))]
pub(crate) const RPC_METRICS: [crate::metrics::Metric; 4] = [
    crate::metrics::Metric {
        name: SERVER_CALLS,
        kind: crate::metrics::Kind::Counter,
        labels: &["endpoint", "code"],
        help: "isp RPC calls served, by the router's endpoint name and gRPC code.",
    },
    crate::metrics::Metric {
        name: SERVER_CALL_SECONDS,
        kind: crate::metrics::Kind::Histogram,
        labels: &["endpoint"],
        help: "Seconds from an isp RPC request's arrival to its answer.",
    },
    crate::metrics::Metric {
        name: CLIENT_CALLS,
        kind: crate::metrics::Kind::Counter,
        labels: &["module", "endpoint", "code"],
        help: "isp RPC calls made to a required module, by endpoint and gRPC code.",
    },
    crate::metrics::Metric {
        name: CLIENT_CALL_SECONDS,
        kind: crate::metrics::Kind::Histogram,
        labels: &["module", "endpoint"],
        help: "Seconds from an isp RPC call's send to its answer, hosts skipped included.",
    },
];

/// A label value from the router's own name or the calling code's: an
/// `Arc<str>` or a `&'static str` is taken without a copy.
pub(crate) type Label = metrics::SharedString;

pub(crate) fn server_call(endpoint: &Label, code: Code, took: Duration) {
    counter!(SERVER_CALLS, "endpoint" => endpoint.clone(), "code" => code.name()).increment(1);
    histogram!(SERVER_CALL_SECONDS, "endpoint" => endpoint.clone()).record(took.as_secs_f64());
}

pub(crate) fn client_call(module: &Label, endpoint: &Label, code: Code, took: Duration) {
    counter!(
        CLIENT_CALLS,
        "module" => module.clone(),
        "endpoint" => endpoint.clone(),
        "code" => code.name()
    )
    .increment(1);
    histogram!(
        CLIENT_CALL_SECONDS,
        "module" => module.clone(),
        "endpoint" => endpoint.clone()
    )
    .record(took.as_secs_f64());
}
