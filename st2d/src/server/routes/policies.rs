//! Policies and policy types (`st2 policy list/get`, `st2 policy-type list/get`), read from
//! the loaded content; policies created, replaced and deleted through the API (`st2 policy
//! create/update/delete`), kept in the data directory's `policies.json` and applied by the
//! scheduler from the next execution on.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use st2_core::engine::snapshot::content_id;
use st2_core::model::{Policy, PolicyType, policy_from_json};

use super::content::{list_of, one_of};
use super::json;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_object, rules_file};

const KEYS: &[&str] = &["id", "ref"];

/// The Python module StackStorm implements a policy type in (a required attribute of its
/// policy type objects).
fn module(name: &str) -> String {
    format!(
        "st2actions.policies.{}",
        match name {
            "concurrency.attr" => "concurrency_by_attr",
            other => other,
        }
    )
}

fn policy_type(t: &PolicyType) -> Value {
    json!({
        "id": content_id("policy_type", &t.reference),
        "uid": format!("policy_type:{}:{}", t.resource_type, t.name),
        "ref": t.reference,
        "name": t.name,
        "resource_type": t.resource_type,
        "description": t.description,
        "enabled": t.enabled,
        "module": module(&t.name),
        "parameters": t.parameters,
    })
}

fn policy(p: &Policy) -> Value {
    let mut out = json!({
        "id": content_id("policy", &p.reference),
        "uid": format!("policy:{}:{}", p.pack(), p.name),
        "ref": p.reference,
        "name": p.name,
        "pack": p.pack(),
        "enabled": p.enabled,
        "resource_ref": p.resource_ref,
        "policy_type": p.policy_type,
        "parameters": p.parameters,
        "metadata_file": p.origin.metadata_file,
    });
    if let Some(d) = &p.description {
        out["description"] = json!(d);
    }
    out
}

fn policy_types(state: &ApiState) -> Vec<Value> {
    let mut items: Vec<Value> = state
        .engine
        .catalog()
        .policy_types()
        .map(|t| policy_type(t))
        .collect();
    items.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));
    items
}

fn policies(state: &ApiState) -> Vec<Value> {
    let mut items: Vec<Value> = state
        .engine
        .catalog()
        .policies()
        .map(|p| policy(p))
        .collect();
    items.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));
    items
}

/// `GET /policytypes` (*resource_type*, *name*; limit 100).
pub async fn list_types(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    list_of(
        policy_types(&state),
        &Params::parse(q.as_deref()),
        &[("resource_type", "resource_type"), ("name", "name")],
        Some(100),
        KEYS,
    )
}

/// `GET /policytypes/{ref_or_id}`.
pub async fn get_type(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    one_of(
        policy_types(&state),
        &key,
        &Params::parse(q.as_deref()),
        KEYS,
    )
}

/// `GET /policies` (*pack*, *name*, *resource_ref*, *policy_type*; limit 100).
pub async fn list(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    list_of(
        policies(&state),
        &Params::parse(q.as_deref()),
        &[
            ("pack", "pack"),
            ("name", "name"),
            ("resource_ref", "resource_ref"),
            ("policy_type", "policy_type"),
        ],
        Some(100),
        KEYS,
    )
}

/// `GET /policies/{ref_or_id}`.
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    one_of(policies(&state), &key, &Params::parse(q.as_deref()), KEYS)
}

/// The ref of the policy whose ref or id is `key`.
fn find(state: &ApiState, key: &str) -> Option<String> {
    state
        .engine
        .catalog()
        .policies()
        .find(|p| p.reference == key || content_id("policy", &p.reference) == key)
        .map(|p| p.reference.clone())
}

async fn remember(state: &ApiState, reference: &str, body: Option<Value>) -> Result<(), ApiError> {
    if let Some(path) = &state.settings.policies_file {
        rules_file::record(path, reference, body)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

fn compile(state: &ApiState, body: &Value) -> Result<Policy, ApiError> {
    policy_from_json(body, &state.engine.catalog())
        .map_err(|errors| ApiError::bad_request(errors.join("; ")))
}

fn not_in_system_pack(pack: &str) -> Result<(), ApiError> {
    if crate::server::pack_admin::SYSTEM_PACKS.contains(&pack) {
        return Err(ApiError::bad_request(
            "Resources belonging to system level packs can't be manipulated",
        ));
    }
    Ok(())
}

fn shown(state: &ApiState, reference: &str) -> Value {
    state
        .engine
        .catalog()
        .policy(reference)
        .map(|p| policy(p))
        .unwrap_or(Value::Null)
}

/// `POST /policies` → 201 (409 for an existing ref).
pub async fn create(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let body = Value::Object(json_object(&body)?);
    let policy = compile(&state, &body)?;
    not_in_system_pack(policy.pack())?;
    let reference = policy.reference.clone();
    if state.engine.catalog().policy(&reference).is_some() {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            format!("Tried to save duplicate unique keys: policy \"{reference}\" already exists"),
        );
        e.conflict_id = Some(content_id("policy", &reference));
        return Err(e);
    }
    state.engine.put_policy(policy);
    remember(&state, &reference, Some(body)).await?;
    Ok(json(StatusCode::CREATED, &shown(&state, &reference)))
}

/// `PUT /policies/{ref_or_id}` — the whole policy (its `pack` defaults to the current one);
/// 200. A new `name` or `pack` renames it.
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    let old = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    let old_pack = state
        .engine
        .catalog()
        .policy(&old)
        .map(|p| p.pack().to_owned())
        .unwrap_or_default();
    not_in_system_pack(&old_pack)?;
    let mut body = json_object(&body)?;
    if body
        .get("pack")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        body.insert("pack".into(), Value::String(old_pack));
    }
    let body = Value::Object(body);
    let policy = compile(&state, &body)?;
    not_in_system_pack(policy.pack())?;
    let reference = policy.reference.clone();
    if reference != old && state.engine.catalog().policy(&reference).is_some() {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            format!("Tried to save duplicate unique keys: policy \"{reference}\" already exists"),
        );
        e.conflict_id = Some(content_id("policy", &reference));
        return Err(e);
    }
    state.engine.put_policy(policy);
    if reference != old {
        state.engine.remove_policy(&old);
        remember(&state, &old, None).await?;
    }
    remember(&state, &reference, Some(body)).await?;
    Ok(json(StatusCode::OK, &shown(&state, &reference)))
}

/// `DELETE /policies/{ref_or_id}` → 204.
pub async fn delete(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> ApiResult {
    let reference = find(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    if let Some(p) = state.engine.catalog().policy(&reference) {
        not_in_system_pack(p.pack())?;
    }
    state.engine.remove_policy(&reference);
    remember(&state, &reference, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
