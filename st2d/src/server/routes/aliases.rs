//! Action aliases (`st2 action-alias …`): list, get, create, update, delete, match, help; and
//! alias executions (`POST /aliasexecution`, `POST /aliasexecution/match_and_execute`), which
//! run an alias's action with the parameters a chat command gives (StackStorm's
//! `actionalias.py` and `aliasexecution.py` controllers).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use st2_core::alias::{self, AliasPattern};
use st2_core::engine::RunRequest;
use st2_core::engine::snapshot::content_id;
use st2_core::model::{ActionAlias, alias_from_json};

use super::content::{list_of, one_of};
use super::executions::{show, show_secrets};
use super::json;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_object, json_type, rules_file};

const KEYS: &[&str] = &["id", "ref"];

/// An alias as StackStorm's `ActionAliasAPI` shows it.
pub(crate) fn present(a: &ActionAlias) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(content_id("action_alias", &a.reference)));
    out.insert("ref".into(), json!(a.reference));
    out.insert(
        "uid".into(),
        json!(format!("action_alias:{}:{}", a.pack(), a.name)),
    );
    out.insert("name".into(), json!(a.name));
    out.insert("pack".into(), json!(a.pack()));
    out.insert("description".into(), json!(a.description));
    out.insert("enabled".into(), json!(a.enabled));
    out.insert("action_ref".into(), json!(a.action_ref));
    out.insert(
        "formats".into(),
        Value::Array(a.formats.iter().map(|f| f.to_json()).collect()),
    );
    if let Some(ack) = &a.ack {
        out.insert("ack".into(), Value::Object(ack.clone()));
    }
    if let Some(result) = &a.result {
        out.insert("result".into(), Value::Object(result.clone()));
    }
    out.insert("extra".into(), Value::Object(a.extra.clone()));
    out.insert(
        "immutable_parameters".into(),
        Value::Object(a.immutable_parameters.clone()),
    );
    out.insert("metadata_file".into(), json!(a.origin.metadata_file));
    Value::Object(out)
}

/// The aliases, ordered by pack then name (StackStorm's default sort).
fn all(state: &ApiState) -> Vec<Arc<ActionAlias>> {
    let mut aliases: Vec<Arc<ActionAlias>> = state.engine.catalog().aliases().cloned().collect();
    aliases.sort_by(|a, b| (a.pack(), &a.name).cmp(&(b.pack(), &b.name)));
    aliases
}

/// The ref of the alias whose ref or id is `key`.
fn find(state: &ApiState, key: &str) -> Option<String> {
    state
        .engine
        .catalog()
        .aliases()
        .find(|a| a.reference == key || content_id("action_alias", &a.reference) == key)
        .map(|a| a.reference.clone())
}

fn shown(state: &ApiState, reference: &str) -> Value {
    state
        .engine
        .catalog()
        .alias(reference)
        .map(|a| present(a))
        .unwrap_or(Value::Null)
}

async fn remember(state: &ApiState, reference: &str, body: Option<Value>) -> Result<(), ApiError> {
    if let Some(path) = &state.settings.aliases_file {
        rules_file::record(path, reference, body)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

fn compile(body: &Bytes) -> Result<(Value, ActionAlias), ApiError> {
    let body = Value::Object(json_object(body)?);
    let alias =
        alias_from_json(&body).map_err(|errors| ApiError::bad_request(errors.join("; ")))?;
    Ok((body, alias))
}

fn conflict(reference: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        format!("Tried to save duplicate unique keys: action alias \"{reference}\" already exists"),
    );
    e.conflict_id = Some(content_id("action_alias", reference));
    e
}

/// `GET /actionalias` (*pack*, *name*; limit 100).
pub async fn list(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let items = all(&state).iter().map(|a| present(a)).collect();
    list_of(
        items,
        &Params::parse(q.as_deref()),
        &[("pack", "pack"), ("name", "name")],
        Some(100),
        KEYS,
    )
}

/// `GET /actionalias/{ref_or_id}`.
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let items = all(&state).iter().map(|a| present(a)).collect();
    one_of(items, &key, &Params::parse(q.as_deref()), KEYS)
}

