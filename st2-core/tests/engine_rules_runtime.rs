//! Rules added, replaced and removed while the engine runs (the API's rule CRUD): a rule
//! given as JSON is checked like a rule file, and matching follows the change at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use st2_core::engine::DispatchRequest;
use st2_core::model::rule_from_json;
use st2_core::rules::matcher::TriggerRef;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::{Engine, EngineError};

const WAIT: Duration = Duration::from_secs(20);

async fn engine() -> Engine {
    let store = SqliteStore::open(SqliteOptions::memory())
        .await
        .expect("store");
    Engine::builder()
        .store(Arc::new(store))
        .start()
        .await
        .expect("engine")
}

fn hook(url: &str) -> TriggerRef {
    let mut t = TriggerRef::of_type("core.st2.webhook");
    t.parameters.insert("url".into(), json!(url));
    t
}

async fn fire(engine: &Engine, url: &str) -> Vec<String> {
    let ti = engine
        .dispatch_with(DispatchRequest::to_trigger(hook(url), json!({"body": {}})))
        .await
        .expect("dispatch");
    engine
        .wait_processed(&ti.id, WAIT)
        .await
        .expect("processed")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_put_and_removed_at_runtime_change_what_matches() {
    let engine = engine().await;
    let body = json!({
        "name": "r", "pack": "examples", "enabled": true,
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "x"}},
        "criteria": {}, "action": {"ref": "core.noop", "parameters": {}},
        "id": "ignored", "uid": "rule:examples:r",
    });
    let rule = rule_from_json(&body, &engine.catalog()).expect("valid rule");
    assert_eq!(rule.reference, "examples.r");
    assert!(engine.put_rule(rule).expect("put").is_none());
    assert!(engine.catalog().rule("examples.r").is_some());
    assert!(
        engine
            .parameterized_triggers()
            .iter()
            .any(|(_, t)| t.parameters.get("url") == Some(&json!("x")))
    );
    assert_eq!(fire(&engine, "x").await.len(), 1);

    // Disabled by replacing it: nothing runs.
    let mut disabled = body.clone();
    disabled["enabled"] = json!(false);
    let rule = rule_from_json(&disabled, &engine.catalog()).expect("valid rule");
    assert!(engine.put_rule(rule).expect("put").is_some());
    assert_eq!(fire(&engine, "x").await.len(), 0);

    assert!(engine.remove_rule("examples.r").is_some());
    assert!(engine.catalog().rule("examples.r").is_none());
    assert!(engine.parameterized_triggers().is_empty());
    assert!(engine.remove_rule("examples.r").is_none());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_name_their_fields() {
    let engine = engine().await;
    let catalog = engine.catalog();
    let missing = rule_from_json(&json!({"name": "r"}), &catalog).expect_err("no trigger");
    assert!(missing.iter().any(|m| m.contains("trigger")), "{missing:?}");
    let no_url = rule_from_json(
        &json!({"name": "r", "trigger": {"type": "core.st2.webhook"}, "action": {"ref": "core.noop"}}),
        &catalog,
    )
    .expect_err("webhook without url");
    assert!(
        no_url.iter().any(|m| m.contains("parameters")),
        "{no_url:?}"
    );
    let bad_type = rule_from_json(
        &json!({"name": "r", "trigger": {"type": "nope.nothing"}, "action": {"ref": "core.noop"}}),
        &catalog,
    )
    .expect_err("unknown trigger type");
    assert!(
        bad_type.iter().any(|m| m.contains("does not exist")),
        "{bad_type:?}"
    );
    assert!(rule_from_json(&json!([1]), &catalog).is_err());
    // Pack defaults to `default`, enabled to false.
    let r = rule_from_json(
        &json!({"name": "r", "trigger": {"type": "core.st2.generic.actiontrigger"}, "action": {"ref": "core.noop"}}),
        &catalog,
    )
    .expect("valid");
    assert_eq!(r.reference, "default.r");
    assert!(!r.enabled);
    // Criteria that do not compile are refused by the engine.
    let bad_criteria = rule_from_json(
        &json!({"name": "c", "trigger": {"type": "core.st2.generic.actiontrigger"},
                "criteria": {"trigger.x": {"type": "regex", "pattern": "("}},
                "action": {"ref": "core.noop"}}),
        &catalog,
    );
    if let Ok(rule) = bad_criteria {
        assert!(matches!(
            engine.put_rule(rule),
            Err(EngineError::InvalidParameters(_))
        ));
    }
    engine.shutdown().await;
}

