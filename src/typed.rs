//! A typed layer over [`RemoteConfig`]: parse, validate, keep the last good
//! value, deliver `(new, previous)` as isp-kit's `rc` package does.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::client::{ConfigSource, ReceiverError, RemoteConfig};
use crate::identity::{ConfigChanges, ConfigHash};
use crate::types::RawJson;

/// The title isp-kit gives a module's config schema.
pub const CONFIG_SCHEMA_TITLE: &str = "Remote config";

/// The JSON schema of `T`, titled "Remote config", ready for
/// [`crate::ConfigData`].
///
/// ```
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Config {
///     /// Requests per second.
///     limit: u32,
/// }
/// let schema = isp_cluster::config_schema::<Config>();
/// let value: serde_json::Value = schema.parse().unwrap();
/// assert_eq!(value["title"], "Remote config");
/// assert_eq!(value["properties"]["limit"]["type"], "integer");
/// ```
pub fn config_schema<T: JsonSchema>() -> RawJson {
    let mut schema = schemars::schema_for!(T);
    schema.insert("title".to_owned(), CONFIG_SCHEMA_TITLE.into());
    // A schema is plain JSON: serializing it cannot fail.
    RawJson::from_value(&schema).unwrap_or_default()
}

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

/// Why a [`TypedConfig`] refused a config. Its `Display` (and `Debug`)
/// never quote a config value: it reaches the status, session events, log
/// lines and the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypedConfigError {
    /// The config does not deserialize into the target type.
    Mismatch {
        /// The target type's name.
        type_name: &'static str,
        /// serde's category: `"data"` (a value of the wrong type or a
        /// missing field), `"syntax"`, `"eof"` or `"io"`.
        category: &'static str,
        /// Where in the document, as `db.port` or `items[2]` (`.` for the
        /// top level).
        path: String,
        /// The line of the offending value (from 1).
        line: usize,
        /// The column of the offending value (from 1).
        column: usize,
        /// What the target type expected there, as serde describes it
        /// (`struct Db`, `u32`, `field `limit``), when it says.
        expected: Option<String>,
    },
    /// The validator refused the config; its text after the masker's
    /// substring rules (see [`TypedConfig::validate`]).
    Invalid(String),
}

impl fmt::Display for TypedConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mismatch {
                type_name,
                category,
                path,
                line,
                column,
                expected,
            } => {
                write!(
                    f,
                    "config does not match {type_name}: json {category} error at {path} (line {line} column {column})"
                )?;
                if let Some(expected) = expected {
                    write!(f, ", expected {expected}")?;
                }
                Ok(())
            }
            Self::Invalid(text) => write!(f, "config is invalid: {text}"),
        }
    }
}

impl std::error::Error for TypedConfigError {}

impl TypedConfigError {
    /// The mismatch of `data` with `T`, or `T` itself.
    fn parse<T: DeserializeOwned>(data: &[u8]) -> Result<T, Self> {
        let mut de = serde_json::Deserializer::from_slice(data);
        let value: T = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| Self::mismatch::<T>(e.path().to_string(), e.inner()))?;
        // Trailing bytes (never after the client's JSON check).
        de.end()
            .map_err(|e| Self::mismatch::<T>(".".to_owned(), &e))?;
        Ok(value)
    }

    fn mismatch<T>(path: String, err: &serde_json::Error) -> Self {
        let parts = crate::secrets::SerdeErrorParts::of(err);
        Self::Mismatch {
            type_name: std::any::type_name::<T>(),
            category: parts.category,
            path: crate::secrets::Bounded(&path, MAX_PATH_LEN).to_string(),
            line: parts.line,
            column: parts.column,
            expected: parts.expected,
        }
    }
}

/// How much of a JSON path a [`TypedConfigError`] shows.
const MAX_PATH_LEN: usize = 200;

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
                let error = TypedConfigError::Invalid(crate::secrets::mask_free_text(&e));
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
