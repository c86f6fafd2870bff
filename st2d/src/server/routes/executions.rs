//! Executions: create (`st2 run`), list with filters, get (`last` too), output, children,
//! re-run, cancel (DELETE), pause/resume (PUT status), one attribute.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use st2_core::engine::RunRequest;
use st2_core::store::{
    ExecutionFilter, ExecutionRecord, ExecutionStatus, OutputType, Page, ParentFilter, SortOrder,
};

use super::content::parse_time;
use super::{json, listing};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_object, json_type, present};

pub(crate) fn show(state: &ApiState, r: &ExecutionRecord, show_secrets: bool) -> Value {
    present::execution(r, show_secrets, &state.settings.api_url)
}

pub(crate) fn show_secrets(params: &Params, caller: &Caller) -> Result<bool, ApiError> {
    Ok(params.bool("show_secrets")?.unwrap_or(false) && caller.is_admin())
}

/// The stored execution `id` (`last`: the newest).
async fn find(state: &ApiState, id: &str) -> Result<ExecutionRecord, ApiError> {
    if id == "last" {
        let newest = state
            .engine
            .list(&ExecutionFilter::default(), Page::first(1))
            .await?;
        return newest
            .items
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(id));
    }
    state
        .engine
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))
}

/// `GET /v1/executions`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    if let Some(bad) = projection
        .excluded()
        .iter()
        .find(|n| !matches!(n.as_str(), "result" | "trigger_instance" | "status"))
    {
        return Err(ApiError::bad_request(format!(
            "Invalid or unsupported exclude attribute specified: {bad}"
        )));
    }
    let (page, limit) = params.page(Some(100))?;
    let mut statuses = Vec::new();
    for s in params.list("status") {
        statuses.push(
            s.parse::<ExecutionStatus>()
                .map_err(|_| ApiError::bad_request(format!("Invalid status \"{s}\"")))?,
        );
    }
    let parent = match params.get("parent") {
        None => ParentFilter::Any,
        Some("null") | Some("None") => ParentFilter::TopLevel,
        Some(p) => ParentFilter::Of(p.to_owned()),
    };
    let mut sort = SortOrder::Descending;
    if params.has("sort_asc") {
        sort = SortOrder::Ascending;
    }
    if params.has("sort_desc") {
        sort = SortOrder::Descending;
    }
    if let Some(first) = params.list("sort").first() {
        sort = if first.starts_with('-') {
            SortOrder::Descending
        } else {
            SortOrder::Ascending
        };
    }
    let time = |name: &str| params.get(name).map(|t| parse_time(name, t)).transpose();
    let filter = ExecutionFilter {
        ids: params.list("id"),
        action: params.get("action").map(str::to_owned),
        statuses,
        parent,
        user: params.get("user").map(str::to_owned),
        runner: params.get("runner").map(str::to_owned),
        rule: params.get("rule").map(str::to_owned),
        trigger: params.get("trigger").map(str::to_owned),
        trigger_type: params.get("trigger_type").map(str::to_owned),
        trigger_instance: params.get("trigger_instance").map(str::to_owned),
        timestamp_gt: time("timestamp_gt")?,
        timestamp_lt: time("timestamp_lt")?,
        sort,
    };
    let secrets = show_secrets(&params, &caller)?;
    let found = state.engine.list(&filter, page).await?;
    let items = found
        .items
        .iter()
        .map(|r| projection.apply(show(&state, r, secrets), &["id"]));
    Ok(listing(items, found.total, limit))
}

/// `GET /v1/executions/{id}`.
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let record = find(&state, &id).await?;
    let value = show(&state, &record, show_secrets(&params, &caller)?);
    Ok(json(StatusCode::OK, &projection.apply(value, &["id"])))
}

