//! The offline client: the remote config from a file, no config-service.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use actix::{MailboxError, Recipient};

use crate::client::{ConfigSource, RemoteConfig, DEFAULT_CONFIG_TIMEOUT};
use crate::config_file::{self, JsonFile};
use crate::identity::{AppliedConfig, Tracker};
use crate::secrets::safe_receiver_error;

/// Delivers a remote config read from a JSON file to the same
/// [`RemoteConfig`] receiver the cluster client would feed, under the config
/// timeout. For development and for modules run without a config-service.
///
/// ```no_run
/// # use actix::prelude::*;
/// # use isp_cluster::{OfflineClient, RemoteConfig, ReceiverError};
/// # struct App;
/// # impl Actor for App { type Context = Context<Self>; }
/// # impl Handler<RemoteConfig> for App {
/// #     type Result = Result<(), ReceiverError>;
/// #     fn handle(&mut self, _: RemoteConfig, _: &mut Context<Self>) -> Self::Result { Ok(()) }
/// # }
/// # async fn run() -> Result<(), isp_cluster::OfflineError> {
/// let app = App.start();
/// let offline = OfflineClient::new("conf/remote.json", app.recipient());
/// offline.run().await?;    // read, check, deliver once
/// offline.run().await?;    // again, e.g. on SIGHUP
/// # Ok(()) }
/// ```
pub struct OfflineClient {
    path: PathBuf,
    receiver: Recipient<RemoteConfig>,
    config_timeout: Duration,
    delivered: AtomicBool,
    /// The module, for the `isp_cluster_config_info` series (none when
    /// empty).
    module: String,
    /// The config accepted last and what the status would show of it.
    identity: Mutex<Identity>,
}

#[derive(Default)]
struct Identity {
    tracker: Option<Tracker>,
    applied: Option<AppliedConfig>,
}

impl fmt::Debug for OfflineClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineClient")
            .field("path", &self.path)
            .field("config_timeout", &self.config_timeout)
            .finish_non_exhaustive()
    }
}

/// Why the offline config was not applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum OfflineError {
    /// The file could not be read.
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    InvalidJson {
        /// The config file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The receiver rejected the config: its error as safe text (a
    /// receiver's error may quote config values; this never does, see
    /// [`crate::TypedConfigError`]).
    Rejected(String),
    /// The receiver did not answer within the config timeout.
    Timeout(Duration),
    /// The receiver actor is stopped.
    ReceiverStopped,
    /// A setting is out of range, as the cluster client's builder refuses
    /// it ([`BuildError::InvalidSetting`](crate::BuildError::InvalidSetting)):
    /// nothing was read or delivered.
    InvalidSetting {
        /// Which setting: `"watch interval"` or `"config timeout"`.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for OfflineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            Self::InvalidJson { path, source } => {
                write!(
                    f,
                    "config file {} is not valid json: {source}",
                    path.display()
                )
            }
            Self::Rejected(e) => write!(f, "remote config receiver rejected the config: {e}"),
            Self::Timeout(t) => write!(f, "remote config receiver did not answer within {t:?}"),
            Self::ReceiverStopped => f.write_str("remote config receiver is stopped"),
            Self::InvalidSetting { setting, reason } => {
                write!(f, "offline client: the {setting} is refused: {reason}")
            }
        }
    }
}

impl std::error::Error for OfflineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::InvalidJson { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl OfflineClient {
    /// A client that reads `path` and feeds `receiver`.
    pub fn new(path: impl AsRef<Path>, receiver: Recipient<RemoteConfig>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            receiver,
            config_timeout: DEFAULT_CONFIG_TIMEOUT,
            delivered: AtomicBool::new(false),
            module: String::new(),
            identity: Mutex::default(),
        }
    }

