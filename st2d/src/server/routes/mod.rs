//! The routes, by resource. Paths here are the normalised `/v1/…` forms.

mod actions;
mod content;
mod executions;
mod identity;
mod inquiries;
mod keys;
mod metrics;
pub(crate) mod packs;
mod policies;
mod reactor;
mod rules;
mod stream;
mod traces;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::ApiState;
use super::auth::require_auth;

/// Every route; all but `POST /v1/tokens` need credentials.
pub fn routes(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
        .route("/v1", get(content::root))
        .route("/v1/user", get(identity::whoami))
        .route("/v1/tokens/validate", post(identity::validate_token))
        .route(
            "/v1/apikeys",
            get(identity::list_api_keys).post(identity::create_api_key),
        )
        .route(
            "/v1/apikeys/{id_or_key}",
            get(identity::get_api_key)
                .put(identity::update_api_key)
                .delete(identity::delete_api_key),
        )
        .route("/v1/runnertypes", get(content::list_runners))
        .route("/v1/runnertypes/{name_or_id}", get(content::get_runner))
        .route(
            "/v1/actions",
            get(content::list_actions).post(actions::create),
        )
        .route(
            "/v1/actions/{ref_or_id}",
            get(content::get_action)
                .put(actions::update)
                .delete(actions::delete),
        )
        .route(
            "/v1/actions/views/overview",
            get(content::list_actions_overview),
        )
        .route(
            "/v1/actions/views/overview/{ref_or_id}",
            get(content::get_action_overview),
        )
        .route(
            "/v1/actions/views/parameters/{ref_or_id}",
            get(content::action_parameters),
        )
        .route(
            "/v1/actions/views/entry_point/{ref_or_id}",
            get(content::action_entry_point),
        )
        .route("/v1/packs", get(content::list_packs))
        .route("/v1/packs/{ref_or_id}", get(content::get_pack))
        .route("/v1/packs/register", post(packs::register))
        .route("/v1/packs/install", post(packs::install))
        .route("/v1/packs/uninstall", post(packs::uninstall))
        .route("/v1/triggertypes", get(content::list_trigger_types))
        .route(
            "/v1/triggertypes/{ref_or_id}",
            get(content::get_trigger_type),
        )
        .route("/v1/triggers", get(content::list_triggers))
        .route("/v1/triggers/{ref_or_id}", get(content::get_trigger))
        .route("/v1/triggerinstances", get(content::list_trigger_instances))
        .route(
            "/v1/triggerinstances/{id}",
            get(content::get_trigger_instance),
        )
        .route("/v1/rules", get(content::list_rules).post(rules::create))
        .route(
            "/v1/rules/{ref_or_id}",
            get(content::get_rule)
                .put(rules::update)
                .delete(rules::delete),
        )
        .route("/v1/ruleenforcements", get(reactor::list_enforcements))
        .route(
            "/v1/ruleenforcements/views",
            get(reactor::list_enforcements),
        )
        .route("/v1/ruleenforcements/{id}", get(reactor::get_enforcement))
        .route(
            "/v1/ruleenforcements/views/{id}",
            get(reactor::get_enforcement),
        )
        .route("/v1/ruletypes", get(reactor::list_rule_types))
        .route("/v1/ruletypes/{id}", get(reactor::get_rule_type))
        .route("/v1/sensortypes", get(reactor::list_sensor_types))
        .route("/v1/sensortypes/{ref_or_id}", get(reactor::get_sensor_type))
        .route("/v1/service_registry/groups", get(reactor::service_groups))
        .route(
            "/v1/service_registry/groups/{group_id}/members",
            get(reactor::service_members),
        )
        .route("/v1/timers", get(reactor::list_timers))
        .route("/v1/timers/{ref_or_id}", get(reactor::get_timer))
        .route(
            "/v1/executions",
            get(executions::list).post(executions::create),
        )
        .route(
            "/v1/executions/{id}",
            get(executions::get_one)
                .put(executions::update)
                .delete(executions::cancel),
        )
        .route("/v1/executions/{id}/output", get(stream::output))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/executions/{id}/result", get(executions::result))
        .route("/v1/executions/{id}/children", get(executions::children))
        .route("/v1/executions/{id}/re_run", post(executions::re_run))
        .route(
            "/v1/executions/{id}/attribute/{attribute}",
            get(executions::attribute),
        )
        .route("/v1/keys", get(keys::list))
        .route(
            "/v1/keys/{name}",
            get(keys::get_one).put(keys::put).delete(keys::delete),
        )
        .route("/v1/inquiries", get(inquiries::list))
        .route(
            "/v1/inquiries/{id}",
            get(inquiries::get_one).put(inquiries::respond),
        )
        .route("/v1/traces", get(traces::list))
        .route("/v1/traces/{id}", get(traces::get_one))
        .route("/v1/policytypes", get(policies::list_types))
        .route("/v1/policytypes/{ref_or_id}", get(policies::get_type))
        .route("/v1/policies", get(policies::list).post(policies::create))
        .route(
            "/v1/policies/{ref_or_id}",
            get(policies::get_one)
                .put(policies::update)
                .delete(policies::delete),
        )
        .route("/v1/metrics", get(metrics::metrics))
        .route("/v1/webhooks", get(webhooks::list))
        .route(
            "/v1/webhooks/{*hook}",
            get(webhooks::get_one).post(webhooks::post),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    Router::new()
        .route("/v1/tokens", post(identity::create_token))
        .merge(protected)
        .with_state(state)
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A list with `X-Total-Count` (and `X-Limit` when a limit applied).
pub(crate) fn listing(items: Vec<Value>, total: u64, limit: Option<u64>) -> Response {
    let mut response = json(StatusCode::OK, &Value::Array(items));
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    if let Some(l) = limit {
        headers.insert("x-limit", HeaderValue::from(l));
    }
    response
}
