//! Why a module cannot start from its local config: each error names the
//! file, and the key (or the variable that set it) that is wrong.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[cfg(doc)]
use super::Bootstrap;

/// A mistake in the local config or the files it points to, found by
/// [`Bootstrap::load`]. Go's `bootstrap.NewClustered` stops the process on
/// these (`Fatal`); here the caller decides, typically printing the error and
/// exiting non-zero.
///
/// No value of the config is quoted except those of the keys checked here
/// (addresses, ports, durations, flags), none of which is a secret; YAML
/// errors carry a line and column, not the line.
#[derive(Debug)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The local config file could not be read.
    ReadConfig {
        /// The local config file.
        file: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The local config file is not YAML, or not a mapping of keys.
    Yaml {
        /// The local config file.
        file: PathBuf,
        /// What is wrong, with its line and column.
        message: String,
    },
    /// A key of the local config is missing or has a wrong value.
    Key {
        /// The local config file.
        file: PathBuf,
        /// The key, as isp-kit spells it (`moduleName`,
        /// `configServiceAddress.port`).
        key: &'static str,
        /// The environment variable the value came from, if it did.
        variable: Option<String>,
        /// What is wrong.
        problem: String,
    },
    /// The default remote config could not be read.
    ReadDefaultRemoteConfig {
        /// The default remote config file.
        file: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The default remote config is not valid JSON.
    DefaultRemoteConfigJson {
        /// The default remote config file.
        file: PathBuf,
        /// The parse error (a line and column, no content).
        source: serde_json::Error,
    },
    /// `grpcOuterAddress.ip` is empty and the local address toward the first
    /// config-service host could not be found.
    LocalAddress {
        /// The local config file.
        file: PathBuf,
        /// The config-service host.
        host: String,
        /// The socket error.
        source: io::Error,
    },
    /// The process's working directory or executable could not be found.
    Environment(io::Error),
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadConfig { file, source } => write!(
                f,
                "cannot read the local config {} (its path: APP_CONFIG_PATH, or APP_MODE=dev for ./conf/config_dev.yml): {source}",
                file.display()
            ),
            Self::Yaml { file, message } => {
                write!(f, "local config {} is not valid: {message}", file.display())
            }
            Self::Key {
                file,
                key,
                variable,
                problem,
            } => write_key_problem(f, file, key, variable.as_deref(), problem),
            Self::ReadDefaultRemoteConfig { file, source } => write!(
                f,
                "cannot read the default remote config {} (its path: defaultRemoteConfigPath): {source}",
                file.display()
            ),
            Self::DefaultRemoteConfigJson { file, source } => write!(
                f,
                "default remote config {} (defaultRemoteConfigPath) is not valid json: {source}",
                file.display()
            ),
            Self::LocalAddress { file, host, source } => write!(
                f,
                "local config {}: grpcOuterAddress.ip is empty and the local address toward the config-service host {host} cannot be found (set grpcOuterAddress.ip): {source}",
                file.display()
            ),
            Self::Environment(e) => {
                write!(f, "cannot find the working directory or the executable: {e}")
            }
        }
    }
}

impl std::error::Error for BootstrapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ReadConfig { source, .. }
            | Self::ReadDefaultRemoteConfig { source, .. }
            | Self::LocalAddress { source, .. } => Some(source),
            Self::DefaultRemoteConfigJson { source, .. } => Some(source),
            Self::Environment(e) => Some(e),
            Self::Yaml { .. } | Self::Key { .. } => None,
        }
    }
}

/// The text of a local-config key that is wrong, the same for isp-kit's own
/// keys and the application's: the file, the key, what is wrong, and the
/// variable that set it (never the value).
pub(super) fn write_key_problem(
    f: &mut fmt::Formatter<'_>,
    file: &std::path::Path,
    key: &str,
    variable: Option<&str>,
    problem: &str,
) -> fmt::Result {
    write!(f, "local config {}: {key} {problem}", file.display())?;
    match variable {
        Some(variable) => write!(f, " (set by the variable {variable})"),
        None => Ok(()),
    }
}
