//! Why a typed config was refused, in words that never quote a config
//! value: the error [`TypedConfig`](crate::TypedConfig) answers, defined here,
//! below the client, so that a receiver's error can be shown as it is
//! without this layer knowing the typed layer.

use std::fmt;

use serde::de::DeserializeOwned;

use super::{Bounded, SerdeErrorParts};

/// Why a [`TypedConfig`](crate::TypedConfig) refused a config. Its `Display` (and `Debug`)
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
    /// substring rules (see [`TypedConfig::validate`](crate::TypedConfig::validate)).
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
    pub(crate) fn parse<T: DeserializeOwned>(data: &[u8]) -> Result<T, Self> {
        let mut de = serde_json::Deserializer::from_slice(data);
        let value: T = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| Self::mismatch::<T>(e.path().to_string(), e.inner()))?;
        // Trailing bytes (never after the client's JSON check).
        de.end()
            .map_err(|e| Self::mismatch::<T>(".".to_owned(), &e))?;
        Ok(value)
    }

    fn mismatch<T>(path: String, err: &serde_json::Error) -> Self {
        let parts = SerdeErrorParts::of(err);
        Self::Mismatch {
            type_name: std::any::type_name::<T>(),
            category: parts.category,
            path: Bounded(&path, MAX_PATH_LEN).to_string(),
            line: parts.line,
            column: parts.column,
            expected: parts.expected,
        }
    }
}

/// How much of a JSON path a [`TypedConfigError`] shows.
const MAX_PATH_LEN: usize = 200;
