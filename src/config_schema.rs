//! The JSON schema of a module's remote config, shaped as isp-kit's `rc`
//! generator shapes it (Go: `rc.GenerateConfigSchema`), for the
//! config-service and its admin UI, which renders a form from it:
//!
//! * every struct inline: no `$defs`/`$ref` (Go's reflector runs with
//!   `ExpandedStruct` and `DoNotReference`); a recursive type still needs a
//!   reference, as it would in Go;
//! * no `$schema` (Go clears `Version`); the root titled "Remote config"
//!   unless [`ConfigSchema::title`] says otherwise, without a description
//!   (the type's doc comment is for its Rust readers);
//! * titles and descriptions per field: Go takes them from `schema:"Title,
//!   Description"` tags, here from `#[schemars(title = "…", description =
//!   "…")]` or a doc comment (`/// # Title` then the description lines);
//! * required fields from the rules: what serde needs (a field that is not
//!   an `Option` and has no `#[serde(default)]`) and a `required` rule of
//!   `garde` or `validator` (on an `Option`); `length`/`range` rules give
//!   `minLength`/`minimum`… as Go's `min=`/`max=` do;
//! * no `default` values (Go emits one only from a `default:"…"` tag; an
//!   admin form would show serde's defaults as if an operator had set
//!   them), unless [`ConfigSchema::keep_defaults`];
//! * an `Option<T>` is `T`'s schema (Go's `*T` is `T`'s): no `null` type;
//! * integer formats (`uint16`, `int64`…) left out: they are not JSON
//!   Schema formats, and Go emits none.
//!
//! Objects allow extra keys unless the type has
//! `#[serde(deny_unknown_fields)]`, as serde reads them (Go's schemas say
//! `additionalProperties: false` for every struct).

use schemars::transform::{transform_subschemas, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::types::RawJson;

/// The title isp-kit gives a module's config schema.
pub const CONFIG_SCHEMA_TITLE: &str = "Remote config";

/// The JSON schema of `T` as isp-kit's `rc.GenerateConfigSchema` shapes
/// it (see [`ConfigSchema`]), titled "Remote config", ready for
/// [`crate::ConfigData`].
///
/// ```
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Config {
///     /// # Limit
///     /// Requests per second.
///     limit: u32,
/// }
/// let schema = isp_cluster::config_schema::<Config>();
/// let value: serde_json::Value = schema.parse().unwrap();
/// assert_eq!(value["title"], "Remote config");
/// assert_eq!(value["properties"]["limit"]["type"], "integer");
/// assert_eq!(value["properties"]["limit"]["title"], "Limit");
/// assert_eq!(value["required"], serde_json::json!(["limit"]));
/// ```
pub fn config_schema<T: JsonSchema>() -> RawJson {
    ConfigSchema::new().of::<T>()
}

/// How [`config_schema`] shapes a schema, with a title of your own or
/// serde's defaults kept (Go: `rc.GenerateConfigSchema`, whose title is
/// fixed).
///
/// ```
/// # #[derive(serde::Deserialize, schemars::JsonSchema)]
/// # struct Config { limit: u32 }
/// use isp_cluster::ConfigSchema;
/// let schema = ConfigSchema::new().title("Orders").of::<Config>();
/// let value: serde_json::Value = schema.parse().unwrap();
/// assert_eq!(value["title"], "Orders");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigSchema {
    title: String,
    keep_defaults: bool,
}

impl Default for ConfigSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSchema {
    /// Titled "Remote config", no defaults.
    pub fn new() -> Self {
        Self {
            title: CONFIG_SCHEMA_TITLE.to_owned(),
            keep_defaults: false,
        }
    }

    /// The root's title (default "Remote config").
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Keeps the `default` values schemars takes from `#[serde(default)]`
    /// (left out by default, as Go emits none).
    pub fn keep_defaults(mut self) -> Self {
        self.keep_defaults = true;
        self
    }

    /// The schema of `T`.
    pub fn of<T: JsonSchema>(&self) -> RawJson {
        let mut settings = schemars::generate::SchemaSettings::draft2020_12();
        settings.inline_subschemas = true;
        settings.meta_schema = None;
        let mut schema = settings.into_generator().into_root_schema_for::<T>();
        GoShape {
            keep_defaults: self.keep_defaults,
        }
        .transform(&mut schema);
        schema.insert("title".to_owned(), self.title.clone().into());
        // The type's doc comment is for its Rust readers; Go's root has
        // the title alone.
        schema.remove("description");
        // A schema is plain JSON: serializing it cannot fail.
        RawJson::from_value(&schema).unwrap_or_default()
    }
}

/// The rewrite of each subschema (see the module docs).
struct GoShape {
    keep_defaults: bool,
}

impl Transform for GoShape {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut() {
            if !self.keep_defaults {
                object.remove("default");
            }
            unwrap_nullable(object);
            if object
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(is_integer_format)
            {
                object.remove("format");
            }
        }
        transform_subschemas(self, schema);
    }
}

/// `["T", "null"]` → `"T"`; `anyOf: [S, {"type": "null"}]` → `S` (with
/// this schema's own title and description); `null` out of an `enum`.
fn unwrap_nullable(object: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            object.insert("type".to_owned(), only);
        }
    }
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(variants)) = object.get(key) else {
            continue;
        };
        let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
        if variants.len() != 2 || !variants.iter().any(is_null) {
            continue;
        }
        let Some(Value::Array(variants)) = object.remove(key) else {
            continue;
        };
        if let Some(Value::Object(inner)) = variants.into_iter().find(|v| !is_null(v)) {
            for (k, v) in inner {
                // The field's own title and description win over its type's.
                object.entry(k).or_insert(v);
            }
        }
    }
}

/// schemars' integer formats (`int32`, `uint16`, `uint`…).
fn is_integer_format(format: &str) -> bool {
    let digits = format
        .strip_prefix("uint")
        .or_else(|| format.strip_prefix("int"));
    digits.is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_formats_are_recognised() {
        for format in ["int8", "int32", "int64", "uint", "uint16", "uint64", "int"] {
            assert!(is_integer_format(format), "{format}");
        }
        for format in ["double", "float", "email", "date-time", "intx", "uri"] {
            assert!(!is_integer_format(format), "{format}");
        }
    }
}
