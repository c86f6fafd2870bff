//! Webhooks: `POST /webhooks/st2` (any trigger by ref) and the custom URLs of rules on
//! `core.st2.webhook`; JSON, form and text bodies; 202 with the body echoed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use st2_core::EngineError;
use st2_core::engine::DispatchRequest;
use st2_core::rules::matcher::TriggerRef;

use super::json;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_type, present};

/// The longest a caller may wait for a webhook's executions, in seconds.
const MAX_WAIT_SECONDS: i64 = 300;

const WEBHOOK_TYPE: &str = "core.st2.webhook";

fn webhook_triggers(state: &ApiState) -> Vec<TriggerRef> {
    state
        .engine
        .parameterized_triggers()
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.trigger_type == WEBHOOK_TYPE)
        .collect()
}

fn url_of(t: &TriggerRef) -> &str {
    t.parameters
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_matches('/')
}

fn description(state: &ApiState) -> Option<String> {
    state
        .engine
        .catalog()
        .trigger_type(WEBHOOK_TYPE)
        .and_then(|t| t.description.clone())
}

/// `GET /webhooks` — every webhook trigger (always complete: the CLI reads `parameters.url`).
pub async fn list(State(state): State<Arc<ApiState>>) -> Response {
    let d = description(&state);
    let items = webhook_triggers(&state)
        .iter()
        .map(|t| present::trigger(t, d.as_deref()))
        .collect();
    json(StatusCode::OK, &Value::Array(items))
}

/// `GET /webhooks/{url}`.
pub async fn get_one(State(state): State<Arc<ApiState>>, Path(hook): Path<String>) -> ApiResult {
    let hook = hook.trim_matches('/').to_owned();
    let d = description(&state);
    let found = webhook_triggers(&state)
        .into_iter()
        .find(|t| url_of(t) == hook)
        .ok_or_else(|| ApiError::not_found(&hook))?;
    Ok(json(
        StatusCode::OK,
        &present::trigger(&found, d.as_deref()),
    ))
}

/// The body by content type: JSON (empty: `{}`), form (a dict of lists), text.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "" | "application/json" => crate::server::json_body(body),
        "application/x-www-form-urlencoded" => {
            let mut out: Map<String, Value> = Map::new();
            for (k, v) in form_urlencoded::parse(body) {
                let entry = out
                    .entry(k.into_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = entry {
                    a.push(Value::String(v.into_owned()));
                }
            }
            Ok(Value::Object(out))
        }
        "text/plain" => Ok(Value::String(String::from_utf8_lossy(body).into_owned())),
        _ => Err(ApiError::bad_request(format!(
            "Failed to parse request body: Unsupported Content-Type: \"{content_type}\""
        ))),
    }
}

fn dispatch_error(trigger: &str, e: EngineError) -> ApiError {
    match e {
        EngineError::UnknownTrigger(_) | EngineError::InvalidPayload { .. } => {
            ApiError::bad_request(format!(
                "Trigger payload validation failed and validation is enabled, not dispatching a \
                 trigger \"{trigger}\": {e}"
            ))
        }
        other => other.into(),
    }
}

