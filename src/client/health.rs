//! The answers of the health questions: why [`ClusterClient::healthcheck`]
//! failed, and why [`ClusterClient::ready`] gave up. Their `Display` is a
//! sentence for a health endpoint or a log line.
//!
//! [`ClusterClient::healthcheck`]: super::ClusterClient::healthcheck
//! [`ClusterClient::ready`]: super::ClusterClient::ready

use std::fmt;
use std::time::Duration;

use super::status::Millis;
use super::{SessionState, Status};

/// Why [`ClusterClient::healthcheck`](super::ClusterClient::healthcheck)
/// failed: no session is active. Go's `Healthcheck` answers "session
/// inactive"; this also carries the status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthcheckError {
    /// The client's status at the time.
    pub status: Status,
}

/// The former name of [`HealthcheckError`].
#[deprecated(since = "0.2.0", note = "renamed to HealthcheckError")]
pub type Inactive = HealthcheckError;

/// E.g. "session inactive: waiting 315 ms before the next attempt (last
/// node 10.0.0.1:9001); the last attempt ended: connection refused".
impl fmt::Display for HealthcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session inactive: ")?;
        describe(&self.status, f)
    }
}

impl std::error::Error for HealthcheckError {}

/// Why [`ClusterClient::ready`](super::ClusterClient::ready) gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadyError {
    /// No session became active within the time the caller gave.
    TimedOut {
        /// The time the caller gave.
        after: Duration,
        /// The client's status when it gave up.
        status: Status,
    },
    /// The client was closed (or its actix System ended) first.
    Closed {
        /// The client's status then.
        status: Status,
    },
}

impl fmt::Display for ReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut { after, status } => {
                write!(f, "the module was not ready within {}: ", Millis(*after))?;
                describe(status, f)
            }
            Self::Closed { status } => {
                write!(
                    f,
                    "the client was {} before the module was ready",
                    status.state
                )
            }
        }
    }
}

impl std::error::Error for ReadyError {}

/// What the client is doing, and why the last session ended.
fn describe(status: &Status, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}", status.state)?;
    if let Some(host) = &status.host {
        match status.state {
            SessionState::Connecting => write!(f, " to {host}")?,
            SessionState::Handshaking => write!(f, " with {host}")?,
            SessionState::Active => write!(f, " on {host}")?,
            _ => write!(f, " (last node {host})")?,
        }
    }
    if let Some(error) = &status.last_error {
        write!(f, "; the last attempt ended: {error}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Shared;

    #[test]
    fn display_is_a_sentence_not_a_debug_dump() {
        let shared = Shared::new();
        shared.update(|s| s.last_error = Some("connection refused".into()));
        shared.set_state(
            SessionState::BackingOff {
                delay: Duration::from_nanos(314_518_884),
            },
            Some("10.0.0.1:9001"),
        );
        let error = HealthcheckError {
            status: shared.lock().clone(),
        };
        assert_eq!(
            error.to_string(),
            "session inactive: waiting 314 ms before the next attempt (last node \
             10.0.0.1:9001); the last attempt ended: connection refused"
        );
        let ready = ReadyError::TimedOut {
            after: Duration::from_millis(2500),
            status: shared.lock().clone(),
        };
        assert!(ready
            .to_string()
            .starts_with("the module was not ready within 2.5 s: waiting 314 ms"));
        shared.set_state(SessionState::Closed, None);
        let closed = ReadyError::Closed {
            status: shared.lock().clone(),
        };
        assert_eq!(
            closed.to_string(),
            "the client was closed before the module was ready"
        );
    }
}
