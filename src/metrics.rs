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

use metrics::{counter, gauge, histogram};

/// `isp_cluster_session_state{module,state}`: 1 for the client's current
/// state, 0 for the others.
pub const SESSION_STATE: &str = "isp_cluster_session_state";
/// `isp_cluster_connect_attempts_total{module,outcome}`: connection attempts
/// (TCP, TLS, WebSocket upgrade) that came to an outcome: `connected`,
/// `timeout`, `upgrade_refused` (the upgrade answered with an HTTP error) or
/// `failed` (TCP refused or reset, TLS, DNS…). Their sum is
/// `Status::connect_attempts`.
pub const CONNECT_ATTEMPTS: &str = "isp_cluster_connect_attempts_total";
/// `isp_cluster_sessions_started_total{module}`: sessions whose connection
/// was upgraded (the handshake began); `Status::sessions_started`.
pub const SESSIONS_STARTED: &str = "isp_cluster_sessions_started_total";
/// `isp_cluster_sessions_established_total{module}`: sessions whose
/// `MODULE:READY` was acknowledged; `Status::sessions_established`.
pub const SESSIONS_ESTABLISHED: &str = "isp_cluster_sessions_established_total";
/// `isp_cluster_sessions_failed_total{module}`: sessions that started and
/// ended before their `MODULE:READY` was acknowledged, other than by the
/// client's own close; `Status::sessions_failed`.
pub const SESSIONS_FAILED: &str = "isp_cluster_sessions_failed_total";
/// `isp_cluster_sessions_ended_total{module,reason}`: sessions that ended
/// (after they started, whether or not they were established), by the
/// class of the reason (see the README's table for the classes).
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
/// `isp_cluster_rpc_server_calls_total{endpoint,code}`: calls served, by the
/// router's endpoint name (`(unrouted)` for a name it does not know) and
/// gRPC code name (`OK`, `InvalidArgument`, …).
#[cfg(feature = "rpc")]
pub const RPC_SERVER_CALLS: &str = "isp_cluster_rpc_server_calls_total";
/// `isp_cluster_rpc_server_call_duration_seconds{endpoint}`: from the
/// request's arrival to its answer.
#[cfg(feature = "rpc")]
pub const RPC_SERVER_CALL_SECONDS: &str = "isp_cluster_rpc_server_call_duration_seconds";
/// `isp_cluster_rpc_client_calls_total{module,endpoint,code}`: calls made,
/// by required module, endpoint (as the calling code named it) and code.
#[cfg(feature = "rpc")]
pub const RPC_CLIENT_CALLS: &str = "isp_cluster_rpc_client_calls_total";
/// `isp_cluster_rpc_client_call_duration_seconds{module,endpoint}`: from
/// `send` to the answer (hosts skipped included).
#[cfg(feature = "rpc")]
pub const RPC_CLIENT_CALL_SECONDS: &str = "isp_cluster_rpc_client_call_duration_seconds";

/// A Prometheus type.
#[cfg(any(feature = "infra", test))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric the crate records: what `# HELP` and
/// `/internal/metrics/descriptions` say of it.
#[cfg(any(feature = "infra", test))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metric {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) labels: &'static [&'static str],
    pub(crate) help: &'static str,
}

#[cfg(any(feature = "infra", test))]
const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