/// `POST /webhooks/{hook}`.
///
/// With `?wait=true` (st2 #2475) the response waits until the rules processed the trigger
/// instances and the executions they started completed (at most `timeout` seconds, default
/// 30, at most 300): 200 `{"trigger_instances": [ids], "executions": [execution objects]}`,
/// or 504 with the same keys and a `faultstring` when time ran out.
pub async fn post(
    State(state): State<Arc<ApiState>>,
    Path(hook): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let wait = match params.bool("wait")? {
        Some(true) => {
            let seconds = params.int("timeout")?.unwrap_or(30);
            if !(1..=MAX_WAIT_SECONDS).contains(&seconds) {
                return Err(ApiError::bad_request(format!(
                    "Parameter \"timeout\" must be between 1 and {MAX_WAIT_SECONDS} seconds"
                )));
            }
            Some(std::time::Duration::from_secs(seconds as u64))
        }
        _ => None,
    };
    let hook = hook.trim_matches('/').to_owned();
    let parsed = parse_body(&headers, &body)?;
    let mut instances = Vec::new();
    // StackStorm's default tag for a webhook's trace: `webhook-<hook>-<uuid hex>`.
    let trace_tag = Some(
        headers
            .get("st2-trace-tag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!("webhook-{hook}-{}", crate::server::uuid4().replace('-', ""))
            }),
    );
    if hook == "st2" {
        let Value::Object(object) = &parsed else {
            return Err(ApiError::bad_request(format!(
                "Webhook body needs to be an object, got: {}",
                json_type(&parsed)
            )));
        };
        let Some(trigger) = object
            .get("trigger")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(ApiError::bad_request("Trigger not specified."));
        };
        let payload = match object.get("payload") {
            None | Some(Value::Null) => json!({}),
            Some(p) => p.clone(),
        };
        let mut request = DispatchRequest::new(trigger, payload);
        request.trace_tag = trace_tag;
        let ti = state
            .engine
            .dispatch_with(request)
            .await
            .map_err(|e| dispatch_error(trigger, e))?;
        instances.push(ti.id);
        return match wait {
            Some(timeout) => wait_for(&state, instances, timeout).await,
            None => Ok(json(StatusCode::ACCEPTED, &parsed)),
        };
    }
    let targets: Vec<TriggerRef> = webhook_triggers(&state)
        .into_iter()
        .filter(|t| url_of(t) == hook)
        .collect();
    if targets.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Webhook {hook} not registered with st2"),
        ));
    }
    let mut shown = Map::new();
    let mut lower = Map::new();
    for name in headers.keys() {
        let n = name.as_str();
        if matches!(
            n,
            "x-auth-token" | "st2-api-key" | "cookie" | "st2-trace-tag"
        ) {
            continue;
        }
        let value = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        shown.insert(header_case(n), json!(value));
        lower.insert(n.to_owned(), json!(value));
    }
    let payload = json!({"headers": shown, "headers_lower": lower, "body": parsed});
    for t in targets {
        let mut request = DispatchRequest::to_trigger(t, payload.clone());
        request.trace_tag = trace_tag.clone();
        let reference = request.trigger.clone();
        let ti = state
            .engine
            .dispatch_with(request)
            .await
            .map_err(|e| dispatch_error(&reference, e))?;
        instances.push(ti.id);
    }
    match wait {
        Some(timeout) => wait_for(&state, instances, timeout).await,
        None => Ok(json(StatusCode::ACCEPTED, &parsed)),
    }
}

/// Wait until the trigger instances are processed and their executions complete.
async fn wait_for(
    state: &ApiState,
    instances: Vec<String>,
    timeout: std::time::Duration,
) -> ApiResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut execution_ids = Vec::new();
    let mut timed_out = false;
    for ti in &instances {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match state.engine.wait_processed(ti, left).await {
            Ok((_, ids)) => execution_ids.extend(ids),
            Err(EngineError::WaitTimeout(_)) => timed_out = true,
            Err(e) => return Err(e.into()),
        }
    }
    let mut executions = Vec::new();
    for id in &execution_ids {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let record = match state.engine.wait(id, left).await {
            Ok(r) => Some(r),
            Err(EngineError::WaitTimeout(_)) => {
                timed_out = true;
                state.engine.get(id).await?
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(r) = record {
            executions.push(present::execution(&r, false, &state.settings.api_url));
        }
    }
    let mut body = json!({"trigger_instances": instances, "executions": executions});
    if timed_out {
        body["faultstring"] = json!(format!(
            "Timed out after {} s waiting for the triggered executions",
            timeout.as_secs()
        ));
        return Ok(json(StatusCode::GATEWAY_TIMEOUT, &body));
    }
    Ok(json(StatusCode::OK, &body))
}

/// `content-type` → `Content-Type` (HTTP/1 header names arrive lower-cased here).
fn header_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
