//! Pack content, read-only: runner types, actions (+ views), packs, trigger types, triggers,
//! trigger instances, rules; and the API root.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use st2_core::store::{Page, SortOrder, Timestamp, TriggerInstanceFilter};

use super::{json, listing};
use crate::server::ApiState;
use crate::server::error::{ApiError, ApiResult};
use crate::server::present;
use crate::server::query::Params;

/// The value at a dotted path, as text (strings as they are, others as JSON).
fn field_text(value: &Value, path: &str) -> Option<String> {
    let mut v = value;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Filter, sort, page and project a list of API objects.
pub(crate) fn list_of(
    items: Vec<Value>,
    params: &Params,
    filters: &[(&str, &str)],
    default_limit: Option<u64>,
    mandatory: &[&str],
) -> ApiResult {
    let projection = params.projection()?;
    let (page, limit) = params.page(default_limit)?;
    let mut wanted: Vec<(Vec<String>, &str)> = filters
        .iter()
        .map(|(param, field)| (params.list(param), *field))
        .filter(|(values, _)| !values.is_empty())
        .collect();
    let ids = params.list("id");
    if !ids.is_empty() {
        wanted.push((ids, "id"));
    }
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|item| {
            wanted
                .iter()
                .all(|(values, field)| field_text(item, field).is_some_and(|v| values.contains(&v)))
        })
        .collect();
    if let Some(enabled) = params.bool("enabled")? {
        items.retain(|i| i.get("enabled").and_then(Value::as_bool) == Some(enabled));
    }
    for key in params.list("sort").iter().rev() {
        let (desc, field) = match key.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, key.strip_prefix('+').unwrap_or(key)),
        };
        items.sort_by(|a, b| {
            let o = field_text(a, field).cmp(&field_text(b, field));
            if desc { o.reverse() } else { o }
        });
    }
    let total = items.len() as u64;
    let shown = paged(items, page)
        .into_iter()
        .map(|i| projection.apply(i, mandatory));
    Ok(listing(shown, total, limit))
}

fn paged(items: Vec<Value>, page: Page) -> Vec<Value> {
    let it = items.into_iter().skip(page.offset as usize);
    match page.limit {
        Some(l) => it.take(l as usize).collect(),
        None => it.collect(),
    }
}

pub(crate) fn one_of(
    items: Vec<Value>,
    key: &str,
    params: &Params,
    mandatory: &[&str],
) -> ApiResult {
    let projection = params.projection()?;
    let found = items
        .into_iter()
        .find(|i| present::matches_ref_or_id(i, key))
        .ok_or_else(|| ApiError::not_found(key))?;
    Ok(json(StatusCode::OK, &projection.apply(found, mandatory)))
}

