//! Inquiries (`st2 inquiry list/get/respond`): the questions `core.ask` runs leave pending.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use st2_core::EngineError;
use st2_core::store::{InquiryRecord, InquiryStatus};

use super::{json, listing};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_object, json_type};

/// An inquiry as StackStorm's API answers it: the ask's parameters, keyed by the execution id.
fn inquiry(r: &InquiryRecord) -> Value {
    json!({
        "id": r.id,
        "route": r.route,
        "ttl": r.ttl,
        "users": r.users,
        "roles": r.roles,
        "schema": r.schema,
    })
}

/// The inquiry `id`, if it can still be answered. An execution that is no inquiry is a 400,
/// as in StackStorm (its inquiries are executions); an unknown id a 404.
async fn pending(state: &ApiState, id: &str) -> Result<InquiryRecord, ApiError> {
    let store = state.engine.store();
    let Some(found) = store.inquiries().get(id).await? else {
        return Err(match store.executions().get(id).await? {
            Some(_) => {
                ApiError::bad_request(format!("Action execution \"{id}\" is not an inquiry."))
            }
            None => ApiError::not_found(id),
        });
    };
    match found.status {
        InquiryStatus::Pending => Ok(found),
        InquiryStatus::Timeout => Err(ApiError::bad_request(format!(
            "Inquiry \"{id}\" timed out and cannot be responded to."
        ))),
        _ => Err(ApiError::bad_request(format!(
            "Inquiry \"{id}\" has already been responded to."
        ))),
    }
}

/// `GET /inquiries` — the pending ones, newest first (limit 20).
pub async fn list(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let (page, limit) = params.page(Some(20))?;
    let found = state
        .engine
        .store()
        .inquiries()
        .list(Some(InquiryStatus::Pending), page)
        .await?;
    let items = found
        .items
        .iter()
        .map(|r| projection.apply(inquiry(r), &["id"]));
    Ok(listing(items, found.total, limit))
}

/// `GET /inquiries/{id}` — 400 once it is answered or timed out.
pub async fn get_one(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    let found = pending(&state, &id).await?;
    Ok(json(StatusCode::OK, &inquiry(&found)))
}

/// `PUT /inquiries/{id}` `{"id", "response": {…}}` → `{"id", "response"}`.
pub async fn respond(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let response = match body.get("response") {
        Some(Value::Object(r)) => Value::Object(r.clone()),
        None => {
            return Err(ApiError::bad_request("'response' is a required property"));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "'response' must be an object, got: {}",
                json_type(other)
            )));
        }
    };
    let found = pending(&state, &id).await?;
    if !found.users.is_empty() && !found.users.contains(&caller.user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "User \"{}\" does not have permission to respond to inquiry \"{id}\".",
                caller.user
            ),
        ));
    }
    match state
        .engine
        .respond_inquiry(&id, response.clone(), &caller.user)
        .await
    {
        Ok(_) => Ok(json(
            StatusCode::OK,
            &json!({"id": id, "response": response}),
        )),
        Err(EngineError::InvalidState(m)) => Err(ApiError::bad_request(m)),
        Err(e) => Err(e.into()),
    }
}