/// `POST /actionalias` → 201 (409 for an existing ref).
pub async fn create(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let (body, alias) = compile(&body)?;
    let reference = alias.reference.clone();
    if state.engine.catalog().alias(&reference).is_some() {
        return Err(conflict(&reference));
    }
    state.engine.put_alias(alias);
    remember(&state, &reference, Some(body)).await?;
    let shown = shown(&state, &reference);
    state.engine.alias_changed("create", shown.clone());
    Ok(json(StatusCode::CREATED, &shown))
}

/// `PUT /actionalias/{ref_or_id}` — the whole alias; 200.
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    let old = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    let (body, alias) = compile(&body)?;
    let reference = alias.reference.clone();
    if reference != old && state.engine.catalog().alias(&reference).is_some() {
        return Err(conflict(&reference));
    }
    state.engine.put_alias(alias);
    if reference != old {
        state.engine.remove_alias(&old);
        remember(&state, &old, None).await?;
    }
    remember(&state, &reference, Some(body)).await?;
    let shown = shown(&state, &reference);
    state.engine.alias_changed("update", shown.clone());
    Ok(json(StatusCode::OK, &shown))
}

/// `DELETE /actionalias/{ref_or_id}` → 204.
pub async fn delete(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> ApiResult {
    let reference = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    let removed = state.engine.remove_alias(&reference);
    remember(&state, &reference, None).await?;
    if let Some(alias) = removed {
        state.engine.alias_changed("delete", present(&alias));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Check a request body against the fields its schema allows (StackStorm's
/// `additionalProperties: false`: `strings` and `objects`), the `required` ones and the types.
fn check_body(
    body: &Map<String, Value>,
    strings: &[&str],
    objects: &[&str],
    required: &[&str],
) -> Result<(), ApiError> {
    for key in body.keys() {
        if !strings.contains(&key.as_str()) && !objects.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
    }
    for name in required {
        if body.get(*name).is_none_or(Value::is_null) {
            return Err(ApiError::bad_request(format!(
                "'{name}' is a required property"
            )));
        }
    }
    for (name, value) in body {
        let ok = match value {
            Value::Null => true,
            Value::String(_) => strings.contains(&name.as_str()),
            Value::Object(_) => objects.contains(&name.as_str()),
            _ => false,
        };
        if !ok {
            let wanted = if strings.contains(&name.as_str()) {
                "a string"
            } else {
                "an object"
            };
            return Err(ApiError::bad_request(format!(
                "\"{name}\" must be {wanted}, got: {}",
                json_type(value)
            )));
        }
    }
    Ok(())
}

fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// The one pattern `command` matches, or StackStorm's 400.
fn matching(state: &ApiState, command: &str) -> Result<AliasPattern, ApiError> {
    alias::matching_alias(command, &all(state)).map_err(|e| {
        tracing::info!(
            command,
            matches = e.matches,
            "command matched no single alias"
        );
        ApiError::bad_request(e.message)
    })
}

/// `POST /actionalias/match` `{"command"}` → `{"actionalias", "display", "representation"}`.
pub async fn match_command(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let body = json_object(&body)?;
    check_body(&body, &["command"], &[], &["command"])?;
    let command = text(&body, "command").unwrap_or_default();
    let found = matching(&state, command)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "actionalias": present(&found.alias),
            "display": found.display,
            "representation": found.representation,
        }),
    ))
}

/// `GET /actionalias/help` (*filter*, *pack*, *limit* = 100, *offset* = 0) →
/// `{"available", "helpstrings"}`.
pub async fn help(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let limit = params.int("limit")?.unwrap_or(100);
    let offset = params.int("offset")?.unwrap_or(0);
    let (available, helpstrings) = alias::help_strings(
        &all(&state),
        params.get("filter"),
        params.get("pack"),
        limit,
        offset,
    )
    .map_err(|e| {
        ApiError::bad_request(format!(
            "Parameter \"filter\" is not a valid regular expression: {e}"
        ))
    })?;
    Ok(json(
        StatusCode::OK,
        &json!({"available": available, "helpstrings": helpstrings}),
    ))
}

