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
}
