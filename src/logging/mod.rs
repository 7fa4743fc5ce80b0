//! Logs as a Go fleet's pipeline reads them: isp-kit's JSON log lines
//! ([`JsonLogger`]) and the remote config's `logLevel` applied at run time
//! ([`RemoteLogLevel`]).
//!
//! The crate logs through the `log` facade and installs no logger by
//! itself; these are for an application that wants its lines shaped as a
//! Go module's. [`Bootstrap`](crate::bootstrap::Bootstrap) offers both
//! (feature `bootstrap`).

mod json;
mod level;

pub use json::JsonLogger;
pub use level::{parse_level, LevelError, RemoteLogLevel, LOG_LEVEL_KEY};
