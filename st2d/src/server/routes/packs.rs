//! `POST /packs/register`: load the packs from disk again and swap them in without a restart
//! (`st2 pack register`); `POST /packs/install` and `POST /packs/uninstall`: start the
//! `packs.install` / `packs.uninstall` executions (`st2 pack install/remove`), which the
//! `pack-manager` runner ([`crate::server::pack_admin`]) carries out.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use st2_core::engine::RunRequest;

use super::json;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{ApiState, json_object, json_type, rules_file};

/// `POST /packs/register` — `{"packs"?: [..], "types"?: [..], "fail_on_failure"?: true}` →
/// 200 with counts of what the named packs (all when none) hold. Actions and rules changed
/// through the API stay changed.
pub async fn register(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let body = json_object(&body)?;
    let packs: Vec<String> = match body.get("packs") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => names(&body, "packs")?,
    };
    let fail_on_failure = body
        .get("fail_on_failure")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let counts = register_from_disk(&state, packs, fail_on_failure).await?;
    Ok(json(StatusCode::OK, &counts))
}

/// Load every pack from disk again and swap the catalog in (the changes made through the API
/// applied again over it); `packs` (all when empty) must be found, and with
/// `fail_on_failure` an error in one of their files refuses the whole registration, leaving
/// what is loaded unchanged. Returns the counts `POST /packs/register` answers with.
///
/// # Errors
/// 400 naming the pack or the files and lines at fault.
pub(crate) async fn register_from_disk(
    state: &ApiState,
    packs: Vec<String>,
    fail_on_failure: bool,
) -> Result<Value, ApiError> {
    let Some(options) = state.settings.load.clone() else {
        return Err(ApiError::bad_request(
            "This server was started without pack directories to register from.",
        ));
    };
    let report = tokio::task::spawn_blocking(move || st2_core::load(&options))
        .await
        .map_err(ApiError::internal)?;
    for p in &packs {
        if report.catalog.pack(p).is_none() {
            return Err(ApiError::bad_request(format!(
                "Failed to register pack \"{p}\": it is not in any packs directory"
            )));
        }
    }
    let pack_dirs: Vec<std::path::PathBuf> = packs
        .iter()
        .filter_map(|p| report.catalog.pack(p).and_then(|p| p.path.clone()))
        .collect();
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .filter(|d| packs.is_empty() || pack_dirs.iter().any(|dir| d.file.starts_with(dir)))
        .map(|d| format!("{}:{}: {}", d.file.display(), d.line, d.message))
        .collect();
    if fail_on_failure && !errors.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Failed to register packs: {}",
            errors.join("; ")
        )));
    }
    let catalog = report.catalog;
    let chosen: Vec<String> = if packs.is_empty() {
        catalog.packs().map(|p| p.meta.reference.clone()).collect()
    } else {
        packs
    };
    let mut counts = [0usize; 6];
    let mut configs = 0;
    for p in &chosen {
        let c = catalog.contents_of(p);
        for (i, n) in [
            c.actions.len(),
            c.trigger_types.len(),
            c.sensors.len(),
            c.rules.len(),
            c.aliases.len(),
            c.policies.len(),
        ]
        .into_iter()
        .enumerate()
        {
            counts[i] += n;
        }
        configs += usize::from(catalog.config(p).is_some());
    }
    let runners = catalog.runner_types().count();
    let policy_types = catalog.policy_types().count();
    let before = state.engine.catalog();
    for d in state.engine.replace_catalog(catalog) {
        tracing::warn!(file = %d.file.display(), "{}", d.message);
    }
    if let Some(path) = &state.settings.actions_file {
        for problem in rules_file::apply_actions(path, &state.engine).map_err(ApiError::internal)? {
            tracing::warn!("{problem} (skipped)");
        }
    }
    if let Some(path) = &state.settings.aliases_file {
        for problem in rules_file::apply_aliases(path, &state.engine).map_err(ApiError::internal)? {
            tracing::warn!("{problem} (skipped)");
        }
    }
    if let Some(path) = &state.settings.rules_file {
        for problem in rules_file::apply(path, &state.engine).map_err(ApiError::internal)? {
            tracing::warn!("{problem} (skipped)");
        }
    }
    if let Some(path) = &state.settings.policies_file {
        for problem in
            rules_file::apply_policies(path, &state.engine).map_err(ApiError::internal)?
        {
            tracing::warn!("{problem} (skipped)");
        }
    }
    if let Some(path) = &state.settings.sensors_file {
        for problem in rules_file::apply_sensors(path, &state.engine)
            .await
            .map_err(ApiError::internal)?
        {
            tracing::warn!("{problem} (skipped)");
        }
    }
    state.engine.sync_sensors(&chosen).await;
    announce_aliases(state, &before, &chosen);
    tracing::info!(packs = ?chosen, "packs registered");
    Ok(json!({
            "runners": runners,
            "actions": counts[0],
            "triggers": counts[1],
            "sensors": counts[2],
            "rules": counts[3],
            "rule_types": 2,
            "aliases": counts[4],
            "policy_types": policy_types,
            "policies": counts[5],
            "configs": configs,
    }))
}

