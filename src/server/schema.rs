//! A pushed config checked against the schema its module registered, as the
//! real isp-config-service checks it (its admin API refuses a config that
//! violates the schema, error code 2003), so that a module's config
//! validation can be tested against the embedded server.
//!
//! The reasons name where the config fails (its JSON pointer) and which
//! keyword of the schema it fails (the schema's pointer), never the
//! offending value: configs hold secrets, and the reasons reach log lines
//! and errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytestring::ByteString;

/// How many violations a refusal lists.
const MAX_VIOLATIONS_SHOWN: usize = 10;

/// A module's schema, compiled once per schema text.
pub(crate) struct CompiledSchema {
    text: ByteString,
    /// `None`: the schema itself does not compile; configs go unchecked
    /// (the module's mistake shows in its own tests, not as a refusal of
    /// every push).
    validator: Option<Arc<jsonschema::Validator>>,
}

impl CompiledSchema {
    fn compile(text: &ByteString) -> Self {
        let validator = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| e.to_string())
            .and_then(|schema| jsonschema::validator_for(&schema).map_err(|e| e.to_string()));
        let validator = match validator {
            Ok(validator) => Some(Arc::new(validator)),
            Err(e) => {
                log::warn!("config server: a module schema does not compile ({e}); its configs go unchecked");
                None
            }
        };
        Self {
            text: text.clone(),
            validator,
        }
    }
}

/// Checks `config` (valid JSON text) against `schema`, compiling it into
/// `cache` when the cache holds another schema. `Err`: the violations.
pub(crate) fn check(
    cache: &mut Option<CompiledSchema>,
    schema: &ByteString,
    config: &str,
) -> Result<(), Vec<String>> {
    if cache.as_ref().is_none_or(|c| c.text != *schema) {
        *cache = Some(CompiledSchema::compile(schema));
    }
    let Some(validator) = cache.as_ref().and_then(|c| c.validator.clone()) else {
        return Ok(());
    };
    let Ok(instance) = serde_json::from_str::<serde_json::Value>(config) else {
        // Checked as JSON before it came here.
        return Ok(());
    };
    let mut violations: Vec<String> = validator
        .iter_errors(&instance)
        .take(MAX_VIOLATIONS_SHOWN + 1)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() {
                "the top level".to_owned()
            } else {
                at
            };
            format!("at {at}: fails the schema's {}", e.schema_path())
        })
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    if violations.len() > MAX_VIOLATIONS_SHOWN {
        violations.truncate(MAX_VIOLATIONS_SHOWN);
        violations.push("and more".to_owned());
    }
    Err(violations)
}

/// The violations of `config` (valid JSON text) against `schema` as the
/// real service details a refused config (`config/config/create_update_config`,
/// error code 2003): field → description, the field dotted from the top
/// (`db.port`; `(root)` for the document itself), at most
/// [`MAX_VIOLATIONS_SHOWN`] of them. Empty when the config is valid or the
/// schema does not compile. Never quotes a value.
pub(crate) fn violations_by_field(
    cache: &mut Option<CompiledSchema>,
    schema: &ByteString,
    config: &str,
) -> BTreeMap<String, String> {
    if cache.as_ref().is_none_or(|c| c.text != *schema) {
        *cache = Some(CompiledSchema::compile(schema));
    }
    let Some(validator) = cache.as_ref().and_then(|c| c.validator.clone()) else {
        return BTreeMap::new();
    };
    let Ok(instance) = serde_json::from_str::<serde_json::Value>(config) else {
        return BTreeMap::new();
    };
    validator
        .iter_errors(&instance)
        .take(MAX_VIOLATIONS_SHOWN)
        .map(|e| {
            let pointer = e.instance_path().to_string();
            let field = if pointer.is_empty() {
                "(root)".to_owned()
            } else {
                pointer
                    .trim_start_matches('/')
                    .split('/')
                    .map(|token| token.replace("~1", "/").replace("~0", "~"))
                    .collect::<Vec<_>>()
                    .join(".")
            };
            (field, format!("fails the schema's {}", e.schema_path()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_name_the_place_and_the_keyword_never_the_value() {
        let schema = ByteString::from(
            r#"{"type":"object","properties":{"port":{"type":"integer"}},"required":["port"]}"#,
        );
        let mut cache = None;
        assert_eq!(check(&mut cache, &schema, r#"{"port":5}"#), Ok(()));
        let violations = check(&mut cache, &schema, r#"{"port":"hunter2"}"#).unwrap_err();
        assert_eq!(
            violations,
            ["at /port: fails the schema's /properties/port/type"]
        );
        let violations = check(&mut cache, &schema, r#"[]"#).unwrap_err();
        assert!(
            violations[0].starts_with("at the top level: fails"),
            "{violations:?}"
        );
        let fields = violations_by_field(&mut cache, &schema, r#"{"port":"hunter2"}"#);
        assert_eq!(
            fields,
            BTreeMap::from([(
                "port".to_owned(),
                "fails the schema's /properties/port/type".to_owned()
            )])
        );
        let fields = violations_by_field(&mut cache, &schema, "{}");
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["(root)"]);
        assert!(violations_by_field(&mut cache, &schema, r#"{"port":1}"#).is_empty());
        // A schema that does not compile checks nothing.
        let broken = ByteString::from(r#"{"type":12}"#);
        assert_eq!(check(&mut cache, &broken, r#"{"port":"x"}"#), Ok(()));
    }
}
