//! Every metric the crate records, in one place: the names, the labels and
//! one small function per event, so that each call site is one line.
//!
//! Recording goes through the [`metrics`] facade: the crate records, the
//! application installs the exporter (the `infra` feature brings a
//! Prometheus one). A call costs about 65 ns with no recorder (the facade
//! builds its labels either way), 150 ns with Prometheus. Names follow
//! Prometheus conventions (`isp_cluster_` prefix, base units in the name,
//! `_total` on counters); every label value is one of a few constants or a
//! module name the application chose, never a config value, an address or
//! a request id. The README lists them all.

use std::time::Duration;

use actix::MailboxError;
use metrics::{counter, gauge, histogram};

use crate::client::{ConfigSource, ReceiverError, SessionState};

/// `isp_cluster_session_state{module,state}`: 1 for the client's current
/// state, 0 for the others.
pub const SESSION_STATE: &str = "isp_cluster_session_state";
/// `isp_cluster_connect_attempts_total{module,outcome}`: connection attempts
/// (TCP, TLS, WebSocket upgrade) by outcome: `connected`, `timeout`,
/// `upgrade_refused` (the upgrade answered with an HTTP error) or `failed`
/// (TCP refused or reset, TLS, DNS…).
pub const CONNECT_ATTEMPTS: &str = "isp_cluster_connect_attempts_total";
/// `isp_cluster_sessions_started_total{module}`: sessions whose connection
/// was upgraded (the handshake began).
pub const SESSIONS_STARTED: &str = "isp_cluster_sessions_started_total";
/// `isp_cluster_sessions_established_total{module}`: sessions whose
/// `MODULE:READY` was acknowledged.
pub const SESSIONS_ESTABLISHED: &str = "isp_cluster_sessions_established_total";
/// `isp_cluster_sessions_ended_total{module,reason}`: sessions that ended,
/// by the class of the reason (see the README's table for the classes).
pub const SESSIONS_ENDED: &str = "isp_cluster_sessions_ended_total";
/// `isp_cluster_session_ready_seconds{module}`: from the start of a
/// connection attempt to its `MODULE:READY` acknowledgement.
pub const SESSION_READY_SECONDS: &str = "isp_cluster_session_ready_seconds";
/// `isp_cluster_configs_delivered_total{module,source,outcome}`: configs
/// handed to the config receiver, by source (`server`, `cache`) and outcome
/// (`accepted`, `rejected`, `timeout`, `receiver_stopped`).
pub const CONFIGS_DELIVERED: &str = "isp_cluster_configs_delivered_total";
/// `isp_cluster_configs_rejected_total{module,by}`: configs not applied:
/// `by="client"` when the server's payload was not valid JSON (never
/// delivered), `by="receiver"` when the receiver answered an error.
pub const CONFIGS_REJECTED: &str = "isp_cluster_configs_rejected_total";
/// `isp_cluster_delivery_duration_seconds{module,receiver}`: from the frame's
/// arrival to the receiver's answer (waiting behind a busy receiver
/// included), by receiver kind (`config`, `routes`, `hosts`).
pub const DELIVERY_SECONDS: &str = "isp_cluster_delivery_duration_seconds";
/// `isp_cluster_receiver_failures_total{module,receiver,kind}`: deliveries
/// that failed, by receiver kind and failure (`error`, `timeout`,
/// `stopped`).
pub const RECEIVER_FAILURES: &str = "isp_cluster_receiver_failures_total";
/// `isp_cluster_cache_writes_failed_total{module}`: failed writes of the
/// config cache file.
pub const CACHE_WRITES_FAILED: &str = "isp_cluster_cache_writes_failed_total";
/// `isp_cluster_ack_timeouts_total{module,event}`: emits the server did not
/// acknowledge in time, by event name (one of the three `MODULE:*`).
pub const ACK_TIMEOUTS: &str = "isp_cluster_ack_timeouts_total";
/// `isp_cluster_required_module_hosts{module,required}`: the live addresses
/// of a required module, as last delivered.
pub const REQUIRED_MODULE_HOSTS: &str = "isp_cluster_required_module_hosts";
/// `isp_cluster_config_info{module,hash}`: 1 for the config the module runs,
/// labelled with its content hash ([`crate::ConfigHash`]); one series per
/// module, the old one gone when another config is applied. Not recorded
/// through the facade, which cannot remove a series: the infra scope's
/// metrics route appends it (see `crate::identity::info_metric`).
pub const CONFIG_INFO: &str = "isp_cluster_config_info";
/// `isp_cluster_lb_requests_total{module,outcome}`: requests of the balanced
/// client to a required module, by outcome (`ok`, `no_hosts`,
/// `invalid_request`, `unreachable`, `timeout`, `send_error`).
pub const LB_REQUESTS: &str = "isp_cluster_lb_requests_total";
/// `isp_cluster_lb_hosts_skipped_total{module}`: hosts of a required module
/// the balanced client passed over (refused, not accepting, not an address)
/// for the next one.
pub const LB_HOSTS_SKIPPED: &str = "isp_cluster_lb_hosts_skipped_total";
/// `isp_cluster_server_sessions`: module sessions open on the embedded
/// config-service.
#[cfg(any(feature = "devserver", test))]
pub const SERVER_SESSIONS: &str = "isp_cluster_server_sessions";
/// `isp_cluster_server_sessions_total`: module sessions the embedded
/// config-service accepted.
#[cfg(any(feature = "devserver", test))]
pub const SERVER_SESSIONS_TOTAL: &str = "isp_cluster_server_sessions_total";
/// `isp_cluster_server_pushes_total{event}`: events the embedded
/// config-service pushed to sessions, by kind (`config`, `routes`,
/// `module_connected`).
#[cfg(any(feature = "devserver", test))]
pub const SERVER_PUSHES: &str = "isp_cluster_server_pushes_total";

