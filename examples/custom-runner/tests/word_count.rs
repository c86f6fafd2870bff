//! The custom runner example: an action with `runner_type: word-count` runs on the Rust runner
//! registered with `EngineBuilder::runner` and succeeds with its counts; a `text` that does not
//! fit the action is refused before anything runs; a `text` that reaches the runner with the
//! wrong type fails the execution with the runner's parameter error; a cancel wins over the
//! count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use example_custom_runner::{ACTION, WordCount, pack_dir, runner_type};
use serde_json::{Map, Value, json};
use st2_core::clock::SystemClock;
use st2_core::runner::{Cancellation, DiscardOutput, RunContext, Runner};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, Store};
use st2_core::{Engine, EngineError, LoadOptions};

const WAIT: Duration = Duration::from_secs(20);

async fn memory_store() -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    )
}

fn parameters(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A pack whose action declares `text` as an integer.
fn sloppy_pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sloppy_text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_runs_on_the_rust_runner() {
    let engine = example_custom_runner::start(memory_store().await)
        .await
        .expect("engine starts");
    assert!(
        engine.diagnostics().is_empty(),
        "{:?}",
        engine.diagnostics()
    );

    let text = "The quick brown fox\njumps over the lazy dog";
    let execution = engine
        .run(ACTION, parameters(json!({"text": text})), Map::new())
        .await
        .expect("accepted");
    let done = engine.wait(&execution.id, WAIT).await.expect("finishes");

    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(
        done.result,
        json!({"words": 9, "lines": 2, "characters": 43, "longest_word": "quick"})
    );
    assert_eq!(done.runner["name"], "word-count");
    let output = engine.output(&done.id).await.expect("output");
    assert_eq!(output.len(), 1);
    assert_eq!(output[0].chunk.data, "counting 43 characters\n");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_that_does_not_fit_the_action_is_refused_before_running() {
    let engine = example_custom_runner::start(memory_store().await)
        .await
        .expect("engine starts");
    let missing = engine
        .run(ACTION, Map::new(), Map::new())
        .await
        .expect_err("text is required");
    let EngineError::InvalidParameters(message) = missing else {
        panic!("expected InvalidParameters, got {missing:?}");
    };
    assert!(message.contains("text"), "{message}");

    let ill_typed = engine
        .run(ACTION, parameters(json!({"text": [1, 2]})), Map::new())
        .await
        .expect_err("text is a string");
    assert!(
        matches!(ill_typed, EngineError::InvalidParameters(_)),
        "{ill_typed:?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ill_typed_text_that_reaches_the_runner_fails_the_execution() {
    let engine = Engine::builder()
        .store(memory_store().await)
        .pack_dir(pack_dir())
        .pack_dir(sloppy_pack())
        .runner(runner_type(), WordCount)
        .start()
        .await
        .expect("engine starts");
    let execution = engine
        .run(
            "sloppy_text.count_number",
            parameters(json!({"text": 42})),
            Map::new(),
        )
        .await
        .expect("the action's own schema accepts an integer");
    let done = engine.wait(&execution.id, WAIT).await.expect("finishes");

    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(
        done.result["error"],
        r#"invalid parameter "text": expected a string, got 42"#
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_wins_over_the_count() {
    let report = st2_core::load(
        &LoadOptions::default()
            .pack_dir(pack_dir())
            .runner_type(runner_type()),
    );
    let action = report.catalog.action(ACTION).expect("loaded").clone();
    let (canceller, cancel) = Cancellation::new();
    let ctx = RunContext {
        execution_id: "test".into(),
        action,
        runner_type: Arc::new(runner_type()),
        parameters: parameters(json!({"text": "never counted"})),
        runner_parameters: parameters(json!({"timeout": 60})),
        context: Map::new(),
        pack_dir: Some(pack_dir()),
        config: Map::new(),
        env: Default::default(),
        shell_values: Default::default(),
        output: Arc::new(DiscardOutput),
        cancel,
        clock: Arc::new(SystemClock),
        datastore: None,
        services: None,
        resume: None,
    };
    canceller.cancel();
    let outcome = WordCount.run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Canceled);
}

#[test]
fn the_program_prints_the_counts() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-custom-runner"))
        .arg("one two three")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the example program starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("text_tools.count_words succeeded ("),
        "{stdout}"
    );
    assert!(stdout.contains(r#""words": 3"#), "{stdout}");
}
