//! The bootstrap's logging options: isp-kit's JSON lines, and the remote
//! config's `logLevel` (see [`crate::logging`]).

use log::{LevelFilter, SetLoggerError};

use super::Bootstrap;
use crate::logging::JsonLogger;

impl Bootstrap {
    /// Installs [`JsonLogger`] on stderr as the process's `log` logger, at
    /// isp-kit's initial level: INFO, DEBUG with `APP_MODE=dev` (Go's
    /// bootstrap builds its logger the same way, though in dev mode it
    /// writes zap's console lines rather than JSON). Fails when a logger is
    /// installed already. Call it first in `main`, before anything logs.
    pub fn install_json_logger(&self) -> Result<(), SetLoggerError> {
        let level = if self.is_dev() {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        JsonLogger::stderr().install(level)
    }

    /// Applies the remote config's top-level `logLevel` to the `log`
    /// facade once the application accepted the config
    /// ([`RemoteLogLevel`](crate::logging::RemoteLogLevel), behind the
    /// `remoteConfigOverride` layer, so that an override can set it). Off
    /// by default: isp-kit's bootstrap does not do it; a Go module does it
    /// in its own `ReceiveConfig` (`logger.SetLevel(newCfg.LogLevel)`), and
    /// this is that line.
    #[must_use]
    pub fn remote_log_level(mut self) -> Self {
        self.remote_log_level = true;
        self
    }
}
