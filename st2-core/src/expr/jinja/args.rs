//! Python-style argument binding for filters: positional arguments, then keyword arguments by
//! name, with Python's `TypeError` for missing, duplicated or unknown ones.

use minijinja::Error;
use minijinja::value::{Kwargs, Value};

use super::value::type_error;

/// Bind `args` (positional values, optionally ending with keyword arguments) to the parameter
/// `names` of filter `filter`; the first `required` names must be given.
///
/// # Errors
/// A `TypeError` for too many, missing, repeated or unknown arguments.
pub fn bind(
    filter: &str,
    args: &[Value],
    names: &[&str],
    required: usize,
) -> Result<Vec<Option<Value>>, Error> {
    let (positional, kwargs) = match args.last() {
        Some(last) if last.is_kwargs() => (
            &args[..args.len() - 1],
            Some(Kwargs::try_from(last.clone())?),
        ),
        _ => (args, None),
    };
    if positional.len() > names.len() {
        return Err(type_error(format!(
            "{filter}() takes at most {} arguments ({} given)",
            names.len(),
            positional.len()
        )));
    }
    let mut bound: Vec<Option<Value>> = names.iter().map(|_| None).collect();
    for (slot, v) in bound.iter_mut().zip(positional) {
        *slot = Some(v.clone());
    }
    if let Some(kwargs) = kwargs {
        for key in kwargs.args() {
            let Some(idx) = names.iter().position(|n| *n == key) else {
                return Err(type_error(format!(
                    "{filter}() got an unexpected keyword argument '{key}'"
                )));
            };
            if bound[idx].is_some() {
                return Err(type_error(format!(
                    "{filter}() got multiple values for argument '{key}'"
                )));
            }
            bound[idx] = Some(kwargs.get::<Value>(key)?);
        }
    }
    for (i, name) in names.iter().enumerate().take(required) {
        if bound[i].is_none() {
            return Err(type_error(format!(
                "{filter}() missing required argument: '{name}'"
            )));
        }
    }
    Ok(bound)
}

/// An optional boolean argument (Python truthiness).
pub fn flag(v: &Option<Value>, default: bool) -> bool {
    v.as_ref().map_or(default, Value::is_true)
}