/// `POST /v1/executions` — `{"action", "parameters", "user", "context", "delay", "notify"}`,
/// plus an `st2-context` header merged into the context.
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let body = json_object(&body)?;
    let action = match body.get("action") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        Some(other) if !other.is_null() => {
            return Err(ApiError::bad_request(format!(
                "\"action\" must be a string, got: {}",
                json_type(other)
            )));
        }
        _ => return Err(ApiError::bad_request("'action' is a required property")),
    };
    let parameters = object_field(&body, "parameters")?;
    let mut context = object_field(&body, "context")?;
    if let Some(extra) = headers.get("st2-context") {
        let text = extra
            .to_str()
            .map_err(|_| ApiError::bad_request("Invalid st2-context header"))?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => context.extend(m),
            _ => {
                return Err(ApiError::bad_request(
                    "Unable to convert st2-context from the headers into JSON object",
                ));
            }
        }
    }
    let user = match body.get("user") {
        Some(Value::String(u)) if !u.is_empty() => {
            if u != &caller.user && !caller.is_admin() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Only admins may run actions as another user",
                ));
            }
            u.clone()
        }
        _ => caller.user.clone(),
    };
    let delay = match body.get("delay") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::bad_request("\"delay\" must be a non-negative integer (milliseconds)")
        })?),
    };
    let trace = context.get("trace_context").cloned();
    let mut request = RunRequest::new(action, parameters);
    if let Some(Value::Object(t)) = trace {
        request.trace_tag = t
            .get("trace_tag")
            .and_then(Value::as_str)
            .map(str::to_owned);
        request.trace_id = t.get("id_").and_then(Value::as_str).map(str::to_owned);
    }
    request.context = context;
    request.user = Some(user);
    request.delay_ms = delay;
    if let Some(n) = body.get("notify").filter(|n| !n.is_null()) {
        request.notify = Some(n.clone());
    }
    let record = state.engine.run_with(request).await?;
    let value = show(&state, &record, show_secrets(&params, &caller)?);
    Ok(json(StatusCode::CREATED, &value))
}

fn object_field(body: &Map<String, Value>, name: &str) -> Result<Map<String, Value>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(ApiError::bad_request(format!(
            "\"{name}\" must be an object, got: {}",
            json_type(other)
        ))),
    }
}

/// `PUT /v1/executions/{id}` — `{"status": "pausing"|"resuming"|"canceling"|…}`.
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let record = find(&state, &id).await?;
    let status = body.get("status").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("The request body needs a \"status\" (pausing, resuming, canceling)")
    })?;
    if record.status.is_completed() {
        return Err(ApiError::bad_request(
            "Execution is already in completed state.",
        ));
    }
    let updated = match status {
        "pausing" | "paused" => state.engine.pause(&record.id, &caller.user).await,
        "resuming" | "running" if record.status != ExecutionStatus::Running => {
            state.engine.resume(&record.id, &caller.user).await
        }
        "canceling" | "canceled" => state.engine.cancel(&record.id, &caller.user).await,
        other => {
            return Err(ApiError::bad_request(format!(
                "Setting the status to \"{other}\" is not supported; use pausing, resuming or \
                 canceling"
            )));
        }
    }
    .map_err(|e| match e {
        st2_core::EngineError::InvalidState(m) => {
            ApiError::bad_request(format!("Failed updating execution. {m}"))
        }
        other => other.into(),
    })?;
    Ok(json(StatusCode::OK, &show(&state, &updated, false)))
}

/// `DELETE /v1/executions/{id}` — cancel. A completed execution answers 200 with a
/// `faultstring` (StackStorm's quirk the CLI relies on).
pub async fn cancel(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let record = find(&state, &id).await?;
    if record.status == ExecutionStatus::Canceled {
        return Ok(json(StatusCode::OK, &show(&state, &record, false)));
    }
    if record.status.is_completed() {
        return Ok(json(
            StatusCode::OK,
            &json!({"faultstring": format!(
                "Action cannot be canceled. State = {}.",
                record.status.as_str()
            )}),
        ));
    }
    let updated = state.engine.cancel(&record.id, &caller.user).await?;
    Ok(json(StatusCode::OK, &show(&state, &updated, false)))
}

