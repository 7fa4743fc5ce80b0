//! The identity of a config: SHA-256 of its canonical JSON, shortened.
//!
//! Canonical JSON here is the compact form (no whitespace) with the keys of
//! every object sorted by their UTF-8 bytes, strings escaped as serde_json
//! writes them (`\"`, `\\`, the short escapes and `\u00XX` for the other
//! control characters, everything else as is), integers in decimal and
//! other numbers in their shortest round-trip form (`1.5`, `1.0`, `1e+300`).
//! Key order and whitespace therefore do not change the hash; a value,
//! a key, an element's position or a type does. The form is written
//! straight into the hasher: no copy of the config is made.
//!
//! Why SHA-256: it is the hash operators already have (`sha256sum`, the
//! one Kubernetes and Helm use for config checksums), it is specified
//! once and for all (a hash of std's `Hasher` may change between Rust
//! releases, so two builds of a fleet would disagree), and a collision
//! between two configs is out of reach even for someone who writes them
//! on purpose. Twelve hex digits (48 bits) are short enough for a label
//! and a log line and leave a module's whole history of configs far from
//! a chance collision (about one in 10⁷ for ten thousand configs).

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The identity of a config: the first 12 hex digits of the SHA-256 of its
/// canonical JSON (compact, object keys sorted; see the module docs), so
/// that key order and whitespace do not change it. Shown as lowercase hex,
/// `3f9a1c2b7e01`; serializes as that string. Go's client has no
/// counterpart.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigHash([u8; ConfigHash::BYTES]);

impl ConfigHash {
    /// How many bytes of the SHA-256 are kept.
    const BYTES: usize = 6;
    /// The length of its hex form.
    pub const LEN: usize = Self::BYTES * 2;

    /// The hash of the JSON document `data`; an error when it is not one
    /// (or holds a number out of the range of `f64`).
    pub fn of_json(data: &[u8]) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_slice(data)?;
        Ok(Self::of_value(&value))
    }

    /// The hash of `value`'s canonical JSON.
    pub fn of_value(value: &Value) -> Self {
        let mut hasher = HashWriter {
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(HashWriter::BUFFER),
        };
        // Writing into a hasher cannot fail.
        let _ = write_canonical(value, &mut hasher);
        Self::from_digest(hasher.finish().as_ref())
    }

    /// The hash of `data` byte for byte: for a config that passed the
    /// client's JSON check but that serde_json cannot hold as a value (a
    /// number beyond `f64`, nesting over its limit of 128).
    pub(crate) fn of_bytes(data: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(data))
    }

    fn from_digest(digest: &[u8]) -> Self {
        let mut short = [0; Self::BYTES];
        short.copy_from_slice(&digest[..Self::BYTES]);
        Self(short)
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigHash({self})")
    }
}

impl Serialize for ConfigHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a text is not a [`ConfigHash`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseConfigHashError;

impl fmt::Display for ParseConfigHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a config hash is {} hex digits", ConfigHash::LEN)
    }
}

impl std::error::Error for ParseConfigHashError {}

/// From its hex form (either case), as the status, the log line and the
/// metric show it.
impl FromStr for ConfigHash {
    type Err = ParseConfigHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.as_bytes();
        if text.len() != Self::LEN {
            return Err(ParseConfigHashError);
        }
        let mut bytes = [0; Self::BYTES];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |b: u8| (b as char).to_digit(16).ok_or(ParseConfigHashError);
            *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?)
                .map_err(|_| ParseConfigHashError)?;
        }
        Ok(Self(bytes))
    }
}

/// Feeds what is written to the hasher, in blocks: the canonical form
/// comes in pieces of a few bytes (a quote, a key, a comma), and a hasher
/// call per piece cost more than the hashing.
struct HashWriter {
    hasher: Sha256,
    buffer: Vec<u8>,
}

impl HashWriter {
    /// The block handed to the hasher (bytes).
    const BUFFER: usize = 8 * 1024;

