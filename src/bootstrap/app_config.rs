//! The application's own keys of the local config, read into its own serde
//! type through the reader of the cluster's keys (Go:
//! `boot.App.Config().Read(&conf.Local{})`): the same file, the same
//! environment overrides (every variable, lower-cased, is the dotted key it
//! names; with `APP_CONFIG_ENV_PREFIX` only those with the prefix), the
//! same precedence (a variable wins over the file, an empty value is an
//! absent one), then the type's validation rules.
//!
//! The file's keys are matched to the type's fields without regard to case,
//! as isp-kit matches them (`maxConns`, `MAXCONNS` and `maxconns` are one
//! key); a map's keys come lower-cased, as isp-kit gives them. Every value
//! is text, parsed as the field's type asks: numbers, Go's booleans
//! (`true`, `1`, `t`…), strings; a list is `key.0`, `key.1`… (a YAML list
//! is flattened so); an enum is read from its variant's name (variants
//! without data). `#[serde(flatten)]` fields see a map, whose keys come
//! lower-cased: spell their fields in lower case. Errors name the key and
//! the variable that set it, and never quote a value: a local config holds
//! passwords.
//!
//! Validation is [`garde`](https://docs.rs/garde)'s: its rules map one to
//! one onto a Go team's `validate` tags (`required` on an `Option`,
//! `length(min = 1)` for a `required` string, `range(min = 1, max = …)`
//! for `min=`/`max=`, `dive` for nested structs), its messages never quote
//! the value, and it costs no dependency beyond itself and two small
//! crates (`validator` would bring `regex`, `url` and `idna` into every
//! build, and its errors carry the value).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use super::local_config::Flat;

/// Why the application's own config could not be read (Go: the error of
/// `config.Read`). Names the file, the key (as the type spells it) and
/// the variable that set the value, never the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppConfigError {
    /// A key is missing or its value does not fit the type.
    Key {
        /// The local config file.
        file: PathBuf,
        /// The dotted key, as the type spells it (`database.maxConns`).
        key: String,
        /// The environment variable the value came from, if it did.
        variable: Option<String>,
        /// What is wrong.
        problem: String,
    },
    /// The config was read but breaks the type's validation rules.
    Invalid {
        /// The local config file.
        file: PathBuf,
        /// Each rule broken, in the order the validator reported them.
        violations: Vec<Violation>,
    },
}

