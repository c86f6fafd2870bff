//! Orquesta's expression functions (`ctx`, `json`, `zip`, `item`, `result`, `succeeded`,
//! `failed`, `completed`, `task_status`), registered in a [`Functions`] table so that both the
//! YAQL and the Jinja engine can call them.
//!
//! They read the evaluation [`Scope`]: `vars` is the workflow context
//! (`ctx()`), `internals` carries `__current_task` (`{id, route, result}`), `__current_item`
//! and `__state` (the conductor state: `tasks` maps `"<task>__r<route>"` to an index into
//! `sequence`, whose entries carry `status`; `routes` lists each route's split details).

use serde_json::{Map, Value};
use st2_core::expr::yaql::{NativeCall, Yaql, YaqlValue};
use st2_core::expr::{ErrorKind, ExprError, FunctionCall, Functions, Language, Scope, python};

/// Status strings that count as completed for `completed()`.
const COMPLETED_STATUSES: [&str; 5] = ["succeeded", "failed", "timeout", "abandoned", "canceled"];

/// What `task_status()` returns for a task that has not run.
const UNSET: &str = "null";

/// The Orquesta functions, ready to hand to an engine (`Yaql::with_functions`).
pub fn orquesta_functions() -> Functions {
    let mut f = Functions::new();
    register_orquesta_functions(&mut f);
    f
}

/// Register the Orquesta functions in `functions`. Names already taken are left alone.
pub fn register_orquesta_functions(functions: &mut Functions) {
    // A name taken by the caller keeps the caller's function, by design.
    let _ = functions.register("ctx", ctx);
    let _ = functions.register("json", json);
    let _ = functions.register("zip", zip);
    let _ = functions.register("item", item);
    let _ = functions.register("result", result);
    let _ = functions.register("succeeded", succeeded);
    let _ = functions.register("failed", failed);
    let _ = functions.register("completed", completed);
    let _ = functions.register("task_status", task_status);
}

/// A YAQL engine for Orquesta: the standard library, the Orquesta functions, and native
/// versions of the functions that read the scope (`ctx`, `item`, `result`), which share
/// converted context data across evaluations instead of copying it through JSON.
pub fn orquesta_yaql() -> Yaql {
    with_native_orquesta_functions(Yaql::with_functions(orquesta_functions()))
}

/// `yaql` with native versions of `ctx`, `item` and `result` (same behaviour as the
/// [`Functions`] entries, without the JSON round trip).
pub fn with_native_orquesta_functions(yaql: Yaql) -> Yaql {
    yaql.with_native("ctx", ctx_native)
        .with_native("item", item_native)
        .with_native("result", result_native)
}

/// Native calls: the (small) arguments as JSON, the found value converted through the cache.
fn native_found(
    call: &NativeCall<'_>,
    find: for<'s> fn(&Args<'_>, &'s Scope) -> Result<Found<'s>, ExprError>,
) -> Result<YaqlValue, ExprError> {
    let args: Vec<Value> = call.args.iter().map(YaqlValue::to_json).collect();
    let kwargs: Map<String, Value> = call
        .kwargs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect();
    let a = Args {
        name: call.name,
        args: &args,
        kwargs: &kwargs,
    };
    Ok(match find(&a, call.scope)? {
        Found::AllVars => {
            if call.scope.vars.keys().any(|k| k.starts_with("__")) {
                YaqlValue::from_json_map(&visible_vars(call.scope))
            } else {
                call.convert_map(&call.scope.vars)
            }
        }
        Found::Value(v) => call.convert(v),
        Found::Null => YaqlValue::Null,
    })
}

fn ctx_native(call: &NativeCall<'_>) -> Result<YaqlValue, ExprError> {
    native_found(call, ctx_find)
}

fn item_native(call: &NativeCall<'_>) -> Result<YaqlValue, ExprError> {
    native_found(call, item_find)
}

fn result_native(call: &NativeCall<'_>) -> Result<YaqlValue, ExprError> {
    native_found(call, result_find)
}

