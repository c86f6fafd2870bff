//! Reading runner and action parameters: the shapes runners accept and the errors that name the
//! parameter when a value has the wrong type.

use serde_json::{Map, Value};
use st2_core::expr::python;
use st2_core::runner::RunnerError;

/// A [`RunnerError::Parameter`] for `name`.
pub(crate) fn bad(name: &str, message: impl Into<String>) -> RunnerError {
    RunnerError::Parameter {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// "must be a <what>, not <Python type of value>".
pub(crate) fn wrong_type(name: &str, what: &str, value: &Value) -> RunnerError {
    bad(
        name,
        format!("must be {what}, not {}", python::type_name(value)),
    )
}

/// A string parameter; absent and `null` are `None`.
pub(crate) fn opt_str(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, RunnerError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(name, "a string", other)),
    }
}

/// A boolean parameter; absent and `null` are `None`.
pub(crate) fn opt_bool(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Option<bool>, RunnerError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(name, "a boolean", other)),
    }
}

/// Python's truthiness of a value (`""`, `0`, `[]`, `{}`, `None` and `False` are false).
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}