    fn finish(mut self) -> impl AsRef<[u8]> {
        self.hasher.update(&self.buffer);
        self.hasher.finalize()
    }
}

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > Self::BUFFER {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
        if buf.len() >= Self::BUFFER {
            self.hasher.update(buf);
        } else {
            self.buffer.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `value`'s canonical JSON to `out`. The keys are sorted here, not
/// by the map: an application whose tree turns on serde_json's
/// `preserve_order` keeps them in document order.
fn write_canonical(value: &Value, out: &mut impl io::Write) -> io::Result<()> {
    match value {
        Value::Null => out.write_all(b"null"),
        Value::Bool(b) => out.write_all(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            // Integers as integers; any other number through f64, so that
            // serde_json's `arbitrary_precision` (which keeps the text as
            // written) does not change the hash.
            if let Some(u) = n.as_u64() {
                write!(out, "{u}")
            } else if let Some(i) = n.as_i64() {
                write!(out, "{i}")
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::to_writer(&mut *out, &f).map_err(io::Error::other)
            }
        }
        Value::String(s) => serde_json::to_writer(&mut *out, s).map_err(io::Error::other),
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(item, out)?;
            }
            out.write_all(b"]")
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.write_all(b"{")?;
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, key).map_err(io::Error::other)?;
                out.write_all(b":")?;
                write_canonical(item, out)?;
            }
            out.write_all(b"}")
        }
    }
}

#[cfg(test)]
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hash(text: &str) -> ConfigHash {
        ConfigHash::of_json(text.as_bytes()).unwrap()
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_it() {
        let a = hash(r#"{"b":1,"a":{"y":[1,2,{"q":true,"p":null}],"x":"s"}}"#);
        let b = hash("{ \"a\" : { \"x\" : \"s\",\n \"y\" : [ 1 , 2 , { \"p\" : null , \"q\" : true } ] } ,\t\"b\" : 1 }");
        assert_eq!(a, b);
    }

    #[test]
    fn values_positions_and_types_do() {
        let base = hash(r#"{"a":[1,2],"b":"1"}"#);
        for other in [
            r#"{"a":[2,1],"b":"1"}"#,
            r#"{"a":[1,2],"b":1}"#,
            r#"{"a":[1,2,null],"b":"1"}"#,
            r#"{"a":[1,2],"b":"1","c":null}"#,
            r#"{"a":[1,2]}"#,
            r#"{"A":[1,2],"b":"1"}"#,
        ] {
            assert_ne!(hash(other), base, "{other}");
        }
    }

    #[test]
    fn the_canonical_form_is_compact_sorted_json() {
        let value =
            json!({"é": 1, "b": [1.5, -2, 1e300, "tab\there"], "a": {"z": null, "_": false}});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"_":false,"z":null},"b":[1.5,-2,1e+300,"tab\there"],"é":1}"#
        );
        // `sha256sum` of that text, cut to 12 digits.
        let text = canonical(&value);
        let full = Sha256::digest(text.as_bytes());
        let hex: String = full[..6].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ConfigHash::of_value(&value).to_string(), hex);
    }

    #[test]
    fn a_known_config_has_a_known_hash() {
        // printf '%s' '{"a":1}' | sha256sum → 015abd7f5cc5…
        assert_eq!(hash(r#"{ "a": 1 }"#).to_string(), "015abd7f5cc5");
    }

    #[test]
    fn jq_writes_the_same_form_for_integers_and_strings() {
        // `jq -cjS . | sha256sum | cut -c1-12` (jq 1.6) of this document
        // gives 26c0c20907fe: the README's way to hash a candidate config.
        let text = r#"{"z":[1,-2,{"b":"é\u0001\n\"x\\\\/<>","a":null}],"a":true,"ключ":"значение","n":[[],{}],"i":-9007199254740991}"#;
        assert_eq!(hash(text).to_string(), "26c0c20907fe");
    }

    #[test]
    fn it_round_trips_through_its_hex_form() {
        let h = hash("[]");
        assert_eq!(h.to_string().len(), ConfigHash::LEN);
        assert_eq!(h.to_string().parse::<ConfigHash>(), Ok(h));
        assert_eq!(h.to_string().to_uppercase().parse::<ConfigHash>(), Ok(h));
        assert!("xyz".parse::<ConfigHash>().is_err());
        assert!("0123456789ag".parse::<ConfigHash>().is_err());
        assert_eq!(serde_json::to_value(h).unwrap(), json!(h.to_string()));
    }
}
