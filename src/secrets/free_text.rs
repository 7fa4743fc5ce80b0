//! Masking free text: a receiver's or a validator's own error message.
//!
//! The text is scanned once, word by word, and copied with what is secret
//! replaced. Every offset used to cut the text is found in the text itself:
//! a lower-cased copy can have another length (`Ⱥ` grows, the Kelvin sign
//! shrinks), so no offset of a copy is ever applied to the original.

use super::serde_quotes::mask_serde_quotes;
use super::substrings;
use super::userinfo::mask_user_info;

/// Names that mark a secret in free text besides the registered substrings:
/// the spellings error messages use for what a JSON config would call a
/// password or a token.
const TEXT_KEYS: [&str; 8] = [
    "passwd",
    "pwd",
    "apikey",
    "api_key",
    "api-key",
    "privatekey",
    "private_key",
    "authorization",
];

/// Schemes that come before the secret in a credential
/// (`Authorization: Bearer …`): shown, and the word after them masked.
const AUTH_SCHEMES: [&str; 4] = ["bearer", "basic", "digest", "token"];

const MASK: &str = "***";

/// Free text with secrets masked, for text that a library or a service
/// wrote and that may quote a config value: an error message before it
/// reaches a log line or a status. Never panics, whatever the text.
///
/// * The password in a URL's or a DSN's user info:
///   `postgres://app:Hunter2@db:5432/orders` →
///   `postgres://app:***@db:5432/orders`; a user info without a password
///   (it may be a token) is masked whole: `https://***@host`.
/// * A word that contains a registered substring (see
///   [`register_secret_substrings`](crate::register_secret_substrings);
///   by default `password`, `secret`, `token`, `credentials`) or one of
///   `passwd`, `pwd`, `apikey`, `api_key`, `api-key`, `privatekey`,
///   `private_key`, `authorization` (all case-insensitive) is a key: the
///   value after its `=` or `:` is masked (`apiToken=***`), and when
///   nothing follows the separator in the word, so is the next word
///   (`password hunter2` → `password ***`, `Secret: ***`,
///   `password = ***`, `Authorization: Bearer ***`); a value that looks
///   like a key itself (`token password hunter2`) is masked with the word
///   after it. A quoted value is masked to its closing quote
///   (`password="***"`).
/// * The shapes in which serde quotes a value (`string "…"`,
///   ``integer `…` ``, ``unknown variant `…` `` and the like) have the
///   value masked, for text that holds a serde error.
///
/// ```
/// assert_eq!(
///     isp_cluster::hide_secrets_in_text("cannot connect to postgres://app:Hunter2@db:5432/orders"),
///     "cannot connect to postgres://app:***@db:5432/orders",
/// );
/// assert_eq!(
///     isp_cluster::hide_secrets_in_text("login failed: password=Hunter2 user=app"),
///     "login failed: password=*** user=app",
/// );
/// ```
///
/// Text is not JSON: a masker of words can miss a secret that a key does
/// not name (`connect db:5432 hunter2`). Say what is wrong, not what the
/// value was.
pub fn hide_secrets_in_text(text: &str) -> String {
    let text = mask_serde_quotes(text);
    let registered = substrings::current();
    let keys: Vec<&str> = registered
        .iter()
        .map(String::as_str)
        .chain(TEXT_KEYS)
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    // The last key had no value glued to it: the next word is its value.
    let mut value_next = false;
    while pos < text.len() {
        let start = text[pos..]
            .find(|c: char| !c.is_whitespace())
            .map_or(text.len(), |i| pos + i);
        out.push_str(&text[pos..start]);
        if start == text.len() {
            break;
        }
        let end = text[start..]
            .find(char::is_whitespace)
            .map_or(text.len(), |i| start + i);
        let word = &text[start..end];
        // `password = x`, `Authorization: Bearer x`: the value is later.
        if value_next && (word == "=" || word == ":" || is_auth_scheme(word)) {
            out.push_str(word);
            pos = end;
            continue;
        }
        let key = key_end(word, &keys);
        if value_next {
            // A value that looks like a key (`token password x`, or a
            // password that holds `secret`) may be either: it is masked,
            // and so is the word after it.
            value_next = key.is_some() && !word.starts_with(['"', '\'']);
            pos = mask_value(&text, start, end, &mut out);
            continue;
        }
        let Some(key_end) = key else {
            mask_user_info(word, &mut out);
            pos = end;
            continue;
        };
        match word[key_end..].find(['=', ':']) {
            Some(sep) if key_end + sep + 1 < word.len() => {
                let value_start = start + key_end + sep + 1;
                mask_user_info(&text[start..value_start], &mut out);
                pos = mask_value(&text, value_start, end, &mut out);
            }
            _ => {
                mask_user_info(word, &mut out);
                value_next = true;
                pos = end;
            }
        }
    }
    out
}

/// Masks the value that starts at `start` (its word ends at `word_end`):
/// a quoted value to its closing quote (to the end of the text when there
/// is none), else the rest of the word. Returns where the scan goes on.
fn mask_value(text: &str, start: usize, word_end: usize, out: &mut String) -> usize {
    let quote = match text[start..].chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => {
            out.push_str(MASK);
            return word_end;
        }
    };
    out.push(quote);
    out.push_str(MASK);
    let body = start + quote.len_utf8();
    let mut escaped = false;
    let close = text[body..].char_indices().find_map(|(i, c)| {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            return Some(body + i);
        }
        None
    });
    match close {
        Some(close) => {
            out.push(quote);
            close + quote.len_utf8()
        }
        None => text.len(),
    }
}

