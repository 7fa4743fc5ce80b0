//! What the client is doing: the state, the status with its counters, and
//! the healthcheck's error.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What the client is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Connecting to a node (TCP and WebSocket upgrade).
    Connecting,
    /// Connected; registering the module.
    Handshaking,
    /// Registered and ready (`MODULE:READY` acknowledged).
    Active,
    /// Waiting before the next attempt after failures.
    BackingOff {
        /// The delay before the next attempt.
        delay: Duration,
    },
    /// Closed for good with close 1000: by [`ClusterClient::close`], or
    /// because the actix System ended.
    Closed,
    /// The actix System ended and took the connection with it before the
    /// close frame could be flushed: the server saw an abnormal disconnect.
    /// Final, like `Closed`.
    Aborted,
}

/// The client's state, why, and its counters (what Go's bool healthcheck
/// does not say).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// What the client is doing.
    pub state: SessionState,
    /// The node of the current (or last) session.
    pub host: Option<String>,
    /// When the client entered `state`.
    pub since: SystemTime,
    /// Why the last session or attempt ended.
    pub last_error: Option<String>,
    /// Connection attempts started.
    pub sessions_started: u64,
    /// Sessions that became active.
    pub sessions_established: u64,
    /// Sessions and attempts that ended with an error.
    pub sessions_failed: u64,
    /// Writes of the config cache that failed
    /// ([`ClusterClientBuilder::config_cache`]); each is also a warning
    /// naming the file and the error. Never fatal.
    pub cache_writes_failed: u64,
}

/// The client's status, shared by the handle and the supervisor. Only the
/// supervisor writes it (the cache writer adds to its own counter and
/// touches nothing else), and health is read from the same snapshot, so a
/// health answer and the status it carries always agree.
pub(crate) struct Shared {
    status: Mutex<Status>,
}

impl Shared {
    /// A client that has not connected yet.
    pub(crate) fn new() -> Self {
        Self {
            status: Mutex::new(Status {
                state: SessionState::Connecting,
                host: None,
                since: SystemTime::now(),
                last_error: None,
                sessions_started: 0,
                sessions_established: 0,
                sessions_failed: 0,
                cache_writes_failed: 0,
            }),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock());
    }

    pub(crate) fn set_state(&self, state: SessionState, host: Option<&str>) {
        self.update(|s| {
            s.state = state;
            if let Some(host) = host {
                s.host = Some(host.to_owned());
            }
            s.since = SystemTime::now();
        });
    }
}

/// Why [`ClusterClient::healthcheck`] failed: no session is active. Go's
/// `Healthcheck` answers "session inactive"; this also carries the status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthcheckError {
    /// The client's status at the time.
    pub status: Status,
}

/// The former name of [`HealthcheckError`].
#[deprecated(since = "0.2.0", note = "renamed to HealthcheckError")]
pub type Inactive = HealthcheckError;

impl fmt::Display for HealthcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session inactive: {:?}", self.status.state)?;
        if let Some(e) = &self.status.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for HealthcheckError {}
