//! `POST /packs/register`: load the packs from disk again and swap them in without a restart
//! (`st2 pack register`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::json;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{ApiState, json_object, rules_file};

/// `POST /packs/register` — `{"packs"?: [..], "types"?: [..], "fail_on_failure"?: true}` →
/// 200 with counts of what the named packs (all when none) hold. Actions and rules changed
/// through the API stay changed.
pub async fn register(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let body = json_object(&body)?;
    let Some(options) = state.settings.load.clone() else {
        return Err(ApiError::bad_request(
            "This server was started without pack directories to register from.",
        ));
    };
    let packs: Vec<String> = match body.get("packs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("\"packs\" must be a list of names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("\"packs\" must be a list of names")),
    };
    let fail_on_failure = body
        .get("fail_on_failure")
        .and_then(Value::as_bool)
        .unwrap_or(true);
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
    tracing::info!(packs = ?chosen, "packs registered");
    Ok(json(
        StatusCode::OK,
        &json!({
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
        }),
    ))
}