/// A validation rule a value breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The dotted key (`database.host`, `upstreams.0`), as the type spells
    /// it where it could be matched, else as the validator names it.
    pub key: String,
    /// The environment variable the value came from, if it did.
    pub variable: Option<String>,
    /// The validator's message (`length is lower than 1`).
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)?;
        match &self.variable {
            Some(variable) => write!(f, " (set by the variable {variable})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for AppConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key {
                file,
                key,
                variable,
                problem,
            } => super::error::write_key_problem(f, file, key, variable.as_deref(), problem),
            Self::Invalid { file, violations } => {
                write!(f, "local config {} is invalid: ", file.display())?;
                for (i, violation) in violations.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{violation}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for AppConfigError {}

/// The file's keys with the environment laid over them, kept from
/// [`Bootstrap::load`](super::Bootstrap::load) for
/// [`Bootstrap::app_config`](super::Bootstrap::app_config).
#[derive(Clone, Default)]
pub(crate) struct AppLayers {
    root: Node,
    file: PathBuf,
    prefix: String,
}

impl fmt::Debug for AppLayers {
    /// The keys only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppLayers")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// A key's value, or the keys under it.
#[derive(Clone)]
enum Node {
    Leaf {
        value: String,
        variable: Option<String>,
    },
    Map(BTreeMap<String, Node>),
}

impl Default for Node {
    fn default() -> Self {
        Self::Map(BTreeMap::new())
    }
}

impl AppLayers {
    pub(crate) fn new(flat: &Flat<'_>, file: &Path) -> Self {
        let mut root = BTreeMap::new();
        for (key, value, variable) in flat.entries() {
            if value.is_empty() || key.split('.').any(str::is_empty) {
                // Empty is absent, as in Go; `a..b` names no key.
                continue;
            }
            insert(&mut root, key, value, variable);
        }
        Self {
            root: Node::Map(root),
            file: file.to_owned(),
            prefix: flat.prefix().to_owned(),
        }
    }

    /// `T` from the keys, without validation.
    pub(crate) fn read<T: DeserializeOwned>(&self) -> Result<(T, KeyNames), AppConfigError> {
        let names = std::cell::RefCell::new(KeyNames::default());
        let de = NodeDe {
            node: Some(&self.root),
            path: "",
            names: &names,
        };
        match T::deserialize(de) {
            Ok(value) => Ok((value, names.into_inner())),
            Err(e) => Err(self.key_error(e)),
        }
    }

    /// `T` from the keys, checked by its `garde` rules.
    pub(crate) fn read_validated<T>(&self) -> Result<T, AppConfigError>
    where
        T: DeserializeOwned + garde::Validate,
        T::Context: Default,
    {
        let (value, names) = self.read::<T>()?;
        if let Err(report) = value.validate() {
            let violations = report
                .iter()
                .map(|(path, error)| {
                    let key = names.spelled(&path.to_string());
                    Violation {
                        variable: self.variable_of(&key),
                        key,
                        problem: error.message().to_owned(),
                    }
                })
                .collect();
            return Err(AppConfigError::Invalid {
                file: self.file.clone(),
                violations,
            });
        }
        Ok(value)
    }

    fn key_error(&self, e: DeError) -> AppConfigError {
        let key = e.key.unwrap_or_else(|| ".".to_owned());
        let problem = if e.missing {
            format!(
                "is required: set it in the file or with the variable {}{}",
                self.prefix,
                key.to_uppercase()
            )
        } else {
            e.problem
        };
        AppConfigError::Key {
            file: self.file.clone(),
            variable: e.variable.or_else(|| self.variable_of(&key)),
            key,
            problem,
        }
    }

    /// The variable that set `key` (dotted, any case), if one did.
    fn variable_of(&self, key: &str) -> Option<String> {
        let mut node = &self.root;
        for part in key.to_lowercase().split('.') {
            match node {
                Node::Map(children) => node = children.get(part)?,
                Node::Leaf { .. } => return None,
            }
        }
        match node {
            Node::Leaf { variable, .. } => variable.clone(),
            Node::Map(_) => None,
        }
    }
}

/// Puts `value` at the dotted `key`. A key with keys under it stays a
/// mapping: a value set for the mapping itself is dropped.
fn insert(map: &mut BTreeMap<String, Node>, key: &str, value: &str, variable: Option<&str>) {
    let (head, rest) = match key.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (key, None),
    };
    match rest {
        None => {
            if !matches!(map.get(head), Some(Node::Map(m)) if !m.is_empty()) {
                let leaf = Node::Leaf {
                    value: value.to_owned(),
                    variable: variable.map(str::to_owned),
                };
                map.insert(head.to_owned(), leaf);
            }
        }
        Some(rest) => {
            let child = map.entry(head.to_owned()).or_default();
            if let Node::Leaf { .. } = child {
                *child = Node::default();
            }
            if let Node::Map(children) = child {
                insert(children, rest, value, variable);
            }
        }
    }
}

/// Every key the type knows, as the validator names it (its Rust path,
/// squashed) and as serde spells it.
#[derive(Debug, Default)]
pub(crate) struct KeyNames(BTreeMap<String, String>);

impl KeyNames {
    fn add(&mut self, spelled: &str) {
        self.0.insert(squash(spelled), spelled.to_owned());
    }

    /// `path` (`database.max_conns`, `upstreams[0]`) as serde spells it
    /// (`database.maxConns`, `upstreams.0`), else `path` itself, dotted.
    fn spelled(&self, path: &str) -> String {
        let dotted = path.replace('[', ".").replace(']', "");
        self.0.get(&squash(&dotted)).cloned().unwrap_or(dotted)
    }
}

/// Lower-cased, without `_` or `-`: `max_conns`, `maxConns` and `MAXCONNS`
/// squash alike.
fn squash(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A deserialization error, with the key it concerns once known.
#[derive(Debug)]
pub(crate) struct DeError {
    key: Option<String>,
    variable: Option<String>,
    problem: String,
    missing: bool,
}

impl DeError {
    fn at(mut self, key: &str, variable: Option<&String>) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_owned());
            if self.variable.is_none() {
                self.variable = variable.cloned();
            }
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        // Text from a `Deserialize` impl may quote a value: masked as any
        // free text is.
        Self {
            key: None,
            variable: None,
            problem: crate::secrets::hide_secrets_in_text(&msg.to_string()),
            missing: false,
        }
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "is {}, expected {expected}",
            Unquoted(unexpected)
        ))
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "has an invalid value ({}), expected {expected}",
            Unquoted(unexpected)
        ))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format_args!("is not one of {}", OneOf(expected)))
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            key: Some(field.to_owned()),
            variable: None,
            problem: String::new(),
            missing: true,
        }
    }
}

