//! Masking a JSON document: [`hide_secrets`] walks every leaf with its
//! dotted path (object keys and array indices joined by `.`). When the
//! lower-cased path contains a registered substring (by default `password`,
//! `secret`, `token`, `credentials`), the leaf becomes the string `"***"`,
//! unless it is the empty string. Unlike the Go client, the rest of the
//! document is kept as it was written (key order, spacing), and the document
//! is never re-built as a tree: the masker copies the input and splices over
//! the secret leaves.

use std::fmt;

use super::substrings;
use crate::json::{json_text, JsonError};

const MASK: &[u8] = b"\"***\"";

/// The deepest nesting of arrays and objects [`hide_secrets`] walks.
pub const MAX_NESTING: usize = 512;

/// Why [`hide_secrets`] could not mask a document.
#[derive(Debug)]
#[non_exhaustive]
pub enum HideSecretsError {
    /// The document is not valid JSON.
    InvalidJson(serde_json::Error),
    /// Arrays and objects nest deeper than [`MAX_NESTING`].
    TooDeep,
    /// The document is not UTF-8 (JSON text must be).
    NotUtf8(std::str::Utf8Error),
}

impl fmt::Display for HideSecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson(e) => write!(f, "cannot mask secrets: invalid json: {e}"),
            Self::TooDeep => write!(
                f,
                "cannot mask secrets: json nests deeper than {MAX_NESTING} levels"
            ),
            Self::NotUtf8(e) => write!(f, "cannot mask secrets: invalid utf-8: {e}"),
        }
    }
}

impl std::error::Error for HideSecretsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidJson(e) => Some(e),
            Self::TooDeep => None,
            Self::NotUtf8(e) => Some(e),
        }
    }
}

/// Masks the secrets of a JSON document (any JSON value at the top).
///
/// ```
/// let masked = isp_cluster::hide_secrets(
///     br#"{"db":{"password":"x","port":5433},"secret":{"1":"a"},"Test":{"Secret":""}}"#,
/// ).unwrap();
/// assert_eq!(
///     masked,
///     br#"{"db":{"password":"***","port":5433},"secret":{"1":"***"},"Test":{"Secret":""}}"#,
/// );
/// ```
///
/// An error only when `json` is not valid JSON (or nests deeper than
/// [`MAX_NESTING`]).
pub fn hide_secrets(json: &[u8]) -> Result<Vec<u8>, HideSecretsError> {
    json_text(json).map_err(|e| match e {
        JsonError::Utf8(e) => HideSecretsError::NotUtf8(e),
        JsonError::Syntax(e) => HideSecretsError::InvalidJson(e),
    })?;
    let substrings = substrings::current();
    Masker::new(json, &substrings)
        .run()
        .ok_or(HideSecretsError::TooDeep)
}

