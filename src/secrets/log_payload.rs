//! A config or schema payload as a log line shows it.

use std::fmt;

use super::hide_secrets;
use crate::json::json_text;

/// How much of a masked payload a log line shows.
pub(crate) const LOG_PREVIEW_LEN: usize = 4096;

/// A config or schema payload made safe for a log line: secrets masked, at
/// most [`LOG_PREVIEW_LEN`] bytes shown, and nothing but the size of a payload
/// that is not a JSON object (the Go client logs unparseable payloads raw;
/// and a top-level string or number has no path to match, so it could be a
/// secret itself).
pub(crate) struct LogPayload<'a>(pub(crate) &'a [u8]);

impl fmt::Display for LogPayload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self
            .0
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return match json_text(self.0) {
                Ok(_) => write!(f, "<{} bytes hidden: not a json object>", self.0.len()),
                Err(_) => write!(f, "<{} bytes hidden: not valid json>", self.0.len()),
            };
        }
        match hide_secrets(self.0) {
            Ok(masked) => {
                // Masking replaces whole values of UTF-8 input, so the
                // output is UTF-8; cut it on a char boundary.
                let text = String::from_utf8_lossy(&masked);
                let mut shown = text.len().min(LOG_PREVIEW_LEN);
                while !text.is_char_boundary(shown) {
                    shown -= 1;
                }
                f.write_str(&text[..shown])?;
                if masked.len() > shown {
                    write!(f, "… ({} more bytes)", masked.len() - shown)?;
                }
                Ok(())
            }
            Err(_) => write!(f, "<{} bytes hidden: not valid json>", self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_payload_never_shows_unparseable_bytes() {
        let shown = LogPayload(b"password=hunter2").to_string();
        assert_eq!(shown, "<16 bytes hidden: not valid json>");
        let shown = LogPayload(br#"{"password":"hunter2"}"#).to_string();
        assert_eq!(shown, r#"{"password":"***"}"#);
        let shown = LogPayload(br#"{"password":"hunter2""#).to_string();
        assert_eq!(shown, "<21 bytes hidden: not valid json>");
        let shown = LogPayload(br#" "password=hunter2" "#).to_string();
        assert_eq!(shown, "<20 bytes hidden: not a json object>");
        let shown = LogPayload(b"{\"a\":\"\xff\xfe\"}").to_string();
        assert_eq!(shown, "<10 bytes hidden: not valid json>");
        let shown = LogPayload(br#"["hunter2"]"#).to_string();
        assert_eq!(shown, "<11 bytes hidden: not a json object>");
    }

    #[test]
    fn log_payload_is_bounded() {
        let big = json!({ "items": vec!["x".repeat(100); 1000], "token": "t" });
        let shown = LogPayload(&serde_json::to_vec(&big).unwrap()).to_string();
        assert!(shown.len() < LOG_PREVIEW_LEN + 64, "{}", shown.len());
        assert!(
            shown.ends_with("more bytes)"),
            "{}",
            &shown[shown.len() - 40..]
        );
    }
}
