//! The cluster client: a supervised ETP session delivering typed messages.
//!
//! One idea a file: [`builder`](ClusterClientBuilder) and its
//! [`settings`](Setting), the [`status`](Status), the health answers, the
//! build errors, the closure receivers, and below them the supervisor
//! (hosts, status) with its reconnect pacing, the delivery actor (the receivers' lanes and
//! the cache writer, as long as the client), the session (one connection)
//! and its parts.

mod answer;
mod builder;
mod cache;
mod connect;
mod declaration;
mod delivery;
mod dispatch;
mod end_reason;
mod error;
mod handshake;
mod health;
mod held_hosts;
mod lanes;
mod liveness;
mod messages;
mod outage;
mod outbox;
mod pacing;
mod peer_lines;
mod receivers;
mod repeats;
mod session;
mod settings;
mod status;
mod supervisor;
#[cfg(feature = "tls")]
pub(crate) mod tls;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

pub use builder::ClusterClientBuilder;
#[doc(hidden)]
pub use dispatch::fuzz_frame;
pub use error::BuildError;
#[allow(deprecated)]
pub use health::{HealthcheckError, Inactive, ReadyError};
pub use held_hosts::HeldHosts;
pub use messages::{
    ConfigSource, HostsChanged, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent,
};
pub use outage::DEFAULT_OUTAGE_SUMMARY_INTERVAL;
#[cfg(test)]
pub(crate) use session::session_tag;
pub(crate) use settings::Settings;
pub use settings::*;
pub(crate) use status::Shared;
pub use status::{Rejection, SessionState, Status};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};

use crate::types::{ConfigData, ModuleInfo};
use supervisor::{Close, Supervisor, UpdateHosts};

/// The number of session actors alive in this process (all clients). A
/// diagnostic for leak tests: at most one per running client.
///
/// Not part of the API: hidden from the docs and outside semver, kept
/// public only because the crate's own leak test (an integration test, so
/// outside the crate) needs it.
#[doc(hidden)]
pub fn live_sessions() -> usize {
    session::LIVE_SESSIONS.load(Ordering::Relaxed)
}

/// A running cluster client: the Rust counterpart of Go's `cluster.Client`.
///
/// Cheap to clone; every clone controls the same client. Like the Go client,
/// it runs until [`ClusterClient::close`]: dropping every handle does not stop
/// it. When the actix System ends without `close()` (`System::stop`,
/// `#[actix_web::main]` returning, actix-web's SIGTERM handling) the
/// session still closes with 1000 (see the README's shutdown section);
/// `close().await` is the way to also wait for it.
#[derive(Clone)]
pub struct ClusterClient {
    addr: Addr<Supervisor>,
    shared: Arc<Shared>,
}

impl fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClient")
            .field("status", &self.status())
            .finish()
    }
}

impl ClusterClient {
    /// A builder for the module `info` that registers `config_data` (schema
    /// and default config).
    pub fn builder(info: ModuleInfo, config_data: ConfigData) -> ClusterClientBuilder {
        ClusterClientBuilder::new(info, config_data)
    }

    /// `Ok` while a session is active (its `MODULE:READY` was acknowledged);
    /// Go's `Client.Healthcheck`. No actor round trip: it reads the status
    /// under a short lock, cheap enough for every health probe, and an `Err`
    /// carries the very status the answer was taken from.
    // The error is the status itself, copied once per probe: boxing it
    // would cost an allocation on the path that matters.
    #[allow(clippy::result_large_err)]
    pub fn healthcheck(&self) -> Result<(), HealthcheckError> {
        let status = self.shared.lock();
        if status.state == SessionState::Active {
            Ok(())
        } else {
            Err(HealthcheckError {
                status: status.clone(),
            })
        }
    }

    /// The state, its host and since when, the last error, the counters
    /// and the last rejected config. Serializes to JSON for a diagnostics
    /// endpoint (see [`Status`]).
    pub fn status(&self) -> Status {
        self.shared.lock().clone()
    }

