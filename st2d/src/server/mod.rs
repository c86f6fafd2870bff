//! `st2d serve`: StackStorm's REST API (st2api), auth (st2auth) and webhooks over one
//! [`Engine`], as an axum [`Router`] that tests drive without sockets.
//!
//! Every route is served under all of StackStorm's prefixes, on every listener: `/v1/…`,
//! `/…`, `/api/v1/…`, `/auth/v1/…`, `/auth/…`, `/stream/v1/…`, and the legacy
//! `/actionexecutions…` for executions. One trailing slash is ignored. Errors are
//! `{"faultstring": …}`; every response carries `X-Request-ID` and CORS headers.
//!
//! ```text
//! request ─► frame (request id, CORS, OPTIONS, path normalisation, JSON errors, log)
//!         ─► routes ─► require_auth (all but POST /tokens) ─► handler ─► Engine
//! ```

pub mod auth;
pub mod config;
pub mod error;
pub mod htpasswd;
pub mod pack_admin;
pub mod present;
pub mod query;
pub mod routes;
pub mod rules_file;
pub mod serve;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use st2_core::Engine;
use st2_core::auth::AuthBackend;

use error::ApiError;

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Require credentials (StackStorm's `auth.enable`, on by default).
    pub auth: bool,
    /// The user requests run as when auth is off.
    pub anonymous_user: String,
    /// Token lifetime when `POST /tokens` asks for none, in seconds (`auth.token_ttl`).
    pub token_ttl: u64,
    /// The longest lifetime a caller may ask for (`auth.service_token_ttl` analogue).
    pub max_token_ttl: u64,
    /// Origins CORS answers for (the first one when the request's is not listed).
    pub allowed_origins: Vec<String>,
    /// Largest request body, in bytes (413 above).
    pub body_limit: usize,
    /// The public API URL (`X-API-URL` on tokens, `web_url` base).
    pub api_url: String,
    /// Where rules changed through the API are kept across restarts (`None`: not kept).
    pub rules_file: Option<std::path::PathBuf>,
    /// Where actions changed through the API are kept across restarts (`None`: not kept).
    pub actions_file: Option<std::path::PathBuf>,
    /// Where action aliases changed through the API are kept across restarts (`None`: not
    /// kept).
    pub aliases_file: Option<std::path::PathBuf>,
    /// Where policies changed through the API are kept across restarts (`None`: not kept).
    pub policies_file: Option<std::path::PathBuf>,
    /// Where sensors enabled or disabled through the API are kept across restarts (`None`:
    /// not kept).
    pub sensors_file: Option<std::path::PathBuf>,
    /// What `POST /packs/register` loads (`None`: registering is refused).
    pub load: Option<st2_core::LoadOptions>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            auth: true,
            anonymous_user: "st2admin".into(),
            token_ttl: 86_400,
            max_token_ttl: 86_400,
            allowed_origins: vec![
                "http://127.0.0.1:3000".into(),
                "http://localhost:3000".into(),
            ],
            body_limit: 10 * 1024 * 1024,
            api_url: "http://127.0.0.1:9101/v1".into(),
            rules_file: None,
            actions_file: None,
            aliases_file: None,
            policies_file: None,
            sensors_file: None,
            load: None,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    /// The engine.
    pub engine: Engine,
    /// Who may log in.
    pub auth_backend: Arc<dyn AuthBackend>,
    /// Settings.
    pub settings: ApiSettings,
    /// What runs `packs.install` / `packs.uninstall`; [`router`] connects it to this state.
    pub pack_admin: Arc<pack_admin::PackAdmin>,
}

/// The whole HTTP application: every route under every prefix.
pub fn router(state: Arc<ApiState>) -> Router {
    state.pack_admin.attach(&state);
    let limit = state.settings.body_limit;
    let inner = routes::routes(state.clone())
        .fallback(|| async { ApiError::no_route() })
        .layer(DefaultBodyLimit::max(limit));
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn_with_state(state, frame))
}

