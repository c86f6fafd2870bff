//! Pack configuration: `config.schema.yaml` in the pack declares the settings, and
//! `<configs dir>/<pack>.yaml` gives their values (which may be Jinja templates over `st2kv`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues};
use crate::model::fields::describe;
use crate::schema::{self, Schema, is_template};

/// A pack's config schema: `{setting: definition}` in StackStorm's parameter dialect.
#[derive(Debug, Clone)]
pub struct ConfigSchema {
    /// The definitions as written.
    pub attributes: Map<String, Value>,
    /// Validator for config values (unknown settings are tolerated, as in StackStorm).
    pub schema: Arc<Schema>,
}

/// A pack's config values.
#[derive(Debug, Clone, PartialEq)]
pub struct PackConfig {
    /// The pack ref.
    pub pack: String,
    /// The values as written (templates unrendered, secrets still referencing the datastore).
    pub values: Map<String, Value>,
}

impl ConfigSchema {
    /// Read `config.schema.yaml`.
    pub(crate) fn read(value: &Value, issues: &mut Issues) -> Option<Self> {
        let root = FieldPath::root();
        let attributes = match value {
            Value::Object(map) if !map.is_empty() => map.clone(),
            Value::Null | Value::Object(_) => {
                issues.error(&root, "config schema is empty");
                return None;
            }
            other => {
                issues.error(
                    &root,
                    format!(
                        "config schema must be a mapping of settings, not {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let before = issues.error_count();
        schema::check_parameters(&attributes, &root, issues);
        if issues.error_count() > before {
            return None;
        }
        schema::lint_parameters(&attributes, attributes.keys(), &root, issues);
        let schema = Schema::for_parameters(attributes.clone(), true);
        if let Err(e) = schema.check() {
            issues.error(&root, format!("config schema cannot be compiled: {e}"));
            return None;
        }
        Some(ConfigSchema {
            attributes,
            schema: Arc::new(schema),
        })
    }
}

impl PackConfig {
    /// Read config values for `pack` and validate them against its schema, as StackStorm does
    /// when it registers configs.
    pub(crate) fn read(
        value: &Value,
        pack: &str,
        schema: Option<&ConfigSchema>,
        issues: &mut Issues,
    ) -> Option<Self> {
        let root = FieldPath::root();
        let values = match value {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            other => {
                issues.error(
                    &root,
                    format!(
                        "config must be a mapping of settings, not {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        if let Some(schema) = schema {
            if let Err(violations) = schema.schema.validate(&Value::Object(values.clone())) {
                for v in violations {
                    let path = if values.contains_key(&v.parameter) {
                        root.key(&v.parameter)
                    } else {
                        root.clone()
                    };
                    issues.error(
                        &path,
                        format!("invalid config for pack `{pack}`: {}", v.message),
                    );
                }
                return None;
            }
            for (key, v) in &values {
                let secret = schema
                    .attributes
                    .get(key)
                    .and_then(|d| d.get("secret"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if secret
                    && v.as_str()
                        .is_some_and(|s| is_template(s) && s.contains("decrypt_kv"))
                {
                    issues.error(
                        &root.key(key),
                        format!(
                            "`{key}` is a secret setting, which is decrypted automatically; do not use `decrypt_kv` in it"
                        ),
                    );
                }
            }
        }
        if issues.has_errors() {
            return None;
        }
        Some(PackConfig {
            pack: pack.to_owned(),
            values,
        })
    }
}

impl ConfigSchema {
    /// `values` with this schema's defaults filled in where a setting is missing, recursing
    /// into objects (`properties`, `patternProperties`, `additionalProperties`) and arrays
    /// (`items`, `additionalItems`), as StackStorm's config loader does before it hands a
    /// config to actions and sensors.
    pub fn with_defaults(&self, values: &Map<String, Value>) -> Map<String, Value> {
        let mut config = Value::Object(values.clone());
        let schemas: Vec<(Slot, Value)> = self
            .attributes
            .iter()
            .map(|(k, v)| (Slot::Key(k.clone()), v.clone()))
            .collect();
        assign_defaults(&schemas, &mut config);
        match config {
            Value::Object(map) => map,
            // Started as an object and only ever filled in.
            _ => values.clone(),
        }
    }
}

/// Where a schema applies inside a config value.
enum Slot {
    Key(String),
    Index(usize),
}

/// StackStorm's `_assign_default_values`.
fn assign_defaults(schemas: &[(Slot, Value)], config: &mut Value) {
    for (slot, schema) in schemas {
        let Some(schema) = schema.as_object() else {
            continue;
        };
        let present = match (slot, &*config) {
            (Slot::Key(k), Value::Object(map)) => map.contains_key(k),
            (Slot::Index(i), Value::Array(items)) => *i < items.len(),
            _ => continue,
        };
        if !present && let Some(default) = schema.get("default") {
            match (slot, &mut *config) {
                (Slot::Key(k), Value::Object(map)) => {
                    map.insert(k.clone(), default.clone());
                }
                (Slot::Index(_), Value::Array(items)) => items.push(default.clone()),
                _ => {}
            }
        }
        let has = |key: &str| schema.get(key).is_some_and(truthy);
        let nested = match schema.get("type").and_then(Value::as_str) {
            Some("object")
                if has("properties") || has("patternProperties") || has("additionalProperties") =>
            {
                Some(Value::Object(Map::new()))
            }
            Some("array") if has("items") || has("additionalItems") => {
                Some(Value::Array(Vec::new()))
            }
            _ => None,
        };
        let Some(empty) = nested else {
            continue;
        };
        let child = match (slot, &mut *config) {
            (Slot::Key(k), Value::Object(map)) => {
                let entry = map.entry(k.clone()).or_insert(Value::Null);
                if !truthy(entry) {
                    *entry = empty;
                }
                entry
            }
            (Slot::Index(i), Value::Array(items)) if *i < items.len() => {
                if !truthy(&items[*i]) {
                    items[*i] = empty;
                }
                &mut items[*i]
            }
            _ => continue,
        };
        let inner = match child {
            Value::Object(map) => object_schemas(schema, map.keys()),
            Value::Array(items) => array_schemas(schema, items.len()),
            _ => continue,
        };
        assign_defaults(&inner, child);
    }
}

/// Python truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// StackStorm's `_get_object_properties_schema`: a schema per key, from `properties`, else
/// the matching `patternProperties` (merged), else `additionalProperties`.
fn object_schemas<'a>(
    schema: &Map<String, Value>,
    keys: impl Iterator<Item = &'a String>,
) -> Vec<(Slot, Value)> {
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let patterns: Vec<(regex::Regex, &Value)> = schema
        .get("patternProperties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter_map(|(raw, s)| regex::Regex::new(raw).ok().map(|r| (r, s)))
                .collect()
        })
        .unwrap_or_default();
    let additional = schema
        .get("additionalProperties")
        .filter(|a| a.is_object() && truthy(a));
    let mut out: Vec<(Slot, Value)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        seen.insert(key.clone());
        let item = if let Some(s) = properties.get(key) {
            s.clone()
        } else {
            let mut composed = Map::new();
            for (pattern, s) in &patterns {
                if pattern.is_match(key)
                    && let Some(s) = s.as_object()
                {
                    composed.extend(s.clone());
                }
            }
            if !composed.is_empty() {
                Value::Object(composed)
            } else {
                additional
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()))
            }
        };
        out.push((Slot::Key(key.clone()), item));
    }
    for (key, s) in properties {
        if !seen.contains(key) {
            out.push((Slot::Key(key.clone()), s.clone()));
        }
    }
    out
}

/// StackStorm's `_get_array_items_schema`: one schema per position, from `items` (one schema
/// for all, or positional) extended with `additionalItems`.
fn array_schemas(schema: &Map<String, Value>, count: usize) -> Vec<(Slot, Value)> {
    let mut items: Vec<Value> = match schema.get("items") {
        Some(Value::Object(one)) => vec![Value::Object(one.clone()); count],
        Some(Value::Array(positional)) => positional.clone(),
        _ => Vec::new(),
    };
    if items.len() < count
        && let Some(extra) = schema
            .get("additionalItems")
            .filter(|a| a.is_object() && truthy(a))
    {
        items.resize(count, extra.clone());
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, s)| (Slot::Index(i), s))
        .collect()
}

/// StackStorm's dynamic config values: every string in `values` holding a Jinja expression
/// (`"{{ st2kv.system.token }}"`) is replaced by `render`'s result; when the schema marks the
/// setting `secret`, the rendered text (a secret key's stored ciphertext) goes through `decrypt`;
/// an empty result becomes `null`. Defaults are applied afterwards
/// ([`ConfigSchema::with_defaults`]), so a templated default is not rendered, as in StackStorm.
///
/// # Errors
/// StackStorm's message naming the setting (dotted path), the value and the pack when a
/// template fails to render or a secret fails to decrypt.
pub fn render_dynamic_values(
    pack: &str,
    values: &Map<String, Value>,
    schema: Option<&ConfigSchema>,
    render: &dyn Fn(&str) -> Result<String, String>,
    decrypt: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Map<String, Value>, String> {
    let attributes = schema.map(|s| Value::Object(s.attributes.clone()));
    let mut out = values.clone();
    for (key, value) in out.iter_mut() {
        let item = attributes.as_ref().and_then(|a| a.get(key));
        render_value(pack, key, value, item, render, decrypt)?;
    }
    Ok(out)
}

/// The schema of `key` inside an object schema (`properties`, else `additionalProperties`).
fn property_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

fn render_value(
    pack: &str,
    path: &str,
    value: &mut Value,
    item: Option<&Value>,
    render: &dyn Fn(&str) -> Result<String, String>,
    decrypt: &dyn Fn(&str) -> Result<String, String>,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = property_schema(item, k);
                render_value(pack, &format!("{path}.{k}"), v, child, render, decrypt)?;
            }
        }
        Value::Array(items) => {
            let items_schema = item.and_then(|s| s.get("items"));
            for (i, v) in items.iter_mut().enumerate() {
                let child = match items_schema {
                    Some(Value::Array(positional)) => positional.get(i),
                    Some(one) => Some(one),
                    None => None,
                };
                render_value(pack, &format!("{path}.{i}"), v, child, render, decrypt)?;
            }
        }
        Value::String(text) if is_template(text) => {
            let fail = |e: String| {
                format!(
                    "Failed to render dynamic configuration value for key \"{path}\" with value \
                     \"{text}\" for pack \"{pack}\" config: {e}"
                )
            };
            let mut rendered = render(text).map_err(fail)?;
            let secret = item
                .and_then(|s| s.get("secret"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if secret && !rendered.is_empty() {
                rendered = decrypt(&rendered).map_err(fail)?;
            }
            *value = if rendered.is_empty() {
                Value::Null
            } else {
                Value::String(rendered)
            };
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ConfigSchema {
        let mut issues = Issues::new();
        ConfigSchema::read(
            &json!({
                "api_key": {"type": "string", "required": true},
                "api_secret": {"type": "string", "secret": true},
                "region": {"type": "string", "default": "us-east-1"}
            }),
            &mut issues,
        )
        .unwrap()
    }

    #[test]
    fn values_are_validated_and_extra_keys_tolerated() {
        let mut issues = Issues::new();
        let cfg = PackConfig::read(
            &json!({"api_key": "k", "other": 1}),
            "p",
            Some(&schema()),
            &mut issues,
        );
        assert!(cfg.is_some(), "{:?}", issues.into_vec());

        let mut issues = Issues::new();
        assert!(
            PackConfig::read(&json!({"region": 5}), "p", Some(&schema()), &mut issues).is_none()
        );
        assert_eq!(issues.error_count(), 2);
    }

    #[test]
    fn secret_values_may_not_use_decrypt_kv() {
        let mut issues = Issues::new();
        let cfg = PackConfig::read(
            &json!({"api_key": "k", "api_secret": "{{ st2kv.system.s | decrypt_kv }}"}),
            "p",
            Some(&schema()),
            &mut issues,
        );
        assert!(cfg.is_none());
    }

    #[test]
    fn empty_schema_is_an_error() {
        let mut issues = Issues::new();
        assert!(ConfigSchema::read(&Value::Null, &mut issues).is_none());
        assert!(ConfigSchema::read(&json!({}), &mut issues).is_none());
    }

    #[test]
    fn defaults_fill_missing_settings_recursively() {
        let mut issues = Issues::new();
        let schema = ConfigSchema::read(
            &json!({
                "region": {"type": "string", "default": "us-east-1"},
                "given": {"type": "string", "default": "no"},
                "auth": {"type": "object", "properties": {
                    "port": {"type": "integer", "default": 443},
                    "user": {"type": "string"}
                }},
                "hosts": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"tls": {"type": "boolean", "default": true}}
                }},
                "list": {"type": "array", "items": {"type": "object", "properties": {
                    "weight": {"type": "integer", "default": 1}
                }}}
            }),
            &mut issues,
        )
        .expect("schema");
        let values = json!({
            "given": "yes",
            "hosts": {"a": {}, "b": {"tls": false}},
            "list": [{"weight": 5}, {}]
        });
        let config = schema.with_defaults(values.as_object().expect("object"));
        assert_eq!(
            Value::Object(config),
            json!({
                "given": "yes",
                "hosts": {"a": {"tls": true}, "b": {"tls": false}},
                "list": [{"weight": 5}, {"weight": 1}],
                "region": "us-east-1",
                "auth": {"port": 443}
            })
        );
    }
    #[test]
    fn dynamic_values_render_decrypt_and_name_the_setting() {
        let values = json!({
            "api_key": "{{ st2kv.system.key }}",
            "api_secret": "{{ st2kv.system.secret }}",
            "plain": "no template",
            "nested": {"list": ["{{ st2kv.system.key }}", 3]},
            "empty": "{{ st2kv.system.missing }}"
        });
        let render = |t: &str| -> Result<String, String> {
            Ok(match t {
                "{{ st2kv.system.key }}" => "k-1".to_owned(),
                "{{ st2kv.system.secret }}" => "CIPHER".to_owned(),
                _ => String::new(),
            })
        };
        let decrypt = |c: &str| -> Result<String, String> {
            if c == "CIPHER" {
                Ok("plain-secret".to_owned())
            } else {
                Err("bad ciphertext".to_owned())
            }
        };
        let out = render_dynamic_values(
            "p",
            values.as_object().unwrap(),
            Some(&schema()),
            &render,
            &decrypt,
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "api_key": "k-1",
                "api_secret": "plain-secret",
                "plain": "no template",
                "nested": {"list": ["k-1", 3]},
                "empty": null
            })
        );
        let failing = |_: &str| -> Result<String, String> { Err("undefined".to_owned()) };
        let e = render_dynamic_values(
            "p",
            json!({"nested": {"x": "{{ nope }}"}}).as_object().unwrap(),
            None,
            &failing,
            &decrypt,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Failed to render dynamic configuration value for key \"nested.x\" with value \
             \"{{ nope }}\" for pack \"p\" config: undefined"
        );
    }
}
