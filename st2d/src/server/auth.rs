//! Credentials on API calls (tokens and API keys, StackStorm's order of precedence), tokens
//! issued by `POST /tokens`, and the caller each handler sees.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use st2_core::store::{ApiKeyRecord, Timestamp, TokenRecord};
use subtle::ConstantTimeEq;

use super::ApiState;
use super::error::ApiError;
use super::query::Params;

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// An `X-Auth-Token`.
    Token,
    /// An `St2-Api-Key`.
    ApiKey,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user name.
    pub user: String,
    /// Token or API key.
    pub method: Method,
    /// `header`, `query` or `cookie`.
    pub location: &'static str,
    /// When the token expires.
    pub token_expire: Option<Timestamp>,
}

impl Caller {
    /// Whether the caller may do admin things (without RBAC, everybody is an admin, as in
    /// StackStorm with RBAC off).
    pub fn is_admin(&self) -> bool {
        true
    }
}

/// Lower-case hex SHA-256 (how tokens and API keys are stored).
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The first credential present, in StackStorm's order.
fn credential(headers: &HeaderMap, query: &Params) -> Option<(Method, &'static str, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(t) = header("x-auth-token") {
        return Some((Method::Token, "header", t));
    }
    if let Some(k) = header("st2-api-key") {
        return Some((Method::ApiKey, "header", k));
    }
    if let Some(t) = query.get("x-auth-token") {
        return Some((Method::Token, "query", t.to_owned()));
    }
    if let Some(k) = query.get("st2-api-key") {
        return Some((Method::ApiKey, "query", k.to_owned()));
    }
    cookie(headers, "auth-token").map(|t| (Method::Token, "cookie", t))
}

/// Find who `headers`/`query` authenticate.
///
/// # Errors
/// 401 with StackStorm's messages.
pub async fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
    query: &Params,
) -> Result<Caller, ApiError> {
    let Some((method, location, secret)) = credential(headers, query) else {
        return Err(ApiError::unauthorized(
            "Unauthorized - One of Token or API key required.",
        ));
    };
    let store = state.engine.store();
    let hash = sha256_hex(&secret);
    match method {
        Method::Token => {
            let token = store.tokens().get_by_hash(&hash).await?;
            match token {
                Some(t) if t.expiry > store.clock().now() => Ok(Caller {
                    user: t.user,
                    method,
                    location,
                    token_expire: Some(t.expiry),
                }),
                Some(_) => Err(ApiError::unauthorized("Unauthorized - Token has expired.")),
                None => Err(ApiError::unauthorized("Unauthorized")),
            }
        }
        Method::ApiKey => {
            let key = store.api_keys().get_by_hash(&hash).await?;
            match key {
                // The lookup is by hash (so timing says nothing about the key itself); the
                // final comparison is constant-time anyway.
                Some(k) if bool::from(k.key_hash.as_bytes().ct_eq(hash.as_bytes())) => {
                    if !k.enabled {
                        return Err(ApiError::unauthorized(
                            "Unauthorized - API key is disabled.",
                        ));
                    }
                    Ok(Caller {
                        user: k.user,
                        method,
                        location,
                        token_expire: None,
                    })
                }
                _ => Err(ApiError::unauthorized(format!(
                    "Unauthorized - ApiKey with key_hash={hash} not found."
                ))),
            }
        }
    }
}

/// Middleware: reject requests without valid credentials; hand the [`Caller`] to handlers.
pub async fn require_auth(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.settings.auth {
        request.extensions_mut().insert(Caller {
            user: state.settings.anonymous_user.clone(),
            method: Method::Token,
            location: "header",
            token_expire: None,
        });
        return next.run(request).await;
    }
    let query = Params::parse(request.uri().query());
    match authenticate(&state, request.headers(), &query).await {
        Ok(caller) => {
            // As st2api, a token from a header or the query is also set as the `auth-token`
            // cookie (for the web UI), for as long as the token lives.
            let cookie = match (&caller.token_expire, caller.location) {
                (Some(expiry), "header" | "query") => {
                    credential(request.headers(), &query).map(|(_, _, token)| {
                        let left = (*expiry - state.engine.store().clock().now())
                            .num_seconds()
                            .max(0);
                        format!("auth-token={token}; Max-Age={left}; HttpOnly; Path=/")
                    })
                }
                _ => None,
            };
            request.extensions_mut().insert(caller);
            let mut response = next.run(request).await;
            if let Some(v) = cookie.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Issue a token for `user` valid `ttl` seconds; returns the plain token and its record.
///
/// # Errors
/// Store errors.
pub async fn issue_token(
    state: &ApiState,
    user: &str,
    ttl: u64,
) -> Result<(String, TokenRecord), ApiError> {
    let token = random_hex(16)?;
    let now = state.engine.store().clock().now();
    let record = TokenRecord {
        id: st2_core::store::new_id(),
        token_hash: sha256_hex(&token),
        user: user.to_owned(),
        expiry: now + chrono::TimeDelta::seconds(i64::try_from(ttl).unwrap_or(i64::MAX / 2)),
        metadata: Default::default(),
        created_at: now,
    };
    state.engine.store().tokens().create(&record).await?;
    Ok((token, record))
}

/// Create an API key for `user`; returns the plain key (shown once) and its record.
///
/// # Errors
/// Store errors.
pub async fn issue_api_key(
    state: &ApiState,
    user: &str,
    metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<(String, ApiKeyRecord), ApiError> {
    let key = random_hex(24)?;
    let record = ApiKeyRecord {
        id: st2_core::store::new_id(),
        key_hash: sha256_hex(&key),
        user: user.to_owned(),
        metadata,
        enabled: true,
        created_at: state.engine.store().clock().now(),
    };
    state.engine.store().api_keys().create(&record).await?;
    Ok((key, record))
}
