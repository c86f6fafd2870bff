//! The rest of the reactor, read-only: rule enforcements, rule types, sensor types, timers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use st2_core::engine::snapshot::{content_id, isotime};
use st2_core::store::{RuleEnforcementFilter, RuleEnforcementRecord, SortOrder};

use super::content::{list_of, one_of, parse_time};
use super::{json, listing};
use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, json_object, present, rules_file};

fn enforcement(r: &RuleEnforcementRecord) -> Value {
    let e = &r.enforcement;
    let mut out = json!({
        "id": r.id,
        "trigger_instance_id": e.trigger_instance_id,
        "rule": {
            "ref": e.rule.reference,
            "uid": e.rule.uid,
            "id": e.rule.id.clone().unwrap_or_else(|| content_id("rule", &e.rule.reference)),
        },
        "enforced_at": isotime(e.enforced_at),
        "status": serde_json::to_value(e.status).unwrap_or(Value::Null),
    });
    if let Some(id) = &e.execution_id {
        out["execution_id"] = json!(id);
    }
    if let Some(reason) = &e.failure_reason {
        out["failure_reason"] = json!(reason);
    }
    out
}

/// `GET /ruleenforcements[/views]` (*rule_ref*, *rule_id*, *execution*, *trigger_instance*,
/// *enforced_at_gt/lt*; limit 50).
pub async fn list_enforcements(
    State(state): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let (page, limit) = params.page(Some(50))?;
    let time = |name: &str| params.get(name).map(|t| parse_time(name, t)).transpose();
    let filter = RuleEnforcementFilter {
        ids: params.list("id"),
        rule_ref: params.get("rule_ref").map(str::to_owned),
        rule_id: params.get("rule_id").map(str::to_owned),
        execution: params.get("execution").map(str::to_owned),
        trigger_instance: params.get("trigger_instance").map(str::to_owned),
        enforced_at_gt: time("enforced_at_gt")?,
        enforced_at_lt: time("enforced_at_lt")?,
        sort: SortOrder::Descending,
    };
    let found = state
        .engine
        .store()
        .rule_enforcements()
        .list(&filter, page)
        .await?;
    let items = found
        .items
        .iter()
        .map(|r| projection.apply(enforcement(r), &["id"]));
    Ok(listing(items, found.total, limit))
}

/// `GET /ruleenforcements[/views]/{id}`.
pub async fn get_enforcement(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult {
    let found = state
        .engine
        .store()
        .rule_enforcements()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    Ok(json(StatusCode::OK, &enforcement(&found)))
}

fn rule_types() -> Vec<Value> {
    [
        ("standard", "standard rule that is always applicable."),
        (
            "backstop",
            "Rule that applies when no other rule has matched for a specific Trigger.",
        ),
    ]
    .iter()
    .map(|(name, description)| {
        json!({
            "id": content_id("rule_type", name),
            "name": name,
            "description": description,
            "enabled": true,
            "parameters": {},
        })
    })
    .collect()
}

/// `GET /ruletypes`.
pub async fn list_rule_types() -> axum::response::Response {
    json(StatusCode::OK, &Value::Array(rule_types()))
}

/// `GET /ruletypes/{id}` (or name).
pub async fn get_rule_type(Path(key): Path<String>) -> ApiResult {
    rule_types()
        .into_iter()
        .find(|t| t["id"] == key.as_str() || t["name"] == key.as_str())
        .map(|t| json(StatusCode::OK, &t))
        .ok_or_else(|| ApiError::not_found(&key))
}

fn sensor_types(state: &ApiState) -> Vec<Value> {
    state
        .engine
        .catalog()
        .sensors()
        .map(|s| sensor_type(s))
        .collect()
}

fn sensor_type(s: &st2_core::model::Sensor) -> Value {
    json!({
        "id": content_id("sensor_type", &s.reference),
        "ref": s.reference,
        "uid": format!("sensor_type:{}:{}", s.pack(), s.class_name),
        "name": s.class_name,
        "pack": s.pack(),
        "class_name": s.class_name,
        "description": s.description.clone().unwrap_or_default(),
        "artifact_uri": format!("file://{}", s.entry_point),
        "entry_point": s.entry_point,
        "enabled": s.enabled,
        "trigger_types": s.trigger_types,
        "poll_interval": s.poll_interval,
        "metadata_file": s.origin.metadata_file,
    })
}

/// `PUT /sensortypes/{ref_or_id}`: only `enabled` changes, as in StackStorm (which reads a
/// missing `enabled` as `false`); the sensor stops or starts at once, and the change outlives
/// restarts and pack registrations. Sensors of the system packs cannot be changed.
pub async fn update_sensor_type(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "enabled: {other} is not of type 'boolean'"
            )));
        }
    };
    let reference = {
        let catalog = state.engine.catalog();
        catalog
            .sensors()
            .find(|s| s.reference == key || content_id("sensor_type", &s.reference) == key)
            .map(|s| (s.reference.clone(), s.pack().to_owned()))
    };
    let Some((reference, pack)) = reference else {
        return Err(ApiError::not_found(&key));
    };
    if crate::server::pack_admin::SYSTEM_PACKS.contains(&pack.as_str()) {
        return Err(ApiError::bad_request(
            "Resources belonging to system level packs can't be manipulated",
        ));
    }
    if let Some(path) = &state.settings.sensors_file {
        rules_file::record(path, &reference, Some(json!({"enabled": enabled})))
            .await
            .map_err(ApiError::internal)?;
    }
    let sensor = state
        .engine
        .set_sensor_enabled(&reference, enabled)
        .await
        .ok_or_else(|| ApiError::not_found(&key))?;
    Ok(json(StatusCode::OK, &sensor_type(&sensor)))
}

