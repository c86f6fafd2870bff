//! Traces (`st2 trace list/get`): which trigger instances, rules and executions one chain of
//! events touched.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use st2_core::engine::snapshot::isotime;
use st2_core::store::{SortOrder, TraceComponent, TraceFilter, TraceRecord};

use super::{json, listing};
use crate::server::ApiState;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;

fn component(c: &TraceComponent) -> Value {
    json!({
        "object_id": c.object_id,
        "ref": c.reference,
        "updated_at": isotime(c.updated_at),
        "caused_by": c.caused_by.as_ref().map_or_else(
            || json!({}),
            |by| json!({"type": by.kind, "id": by.id}),
        ),
    })
}

/// StackStorm's trace uid is `trace:` and an opaque 32-digit hex digest (of the trace's
/// contents when it was built); here a digest of what never changes, so it is stable.
fn uid(t: &TraceRecord) -> String {
    let digest = Sha256::digest(format!(
        "{}\n{}\n{}",
        t.id,
        t.trace_tag,
        isotime(t.start_timestamp)
    ));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("trace:{hex}")
}

fn trace(t: &TraceRecord) -> Value {
    let list = |items: &[TraceComponent]| Value::Array(items.iter().map(component).collect());
    json!({
        "id": t.id,
        "uid": uid(t),
        "trace_tag": t.trace_tag,
        "trigger_instances": list(&t.trigger_instances),
        "rules": list(&t.rules),
        "action_executions": list(&t.action_executions),
        "start_timestamp": isotime(t.start_timestamp),
    })
}

/// `GET /traces` (*trace_tag*, *execution*, *rule*, *trigger_instance*, *id*, *sort_asc* /
/// *sort_desc*; newest first, limit 100).
pub async fn list(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let (page, limit) = params.page(Some(100))?;
    let sort = if params.bool("sort_asc")? == Some(true) {
        SortOrder::Ascending
    } else {
        SortOrder::Descending
    };
    params.bool("sort_desc")?;
    let text = |name: &str| params.get(name).map(str::to_owned);
    let filter = TraceFilter {
        ids: params.list("id"),
        trace_tag: text("trace_tag"),
        execution: text("execution"),
        rule: text("rule"),
        trigger_instance: text("trigger_instance"),
        sort,
    };
    let found = state.engine.store().traces().list(&filter, page).await?;
    let items = found
        .items
        .iter()
        .map(|t| projection.apply(trace(t), &["id"]));
    Ok(listing(items, found.total, limit))
}

/// `GET /traces/{id}`.
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let projection = Params::parse(q.as_deref()).projection()?;
    let found = state
        .engine
        .store()
        .traces()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    Ok(json(
        StatusCode::OK,
        &projection.apply(trace(&found), &["id"]),
    ))
}
