//! Secrets kept out of everything that leaves the application's own code:
//! log lines, errors, the status, events and close frames.
//!
//! * [`hide_secrets`] masks a JSON document by path ([`document`]);
//! * free text, a receiver's or a validator's own words, is masked by word
//!   ([`hide_secrets_in_text`]): URL user info ([`userinfo`]), `key=value`
//!   pairs whose key names a secret, serde's quoted values
//!   ([`serde_quotes`]);
//! * a receiver's error becomes text in one place, masked and bounded
//!   ([`receiver_error`]), and a serde error shows its shape, never its
//!   values ([`serde_error`], [`config_error`]);
//! * payloads ([`log_payload`]) and texts from the network ([`bounded`])
//!   are bounded before a log line carries them.
//!
//! Which words count as secret is one list for the process
//! ([`substrings`]).

mod bounded;
mod config_error;
mod document;
mod free_text;
mod log_payload;
mod receiver_error;
mod serde_error;
mod serde_quotes;
mod substrings;
mod userinfo;

pub(crate) use bounded::Bounded;
pub use config_error::TypedConfigError;
pub use document::{hide_secrets, HideSecretsError, MAX_NESTING};
pub use free_text::hide_secrets_in_text;
pub(crate) use log_payload::{LogPayload, LOG_PREVIEW_LEN};
pub(crate) use receiver_error::safe_receiver_error;
pub(crate) use serde_error::SerdeErrorParts;
pub use substrings::{register_secret_substrings, unregister_secret_substrings};
