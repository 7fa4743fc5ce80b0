//! What of a `serde_json::Error` is safe to show.

use std::fmt;

use super::Bounded;

/// What of a `serde_json::Error` is safe to show: the category, the
/// position and what serde expected (from the target type, not the
/// config). `message` is serde's own text, kept to be replaced, never shown.
pub(crate) struct SerdeErrorParts {
    pub(crate) category: &'static str,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) expected: Option<String>,
    pub(super) message: String,
}

/// How much of serde's "expected …" a safe error shows.
const MAX_EXPECTED_LEN: usize = 200;

impl SerdeErrorParts {
    pub(crate) fn of(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let category = match err.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "data",
            Category::Eof => "eof",
        };
        let (line, column) = (err.line(), err.column());
        let full = err.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        // The names in "missing field `x`" come from the target type; what
        // follows the last ", expected " is the visitor's description of
        // the type (a quoted value, if any, comes before it).
        let expected = if let Some(field) = message.strip_prefix("missing field ") {
            Some(format!("field {field}"))
        } else {
            message
                .rfind(", expected ")
                .map(|i| message[i + ", expected ".len()..].to_owned())
        };
        let expected = expected.map(|e| Bounded(&e, MAX_EXPECTED_LEN).to_string());
        Self {
            category,
            line,
            column,
            expected,
            message,
        }
    }
}

impl fmt::Display for SerdeErrorParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "json {} error at line {} column {}",
            self.category, self.line, self.column
        )?;
        if let Some(expected) = &self.expected {
            write!(f, ", expected {expected}")?;
        }
        Ok(())
    }
}
