//! Reading a YAML/JSON mapping field by field, recording a precise issue for every field that is
//! missing, has the wrong type, or is not known — instead of stopping at the first problem.

use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};

/// The JSON-schema name of a value's type, as StackStorm's messages use them.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short rendering of a value for messages (long values are cut).
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Reads the fields of one mapping. Every accessor marks its key as known; [`Fields::finish`]
/// then reports the keys nobody asked for.
pub(crate) struct Fields<'v> {
    map: &'v Map<String, Value>,
    path: FieldPath,
    known: Vec<&'static str>,
}

impl<'v> Fields<'v> {
    pub(crate) fn new(map: &'v Map<String, Value>, path: FieldPath) -> Self {
        Fields {
            map,
            path,
            known: Vec::with_capacity(16),
        }
    }

    /// Read `value` as a mapping, or record an error saying `what` must be a mapping.
    pub(crate) fn of(
        value: &'v Value,
        path: FieldPath,
        what: &str,
        issues: &mut Issues,
    ) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Fields::new(map, path)),
            other => {
                issues.error(
                    &path,
                    format!("{what} must be a mapping, not {}", describe(other)),
                );
                None
            }
        }
    }

    pub(crate) fn path(&self) -> &FieldPath {
        &self.path
    }

    pub(crate) fn child(&self, key: &str) -> FieldPath {
        self.path.key(key)
    }

    /// Mark `keys` as known without reading them (fields StackStorm accepts and ignores).
    pub(crate) fn accept(&mut self, keys: &[&'static str]) {
        self.known.extend_from_slice(keys);
    }

    /// The raw value of `key`, `None` when absent. JSON null is returned as `Some(Null)`.
    pub(crate) fn raw(&mut self, key: &'static str) -> Option<&'v Value> {
        self.known.push(key);
        self.map.get(key)
    }

    /// The value of `key` unless absent or null.
    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'v Value> {
        self.raw(key).filter(|v| !v.is_null())
    }

    fn typed<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        issues: &mut Issues,
        pick: impl Fn(&'v Value) -> Option<T>,
    ) -> Option<T> {
        let v = self.value(key)?;
        match pick(v) {
            Some(t) => Some(t),
            None => {
                issues.error(
                    &self.path.key(key),
                    format!("`{key}` must be {expected}, not {}", describe(v)),
                );
                None
            }
        }
    }

    fn missing(&self, key: &str, issues: &mut Issues) {
        if self.map.get(key).is_some_and(Value::is_null) {
            issues.error(&self.path.key(key), format!("`{key}` must not be empty"));
        } else {
            issues.error(&self.path, format!("required field `{key}` is missing"));
        }
    }

    /// An optional string (null counts as absent).
    pub(crate) fn str(&mut self, key: &'static str, issues: &mut Issues) -> Option<&'v str> {
        self.typed(key, "a string", issues, Value::as_str)
    }

    /// A required string: absent or null is an error.
    pub(crate) fn req_str(&mut self, key: &'static str, issues: &mut Issues) -> Option<&'v str> {
        let v = self.str(key, issues);
        if v.is_none() && self.map.get(key).is_none_or(Value::is_null) {
            self.missing(key, issues);
        }
        v
    }

    /// An optional boolean.
    pub(crate) fn bool(&mut self, key: &'static str, issues: &mut Issues) -> Option<bool> {
        self.typed(key, "a boolean", issues, Value::as_bool)
    }

    /// An optional number (integer or float).
    pub(crate) fn number(&mut self, key: &'static str, issues: &mut Issues) -> Option<f64> {
        self.typed(key, "a number", issues, Value::as_f64)
    }

    /// An optional mapping.
    pub(crate) fn object(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Option<&'v Map<String, Value>> {
        self.typed(key, "a mapping", issues, Value::as_object)
    }

    /// A required mapping.
    pub(crate) fn req_object(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Option<&'v Map<String, Value>> {
        let v = self.object(key, issues);
        if v.is_none() && self.map.get(key).is_none_or(Value::is_null) {
            self.missing(key, issues);
        }
        v
    }

    /// An optional list.
    pub(crate) fn array(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Option<&'v Vec<Value>> {
        self.typed(key, "a list", issues, Value::as_array)
    }

    /// An optional list of strings; each item that is not a string is reported.
    pub(crate) fn strings(&mut self, key: &'static str, issues: &mut Issues) -> Vec<String> {
        let Some(items) = self.array(key, issues) else {
            return Vec::new();
        };
        let path = self.path.key(key);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::String(s) => Some(s.clone()),
                other => {
                    issues.error(
                        &path.index(i),
                        format!("items of `{key}` must be strings, not {}", describe(other)),
                    );
                    None
                }
            })
            .collect()
    }

    /// Report every key no accessor asked for, with `severity`.
    pub(crate) fn finish(self, what: &str, severity: Severity, issues: &mut Issues) {
        for key in self.map.keys() {
            if !self.known.iter().any(|k| k == key) {
                let message = match severity {
                    Severity::Error => format!("unknown field `{key}` in {what}"),
                    Severity::Warning => {
                        format!("unknown field `{key}` in {what} is ignored")
                    }
                };
                issues.at_key(&self.path.key(key), severity, message);
            }
        }
    }
}

