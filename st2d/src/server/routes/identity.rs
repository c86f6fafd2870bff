//! Who is calling: `POST /tokens` (st2auth), `POST /tokens/validate`, `GET /user`, API keys.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use st2_core::crypto::Secret;
use st2_core::engine::snapshot::isotime;
use st2_core::store::ApiKeyRecord;

use super::{json, listing};
use crate::server::auth::{self, Caller, Method, sha256_hex};
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_body, json_object, json_type, present};

const BAD_CREDENTIALS: &str = "Invalid or missing credentials";

/// `user:password` of a `Basic` Authorization header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Secret)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_owned(), Secret::new(password)))
}

/// `POST /tokens` — Basic auth, optional `{"ttl": N}` → 201 token.
pub async fn create_token(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let ttl = match json_body(&body)? {
        Value::Object(m) => match m.get("ttl") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::bad_request("\"ttl\" must be an integer >= 1"))?,
            ),
        },
        Value::Null => None,
        other => {
            return Err(ApiError::bad_request(format!(
                "The request body must be a JSON object, got: {}",
                json_type(&other)
            )));
        }
    };
    let max = state.settings.max_token_ttl;
    if let Some(t) = ttl
        && t as u64 > max
    {
        return Err(ApiError::bad_request(format!(
            "TTL specified {t} is greater than max allowed {max}."
        )));
    }
    let Some((user, password)) = basic_credentials(&headers) else {
        return Err(ApiError::unauthorized(BAD_CREDENTIALS));
    };
    let ok = state
        .auth_backend
        .authenticate(&user, &password)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "authentication backend failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The authentication backend is unavailable.",
            )
        })?;
    if !ok {
        tracing::info!(user = %user, "login refused");
        return Err(ApiError::unauthorized(BAD_CREDENTIALS));
    }
    let ttl = ttl.map_or(state.settings.token_ttl, |t| t as u64);
    let (token, record) = auth::issue_token(&state, &user, ttl).await?;
    tracing::info!(user = %user, "token issued");
    let mut response = json(
        StatusCode::CREATED,
        &json!({
            "id": record.id,
            "user": record.user,
            "token": token,
            "expiry": isotime(record.expiry),
            "metadata": {},
            "service": false,
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&state.settings.api_url) {
        response.headers_mut().insert("x-api-url", v);
    }
    Ok(response)
}

/// `POST /tokens/validate` — `{"token"}` → `{"valid": bool}`.
pub async fn validate_token(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let body = json_object(&body)?;
    let Some(token) = body.get("token").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("Token is not provided."));
    };
    let store = state.engine.store();
    let valid = store
        .tokens()
        .get_by_hash(&sha256_hex(token))
        .await?
        .is_some_and(|t| t.expiry > store.clock().now());
    Ok(json(StatusCode::OK, &json!({"valid": valid})))
}

/// `GET /user` (`st2 whoami`).
pub async fn whoami(Extension(caller): Extension<Caller>) -> Response {
    let mut authentication = json!({
        "method": match caller.method {
            Method::Token => "authentication token",
            Method::ApiKey => "API key",
        },
        "location": caller.location,
    });
    if let Some(t) = caller.token_expire {
        authentication["token_expire"] = json!(isotime(t));
    }
    json(
        StatusCode::OK,
        &json!({
            "username": caller.user,
            "authentication": authentication,
            "rbac": {"enabled": false, "roles": [], "is_admin": caller.is_admin()},
        }),
    )
}

/// `GET /apikeys` (*show_secrets* shows `key_hash`; limit 50).
pub async fn list_api_keys(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let (page, limit) = params.page(Some(50))?;
    let show = params.bool("show_secrets")?.unwrap_or(false) && caller.is_admin();
    let found = state.engine.store().api_keys().list(page).await?;
    let items = found
        .items
        .iter()
        .map(|k| projection.apply(present::api_key(k, show), &["id"]));
    Ok(listing(items, found.total, limit))
}

/// `POST /apikeys` — `{"user"?, "metadata"?}` → 201 with the key, shown only here.
pub async fn create_api_key(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let user = match body.get("user") {
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        _ => caller.user.clone(),
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"metadata\" must be an object, got: {}",
                json_type(other)
            )));
        }
    };
    let (key, record) = auth::issue_api_key(&state, &user, metadata).await?;
    let mut value = present::api_key(&record, true);
    value["key"] = json!(key);
    Ok(json(StatusCode::CREATED, &value))
}

async fn find_api_key(state: &ApiState, id_or_key: &str) -> Result<ApiKeyRecord, ApiError> {
    let keys = state.engine.store().api_keys();
    if let Some(k) = keys.get(id_or_key).await? {
        return Ok(k);
    }
    keys.get_by_hash(&sha256_hex(id_or_key))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("ApiKey with key or id \"{id_or_key}\" not found"),
            )
        })
}

/// `GET /apikeys/{id_or_key}`.
pub async fn get_api_key(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let show = params.bool("show_secrets")?.unwrap_or(false) && caller.is_admin();
    let record = find_api_key(&state, &key).await?;
    Ok(json(StatusCode::OK, &present::api_key(&record, show)))
}

/// `PUT /apikeys/{id_or_key}` — only `enabled` changes.
pub async fn update_api_key(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let record = find_api_key(&state, &key).await?;
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => record.enabled,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"enabled\" must be a boolean, got: {}",
                json_type(other)
            )));
        }
    };
    state
        .engine
        .store()
        .api_keys()
        .set_enabled(&record.id, enabled)
        .await?;
    let updated = ApiKeyRecord { enabled, ..record };
    Ok(json(StatusCode::OK, &present::api_key(&updated, false)))
}

/// `DELETE /apikeys/{id_or_key}` — 204.
pub async fn delete_api_key(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> ApiResult {
    let record = find_api_key(&state, &key).await?;
    state.engine.store().api_keys().delete(&record.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