fn write_pack(dir: &std::path::Path, with_rule: bool) {
    let pack = dir.join("hooks");
    let _ = std::fs::remove_dir_all(&pack);
    std::fs::create_dir_all(pack.join("rules")).expect("dirs");
    std::fs::write(
        pack.join("pack.yaml"),
        "---\nref: hooks\nname: hooks\ndescription: d\nversion: 0.1.0\nauthor: a\n",
    )
    .expect("pack.yaml");
    if with_rule {
        std::fs::write(
            pack.join("rules/on_y.yaml"),
            "---\nname: on_y\npack: hooks\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: y\naction:\n  ref: core.noop\n",
        )
        .expect("rule");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_loaded_again_replaces_the_running_one() {
    let engine = engine().await;
    let dir = tempfile::tempdir().expect("dir");
    write_pack(dir.path(), true);
    let options = st2_core::LoadOptions::default().packs_dir(dir.path());
    let report = st2_core::load(&options);
    assert!(engine.replace_catalog(report.catalog).is_empty());
    assert!(engine.catalog().pack("hooks").is_some());
    assert!(engine.catalog().action("core.noop").is_some());
    assert_eq!(fire(&engine, "y").await.len(), 1);

    write_pack(dir.path(), false);
    let report = st2_core::load(&options);
    engine.replace_catalog(report.catalog);
    assert!(engine.catalog().rule("hooks.on_y").is_none());
    assert!(engine.parameterized_triggers().is_empty());
    assert_eq!(fire(&engine, "y").await.len(), 0);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_put_and_removed_at_runtime_can_be_run() {
    use st2_core::model::action_from_json;
    let engine = engine().await;
    let body = json!({
        "name": "say", "pack": "examples", "runner_type": "local-shell-cmd",
        "description": "Says something", "id": "ignored", "ref": "examples.say",
        "parameters": {"cmd": {"default": "echo hi"}},
    });
    let action = action_from_json(&body, &engine.catalog()).expect("valid action");
    assert_eq!(action.reference, "examples.say");
    assert!(action.enabled, "actions default to enabled");
    assert!(engine.put_action(action).is_none());
    let run = engine
        .run("examples.say", Default::default(), Default::default())
        .await
        .expect("runs");
    assert_eq!(
        run.parameters.get("cmd"),
        None,
        "defaults apply at run time"
    );
    assert!(engine.remove_action("examples.say").is_some());
    assert!(matches!(
        engine
            .run("examples.say", Default::default(), Default::default())
            .await,
        Err(EngineError::UnknownAction(_))
    ));

    let catalog = engine.catalog();
    let no_runner = action_from_json(&json!({"name": "x"}), &catalog).expect_err("no runner");
    assert!(
        no_runner.iter().any(|m| m.contains("runner_type")),
        "{no_runner:?}"
    );
    let unknown = action_from_json(&json!({"name": "x", "runner_type": "nope"}), &catalog)
        .expect_err("unknown runner");
    assert!(unknown.iter().any(|m| m.contains("nope")), "{unknown:?}");
    let bad_params = action_from_json(
        &json!({"name": "x", "runner_type": "noop", "parameters": {"p": {"type": "strange"}}}),
        &catalog,
    )
    .expect_err("bad parameter type");
    assert!(
        bad_params.iter().any(|m| m.contains("parameters")),
        "{bad_params:?}"
    );
    engine.shutdown().await;
}
