//! The API-shaped copies an execution keeps of what it ran (action, runner type, rule, trigger),
//! ids derived from their cause, and secret masking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::model::{Action, Rule, RunnerType, TriggerType};
use crate::rules::matcher::TriggerRef;
use crate::store::{Snapshot, Timestamp, TriggerInstanceRecord};

/// StackStorm's mask for secret values.
pub const MASK: &str = "********";

/// A 24-hex id derived from a cause (`seed`) and what it caused (`what`): the same inputs give
/// the same id, so redoing a step after a crash finds the record it already wrote instead of
/// writing a second one.
///
/// From a 24-hex seed (an id, itself new or derived) it keeps the first 14 hex digits (the
/// seconds and counter of [`new_id`](crate::store::new_id)), so everything a trigger instance
/// or execution causes sorts next to it, in the order the root ids were made, and the other 10
/// come from a hash of both inputs. From any other seed it keeps the seed's first 8 hex digits
/// if it has them (an ObjectId's time part) and hashes the rest.
pub fn derived_id(seed: &str, what: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(seed.as_bytes());
    hasher.update([0]);
    hasher.update(what.as_bytes());
    let digest = hasher.finalize();
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let kept = if seed.len() == 24 && hex(seed) {
        &seed[..14]
    } else if seed.len() >= 8 && seed.is_char_boundary(8) && hex(&seed[..8]) {
        &seed[..8]
    } else {
        ""
    };
    let mut id = kept.to_ascii_lowercase();
    crate::store::push_hex(&mut id, &digest[..(24 - kept.len()).div_ceil(2)]);
    id.truncate(24);
    id
}

/// A stable id for pack content (`kind` is `action`, `rule`, `pack`, `runner_type`,
/// `trigger_type`, `trigger`, …), derived from its ref: content loaded from packs has no
/// database id, and the API needs one that stays the same across restarts.
pub fn content_id(kind: &str, reference: &str) -> String {
    derived_id("00000000", &format!("{kind}:{reference}"))
}

/// StackStorm's isotime format: `2024-05-01T10:00:00.123456Z`.
pub fn isotime(t: Timestamp) -> String {
    crate::store::rfc3339::isotime(&t)
}

/// The action as the API shows it.
pub fn action_api(action: &Action) -> Value {
    action_api_with(action, true)
}

/// [`action_api`], without `parameters` unless asked for (its definitions are kept as text
/// and parsed to be shown).
pub fn action_api_with(action: &Action, parameters: bool) -> Value {
    let mut api = json!({
        "uid": format!("action:{}:{}", action.pack(), action.name),
        "ref": action.reference,
        "name": action.name,
        "pack": action.pack(),
        "description": action.description.clone().unwrap_or_default(),
        "enabled": action.enabled,
        "runner_type": action.runner_type,
        "entry_point": action.entry_point,
        "parameters": Value::Null,
        "output_schema": action.output_schema,
        "notify": action.notify.as_ref().map(|n| serde_json::to_value(n).unwrap_or(Value::Null)).unwrap_or_else(|| json!({})),
        "tags": action.tags,
        "metadata_file": action.origin.metadata_file,
    });
    if let Value::Object(m) = &mut api {
        if parameters {
            m.insert(
                "parameters".into(),
                serde_json::to_value(&*action.parameters).unwrap_or_default(),
            );
        } else {
            m.shift_remove("parameters");
        }
    }
    api
}

/// The runner type as the API shows it.
pub fn runner_api(runner: &RunnerType) -> Value {
    json!({
        "uid": format!("runner_type:{}", runner.name),
        "name": runner.name,
        "description": runner.description,
        "enabled": runner.enabled,
        "runner_parameters": runner.runner_parameters,
        "output_key": runner.output_key,
        "output_schema": runner.output_schema,
    })
}

/// The rule as the API shows it.
pub fn rule_api(rule: &Rule) -> Value {
    json!({
        "uid": format!("rule:{}:{}", rule.pack(), rule.name),
        "ref": rule.reference,
        "name": rule.name,
        "pack": rule.pack(),
        "description": rule.description.clone().unwrap_or_default(),
        "enabled": rule.enabled,
        "trigger": {
            "type": rule.trigger.trigger_type,
            "parameters": rule.trigger.parameters,
            "ref": trigger_ref_text(&TriggerRef {
                trigger_type: rule.trigger.trigger_type.clone(),
                parameters: rule.trigger.parameters.clone(),
            }),
        },
        "criteria": rule.criteria,
        "action": {"ref": rule.action.reference, "parameters": rule.action.parameters},
        "context": rule.context,
        "tags": rule.tags,
        "type": {"ref": match rule.kind {
            crate::model::rule::RuleKind::Standard => "standard",
            crate::model::rule::RuleKind::Backstop => "backstop",
        }, "parameters": {}},
        "metadata_file": rule.origin.metadata_file,
    })
}

