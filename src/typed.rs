//! A typed layer over [`RemoteConfig`]: parse, validate, keep the last good
//! value, deliver `(new, previous)` as isp-kit's `rc` package does.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use serde::de::DeserializeOwned;

use crate::client::{ConfigSource, ReceiverError, RemoteConfig};
use crate::identity::{ConfigChanges, ConfigHash};
use crate::secrets::{hide_secrets_in_text, TypedConfigError};

/// A new config for the application, with the one it replaces.
pub struct ConfigChanged<T> {
    /// The config now in force.
    pub new: Arc<T>,
    /// The previous good config; `None` for the first one.
    pub previous: Option<Arc<T>>,
    /// Where `new` came from ([`RemoteConfig::source`]): a node, or the
    /// last good config cached on disk, delivered at start-up before any
    /// session.
    pub source: ConfigSource,
    /// `new`'s identity ([`RemoteConfig::hash`]): what the status, the
    /// INFO line and the `isp_cluster_config_info` series show once it is
    /// accepted.
    pub hash: ConfigHash,
    /// The JSON paths that differ from `previous`'s config (never a
    /// value; [`RemoteConfig::changes`]): `None` beside `previous: None`,
    /// and when the configs cannot be compared as JSON values.
    pub changes: Option<Arc<ConfigChanges>>,
}

impl<T> Clone for ConfigChanged<T> {
    fn clone(&self) -> Self {
        Self {
            new: self.new.clone(),
            previous: self.previous.clone(),
            source: self.source,
            hash: self.hash,
            changes: self.changes.clone(),
        }
    }
}

impl<T> fmt::Debug for ConfigChanged<T> {
    /// Shows nothing of the values: configs hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigChanged")
            .field("first", &self.previous.is_none())
            .field("source", &self.source)
            .field("hash", &self.hash)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl<T: 'static> Message for ConfigChanged<T> {
    type Result = Result<(), ReceiverError>;
}

type Validator<T> = Box<dyn Fn(&T) -> Result<(), String>>;

/// An actor that turns [`RemoteConfig`] into [`ConfigChanged<T>`] for the
/// application's actor. Register its address as the client's
/// `remote_config` receiver.
///
/// A config that does not parse into `T`, fails validation, or is rejected
/// by the application is the receiver's error (during the handshake that
/// fails the session, as in Go); the last good value stays.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use actix::prelude::*;
/// # use isp_cluster::{ConfigChanged, ReceiverError, TypedConfig};
/// #[derive(serde::Deserialize)]
/// struct Config { limit: u32 }
///
/// struct App;
/// impl Actor for App { type Context = Context<Self>; }
/// impl Handler<ConfigChanged<Config>> for App {
///     type Result = Result<(), ReceiverError>;
///     fn handle(&mut self, msg: ConfigChanged<Config>, _: &mut Context<Self>) -> Self::Result {
///         println!("limit {} (was {:?})", msg.new.limit, msg.previous.map(|p| p.limit));
///         // The JSON paths that changed since `previous`, never a value.
///         if let Some(changes) = &msg.changes {
///             println!("config {}: {changes}", msg.hash);
///         }
///         Ok(())
///     }
/// }
/// # fn wire() {
/// let typed = TypedConfig::new(App.start().recipient())
///     .validate(|c: &Config| if c.limit > 0 { Ok(()) } else { Err("limit must be positive".into()) })
///     .start();
/// // ClusterClient::builder(..).remote_config(typed.recipient())
/// # }
/// ```
pub struct TypedConfig<T: Send + Sync + 'static> {
    target: Recipient<ConfigChanged<T>>,
    validate: Option<Validator<T>>,
    current: Option<Arc<T>>,
}

impl<T: Send + Sync + 'static> fmt::Debug for TypedConfig<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedConfig")
            .field("has_config", &self.current.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + Sync + Unpin + 'static> TypedConfig<T> {
    /// Delivers each parsed config to `target`.
    pub fn new(target: Recipient<ConfigChanged<T>>) -> Self {
        Self {
            target,
            validate: None,
            current: None,
        }
    }

    /// Checks each parsed config before it is delivered. The error text is
    /// shown as [`TypedConfigError::Invalid`], after the secret masker's
    /// substring rules (a word naming a secret hides the value after it):
    /// still, say what is wrong, not what the value was.
    #[must_use]
    pub fn validate(mut self, check: impl Fn(&T) -> Result<(), String> + 'static) -> Self {
        self.validate = Some(Box::new(check));
        self
    }
}

impl<T: DeserializeOwned + Send + Sync + Unpin + 'static> Actor for TypedConfig<T> {
    type Context = Context<Self>;
}

impl<T: DeserializeOwned + Send + Sync + Unpin + 'static> Handler<RemoteConfig> for TypedConfig<T> {
    // Atomic: the next config is handled only once the target answered the
    // previous one, even when the sender gave up waiting, so `previous` is
    // always what the target last accepted.
    type Result = AtomicResponse<Self, Result<(), ReceiverError>>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let parsed: T = match TypedConfigError::parse(&msg.data) {
            Ok(value) => value,
            Err(error) => {
                return AtomicResponse::new(Box::pin(actix::fut::ready(Err(error.into()))));
            }
        };
        if let Some(check) = &self.validate {
            if let Err(e) = check(&parsed) {
                let error = TypedConfigError::Invalid(hide_secrets_in_text(&e));
                return AtomicResponse::new(Box::pin(actix::fut::ready(Err(error.into()))));
            }
        }
        let new = Arc::new(parsed);
        let previous = self.current.clone();
        // The client's summary is against the config it accepted last,
        // which is `previous` here unless this actor was fed otherwise.
        let changes = match previous {
            Some(_) => msg.identity().and_then(|i| i.changes.clone()),
            None => None,
        };
        let change = ConfigChanged {
            new: new.clone(),
            previous,
            source: msg.source(),
            hash: msg.hash(),
            changes,
        };
        let request = self.target.send(change);
        AtomicResponse::new(Box::pin(request.into_actor(self).map(
            move |result, act, _| match result {
                Ok(Ok(())) => {
                    act.current = Some(new);
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(e) => Err(format!("config target actor: {e}").into()),
            },
        )))
    }
}
