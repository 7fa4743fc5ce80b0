//! The one check every JSON payload goes through: one document, in UTF-8.
//!
//! serde_json does not check the UTF-8 of the strings it skips, so a
//! validation with `IgnoredAny` alone lets invalid bytes through.

use std::fmt;

/// Why bytes are not one JSON document in UTF-8.
#[derive(Debug)]
pub(crate) enum JsonError {
    /// Not UTF-8 (JSON text must be).
    Utf8(std::str::Utf8Error),
    /// Not one valid JSON document.
    Syntax(serde_json::Error),
}

impl JsonError {
    /// As a `serde_json::Error`, for APIs that report that type.
    pub(crate) fn into_serde(self) -> serde_json::Error {
        match self {
            JsonError::Utf8(e) => serde::de::Error::custom(format_args!("invalid utf-8: {e}")),
            JsonError::Syntax(e) => e,
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Utf8(e) => write!(f, "invalid utf-8: {e}"),
            JsonError::Syntax(e) => e.fmt(f),
        }
    }
}

/// `data` as text, if it is one JSON document in UTF-8.
pub(crate) fn json_text(data: &[u8]) -> Result<&str, JsonError> {
    let text = std::str::from_utf8(data).map_err(JsonError::Utf8)?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(JsonError::Syntax)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_inside_skipped_strings_is_checked() {
        assert_eq!(json_text("[\"é\"]".as_bytes()).unwrap(), "[\"é\"]");
        assert!(matches!(json_text(b"[\"\xc3\"]"), Err(JsonError::Utf8(_))));
        assert!(matches!(json_text(b"[1,]"), Err(JsonError::Syntax(_))));
        let err = json_text(b"{\"a\":\"\xff\"}").unwrap_err().into_serde();
        assert!(err.to_string().starts_with("invalid utf-8"), "{err}");
    }
}
