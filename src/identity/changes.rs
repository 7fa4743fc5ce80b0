//! What changed between two configs: the JSON paths added, removed and
//! changed, never a value.
//!
//! Paths are written as [`TypedConfigError`](crate::TypedConfigError)
//! writes them: keys joined by `.`, array elements as `[index]`
//! (`db.hosts[2]`, `routes[0].timeout`), `.` for the whole document. A key
//! that is not a plain word (letters, digits, `_`, `-`) is quoted as a JSON
//! string in brackets (`limits["a.b"]`), so that a path reads one way only.
//!
//! Objects are compared key by key and arrays index by index. A key or an
//! element that only one side has is added or removed as a whole (its path
//! alone, not every leaf under it); a value that differs otherwise (another
//! scalar, or another type, such as an object that became a string) is
//! changed at its own path.

use std::fmt;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// At most this many paths are kept in a [`ConfigChanges`]; the rest are
/// counted in [`ConfigChanges::omitted`], so that a config of millions of
/// keys costs no more than this.
pub const MAX_CHANGE_PATHS: usize = 1000;
/// How much of one path is kept (bytes); a longer one ends with `…`.
pub const MAX_CHANGE_PATH_LEN: usize = 200;
/// How many paths the summary's `Display` (the INFO line of an applied
/// config) shows before it counts the rest.
pub const CHANGE_PATHS_SHOWN: usize = 8;

/// The paths that differ between a config and the one the receiver
/// accepted before it: see [`RemoteConfig::changes`](crate::RemoteConfig::changes)
/// and [`ConfigChanged::changes`](crate::ConfigChanged::changes). Paths
/// only, never values: a summary may be logged and shown as it is. Each
/// list is in the order the comparison met its paths: object keys in
/// serde_json's map order (sorted, unless the application turns on its
/// `preserve_order`), array elements by index. Go's client has no
/// counterpart.
///
/// Its `Display` is the bounded form of the INFO line: `changed db.port,
/// limit; added db.pool; removed legacy`, at most [`CHANGE_PATHS_SHOWN`] paths,
/// then `(and 5 more)`; `no change` when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConfigChanges {
    /// Paths only the new config has.
    pub added: Vec<String>,
    /// Paths only the previous config had.
    pub removed: Vec<String>,
    /// Paths both have with another value or another type.
    pub changed: Vec<String>,
    /// Paths past [`MAX_CHANGE_PATHS`] that differ but are not listed.
    pub omitted: usize,
}

impl ConfigChanges {
    /// What differs from `previous` to `new`.
    ///
    /// ```
    /// use isp_cluster::ConfigChanges;
    /// use serde_json::json;
    ///
    /// let changes = ConfigChanges::between(
    ///     &json!({"db": {"port": 5432, "user": "app"}, "limit": 10}),
    ///     &json!({"db": {"port": 6432}, "limit": 10, "hosts": ["a"]}),
    /// );
    /// assert_eq!(changes.changed, ["db.port"]);
    /// assert_eq!(changes.removed, ["db.user"]);
    /// assert_eq!(changes.added, ["hosts"]);
    /// assert_eq!(changes.to_string(), "changed db.port; added hosts; removed db.user");
    /// ```
    pub fn between(previous: &Value, new: &Value) -> Self {
        let mut walk = Walk {
            changes: Self::default(),
            path: String::new(),
        };
        walk.compare(previous, new);
        walk.changes
    }

    /// Nothing differs: the same config (and so the same hash).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many paths differ, the omitted ones included.
    pub fn len(&self) -> usize {
        self.added.len() + self.removed.len() + self.changed.len() + self.omitted
    }

    /// Every listed path with its kind (`"changed"`, `"added"`,
    /// `"removed"`), in the order `Display` shows them.
    pub fn paths(&self) -> impl Iterator<Item = (&'static str, &str)> {
        fn kind<'a>(
            kind: &'static str,
            list: &'a [String],
        ) -> impl Iterator<Item = (&'static str, &'a str)> {
            list.iter().map(move |p| (kind, p.as_str()))
        }
        kind("changed", &self.changed)
            .chain(kind("added", &self.added))
            .chain(kind("removed", &self.removed))
    }
}