/// A scanner over JSON that is known to be valid. It keeps the lower-cased
/// dotted path as bytes and whether the current subtree is secret already
/// (a path that contains a substring makes every path below it match too),
/// so each key costs one short search of its own segment only.
struct Masker<'a> {
    input: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    /// Start of the input not yet copied to `out`.
    copied: usize,
    /// Lower-cased dotted path of the current value.
    path: Vec<u8>,
    substrings: Vec<&'a [u8]>,
    /// No substring contains a dot, so a match lies inside one segment and
    /// the path itself need not be kept: the segment alone is searched.
    local_only: bool,
    /// Some substring is all digits, so an array index can match.
    index_can_match: bool,
    /// Bytes that start some substring.
    first_bytes: [bool; 256],
    /// Recent keys (as quoted in the input) and whether they match: keys
    /// repeat across the elements of arrays.
    key_cache: [Option<(&'a [u8], bool)>; KEY_CACHE],
    depth: usize,
    too_deep: bool,
}

const KEY_CACHE: usize = 64;

impl<'a> Masker<'a> {
    fn new(input: &'a [u8], substrings: &'a [String]) -> Self {
        Self {
            input,
            pos: 0,
            out: Vec::with_capacity(input.len()),
            copied: 0,
            path: Vec::with_capacity(64),
            substrings: substrings.iter().map(|s| s.as_bytes()).collect(),
            local_only: substrings.iter().all(|s| !s.contains('.')),
            index_can_match: substrings
                .iter()
                .any(|s| s.bytes().all(|b| b.is_ascii_digit() || b == b'.')),
            first_bytes: {
                let mut table = [false; 256];
                for s in substrings {
                    if let Some(&b) = s.as_bytes().first() {
                        table[usize::from(b)] = true;
                    }
                }
                table
            },
            key_cache: [None; KEY_CACHE],
            depth: 0,
            too_deep: false,
        }
    }

    /// The masked document, or `None` when it nests too deep.
    fn run(mut self) -> Option<Vec<u8>> {
        self.value(false);
        if self.too_deep {
            return None;
        }
        self.out.extend_from_slice(&self.input[self.copied..]);
        Some(self.out)
    }

    /// Enters an array or object; false (and the scan ends) past the limit.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            self.too_deep = true;
            self.pos = self.input.len();
            return false;
        }
        true
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.input.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> u8 {
        self.input.get(self.pos).copied().unwrap_or(0)
    }

    fn value(&mut self, secret: bool) {
        self.skip_ws();
        match self.peek() {
            b'{' => self.object(secret),
            b'[' => self.array(secret),
            _ => {
                let start = self.pos;
                let empty_string = self.input.get(start..start + 2) == Some(b"\"\"");
                self.scalar();
                if secret && !empty_string {
                    self.out.extend_from_slice(&self.input[self.copied..start]);
                    self.out.extend_from_slice(MASK);
                    self.copied = self.pos;
                }
            }
        }
    }

    /// Whether a substring occurs in `bytes`: one pass, candidates picked by
    /// their first byte.
    fn any_substring_in(&self, bytes: &[u8]) -> bool {
        bytes.iter().enumerate().any(|(i, &b)| {
            self.first_bytes[usize::from(b)]
                && self
                    .substrings
                    .iter()
                    .any(|sub| bytes[i..].starts_with(sub))
        })
    }

    /// In local-only mode: whether the quoted `key` contains a substring,
    /// from the cache when the key was seen recently.
    fn key_matches(&mut self, key: &'a [u8]) -> bool {
        let last = key.len().saturating_sub(2);
        let slot = (key.len() * 31
            + usize::from(key.get(1).copied().unwrap_or(0)) * 7
            + usize::from(key.get(last).copied().unwrap_or(0)))
            % KEY_CACHE;
        if let Some((cached, matches)) = self.key_cache[slot] {
            if cached == key {
                return matches;
            }
        }
        let matches = self.push_segment(false, false, |path| push_lowercase_key(path, key));
        self.key_cache[slot] = Some((key, matches));
        matches
    }

    /// Appends `.segment` (or `segment` at the top) and says whether the new
    /// path is secret. `is_index`: the segment is an array index.
    fn push_segment(
        &mut self,
        parent_secret: bool,
        is_index: bool,
        push: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        if self.local_only {
            // The path is not kept: `self.path` holds the segment alone.
            if parent_secret || (is_index && !self.index_can_match) {
                return parent_secret;
            }
            self.path.clear();
            push(&mut self.path);
            return self.any_substring_in(&self.path);
        }
        let start = self.path.len();
        if !self.path.is_empty() {
            self.path.push(b'.');
        }
        push(&mut self.path);
        // Matches that end before this segment were found before; search
        // from where one could start and still end inside it.
        parent_secret
            || self.substrings.iter().any(|sub| {
                let from = start.saturating_sub(sub.len().saturating_sub(1));
                contains(&self.path[from..], sub)
            })
    }

    fn object(&mut self, secret: bool) {
        self.pos += 1; // {
        if !self.enter() {
            return;
        }
        loop {
            self.skip_ws();
            match self.peek() {
                b'}' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return;
                }
                b',' => {
                    self.pos += 1;
                    continue;
                }
                b'"' => {}
                _ => {
                    // Unreachable for valid json; stop rather than loop.
                    self.pos = self.input.len();
                    return;
                }
            }
            let key_start = self.pos;
            self.string();
            let key = &self.input[key_start..self.pos];
            let saved = self.path.len();
            let child_secret = if self.local_only && !secret {
                self.key_matches(key)
            } else {
                self.push_segment(secret, false, |path| push_lowercase_key(path, key))
            };
            self.skip_ws();
            self.pos += 1; // :
            self.value(child_secret);
            self.path.truncate(saved);
        }
    }

    fn array(&mut self, secret: bool) {
        self.pos += 1; // [
        if !self.enter() {
            return;
        }
        let mut index = 0usize;
        loop {
            self.skip_ws();
            match self.peek() {
                b']' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return;
                }
                b',' => {
                    self.pos += 1;
                    continue;
                }
                0 => return,
                _ => {}
            }
            let saved = self.path.len();
            let child_secret = self.push_segment(secret, true, |path| push_decimal(path, index));
            self.value(child_secret);
            self.path.truncate(saved);
            index += 1;
        }
    }

    /// Skips a string, a number or a literal.
    fn scalar(&mut self) {
        if self.peek() == b'"' {
            self.string();
            return;
        }
        while let Some(b) = self.input.get(self.pos) {
            if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
    }

    fn string(&mut self) {
        self.pos += 1; // opening quote
        while let Some(rest) = self.input.get(self.pos..) {
            match rest.iter().position(|&b| b == b'"' || b == b'\\') {
                Some(i) if rest[i] == b'"' => {
                    self.pos += i + 1;
                    return;
                }
                Some(i) => self.pos += i + 2, // an escape and its next byte
                None => {
                    self.pos = self.input.len();
                    return;
                }
            }
        }
    }
}

