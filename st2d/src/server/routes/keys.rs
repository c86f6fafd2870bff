//! The datastore (`/v1/keys`): scopes (`system`, `user`, `all`, short or `st2kv.` names),
//! user scope, `prefix`, `decrypt`, TTLs and secrets (ciphertext unless decrypted).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use st2_core::datastore::{KeySelector, KeyWrite};
use st2_core::store::Page;

use super::json;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_object, json_type, present};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    System,
    User,
    All,
}

fn scope(text: Option<&str>, default: Scope) -> Result<Scope, ApiError> {
    match text {
        None => Ok(default),
        Some("system" | "st2kv.system") => Ok(Scope::System),
        Some("user" | "st2kv.user") => Ok(Scope::User),
        Some("all") => Ok(Scope::All),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid scope \"{other}\". Valid scopes are: system, user, all (or st2kv.system, \
             st2kv.user)"
        ))),
    }
}

/// The user whose user-scoped keys a call addresses: `user` when given (only admins may name
/// another user), else the caller.
fn key_user(requested: Option<&str>, caller: &Caller) -> Result<String, ApiError> {
    match requested {
        Some(u) if u != caller.user && !caller.is_admin() => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "\"user\" attribute can only be provided by admins when RBAC is enabled (got {u})"
            ),
        )),
        Some(u) => Ok(u.to_owned()),
        None => Ok(caller.user.clone()),
    }
}

fn selector(scope: Scope, user: String) -> KeySelector {
    match scope {
        Scope::User => KeySelector::User(user),
        _ => KeySelector::System,
    }
}

fn decrypt_allowed(params: &Params, caller: &Caller) -> Result<bool, ApiError> {
    let decrypt = params.bool("decrypt")?.unwrap_or(false);
    Ok(decrypt && caller.is_admin())
}

/// `GET /v1/keys` — a plain list (no `X-Total-Count`).
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let (page, _) = params.page(Some(100))?;
    let decrypt = decrypt_allowed(&params, &caller)?;
    let requested_user = params.get("user");
    let mut scope = scope(params.get("scope"), Scope::System)?;
    if requested_user.is_some() && scope == Scope::System {
        scope = Scope::User;
    }
    let user = key_user(requested_user, &caller)?;
    let prefix = params.get("prefix");
    let name = params.get("name");
    let datastore = state.engine.datastore();
    let mut selectors = Vec::new();
    if matches!(scope, Scope::System | Scope::All) {
        selectors.push(KeySelector::System);
    }
    if matches!(scope, Scope::User | Scope::All) {
        selectors.push(KeySelector::User(user));
    }
    let mut items = Vec::new();
    for sel in &selectors {
        let found = datastore
            .list(Some(sel), prefix, decrypt, Page::all())
            .await?;
        items.extend(
            found
                .items
                .iter()
                .filter(|kv| name.is_none_or(|n| kv.name == n))
                .map(present::key),
        );
    }
    let items: Vec<Value> = items
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit.map_or(usize::MAX, |l| l as usize))
        .collect();
    Ok(json(StatusCode::OK, &Value::Array(items)))
}

/// `GET /v1/keys/{name}` (*scope*, default system; *decrypt*; *user*).
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let decrypt = decrypt_allowed(&params, &caller)?;
    let requested_user = params.get("user");
    let mut scope = scope(params.get("scope"), Scope::System)?;
    if requested_user.is_some() {
        scope = Scope::User;
    }
    let user = key_user(requested_user, &caller)?;
    let sel = selector(scope, user);
    let found = state
        .engine
        .datastore()
        .get(&sel, &name, decrypt)
        .await?
        .ok_or_else(|| not_found(&sel, &name))?;
    Ok(json(StatusCode::OK, &present::key(&found)))
}

/// StackStorm's message, naming the stored name (`<user>:<name>` in user scope).
fn not_found(selector: &KeySelector, name: &str) -> ApiError {
    let scope = match selector {
        KeySelector::User(_) => "st2kv.user",
        KeySelector::System => "st2kv.system",
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "KeyValuePair with name: {} and scope: {scope} not found in db.",
            selector.stored_name(name)
        ),
    )
}

/// `PUT /v1/keys/{name}` — create or replace; 200.
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let value = match body.get("value") {
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"value\" must be a string, got: {}",
                json_type(other)
            )));
        }
        None => return Err(ApiError::bad_request("'value' is a required property")),
    };
    let flag = |f: &str| -> Result<bool, ApiError> {
        match body.get(f) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ApiError::bad_request(format!(
                "\"{f}\" must be a boolean, got: {}",
                json_type(other)
            ))),
        }
    };
    let secret = flag("secret")?;
    let encrypted = flag("encrypted")?;
    let ttl = match body.get("ttl") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request("\"ttl\" must be a positive integer"))?,
        ),
    };
    let requested_user = body.get("user").and_then(Value::as_str);
    let mut scope = scope(body.get("scope").and_then(Value::as_str), Scope::System)?;
    if scope == Scope::All {
        return Err(ApiError::bad_request(
            "Scope \"all\" is only valid for listing keys",
        ));
    }
    if requested_user.is_some() && scope == Scope::System {
        scope = Scope::User;
    }
    let user = key_user(requested_user, &caller)?;
    let write = KeyWrite {
        value,
        secret: secret || encrypted,
        encrypted,
        ttl,
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let stored = state
        .engine
        .datastore()
        .set(&selector(scope, user), &name, write)
        .await?;
    Ok(json(StatusCode::OK, &present::key(&stored)))
}

/// `DELETE /v1/keys/{name}` (*scope*, *user*) — 204, 404 when missing.
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let requested_user = params.get("user");
    let mut scope = scope(params.get("scope"), Scope::System)?;
    if requested_user.is_some() {
        scope = Scope::User;
    }
    let user = key_user(requested_user, &caller)?;
    let sel = selector(scope, user);
    state
        .engine
        .datastore()
        .delete(&sel, &name)
        .await?
        .ok_or_else(|| not_found(&sel, &name))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