/// A list of strings in `body[field]`.
fn names(body: &Map<String, Value>, field: &str) -> Result<Vec<String>, ApiError> {
    let bad = |got: &Value| {
        ApiError::bad_request(format!(
            "\"{field}\" must be a list of strings, got: {}",
            json_type(got)
        ))
    };
    match body.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(other)),
            })
            .collect(),
        Some(other) => Err(bad(other)),
        None => Err(ApiError::bad_request(format!(
            "'{field}' is a required property"
        ))),
    }
}

/// The packs a request names: a non-empty list of non-empty strings.
fn pack_list(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let packs = names(body, "packs")?;
    if packs.is_empty() {
        return Err(ApiError::bad_request(
            "\"packs\" must name at least one pack",
        ));
    }
    if packs.iter().any(|p| p.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "\"packs\" must not hold empty strings",
        ));
    }
    Ok(packs)
}

fn flag(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "\"{field}\" must be a boolean, got: {}",
            json_type(other)
        ))),
    }
}

/// Start execution of `action` for the caller; 202 `{"execution_id"}`.
async fn start(
    state: &ApiState,
    caller: &Caller,
    action: &str,
    parameters: Map<String, Value>,
) -> ApiResult {
    let mut request = RunRequest::new(action, parameters);
    request.user = Some(caller.user.clone());
    let record = state.engine.run_with(request).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &json!({"execution_id": record.id}),
    ))
}

/// `POST /packs/install` — `{"packs": [..], "force"?, "skip_dependencies"?}` → 202
/// `{"execution_id"}` of a `packs.install` execution (its result's `output.packs_list`
/// names the packs installed).
pub async fn install(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let packs = pack_list(&body)?;
    let mut parameters = Map::new();
    parameters.insert("packs".into(), json!(packs));
    if flag(&body, "force")? {
        parameters.insert("force".into(), Value::Bool(true));
    }
    if flag(&body, "skip_dependencies")? {
        parameters.insert("skip_dependencies".into(), Value::Bool(true));
    }
    start(&state, &caller, "packs.install", parameters).await
}

/// `POST /packs/uninstall` — `{"packs": [..]}` → 202 `{"execution_id"}` of a
/// `packs.uninstall` execution.
pub async fn uninstall(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = json_object(&body)?;
    let packs = pack_list(&body)?;
    let mut parameters = Map::new();
    parameters.insert("packs".into(), json!(packs));
    start(&state, &caller, "packs.uninstall", parameters).await
}

/// Tell stream subscribers about the action aliases a registration changed, as StackStorm's
/// registrar does (`st2.actionalias__create` for a new alias, `__update` for every alias of a
/// registered pack that existed, `__delete` for one that is gone).
fn announce_aliases(state: &ApiState, before: &st2_core::Catalog, chosen: &[String]) {
    let after = state.engine.catalog();
    for alias in after.aliases() {
        if !chosen.iter().any(|p| p == alias.pack()) {
            continue;
        }
        let verb = if before.alias(&alias.reference).is_some() {
            "update"
        } else {
            "create"
        };
        state
            .engine
            .alias_changed(verb, super::aliases::present(alias));
    }
    for alias in before.aliases() {
        if after.alias(&alias.reference).is_none() {
            state
                .engine
                .alias_changed("delete", super::aliases::present(alias));
        }
    }
}