/// Every histogram, for exporters that need buckets per name.
#[cfg(any(feature = "infra", test))]
pub const HISTOGRAMS: [&str; 2] = [SESSION_READY_SECONDS, DELIVERY_SECONDS];

/// The buckets of every histogram (seconds): from half a millisecond (a
/// loopback delivery) to 10 s (a handshake at its timeouts).
#[cfg(any(feature = "infra", test))]
pub const BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every state of [`SESSION_STATE`].
const STATES: [&str; 6] = [
    "connecting",
    "handshaking",
    "active",
    "backing_off",
    "closed",
    "aborted",
];

fn state_label(state: &SessionState) -> &'static str {
    match state {
        SessionState::Connecting => "connecting",
        SessionState::Handshaking => "handshaking",
        SessionState::Active => "active",
        SessionState::BackingOff { .. } => "backing_off",
        SessionState::Closed => "closed",
        SessionState::Aborted => "aborted",
    }
}

/// The client entered `state`.
pub(crate) fn session_state(module: &str, state: &SessionState) {
    let current = state_label(state);
    for label in STATES {
        let value = if label == current { 1.0 } else { 0.0 };
        gauge!(SESSION_STATE, "module" => module.to_owned(), "state" => label).set(value);
    }
}

/// A connection attempt ended (`Err` carries its reason text).
pub(crate) fn connect_attempt(module: &str, result: Result<(), &str>) {
    let outcome = connect_outcome(result);
    counter!(CONNECT_ATTEMPTS, "module" => module.to_owned(), "outcome" => outcome).increment(1);
}

/// The outcome label of a connection attempt, from the reason texts of
/// connect.rs.
fn connect_outcome(result: Result<(), &str>) -> &'static str {
    match result {
        Ok(()) => "connected",
        Err(reason) if reason.contains(" within ") => "timeout",
        Err(reason) if reason.contains("upgrade refused") => "upgrade_refused",
        Err(_) => "failed",
    }
}

/// A connection was upgraded: the session's handshake begins.
pub(crate) fn session_started(module: &str) {
    counter!(SESSIONS_STARTED, "module" => module.to_owned()).increment(1);
}

/// A session became active, `ready_after` its connection attempt began.
pub(crate) fn session_established(module: &str, ready_after: Duration) {
    counter!(SESSIONS_ESTABLISHED, "module" => module.to_owned()).increment(1);
    histogram!(SESSION_READY_SECONDS, "module" => module.to_owned()).record(ready_after);
}

/// A session ended with `reason` (the text the status shows).
pub(crate) fn session_ended(module: &str, reason: &str) {
    let class = end_reason_class(reason);
    counter!(SESSIONS_ENDED, "module" => module.to_owned(), "reason" => class).increment(1);
}