fn is_auth_scheme(word: &str) -> bool {
    AUTH_SCHEMES.iter().any(|s| word.eq_ignore_ascii_case(s))
}

/// Where in `word` the earliest-ending key ends (a byte offset of `word`),
/// case-insensitive. `keys` are lower-case.
fn key_end(word: &str, keys: &[&str]) -> Option<usize> {
    if word.is_ascii() {
        // ASCII lower-casing keeps every byte where it was.
        let lower = word.to_ascii_lowercase();
        return keys
            .iter()
            .filter_map(|k| lower.find(k).map(|at| at + k.len()))
            .min();
    }
    keys.iter().filter_map(|k| find_folded(word, k)).min()
}

/// The end (in `word`) of the first place where `word`, lower-cased char by
/// char, reads `key`. A key that ends inside the lower case of a char
/// (`İ` is `i̇`) ends after that char.
fn find_folded(word: &str, key: &str) -> Option<usize> {
    let first = key.chars().next()?;
    word.char_indices()
        .filter(|&(_, c)| c.to_lowercase().next() == Some(first))
        .find_map(|(at, _)| matches_at(&word[at..], key).map(|end| at + end))
}

/// Whether `text` starts with `key` lower-cased; the end in `text` if so.
fn matches_at(text: &str, key: &str) -> Option<usize> {
    let mut wanted = key.chars().peekable();
    for (i, c) in text.char_indices() {
        for lower in c.to_lowercase() {
            match wanted.next() {
                None => break,
                Some(w) if w == lower => {}
                Some(_) => return None,
            }
        }
        if wanted.peek().is_none() {
            return Some(i + c.len_utf8());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_hides_what_follows_a_secret_word() {
        assert_eq!(
            hide_secrets_in_text("db password hunter2 is too short"),
            "db password *** is too short"
        );
        assert_eq!(
            hide_secrets_in_text("apiToken=abc123 rejected"),
            "apiToken=*** rejected"
        );
        assert_eq!(
            hide_secrets_in_text("Secret: s3 and more"),
            "Secret: *** and more"
        );
        assert_eq!(
            hide_secrets_in_text("limit must be positive"),
            "limit must be positive"
        );
        assert_eq!(
            hide_secrets_in_text(r#"invalid type: string "pg://u:pw\"x@db", expected struct Db"#),
            r#"invalid type: string "***", expected struct Db"#
        );
        assert_eq!(
            hide_secrets_in_text("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant `***`, expected one of `a`, `b`"
        );
        assert_eq!(
            hide_secrets_in_text("integer `42` and string \"open"),
            "integer `***` and string \"***"
        );
    }

    #[test]
    fn key_value_pairs_in_every_spelling() {
        let cases = [
            ("password = hunter2 rest", "password = *** rest"),
            ("password : hunter2", "password : ***"),
            ("db.password=hunter2,user=app", "db.password=***"),
            ("user=app,password=hunter2 x", "user=app,password=*** x"),
            (r#"password="hunter 2" x"#, r#"password="***" x"#),
            (
                r#"{"password":"hunter 2","port":5432}"#,
                r#"{"password":"***","port":5432}"#,
            ),
            ("PWD=hunter2", "PWD=***"),
            ("api_key: abc", "api_key: ***"),
            ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
            ("password='unterminated and the rest", "password='***"),
            ("DB_PASSWORD:\thunter2\nnext", "DB_PASSWORD:\t***\nnext"),
            ("password", "password"),
            ("password=", "password="),
            ("token password hunter2 x", "token *** *** x"),
            ("secret password=hunter2 x", "secret *** ***"),
            ("password mysecret1 is short", "password *** *** short"),
            (r#"apiToken = "Mapikey x" y"#, r#"apiToken = "***" y"#),
        ];
        for (text, masked) in cases {
            assert_eq!(hide_secrets_in_text(text), masked, "{text}");
        }
    }

    #[test]
    fn urls_are_masked_wherever_they_stand() {
        assert_eq!(
            hide_secrets_in_text("cannot connect to postgres://app:Hunter2@db:5432/orders"),
            "cannot connect to postgres://app:***@db:5432/orders"
        );
        assert_eq!(
            hide_secrets_in_text("dial (root:pw@tcp(db:3306)/x): refused"),
            "dial (root:***@tcp(db:3306)/x): refused"
        );
    }

    #[test]
    fn text_whose_lower_case_has_another_length_never_panics() {
        // `Ⱥ` (2 bytes) lower-cases to 3 bytes, the Kelvin sign (3 bytes)
        // to 1: together they keep the length and shift the offsets.
        assert_eq!(
            hide_secrets_in_text("unknown key ȺȺpassword\u{212A}=x"),
            "unknown key ȺȺpassword\u{212A}=***"
        );
        assert_eq!(
            hide_secrets_in_text("\u{212A}\u{212A}PASSWORDȺ=hunter2"),
            "\u{212A}\u{212A}PASSWORDȺ=***"
        );
        // A key found through a lower case of several chars.
        assert_eq!(hide_secrets_in_text("İtoken=x"), "İtoken=***");
        assert_eq!(hide_secrets_in_text("ПАРОЛЬ=x"), "ПАРОЛЬ=x");
        for text in [
            "Ⱥ",
            "\u{212A}",
            "ȺȺ\u{212A}\u{212A}",
            "=:",
            "\"",
            "'",
            "@",
            "://",
        ] {
            let _ = hide_secrets_in_text(text);
            let _ = hide_secrets_in_text(&format!("password {text}"));
            let _ = hide_secrets_in_text(&format!("password={text}"));
        }
    }
}
