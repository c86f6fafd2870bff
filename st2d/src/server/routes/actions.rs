//! Action create, update and delete (`st2 action create/update/delete`); list, get and views
//! are with the other pack content. Files are never written or removed: an action's entry
//! point must already be in its pack.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use st2_core::engine::snapshot::content_id;
use st2_core::model::action_from_json;

use super::json;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{ApiState, json_object, present, rules_file};

fn find(state: &ApiState, key: &str) -> Option<String> {
    state
        .engine
        .catalog()
        .action_refs()
        .find(|r| *r == key || content_id("action", r) == key)
        .map(str::to_owned)
}

async fn remember(state: &ApiState, reference: &str, body: Option<Value>) -> Result<(), ApiError> {
    if let Some(path) = &state.settings.actions_file {
        rules_file::record(path, reference, body)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

/// The body, refusing `data_files` (st2d does not write pack files through the API).
fn action_body(body: &Bytes) -> Result<Value, ApiError> {
    let mut body = json_object(body)?;
    match body.remove("data_files") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "\"data_files\" is not supported: put the files in the pack and register it",
            ));
        }
    }
    Ok(Value::Object(body))
}

fn compile(state: &ApiState, body: &Value) -> Result<st2_core::model::Action, ApiError> {
    action_from_json(body, &state.engine.catalog())
        .map_err(|errors| ApiError::bad_request(errors.join("; ")))
}

fn shown(state: &ApiState, reference: &str) -> Value {
    state
        .engine
        .catalog()
        .action(reference)
        .map(|a| present::action(a))
        .unwrap_or(Value::Null)
}

fn conflict(reference: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        format!("Tried to save duplicate unique keys: action \"{reference}\" already exists"),
    );
    e.conflict_id = Some(content_id("action", reference));
    e
}

/// `POST /actions` → 201 (409 for an existing ref).
pub async fn create(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let body = action_body(&body)?;
    let action = compile(&state, &body)?;
    let reference = action.reference.clone();
    if state.engine.catalog().action(&reference).is_some() {
        return Err(conflict(&reference));
    }
    state.engine.put_action(action);
    remember(&state, &reference, Some(body)).await?;
    Ok(json(StatusCode::CREATED, &shown(&state, &reference)))
}

/// `PUT /actions/{ref_or_id}` — the whole action; 200.
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    let old = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    let body = action_body(&body)?;
    let action = compile(&state, &body)?;
    let reference = action.reference.clone();
    if reference != old && state.engine.catalog().action(&reference).is_some() {
        return Err(conflict(&reference));
    }
    state.engine.put_action(action);
    if reference != old {
        state.engine.remove_action(&old);
        remember(&state, &old, None).await?;
    }
    remember(&state, &reference, Some(body)).await?;
    Ok(json(StatusCode::OK, &shown(&state, &reference)))
}

/// `DELETE /actions/{ref_or_id}` → 204 (`remove_files` is ignored: files stay).
pub async fn delete(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> ApiResult {
    let reference = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    state.engine.remove_action(&reference);
    remember(&state, &reference, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
