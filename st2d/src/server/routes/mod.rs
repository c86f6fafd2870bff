//! The routes, by resource. Paths here are the normalised `/v1/…` forms.

mod actions;
pub(crate) mod aliases;
mod content;
mod executions;
mod identity;
mod inquiries;
mod keys;
mod metrics;
pub mod openapi;
pub(crate) mod packs;
mod policies;
mod reactor;
mod rules;
mod stream;
mod traces;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::Value;

use super::ApiState;
use super::auth::require_auth;
use openapi::{LIST, Op, PROJECT};

/// One route: its documentation and its handler.
#[derive(Debug)]
pub struct Route {
    /// Method, path and what the OpenAPI document says of it.
    pub op: Op,
    /// The handler, for `op.method` only.
    pub handler: MethodRouter<Arc<ApiState>>,
}

fn r<H, T>(op: Op, handler: H) -> Route
where
    H: Handler<T, Arc<ApiState>>,
    T: 'static,
{
    let filter = match op.method {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    };
    Route {
        handler: on(filter, handler),
        op,
    }
}

/// Every route, with its documentation: the router and `GET /v1/openapi.json` are both built
/// from this table. Paths are the normalised `/v1/…` forms.
#[rustfmt::skip]
pub fn table() -> Vec<Route> {
    vec![
        r(Op::post("/v1/tokens", "Create a token (Basic auth)").body("TokenRequest").created("Token").public(), identity::create_token),
        r(Op::get("/v1", "API version").one("Root"), content::root),
        r(Op::get("/v1/openapi.json", "This OpenAPI document").one("OpenApi"), openapi::serve),
        r(Op::get("/v1/user", "The authenticated user").one("User"), identity::whoami),
        r(Op::post("/v1/tokens/validate", "Check a token").body("TokenValidationRequest").one("TokenValidation"), identity::validate_token),
        r(Op::get("/v1/apikeys", "List API keys").q(LIST).q(&[("show_secrets", "boolean")]).list("ApiKey"), identity::list_api_keys),
        r(Op::post("/v1/apikeys", "Create an API key").body("ApiKey").created("ApiKey"), identity::create_api_key),
        r(Op::get("/v1/apikeys/{id_or_key}", "One API key").q(&[("show_secrets", "boolean")]).one("ApiKey"), identity::get_api_key),
        r(Op::put("/v1/apikeys/{id_or_key}", "Update an API key").body("ApiKey").one("ApiKey"), identity::update_api_key),
        r(Op::delete("/v1/apikeys/{id_or_key}", "Delete an API key"), identity::delete_api_key),
        r(Op::get("/v1/runnertypes", "List runner types").q(LIST).filters(&["name"]).list("RunnerType"), content::list_runners),
        r(Op::get("/v1/runnertypes/{name_or_id}", "One runner type").q(PROJECT).one("RunnerType"), content::get_runner),
        r(Op::get("/v1/actions", "List actions").q(LIST).filters(&["pack", "name", "ref"]).list("Action"), content::list_actions),
        r(Op::post("/v1/actions", "Create an action").body("Action").created("Action"), actions::create),
        r(Op::get("/v1/actions/{ref_or_id}", "One action").q(PROJECT).one("Action"), content::get_action),
        r(Op::put("/v1/actions/{ref_or_id}", "Replace an action").body("Action").one("Action"), actions::update),
        r(Op::delete("/v1/actions/{ref_or_id}", "Delete an action"), actions::delete),
        r(Op::get("/v1/actions/views/overview", "List actions (overview)").q(LIST).filters(&["pack", "name"]).list("Action"), content::list_actions_overview),
        r(Op::get("/v1/actions/views/overview/{ref_or_id}", "One action (overview)").q(PROJECT).one("Action"), content::get_action_overview),
        r(Op::get("/v1/actions/views/parameters/{ref_or_id}", "An action's merged parameters").one("ActionParameters"), content::action_parameters),
        r(Op::get("/v1/actions/views/entry_point/{ref_or_id}", "An action's entry point file").text(), content::action_entry_point),
        r(Op::get("/v1/actionalias", "List action aliases").q(LIST).filters(&["pack", "name"]).list("ActionAlias"), aliases::list),
        r(Op::post("/v1/actionalias", "Create an action alias").body("ActionAlias").created("ActionAlias"), aliases::create),
        r(Op::post("/v1/actionalias/match", "The alias a command matches").body("ActionAliasMatchRequest").one("ActionAliasMatch"), aliases::match_command),
        r(Op::get("/v1/actionalias/help", "Help strings of the enabled aliases").filters(&["pack", "filter"]).q(&[("limit", "integer"), ("offset", "integer")]).one("ActionAliasHelp"), aliases::help),
        r(Op::get("/v1/actionalias/{ref_or_id}", "One action alias").q(PROJECT).one("ActionAlias"), aliases::get_one),
        r(Op::put("/v1/actionalias/{ref_or_id}", "Replace an action alias").body("ActionAlias").one("ActionAlias"), aliases::update),
        r(Op::delete("/v1/actionalias/{ref_or_id}", "Delete an action alias"), aliases::delete),
        r(Op::post("/v1/aliasexecution", "Run an alias's action for a command").q(&[("show_secrets", "boolean")]).body("AliasExecutionRequest").created("AliasExecution"), aliases::execute),
        r(Op::post("/v1/aliasexecution/match_and_execute", "Match a command and run the alias's action").q(&[("show_secrets", "boolean")]).body("AliasMatchAndExecuteRequest").created("AliasExecutionResults"), aliases::match_and_execute),
        r(Op::get("/v1/packs", "List packs").q(LIST).filters(&["name", "ref"]).list("Pack"), content::list_packs),
        r(Op::get("/v1/packs/{ref_or_id}", "One pack").q(PROJECT).one("Pack"), content::get_pack),
        r(Op::post("/v1/packs/register", "Load packs from disk again").body("PackRegisterRequest").one("PackRegisterResult"), packs::register),
        r(Op::post("/v1/packs/install", "Install packs from local paths or git URLs").body("PackInstallRequest").accepted("ExecutionId"), packs::install),
        r(Op::post("/v1/packs/uninstall", "Uninstall packs").body("PackUninstallRequest").accepted("ExecutionId"), packs::uninstall),
        r(Op::get("/v1/triggertypes", "List trigger types").q(LIST).filters(&["pack", "name"]).list("TriggerType"), content::list_trigger_types),
        r(Op::get("/v1/triggertypes/{ref_or_id}", "One trigger type").q(PROJECT).one("TriggerType"), content::get_trigger_type),
        r(Op::get("/v1/triggers", "List triggers").list("Trigger"), content::list_triggers),
        r(Op::get("/v1/triggers/{ref_or_id}", "One trigger").one("Trigger"), content::get_trigger),
        r(Op::get("/v1/triggerinstances", "List trigger instances").q(LIST).filters(&["trigger", "trigger_type"]).list("TriggerInstance"), content::list_trigger_instances),
        r(Op::get("/v1/triggerinstances/{id}", "One trigger instance").q(PROJECT).one("TriggerInstance"), content::get_trigger_instance),
        r(Op::post("/v1/triggerinstances/{id}/re_emit", "Dispatch a trigger instance's trigger again").one("ReEmitResult"), content::re_emit_trigger_instance),
        r(Op::post("/v1/triggerinstances/{id}/re_send", "Dispatch a trigger instance's trigger again (alias of re_emit)").one("ReEmitResult"), content::re_emit_trigger_instance),
        r(Op::get("/v1/rules", "List rules").q(LIST).filters(&["pack", "name", "action", "trigger"]).q(&[("enabled", "boolean")]).list("Rule"), content::list_rules),
        r(Op::post("/v1/rules", "Create a rule").body("Rule").created("Rule"), rules::create),
        r(Op::get("/v1/rules/{ref_or_id}", "One rule").q(PROJECT).one("Rule"), content::get_rule),
        r(Op::put("/v1/rules/{ref_or_id}", "Replace a rule").body("Rule").one("Rule"), rules::update),
        r(Op::delete("/v1/rules/{ref_or_id}", "Delete a rule"), rules::delete),
        r(Op::get("/v1/ruleenforcements", "List rule enforcements").q(LIST).filters(&["rule_ref", "rule_id", "execution", "trigger_instance"]).list("RuleEnforcement"), reactor::list_enforcements),
        r(Op::get("/v1/ruleenforcements/views", "List rule enforcements (views)").q(LIST).filters(&["rule_ref", "rule_id", "execution", "trigger_instance"]).list("RuleEnforcement"), reactor::list_enforcements),
        r(Op::get("/v1/ruleenforcements/{id}", "One rule enforcement").one("RuleEnforcement"), reactor::get_enforcement),
        r(Op::get("/v1/ruleenforcements/views/{id}", "One rule enforcement (views)").one("RuleEnforcement"), reactor::get_enforcement),
        r(Op::get("/v1/ruletypes", "List rule types").list("RuleType"), reactor::list_rule_types),
        r(Op::get("/v1/ruletypes/{id}", "One rule type").one("RuleType"), reactor::get_rule_type),
        r(Op::get("/v1/sensortypes", "List sensor types").q(LIST).filters(&["pack", "name"]).q(&[("enabled", "boolean")]).list("SensorType"), reactor::list_sensor_types),
        r(Op::get("/v1/sensortypes/{ref_or_id}", "One sensor type").q(PROJECT).one("SensorType"), reactor::get_sensor_type),
        r(Op::put("/v1/sensortypes/{ref_or_id}", "Enable or disable a sensor").body("SensorType").one("SensorType"), reactor::update_sensor_type),
        r(Op::get("/v1/service_registry/groups", "Service registry groups").one("ServiceGroups"), reactor::service_groups),
        r(Op::get("/v1/service_registry/groups/{group_id}/members", "Members of a service group").one("ServiceMembers"), reactor::service_members),
        r(Op::get("/v1/timers", "List timers").filters(&["timer_type"]).list("Trigger"), reactor::list_timers),
        r(Op::get("/v1/timers/{ref_or_id}", "One timer").one("Trigger"), reactor::get_timer),
        r(Op::get("/v1/executions", "List executions").q(LIST).filters(&["action", "status", "parent", "user", "runner", "rule", "trigger", "trigger_type", "trigger_instance"]).q(&[("show_secrets", "boolean")]).list("Execution"), executions::list),
        r(Op::post("/v1/executions", "Run an action").q(&[("show_secrets", "boolean")]).body("ExecutionRequest").created("Execution"), executions::create),
        r(Op::get("/v1/executions/{id}", "One execution").q(PROJECT).q(&[("show_secrets", "boolean")]).one("Execution"), executions::get_one),
        r(Op::put("/v1/executions/{id}", "Pause, resume or cancel an execution").body("ExecutionUpdate").one("Execution"), executions::update),
        r(Op::delete("/v1/executions/{id}", "Cancel an execution").one("Execution"), executions::cancel),
        r(Op::get("/v1/executions/{id}/output", "An execution's output").filters(&["output_type"]).text(), stream::output),
        r(Op::get("/v1/executions/{id}/result", "An execution's result").q(&[("download", "boolean"), ("compress", "boolean"), ("pretty_format", "boolean")]).one("Object"), executions::result),
        r(Op::get("/v1/executions/{id}/children", "An execution's children").q(&[("depth", "integer")]).list("Execution"), executions::children),
        r(Op::post("/v1/executions/{id}/re_run", "Run an execution again").body("ReRunRequest").created("Execution"), executions::re_run),
        r(Op::get("/v1/executions/{id}/attribute/{attribute}", "One attribute of an execution").one("Object"), executions::attribute),
        r(Op::get("/v1/stream", "Server-sent events").filters(&["events", "action_refs", "execution_ids", "end_event", "end_execution_id"]).events(), stream::stream),
        r(Op::get("/v1/keys", "List datastore keys").q(LIST).filters(&["prefix", "name", "scope", "user"]).q(&[("decrypt", "boolean")]).list("KeyValuePair"), keys::list),
        r(Op::get("/v1/keys/{name}", "One datastore key").filters(&["scope", "user"]).q(&[("decrypt", "boolean")]).one("KeyValuePair"), keys::get_one),
        r(Op::put("/v1/keys/{name}", "Set a datastore key").body("KeyValuePairRequest").one("KeyValuePair"), keys::put),
        r(Op::delete("/v1/keys/{name}", "Delete a datastore key").filters(&["scope", "user"]), keys::delete),
        r(Op::get("/v1/inquiries", "List inquiries").q(LIST).list("Inquiry"), inquiries::list),
        r(Op::get("/v1/inquiries/{id}", "One inquiry").one("Inquiry"), inquiries::get_one),
        r(Op::put("/v1/inquiries/{id}", "Respond to an inquiry").body("InquiryResponse").one("InquiryResponse"), inquiries::respond),
        r(Op::get("/v1/traces", "List traces").q(LIST).filters(&["trace_tag", "execution", "rule", "trigger_instance"]).q(&[("sort_asc", "boolean"), ("sort_desc", "boolean")]).list("Trace"), traces::list),
        r(Op::get("/v1/traces/{id}", "One trace").one("Trace"), traces::get_one),
        r(Op::get("/v1/policytypes", "List policy types").q(LIST).filters(&["resource_type", "name"]).list("PolicyType"), policies::list_types),
        r(Op::get("/v1/policytypes/{ref_or_id}", "One policy type").q(PROJECT).one("PolicyType"), policies::get_type),
        r(Op::get("/v1/policies", "List policies").q(LIST).filters(&["pack", "name", "resource_ref", "policy_type"]).list("Policy"), policies::list),
        r(Op::post("/v1/policies", "Create a policy").body("Policy").created("Policy"), policies::create),
        r(Op::get("/v1/policies/{ref_or_id}", "One policy").q(PROJECT).one("Policy"), policies::get_one),
        r(Op::put("/v1/policies/{ref_or_id}", "Replace a policy").body("Policy").one("Policy"), policies::update),
        r(Op::delete("/v1/policies/{ref_or_id}", "Delete a policy"), policies::delete),
        r(Op::get("/v1/metrics", "Prometheus metrics").text(), metrics::metrics),
        r(Op::get("/v1/webhooks", "List webhooks").list("Webhook"), webhooks::list),
        r(Op::get("/v1/webhooks/{*hook}", "One webhook").one("Webhook"), webhooks::get_one),
        r(Op::post("/v1/webhooks/{*hook}", "Post to a webhook").q(&[("wait", "boolean"), ("timeout", "integer")]).body("WebhookBody").one("Object"), webhooks::post),
    ]
}

/// Every route of [`table`]; all but the public ones (`POST /v1/tokens`) need credentials.
pub fn routes(state: Arc<ApiState>) -> Router {
    let mut public = Router::new();
    let mut protected = Router::new();
    for route in table() {
        if route.op.public {
            public = public.route(route.op.path, route.handler);
        } else {
            protected = protected.route(route.op.path, route.handler);
        }
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    public.merge(protected).with_state(state)
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

/// A list with `X-Total-Count` (and `X-Limit` when a limit applied). Each item is written
/// out and dropped before the next is made, so a long list (every action of a large catalog,
/// megabytes of JSON) never exists as a tree of values, only as its text; the text is the
/// array's.
pub(crate) fn listing(
    items: impl IntoIterator<Item = Value>,
    total: u64,
    limit: Option<u64>,
) -> Response {
    let mut text = vec![b'['];
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        // Writing a value to memory cannot fail (its keys are strings).
        let _ = serde_json::to_writer(&mut text, &item);
    }
    text.push(b']');
    let mut response = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    if let Some(l) = limit {
        headers.insert("x-limit", HeaderValue::from(l));
    }
    response
}