/// Every metric of the client, the balanced client and the offline client:
/// the one list that the help texts and the descriptions come from (the
/// README's table says the same in more words).
#[cfg(any(feature = "infra", test))]
pub(crate) const CLIENT_METRICS: [Metric; 17] = [
    metric(SESSION_STATE, Kind::Gauge, &["module", "state"],
        "1 for the cluster client's current session state, 0 for the others."),
    metric(CONNECT_ATTEMPTS, Kind::Counter, &["module", "outcome"],
        "Connection attempts to config-service nodes (TCP, TLS, WebSocket upgrade), by outcome."),
    metric(SESSIONS_STARTED, Kind::Counter, &["module"],
        "Sessions whose connection was upgraded: the handshake began."),
    metric(SESSIONS_ESTABLISHED, Kind::Counter, &["module"],
        "Sessions whose MODULE:READY was acknowledged."),
    metric(SESSIONS_FAILED, Kind::Counter, &["module"],
        "Sessions that started and ended before MODULE:READY was acknowledged, other than by the client's own close."),
    metric(SESSIONS_ENDED, Kind::Counter, &["module", "reason"],
        "Sessions that ended, by the class of their reason."),
    metric(SESSION_READY_SECONDS, Kind::Histogram, &["module"],
        "Seconds from the start of a connection attempt to its MODULE:READY acknowledgement."),
    metric(CONFIGS_DELIVERED, Kind::Counter, &["module", "source", "outcome"],
        "Remote configs handed to the config receiver, by source (server, cache) and outcome."),
    metric(CONFIGS_REJECTED, Kind::Counter, &["module", "by"],
        "Remote configs not applied: not valid JSON (by client) or refused by the receiver."),
    metric(DELIVERY_SECONDS, Kind::Histogram, &["module", "receiver"],
        "Seconds from a frame's arrival to the receiver's answer, the wait behind a busy receiver included."),
    metric(RECEIVER_FAILURES, Kind::Counter, &["module", "receiver", "kind"],
        "Deliveries a receiver failed: an error, no answer in time, or a stopped receiver."),
    metric(CACHE_WRITES_FAILED, Kind::Counter, &["module"],
        "Failed writes of the config cache file."),
    metric(ACK_TIMEOUTS, Kind::Counter, &["module", "event"],
        "MODULE:* emits the config-service did not acknowledge in time."),
    metric(CONFIG_INFO, Kind::Gauge, &["module", "hash"],
        "1 for the config the module runs, labelled with its content hash; one series per module."),
    metric(REQUIRED_MODULE_HOSTS, Kind::Gauge, &["module", "required"],
        "Live addresses of a required module, as last delivered."),
    metric(LB_REQUESTS, Kind::Counter, &["module", "outcome"],
        "Requests of the balanced client to a required module, by outcome."),
    metric(LB_HOSTS_SKIPPED, Kind::Counter, &["module"],
        "Hosts of a required module the balanced client passed over for the next one."),
];

/// Every metric of the embedded config-service (the list is read by the
/// infra scope only).
#[cfg(all(any(feature = "devserver", test), any(feature = "infra", test)))]
pub(crate) const SERVER_METRICS: [Metric; 3] = [
    metric(
        SERVER_SESSIONS,
        Kind::Gauge,
        &[],
        "Module sessions open on the embedded config-service.",
    ),
    metric(
        SERVER_SESSIONS_TOTAL,
        Kind::Counter,
        &[],
        "Module sessions the embedded config-service accepted.",
    ),
    metric(
        SERVER_PUSHES,
        Kind::Counter,
        &["event"],
        "Change events the embedded config-service pushed to sessions, by kind.",
    ),
];

/// The RPC metrics in the crate's one list (`# HELP` lines and
/// `/internal/metrics/descriptions`).
#[cfg(all(feature = "rpc", any(feature = "infra", test)))]
pub(crate) const RPC_METRICS: [Metric; 4] = [
    Metric {
        name: RPC_SERVER_CALLS,
        kind: Kind::Counter,
        labels: &["endpoint", "code"],
        help: "isp RPC calls served, by the router's endpoint name and gRPC code.",
    },
    Metric {
        name: RPC_SERVER_CALL_SECONDS,
        kind: Kind::Histogram,
        labels: &["endpoint"],
        help: "Seconds from an isp RPC request's arrival to its answer.",
    },
    Metric {
        name: RPC_CLIENT_CALLS,
        kind: Kind::Counter,
        labels: &["module", "endpoint", "code"],
        help: "isp RPC calls made to a required module, by endpoint and gRPC code.",
    },
    Metric {
        name: RPC_CLIENT_CALL_SECONDS,
        kind: Kind::Histogram,
        labels: &["module", "endpoint"],
        help: "Seconds from an isp RPC call's send to its answer, hosts skipped included.",
    },
];

/// Every metric this build of the crate records.
#[cfg(any(feature = "infra", test))]
pub(crate) fn all() -> impl Iterator<Item = &'static Metric> {
    let all = CLIENT_METRICS.iter();
    #[cfg(any(feature = "devserver", test))]
    let all = all.chain(SERVER_METRICS.iter());
    #[cfg(feature = "rpc")]
    let all = all.chain(RPC_METRICS.iter());
    all
}

/// Gives the installed recorder each metric's help text (the `# HELP`
/// lines of Prometheus' text). Idempotent.
#[cfg(feature = "infra")]
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for m in all() {
        match m.kind {
            Kind::Counter => describe_counter!(m.name, m.help),
            Kind::Gauge => describe_gauge!(m.name, m.help),
            Kind::Histogram => describe_histogram!(m.name, m.help),
        }
    }
}

/// Every histogram, for exporters that need buckets per name.
#[cfg(any(feature = "infra", test))]
pub const HISTOGRAMS: [&str; 2] = [SESSION_READY_SECONDS, DELIVERY_SECONDS];

