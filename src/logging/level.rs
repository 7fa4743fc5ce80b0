//! The remote config's `logLevel`, applied to the `log` facade.
//!
//! isp-kit's bootstrap does not read a log level from the remote config:
//! each Go module does, by convention, in its `ReceiveConfig`
//! (`logger.SetLevel(newCfg.LogLevel)`, with `LogLevel log.Level` tagged
//! `schemaGen:"logLevel"` in its remote config struct). [`RemoteLogLevel`]
//! is that line as a layer in front of the application's receiver, for a
//! module that wants it (`Bootstrap::remote_log_level` puts it there).

use actix::prelude::*;
use log::LevelFilter;
use serde::Deserialize;

use crate::client::{ReceiverError, RemoteConfig};

/// The remote config's top-level key that holds the level, as Go modules
/// name it.
pub const LOG_LEVEL_KEY: &str = "logLevel";

/// A `logLevel` that is not a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelError(pub String);

impl std::fmt::Display for LevelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{LOG_LEVEL_KEY} {:?} is not a level (debug, info, warn, error, fatal; or trace)",
            self.0
        )
    }
}

impl std::error::Error for LevelError {}

/// A level as zap reads it (Go's `log.Level` in a remote config): `debug`,
/// `info` (or empty), `warn`, `error`, `dpanic`, `panic`, `fatal`, in any
/// case; the last three are ERROR here, the most severe `log` level.
/// `trace`, which zap lacks, is TRACE.
pub fn parse_level(text: &str) -> Result<LevelFilter, LevelError> {
    match text.to_ascii_lowercase().as_str() {
        "trace" => Ok(LevelFilter::Trace),
        "debug" => Ok(LevelFilter::Debug),
        "" | "info" => Ok(LevelFilter::Info),
        "warn" => Ok(LevelFilter::Warn),
        "error" | "dpanic" | "panic" | "fatal" => Ok(LevelFilter::Error),
        _ => Err(LevelError(text.to_owned())),
    }
}

/// The `logLevel` of a config: `None` when the key is absent (or the
/// config is not an object), an error when it is not a level.
fn level_of(config: &[u8]) -> Result<Option<LevelFilter>, LevelError> {
    #[derive(Deserialize)]
    struct WithLevel {
        #[serde(rename = "logLevel")]
        log_level: Option<serde_json::Value>,
    }
    // An array would deserialize into the struct too (serde reads structs
    // from sequences): only an object has keys.
    if !config.trim_ascii_start().starts_with(b"{") {
        return Ok(None);
    }
    let Ok(WithLevel { log_level }) = serde_json::from_slice::<WithLevel>(config) else {
        return Ok(None);
    };
    match log_level {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => parse_level(&text).map(Some),
        Some(other) => Err(LevelError(other.to_string())),
    }
}

/// Hands each [`RemoteConfig`] to the application's receiver and, once the
/// receiver accepted it, sets the `log` facade's level
/// ([`log::set_max_level`]) from its top-level `logLevel` (Go:
/// `logger.SetLevel(newCfg.LogLevel)` in a module's `ReceiveConfig`).
///
/// A config without the key leaves the level as it is (Go's zero value
/// would reset it to INFO). A `logLevel` that is not a level refuses the
/// config before the application sees it, naming the key, as Go's
/// unmarshalling refuses it. The level is the facade's, the process's:
/// with [`JsonLogger`](super::JsonLogger) it is the logger's level; a
/// logger with its own filter (`env_logger`'s `RUST_LOG`) still applies
/// that filter below it.
pub struct RemoteLogLevel {
    target: Recipient<RemoteConfig>,
}

impl std::fmt::Debug for RemoteLogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLogLevel").finish_non_exhaustive()
    }
}

impl RemoteLogLevel {
    /// The layer in front of `target`; start it and register its address
    /// as the client's `remote_config` receiver.
    pub fn new(target: Recipient<RemoteConfig>) -> Self {
        Self { target }
    }
}

impl Actor for RemoteLogLevel {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for RemoteLogLevel {
    type Result = ResponseFuture<Result<(), ReceiverError>>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let level = match level_of(&msg.data) {
            Ok(level) => level,
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        };
        // Queued now, in arrival order; the client waits for the answer.
        let request = self.target.send(msg);
        Box::pin(async move {
            let answer = request
                .await
                .unwrap_or_else(|e| Err(format!("remote config receiver: {e}").into()));
            if let (Ok(()), Some(level)) = (&answer, level) {
                if log::max_level() != level {
                    log::set_max_level(level);
                    log::warn!("log level set to {level} by the remote config's {LOG_LEVEL_KEY}");
                }
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zaps_level_names_are_read_in_any_case() {
        let cases = [
            ("debug", LevelFilter::Debug),
            ("DEBUG", LevelFilter::Debug),
            ("", LevelFilter::Info),
            ("info", LevelFilter::Info),
            ("Warn", LevelFilter::Warn),
            ("error", LevelFilter::Error),
            ("fatal", LevelFilter::Error),
            ("panic", LevelFilter::Error),
            ("trace", LevelFilter::Trace),
        ];
        for (text, level) in cases {
            assert_eq!(parse_level(text), Ok(level), "{text}");
        }
        let err = parse_level("verbose").unwrap_err().to_string();
        assert!(
            err.starts_with("logLevel \"verbose\" is not a level"),
            "{err}"
        );
    }

    #[test]
    fn the_level_of_a_config() {
        assert_eq!(
            level_of(br#"{"logLevel":"debug","a":1}"#),
            Ok(Some(LevelFilter::Debug))
        );
        assert_eq!(level_of(br#"{"a":1}"#), Ok(None));
        assert_eq!(level_of(br#"{"logLevel":null}"#), Ok(None));
        assert_eq!(level_of(b"[1]"), Ok(None));
        assert_eq!(level_of(br#"{"logLevel":3}"#), Err(LevelError("3".into())));
    }
}
