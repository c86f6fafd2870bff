//! Policies and policy types (`st2 policy list/get`, `st2 policy-type list/get`), read from
//! the loaded content.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};
use st2_core::engine::snapshot::content_id;
use st2_core::model::{Policy, PolicyType};

use super::content::{list_of, one_of};
use crate::server::ApiState;
use crate::server::error::ApiResult;
use crate::server::query::Params;

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
