//! Recording the RPC metrics, through the `metrics` facade as the rest of
//! the crate; their names and help texts are in the crate's one list
//! (`crate::metrics`).
//! Endpoint labels come only from the router's own names (server) or the
//! caller's code (client), never from a name a peer sent.

use std::time::Duration;

use metrics::{counter, histogram};

use super::error::Code;

pub use crate::metrics::{
    RPC_CLIENT_CALLS as CLIENT_CALLS, RPC_CLIENT_CALL_SECONDS as CLIENT_CALL_SECONDS,
    RPC_SERVER_CALLS as SERVER_CALLS, RPC_SERVER_CALL_SECONDS as SERVER_CALL_SECONDS,
};

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
