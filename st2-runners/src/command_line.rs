//! Shell command lines built from quoted words, and the arguments StackStorm passes to shell
//! scripts (`ShellScriptAction._get_script_arguments`, `action_db.get_args`,
//! `serialize_positional_argument`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use st2_core::expr::python;

/// Python's `shlex.quote`: the word itself when it only holds `[A-Za-z0-9_@%+=:,./-]`, `''`
/// when empty, otherwise single-quoted with each `'` written as `'"'"'`.
pub fn quote(word: &str) -> String {
    if word.is_empty() {
        return "''".to_owned();
    }
    let safe = word
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if safe {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\"'\"'"))
}

/// A shell command line. Words added with [`ShellLine::word`] are quoted; shell syntax taken as
/// it is only enters through [`ShellLine::raw_script`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellLine(String);

impl ShellLine {
    /// An empty line.
    pub fn new() -> Self {
        Self::default()
    }

    /// **Shell syntax, unquoted**: a command a user wrote (a `cmd` runner parameter).
    pub fn raw_script(script: impl Into<String>) -> Self {
        ShellLine(script.into())
    }

    /// Append one word, quoted.
    pub fn word(mut self, word: &str) -> Self {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(&quote(word));
        self
    }

    /// Append words that are already quoted (the output of [`script_arguments`]).
    pub fn quoted_words(mut self, words: &[String]) -> Self {
        for w in words {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(w);
        }
        self
    }

    /// `self ; next`.
    pub fn then(mut self, next: ShellLine) -> Self {
        self.0.push_str(" ; ");
        self.0.push_str(&next.0);
        self
    }

    /// The line's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShellLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Python's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// StackStorm's `serialize_positional_argument`: a positional parameter's value as one word
/// (before quoting), by its declared type.
pub fn serialize_positional(ty: Option<&str>, value: &Value) -> String {
    match ty {
        Some("string" | "number" | "float") => match value {
            Value::Null => String::new(),
            other => python::str(other),
        },
        Some("boolean") => match value {
            Value::Null => String::new(),
            other if truthy(other) => "1".to_owned(),
            _ => "0".to_owned(),
        },
        Some("array" | "list") => {
            if !truthy(value) {
                return String::new();
            }
            // `",".join(map(str, value))`: items of a list, characters of a string, keys of
            // a mapping.
            match value {
                Value::Array(items) => items.iter().map(python::str).collect::<Vec<_>>().join(","),
                Value::String(s) => s.chars().map(String::from).collect::<Vec<_>>().join(","),
                Value::Object(o) => o.keys().cloned().collect::<Vec<_>>().join(","),
                other => python::str(other),
            }
        }
        Some("object") => {
            if truthy(value) {
                serde_json::to_string(value).unwrap_or_default()
            } else {
                String::new()
            }
        }
        Some("null") => String::new(),
        _ => {
            if truthy(value) {
                python::str(value)
            } else {
                String::new()
            }
        }
    }
}

/// The quoted words StackStorm appends to a script's path: named arguments
/// (`<kwarg_op><name>=<value>`, a bare `<kwarg_op><name>` for `true`, nothing for `false`,
/// `null` and empty strings), in parameter order, then the positional arguments ordered by
/// `position`.
///
/// `declared` is the action's own parameter metadata (where `position` and `type` live);
/// `params` the action parameters of this execution (runner parameters excluded).
pub fn script_arguments(
    declared: &Map<String, Value>,
    params: &Map<String, Value>,
    kwarg_op: &str,
) -> Vec<String> {
    let mut positions: BTreeMap<i64, &str> = BTreeMap::new();
    for (name, meta) in declared {
        if let Some(pos) = meta.get("position").and_then(Value::as_i64) {
            positions.insert(pos, name);
        }
    }
    let mut words = Vec::new();
    for (name, value) in params {
        if positions.values().any(|p| p == name) {
            continue;
        }
        let key = format!("{kwarg_op}{name}");
        match value {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::Bool(true) => words.push(quote(&key)),
            Value::Bool(false) => {}
            other => words.push(format!("{}={}", quote(&key), quote(&python::str(other)))),
        }
    }
    for name in positions.values() {
        let ty = declared
            .get(*name)
            .and_then(|m| m.get("type"))
            .and_then(Value::as_str);
        let value = params.get(*name).unwrap_or(&Value::Null);
        words.push(quote(&serialize_positional(ty, value)));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quoting_matches_shlex() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("abc-1.2/x=y:z,@%+"), "abc-1.2/x=y:z,@%+");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\"'\"'s'");
        assert_eq!(quote("é"), "'é'");
    }

    #[test]
    fn positional_serialisation() {
        assert_eq!(serialize_positional(Some("string"), &Value::Null), "");
        assert_eq!(serialize_positional(Some("number"), &json!(1.0)), "1.0");
        assert_eq!(serialize_positional(Some("boolean"), &json!(false)), "0");
        assert_eq!(serialize_positional(Some("boolean"), &json!(true)), "1");
        assert_eq!(
            serialize_positional(Some("array"), &json!(["a", 1, true])),
            "a,1,True"
        );
        assert_eq!(serialize_positional(Some("array"), &json!([])), "");
        assert_eq!(
            serialize_positional(Some("object"), &json!({"a": 1, "b": [1, 2]})),
            r#"{"a":1,"b":[1,2]}"#
        );
        assert_eq!(serialize_positional(Some("object"), &json!({})), "");
        assert_eq!(serialize_positional(Some("integer"), &json!(0)), "");
        assert_eq!(serialize_positional(Some("integer"), &json!(7)), "7");
        assert_eq!(serialize_positional(None, &json!([1])), "[1]");
    }

    #[test]
    fn named_then_positional() {
        let declared = json!({
            "b": {"type": "string", "position": 1},
            "a": {"type": "integer", "position": 0},
            "flag": {"type": "boolean"},
            "off": {"type": "boolean"},
            "name": {"type": "string"},
            "empty": {"type": "string"},
            "list": {"type": "array"},
        });
        let params = json!({
            "name": "x y", "flag": true, "off": false, "empty": "", "list": ["p", "q"],
            "a": 3, "b": "it's",
        });
        let words = script_arguments(
            declared.as_object().expect("object"),
            params.as_object().expect("object"),
            "--",
        );
        assert_eq!(
            words,
            [
                "--name='x y'".to_owned(),
                "--flag".to_owned(),
                format!("--list={}", quote("['p', 'q']")),
                "3".to_owned(),
                quote("it's"),
            ]
        );
    }
}