/// The class of a session's end, from the reason texts the session writes
/// (session.rs, connect.rs): a bounded label instead of the text, which may
/// name hosts and servers' words.
pub(crate) fn end_reason_class(reason: &str) -> &'static str {
    const CLASSES: [(&str, &str); 13] = [
        ("closed by the client", "closed"),
        ("server closed the session normally", "server_closed"),
        ("server closed the session with", "server_close_error"),
        ("no ack for", "ack_timeout"),
        ("server refused", "ack_refused"),
        ("no pong within", "pong_timeout"),
        ("server sent", "server_error"),
        ("over the read limit", "read_limit"),
        ("websocket protocol error", "protocol_error"),
        ("connection lost", "connection_lost"),
        ("cannot write to the connection", "connection_lost"),
        ("rejected", "receiver_error"),
        ("timed out on", "receiver_error"),
    ];
    if let Some((_, class)) = CLASSES.iter().find(|(text, _)| reason.contains(text)) {
        return class;
    }
    if reason.contains("mailbox is closed") {
        "receiver_error"
    } else if reason.starts_with("no ") && reason.contains(" within ") {
        "initial_timeout"
    } else if reason.contains("json") || reason.contains("JSON") {
        "bad_payload"
    } else {
        "other"
    }
}

/// Which receiver a delivery went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    Config,
    Routes,
    Hosts,
}

impl Receiver {
    fn label(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Routes => "routes",
            Self::Hosts => "hosts",
        }
    }
}

/// A receiver answered (or did not): `waited` is the time since the frame
/// arrived, when known.
pub(crate) fn delivered(
    module: &str,
    receiver: Receiver,
    source: ConfigSource,
    result: &Result<Result<(), ReceiverError>, MailboxError>,
    waited: Option<Duration>,
) {
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some("error"),
        Err(MailboxError::Timeout) => Some("timeout"),
        Err(MailboxError::Closed) => Some("stopped"),
    };
    let kind = receiver.label();
    if let Some(waited) = waited {
        histogram!(DELIVERY_SECONDS, "module" => module.to_owned(), "receiver" => kind)
            .record(waited);
    }
    if let Some(failure) = failure {
        counter!(RECEIVER_FAILURES, "module" => module.to_owned(), "receiver" => kind, "kind" => failure)
            .increment(1);
    }
    if receiver == Receiver::Config {
        config_outcome(module, source, failure);
    }
}

fn config_outcome(module: &str, source: ConfigSource, failure: Option<&'static str>) {
    let source = match source {
        ConfigSource::Cache => "cache",
        _ => "server",
    };
    let outcome = match failure {
        None => "accepted",
        Some("error") => "rejected",
        Some("timeout") => "timeout",
        Some(_) => "receiver_stopped",
    };
    counter!(CONFIGS_DELIVERED, "module" => module.to_owned(), "source" => source, "outcome" => outcome)
        .increment(1);
    if outcome == "rejected" {
        counter!(CONFIGS_REJECTED, "module" => module.to_owned(), "by" => "receiver").increment(1);
    }
}

/// A config from the server was not valid JSON: never delivered.
pub(crate) fn config_invalid(module: &str) {
    counter!(CONFIGS_REJECTED, "module" => module.to_owned(), "by" => "client").increment(1);
}

/// A write of the config cache failed.
pub(crate) fn cache_write_failed(module: &str) {
    counter!(CACHE_WRITES_FAILED, "module" => module.to_owned()).increment(1);
}

/// The server did not acknowledge `event` in time.
pub(crate) fn ack_timeout(module: &str, event: &'static str) {
    counter!(ACK_TIMEOUTS, "module" => module.to_owned(), "event" => event).increment(1);
}

/// The addresses of the required module `required` changed.
pub(crate) fn required_module_hosts(module: &str, required: &str, count: usize) {
    gauge!(REQUIRED_MODULE_HOSTS, "module" => module.to_owned(), "required" => required.to_owned())
        .set(count as f64);
}

/// A balanced-client request to `module` ended with `outcome`.
pub(crate) fn lb_request(module: &str, outcome: &'static str) {
    counter!(LB_REQUESTS, "module" => module.to_owned(), "outcome" => outcome).increment(1);
}

/// The balanced client passed over a host of `module`.
pub(crate) fn lb_host_skipped(module: &str) {
    counter!(LB_HOSTS_SKIPPED, "module" => module.to_owned()).increment(1);
}