/// `GET /v1/executions/{id}/output` — the output so far as text (*output_type*).
pub async fn output(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let wanted = match params.get("output_type") {
        None | Some("all") => None,
        Some(t) => Some(t.parse::<OutputType>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid output_type \"{t}\" (all, stdout, stderr, output)"
            ))
        })?),
    };
    let record = find(&state, &id).await?;
    let chunks = state.engine.output(&record.id).await?;
    let text: String = chunks
        .iter()
        .filter(|c| wanted.is_none_or(|w| c.chunk.output_type == w))
        .map(|c| c.chunk.data.as_str())
        .collect();
    Ok((
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /v1/executions/{id}/children` (*depth*, default -1: all descendants).
pub async fn children(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let depth = params.int("depth")?.unwrap_or(-1);
    let secrets = show_secrets(&params, &caller)?;
    let root = find(&state, &id).await?;
    let mut out = Vec::new();
    let mut level = root.children.clone();
    let mut current = 1;
    while !level.is_empty() && (depth < 0 || current <= depth) {
        let mut next = Vec::new();
        for child in level {
            if let Some(r) = state.engine.get(&child).await? {
                next.extend(r.children.iter().cloned());
                out.push(show(&state, &r, secrets));
            }
        }
        level = next;
        current += 1;
        if out.len() > 100_000 {
            break;
        }
    }
    Ok(json(StatusCode::OK, &Value::Array(out)))
}

/// `POST /v1/executions/{id}/re_run` — `{"parameters", "tasks", "reset", "user", "delay"}`.
pub async fn re_run(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let parameters = object_field(&body, "parameters")?;
    let names = |name: &str| -> Result<Vec<String>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::bad_request(format!("\"{name}\" must be a list of task names"))
                    })
                })
                .collect(),
            Some(_) => Err(ApiError::bad_request(format!(
                "\"{name}\" must be a list of task names"
            ))),
        }
    };
    let tasks = names("tasks")?;
    let reset = names("reset")?;
    let delay_ms =
        match body.get("delay") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::bad_request("\"delay\" must be a number of milliseconds")
            })?)
            .filter(|d| *d > 0),
        };
    let original = find(&state, &id).await?;
    let user = match body.get("user") {
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        _ => caller.user.clone(),
    };
    let record = state
        .engine
        .re_run_with(
            &original.id,
            st2_core::engine::ReRunRequest {
                parameters,
                no_merge: false,
                user: Some(user),
                tasks,
                reset,
                delay_ms,
            },
        )
        .await?;
    Ok(json(StatusCode::CREATED, &show(&state, &record, false)))
}

/// `GET /v1/executions/{id}/attribute/{attribute}`.
pub async fn attribute(
    State(state): State<Arc<ApiState>>,
    Path((id, attribute)): Path<(String, String)>,
) -> ApiResult {
    let record = find(&state, &id).await?;
    let value = show(&state, &record, false);
    let found = value.get(&attribute).cloned().unwrap_or(Value::Null);
    Ok(json(StatusCode::OK, &found))
}

/// `GET /v1/executions/{id}/result` (*download*, *compress*, *pretty_format*): the raw result
/// as `text/json`, as a file to save with `download`, gzipped with `compress`.
pub async fn result(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let download = params.bool("download")?.unwrap_or(false);
    let compress = params.bool("compress")?.unwrap_or(false);
    let pretty = params.bool("pretty_format")?.unwrap_or(false);
    let record = find(&state, &id).await?;
    let text = if pretty {
        serde_json::to_string_pretty(&record.result)
    } else {
        serde_json::to_string(&record.result)
    }
    .map_err(ApiError::internal)?;
    let mut body = text.into_bytes();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/json"),
    );
    if download {
        let name = format!(
            "execution_{}_result.json{}",
            record.id,
            if compress { ".gz" } else { "" }
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("attachment; filename={name}")) {
            headers.insert(axum::http::header::CONTENT_DISPOSITION, v);
        }
    }
    if compress {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&body).map_err(ApiError::internal)?;
        body = encoder.finish().map_err(ApiError::internal)?;
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-gzip"),
        );
        headers.insert(
            axum::http::header::CONTENT_ENCODING,
            axum::http::HeaderValue::from_static("gzip"),
        );
    }
    Ok((StatusCode::OK, headers, body).into_response())
}
