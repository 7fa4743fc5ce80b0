//! The local config file, flattened as isp-kit flattens it: every leaf of
//! the YAML tree under its path of keys joined with dots, lower-cased, its
//! value as text (isp-kit keeps `fmt.Sprintf("%v", v)` of each leaf and
//! decodes the typed fields from those strings later).
//!
//! The parser is serde-saphyr, set to YAML 1.2's booleans (`true`/`false`
//! only, as Go's yaml.v3 resolves an untyped value; `yes` stays text) and to
//! no source snippets in its errors: a snippet would quote the lines around
//! the fault, and a local config may hold secrets on them.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One leaf: the lower-cased dotted key and its text.
pub(crate) type Leaf = (String, String);

/// A YAML node, scalars already as text.
enum Node {
    Null,
    Scalar(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Node, D::Error> {
        Node::deserialize(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        // Keys as text: a key `on` or `1` stays the key "on" or "1".
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Map(entries))
    }
}

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.with_snippet = false;
    // `.inf` is text to a config, not a reason to refuse the file.
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options
}

/// Why the file is not a config: a YAML syntax error with its line and
/// column, or a top level that is not a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError(pub(crate) String);

/// The leaves of `text`, in file order. An empty file (or one of comments)
/// has none. A `null` leaf is absent (isp-kit would keep the text
/// `<nil>`); a list's items are keyed by their index.
pub(crate) fn flatten(text: &str) -> Result<Vec<Leaf>, YamlError> {
    let root: Node = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| YamlError(e.to_string()))?;
    let mut leaves = Vec::new();
    match root {
        Node::Null => {}
        Node::Map(entries) => flatten_map(String::new(), entries, &mut leaves),
        Node::Scalar(_) | Node::List(_) => {
            return Err(YamlError(
                "the top level is not a mapping of keys".to_owned(),
            ))
        }
    }
    Ok(leaves)
}

fn flatten_map(prefix: String, entries: Vec<(String, Node)>, leaves: &mut Vec<Leaf>) {
    for (key, node) in entries {
        let path = join(&prefix, &key.to_lowercase());
        flatten_node(path, node, leaves);
    }
}

fn flatten_node(path: String, node: Node, leaves: &mut Vec<Leaf>) {
    match node {
        Node::Null => {}
        Node::Scalar(text) => leaves.push((path, text)),
        Node::Map(entries) => flatten_map(path, entries, leaves),
        Node::List(items) => {
            for (i, item) in items.into_iter().enumerate() {
                flatten_node(join(&path, &i.to_string()), item, leaves);
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(text: &str) -> Vec<(&'static str, &'static str)> {
        let owned = flatten(text).unwrap_or_else(|e| panic!("{text}: {}", e.0));
        owned
            .into_iter()
            .map(|(k, v)| (&*k.leak(), &*v.leak()))
            .collect()
    }

    #[test]
    fn nested_keys_are_joined_with_dots_and_lower_cased() {
        let text = "moduleName: orders\nconfigServiceAddress:\n  ip: 10.0.0.1;10.0.0.2\n  port: \"9001;9001\"\ngrpcOuterAddress: {ip: '', Port: 9002}\n";
        assert_eq!(
            leaves(text),
            [
                ("modulename", "orders"),
                ("configserviceaddress.ip", "10.0.0.1;10.0.0.2"),
                ("configserviceaddress.port", "9001;9001"),
                ("grpcouteraddress.ip", ""),
                ("grpcouteraddress.port", "9002"),
            ]
        );
    }

    #[test]
    fn scalars_become_text_as_go_prints_them() {
        let text = "a: true\nb: yes\nc: 1.50\nd: 0x10\ne: '0009'\nf: ~\ng:\nh: [x, 2]\non: 1\nn: .inf\nk: 5s\n";
        assert_eq!(
            leaves(text),
            [
                ("a", "true"),
                ("b", "yes"),
                ("c", "1.5"),
                ("d", "16"),
                ("e", "0009"),
                ("h.0", "x"),
                ("h.1", "2"),
                ("on", "1"),
                ("n", ".inf"),
                ("k", "5s"),
            ]
        );
    }

    #[test]
    fn empty_files_have_no_leaves() {
        assert!(leaves("").is_empty());
        assert!(leaves("# only a comment\n").is_empty());
        assert!(leaves("{}").is_empty());
    }

    #[test]
    fn syntax_errors_name_the_line_and_column_and_quote_no_line() {
        let text = "moduleName: orders\nsecret: hunter2\nconfigServiceAddress: [1, 2\nport: 3\n";
        let YamlError(message) = flatten(text).unwrap_err();
        assert!(message.contains("line 4"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains("port: 3"), "{message}");
        let YamlError(message) = flatten("a: 1\na: 2\n").unwrap_err();
        assert!(message.contains("duplicate"), "{message}");
        let YamlError(message) = flatten("- a\n- b\n").unwrap_err();
        assert_eq!(message, "the top level is not a mapping of keys");
    }

    #[test]
    fn alias_bombs_are_refused_not_expanded() {
        let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g"])
        {
            let refs = vec![format!("*{prev}"); 10].join(",");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        assert!(flatten(&text).is_err());
    }
}
