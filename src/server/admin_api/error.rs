//! The admin API's refusals: isp-kit business errors with the real
//! service's error codes (its `domain/errors.go`).

use std::collections::BTreeMap;
use std::fmt;

/// The module named in the request is not known (2001).
pub const ERROR_CODE_MODULE_NOT_FOUND: i32 = 2001;
/// The config (or the module's active config) is not there (2002).
pub const ERROR_CODE_CONFIG_NOT_FOUND: i32 = 2002;
/// The config violates the module's schema (2003).
pub const ERROR_CODE_INVALID_CONFIG: i32 = 2003;
/// The config changed since the version the update is based on (2004).
pub const ERROR_CODE_CONFIG_VERSION_CONFLICT: i32 = 2004;
/// The module has sent no schema to check the config against (2005).
pub const ERROR_CODE_SCHEMA_NOT_FOUND: i32 = 2005;

/// A refused admin request: an isp-kit business error (Go:
/// `apierrors.NewBusinessError`), which the RPC layer sends as
/// `InvalidArgument` with `{"errorCode","errorMessage","details"}` as its
/// detail. The admin API has no internal errors: its state is in memory.
///
/// Its texts are the real service's; none quotes a config value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminError {
    /// The real service's error code (`ERROR_CODE_*`, or 400 for a request
    /// that fails isp-kit's validation).
    pub error_code: i32,
    /// The real service's message, e.g. `module not found`.
    pub error_message: String,
    /// Field → reason, for a request or a config that fails validation.
    pub details: BTreeMap<String, String>,
}

impl AdminError {
    pub(crate) fn new(error_code: i32, error_message: &str) -> Self {
        Self {
            error_code,
            error_message: error_message.to_owned(),
            details: BTreeMap::new(),
        }
    }

    pub(crate) fn with_details(mut self, details: BTreeMap<String, String>) -> Self {
        self.details = details;
        self
    }

    pub(crate) fn module_not_found() -> Self {
        Self::new(ERROR_CODE_MODULE_NOT_FOUND, "module not found")
    }

    pub(crate) fn config_not_found(error_message: &str) -> Self {
        Self::new(ERROR_CODE_CONFIG_NOT_FOUND, error_message)
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error code {})", self.error_message, self.error_code)?;
        for (field, reason) in &self.details {
            write!(f, "; {field}: {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AdminError {}