/// The trigger type as the API shows it.
pub fn trigger_type_api(tt: &TriggerType) -> Value {
    json!({
        "uid": format!("trigger_type:{}:{}", tt.pack(), tt.name),
        "ref": tt.reference,
        "name": tt.name,
        "pack": tt.pack(),
        "description": tt.description.clone().unwrap_or_default(),
        "payload_schema": tt.payload_schema,
        "parameters_schema": tt.parameters_schema,
        "tags": tt.tags,
    })
}

/// The ref of a trigger: the trigger type's ref for a parameter-less trigger, else
/// `<pack>.<name>` where the name is derived from the type and parameters (StackStorm names
/// such triggers with a UUID; deriving it keeps the ref stable across restarts).
pub fn trigger_ref_text(trigger: &TriggerRef) -> String {
    if trigger.parameters.is_empty() {
        return trigger.trigger_type.clone();
    }
    let pack = trigger
        .trigger_type
        .split_once('.')
        .map_or("core", |(p, _)| p);
    format!("{pack}.{}", trigger_name(trigger))
}

/// The name of a trigger with parameters: a UUID-shaped digest of its type and parameters.
pub fn trigger_name(trigger: &TriggerRef) -> String {
    let mut keys: Vec<&String> = trigger.parameters.keys().collect();
    keys.sort();
    let mut text = trigger.trigger_type.clone();
    for k in keys {
        text.push('\n');
        text.push_str(k);
        text.push('=');
        text.push_str(&trigger.parameters[k].to_string());
    }
    let hex = derived_id("", &text) + derived_id("x", &text).as_str();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The trigger as the API shows it.
pub fn trigger_api(trigger: &TriggerRef) -> Value {
    let reference = trigger_ref_text(trigger);
    let (pack, name) = reference.split_once('.').unwrap_or(("core", &reference));
    json!({
        "uid": format!("trigger:{pack}:{name}"),
        "ref": reference,
        "name": name,
        "pack": pack,
        "type": trigger.trigger_type,
        "parameters": trigger.parameters,
    })
}

/// The snapshots executions keep of what they ran, built once per content version and shared
/// by every execution that ran it (see [`Snapshot`]). An entry is used only while the content
/// it was built from is the catalog's current one (the same `Arc`; a trigger by equal type
/// and parameters), else built again and replaced. One entry per ref, and a kind's entries
/// are dropped together when it holds [`SnapshotCache::LIMIT`] refs, so content removed from
/// the catalog does not pile up.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    actions: Mutex<HashMap<String, (Arc<Action>, Snapshot)>>,
    runners: Mutex<HashMap<String, (Arc<RunnerType>, Snapshot)>>,
    rules: Mutex<HashMap<String, (Arc<Rule>, Snapshot)>>,
    trigger_types: Mutex<HashMap<String, (Arc<TriggerType>, Snapshot)>>,
    triggers: Mutex<HashMap<String, (TriggerRef, Snapshot)>>,
}

impl SnapshotCache {
    /// The most refs of one kind kept.
    pub(crate) const LIMIT: usize = 4096;

    /// [`action_api`] of `action`.
    pub(crate) fn action(&self, action: &Arc<Action>) -> Snapshot {
        shared(
            &self.actions,
            &action.reference,
            action,
            Arc::ptr_eq,
            || action_api(action),
        )
    }

    /// [`runner_api`] of `runner`.
    pub(crate) fn runner(&self, runner: &Arc<RunnerType>) -> Snapshot {
        shared(&self.runners, &runner.name, runner, Arc::ptr_eq, || {
            runner_api(runner)
        })
    }

    /// [`rule_api`] of `rule`.
    pub(crate) fn rule(&self, rule: &Arc<Rule>) -> Snapshot {
        shared(&self.rules, &rule.reference, rule, Arc::ptr_eq, || {
            rule_api(rule)
        })
    }

    /// [`trigger_type_api`] of `trigger_type`.
    pub(crate) fn trigger_type(&self, trigger_type: &Arc<TriggerType>) -> Snapshot {
        shared(
            &self.trigger_types,
            &trigger_type.reference,
            trigger_type,
            Arc::ptr_eq,
            || trigger_type_api(trigger_type),
        )
    }

    /// [`trigger_api`] of `trigger`.
    pub(crate) fn trigger(&self, trigger: &TriggerRef) -> Snapshot {
        shared(
            &self.triggers,
            &trigger.trigger_type,
            trigger,
            |a, b| a == b,
            || trigger_api(trigger),
        )
    }
}

/// The snapshot kept in `map` under `key` if it was built from `source`, else a new one from
/// `build`, kept.
fn shared<S: Clone>(
    map: &Mutex<HashMap<String, (S, Snapshot)>>,
    key: &str,
    source: &S,
    same: impl Fn(&S, &S) -> bool,
    build: impl FnOnce() -> Value,
) -> Snapshot {
    {
        let kept = map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((from, snapshot)) = kept.get(key)
            && same(from, source)
        {
            return snapshot.clone();
        }
    }
    let snapshot = Snapshot::new(build());
    let mut kept = map.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= SnapshotCache::LIMIT && !kept.contains_key(key) {
        kept.clear();
    }
    kept.insert(key.to_owned(), (source.clone(), snapshot.clone()));
    snapshot
}