fn eval_error(message: impl Into<String>) -> ExprError {
    ExprError::new(ErrorKind::Value, message)
}

/// The arguments of one call, as JSON.
struct Args<'a> {
    name: &'a str,
    args: &'a [Value],
    kwargs: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn of(call: &'a FunctionCall<'_>) -> Self {
        Args {
            name: call.name,
            args: call.args,
            kwargs: call.kwargs,
        }
    }

    /// Argument `index`, or keyword argument `name`; `None` when neither was given.
    fn get(&self, index: usize, name: &str, max: usize) -> Result<Option<&'a Value>, ExprError> {
        if self.args.len() > max {
            return Err(ExprError::new(
                ErrorKind::Type,
                format!(
                    "{}() takes at most {max} argument(s) ({} given)",
                    self.name,
                    self.args.len()
                ),
            ));
        }
        if let Some(unknown) = self.kwargs.keys().find(|k| *k != name || max == 0) {
            return Err(ExprError::new(
                ErrorKind::Type,
                format!(
                    "{}() got an unexpected keyword argument '{unknown}'",
                    self.name
                ),
            ));
        }
        match (self.args.get(index), self.kwargs.get(name)) {
            (Some(_), Some(_)) => Err(ExprError::new(
                ErrorKind::Type,
                format!("{}() got multiple values for argument '{name}'", self.name),
            )),
            (p, k) => Ok(p.or(k)),
        }
    }
}

/// Python truthiness of a JSON value.
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

/// What a function reading the scope found.
enum Found<'s> {
    /// Every context variable (`ctx()`).
    AllVars,
    /// One value.
    Value(&'s Value),
    /// Nothing: null.
    Null,
}

fn inaccessible(name: &str) -> ExprError {
    ExprError::new(
        ErrorKind::Undefined,
        format!("The variable \"{name}\" is for internal use and inaccessible."),
    )
}

/// `ctx()` / `ctx(name)`.
fn ctx_find<'s>(a: &Args<'_>, scope: &'s Scope) -> Result<Found<'s>, ExprError> {
    let Some(key) = a.get(0, "key", 1)?.filter(|k| truthy(k)) else {
        return Ok(Found::AllVars);
    };
    let name = match key {
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => {
            return Err(ExprError::new(
                ErrorKind::Type,
                format!(
                    "unhashable type: '{}'",
                    if key.is_array() { "list" } else { "dict" }
                ),
            ));
        }
        other => python::str(other),
    };
    if name.starts_with("__") && scope.internals.contains_key(&name) {
        return Err(inaccessible(&name));
    }
    match (key, scope.vars.get(&name)) {
        (Value::String(_), Some(v)) if !name.starts_with("__") => Ok(Found::Value(v)),
        (Value::String(_), Some(_)) => Err(inaccessible(&name)),
        _ => Err(ExprError::new(
            ErrorKind::Undefined,
            format!("The variable \"{name}\" is undefined."),
        )),
    }
}

/// The context variables `ctx()` shows (none starting with `__`).
fn visible_vars(scope: &Scope) -> Map<String, Value> {
    scope
        .vars
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `ctx()`: every context variable; `ctx(name)`: one of them.
fn ctx(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    Ok(match ctx_find(&Args::of(call), call.scope)? {
        Found::AllVars => Value::Object(visible_vars(call.scope)),
        Found::Value(v) => v.clone(),
        Found::Null => Value::Null,
    })
}

/// `json(s)`: parse a JSON string. A map passes through in Jinja; in YAQL every map is a frozen
/// mapping, which the function rejects like any other non-string.
fn json(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    let s = Args::of(call).get(0, "s", 1)?.ok_or_else(|| {
        ExprError::new(
            ErrorKind::Type,
            "json() missing 1 required positional argument: 's'",
        )
    })?;
    match s {
        Value::Object(_) if call.language == Language::Jinja => Ok(s.clone()),
        Value::String(text) => serde_json::from_str(text).map_err(|e| eval_error(e.to_string())),
        _ => Err(ExprError::new(
            ErrorKind::Type,
            "Given object is not typeof string.",
        )),
    }
}

/// The items Python would iterate over for `v`.
fn iterate(v: &Value) -> Result<Vec<Value>, ExprError> {
    Ok(match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        Value::String(s) => s.chars().map(|c| Value::String(c.to_string())).collect(),
        Value::Object(o) => o.keys().map(|k| Value::String(k.clone())).collect(),
        other => {
            return Err(ExprError::new(
                ErrorKind::Type,
                format!(
                    "'{}' object is not iterable",
                    match other {
                        Value::Bool(_) => "bool",
                        Value::Number(n) if n.is_f64() => "float",
                        _ => "int",
                    }
                ),
            ));
        }
    })
}