    /// The module this is, for the `isp_cluster_config_info{module,hash}`
    /// series of the infra scope's metrics (see the README's "Which config
    /// runs where"); without it the applied config has its hash, INFO line
    /// and [`applied`](Self::applied) but no series.
    #[must_use]
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.module = module.into();
        self
    }

    /// The config in force: its hash, when it was applied and what changed
    /// from the one before (as [`Status::config`](crate::Status::config)
    /// shows for the cluster client); `None` until the receiver accepted
    /// one.
    pub fn applied(&self) -> Option<AppliedConfig> {
        self.lock_identity().applied.clone()
    }

    fn lock_identity(&self) -> MutexGuard<'_, Identity> {
        self.identity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the receiver has (default 5 s). Zero is refused by
    /// [`run`](Self::run) and [`watch`](Self::watch) (every delivery would
    /// time out), as the cluster client's builder refuses it.
    #[must_use]
    pub fn config_timeout(mut self, timeout: Duration) -> Self {
        self.config_timeout = timeout;
        self
    }

    /// The config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file off the actix thread; a failure names the path.
    async fn read(&self) -> Result<config_file::JsonFile, OfflineError> {
        config_file::read(&self.path)
            .await
            .map_err(|source| OfflineError::Read {
                path: self.path.clone(),
                source,
            })
    }

    /// Reads the file (off the actix thread), checks it is JSON and
    /// delivers it, marked [`ConfigSource::File`] (Go's `OfflineClient.Run`).
    /// Call it again to apply the file again, e.g. on SIGHUP; when that
    /// fails, the receiver keeps the last good config.
    pub async fn run(&self) -> Result<(), OfflineError> {
        self.check_timeout()?;
        let file = self.read().await?;
        self.deliver(file).await
    }

    fn check_timeout(&self) -> Result<(), OfflineError> {
        if self.config_timeout.is_zero() {
            return Err(OfflineError::InvalidSetting {
                setting: "config timeout",
                reason: "it is zero: every delivery would time out",
            });
        }
        Ok(())
    }

    async fn deliver(&self, file: JsonFile) -> Result<(), OfflineError> {
        if let Err(e) = file.check {
            return Err(OfflineError::InvalidJson {
                path: self.path.clone(),
                source: e.into_serde(),
            });
        }
        let initial = !self.delivered.load(Ordering::Acquire);
        let mut config = RemoteConfig::new(file.data, initial).with_source(ConfigSource::File);
        let identity = {
            let mut held = self.lock_identity();
            let module = self.module.clone();
            held.tracker
                .get_or_insert_with(|| Tracker::new(module))
                .identify(&config.data)
        };
        config.set_identity(identity.clone());
        match self
            .receiver
            .send(config)
            .timeout(self.config_timeout)
            .await
        {
            Ok(Ok(())) => {
                self.delivered.store(true, Ordering::Release);
                let tag = format!("[offline {}]", self.path.display());
                let mut held = self.lock_identity();
                let module = self.module.clone();
                let applied = held
                    .tracker
                    .get_or_insert_with(|| Tracker::new(module))
                    .accepted(&identity, ConfigSource::File, &tag);
                held.applied = Some(applied);
                Ok(())
            }
            Ok(Err(e)) => Err(OfflineError::Rejected(safe_receiver_error(&*e))),
            Err(MailboxError::Timeout) => Err(OfflineError::Timeout(self.config_timeout)),
            Err(MailboxError::Closed) => Err(OfflineError::ReceiverStopped),
        }
    }

    /// The same as [`run`](Self::run), which can be called again.
    #[deprecated(since = "0.2.0", note = "identical to run(): call run() again")]
    pub async fn reload(&self) -> Result<(), OfflineError> {
        self.run().await
    }

    /// Delivers the file now, and again whenever its content changes,
    /// checking every `interval`, until the returned guard is dropped.
    ///
    /// The first read and delivery happen before it returns, with
    /// [`run`](Self::run)'s errors: a watch whose guard is dropped at once
    /// (`let _ = offline.watch(..).await`) has still delivered the file,
    /// and a file that is missing or rejected at start is the caller's
    /// error, not a log line. After that, a change that fails (unreadable,
    /// invalid JSON, rejected) is logged with the path and the error, never
    /// the content, and the receiver keeps the last good config. The file
    /// is read off the actix thread. Call it inside a running actix System.
    ///
    /// A zero `interval` is refused ([`OfflineError::InvalidSetting`], before
    /// anything is read): it would re-read the file in a busy loop.
    pub async fn watch(self, interval: Duration) -> Result<OfflineWatch, OfflineError> {
        if interval.is_zero() {
            return Err(OfflineError::InvalidSetting {
                setting: "watch interval",
                reason: "it is zero: the file would be re-read in a busy loop",
            });
        }
        self.check_timeout()?;
        let file = self.read().await?;
        let first = fingerprint(&file.data);
        self.deliver(file).await?;
        let task = actix::spawn(async move {
            let mut last: Option<u64> = Some(first);
            loop {
                actix::clock::sleep(interval).await;
                match config_file::read(&self.path).await {
                    Ok(file) => {
                        let fingerprint = fingerprint(&file.data);
                        if last != Some(fingerprint) {
                            last = Some(fingerprint);
                            if let Err(e) = self.deliver(file).await {
                                log::error!("offline config not applied: {e}");
                            }
                        }
                    }
                    Err(e) => {
                        if last.take().is_some() {
                            log::error!("cannot read config file {}: {e}", self.path.display());
                        }
                    }
                }
            }
        });
        Ok(OfflineWatch { task })
    }
}

fn fingerprint(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    hasher.finish()
}

/// Stops [`OfflineClient::watch`] when dropped.
#[derive(Debug)]
#[must_use = "watching stops when the guard is dropped"]
pub struct OfflineWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OfflineWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
