//! Masking free text: a receiver's or a validator's own error message.

use super::substrings;

/// Free text (a receiver's own error message) with the masker's rules
/// applied to words instead of JSON paths:
///
/// * a word that contains a registered substring (`password`, `token`, …,
///   case-insensitive) is a key: what is glued to it after `=` or `:` is
///   replaced by `***`, and when nothing is glued to it, so is the next
///   word (`password hunter2` → `password ***`);
/// * the shapes in which serde quotes a value (`string "…"`, `integer `…``,
///   `floating point `…``, `character `…``, `variant `…``, `field `…``
///   after `unknown`) have the value replaced by `***`, for a receiver that
///   turned a serde error into a string itself.
pub(crate) fn mask_free_text(text: &str) -> String {
    let text = mask_serde_quotes(text);
    let substrings = substrings::current();
    let mut out = String::with_capacity(text.len());
    let mut mask_next = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.is_empty() {
            continue;
        }
        if mask_next {
            out.push_str("***");
            mask_next = false;
            continue;
        }
        let lower = word.to_lowercase();
        let Some(end) = substrings
            .iter()
            .filter_map(|s| lower.find(s.as_str()).map(|at| at + s.len()))
            .min()
        else {
            out.push_str(word);
            continue;
        };
        // `lower` has the byte length of `word` for ASCII; for other text
        // mask the whole word rather than guess an offset.
        if lower.len() != word.len() {
            out.push_str("***");
            continue;
        }
        match word[end..].find(['=', ':']) {
            Some(sep) if end + sep + 1 < word.len() => {
                out.push_str(&word[..end + sep + 1]);
                out.push_str("***");
            }
            _ => {
                out.push_str(word);
                mask_next = true;
            }
        }
    }
    out
}

/// Replaces the values in serde's quoting shapes with `***`.
fn mask_serde_quotes(text: &str) -> String {
    const SHAPES: [(&str, char); 7] = [
        ("string \"", '"'),
        ("integer `", '`'),
        ("floating point `", '`'),
        ("character `", '`'),
        ("unknown variant `", '`'),
        ("unknown field `", '`'),
        ("byte array `", '`'),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = SHAPES
            .iter()
            .filter_map(|(open, close)| rest.find(open).map(|at| (at, *open, *close)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, open, close)) = next else {
            out.push_str(rest);
            return out;
        };
        let value_start = at + open.len();
        out.push_str(&rest[..value_start]);
        // Find the closing quote, skipping escaped ones (serde quotes
        // strings with Rust's Debug escaping).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest[value_start..].char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && close == '"' {
                escaped = true;
            } else if c == close {
                end = Some(value_start + i);
                break;
            }
        }
        out.push_str("***");
        match end {
            Some(end) => rest = &rest[end..],
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_hides_what_follows_a_secret_word() {
        assert_eq!(
            mask_free_text("db password hunter2 is too short"),
            "db password *** is too short"
        );
        assert_eq!(
            mask_free_text("apiToken=abc123 rejected"),
            "apiToken=*** rejected"
        );
        assert_eq!(
            mask_free_text("Secret: s3 and more"),
            "Secret: *** and more"
        );
        assert_eq!(
            mask_free_text("limit must be positive"),
            "limit must be positive"
        );
        assert_eq!(
            mask_free_text(r#"invalid type: string "pg://u:pw\"x@db", expected struct Db"#),
            r#"invalid type: string "***", expected struct Db"#
        );
        assert_eq!(
            mask_free_text("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant `***`, expected one of `a`, `b`"
        );
        assert_eq!(
            mask_free_text("integer `42` and string \"open"),
            "integer `***` and string \"***"
        );
    }
}
