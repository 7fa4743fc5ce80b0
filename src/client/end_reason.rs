//! Why a connection attempt or a session ended, as a type: the place that
//! ended it says which, and the metrics' labels and the pacing's causes are
//! read from it. The text beside it (which names hosts and may quote the
//! server's own words) is for people only: nothing is classified by what a
//! text contains, so a server's words can never pass for the client's
//! (an ack answered "no ack for …" is a refused ack, not an ack timeout).

/// Why a connection attempt or a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    // ---- the connection attempt (TCP, TLS, WebSocket upgrade)
    /// The connection was refused, the host is unreachable or its name does
    /// not resolve: the node is down.
    NodeDown,
    /// The upgrade was answered with an HTTP status other than 101.
    UpgradeRefused,
    /// No TLS handshake and upgrade within the connect timeout.
    ConnectTimeout,
    /// Anything else before the upgrade completed: a reset or a close during
    /// the upgrade, TLS refused, a broken answer.
    ConnectFailed,

    // ---- the session (after the upgrade)
    /// The client closed it (`close()`, a removed host, its System ending).
    ClosedByClient,
    /// The server closed it with 1000.
    ServerClosedNormally,
    /// The server closed it with another code (or none).
    ServerClosed,
    /// An emit was not acknowledged within the ack timeout.
    AckTimeout,
    /// An emit (schema, requirements, READY) was acknowledged with a text
    /// other than `ok`: the service refused it.
    AckRefused,
    /// A ping was not answered within the pong timeout.
    PongTimeout,
    /// The server sent an `ERROR_*` event during the handshake.
    ServerError,
    /// A message over the read limit.
    ReadLimit,
    /// A frame that breaks the WebSocket protocol.
    ProtocolError,
    /// The connection broke: reset, closed without a close frame, a write
    /// error.
    ConnectionLost,
    /// The peer left more than the bound of written frames unread.
    PeerNotReading,
    /// A receiver rejected, timed out on or could not take an initial
    /// event.
    ReceiverError,
    /// An initial event the handshake waits for did not come in time.
    InitialTimeout,
    /// An initial event's payload did not parse.
    BadPayload,
    /// The session actor stopped without any of the above.
    Stopped,
}

/// Whose failure an end is, for the pacing (`pacing.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The node is down: trying it cost it nothing.
    NodeDown,
    /// One node failed: its connection, its close frame, its upgrade, its
    /// liveness. Another node may well work.
    Node,
    /// The service answered, and any node would answer the same: it refused
    /// the registration (as during an election), sent an error, withheld an
    /// initial event or sent one that cannot be used.
    Cluster,
    /// The client ended it.
    Client,
}

impl EndReason {
    /// Whose failure it is.
    pub(crate) fn cause(self) -> Cause {
        match self {
            Self::NodeDown => Cause::NodeDown,
            Self::ClosedByClient => Cause::Client,
            Self::AckRefused
            | Self::ServerError
            | Self::InitialTimeout
            | Self::BadPayload
            | Self::ReadLimit
            | Self::ReceiverError => Cause::Cluster,
            Self::UpgradeRefused
            | Self::ConnectTimeout
            | Self::ConnectFailed
            | Self::ServerClosedNormally
            | Self::ServerClosed
            | Self::AckTimeout
            | Self::PongTimeout
            | Self::ProtocolError
            | Self::ConnectionLost
            | Self::PeerNotReading
            | Self::Stopped => Cause::Node,
        }
    }

    /// The `outcome` label of `isp_cluster_connect_attempts_total` for an
    /// attempt that ended here (`connected` is the other one).
    pub(crate) fn connect_outcome(self) -> &'static str {
        match self {
            Self::ConnectTimeout => "timeout",
            Self::UpgradeRefused => "upgrade_refused",
            _ => "failed",
        }
    }

    /// The `reason` label of `isp_cluster_sessions_ended_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::ClosedByClient => "closed",
            Self::ServerClosedNormally => "server_closed",
            Self::ServerClosed => "server_close_error",
            Self::AckTimeout => "ack_timeout",
            Self::AckRefused => "ack_refused",
            Self::PongTimeout => "pong_timeout",
            Self::ServerError => "server_error",
            Self::ReadLimit => "read_limit",
            Self::ProtocolError => "protocol_error",
            Self::ConnectionLost => "connection_lost",
            Self::PeerNotReading => "peer_not_reading",
            Self::ReceiverError => "receiver_error",
            Self::InitialTimeout => "initial_timeout",
            Self::BadPayload => "bad_payload",
            Self::NodeDown
            | Self::UpgradeRefused
            | Self::ConnectTimeout
            | Self::ConnectFailed
            | Self::Stopped => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_causes() {
        // A node's failures: a reset, its close frame, a refused or broken
        // upgrade.
        for node in [
            EndReason::ConnectionLost,
            EndReason::ServerClosed,
            EndReason::ServerClosedNormally,
            EndReason::UpgradeRefused,
            EndReason::ConnectFailed,
        ] {
            assert_eq!(node.cause(), Cause::Node, "{node:?}");
        }
        // The service's refusal: an error ack, as during an election.
        assert_eq!(EndReason::AckRefused.cause(), Cause::Cluster);
        assert_eq!(EndReason::NodeDown.cause(), Cause::NodeDown);
        assert_eq!(EndReason::ClosedByClient.cause(), Cause::Client);
    }

    #[test]
    fn labels_are_few_and_prometheus_safe() {
        let all = [
            EndReason::NodeDown,
            EndReason::UpgradeRefused,
            EndReason::ConnectTimeout,
            EndReason::ConnectFailed,
            EndReason::ClosedByClient,
            EndReason::ServerClosedNormally,
            EndReason::ServerClosed,
            EndReason::AckTimeout,
            EndReason::AckRefused,
            EndReason::PongTimeout,
            EndReason::ServerError,
            EndReason::ReadLimit,
            EndReason::ProtocolError,
            EndReason::ConnectionLost,
            EndReason::PeerNotReading,
            EndReason::ReceiverError,
            EndReason::InitialTimeout,
            EndReason::BadPayload,
            EndReason::Stopped,
        ];
        for reason in all {
            for label in [reason.label(), reason.connect_outcome()] {
                assert!(
                    label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{label}"
                );
            }
        }
        assert_eq!(EndReason::ConnectTimeout.connect_outcome(), "timeout");
        assert_eq!(
            EndReason::UpgradeRefused.connect_outcome(),
            "upgrade_refused"
        );
        assert_eq!(EndReason::NodeDown.connect_outcome(), "failed");
    }
}