    /// Resolves once a session is active, that is once the module is
    /// registered and its receivers accepted the session's first config,
    /// routes and addresses (what [`healthcheck`](Self::healthcheck)
    /// answers `Ok` to); at once if one is active now. Fails after
    /// `timeout` or as soon as the client is closed, with the status of
    /// that moment. Go has no counterpart (its modules poll `Healthcheck`).
    ///
    /// An HTTP server started after `ready` serves the remote config from
    /// its first request rather than a default.
    #[allow(clippy::result_large_err)]
    pub async fn ready(&self, timeout: Duration) -> Result<(), ReadyError> {
        self.wait_for(timeout, |status| {
            (status.state == SessionState::Active).then_some(())
        })
        .await
    }

    /// Resolves once the receiver applied a config, from any source: a node
    /// in this session, or the last good config from the
    /// [cache](ClusterClientBuilder::config_cache), delivered at start-up
    /// even while every node is down; at once if one was applied. Answers
    /// where the config in force came from. Fails after `timeout` or as
    /// soon as the client is closed, with the status of that moment.
    ///
    /// [`ready`](Self::ready) waits for "registered" (a session active);
    /// this waits for "configured", which a module started from its cache
    /// is long before a node answers: "start from the cache" and "serve
    /// once configured" together. Go has no counterpart (no cache).
    #[allow(clippy::result_large_err)]
    pub async fn config_applied(&self, timeout: Duration) -> Result<ConfigSource, ReadyError> {
        self.wait_for(timeout, |status| status.config_source).await
    }

    /// Resolves with what `reached` finds in the status once it finds
    /// something: at once, or at a later change of the status. Fails after
    /// `timeout`, or as soon as the client is closed, with the status of
    /// that moment.
    #[allow(clippy::result_large_err)]
    async fn wait_for<T>(
        &self,
        timeout: Duration,
        reached: impl Fn(&Status) -> Option<T>,
    ) -> Result<T, ReadyError> {
        let mut changed = self.shared.subscribe();
        let wait = async {
            loop {
                {
                    let status = self.shared.lock();
                    if let Some(reached) = reached(&status) {
                        return Ok(reached);
                    }
                    if status.state.is_final() {
                        return Err(ReadyError::Closed {
                            status: status.clone(),
                        });
                    }
                }
                if changed.changed().await.is_err() {
                    return Err(ReadyError::Closed {
                        status: self.status(),
                    });
                }
            }
        };
        match actix::clock::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(ReadyError::TimedOut {
                after: timeout,
                status: self.status(),
            }),
        }
    }

    /// Replaces the config-service nodes, at once (Go's client takes its
    /// hosts once): the next attempt uses the new list, a new host may be tried
    /// at once, a host that stays keeps its own pacing (a node that failed
    /// a moment ago is not tried again sooner for being listed again), and
    /// a session on a host that is no longer listed leaves it with a normal
    /// close (1000) and moves to a listed one. The same hosts again, in any
    /// order, change nothing: an application may apply its list from a
    /// refresh loop.
    pub fn update_hosts<I, S>(&self, hosts: I) -> Result<(), BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let hosts: Vec<String> = hosts.into_iter().map(Into::into).collect();
        builder::validate_hosts(&hosts)?;
        self.addr.do_send(UpdateHosts(hosts));
        Ok(())
    }

    /// Closes the session with close code 1000 and stops for good. Resolves
    /// when the close frame was sent (or the connection was already gone),
    /// a config delivery in flight was answered (within the config
    /// timeout) and the cache write of an accepted config is on disk
    /// (within 2 s, `CACHE_FLUSH_TIMEOUT`).
    pub async fn close(&self) {
        // An error means the supervisor is gone already: closed.
        let _ = self.addr.send(Close).await;
    }
}