/// Appends a quoted JSON key, unescaped and lower-cased.
fn push_lowercase_key(path: &mut Vec<u8>, quoted: &[u8]) {
    let inner = &quoted[1..quoted.len().saturating_sub(1).max(1)];
    if inner.is_ascii() && !inner.contains(&b'\\') {
        path.extend(inner.iter().map(u8::to_ascii_lowercase));
    } else {
        let key: String = serde_json::from_slice(quoted).unwrap_or_default();
        path.extend_from_slice(key.to_lowercase().as_bytes());
    }
}

fn push_decimal(path: &mut Vec<u8>, mut n: usize) {
    let start = path.len();
    loop {
        path.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    path[start..].reverse();
}

/// Naive search: haystacks are short path tails, where it beats a searcher's
/// setup cost.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    match needle.first() {
        None => true,
        Some(&first) => haystack
            .windows(needle.len())
            .any(|w| w[0] == first && w == needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{register_secret_substrings, unregister_secret_substrings};
    use serde_json::{json, Value};

    fn mask(v: &Value) -> Value {
        let text = serde_json::to_vec(v).unwrap();
        serde_json::from_slice(&hide_secrets(&text).unwrap()).unwrap()
    }

    #[test]
    fn the_reference_example() {
        let input =
            br#"{"db":{"password":"x","port":5433},"secret":{"1":"a"},"Test":{"Secret":""}}"#;
        let want =
            br#"{"db":{"password":"***","port":5433},"secret":{"1":"***"},"Test":{"Secret":""}}"#;
        assert_eq!(hide_secrets(input).unwrap(), want);
    }

    #[test]
    fn array_indices_are_path_parts() {
        let out = mask(&json!({"tokens":["a","",3,null,{"x":true}],"list":[{"password":1}]}));
        assert_eq!(
            out,
            json!({"tokens":["***","","***","***",{"x":"***"}],"list":[{"password":"***"}]})
        );
    }

    #[test]
    fn case_insensitive_substring_of_the_whole_path() {
        let out = mask(
            &json!({"DbPassWord":"p","apiTokenValue":"t","myCredentialsFile":{"a":"b"},"plain":"ok"}),
        );
        assert_eq!(
            out,
            json!({"DbPassWord":"***","apiTokenValue":"***","myCredentialsFile":{"a":"***"},"plain":"ok"})
        );
    }

    #[test]
    fn containers_are_not_leaves() {
        let out = mask(&json!({"secret":{},"token":[],"password":{"inner":[]}}));
        assert_eq!(out, json!({"secret":{},"token":[],"password":{"inner":[]}}));
    }

    #[test]
    fn any_json_value_at_the_top() {
        assert_eq!(hide_secrets(b"\"password\"").unwrap(), b"\"password\"");
        assert_eq!(hide_secrets(b" 12 ").unwrap(), b" 12 ");
        assert_eq!(hide_secrets(b"null").unwrap(), b"null");
        assert_eq!(hide_secrets(br#"["secret"]"#).unwrap(), br#"["secret"]"#);
        assert_eq!(
            hide_secrets(br#"[{"token":"t"}]"#).unwrap(),
            br#"[{"token":"***"}]"#
        );
    }

    #[test]
    fn formatting_and_escapes_are_kept() {
        let input = b"{ \"a\\\"b\" : \"x\\\"y\" ,\n \"pass\\u0077ord\" : \"s\\\\\\\"\" , \"k\":[ 1 , -2.5e3 ] }";
        let out = hide_secrets(input).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{ \"a\\\"b\" : \"x\\\"y\" ,\n \"pass\\u0077ord\" : \"***\" , \"k\":[ 1 , -2.5e3 ] }"
        );
    }

    #[test]
    fn data_with_delimiters_and_unicode() {
        let out = mask(&json!({"пароль":"x","secretÄ":"ü||x","note":"token"}));
        assert_eq!(out, json!({"пароль":"x","secretÄ":"***","note":"token"}));
    }

    #[test]
    fn invalid_utf8_inside_strings_is_an_error() {
        let err = hide_secrets(b"{\"password\":\"\xff\"}").unwrap_err();
        assert!(matches!(err, HideSecretsError::NotUtf8(_)), "{err}");
    }

    #[test]
    fn invalid_json_is_an_error() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"password=x",
            b"[1,]",
            b"{} {}",
        ] {
            let err = hide_secrets(bad).unwrap_err();
            assert!(matches!(err, HideSecretsError::InvalidJson(_)));
            assert!(err
                .to_string()
                .starts_with("cannot mask secrets: invalid json"));
        }
    }

    #[test]
    fn registration_is_global_and_case_insensitive() {
        register_secret_substrings(["PrivateKey"]);
        let out = mask(&json!({"tls":{"privatekeyPem":"k"}}));
        unregister_secret_substrings(["privateKEY"]);
        assert_eq!(out, json!({"tls":{"privatekeyPem":"***"}}));
        let after = mask(&json!({"tls":{"privatekeyPem":"k"}}));
        assert_eq!(after, json!({"tls":{"privatekeyPem":"k"}}));
    }

    #[test]
    fn substrings_with_dots_or_digits_match_across_segments() {
        let substrings = vec!["db.pass".to_owned(), "2".to_owned()];
        let input = br#"{"db":{"password":"x","user":"u"},"list":["a","b","c"],"n":{"x2y":1}}"#;
        let out = Masker::new(input, &substrings).run().unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out,
            json!({"db":{"password":"***","user":"u"},"list":["a","b","***"],"n":{"x2y":"***"}})
        );
        // Without a dot, a match never spans segments: "b.pa" is not "bpa".
        let substrings = vec!["bpa".to_owned()];
        let out = Masker::new(br#"{"b":{"pa":"x"}}"#, &substrings)
            .run()
            .unwrap();
        assert_eq!(out, br#"{"b":{"pa":"x"}}"#);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let err = hide_secrets(deep.as_bytes()).unwrap_err();
        assert!(matches!(err, HideSecretsError::TooDeep), "{err}");
        let ok = "[".repeat(MAX_NESTING) + &"]".repeat(MAX_NESTING);
        assert_eq!(hide_secrets(ok.as_bytes()).unwrap(), ok.as_bytes());
    }
}