/// What a value was, without the value: "a string", "a number".
struct Unquoted<'a>(de::Unexpected<'a>);

impl fmt::Display for Unquoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use de::Unexpected::*;
        f.write_str(match self.0 {
            Bool(_) => "a boolean",
            Unsigned(_) | Signed(_) | Float(_) => "a number",
            Char(_) | Str(_) => "a string",
            Bytes(_) => "bytes",
            Unit => "empty",
            Option => "an optional value",
            NewtypeStruct => "a newtype struct",
            Seq => "a list",
            Map => "a mapping of keys",
            Enum => "an enum",
            UnitVariant | NewtypeVariant | TupleVariant | StructVariant => "an enum variant",
            Other(other) => other,
        })
    }
}

/// `` `a`, `b` or `c` ``.
struct OneOf(&'static [&'static str]);

impl fmt::Display for OneOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            match i {
                0 => {}
                i if i + 1 == self.0.len() => f.write_str(" or ")?,
                _ => f.write_str(", ")?,
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

/// A node (or the absence of one) at `path`.
#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: Option<&'a Node>,
    path: &'a str,
    names: &'a std::cell::RefCell<KeyNames>,
}

// `path` is borrowed: children build theirs in `MapAccess`.
impl<'a> NodeDe<'a> {
    fn leaf(&self) -> Result<(&'a str, Option<&'a String>), DeError> {
        match self.node {
            Some(Node::Leaf { value, variable }) => Ok((value.trim(), variable.as_ref())),
            Some(Node::Map(_)) => Err(self.error("is a mapping of keys, a value was expected")),
            None => Err(self.error("is missing")),
        }
    }

    fn variable(&self) -> Option<&'a String> {
        match self.node {
            Some(Node::Leaf { variable, .. }) => variable.as_ref(),
            _ => None,
        }
    }

    fn error(&self, problem: &str) -> DeError {
        DeError {
            key: Some(display_key(self.path)),
            variable: self.variable().cloned(),
            problem: problem.to_owned(),
            missing: false,
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let (text, _) = self.leaf()?;
        text.parse()
            .map_err(|_| self.error(&format!("is not {what}")))
    }

    fn children(&self) -> Result<&'a BTreeMap<String, Node>, DeError> {
        match self.node {
            Some(Node::Map(children)) => Ok(children),
            Some(Node::Leaf { .. }) => {
                Err(self.error("is a value, a mapping of keys was expected"))
            }
            None => Err(self.error("is missing")),
        }
    }
}