/// `zip(a, b, ..., pad => v)`: Python's `zip_longest`; null arguments are empty lists and a
/// single argument comes back unchanged.
fn zip(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    if call.args.len() == 1 {
        return Ok(match &call.args[0] {
            Value::Null => Value::Array(Vec::new()),
            other => other.clone(),
        });
    }
    let pad = call.kwargs.get("pad").cloned().unwrap_or(Value::Null);
    let columns = call
        .args
        .iter()
        .map(iterate)
        .collect::<Result<Vec<_>, _>>()?;
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    Ok(Value::Array(
        (0..rows)
            .map(|i| {
                Value::Array(
                    columns
                        .iter()
                        .map(|c| c.get(i).cloned().unwrap_or_else(|| pad.clone()))
                        .collect(),
                )
            })
            .collect(),
    ))
}

/// `item()` / `item(key)`.
fn item_find<'s>(a: &Args<'_>, scope: &'s Scope) -> Result<Found<'s>, ExprError> {
    let current = scope.internals.get("__current_item");
    let Some(key) = a.get(0, "key", 1)?.filter(|k| truthy(k)) else {
        return Ok(current.map_or(Found::Null, Found::Value));
    };
    let Some(Value::Object(map)) = current else {
        return Err(eval_error("Item is not type of collections.abc.Mapping."));
    };
    let name = python::str(key);
    match (key, map.get(&name)) {
        (Value::String(_), Some(v)) => Ok(Found::Value(v)),
        _ => Err(eval_error(format!("Item does not have key \"{name}\"."))),
    }
}

/// `item()`: the current with-items element; `item(key)`: one of its fields.
fn item(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    Ok(match item_find(&Args::of(call), call.scope)? {
        Found::Value(v) => v.clone(),
        _ => Value::Null,
    })
}

/// The current task (`{id, route, result}`), or the error Orquesta gives outside a task.
fn current_task(scope: &Scope) -> Result<&Map<String, Value>, ExprError> {
    match scope.internals.get("__current_task") {
        Some(Value::Object(task)) if !task.is_empty() => Ok(task),
        _ => Err(ExprError::new(
            ErrorKind::Undefined,
            "The current task is not set in the context.",
        )),
    }
}

fn task_key<'a>(task: &'a Map<String, Value>, key: &str) -> Result<&'a Value, ExprError> {
    task.get(key)
        .ok_or_else(|| ExprError::new(ErrorKind::Key, python::str_repr(key)))
}

/// `result()`.
fn result_find<'s>(a: &Args<'_>, scope: &'s Scope) -> Result<Found<'s>, ExprError> {
    a.get(0, "", 0)?;
    Ok(current_task(scope)?
        .get("result")
        .map_or(Found::Null, Found::Value))
}

/// `result()`: the current task's result.
fn result(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    Ok(match result_find(&Args::of(call), call.scope)? {
        Found::Value(v) => v.clone(),
        _ => Value::Null,
    })
}

/// The status of the current task.
fn current_status(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    Args::of(call).get(0, "", 0)?;
    let task = current_task(call.scope)?;
    let id = task_key(task, "id")?;
    let route = task_key(task, "route")?;
    status_of(call, id, route)
}

fn succeeded(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(current_status(call)? == "succeeded"))
}

fn failed(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(current_status(call)? == "failed"))
}

