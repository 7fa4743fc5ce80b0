//! The shapes in which serde quotes a value in its error messages, for a
//! receiver that turned a serde error into a string itself.

/// Each opening and the quote that closes it.
const SHAPES: [(&str, char); 7] = [
    ("string \"", '"'),
    ("integer `", '`'),
    ("floating point `", '`'),
    ("character `", '`'),
    ("unknown variant `", '`'),
    ("unknown field `", '`'),
    ("byte array `", '`'),
];

/// Replaces the values in serde's quoting shapes with `***` (to the end of
/// the text when the closing quote is missing). Linear in the text: where
/// each shape next occurs is searched again only once the scan passed it.
pub(super) fn mask_serde_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    // Where each shape occurs next, at or after `copied` (None: nowhere).
    let mut next: [Option<usize>; SHAPES.len()] = std::array::from_fn(|i| text.find(SHAPES[i].0));
    loop {
        let Some((shape, at)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (i, at)))
            .min_by_key(|&(_, at)| at)
        else {
            out.push_str(&text[copied..]);
            return out;
        };
        let (open, close) = SHAPES[shape];
        let value_start = at + open.len();
        out.push_str(&text[copied..value_start]);
        out.push_str("***");
        // The closing quote, skipping escaped ones (serde quotes strings
        // with Rust's Debug escaping).
        let mut escaped = false;
        let end = text[value_start..].char_indices().find_map(|(i, c)| {
            if escaped {
                escaped = false;
            } else if c == '\\' && close == '"' {
                escaped = true;
            } else if c == close {
                return Some(value_start + i);
            }
            None
        });
        let Some(end) = end else {
            return out;
        };
        copied = end;
        for (i, at) in next.iter_mut().enumerate() {
            if at.is_some_and(|at| at < copied) {
                *at = text[copied..].find(SHAPES[i].0).map(|found| copied + found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_serdes_quotes_are_masked() {
        assert_eq!(
            mask_serde_quotes(r#"invalid type: string "pg://u:pw\"x@db", expected struct Db"#),
            r#"invalid type: string "***", expected struct Db"#
        );
        assert_eq!(
            mask_serde_quotes("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant `***`, expected one of `a`, `b`"
        );
        assert_eq!(
            mask_serde_quotes("integer `42` and string \"open"),
            "integer `***` and string \"***"
        );
        assert_eq!(mask_serde_quotes("no quotes"), "no quotes");
    }

    #[test]
    fn a_long_text_of_many_shapes_is_masked_whole() {
        // 100,000 shapes: a search of every shape from each one found
        // would take minutes here.
        let text = "integer `1` ".repeat(100_000);
        assert_eq!(mask_serde_quotes(&text), "integer `***` ".repeat(100_000));
    }
}
