//! StackStorm's own example workflows (the `examples` pack in the workplace corpus), run
//! unchanged through the engine with the `orquesta` runner, with the results StackStorm
//! documents for them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionRecord, ExecutionStatus, Store};
use st2_workflow::OrquestaRunner;

const WAIT: Duration = Duration::from_secs(60);

/// The corpus copy of StackStorm's examples pack (CI has `../shared` beside the checkout).
fn corpus_pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/packs/examples")
}

async fn engine() -> Engine {
    assert!(
        corpus_pack().join("pack.yaml").is_file(),
        "the corpus is beside the checkout: {}",
        corpus_pack().display()
    );
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("built-in runners");
    runners
        .register("orquesta", OrquestaRunner::new())
        .expect("orquesta");
    Engine::builder()
        .store(store)
        .pack_dir(corpus_pack())
        .runners(runners)
        .settings(EngineSettings {
            idle_poll: Duration::from_millis(50),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts")
}

async fn run(engine: &Engine, action: &str, p: Value) -> ExecutionRecord {
    let started = engine
        .run(
            action,
            p.as_object().cloned().unwrap_or_default(),
            Map::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{action}: {e}"));
    engine.wait(&started.id, WAIT).await.expect("completes")
}

async fn succeeded(engine: &Engine, action: &str, p: Value) -> Value {
    let done = run(engine, action, p).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Succeeded,
        "{action}: {}",
        done.result
    );
    done.result["output"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_packs_workflows_give_stackstorms_results() {
    let engine = engine().await;

    let out = succeeded(
        &engine,
        "examples.orquesta-basic",
        json!({"cmd": "echo hi"}),
    )
    .await;
    assert_eq!(out, json!({"stdout": "hi"}));

    let out = succeeded(
        &engine,
        "examples.orquesta-sequential",
        json!({"name": "Stanley"}),
    )
    .await;
    assert_eq!(
        out,
        json!({"greeting": "Stanley, All your base are belong to us!"})
    );

    let out = succeeded(&engine, "examples.orquesta-join", json!({})).await;
    assert_eq!(
        out,
        json!({"messages": [
            "Fee fi fo fum",
            "I smell the blood of an English man",
            "Be alive, or be he dead",
            "I'll grind his bones to make my bread"
        ]})
    );

    let expected = json!({"items": [
        "Lakshmi, resistance is futile!",
        "Lindsay, resistance is futile!",
        "Tomaz, resistance is futile!"
    ]});
    let out = succeeded(&engine, "examples.orquesta-with-items", json!({})).await;
    assert_eq!(out, expected);
    let out = succeeded(
        &engine,
        "examples.orquesta-with-items-concurrency",
        json!({"members": ["Lakshmi", "Lindsay", "Tomaz"]}),
    )
    .await;
    assert_eq!(out, expected);

    let out = succeeded(
        &engine,
        "examples.orquesta-data-flow",
        json!({"a1": "fee fi fo fum"}),
    )
    .await;
    assert_eq!(out, json!({"a5": "fee fi fo fum", "b5": "fee fi fo fum"}));

    // Error handling: `continue` publishes and carries on, and the failure still fails the
    // workflow (orquesta's `continue` does not handle the error).
    let done = run(
        &engine,
        "examples.orquesta-error-handling-continue",
        json!({"cmd": "exit 1"}),
    )
    .await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{}", done.result);
    assert_eq!(done.result["output"], json!({"message": "$%#&@#$!!!"}));
    assert_eq!(done.result["errors"][0]["task_id"], json!("task1"));
    let out = succeeded(
        &engine,
        "examples.orquesta-error-handling-continue",
        json!({"cmd": "true"}),
    )
    .await;
    assert_eq!(out, json!({"message": "hooray!!!"}));

    // `fail` after remediation: the workflow fails, with the remediation's output.
    let done = run(
        &engine,
        "examples.orquesta-error-handling-fail-manually",
        json!({"cmd": "exit 1"}),
    )
    .await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{}", done.result);
    assert_eq!(done.result["output"], json!({"message": "$%#&@#$!!!"}));
    let done = run(&engine, "examples.orquesta-fail-manually", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{}", done.result);
    let log = engine
        .get(&done.children[1])
        .await
        .expect("get")
        .expect("log task");
    assert_eq!(log.result["stdout"], json!("task1 failed with exit code: "));

    // The st2 context.
    let done = run(&engine, "examples.orquesta-st2-ctx", json!({})).await;
    assert_eq!(
        done.result["output"]["callback"],
        json!(format!("http://127.0.0.1:9101/v1/executions/{}", done.id))
    );

    // A subworkflow.
    let done = run(&engine, "examples.orquesta-subworkflow", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(done.children.len(), 3);
    let sub = engine
        .get(&done.children[1])
        .await
        .expect("get")
        .expect("subworkflow");
    assert_eq!(sub.action_ref, "examples.orquesta-sequential");
    assert_eq!(sub.children.len(), 3);
    engine.shutdown().await;
}
