//! StackStorm's JSON shapes of what the engine holds (the API models of st2common).

use serde_json::{Map, Value, json};
use st2_core::Catalog;
use st2_core::datastore::KeyValue;
use st2_core::engine::snapshot::{
    MASK, content_id, isotime, rule_api, runner_api, trigger_api, trigger_type_api,
};
use st2_core::model::{Action, Pack, Rule, RunnerType, TriggerType};
use st2_core::rules::matcher::TriggerRef;
use st2_core::store::{ApiKeyRecord, ExecutionRecord};

fn with_id(id: String, value: Value) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id));
    if let Value::Object(m) = value {
        for (k, v) in m {
            if k != "id" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// An action.
pub fn action(a: &Action) -> Value {
    action_with(a, true)
}

/// An action, with or without its `parameters`.
pub fn action_with(a: &Action, parameters: bool) -> Value {
    with_id(
        content_id("action", &a.reference),
        st2_core::engine::snapshot::action_api_with(a, parameters),
    )
}

/// A runner type.
pub fn runner(r: &RunnerType) -> Value {
    let mut v = with_id(content_id("runner_type", &r.name), runner_api(r));
    if let Value::Object(m) = &mut v {
        m.insert("runner_package".into(), json!(r.name));
        m.insert("runner_module".into(), json!(r.name));
        if m.get("output_key").is_some_and(Value::is_null) {
            m.remove("output_key");
        }
    }
    v
}

/// A pack.
pub fn pack(p: &Pack) -> Value {
    let m = &p.meta;
    let mut out = Map::new();
    out.insert("id".into(), json!(content_id("pack", &m.reference)));
    out.insert("ref".into(), json!(m.reference));
    out.insert("uid".into(), json!(format!("pack:{}", m.reference)));
    out.insert("name".into(), json!(m.name));
    out.insert("description".into(), json!(m.description));
    out.insert("keywords".into(), json!(m.keywords));
    out.insert("version".into(), json!(m.version));
    out.insert("author".into(), json!(m.author));
    if let Some(email) = &m.email {
        out.insert("email".into(), json!(email));
    }
    out.insert("contributors".into(), json!(m.contributors));
    out.insert("files".into(), json!([]));
    out.insert(
        "path".into(),
        json!(
            p.path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    );
    out.insert("dependencies".into(), json!(m.dependencies));
    out.insert("system".into(), Value::Object(m.system.clone()));
    if let Some(v) = &m.stackstorm_version {
        out.insert("stackstorm_version".into(), json!(v));
    }
    if !m.python_versions.is_empty() {
        out.insert("python_versions".into(), json!(m.python_versions));
    }
    Value::Object(out)
}

/// A trigger type.
pub fn trigger_type(t: &TriggerType) -> Value {
    let mut v = with_id(
        content_id("trigger_type", &t.reference),
        trigger_type_api(t),
    );
    if let Value::Object(m) = &mut v {
        m.insert("metadata_file".into(), json!(t.origin.metadata_file));
    }
    v
}

/// A trigger (a trigger type with parameters, or the shadow trigger of a parameter-less type).
pub fn trigger(t: &TriggerRef, description: Option<&str>) -> Value {
    let api = trigger_api(t);
    let reference = api["ref"].as_str().unwrap_or_default().to_owned();
    let mut v = with_id(content_id("trigger", &reference), api);
    if let Value::Object(m) = &mut v {
        m.insert("description".into(), json!(description.unwrap_or_default()));
    }
    v
}

/// A rule.
pub fn rule(r: &Rule) -> Value {
    with_id(content_id("rule", &r.reference), rule_api(r))
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Mask the parameters the action or runner snapshot declares `secret`.
fn mask(parameters: &Map<String, Value>, action: &Value, runner: &Value) -> Map<String, Value> {
    let secret = |name: &str| {
        [action.get("parameters"), runner.get("runner_parameters")]
            .into_iter()
            .flatten()
            .any(|defs| {
                defs.get(name)
                    .and_then(|d| d.get("secret"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
    };
    parameters
        .iter()
        .map(|(k, v)| {
            if secret(k) && !v.is_null() {
                (k.clone(), json!(MASK))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// An execution, falsy attributes omitted, secrets masked unless `show_secrets`.
pub fn execution(r: &ExecutionRecord, show_secrets: bool, api_url: &str) -> Value {
    let action = {
        let mut a = r.action.value().clone();
        if let Value::Object(m) = &mut a {
            let id = content_id("action", &r.action_ref);
            let mut out = Map::new();
            out.insert("id".into(), json!(id));
            for (k, v) in std::mem::take(m) {
                if k != "id" {
                    out.insert(k, v);
                }
            }
            *m = out;
        }
        a
    };
    let runner = {
        let name = r.runner.get("name").and_then(Value::as_str).unwrap_or("");
        let mut out = Map::new();
        out.insert("id".into(), json!(content_id("runner_type", name)));
        if let Value::Object(m) = r.runner.value() {
            for (k, v) in m {
                if k != "id" {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(out)
    };
    let parameters = if show_secrets {
        r.parameters.clone()
    } else {
        mask(&r.parameters, &r.action, &r.runner)
    };
    let is_workflow = matches!(
        r.runner.get("name").and_then(Value::as_str),
        Some("orquesta" | "action-chain")
    );
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        if !is_falsy(&v) {
            out.insert(k.to_owned(), v);
        }
    };
    put("id", json!(r.id));
    put("action", action);
    put("runner", runner);
    put(
        "liveaction",
        json!({
            "id": r.id,
            "action": r.action_ref,
            "action_is_workflow": is_workflow,
            "parameters": parameters,
            "callback": {},
            "runner_info": r.runner_info.clone().unwrap_or_else(|| json!({})),
        }),
    );
    put("status", json!(r.status.as_str()));
    put("start_timestamp", json!(isotime(r.start_timestamp)));
    if let Some(end) = r.end_timestamp {
        put("end_timestamp", json!(isotime(end)));
        let elapsed = (end - r.start_timestamp).num_microseconds().unwrap_or(0) as f64 / 1e6;
        put("elapsed_seconds", json!(elapsed));
    }
    put("parameters", Value::Object(parameters));
    let result_size = if r.result.is_null() {
        0
    } else {
        r.result.to_string().len()
    };
    put("result", r.result.clone());
    put("result_size", json!(result_size));
    put("context", Value::Object(r.context.clone()));
    put("parent", json!(r.parent));
    put("children", json!(r.children));
    put(
        "log",
        Value::Array(
            r.log
                .iter()
                .map(|c| json!({"status": c.status.as_str(), "timestamp": isotime(c.timestamp)}))
                .collect(),
        ),
    );
    put("delay", json!(r.delay));
    put("notify", r.notify.clone().unwrap_or(Value::Null));
    put("rule", r.rule.as_deref().cloned().unwrap_or(Value::Null));
    put(
        "trigger",
        r.trigger.as_deref().cloned().unwrap_or(Value::Null),
    );
    put(
        "trigger_type",
        r.trigger_type.as_deref().cloned().unwrap_or(Value::Null),
    );
    put(
        "trigger_instance",
        r.trigger_instance.clone().unwrap_or(Value::Null),
    );
    put("workflow_execution", json!(r.workflow_execution));
    put("task_execution", json!(r.task_execution));
    let base = api_url
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/api");
    put(
        "web_url",
        json!(format!("{base}/#/history/{}/general", r.id)),
    );
    Value::Object(out)
}

/// A key-value pair: a secret read without decryption shows its ciphertext and
/// `encrypted: true`.
pub fn key(kv: &KeyValue) -> Value {
    let mut out = Map::new();
    let scope = kv.record.scope.as_str();
    out.insert("id".into(), json!(kv.record.id));
    out.insert(
        "uid".into(),
        json!(format!("key_value_pair:{scope}:{}", kv.record.name)),
    );
    out.insert("name".into(), json!(kv.name));
    out.insert("value".into(), json!(kv.shown_value()));
    out.insert("secret".into(), json!(kv.record.secret));
    out.insert("encrypted".into(), json!(kv.shows_ciphertext()));
    out.insert("scope".into(), json!(scope));
    if let Some(d) = &kv.record.description {
        out.insert("description".into(), json!(d));
    }
    if let Some(t) = kv.record.expire_timestamp {
        out.insert("expire_timestamp".into(), json!(isotime(t)));
    }
    if let Some(u) = &kv.user {
        out.insert("user".into(), json!(u));
    }
    Value::Object(out)
}

/// An API key (never the key itself; its hash only when asked).
pub fn api_key(k: &ApiKeyRecord, show_hash: bool) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(k.id));
    // The uid holds the hash, so it is masked with it (as StackStorm does).
    out.insert(
        "uid".into(),
        json!(if show_hash {
            format!("api_key:{}", k.key_hash)
        } else {
            MASK.to_owned()
        }),
    );
    out.insert("user".into(), json!(k.user));
    out.insert("metadata".into(), Value::Object(k.metadata.clone()));
    out.insert("created_at".into(), json!(isotime(k.created_at)));
    out.insert("enabled".into(), json!(k.enabled));
    out.insert(
        "key_hash".into(),
        json!(if show_hash { k.key_hash.as_str() } else { MASK }),
    );
    Value::Object(out)
}

/// The triggers the API lists: the shadow trigger of every parameter-less trigger type,
/// then every trigger with parameters the rules use.
pub fn triggers(catalog: &Catalog, parameterized: &[(String, TriggerRef)]) -> Vec<Value> {
    let mut out: Vec<Value> = catalog
        .trigger_types()
        .filter(|t| !t.takes_parameters())
        .map(|t| {
            trigger(
                &TriggerRef::of_type(t.reference.clone()),
                t.description.as_deref(),
            )
        })
        .collect();
    for (_, t) in parameterized {
        let description = catalog
            .trigger_type(&t.trigger_type)
            .and_then(|tt| tt.description.clone());
        out.push(trigger(t, description.as_deref()));
    }
    out
}

/// Whether `value`'s `ref` or `id` is `key`.
pub fn matches_ref_or_id(value: &Value, key: &str) -> bool {
    ["ref", "id"]
        .iter()
        .any(|f| value.get(*f).and_then(Value::as_str) == Some(key))
}