impl fmt::Display for ConfigChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no change");
        }
        let mut kind_shown = "";
        for (shown, (kind, path)) in self.paths().take(CHANGE_PATHS_SHOWN).enumerate() {
            if kind != kind_shown {
                if shown > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{kind} ")?;
                kind_shown = kind;
            } else {
                f.write_str(", ")?;
            }
            f.write_str(path)?;
        }
        let more = self.len().saturating_sub(CHANGE_PATHS_SHOWN);
        if more > 0 {
            write!(f, " (and {more} more)")?;
        }
        Ok(())
    }
}

/// One comparison under way: the summary so far and the path of the
/// values being compared.
struct Walk {
    changes: ConfigChanges,
    path: String,
}

impl Walk {
    fn compare(&mut self, previous: &Value, new: &Value) {
        match (previous, new) {
            (Value::Object(old), Value::Object(new)) => {
                for (key, value) in new {
                    let len = self.push_key(key);
                    match old.get(key) {
                        Some(before) => self.compare(before, value),
                        None => self.record(Kind::Added),
                    }
                    self.path.truncate(len);
                }
                for key in old.keys().filter(|k| !new.contains_key(*k)) {
                    let len = self.push_key(key);
                    self.record(Kind::Removed);
                    self.path.truncate(len);
                }
            }
            (Value::Array(old), Value::Array(new)) => {
                for (index, value) in new.iter().enumerate() {
                    let len = self.push_index(index);
                    match old.get(index) {
                        Some(before) => self.compare(before, value),
                        None => self.record(Kind::Added),
                    }
                    self.path.truncate(len);
                }
                for index in new.len()..old.len() {
                    let len = self.push_index(index);
                    self.record(Kind::Removed);
                    self.path.truncate(len);
                }
            }
            (old, new) => {
                if old != new {
                    self.record(Kind::Changed);
                }
            }
        }
    }

    /// Appends `.key` (or `["key"]`); returns the length to truncate back to.
    fn push_key(&mut self, key: &str) -> usize {
        let len = self.path.len();
        if len > MAX_CHANGE_PATH_LEN {
            return len;
        }
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if plain {
            if len > 0 {
                self.path.push('.');
            }
            self.path.push_str(key);
        } else {
            self.path.push('[');
            // A JSON string: quotes, backslashes and control characters
            // escaped. Serializing a `str` cannot fail.
            self.path
                .push_str(&serde_json::to_string(key).unwrap_or_default());
            self.path.push(']');
        }
        len
    }

    fn push_index(&mut self, index: usize) -> usize {
        let len = self.path.len();
        if len <= MAX_CHANGE_PATH_LEN {
            let _ = write!(self.path, "[{index}]");
        }
        len
    }

    fn record(&mut self, kind: Kind) {
        let changes = &mut self.changes;
        if changes.added.len() + changes.removed.len() + changes.changed.len() >= MAX_CHANGE_PATHS {
            changes.omitted += 1;
            return;
        }
        let path = shown_path(&self.path);
        match kind {
            Kind::Added => changes.added.push(path),
            Kind::Removed => changes.removed.push(path),
            Kind::Changed => changes.changed.push(path),
        }
    }
}

enum Kind {
    Added,
    Removed,
    Changed,
}

