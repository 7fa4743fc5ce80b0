//! Quoted strings as the Go encoders the crate matches write them: one
//! loop for the escapes they share, each caller naming the rest.

use std::fmt::Write as _;

/// Writes `s` in double quotes: `"` and `\` escaped with a backslash,
/// `\n`, `\r` and `\t` by name; every other character goes through
/// `other`, which writes its escape and returns `true`, or returns `false`
/// for the character to be written as it is.
pub(crate) fn push_quoted(out: &mut String, s: &str, other: impl Fn(&mut String, char) -> bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                if !other(out, c) {
                    out.push(c);
                }
            }
        }
    }
    out.push('"');
}

/// `c` as a JSON `\u00xx` escape.
pub(crate) fn push_unicode_escape(out: &mut String, c: char) {
    let _ = write!(out, "\\u{:04x}", c as u32);
}