/// The embedded server accepted a session.
#[cfg(feature = "devserver")]
pub(crate) fn server_session_opened() {
    counter!(SERVER_SESSIONS_TOTAL).increment(1);
    gauge!(SERVER_SESSIONS).increment(1.0);
}

/// A session of the embedded server ended.
#[cfg(feature = "devserver")]
pub(crate) fn server_session_closed() {
    gauge!(SERVER_SESSIONS).decrement(1.0);
}

/// The embedded server pushed `count` events of `event` kind.
#[cfg(feature = "devserver")]
pub(crate) fn server_pushed(event: &'static str, count: usize) {
    counter!(SERVER_PUSHES, "event" => event).increment(count as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let counters = [
            CONNECT_ATTEMPTS,
            SESSIONS_STARTED,
            SESSIONS_ESTABLISHED,
            SESSIONS_ENDED,
            CONFIGS_DELIVERED,
            CONFIGS_REJECTED,
            RECEIVER_FAILURES,
            CACHE_WRITES_FAILED,
            ACK_TIMEOUTS,
            LB_REQUESTS,
            LB_HOSTS_SKIPPED,
            SERVER_SESSIONS_TOTAL,
            SERVER_PUSHES,
        ];
        let gauges = [
            SESSION_STATE,
            REQUIRED_MODULE_HOSTS,
            SERVER_SESSIONS,
            CONFIG_INFO,
        ];
        for name in counters.iter().chain(&gauges).chain(&HISTOGRAMS) {
            assert!(name.starts_with("isp_cluster_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        assert!(counters.iter().all(|n| n.ends_with("_total")));
        assert!(gauges.iter().all(|n| !n.ends_with("_total")));
        assert!(HISTOGRAMS.iter().all(|n| n.ends_with("_seconds")));
    }

    #[test]
    fn connect_outcomes_follow_the_reasons_connect_writes() {
        let cases = [
            (Ok(()), "connected"),
            (
                Err("cannot connect to h:1: no websocket upgrade within 5s"),
                "timeout",
            ),
            (
                Err("cannot connect to h:1: no tls handshake and websocket upgrade within 5s"),
                "timeout",
            ),
            (
                Err("cannot connect to h:1: websocket upgrade refused with HTTP 404 Not Found"),
                "upgrade_refused",
            ),
            (
                Err("cannot connect to h:1: Connection refused (os error 111)"),
                "failed",
            ),
            (
                Err("cannot connect to h:1: tls: certificate expired"),
                "failed",
            ),
        ];
        for (result, outcome) in cases {
            assert_eq!(connect_outcome(result), outcome, "{result:?}");
        }
    }

    #[test]
    fn every_reason_the_client_writes_has_its_class() {
        let cases = [
            ("closed by the client", "closed"),
            (
                "server closed the session normally (1000) bye",
                "server_closed",
            ),
            (
                "server closed the session with 1011: boom",
                "server_close_error",
            ),
            ("no ack for MODULE:READY within 1s", "ack_timeout"),
            ("server refused MODULE:READY: no", "ack_refused"),
            ("no pong within 3s: connection lost", "pong_timeout"),
            ("server sent ERROR_CONFIG: bad", "server_error"),
            ("message over the read limit of 1024 bytes", "read_limit"),
            (
                "fragmented message over the read limit of 1024 bytes",
                "read_limit",
            ),
            ("websocket protocol error: x", "protocol_error"),
            (
                "connection lost: closed without a close frame",
                "connection_lost",
            ),
            ("cannot write to the connection: x", "connection_lost"),
            (
                "remote config receiver rejected CONFIG:X: no",
                "receiver_error",
            ),
            ("routes receiver timed out on CONFIG:Y", "receiver_error"),
            (
                "routes receiver is stopped (its mailbox is closed); X not delivered",
                "receiver_error",
            ),
            (
                "no CONFIG:SEND_CONFIG_WHEN_CONNECTED within 6s",
                "initial_timeout",
            ),
            (
                "CONFIG:SEND_CONFIG_CHANGED: not valid json: eof",
                "bad_payload",
            ),
            ("session stopped", "other"),
        ];
        for (reason, class) in cases {
            assert_eq!(end_reason_class(reason), class, "{reason}");
        }
    }
}
