//! The one place a receiver's error becomes text: masked and bounded once,
//! for the status, session events, log lines and errors.

use super::{hide_secrets_in_text, Bounded, SerdeErrorParts, TypedConfigError};

/// The most of a receiver's error that a status, an event, a log line or
/// an error carries (a close frame carries less: 123 bytes).
pub(crate) const MAX_RECEIVER_ERROR_LEN: usize = 512;

/// A receiver's error as text that is safe for the status, session events,
/// log lines and the close frame: the one place this happens, so that
/// masking and bounding happen once.
///
/// * [`TypedConfigError`] is shown as it is: its `Display` never
///   quotes a config value.
/// * A `serde_json::Error` is shown by its category, line and column and
///   the type serde expected, never serde's message (it quotes the
///   offending value: `invalid type: string "postgres://u:pw@db"`). When
///   one is the source of the error, its message is replaced the same way
///   inside the error's text.
/// * Any other text goes through [`hide_secrets_in_text`].
///
/// At most [`MAX_RECEIVER_ERROR_LEN`] bytes.
pub(crate) fn safe_receiver_error(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(typed) = err.downcast_ref::<TypedConfigError>() {
        return Bounded(&typed.to_string(), MAX_RECEIVER_ERROR_LEN).to_string();
    }
    if let Some(serde) = err.downcast_ref::<serde_json::Error>() {
        return Bounded(
            &SerdeErrorParts::of(serde).to_string(),
            MAX_RECEIVER_ERROR_LEN,
        )
        .to_string();
    }
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(serde) = cause.downcast_ref::<serde_json::Error>() {
            let parts = SerdeErrorParts::of(serde);
            text = text.replace(&serde.to_string(), &parts.to_string());
            text = text.replace(&parts.message, &parts.to_string());
        }
        source = cause.source();
    }
    Bounded(&hide_secrets_in_text(&text), MAX_RECEIVER_ERROR_LEN).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[test]
    fn serde_errors_show_category_position_and_expected_type_only() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Db {
            host: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Config {
            db: Db,
            limit: u32,
        }
        let err = serde_json::from_str::<Config>(r#"{"db":"pg://u:hunter2@db"}"#).unwrap_err();
        let shown = safe_receiver_error(&err);
        assert_eq!(
            shown,
            "json data error at line 1 column 25, expected struct Db"
        );
        let err = serde_json::from_str::<Config>(r#"{"db":{"host":"h"}}"#).unwrap_err();
        assert_eq!(
            safe_receiver_error(&err),
            "json data error at line 1 column 19, expected field `limit`"
        );
        // A serde error as the source of the receiver's own error.
        #[derive(Debug)]
        struct Wrapped(serde_json::Error);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "cannot apply: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = serde_json::from_str::<Config>(r#"{"db":"pg://u:hunter2@db"}"#).unwrap_err();
        let shown = safe_receiver_error(&Wrapped(err));
        assert_eq!(
            shown,
            "cannot apply: json data error at line 1 column 25, expected struct Db"
        );
    }

    #[test]
    fn receiver_errors_are_bounded() {
        let long: Box<dyn std::error::Error + Send + Sync> = "x".repeat(10_000).into();
        let shown = safe_receiver_error(&*long);
        assert!(
            shown.len() <= MAX_RECEIVER_ERROR_LEN + 32,
            "{}",
            shown.len()
        );
        assert!(shown.ends_with("(9488 more bytes)"), "{shown}");
    }
}