fn display_key(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

macro_rules! parse_number {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let value: $ty = self.parse($what)?;
            visitor.$visit::<DeError>(value).map_err(|e: DeError| e.at(&display_key(self.path), self.variable()))
        }
    )*};
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Some(Node::Leaf { value, .. }) => visitor
                .visit_str(value)
                .map_err(|e: DeError| e.at(&display_key(self.path), self.variable())),
            Some(Node::Map(_)) => self.deserialize_map(visitor),
            None => visitor.visit_none(),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (text, _) = self.leaf()?;
        // Go's strconv.ParseBool.
        let value = match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(self.error("is not true or false")),
        };
        visitor.visit_bool(value)
    }

    parse_number! {
        deserialize_i8 visit_i8 i8, "an integer (i8)";
        deserialize_i16 visit_i16 i16, "an integer (i16)";
        deserialize_i32 visit_i32 i32, "an integer (i32)";
        deserialize_i64 visit_i64 i64, "an integer (i64)";
        deserialize_u8 visit_u8 u8, "a whole number (u8)";
        deserialize_u16 visit_u16 u16, "a whole number (u16)";
        deserialize_u32 visit_u32 u32, "a whole number (u32)";
        deserialize_u64 visit_u64 u64, "a whole number (u64)";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
        deserialize_char visit_char char, "a single character";
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (text, variable) = self.leaf()?;
        visitor
            .visit_str(text)
            .map_err(|e: DeError| e.at(&display_key(self.path), variable))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (text, _) = self.leaf()?;
        visitor.visit_bytes(text.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            None => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let children = match self.node {
            None => return visitor.visit_seq(Items::empty(self)),
            Some(Node::Leaf { .. }) => {
                return Err(self.error(
                    "is a single value, a list was expected (its items are keys .0, .1, …)",
                ))
            }
            Some(Node::Map(children)) => children,
        };
        let mut items = Vec::with_capacity(children.len());
        for (key, node) in children {
            match key.parse::<usize>() {
                Ok(index) => items.push((index, key.as_str(), node)),
                Err(_) => {
                    let problem = format!("has the key {key:?}: list items are keys .0, .1, …");
                    return Err(self.error(&problem));
                }
            }
        }
        items.sort_by_key(|(index, _, _)| *index);
        visitor.visit_seq(Items {
            items: items.into_iter(),
            parent: self,
            current: String::new(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let children = match self.node {
            None => {
                static EMPTY: BTreeMap<String, Node> = BTreeMap::new();
                &EMPTY
            }
            Some(_) => self.children()?,
        };
        let entries = children
            .iter()
            .map(|(key, node)| (key.clone(), node))
            .collect::<Vec<_>>();
        visitor.visit_map(Entries {
            entries: entries.into_iter(),
            parent: self,
            pending: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        {
            let mut names = self.names.borrow_mut();
            for field in fields {
                names.add(&join(self.path, field));
            }
        }
        let children = match self.node {
            None => {
                static EMPTY: BTreeMap<String, Node> = BTreeMap::new();
                &EMPTY
            }
            Some(_) => self.children()?,
        };
        // Each key under its field's own spelling, found without regard
        // to case; a key no field names passes as it is (ignored unless
        // the type denies unknown fields).
        let entries = children
            .iter()
            .map(|(key, node)| {
                let field = fields
                    .iter()
                    .find(|f| f.eq_ignore_ascii_case(key))
                    .map_or_else(|| key.clone(), |f| (*f).to_owned());
                (field, node)
            })
            .collect::<Vec<_>>();
        visitor
            .visit_map(Entries {
                entries: entries.into_iter(),
                parent: self,
                pending: None,
            })
            .map_err(|e| {
                if e.missing {
                    // serde names the field alone: the key is under this one.
                    let field = e.key.clone().unwrap_or_default();
                    DeError {
                        key: Some(join(self.path, &field)),
                        ..e
                    }
                } else {
                    e.at(&display_key(self.path), None)
                }
            })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.node {
            Some(Node::Leaf { value, .. }) => {
                let text = value.trim();
                let variant = variants
                    .iter()
                    .find(|v| v.eq_ignore_ascii_case(text))
                    .ok_or_else(|| self.error(&format!("is not one of {}", OneOf(variants))))?;
                visitor.visit_enum((*variant).into_deserializer())
            }
            _ => Err(self.error(&format!(
                "is not one of {} (only variants without data can be read from a config file)",
                OneOf(variants)
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// The entries of a mapping, for a struct or a map.
struct Entries<'a, I> {
    entries: I,
    parent: NodeDe<'a>,
    pending: Option<(String, &'a Node)>,
}

impl<'de, 'a, I> de::MapAccess<'de> for Entries<'a, I>
where
    I: Iterator<Item = (String, &'a Node)>,
{
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        let value = seed.deserialize(key.as_str().into_deserializer())?;
        self.pending = Some((key, node));
        Ok(Some(value))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.pending.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        let path = join(self.parent.path, &key);
        let child = NodeDe {
            node: Some(node),
            path: &path,
            names: self.parent.names,
        };
        seed.deserialize(child).map_err(|e| {
            let variable = child.variable().cloned();
            e.at(&path, variable.as_ref())
        })
    }
}

/// The items of a list (`key.0`, `key.1`…), in index order.
struct Items<'a, I> {
    items: I,
    parent: NodeDe<'a>,
    current: String,
}

impl<'a> Items<'a, std::vec::IntoIter<(usize, &'a str, &'a Node)>> {
    fn empty(parent: NodeDe<'a>) -> Self {
        Self {
            items: Vec::new().into_iter(),
            parent,
            current: String::new(),
        }
    }
}

impl<'de, 'a, I> de::SeqAccess<'de> for Items<'a, I>
where
    I: Iterator<Item = (usize, &'a str, &'a Node)>,
{
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((_, key, node)) = self.items.next() else {
            return Ok(None);
        };
        self.current = join(self.parent.path, key);
        let child = NodeDe {
            node: Some(node),
            path: &self.current,
            names: self.parent.names,
        };
        let variable = child.variable().cloned();
        seed.deserialize(child)
            .map(Some)
            .map_err(|e| e.at(&self.current, variable.as_ref()))
    }
}