/// The trigger instance as the API shows it.
pub fn trigger_instance_api(ti: &TriggerInstanceRecord) -> Value {
    json!({
        "id": ti.id,
        "trigger": ti.trigger,
        "payload": ti.payload,
        "occurrence_time": isotime(ti.occurrence_time),
        "status": ti.status.as_str(),
    })
}

/// `parameters` with every value the action (or its runner) declares `secret` replaced by
/// [`MASK`].
pub fn mask_secrets(
    parameters: &Map<String, Value>,
    action: Option<&Action>,
    runner: Option<&RunnerType>,
) -> Map<String, Value> {
    let secret = |name: &str| {
        let declared = |defs: &Map<String, Value>| {
            defs.get(name)
                .and_then(|d| d.get("secret"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        action.is_some_and(|a| declared(&a.parameters))
            || runner.is_some_and(|r| declared(&r.runner_parameters))
    };
    parameters
        .iter()
        .map(|(k, v)| {
            if secret(k) && !v.is_null() {
                (k.clone(), Value::String(MASK.into()))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// Python's `json.dumps(value)` (`", "` and `": "` separators, non-ASCII escaped), through the
/// Jinja filters' implementation.
pub fn py_json_dumps(value: &Value) -> String {
    use crate::expr::jinja::value::{DumpOptions, dumps, from_json};
    // Every JSON value is serialisable: the error case (undefined, objects) cannot occur.
    dumps(&from_json(value), &DumpOptions::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_json_dumps() {
        let v = json!({"a": [1, 2.5, "é\n"], "b": null, "c": true});
        assert_eq!(
            py_json_dumps(&v),
            r#"{"a": [1, 2.5, "\u00e9\n"], "b": null, "c": true}"#
        );
    }

    use super::*;

    #[test]
    fn derived_ids_are_stable_hex_and_keep_the_time_part() {
        let a = derived_id("65f0c0ffee0000000000abcd", "rule:demo.r");
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("65f0c0ff"));
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, derived_id("65f0c0ffee0000000000abcd", "rule:demo.r"));
        assert_ne!(a, derived_id("65f0c0ffee0000000000abcd", "rule:demo.s"));
        // What a seed of another form keeps.
        assert!(derived_id("65F0C0FF-not-an-id", "x").starts_with("65f0c0ff"));
        assert_eq!(derived_id("", "x").len(), 24);
        assert_eq!(derived_id("é", "x").len(), 24);
    }

    #[test]
    fn derived_ids_sort_with_their_root_in_the_order_the_roots_were_made() {
        let roots: Vec<String> = (0..500).map(|_| crate::store::new_id()).collect();
        let executions: Vec<String> = roots
            .iter()
            .map(|r| derived_id(r, "execution:demo.r"))
            .collect();
        // Derived from derived ids: still next to the root.
        let actiontriggers: Vec<String> = executions
            .iter()
            .map(|e| derived_id(e, "actiontrigger"))
            .collect();
        for family in [&executions, &actiontriggers] {
            assert!(family.windows(2).all(|w| w[0] < w[1]));
            for (root, id) in roots.iter().zip(family.iter()) {
                assert_eq!(id[..14], root[..14]);
                assert_ne!(id, root);
            }
        }
    }

    #[test]
    fn content_ids_are_stable_per_kind_and_ref() {
        // Pinned: stored records refer to pack content by these ids, so they never change
        // between versions.
        assert_eq!(
            content_id("action", "core.local"),
            "000000006a8e2ef15248cb14"
        );
        assert_eq!(content_id("rule", "demo.r"), "00000000dd58800a17f68dce");
        let a = content_id("action", "core.local");
        assert_eq!(a.len(), 24);
        assert_eq!(a, content_id("action", "core.local"));
        assert_ne!(a, content_id("rule", "core.local"));
        assert_eq!(
            content_id("rule", "demo.r"),
            super::super::triggers::rule_id("demo.r")
        );
    }

    #[test]
    fn trigger_refs() {
        let plain = TriggerRef::of_type("core.st2.generic.actiontrigger");
        assert_eq!(trigger_ref_text(&plain), "core.st2.generic.actiontrigger");
        let mut hook = TriggerRef::of_type("core.st2.webhook");
        hook.parameters.insert("url".into(), json!("deploy"));
        let r = trigger_ref_text(&hook);
        assert!(r.starts_with("core."));
        assert_eq!(r.len(), "core.".len() + 36);
        assert_eq!(r, trigger_ref_text(&hook.clone()));
    }
}