/// `GET /v1`.
pub async fn root() -> Response {
    json(
        StatusCode::OK,
        &json!({
            "version": "3.9.0",
            "docs_url": "https://docs.stackstorm.com/3.9",
            "st2d_version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

fn runners(state: &ApiState) -> Vec<Value> {
    state
        .engine
        .catalog()
        .runner_types()
        .map(|r| present::runner(r))
        .collect()
}

/// `GET /v1/runnertypes` (*name* exact).
pub async fn list_runners(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    list_of(
        runners(&state),
        &params,
        &[("name", "name")],
        Some(100),
        &["id"],
    )
}

/// `GET /v1/runnertypes/{name_or_id}`.
pub async fn get_runner(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let found = runners(&state)
        .into_iter()
        .find(|r| {
            r.get("name").and_then(Value::as_str) == Some(&key)
                || r.get("id").and_then(Value::as_str) == Some(&key)
        })
        .ok_or_else(|| ApiError::not_found(&key))?;
    Ok(json(StatusCode::OK, &projection.apply(found, &["id"])))
}

/// Every action as the API shows it; without `parameters` when the caller's projection drops
/// them (`st2 action list` asks for `ref,pack,description`), which spares parsing every
/// action's parameter definitions.
fn actions(state: &ApiState, parameters: bool) -> Vec<Value> {
    state
        .engine
        .catalog()
        .actions()
        .map(|a| present::action_with(&a, parameters))
        .collect()
}

const CONTENT_KEYS: &[&str] = &["id", "ref"];

/// `GET /v1/actions` (*pack*, *name*; no default limit).
pub async fn list_actions(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    // A bad projection is reported by `list_of`.
    let parameters = params.projection().map_or(true, |p| p.keeps("parameters"));
    if params.list("sort").is_empty() && params.bool("enabled")?.is_none() {
        return list_actions_by_ref(&state, &params, parameters);
    }
    list_of(
        actions(&state, parameters),
        &params,
        &[("pack", "pack"), ("name", "name"), ("ref", "ref")],
        None,
        CONTENT_KEYS,
    )
}

/// [`list_actions`] when only what an action's ref tells (its pack, name, ref and id) filters
/// the list and no sort is asked: the page is chosen from the refs and only its actions are
/// presented (the catalog may hold thousands, kept compact until used).
fn list_actions_by_ref(state: &ApiState, params: &Params, parameters: bool) -> ApiResult {
    let projection = params.projection()?;
    let (page, limit) = params.page(None)?;
    let [packs, names, refs, ids] = ["pack", "name", "ref", "id"].map(|p| params.list(p));
    let wanted = |values: &[String], v: &str| values.is_empty() || values.iter().any(|w| w == v);
    let catalog = state.engine.catalog();
    let matching: Vec<&str> = catalog
        .action_refs()
        .filter(|r| {
            // A ref is `<pack>.<name>`, the pack everything before the first dot.
            let (pack, name) = r.split_once('.').unwrap_or((r, ""));
            wanted(&packs, pack)
                && wanted(&names, name)
                && wanted(&refs, r)
                && (ids.is_empty()
                    || wanted(&ids, &st2_core::engine::snapshot::content_id("action", r)))
        })
        .collect();
    let total = matching.len() as u64;
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let count = page
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let shown = catalog
        .actions_named(matching.into_iter().skip(offset).take(count))
        .map(|a| projection.apply(present::action_with(&a, parameters), CONTENT_KEYS));
    Ok(listing(shown, total, limit))
}

/// `GET /v1/actions/{ref_or_id}`.
pub async fn get_action(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let action = find_action(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    Ok(json(
        StatusCode::OK,
        &projection.apply(present::action(&action), CONTENT_KEYS),
    ))
}

/// An action by ref or id, without presenting the others (a catalog may hold thousands).
fn find_action(state: &ApiState, key: &str) -> Option<Arc<st2_core::model::Action>> {
    let catalog = state.engine.catalog();
    if let Some(action) = catalog.action(key) {
        return Some(action.clone());
    }
    let reference = catalog
        .action_refs()
        .find(|r| st2_core::engine::snapshot::content_id("action", r) == key)?;
    catalog.action(reference).cloned()
}

/// Runner parameters with the action's overrides merged in (the action wins per attribute).
fn merged_parameters(state: &ApiState, action: &Value) -> Map<String, Value> {
    let catalog = state.engine.catalog();
    let runner = action
        .get("runner_type")
        .and_then(Value::as_str)
        .and_then(|r| catalog.runner_type(r).cloned());
    let mut merged: Map<String, Value> = runner
        .map(|r| (*r.runner_parameters).clone())
        .unwrap_or_default();
    if let Some(Value::Object(own)) = action.get("parameters") {
        for (name, spec) in own {
            match (merged.get_mut(name), spec) {
                (Some(Value::Object(base)), Value::Object(over)) => {
                    for (k, v) in over {
                        base.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    merged.insert(name.clone(), spec.clone());
                }
            }
        }
    }
    merged
}

fn overview(state: &ApiState) -> Vec<Value> {
    actions(state, true)
        .into_iter()
        .map(|a| with_merged_parameters(state, a))
        .collect()
}

/// The action as the overview shows it: runner parameters merged with its own.
fn with_merged_parameters(state: &ApiState, mut action: Value) -> Value {
    let merged = merged_parameters(state, &action);
    action["parameters"] = Value::Object(merged);
    action
}

/// `GET /v1/actions/views/overview`.
pub async fn list_actions_overview(
    State(state): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    list_of(
        overview(&state),
        &params,
        &[("pack", "pack"), ("name", "name")],
        None,
        CONTENT_KEYS,
    )
}

/// `GET /v1/actions/views/overview/{ref_or_id}`.
pub async fn get_action_overview(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let projection = Params::parse(q.as_deref()).projection()?;
    let action = find_action(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    Ok(json(
        StatusCode::OK,
        &projection.apply(
            with_merged_parameters(&state, present::action(&action)),
            CONTENT_KEYS,
        ),
    ))
}

/// `GET /v1/actions/views/parameters/{ref_or_id}`.
pub async fn action_parameters(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> ApiResult {
    let action = find_action(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    Ok(json(
        StatusCode::OK,
        &json!({"parameters": merged_parameters(&state, &present::action(&action))}),
    ))
}

fn packs(state: &ApiState) -> Vec<Value> {
    state
        .engine
        .catalog()
        .packs()
        .map(|p| present::pack(p))
        .collect()
}

/// `GET /v1/packs`.
pub async fn list_packs(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    list_of(
        packs(&state),
        &params,
        &[("name", "name"), ("ref", "ref")],
        Some(100),
        CONTENT_KEYS,
    )
}

/// `GET /v1/packs/{ref_or_id}`.
pub async fn get_pack(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    one_of(
        packs(&state),
        &key,
        &Params::parse(q.as_deref()),
        CONTENT_KEYS,
    )
}

fn trigger_types(state: &ApiState) -> Vec<Value> {
    state
        .engine
        .catalog()
        .trigger_types()
        .map(|t| present::trigger_type(t))
        .collect()
}

/// `GET /v1/triggertypes`.
pub async fn list_trigger_types(
    State(state): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    list_of(
        trigger_types(&state),
        &params,
        &[("pack", "pack"), ("name", "name")],
        Some(100),
        CONTENT_KEYS,
    )
}

/// `GET /v1/triggertypes/{ref_or_id}`.
pub async fn get_trigger_type(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    one_of(
        trigger_types(&state),
        &key,
        &Params::parse(q.as_deref()),
        CONTENT_KEYS,
    )
}

fn triggers(state: &ApiState) -> Vec<Value> {
    present::triggers(
        &state.engine.catalog(),
        &state.engine.parameterized_triggers(),
    )
}

/// `GET /v1/triggers` (a plain list).
pub async fn list_triggers(State(state): State<Arc<ApiState>>) -> Response {
    json(StatusCode::OK, &Value::Array(triggers(&state)))
}

/// `GET /v1/triggers/{ref_or_id}`.
pub async fn get_trigger(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> ApiResult {
    one_of(triggers(&state), &key, &Params::default(), CONTENT_KEYS)
}

/// A timestamp in any of the forms StackStorm accepts (`Z`, `+00:00`, `+0000`, `+00`, a space
/// for `T`).
pub(crate) fn parse_time(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    let t = text.trim().replacen(' ', "T", 1);
    let candidates = [
        t.clone(),
        t.replace('Z', "+00:00"),
        if t.ends_with("+00") {
            format!("{t}:00")
        } else {
            t.clone()
        },
        if t.ends_with("+0000") {
            format!("{}+00:00", &t[..t.len() - 5])
        } else {
            t.clone()
        },
    ];
    for c in &candidates {
        if let Ok(d) = DateTime::parse_from_rfc3339(c) {
            return Ok(d.with_timezone(&Utc));
        }
    }
    if let Ok(n) = NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(n.and_utc());
    }
    Err(ApiError::bad_request(format!(
        "Parameter \"{name}\": invalid timestamp {text:?}"
    )))
}

/// `GET /v1/triggerinstances` (*trigger*, *trigger_type*, *timestamp_gt/lt*).
pub async fn list_trigger_instances(
    State(state): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let projection = params.projection()?;
    let (page, limit) = params.page(Some(100))?;
    let filter = TriggerInstanceFilter {
        ids: params.list("id"),
        trigger: params.get("trigger").map(str::to_owned),
        trigger_type: params.get("trigger_type").map(str::to_owned),
        timestamp_gt: params
            .get("timestamp_gt")
            .map(|t| parse_time("timestamp_gt", t))
            .transpose()?,
        timestamp_lt: params
            .get("timestamp_lt")
            .map(|t| parse_time("timestamp_lt", t))
            .transpose()?,
        sort: SortOrder::Descending,
        ..TriggerInstanceFilter::default()
    };
    let found = state
        .engine
        .store()
        .trigger_instances()
        .list(&filter, page)
        .await?;
    let items = found
        .items
        .iter()
        .map(|t| projection.apply(st2_core::engine::snapshot::trigger_instance_api(t), &["id"]));
    Ok(listing(items, found.total, limit))
}

/// `GET /v1/triggerinstances/{id}`.
pub async fn get_trigger_instance(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult {
    let ti = state
        .engine
        .store()
        .trigger_instances()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    Ok(json(
        StatusCode::OK,
        &st2_core::engine::snapshot::trigger_instance_api(&ti),
    ))
}

/// `POST /v1/triggerinstances/{id}/re_emit` (and `re_send`): dispatch the instance's trigger
/// again with its payload plus `__context.original_id`, as StackStorm does (a new instance and
/// a new trace; the body, if any, is ignored).
pub async fn re_emit_trigger_instance(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult {
    let ti = state
        .engine
        .store()
        .trigger_instances()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    let mut payload = match ti.payload {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(ApiError::bad_request(format!(
                "The payload has a value that is not a dictionary (was <class '{}'>).",
                st2_core::expr::python::type_name(&other)
            )));
        }
    };
    payload.insert("__context".into(), json!({"original_id": id}));
    let payload = Value::Object(payload);
    let mut request = st2_core::engine::DispatchRequest::new(ti.trigger, payload.clone());
    // Accepted once already; StackStorm's internal dispatcher does not check it again.
    request.validate = false;
    state
        .engine
        .dispatch_with(request)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json(
        StatusCode::OK,
        &json!({
            // StackStorm's spelling.
            "message": format!("Trigger instance {id} succesfully re-sent."),
            "payload": payload,
        }),
    ))
}

fn rules(state: &ApiState) -> Vec<Value> {
    state
        .engine
        .catalog()
        .rules()
        .map(|r| present::rule(r))
        .collect()
}

/// `GET /v1/rules` (*pack*, *name*, *action*, *trigger*, *enabled*; no default limit).
pub async fn list_rules(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    list_of(
        rules(&state),
        &params,
        &[
            ("pack", "pack"),
            ("name", "name"),
            ("action", "action.ref"),
            ("trigger", "trigger.ref"),
        ],
        None,
        CONTENT_KEYS,
    )
}

/// `GET /v1/rules/{ref_or_id}`.
pub async fn get_rule(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    one_of(
        rules(&state),
        &key,
        &Params::parse(q.as_deref()),
        CONTENT_KEYS,
    )
}

/// `GET /v1/actions/views/entry_point/{ref_or_id}`: the action's entry point file as text.
pub async fn action_entry_point(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> ApiResult {
    let catalog = state.engine.catalog();
    let action = find_action(&state, &key).ok_or_else(|| ApiError::not_found(&key))?;
    if action.entry_point.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Action \"{}\" has no entry_point",
            action.reference
        )));
    }
    let pack_dir = catalog
        .pack(action.pack())
        .and_then(|p| p.path.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Pack \"{}\" has no files on disk", action.pack()),
            )
        })?;
    let actions_dir = pack_dir.join("actions");
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "Entry point file of action \"{}\" not found",
                action.reference
            ),
        )
    };
    let path = actions_dir
        .join(&action.entry_point)
        .canonicalize()
        .map_err(|_| missing())?;
    // The entry point must stay inside the pack (no `../` out of it).
    let root = pack_dir.canonicalize().map_err(|_| missing())?;
    if !path.starts_with(&root) {
        return Err(ApiError::bad_request(
            "The entry point points outside its pack",
        ));
    }
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|_| missing())?;
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