/// The buckets of every histogram (seconds): from half a millisecond (a
/// loopback delivery) to 10 s (a handshake at its timeouts).
#[cfg(any(feature = "infra", test))]
pub const BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A state of [`SESSION_STATE`]: the client's state without its data
/// (the client maps its own type to it; this layer knows none of the
/// client's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Connecting,
    Handshaking,
    Active,
    BackingOff,
    Closed,
    Aborted,
}

impl State {
    /// Every state, each a series of [`SESSION_STATE`].
    const ALL: [State; 6] = [
        State::Connecting,
        State::Handshaking,
        State::Active,
        State::BackingOff,
        State::Closed,
        State::Aborted,
    ];

    fn label(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Handshaking => "handshaking",
            State::Active => "active",
            State::BackingOff => "backing_off",
            State::Closed => "closed",
            State::Aborted => "aborted",
        }
    }
}

/// The client entered `state`.
pub(crate) fn session_state(module: &str, state: State) {
    for each in State::ALL {
        let value = if each == state { 1.0 } else { 0.0 };
        gauge!(SESSION_STATE, "module" => module.to_owned(), "state" => each.label()).set(value);
    }
}

/// A connection attempt came to `outcome` (`connected`, or the label of
/// its failure).
pub(crate) fn connect_attempt(module: &str, outcome: &'static str) {
    counter!(CONNECT_ATTEMPTS, "module" => module.to_owned(), "outcome" => outcome).increment(1);
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

/// A session ended before it was established, not by the client.
pub(crate) fn session_failed(module: &str) {
    counter!(SESSIONS_FAILED, "module" => module.to_owned()).increment(1);
}

/// A session ended; `class` is its reason's label (a bounded set, never
/// the text, which may name hosts and quote servers).
pub(crate) fn session_ended(module: &str, class: &'static str) {
    counter!(SESSIONS_ENDED, "module" => module.to_owned(), "reason" => class).increment(1);
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

/// How a delivery to a receiver went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The receiver answered `Ok`.
    Accepted,
    /// The receiver answered `Err`.
    Rejected,
    /// No answer within the receiver's timeout.
    TimedOut,
    /// The receiver's mailbox is closed.
    Stopped,
}

/// Where a delivered config came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A node of the config-service.
    Server,
    /// The config cache on disk.
    Cache,
}

/// A receiver answered (or did not): `waited` is the time since the frame
/// arrived, when known.
pub(crate) fn delivered(
    module: &str,
    receiver: Receiver,
    source: Source,
    answer: Answer,
    waited: Option<Duration>,
) {
    let kind = receiver.label();
    if let Some(waited) = waited {
        histogram!(DELIVERY_SECONDS, "module" => module.to_owned(), "receiver" => kind)
            .record(waited);
    }
    let failure = match answer {
        Answer::Accepted => None,
        Answer::Rejected => Some("error"),
        Answer::TimedOut => Some("timeout"),
        Answer::Stopped => Some("stopped"),
    };
    if let Some(failure) = failure {
        counter!(RECEIVER_FAILURES, "module" => module.to_owned(), "receiver" => kind, "kind" => failure)
            .increment(1);
    }
    if receiver == Receiver::Config {
        config_outcome(module, source, answer);
    }
}

fn config_outcome(module: &str, source: Source, answer: Answer) {
    let source = match source {
        Source::Cache => "cache",
        Source::Server => "server",
    };
    let outcome = match answer {
        Answer::Accepted => "accepted",
        Answer::Rejected => "rejected",
        Answer::TimedOut => "timeout",
        Answer::Stopped => "receiver_stopped",
    };
    counter!(CONFIGS_DELIVERED, "module" => module.to_owned(), "source" => source, "outcome" => outcome)
        .increment(1);
    if answer == Answer::Rejected {
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
    fn the_list_has_every_metric_once_with_a_one_line_help() {
        let names: Vec<&str> = all().map(|m| m.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for name in HISTOGRAMS {
            let m = all().find(|m| m.name == name).unwrap();
            assert_eq!(m.kind, Kind::Histogram, "{name}");
        }
        for m in all() {
            assert!(!m.help.is_empty() && !m.help.contains('\n'), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
        }
        // The client's, the embedded server's and, with `rpc`, the four
        // RPC metrics.
        let rpc = if cfg!(feature = "rpc") { 4 } else { 0 };
        assert_eq!(
            names.len(),
            CLIENT_METRICS.len() + SERVER_METRICS.len() + rpc
        );
        assert_eq!(CLIENT_METRICS.len(), 17);
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let counters = [
            CONNECT_ATTEMPTS,
            SESSIONS_STARTED,
            SESSIONS_ESTABLISHED,
            SESSIONS_FAILED,
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
}