/// What one alias execution needs besides the alias.
struct Execution<'a> {
    format: &'a str,
    command: &'a str,
    user: Option<&'a str>,
    source_channel: Option<&'a str>,
    source_context: Option<Value>,
    route: Option<&'a str>,
    match_multiple: bool,
    show_secrets: bool,
}

/// `POST /aliasexecution` `{"name", "format", "command", "user", "source_channel",
/// "source_context"?, "notification_channel"?, "notification_route"?}` → 201
/// `{"actionalias", "execution", "message"?}`.
pub async fn execute(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let body = json_object(&body)?;
    check_body(
        &body,
        &[
            "name",
            "format",
            "command",
            "user",
            "source_channel",
            "notification_channel",
            "notification_route",
        ],
        &["source_context"],
        &[],
    )?;
    let Some(name) = text(&body, "name").filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(
            "Alias execution \"name\" is required",
        ));
    };
    let found = all(&state).into_iter().find(|a| a.name == name);
    let Some(alias) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Unable to identify action alias with name \"{name}\"."),
        ));
    };
    let run = Execution {
        format: text(&body, "format").unwrap_or_default(),
        command: text(&body, "command").unwrap_or_default(),
        user: text(&body, "user"),
        source_channel: text(&body, "source_channel"),
        source_context: body.get("source_context").filter(|v| !v.is_null()).cloned(),
        route: notification_route(&body),
        match_multiple: false,
        show_secrets: show_secrets(&params, &caller)?,
    };
    let mut results = run_alias(&state, &caller, &alias, run).await?;
    let first = if results.is_empty() {
        Value::Null
    } else {
        results.swap_remove(0)
    };
    Ok(json(StatusCode::CREATED, &first))
}

/// `POST /aliasexecution/match_and_execute` `{"command", "user", "source_channel",
/// "notification_channel"?, "notification_route"?}` → 201 `{"results": [...]}`.
pub async fn match_and_execute(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let body = json_object(&body)?;
    check_body(
        &body,
        &[
            "command",
            "user",
            "source_channel",
            "notification_channel",
            "notification_route",
        ],
        &[],
        &["command", "user", "source_channel"],
    )?;
    let command = text(&body, "command").unwrap_or_default();
    let found = matching(&state, command)?;
    let run = Execution {
        format: &found.representation,
        command,
        user: text(&body, "user"),
        source_channel: text(&body, "source_channel"),
        source_context: None,
        route: notification_route(&body),
        match_multiple: found.match_multiple,
        show_secrets: show_secrets(&params, &caller)?,
    };
    let results = run_alias(&state, &caller, &found.alias, run).await?;
    Ok(json(StatusCode::CREATED, &json!({"results": results})))
}

fn notification_route(body: &Map<String, Value>) -> Option<&str> {
    text(body, "notification_route")
        .filter(|r| !r.is_empty())
        .or_else(|| text(body, "notification_channel").filter(|r| !r.is_empty()))
}