fn completed(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    let status = current_status(call)?;
    Ok(Value::Bool(
        status
            .as_str()
            .is_some_and(|s| COMPLETED_STATUSES.contains(&s)),
    ))
}

/// `task_status(name[, route])`.
fn task_status(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    if call.args.len() > 2 {
        return Err(ExprError::new(
            ErrorKind::Type,
            "task_status() takes at most 2 arguments",
        ));
    }
    let id = call
        .args
        .first()
        .or_else(|| call.kwargs.get("taskId"))
        .ok_or_else(|| {
            ExprError::new(
                ErrorKind::NoMatchingFunction,
                "No function \"task_status\" matches supplied arguments",
            )
        })?;
    let route = match call.args.get(1).or_else(|| call.kwargs.get("route")) {
        Some(Value::Null) | None => match call.scope.internals.get("__current_task") {
            Some(Value::Object(t)) => t.get("route").cloned().unwrap_or(Value::from(0)),
            _ => Value::from(0),
        },
        Some(r) => r.clone(),
    };
    status_of(call, id, &route)
}

/// The status of task `id` on `route`, falling back to earlier routes whose split details
/// are a subset of this route's (the branch the route was split from).
fn status_of(call: &FunctionCall<'_>, id: &Value, route: &Value) -> Result<Value, ExprError> {
    let empty = Map::new();
    let state = match call.scope.internals.get("__state") {
        Some(Value::Object(s)) => s,
        _ => &empty,
    };
    let Some((_, idx)) = find_task(state, id, route)? else {
        return Ok(Value::from(UNSET));
    };
    let seq = match state.get("sequence") {
        Some(Value::Array(s)) => s.as_slice(),
        _ => &[],
    };
    let entry = idx
        .as_u64()
        .and_then(|i| seq.get(i as usize))
        .ok_or_else(|| ExprError::new(ErrorKind::Index, "list index out of range"))?;
    Ok(match entry {
        Value::Object(e) => e.get("status").cloned().unwrap_or(Value::from(UNSET)),
        _ => Value::from(UNSET),
    })
}

/// Task `id` on `route` or the route it was split from: its key `"<id>__r<route>"` and its
/// sequence index in the conductor state, or `None` when it has not run.
fn find_task(
    state: &Map<String, Value>,
    id: &Value,
    route: &Value,
) -> Result<Option<(String, Value)>, ExprError> {
    let empty = Map::new();
    let mut route = route.clone();
    // Each fallback moves to a smaller route number, so this ends.
    loop {
        let pointers = match state.get("tasks") {
            Some(Value::Object(p)) => p,
            _ => &empty,
        };
        let uid = format!("{}__r{}", python::str(id), python::str(&route));
        match pointers.get(&uid) {
            Some(Value::Null) | None => {
                let Some(r) = route.as_i64() else {
                    if route.is_number() || route.is_null() || route.is_boolean() {
                        return Ok(None);
                    }
                    return Err(ExprError::new(
                        ErrorKind::Type,
                        "'>' not supported between instances of 'str' and 'int'",
                    ));
                };
                if r <= 0 {
                    return Ok(None);
                }
                let routes = match state.get("routes") {
                    Some(Value::Array(routes)) => routes,
                    _ => return Err(ExprError::new(ErrorKind::Key, "'routes'")),
                };
                let details = |i: usize| -> Result<Vec<Value>, ExprError> {
                    match routes.get(i) {
                        Some(Value::Array(d)) => Ok(d.clone()),
                        Some(_) => Ok(Vec::new()),
                        None => Err(ExprError::new(ErrorKind::Index, "list index out of range")),
                    }
                };
                let current = details(r as usize)?;
                let parent = (0..(r as usize).min(routes.len()))
                    .rev()
                    .map(|i| details(i).map(|d| (i, d)))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .find(|(_, d)| d.iter().all(|x| current.contains(x)));
                match parent {
                    Some((i, _)) => route = Value::from(i as i64),
                    None => return Ok(None),
                }
            }
            Some(idx) => return Ok(Some((uid, idx.clone()))),
        }
    }
}

