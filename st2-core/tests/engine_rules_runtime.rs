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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_replaced_with_another_trigger_drops_the_old_one() {
    let engine = engine().await;
    let body = |url: &str| {
        json!({
            "name": "moving", "pack": "examples", "enabled": true,
            "trigger": {"type": "core.st2.webhook", "parameters": {"url": url}},
            "action": {"ref": "core.noop"},
        })
    };
    let urls = |engine: &Engine| -> Vec<serde_json::Value> {
        engine
            .parameterized_triggers()
            .into_iter()
            .filter_map(|(_, t)| t.parameters.get("url").cloned())
            .collect()
    };
    let rule = rule_from_json(&body("old"), &engine.catalog()).expect("valid rule");
    engine.put_rule(rule).expect("put");
    assert_eq!(urls(&engine), [json!("old")]);
    let rule = rule_from_json(&body("new"), &engine.catalog()).expect("valid rule");
    assert!(engine.put_rule(rule).expect("put").is_some());
    assert_eq!(urls(&engine), [json!("new")], "the old webhook is gone");
    assert_eq!(fire(&engine, "new").await.len(), 1);
    assert_eq!(fire(&engine, "old").await.len(), 0);

    // A trigger another rule still listens to stays.
    let mut other = body("new");
    other["name"] = json!("other");
    let rule = rule_from_json(&other, &engine.catalog()).expect("valid rule");
    engine.put_rule(rule).expect("put");
    let rule = rule_from_json(&body("third"), &engine.catalog()).expect("valid rule");
    engine.put_rule(rule).expect("put");
    let mut now = urls(&engine);
    now.sort_by_key(ToString::to_string);
    assert_eq!(now, [json!("new"), json!("third")]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_removed_at_runtime_takes_its_content_and_triggers_along() {
    let engine = engine().await;
    for (name, pack, url) in [("a", "gone", "gone_hook"), ("b", "kept", "kept_hook")] {
        let body = json!({
            "name": name, "pack": pack, "enabled": true,
            "trigger": {"type": "core.st2.webhook", "parameters": {"url": url}},
            "action": {"ref": "core.noop"},
        });
        let rule = rule_from_json(&body, &engine.catalog()).expect("valid rule");
        engine.put_rule(rule).expect("put");
    }
    let policy = st2_core::model::policy_from_json(
        &json!({
            "name": "noop_retry", "pack": "gone", "resource_ref": "core.noop",
            "policy_type": "action.retry", "parameters": {"retry_on": "failure"},
        }),
        &engine.catalog(),
    )
    .expect("valid policy");
    assert_eq!(
        policy.parameters["max_retry_count"], 2,
        "defaults filled in"
    );
    assert!(engine.put_policy(policy).is_none());
    let removed = engine.remove_pack("gone");
    assert_eq!(removed.rules, ["gone.a"]);
    assert_eq!(removed.policies, ["gone.noop_retry"]);
    assert!(engine.catalog().rule("gone.a").is_none());
    assert!(engine.catalog().policy("gone.noop_retry").is_none());
    assert!(engine.catalog().rule("kept.b").is_some());
    assert_eq!(fire(&engine, "gone_hook").await.len(), 0);
    assert_eq!(fire(&engine, "kept_hook").await.len(), 1);
    let urls: Vec<_> = engine
        .parameterized_triggers()
        .into_iter()
        .filter_map(|(_, t)| t.parameters.get("url").cloned())
        .collect();
    assert_eq!(urls, [json!("kept_hook")]);
    engine.shutdown().await;
}

#[test]
fn policies_given_as_json_are_checked_against_their_policy_type() {
    let catalog = st2_core::load(&st2_core::LoadOptions::default()).catalog;
    let check = |body: serde_json::Value| {
        st2_core::model::policy_from_json(&body, &catalog)
            .expect_err("invalid")
            .join("; ")
    };
    let base = json!({"name": "p", "resource_ref": "core.local", "policy_type": "action.concurrency", "parameters": {"threshold": 1}});
    let ok = st2_core::model::policy_from_json(&base, &catalog).expect("valid");
    assert_eq!(ok.reference, "default.p");
    let mut bad = base.clone();
    bad["policy_type"] = json!("action.nothing");
    assert!(check(bad).contains("action.nothing"));
    let mut bad = base.clone();
    bad["parameters"] = json!({"threshold": "many"});
    assert!(check(bad).contains("threshold"));
    let mut bad = base.clone();
    bad["parameters"] = json!({"threshold": 1, "bogus": true});
    assert!(check(bad).contains("bogus"));
    let mut bad = base.clone();
    bad.as_object_mut().expect("object").remove("resource_ref");
    assert!(check(bad).contains("resource_ref"));
    assert!(check(json!(["not", "an", "object"])).contains("mapping"));
}

async fn fire_with(engine: &Engine, url: &str, body: serde_json::Value) -> Vec<String> {
    let ti = engine
        .dispatch_with(DispatchRequest::to_trigger(
            hook(url),
            json!({"body": body}),
        ))
        .await
        .expect("dispatch");
    engine
        .wait_processed(&ti.id, WAIT)
        .await
        .expect("processed")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_whose_criteria_and_parameters_read_the_datastore_see_its_values() {
    use st2_core::datastore::{KeySelector, KeyWrite};
    let engine = engine().await;
    let write = KeyWrite {
        value: "red".into(),
        ..KeyWrite::default()
    };
    engine
        .datastore()
        .set(&KeySelector::System, "color", write)
        .await
        .expect("set");
    let rule = rule_from_json(
        &json!({
            "name": "kv", "pack": "examples", "enabled": true,
            "trigger": {"type": "core.st2.webhook", "parameters": {"url": "kv"}},
            "criteria": {"trigger.body.color": {"type": "equals", "pattern": "{{ st2kv.system.color }}"}},
            "action": {"ref": "core.echo",
                       "parameters": {"message": "{{ st2kv.system.color }} {{ trigger.body.n }}"}},
        }),
        &engine.catalog(),
    )
    .expect("valid rule");
    engine.put_rule(rule).expect("put");
    assert!(
        fire_with(&engine, "kv", json!({"color": "blue", "n": 1}))
            .await
            .is_empty()
    );
    let ids = fire_with(&engine, "kv", json!({"color": "red", "n": 2})).await;
    assert_eq!(ids.len(), 1);
    let execution = engine.get(&ids[0]).await.expect("read").expect("stored");
    assert_eq!(execution.parameters["message"], "red 2");
    engine.shutdown().await;
}

/// The creation event of the one execution in `ids`.
async fn created(
    events: &mut tokio::sync::broadcast::Receiver<st2_core::engine::EngineEvent>,
    ids: Vec<String>,
) -> Arc<st2_core::store::ExecutionRecord> {
    assert_eq!(ids.len(), 1);
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Ok(st2_core::engine::EngineEvent::ExecutionCreated(record)))
                if record.id == ids[0] =>
            {
                return record;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("no creation event for {ids:?}: {e}"),
            Err(_) => panic!("no creation event for {ids:?} in {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_of_one_rule_share_its_snapshots_until_the_rule_changes() {
    use st2_core::store::ExecutionRecord;
    let engine = engine().await;
    let body = json!({
        "name": "s", "pack": "examples", "enabled": true, "description": "first",
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "s"}},
        "action": {"ref": "core.noop", "parameters": {}},
    });
    let rule = rule_from_json(&body, &engine.catalog()).expect("valid rule");
    engine.put_rule(rule).expect("put");
    let mut events = engine.subscribe();
    let first = created(&mut events, fire(&engine, "s").await).await;
    let second = created(&mut events, fire(&engine, "s").await).await;
    let shared = |a: &ExecutionRecord, b: &ExecutionRecord| {
        (
            a.action.shares(&b.action),
            a.runner.shares(&b.runner),
            a.rule
                .as_ref()
                .zip(b.rule.as_ref())
                .map(|(x, y)| x.shares(y)),
            a.trigger
                .as_ref()
                .zip(b.trigger.as_ref())
                .map(|(x, y)| x.shares(y)),
            a.trigger_type
                .as_ref()
                .zip(b.trigger_type.as_ref())
                .map(|(x, y)| x.shares(y)),
        )
    };
    assert_eq!(
        shared(&first, &second),
        (true, true, Some(true), Some(true), Some(true))
    );
    assert_ne!(first.trigger_instance, second.trigger_instance);
    assert_eq!(first.rule.as_ref().expect("rule")["description"], "first");

    // Changed: the next execution shows the rule as it is now; the rest is still shared.
    let mut changed = body.clone();
    changed["description"] = json!("second");
    let rule = rule_from_json(&changed, &engine.catalog()).expect("valid rule");
    engine.put_rule(rule).expect("put");
    let third = created(&mut events, fire(&engine, "s").await).await;
    assert_eq!(
        shared(&second, &third),
        (true, true, Some(false), Some(true), Some(true))
    );
    assert_eq!(third.rule.as_ref().expect("rule")["description"], "second");

    // Read back from the store, each is the record the engine had (a newer revision).
    for record in [&first, &second, &third] {
        let record: &ExecutionRecord = record;
        let stored = engine.get(&record.id).await.expect("read").expect("stored");
        assert_eq!(stored.action, record.action);
        assert_eq!(stored.rule, record.rule);
        assert_eq!(stored.trigger, record.trigger);
        assert_eq!(stored.trigger_type, record.trigger_type);
        assert_eq!(stored.trigger_instance, record.trigger_instance);
        assert_eq!(stored.runner, record.runner);
        assert_eq!(stored.action_ref, record.action_ref);
    }
    engine.shutdown().await;
}