/// Extract the parameters, add the immutable ones, run the action once per parameter set and
/// render the acknowledgement of each.
async fn run_alias(
    state: &ApiState,
    caller: &Caller,
    alias: &Arc<ActionAlias>,
    run: Execution<'_>,
) -> Result<Vec<Value>, ApiError> {
    if !alias.enabled {
        return Err(ApiError::bad_request(format!(
            "Action alias with name \"{}\" is disabled.",
            alias.name
        )));
    }
    if !alias::has_format_string(alias, run.format) {
        return Err(ApiError::bad_request(format!(
            "Format string \"{}\" is not available on the alias \"{}\"",
            run.format, alias.name
        )));
    }
    let bad = |e: alias::ParseError| ApiError::bad_request(e.to_string());
    let mut parameter_sets = if run.match_multiple {
        alias::extract_all_parameters(run.format, run.command).map_err(bad)?
    } else {
        vec![alias::extract_parameters(run.format, run.command).map_err(bad)?]
    };
    let mut context = Map::new();
    context.insert("action_alias_ref".into(), json!(alias.reference));
    context.insert("api_user".into(), json!(run.user));
    context.insert("user".into(), json!(caller.user));
    context.insert("source_channel".into(), json!(run.source_channel));
    if !alias.immutable_parameters.is_empty() {
        let rendered = state
            .engine
            .render_values(
                alias.immutable_parameters.clone(),
                context.clone(),
                Some(caller.user.clone()),
            )
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for params in &mut parameter_sets {
            let overridden: Vec<&str> = alias
                .immutable_parameters
                .keys()
                .filter(|k| params.contains_key(k.as_str()))
                .map(String::as_str)
                .collect();
            if !overridden.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "Immutable arguments cannot be overriden: {}",
                    overridden.join(",")
                )));
            }
            params.extend(rendered.clone());
        }
    }
    let notify = json!({"on-complete": {
        "routes": [run.route],
        "data": {
            "user": run.user,
            "source_channel": run.source_channel,
            "source_context": run.source_context,
        },
    }});
    let mut results = Vec::new();
    for params in parameter_sets {
        let params = cast_params(state, &alias.action_ref, params)?;
        let mut request = RunRequest::new(alias.action_ref.clone(), params);
        request.context = context.clone();
        request.user = Some(caller.user.clone());
        request.notify = Some(notify.clone());
        let record = state.engine.run_with(request).await?;
        let mut result = Map::new();
        result.insert("execution".into(), show(state, &record, run.show_secrets));
        result.insert("actionalias".into(), present(alias));
        acknowledge(state, alias, &mut result).await;
        results.push(Value::Object(result));
    }
    Ok(results)
}

/// `ack.format` and `ack.extra` rendered with `{execution, actionalias}`; a failure becomes
/// the message, as in StackStorm.
async fn acknowledge(state: &ApiState, alias: &ActionAlias, result: &mut Map<String, Value>) {
    let Some(ack) = &alias.ack else { return };
    if let Some(format) = ack.get("format") {
        let mut values = Map::new();
        values.insert("alias".into(), format.clone());
        let message = match state
            .engine
            .render_values(values, result.clone(), None)
            .await
        {
            Ok(mut m) => m.remove("alias").unwrap_or(Value::Null),
            Err(e) => Value::String(format!(
                "Cannot render \"format\" in field \"ack\" for alias. {}",
                render_message(&e)
            )),
        };
        result.insert("message".into(), message);
    }
    if let Some(Value::Object(extra)) = ack.get("extra") {
        let extra = match state
            .engine
            .render_values(extra.clone(), result.clone(), None)
            .await
        {
            Ok(m) => Value::Object(m),
            Err(e) => Value::String(format!(
                "Cannot render \"extra\" in field \"ack\" for alias. {}",
                render_message(&e)
            )),
        };
        result.insert("extra".into(), extra);
    }
}

/// What the template engine said, without the parameter wrapping.
fn render_message(e: &st2_core::expr::render::ParamError) -> String {
    match e {
        st2_core::expr::render::ParamError::Render { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Cast extracted values to the types the action and its runner declare (StackStorm's
/// `cast_params`, with arrays split on commas instead of parsed as JSON).
fn cast_params(
    state: &ApiState,
    action_ref: &str,
    params: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let catalog = state.engine.catalog();
    let Some(action) = catalog.action(action_ref) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Action with ref \"{action_ref}\" not found "),
        ));
    };
    let schema = action.schema.properties();
    let mut out = Map::new();
    for (name, value) in params {
        let ty = schema
            .get(&name)
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str);
        let shown = st2_core::expr::python::str(&value);
        let type_name = st2_core::expr::python::type_name(&value);
        let cast = match ty {
            None => Ok(value),
            Some("array") => match value {
                Value::Array(_) => Ok(value),
                Value::String(s) => Ok(Value::Array(
                    s.split(',').map(|v| json!(v.trim())).collect(),
                )),
                _ => Err(format!("'{type_name}' object has no attribute 'split'")),
            },
            Some(t) => st2_core::expr::render::cast(&value, t),
        };
        let cast = cast.map_err(|e| {
            ApiError::bad_request(format!(
                "Failed to cast value \"{shown}\" (type: {type_name}) for parameter \"{name}\" of type \"{}\": {e}. Perhaps the value is of an invalid type?",
                ty.unwrap_or_default()
            ))
        })?;
        out.insert(name, cast);
    }
    Ok(out)
}