/// StackStorm's `task(name=current, route=current)`: the task execution record of a task on
/// the current branch (`__st2_tasks`, kept by the `orquesta` runner, maps
/// `"<task>__r<route>"` to the newest record).
pub(crate) fn task(call: &FunctionCall<'_>) -> Result<Value, ExprError> {
    if call.args.len() > 2 {
        return Err(ExprError::new(
            ErrorKind::Type,
            "task() takes at most 2 arguments",
        ));
    }
    let current = match call.scope.internals.get("__current_task") {
        Some(Value::Object(t)) => Some(t),
        _ => None,
    };
    let id = match call.args.first().or_else(|| call.kwargs.get("task_id")) {
        Some(v) if !v.is_null() => v.clone(),
        _ => current.and_then(|t| t.get("id").cloned()).ok_or_else(|| {
            ExprError::new(
                ErrorKind::Undefined,
                "The current task is not set in the context.",
            )
        })?,
    };
    let route = match call.args.get(1).or_else(|| call.kwargs.get("route")) {
        Some(r) if !r.is_null() => r.clone(),
        _ => current
            .and_then(|t| t.get("route").cloned())
            .unwrap_or(Value::from(0)),
    };
    let empty = Map::new();
    let state = match call.scope.internals.get("__state") {
        Some(Value::Object(s)) => s,
        _ => &empty,
    };
    let missing = || {
        ExprError::new(
            ErrorKind::Value,
            format!(
                "Unable to find task execution for \"{}\".",
                python::str(&id)
            ),
        )
    };
    let (uid, _) = find_task(state, &id, &route)?.ok_or_else(missing)?;
    call.scope
        .internals
        .get("__st2_tasks")
        .and_then(|t| t.get(&uid))
        .cloned()
        .ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use st2_core::expr::Scope;

    fn call_with(
        name: &str,
        args: &[Value],
        scope: &Scope,
        language: Language,
    ) -> Result<Value, ExprError> {
        let f = orquesta_functions();
        let kwargs = Map::new();
        let Some(func) = f.get(name) else {
            panic!("{name} registered")
        };
        func.call(&FunctionCall {
            name,
            args,
            kwargs: &kwargs,
            scope,
            language,
        })
    }

    fn scope() -> Scope {
        let ctx = json!({
            "a": 1,
            "__current_task": {"id": "t2", "route": 2},
            "__state": {
                "tasks": {"t1__r0": 0, "t2__r2": 1},
                "routes": [[], ["t0__t0"], ["t0__t0", "tx__t1"]],
                "sequence": [{"id": "t1", "status": "succeeded"}, {"id": "t2", "status": "running"}]
            }
        });
        match ctx {
            Value::Object(m) => Scope::from_context(&m),
            _ => Scope::default(),
        }
    }

    #[test]
    fn task_status_falls_back_to_parent_routes() {
        let s = scope();
        let r = call_with("task_status", &[json!("t1")], &s, Language::Yaql);
        assert_eq!(r, Ok(json!("succeeded")));
        let r = call_with("task_status", &[json!("t9")], &s, Language::Yaql);
        assert_eq!(r, Ok(json!("null")));
        let r = call_with("succeeded", &[], &s, Language::Yaql);
        assert_eq!(r, Ok(json!(false)));
        let r = call_with("completed", &[], &s, Language::Yaql);
        assert_eq!(r, Ok(json!(false)));
    }

    #[test]
    fn json_and_zip() {
        let s = Scope::default();
        let m = json!({"k": 1});
        assert_eq!(
            call_with("json", std::slice::from_ref(&m), &s, Language::Jinja),
            Ok(m.clone())
        );
        assert!(call_with("json", &[m], &s, Language::Yaql).is_err());
        assert_eq!(
            call_with("zip", &[json!([1, 2]), json!(null)], &s, Language::Yaql),
            Ok(json!([[1, null], [2, null]]))
        );
        assert!(call_with("result", &[], &s, Language::Yaql).is_err());
    }
}
