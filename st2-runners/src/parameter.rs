//! Reading runner and action parameters: the shapes runners accept and the errors that name the
//! parameter when a value has the wrong type.

use std::time::Duration;

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

fn check_env_text(name: &str, text: &str, what: &str) -> Result<(), RunnerError> {
    if text.contains('\0') {
        return Err(bad(name, format!("{what} {text:?} contains a NUL byte")));
    }
    Ok(())
}

/// The `env` parameter: an object of strings, names without `=`, nothing holding NUL.
pub(crate) fn read_env(params: &Map<String, Value>) -> Result<Vec<(String, String)>, RunnerError> {
    match params.get("env") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => {
            let mut env = Vec::with_capacity(map.len());
            for (k, v) in map {
                let Value::String(v) = v else {
                    return Err(bad(
                        "env",
                        format!(
                            "the value of {k:?} must be a string, not {}",
                            python::type_name(v)
                        ),
                    ));
                };
                if k.is_empty() || k.contains('=') {
                    return Err(bad("env", format!("{k:?} is not a variable name")));
                }
                check_env_text("env", k, "the name")?;
                check_env_text("env", v, "the value of")?;
                env.push((k.clone(), v.clone()));
            }
            Ok(env)
        }
        Some(other) => Err(wrong_type("env", "an object", other)),
    }
}

/// The `timeout` parameter (seconds, `default` when unset) and its text as StackStorm prints
/// it in messages.
pub(crate) fn read_timeout(
    params: &Map<String, Value>,
    default: u64,
) -> Result<(Duration, String), RunnerError> {
    match params.get("timeout") {
        None | Some(Value::Null) => Ok((Duration::from_secs(default), default.to_string())),
        Some(Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(0.0).max(0.0);
            let duration = Duration::try_from_secs_f64(secs)
                .map_err(|e| bad("timeout", format!("{n} seconds: {e}")))?;
            Ok((duration, python::str(&Value::Number(n.clone()))))
        }
        Some(other) => Err(wrong_type("timeout", "a number", other)),
    }
}
