//! The `rhai-script` runner under the engine: parameters as variables, the script's value as
//! `result`, printed lines as `stdout`, the datastore through `kv_*` functions, and the
//! sandbox's limits (timeout, operation budget, cancel, no file access) ending the run with a
//! clear status and message.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use st2_core::crypto::CryptoKey;
use st2_core::datastore::KeySelector;
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, OutputType, Store};

const WAIT: Duration = Duration::from_secs(30);

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn engine() -> Engine {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    Engine::builder()
        .store(store)
        .pack_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine/scripts"))
        .runners(runners)
        .crypto_key(CryptoKey::generate().expect("a key"))
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts")
}

async fn run(engine: &Engine, action: &str, parameters: Value) -> st2_core::store::ExecutionRecord {
    let started = engine
        .run(action, params(parameters), Map::new())
        .await
        .expect("runs");
    engine.wait(&started.id, WAIT).await.expect("finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_in_value_and_prints_out() {
    let engine = engine().await;
    let done = run(&engine, "scripts.total", json!({"numbers": [1, 2, 3.5]})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(
        done.result,
        json!({
            "result": {"label": "total", "sum": 6.5, "count": 3},
            "stdout": "total: 1\ntotal: 3\ntotal: 6.5\n",
        })
    );
    let output = engine.output(&done.id).await.expect("output");
    let streamed: String = output
        .iter()
        .filter(|o| o.chunk.output_type == OutputType::Stdout)
        .map(|o| o.chunk.data.as_str())
        .collect();
    assert_eq!(streamed, "total: 1\ntotal: 3\ntotal: 6.5\n");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_datastore_is_reachable() {
    let engine = engine().await;
    let first = run(&engine, "scripts.counter", json!({"note": "hello"})).await;
    assert_eq!(first.status, ExecutionStatus::Succeeded, "{}", first.result);
    assert_eq!(
        first.result["result"],
        json!({
            "runs": 1,
            "note": "hello",
            "hidden": true,
            "revealed": "s3cret",
            "listed": {"tmp.a": "1", "tmp.b": "{\"nested\":[1,2]}"},
            "removed": true,
            "removed_again": false,
        })
    );
    let second = run(&engine, "scripts.counter", json!({"note": "again"})).await;
    assert_eq!(second.result["result"]["runs"], json!(2));
    let datastore = engine.datastore();
    let runs = datastore
        .get(&KeySelector::System, "runs", false)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(runs.record.value, "2");
    let note = datastore
        .get(&KeySelector::User("stanley".into()), "note", false)
        .await
        .expect("get")
        .expect("stored in the user's scope");
    assert_eq!(note.record.value, "again");
    let token = datastore
        .get(&KeySelector::System, "token", false)
        .await
        .expect("get")
        .expect("stored");
    assert!(token.record.secret);
    assert_ne!(token.record.value, "s3cret", "encrypted at rest");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_end_runaway_scripts() {
    let engine = engine().await;
    let started = std::time::Instant::now();
    let timed_out = run(&engine, "scripts.spin", json!({})).await;
    assert_eq!(
        timed_out.status,
        ExecutionStatus::Timeout,
        "{}",
        timed_out.result
    );
    assert_eq!(
        timed_out.result["error"],
        json!("Action failed to complete in 1 seconds")
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let budget = run(&engine, "scripts.budget", json!({})).await;
    assert_eq!(budget.status, ExecutionStatus::Failed);
    let error = budget.result["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("spin.rhai") && error.contains("operations"),
        "{error}"
    );

    let spinning = engine
        .run("scripts.spin", params(json!({"timeout": 60})), Map::new())
        .await
        .expect("runs");
    for _ in 0..200 {
        let r = engine
            .get(&spinning.id)
            .await
            .expect("get")
            .expect("exists");
        if r.status == ExecutionStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    engine
        .cancel(&spinning.id, "someone")
        .await
        .expect("cancels");
    let canceled = engine.wait(&spinning.id, WAIT).await.expect("stops");
    assert_eq!(canceled.status, ExecutionStatus::Canceled);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_went_wrong() {
    let engine = engine().await;
    let thrown = run(&engine, "scripts.fails", json!({"why": "disk full"})).await;
    assert_eq!(thrown.status, ExecutionStatus::Failed);
    assert_eq!(thrown.result["stdout"], json!("about to fail\n"));
    assert_eq!(thrown.result["result"], Value::Null);
    let error = thrown.result["error"].as_str().unwrap_or_default();
    assert!(error.contains("gave up: disk full"), "{error}");

    let escape = run(&engine, "scripts.escape", json!({})).await;
    assert_eq!(escape.status, ExecutionStatus::Failed);
    let error = escape.result["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("open_file"),
        "no file functions exist: {error}"
    );

    let broken = run(&engine, "scripts.broken", json!({})).await;
    assert_eq!(broken.status, ExecutionStatus::Failed);
    let error = broken.result["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("broken.rhai: ") && error.contains("line 1"),
        "{error}"
    );

    let missing = run(&engine, "scripts.missing", json!({})).await;
    assert_eq!(missing.status, ExecutionStatus::Failed);
    let error = missing.result["error"].as_str().unwrap_or_default();
    assert!(error.contains("missing.rhai"), "{error}");
    engine.shutdown().await;
}
