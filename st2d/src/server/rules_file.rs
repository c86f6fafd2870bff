//! Rules, actions, action aliases and policies created, changed or deleted through the API,
//! kept across restarts: one JSON file per kind in the data directory (`rules.json`,
//! `actions.json`, `aliases.json`, `policies.json`) mapping each ref to the body last accepted,
//! or to `null` for one deleted (so a pack's rule, action, alias or policy stays deleted).
//! Applied over the packs' content at start and after `POST /packs/register`, actions first,
//! policies last.
//!
//! The file belongs to one node; several nodes sharing a PostgreSQL store each keep their own.

use std::path::Path;

use serde_json::{Map, Value};
use st2_core::Engine;
use st2_core::model::{action_from_json, alias_from_json, policy_from_json, rule_from_json};

/// Serialises writers of the file.
static WRITE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn read(path: &Path) -> Result<Map<String, Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!("{}: not a JSON object", path.display())),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Record `body` (or a deletion, `None`) for `reference`.
///
/// # Errors
/// The file cannot be read or written.
pub async fn record(path: &Path, reference: &str, body: Option<Value>) -> Result<(), String> {
    let _guard = WRITE.lock().await;
    let mut all = read(path)?;
    all.insert(reference.to_owned(), body.unwrap_or(Value::Null));
    let text = serde_json::to_string_pretty(&Value::Object(all)).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Forget every entry of pack `pack` (refs `<pack>.…`), as when the pack is uninstalled.
///
/// # Errors
/// The file cannot be read or written.
pub async fn forget_pack(path: &Path, pack: &str) -> Result<(), String> {
    let _guard = WRITE.lock().await;
    let mut all = read(path)?;
    let prefix = format!("{pack}.");
    let before = all.len();
    all.retain(|reference, _| !reference.starts_with(&prefix));
    if all.len() == before {
        return Ok(());
    }
    let text = serde_json::to_string_pretty(&Value::Object(all)).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Apply the recorded changes to `engine`; returns one message per entry that no longer
/// applies (an action or trigger type gone), which is skipped.
///
/// # Errors
/// The file cannot be read.
pub fn apply(path: &Path, engine: &Engine) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for (reference, body) in read(path)? {
        if body.is_null() {
            engine.remove_rule(&reference);
            continue;
        }
        match rule_from_json(&body, &engine.catalog()) {
            Ok(rule) => {
                if let Err(e) = engine.put_rule(rule) {
                    problems.push(format!("rule {reference}: {e}"));
                }
            }
            Err(errors) => problems.push(format!("rule {reference}: {}", errors.join("; "))),
        }
    }
    Ok(problems)
}

/// Apply the recorded action changes to `engine`, as [`apply`] does for rules.
///
/// # Errors
/// The file cannot be read.
pub fn apply_actions(path: &Path, engine: &Engine) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for (reference, body) in read(path)? {
        if body.is_null() {
            engine.remove_action(&reference);
            continue;
        }
        match action_from_json(&body, &engine.catalog()) {
            Ok(action) => {
                engine.put_action(action);
            }
            Err(errors) => problems.push(format!("action {reference}: {}", errors.join("; "))),
        }
    }
    Ok(problems)
}

/// Apply the recorded action alias changes to `engine`, as [`apply`] does for rules.
///
/// # Errors
/// The file cannot be read.
pub fn apply_aliases(path: &Path, engine: &Engine) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for (reference, body) in read(path)? {
        if body.is_null() {
            engine.remove_alias(&reference);
            continue;
        }
        match alias_from_json(&body) {
            Ok(alias) => {
                engine.put_alias(alias);
            }
            Err(errors) => problems.push(format!("alias {reference}: {}", errors.join("; "))),
        }
    }
    Ok(problems)
}

/// Apply the recorded policy changes to `engine`, as [`apply`] does for rules.
///
/// # Errors
/// The file cannot be read.
pub fn apply_policies(path: &Path, engine: &Engine) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for (reference, body) in read(path)? {
        if body.is_null() {
            engine.remove_policy(&reference);
            continue;
        }
        match policy_from_json(&body, &engine.catalog()) {
            Ok(policy) => {
                engine.put_policy(policy);
            }
            Err(errors) => problems.push(format!("policy {reference}: {}", errors.join("; "))),
        }
    }
    Ok(problems)
}

/// Sensor refs with their recorded `enabled`, and the problems of the entries skipped.
pub type SensorOverrides = (Vec<(String, bool)>, Vec<String>);

/// The sensors enabled or disabled through the API (`sensors.json`: ref → `{"enabled": bool}`),
/// for [`st2_core::engine::EngineBuilder::sensor_enabled`] at start, with a problem for each
/// entry of another shape (skipped).
///
/// # Errors
/// The file cannot be read.
pub fn sensor_overrides(path: &Path) -> Result<SensorOverrides, String> {
    let mut overrides = Vec::new();
    let mut problems = Vec::new();
    for (reference, body) in read(path)? {
        match body.get("enabled").and_then(Value::as_bool) {
            Some(enabled) => overrides.push((reference, enabled)),
            None => problems.push(format!(
                "sensor {reference}: {}: expected {{\"enabled\": true|false}}, got {body}",
                path.display()
            )),
        }
    }
    Ok((overrides, problems))
}

/// Apply the recorded sensor changes to `engine` again (after a pack registration read the
/// sensors' files), as [`sensor_overrides`] reads them.
///
/// # Errors
/// The file cannot be read.
pub async fn apply_sensors(path: &Path, engine: &Engine) -> Result<Vec<String>, String> {
    let (overrides, problems) = sensor_overrides(path)?;
    for (reference, enabled) in overrides {
        engine.set_sensor_enabled(&reference, enabled).await;
    }
    Ok(problems)
}