/// StackStorm's path families mapped onto `/v1/…`, one trailing slash dropped.
pub fn normalize_path(path: &str) -> String {
    let mut p = if path.len() > 1 && path.ends_with('/') {
        &path[..path.len() - 1]
    } else {
        path
    };
    for prefix in ["/api", "/auth"] {
        if p == prefix {
            p = "/";
        } else if let Some(rest) = p.strip_prefix(prefix)
            && rest.starts_with('/')
        {
            p = rest;
        }
    }
    if let Some(rest) = p.strip_prefix("/stream")
        && (rest == "/v1" || rest.starts_with("/v1/"))
    {
        p = rest;
    }
    let mut out = if p == "/v1" || p.starts_with("/v1/") {
        p.to_owned()
    } else if p == "/" {
        "/v1".to_owned()
    } else {
        format!("/v1{p}")
    };
    if let Some(rest) = out.strip_prefix("/v1/actionexecutions")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        out = format!("/v1/executions{rest}");
    }
    out
}

fn request_id(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(uuid4)
}

/// A random UUID4 string.
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        return st2_core::store::new_id();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Request id, CORS, OPTIONS, path normalisation, JSON errors and the access log.
async fn frame(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let origin = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = request.method().clone();
    let original_path = request.uri().path().to_owned();
    let mut response = if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        let path = normalize_path(&original_path);
        let target = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(uri) = target.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
        next.run(request).await
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large.".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "The method is not allowed for the requested URL.".to_owned()
            }
            s => s.canonical_reason().unwrap_or("Error").to_owned(),
        };
        let mut fresh = error::fault(status, &message);
        for (k, v) in response.headers() {
            if k != CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
                fresh.headers_mut().insert(k.clone(), v.clone());
            }
        }
        response = fresh;
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    let allowed = &state.settings.allowed_origins;
    let allow_origin = match &origin {
        Some(o) if allowed.iter().any(|a| a == o || a == "*") => o.clone(),
        _ => allowed.first().cloned().unwrap_or_else(|| "null".into()),
    };
    if let Ok(v) = HeaderValue::from_str(&allow_origin) {
        headers.insert("access-control-allow-origin", v);
    }
    for (k, v) in [
        (
            "access-control-allow-methods",
            "GET,POST,PUT,DELETE,OPTIONS",
        ),
        (
            "access-control-allow-headers",
            "Content-Type,Authorization,X-Auth-Token,St2-Api-Key,X-Request-ID",
        ),
        (
            "access-control-expose-headers",
            "Content-Type,X-Limit,X-Total-Count,X-Request-ID",
        ),
        ("access-control-allow-credentials", "true"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    // The path only: query strings may carry credentials.
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %original_path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Parse a JSON request body: empty means `{}`; too deep or malformed is a 400.
///
/// # Errors
/// 400 `Failed to parse request body: …`.
pub fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Failed to parse request body: {e}")))
}

/// A JSON object body (`null` and empty count as `{}`).
///
/// # Errors
/// 400 when the body is not an object.
pub fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match json_body(body)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(ApiError::bad_request(format!(
            "The request body must be a JSON object, got: {}",
            json_type(&other)
        ))),
    }
}

/// Python's type name of a JSON value, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn every_prefix_maps_to_v1() {
        for (from, to) in [
            ("/v1/actions", "/v1/actions"),
            ("/v1/actions/", "/v1/actions"),
            ("/actions", "/v1/actions"),
            ("/api/v1/actions/core.local", "/v1/actions/core.local"),
            ("/api/v1/", "/v1"),
            ("/auth/v1/tokens", "/v1/tokens"),
            ("/auth/tokens", "/v1/tokens"),
            ("/tokens", "/v1/tokens"),
            ("/stream/v1/stream", "/v1/stream"),
            ("/stream", "/v1/stream"),
            ("/v1/actionexecutions/abc", "/v1/executions/abc"),
            ("/actionexecutions", "/v1/executions"),
            ("/", "/v1"),
            ("/v1/webhooks/api/x", "/v1/webhooks/api/x"),
        ] {
            assert_eq!(normalize_path(from), to, "{from}");
        }
    }
}
