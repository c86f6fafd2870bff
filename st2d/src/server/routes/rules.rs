//! Rule create, update and delete (`st2 rule create/enable/disable/delete`); the list and get
//! routes are with the other pack content.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use st2_core::engine::snapshot::content_id;
use st2_core::model::rule_from_json;

use super::json;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{ApiState, json_object, present, rules_file};

/// The ref of the rule whose ref or id is `key`.
fn find(state: &ApiState, key: &str) -> Option<String> {
    state
        .engine
        .catalog()
        .rules()
        .find(|r| r.reference == key || content_id("rule", &r.reference) == key)
        .map(|r| r.reference.clone())
}

async fn remember(state: &ApiState, reference: &str, body: Option<Value>) -> Result<(), ApiError> {
    if let Some(path) = &state.settings.rules_file {
        rules_file::record(path, reference, body)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

/// The body as a JSON object with `context.user` set to the caller (as StackStorm records who
/// created or last changed a rule).
fn rule_body(body: &Bytes, caller: &Caller) -> Result<Value, ApiError> {
    let mut body = json_object(body)?;
    let context = body
        .entry("context")
        .or_insert_with(|| Value::Object(Default::default()));
    if !context.is_object() {
        *context = Value::Object(Default::default());
    }
    if let Value::Object(c) = context {
        c.insert("user".into(), Value::String(caller.user.clone()));
    }
    Ok(Value::Object(body))
}

fn compile(state: &ApiState, body: &Value) -> Result<st2_core::model::Rule, ApiError> {
    rule_from_json(body, &state.engine.catalog())
        .map_err(|errors| ApiError::bad_request(errors.join("; ")))
}

fn conflict(reference: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        format!("Tried to save duplicate unique keys: rule \"{reference}\" already exists"),
    );
    e.conflict_id = Some(content_id("rule", reference));
    e
}

/// `POST /rules` → 201 (`enabled` defaults to false; 409 for an existing ref).
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = rule_body(&body, &caller)?;
    let rule = compile(&state, &body)?;
    let reference = rule.reference.clone();
    if state.engine.catalog().rule(&reference).is_some() {
        return Err(conflict(&reference));
    }
    state.engine.put_rule(rule)?;
    remember(&state, &reference, Some(body)).await?;
    let shown = state
        .engine
        .catalog()
        .rule(&reference)
        .map(|r| present::rule(r))
        .unwrap_or(Value::Null);
    Ok(json(StatusCode::CREATED, &shown))
}

/// `PUT /rules/{ref_or_id}` — the whole rule; 200.
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    let old = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    let body = rule_body(&body, &caller)?;
    let rule = compile(&state, &body)?;
    let reference = rule.reference.clone();
    if reference != old && state.engine.catalog().rule(&reference).is_some() {
        return Err(conflict(&reference));
    }
    state.engine.put_rule(rule)?;
    if reference != old {
        state.engine.remove_rule(&old);
        remember(&state, &old, None).await?;
    }
    remember(&state, &reference, Some(body)).await?;
    let shown = state
        .engine
        .catalog()
        .rule(&reference)
        .map(|r| present::rule(r))
        .unwrap_or(Value::Null);
    Ok(json(StatusCode::OK, &shown))
}

/// `DELETE /rules/{ref_or_id}` → 204.
pub async fn delete(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> ApiResult {
    let reference = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    state.engine.remove_rule(&reference);
    remember(&state, &reference, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