/// `path` as shown: `.` for the whole document, at most [`MAX_CHANGE_PATH_LEN`]
/// bytes (cut at a character boundary, then `…`).
fn shown_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    if path.len() <= MAX_CHANGE_PATH_LEN {
        return path.to_owned();
    }
    let mut end = MAX_CHANGE_PATH_LEN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_changes_nothing() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"c":[1,{"d":2,"e":3}]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"c":[1,{"e":3,"d":2}]},"a":1}"#).unwrap();
        let changes = ConfigChanges::between(&a, &b);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(changes.to_string(), "no change");
    }

    #[test]
    fn nested_arrays_are_compared_by_index() {
        let old = json!({"matrix": [[1, 2], [3, 4]], "routes": [{"to": "a", "ms": 5}]});
        let new = json!({"matrix": [[1, 9], [3], [5]], "routes": [{"to": "a", "ms": 6}]});
        let changes = ConfigChanges::between(&old, &new);
        assert_eq!(changes.changed, ["matrix[0][1]", "routes[0].ms"]);
        assert_eq!(changes.added, ["matrix[2]"]);
        assert_eq!(changes.removed, ["matrix[1][1]"]);
    }

    #[test]
    fn a_removed_subtree_is_one_path() {
        let old = json!({"db": {"host": "h", "pool": {"max": 5}}, "limit": 1});
        let new = json!({"limit": 1});
        let changes = ConfigChanges::between(&old, &new);
        assert_eq!(changes.removed, ["db"]);
        assert!(changes.added.is_empty() && changes.changed.is_empty());
        let back = ConfigChanges::between(&new, &old);
        assert_eq!(back.added, ["db"]);
    }

    #[test]
    fn a_type_change_is_a_change_at_its_path() {
        let old = json!({"db": {"host": "h"}, "n": 1, "list": [1], "flag": null});
        let new = json!({"db": "postgres://h", "n": "1", "list": {"0": 1}, "flag": false});
        let changes = ConfigChanges::between(&old, &new);
        assert_eq!(changes.changed, ["db", "flag", "list", "n"]);
        assert!(changes.added.is_empty() && changes.removed.is_empty());
        // The whole document.
        let changes = ConfigChanges::between(&json!({}), &json!([]));
        assert_eq!(changes.changed, ["."]);
    }

    #[test]
    fn integer_and_float_forms_of_a_number_differ() {
        let changes = ConfigChanges::between(&json!({"n": 1}), &json!({"n": 1.0}));
        assert_eq!(changes.changed, ["n"]);
    }

    #[test]
    fn keys_that_are_not_words_are_quoted() {
        let old = json!({"a.b": 1, "with space": {"x\"y": 1}, "лимит": 1, "": 1});
        let new = json!({"a.b": 2, "with space": {"x\"y": 2}, "лимит": 2, "": 2});
        let changes = ConfigChanges::between(&old, &new);
        let mut changed = changes.changed.clone();
        changed.sort();
        assert_eq!(
            changed,
            [
                r#"[""]"#,
                r#"["a.b"]"#,
                r#"["with space"]["x\"y"]"#,
                "лимит"
            ]
        );
    }

    #[test]
    fn values_never_appear() {
        let old = json!({"password": "old-secret-1", "list": ["s3cr3t-a"], "n": 41});
        let new = json!({"password": "new-secret-2", "list": ["s3cr3t-b", "s3cr3t-c"], "n": 42});
        let changes = ConfigChanges::between(&old, &new);
        let shown = format!(
            "{changes} {changes:?} {}",
            serde_json::to_string(&changes).unwrap()
        );
        for value in ["secret", "s3cr3t", "41", "42"] {
            assert!(!shown.contains(value), "{value} in {shown}");
        }
        assert_eq!(
            changes.to_string(),
            "changed list[0], n, password; added list[1]"
        );
    }

    #[test]
    fn the_display_is_bounded_and_the_lists_too() {
        let old: Value = (0..2000)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let new: Value = (0..2000)
            .map(|i| (format!("k{i}"), json!(i + 1)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let changes = ConfigChanges::between(&old, &new);
        assert_eq!(changes.changed.len(), MAX_CHANGE_PATHS);
        assert_eq!(changes.omitted, 2000 - MAX_CHANGE_PATHS);
        assert_eq!(changes.len(), 2000);
        let shown = changes.to_string();
        assert!(shown.ends_with(" (and 1992 more)"), "{shown}");
        assert_eq!(
            shown.matches(", ").count(),
            CHANGE_PATHS_SHOWN - 1,
            "{shown}"
        );
    }

    #[test]
    fn a_long_path_is_cut() {
        let key = "k".repeat(150);
        let old = json!({&key: {&key: 1}});
        let new = json!({&key: {&key: 2}});
        let changes = ConfigChanges::between(&old, &new);
        let path = &changes.changed[0];
        assert!(path.ends_with('…'), "{path}");
        assert!(path.len() <= MAX_CHANGE_PATH_LEN + '…'.len_utf8());
    }
}