/// `GET /sensortypes` (*pack*, *name*, *enabled*; no default limit).
pub async fn list_sensor_types(
    State(state): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    list_of(
        sensor_types(&state),
        &params,
        &[("pack", "pack"), ("name", "name")],
        None,
        &["id", "ref"],
    )
}

/// `GET /sensortypes/{ref_or_id}`.
pub async fn get_sensor_type(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    one_of(
        sensor_types(&state),
        &key,
        &Params::parse(q.as_deref()),
        &["id", "ref"],
    )
}

const TIMER_TYPES: [&str; 3] = [
    "core.st2.IntervalTimer",
    "core.st2.DateTimer",
    "core.st2.CronTimer",
];

fn timers(state: &ApiState) -> Vec<Value> {
    let catalog = state.engine.catalog();
    state
        .engine
        .parameterized_triggers()
        .into_iter()
        .filter(|(_, t)| TIMER_TYPES.contains(&t.trigger_type.as_str()))
        .map(|(_, t)| {
            let description = catalog
                .trigger_type(&t.trigger_type)
                .and_then(|tt| tt.description.clone());
            present::trigger(&t, description.as_deref())
        })
        .collect()
}

/// `GET /timers` (*timer_type*).
pub async fn list_timers(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let mut items = timers(&state);
    if let Some(kind) = params.get("timer_type") {
        if !TIMER_TYPES.contains(&kind) {
            return Err(ApiError::bad_request(format!(
                "Invalid timer_type: {kind}. Valid timer types: {}",
                TIMER_TYPES.join(", ")
            )));
        }
        items.retain(|t| t["type"] == kind);
    }
    Ok(json(StatusCode::OK, &Value::Array(items)))
}

/// `GET /timers/{ref_or_id}`.
pub async fn get_timer(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> ApiResult {
    one_of(timers(&state), &key, &Params::default(), &["id", "ref"])
}

const GROUP: &str = "st2d";

fn member(state: &ApiState) -> Value {
    let settings = state.engine.settings();
    let r = settings.roles;
    let roles: Vec<&str> = [
        ("rules", r.rules),
        ("scheduler", r.scheduler),
        ("runner", r.runner),
        ("timers", r.timers),
        ("sensors", r.sensors),
        ("gc", r.gc),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| *name)
    .collect();
    json!({
        "group_id": GROUP,
        "member_id": settings.node_name,
        "capabilities": {
            "name": "st2d",
            "version": env!("CARGO_PKG_VERSION"),
            "roles": roles,
            "max_running": settings.max_running,
            "store": state.engine.store().backend(),
        },
    })
}

/// `GET /service_registry/groups` — this node's group.
pub async fn service_groups() -> axum::response::Response {
    json(StatusCode::OK, &json!({"groups": [GROUP]}))
}

/// `GET /service_registry/groups/{group_id}/members` — this node (other nodes sharing the
/// store are not listed yet).
pub async fn service_members(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> ApiResult {
    if group != GROUP {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Group with ID \"{group}\" not found."),
        ));
    }
    Ok(json(StatusCode::OK, &json!({"members": [member(&state)]})))
}