/// `a string ("x")`, `an integer (5)`, … for messages.
pub(crate) fn describe(v: &Value) -> String {
    let k = kind(v);
    let article = if matches!(k, "integer" | "array" | "object") {
        "an"
    } else {
        "a"
    };
    match v {
        Value::Null => "null".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
        other => format!("{article} {k} ({})", show(other)),
    }
}

/// Tags: a list of `{name, value}` mappings (StackStorm stores name and value as strings).
pub(crate) fn read_tags(fields: &mut Fields<'_>, issues: &mut Issues) -> Vec<crate::model::Tag> {
    let Some(items) = fields.array("tags", issues) else {
        return Vec::new();
    };
    let path = fields.child("tags");
    let mut tags = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(mut f) = Fields::of(item, path.index(i), "a tag", issues) else {
            continue;
        };
        let name = f.str("name", issues).unwrap_or_default().to_owned();
        let value = f.str("value", issues).unwrap_or_default().to_owned();
        f.finish("a tag", Severity::Warning, issues);
        tags.push(crate::model::Tag { name, value });
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_every_problem() {
        let v = json!({"name": 5, "enabled": "yes", "extra": 1, "tags": [1]});
        let mut issues = Issues::new();
        let mut f = Fields::of(&v, FieldPath::root(), "an action", &mut issues).unwrap();
        assert_eq!(f.req_str("name", &mut issues), None);
        assert_eq!(f.bool("enabled", &mut issues), None);
        assert_eq!(f.req_str("runner_type", &mut issues), None);
        let _ = f.strings("tags", &mut issues);
        f.finish("an action", Severity::Error, &mut issues);
        let messages: Vec<_> = issues.iter().map(|i| i.message.clone()).collect();
        assert_eq!(
            messages,
            [
                "`name` must be a string, not an integer (5)",
                "`enabled` must be a boolean, not a string (\"yes\")",
                "required field `runner_type` is missing",
                "items of `tags` must be strings, not an integer (1)",
                "unknown field `extra` in an action",
            ]
        );
    }

    #[test]
    fn null_counts_as_absent_but_required_null_is_reported_at_the_field() {
        let v = json!({"name": null});
        let mut issues = Issues::new();
        let mut f = Fields::of(&v, FieldPath::root(), "x", &mut issues).unwrap();
        assert_eq!(f.req_str("name", &mut issues), None);
        let issue = issues.iter().next().unwrap();
        assert_eq!(issue.path, FieldPath::root().key("name"));
        assert_eq!(issue.message, "`name` must not be empty");
    }
}
